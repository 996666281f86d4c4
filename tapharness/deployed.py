"""A deployed stack as the integration suite sees it: its outputs, and clients that reach it.

Where the outputs come from (first match wins):

1. ``$TAPSTACK_OUTPUTS``: a JSON file written by ``tofu output -json`` for a real account.
   Clients use the default AWS credential chain and the region of the stack's ARNs. Aurora
   and Redis sit in private subnets; from outside the VPC set ``TAPSTACK_DB_ADDRESS`` and
   ``TAPSTACK_REDIS_ADDRESS`` (``host:port`` of a tunnel, e.g. SSM port forwarding).
2. The sandbox's outputs file for ``$TAPSTACK_ENV`` (default ``dev``) of the stack
   ``$TAPSTACK_STACK`` (``tapharness.stacks``, default the repository root's):
   ``tapharness.sandbox.state.SandboxPaths.for_env(env, stack).outputs_file``, used only while that
   sandbox is running. Its ``sandbox`` entry names the moto endpoint (every client goes
   there, with dummy credentials and path-style S3) and the local Redis/PostgreSQL that play
   ElastiCache and Aurora (the sandbox maps the stack's endpoint names to them).

An outputs file that names itself a sandbox (it has the ``sandbox`` entry) is treated as one
wherever it was found.

``load_target()`` raises ``NoTarget`` when nothing is configured (the message says how to
configure a target) and ``TargetError`` when something is configured but unusable.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pg8000.native
import redis
from botocore.config import Config

from tapharness import stacks
from tapharness.retry import wait_for
from tapharness.sandbox.state import SandboxPaths, SandboxState, call_control, pid_alive

OUTPUTS_VAR = "TAPSTACK_OUTPUTS"
ENV_VAR = "TAPSTACK_ENV"
DB_ADDRESS_VAR = "TAPSTACK_DB_ADDRESS"
REDIS_ADDRESS_VAR = "TAPSTACK_REDIS_ADDRESS"
DEFAULT_ENV = "dev"
SANDBOX_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
HOW_TO_CONFIGURE = (
    "configure a target: `make integration` (brings the sandbox up, runs this suite, tears it down), "
    "or `python -m tapharness.sandbox up --env dev` and then this command, "
    f"or for a real account `tofu output -json > outputs.json`, {OUTPUTS_VAR}=outputs.json and AWS credentials "
    "in the environment"
)


class NoTarget(RuntimeError):
    """No deployed stack is configured; the message says how to configure one."""


class TargetError(RuntimeError):
    """A target is configured but cannot be used (missing or malformed outputs)."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    tunnelled: bool = False

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _parse_address(text: str, variable: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise TargetError(f"{variable} must be host:port, got {text!r}")
    return Address(host, int(port), tunnelled=True)


def read_outputs(path: Path) -> dict[str, Any]:
    """``tofu output -json`` as ``{name: value}``."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TargetError(f"cannot read the outputs file {path}: {exc}") from exc
    if not isinstance(raw, dict) or not all(isinstance(v, dict) and "value" in v for v in raw.values()):
        raise TargetError(f"{path} is not the JSON of `tofu output -json` (each output an object with a value)")
    return {name: entry["value"] for name, entry in raw.items()}


@dataclass
class Target:
    """One deployed stack: its outputs and clients for it."""

    outputs: Mapping[str, Any]
    source: Path
    env: str
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def sandbox(self) -> Mapping[str, Any] | None:
        """The sandbox's entry of the outputs (endpoints, local services), or None for a real account."""
        return self.outputs.get("sandbox")

    @property
    def is_sandbox(self) -> bool:
        return self.sandbox is not None

    @property
    def region(self) -> str:
        if self.sandbox is not None:
            return str(self.sandbox["region"])
        arns = [v for v in self.outputs.values() if isinstance(v, str) and v.startswith("arn:") and v.split(":")[3]]
        if not arns:
            raise TargetError(f"no regional ARN among the outputs of {self.source} to tell the region from")
        return arns[0].split(":")[3]

    def describe(self) -> str:
        kind = f"the {self.env} sandbox" if self.is_sandbox else "a real account"
        return f"{kind} ({self.region}), outputs {self.source}"

    def output(self, name: str, key: str | None = None) -> Any:
        """An output's value (or one key of a map output); the error lists what exists."""
        if name not in self.outputs:
            raise TargetError(f"output {name!r} is not in {self.source}; it has {sorted(self.outputs)}")
        value = self.outputs[name]
        if key is None:
            return value
        if key not in value:
            raise TargetError(f"output {name!r} has no key {key!r}; it has {sorted(value)}")
        return value[key]

    def client(self, service: str) -> Any:
        """A boto3 client for the target (cached per service; boto3 clients are thread-safe)."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._new_client(service)
            return self._clients[service]

    def regional_client(self, service: str, region: str) -> Any:
        """A client for the target in another region (a global table's replica, say)."""
        with self._lock:
            key = f"{service}@{region}"
            if key not in self._clients:
                self._clients[key] = self._new_client(service, region)
            return self._clients[key]

    def _new_client(self, service: str, region: str | None = None) -> Any:
        config = Config(retries={"mode": "standard", "max_attempts": 5}, s3={"addressing_style": "path"})
        if self.sandbox is not None:
            return boto3.client(service, endpoint_url=self.sandbox["endpoint_url"], region_name=region or self.region,
                                config=config, **SANDBOX_CREDENTIALS)
        return boto3.session.Session(region_name=region or self.region).client(service, config=config)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """A sandbox control endpoint (``/_sandbox/<path>``); TargetError on a real account."""
        if self.sandbox is None:
            raise TargetError(f"/_sandbox/{path} exists only in the sandbox")
        return call_control(self.sandbox["control_url"], method, path, body, timeout=30)

    def alarm_fires(self, alarm_name: str, provoke: Callable[[], Any] = lambda: None, timeout: float = 360) -> str:
        """Look at an alarm until it is in ALARM (WaitTimeout otherwise); each look first calls
        ``provoke`` (a datapoint for this minute). In the sandbox each look then moves its clock a
        minute on and evaluates the alarms; in an account the minutes pass."""

        def look() -> str:
            provoke()
            if self.is_sandbox:
                self.control("POST", "clock", {"advance_s": 60})
                self.control("POST", "alarms")
            alarm = self.client("cloudwatch").describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"][0]
            return str(alarm["StateValue"])

        return str(wait_for(f"the alarm {alarm_name}", look, timeout, ready=lambda state: state == "ALARM",
                            interval=0.5 if self.is_sandbox else 15))

    def route_url(self, route: str) -> str:
        return str(self.output("api_endpoints", route))

    def secret(self, key: str) -> dict[str, Any]:
        """The JSON of one of the stack's secrets (``secret_arns`` key: redis, aurora)."""
        response = self.client("secretsmanager").get_secret_value(SecretId=self.output("secret_arns", key))
        return json.loads(response["SecretString"])

    def db_address(self) -> Address:
        """Where Aurora's writer endpoint is reachable from here."""
        if self.sandbox is not None:
            local = self.sandbox["postgres"]
            return Address(str(local["host"]), int(local["port"]))
        override = os.environ.get(DB_ADDRESS_VAR)
        if override:
            return _parse_address(override, DB_ADDRESS_VAR)
        return Address(str(self.output("aurora_cluster_endpoint")), int(self.output("aurora_port")))

    def redis_address(self) -> Address:
        """Where the Redis primary endpoint is reachable from here."""
        if self.sandbox is not None:
            local = self.sandbox["redis"]
            return Address(str(local["host"]), int(local["port"]))
        override = os.environ.get(REDIS_ADDRESS_VAR)
        if override:
            return _parse_address(override, REDIS_ADDRESS_VAR)
        return Address(str(self.output("redis_primary_endpoint")), int(self.output("redis_port")))

    def connect_db(self, timeout: float = 10.0) -> pg8000.native.Connection:
        """A connection to the stack's database with the Aurora secret's credentials (TLS, not verified,
        as the handlers connect)."""
        secret = self.secret("aurora")
        address = self.db_address()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return pg8000.native.Connection(user=secret["username"], password=secret["password"], host=address.host,
                                        port=address.port, database=secret["dbname"], ssl_context=context,
                                        timeout=timeout, application_name="tapstack-integration")

    def connect_redis(self, timeout: float = 5.0) -> redis.Redis:
        """A client for the stack's Redis with the auth token from its secret (TLS, verified)."""
        address = self.redis_address()
        options: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": not address.tunnelled}
        if self.sandbox is not None:
            options["ssl_ca_certs"] = str(self.sandbox["redis"]["ca_file"])
        return redis.Redis(host=address.host, port=address.port, password=self.secret("redis")["auth_token"],
                           ssl=True, socket_timeout=timeout, socket_connect_timeout=timeout,
                           decode_responses=True, **options)


def _sandbox_outputs(env: str, stack: str) -> Path:
    paths = SandboxPaths.for_env(env, stack)
    if not paths.outputs_file.exists():
        raise NoTarget(f"no {OUTPUTS_VAR} and no outputs file of the {env} sandbox ({paths.outputs_file}); "
                       + HOW_TO_CONFIGURE)
    state = SandboxState.load(paths)
    if state is None or not pid_alive(state.server_pid):
        raise NoTarget(f"{paths.outputs_file} is left from an earlier {env} sandbox that is no longer running; "
                       + HOW_TO_CONFIGURE)
    return paths.outputs_file


def load_target(environ: Mapping[str, str] | None = None) -> Target:
    """The configured target (see the module docstring); NoTarget or TargetError otherwise."""
    environ = os.environ if environ is None else environ
    env = environ.get(ENV_VAR) or DEFAULT_ENV
    explicit = environ.get(OUTPUTS_VAR)
    if explicit:
        source = Path(explicit)
        if not source.is_file():
            raise TargetError(f"{OUTPUTS_VAR}={explicit} is not a file")
    else:
        source = _sandbox_outputs(env, stacks.resolve(environ.get(stacks.ENV_VAR)).name)
    return Target(outputs=read_outputs(source), source=source.resolve(), env=env)
