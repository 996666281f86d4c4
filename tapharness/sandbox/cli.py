"""``python -m tapharness.sandbox up|status|down|plan|fire [--env dev]`` (and ``serve``, used by ``up``).

up      start the sandbox process (moto, shims, Lambda runner, pollers, scheduler, API front
        door, Redis, PostgreSQL) detached, ``tofu apply`` the stack with tfvars/<env>.tfvars
        from a scratch copy of lib/, match Redis/PostgreSQL to the stack's secrets and
        endpoints, write ``.sandbox/<stack>/<env>/outputs.json`` and print the API URL. On failure
        everything is stopped, unless ``--keep``.
status  what runs, the pollers' counters, where the outputs are.
down    ``tofu destroy``, check that the account is empty, stop everything, check that no
        process or port is left.
plan    ``tofu plan -detailed-exitcode`` against the running sandbox (exit 2 = changes).
fire    deliver a scheduled EventBridge rule's targets now.
iam     the IAM report of the run: per role, what it used, what was denied and why, what it
        never used (``--json`` for the data); exit 1 when anything was denied.
network the network report of the run: per function, the paths its connections took (interface
        or gateway endpoint, NAT gateway, local) and those the VPC refused, with the missing rule,
        route or association; exit 1 when any was refused.

Every command takes ``--stack NAME`` (``tapharness.stacks``: ``video_streaming``, the default,
or a directory name under ``stacks/``; ``TAPSTACK_STACK`` sets the default) or ``--stack DIR``, a
directory whose ``lib/`` holds ``*.tf`` (optionally ``tfvars/<env>.tfvars``, ``backend/<env>.hcl``,
``sandbox.yaml``), inside the repository or not, e.g. a scratch copy with one permission removed. Each stack and environment has its own sandbox
(``.sandbox/<stack>/<env>``); ``plan`` and ``down`` use the stack ``up`` deployed there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from tapharness import stacks
from tapharness.sandbox.adapter import Adapter, AdapterError
from tapharness.sandbox.alb import local_alb_url
from tapharness.sandbox.apigw import local_invoke_url
from tapharness.sandbox.deploy import (
    StackDeployment,
    TofuError,
    empty_buckets,
    remaining_resources,
)
from tapharness.sandbox.process import ServerFailed, launch
from tapharness.sandbox.state import (
    REGION,
    SandboxPaths,
    SandboxState,
    call_control,
    free_port,
    pid_alive,
    port_open,
)

READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
# A second destroy picks up what a flaky first one left (e.g. an object written meanwhile).
DESTROY_ATTEMPTS = 2


class Progress:
    """Prints ``[sandbox +12.3s] phase: message`` lines."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str, phase: str = "") -> None:
        prefix = f"{phase}: " if phase else ""
        print(f"[sandbox +{time.monotonic() - self.started:6.1f}s] {prefix}{message}", flush=True)


class SandboxError(RuntimeError):
    """A step of up/down failed; the message says which and why."""


def tfvars_region(env: str, stack: stacks.Stack) -> str:
    """The ``aws_region`` the environment's tfvars set (the sandbox serves that region)."""
    tfvars = stack.tfvars_file(env)
    if not tfvars.is_file():
        return REGION
    match = re.search(r'^\s*aws_region\s*=\s*"([^"]+)"', tfvars.read_text(), re.MULTILINE)
    return match.group(1) if match else REGION


def _parse_vars(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        if "=" not in item:
            raise SandboxError(f"--var needs NAME=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        pairs[name] = value
    return pairs


def control(state: SandboxState, method: str, path: str, body: Any = None, timeout: float = 120.0) -> Any:
    return call_control(f"{state.gateway_url}/_sandbox", method, path, body, timeout)


def _client_factory(state: SandboxState) -> Any:
    def client(service: str, region: str | None = None) -> Any:
        return boto3.client(service, endpoint_url=state.endpoint_url, region_name=region or state.region,
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    return client


# --- serve ---------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from tapharness.sandbox.pollers import PollerSettings
    from tapharness.sandbox.server import Sandbox, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    paths = SandboxPaths.for_env(args.env, args.stack.name)
    services_dir = None if args.no_services else Path(args.services_dir or paths.services_dir)
    settings = PollerSettings(**json.loads(args.poller_settings)) if args.poller_settings else PollerSettings()
    sandbox = Sandbox(cache_dir=Path(args.cache_dir or paths.lambda_cache), moto_port=args.moto_port,
                      gateway_port=args.gateway_port, region=args.region, services_dir=services_dir,
                      poller_settings=settings, run_scheduler=not args.no_scheduler)
    if args.exit_with_parent:
        def watch_parent() -> None:
            sys.stdin.buffer.read()  # EOF: the process that started us is gone, or has let go
            os.kill(os.getpid(), signal.SIGTERM)
        threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    serve(sandbox, Path(args.ready_file) if args.ready_file else None)
    # Everything the server started has stopped: exit now rather than spend a second or more of
    # interpreter finalisation tearing down moto's object graph, which no one waits for a reason.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# --- up ------------------------------------------------------------------------------------


def _start_server(paths: SandboxPaths, state: SandboxState, say: Progress) -> dict[str, Any]:
    arguments = ["--env", state.env, "--stack", state.stack_dir, "--region", state.region,
                 "--moto-port", str(state.moto_port), "--gateway-port", str(state.gateway_port)]
    try:
        process, ready = launch(arguments, paths.base / "ready.json", paths.logs_dir / "server.log",
                                READY_TIMEOUT_S, detach=True)
    except ServerFailed as exc:
        raise SandboxError(str(exc)) from None
    state.server_pid = process.pid
    state.save(paths)
    say(f"moto {state.endpoint_url}, gateway {state.gateway_url} (pid {process.pid})", "server")
    return ready


def _local_api_urls(value: Any, gateway_url: str, found: list[tuple[str, str]]) -> Any:
    """``value`` with every API Gateway invoke URL and ALB URL in it (strings, nested in maps and
    lists) made the gateway's; ``found`` collects the (stack URL, local URL) pairs of the APIs."""
    if isinstance(value, str):
        try:
            local = local_invoke_url(value, gateway_url)
        except ValueError:
            try:
                return local_alb_url(value, gateway_url)
            except ValueError:
                return value
        found.append((value, local))
        return local
    if isinstance(value, dict):
        return {key: _local_api_urls(inner, gateway_url, found) for key, inner in value.items()}
    if isinstance(value, list):
        return [_local_api_urls(inner, gateway_url, found) for inner in value]
    return value


def _write_outputs(paths: SandboxPaths, state: SandboxState, outputs: dict[str, Any],
                   services: dict[str, Any]) -> str | None:
    """outputs.json: ``tofu output -json`` with every API invoke URL, whatever output holds it,
    mapped to the gateway, plus a ``sandbox`` entry; returns the API's local URL (the shortest
    one: its stage), None for a stack without an API."""
    found: list[tuple[str, str]] = []
    mapped = {name: {**output, "value": _local_api_urls(output["value"], state.gateway_url, found)}
              for name, output in outputs.items()}
    stack_url, api_url = min(found, key=lambda pair: len(pair[1])) if found else (None, None)
    mapped["sandbox"] = {"sensitive": False, "type": ["object", {}], "value": {
        "env": state.env, "stack": state.stack, "region": state.region, "endpoint_url": state.endpoint_url,
        "gateway_url": state.gateway_url, "control_url": f"{state.gateway_url}/_sandbox",
        "api_url": api_url, "stack_api_invoke_url": stack_url, **services,
    }}
    tmp = paths.outputs_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(mapped, indent=2, sort_keys=True))
    tmp.chmod(0o600)
    tmp.replace(paths.outputs_file)
    return api_url


def _report_retries(state: SandboxState, say: Progress) -> None:
    """Name the requests an SDK sent again (a retried create that had succeeded fails as a duplicate)."""
    try:
        retried = control(state, "GET", "retries", timeout=10)
    except (OSError, ValueError):
        return
    if retried:
        say("requests the SDKs retried: " + ", ".join(f"{label} ×{n}" for label, n in sorted(retried.items())), "up")


def cmd_up(args: argparse.Namespace) -> int:
    say = Progress()
    stack: stacks.Stack = args.stack
    paths = SandboxPaths.for_env(args.env, stack.name)
    existing = SandboxState.load(paths)
    if existing and pid_alive(existing.server_pid):
        print(f"the {stack.name} {args.env} sandbox is already up (pid {existing.server_pid}); "
              f"`python -m tapharness.sandbox down --stack {stack.name} --env {args.env}` first", file=sys.stderr)
        return 1
    if existing:
        say("a stale state file was found; cleaning up after it", "up")
        _stop_everything(paths, existing, say)
    state = SandboxState(env=args.env, region=tfvars_region(args.env, stack), moto_port=free_port(),
                         gateway_port=free_port(), tofu_vars=_parse_vars(args.var), stack=stack.name,
                         stack_dir=str(stack.root))
    try:
        say(f"starting the sandbox process for {args.env} ({state.region})", "server")
        ready = _start_server(paths, state, say)
        state.redis_port, state.postgres_port = ready.get("redis_port"), ready.get("postgres_port")
        adapter = Adapter.load(stack)
        partners = {name: control(state, "POST", f"partners/{name}", body={})["url"] for name in adapter.partner_apis}
        if partners:
            say(", ".join(f"{name} {url}" for name, url in partners.items()), "partners")
        state.tofu_vars = {**adapter.tofu_vars(partners), **state.tofu_vars}
        state.save(paths)
        deployment = StackDeployment(paths, args.env, state.endpoint_url, state.tofu_vars, lambda m: say(m, "tofu"),
                                     stack)
        deployment.prepare()
        step = time.monotonic()
        deployment.init()
        say(f"init done in {time.monotonic() - step:.0f}s", "tofu")
        step = time.monotonic()
        state.applied = True
        state.save(paths)
        deployment.apply()
        say(f"apply done in {time.monotonic() - step:.0f}s ({len(deployment.state_resources())} resources)",
            "tofu")
        services = control(state, "POST", "services")
        uses = services.pop("stack_uses", {})
        matched = [f"redis 127.0.0.1:{services['redis']['port']} (TLS)"] if uses.get("redis") else []
        matched += [f"postgres 127.0.0.1:{services['postgres']['port']}"] if uses.get("postgres") else []
        say(", ".join(matched) + " configured with the credentials the stack set on its cache and database"
            if matched else "the stack has no cache or database to stand in for", "services")
        outputs = deployment.outputs()
        secrets = _client_factory(state)("secretsmanager")
        if adapter.put_secrets(outputs, lambda arn, value: secrets.put_secret_value(SecretId=arn, SecretString=value)):
            say(f"{len(adapter.secrets)} secret values put (sandbox.yaml)", "secrets")
        models = {name: spec.to_json() for name, spec in adapter.model_endpoints_by_name(outputs).items()}
        if models:
            control(state, "POST", "models", body=models)
            say(f"{', '.join(models)} served by a model trained on the stack's data (sandbox.yaml)", "models")
        state.api_url = _write_outputs(paths, state, outputs, {**services, "partners": partners})
        state.save(paths)
    except (SandboxError, TofuError, OSError, KeyError, ValueError, urllib.error.URLError, ClientError, AdapterError) as exc:
        say(f"FAILED: {exc}", "up")
        _report_retries(state, say)
        if args.keep:
            say(f"left running for inspection (--keep); logs in {paths.logs_dir}; "
                f"`python -m tapharness.sandbox down --stack {stack.name} --env {args.env}` when done", "up")
        else:
            _stop_everything(paths, state, say)
        return 1
    _report_retries(state, say)
    say(f"outputs: {paths.outputs_file}", "up")
    if state.api_url:
        say(f"API URL: {state.api_url}", "up")
        print(state.api_url, flush=True)
    return 0


# --- down ----------------------------------------------------------------------------------


def _lambda_workers(paths: SandboxPaths) -> list[int]:
    """Function worker processes of this sandbox (their working directory is in its code cache)."""
    pids = []
    cache = str(paths.lambda_cache.resolve())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd.startswith(cache):
            pids.append(int(proc.name))
    return pids


def _stop_everything(paths: SandboxPaths, state: SandboxState, say: Progress) -> list[str]:
    """Stop the sandbox process (it stops its servers and workers); returns what is still alive."""
    pid = state.server_pid
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            say(f"pid {pid} ignored SIGTERM for {STOP_TIMEOUT_S:.0f}s; killing its process group", "down")
            os.killpg(pid, signal.SIGKILL)
    left = [f"process {pid}"] if pid_alive(pid) else []
    ports = {"moto": state.moto_port, "gateway": state.gateway_port, "redis": state.redis_port,
             "postgres": state.postgres_port}
    left += [f"{name} still listening on {port}" for name, port in ports.items() if port and port_open(port)]
    left += [f"lambda worker {worker}" for worker in _lambda_workers(paths)]
    for stale in (paths.state_file, paths.outputs_file, paths.base / "ready.json"):
        stale.unlink(missing_ok=True)
    for name in ("terraform.tfstate", "terraform.tfstate.backup"):
        (paths.work_dir / "lib" / name).unlink(missing_ok=True)
    return left


DESTROY_FAILED = "tofu destroy failed"


def cmd_down(args: argparse.Namespace) -> int:
    say = Progress()
    paths = SandboxPaths.for_env(args.env, args.stack.name)
    state = SandboxState.load(paths)
    if state is None:
        say(f"no {args.stack.name} {args.env} sandbox is running", "down")
        return 0
    leftovers: list[str] = []
    try:
        leftovers += _destroy(args, paths, state, say)
    except (BotoCoreError, ClientError, OSError, ValueError) as exc:  # the processes stop whatever failed
        leftovers.append(f"could not finish tearing the stack down: {exc}")
    if args.keep and DESTROY_FAILED in leftovers:
        return 1  # left running for inspection
    leftovers += _stop_everything(paths, state, say)
    if leftovers:
        say("left behind:\n  " + "\n  ".join(leftovers), "down")
        return 1
    say("nothing left: no resources, processes or ports", "down")
    return 0


def _destroy(args: argparse.Namespace, paths: SandboxPaths, state: SandboxState, say: Progress) -> list[str]:
    """Destroy the deployed stack (if the server is up and it was applied): what is left behind."""
    leftovers: list[str] = []
    if pid_alive(state.server_pid) and state.applied:
        deployment = StackDeployment(paths, args.env, state.endpoint_url, state.tofu_vars,
                                     lambda m: say(m, "tofu"), stacks.resolve(state.stack_dir))
        step = time.monotonic()
        for attempt in range(1, DESTROY_ATTEMPTS + 1):
            state_bucket = deployment.state_backend()
            emptied = empty_buckets(_client_factory(state), [state_bucket["bucket"]] if state_bucket else [])
            say(f"emptied the stack's buckets ({emptied} object versions)", "down")
            try:
                deployment.destroy()
                break
            except TofuError as exc:
                say(f"destroy attempt {attempt} of {DESTROY_ATTEMPTS} FAILED: {exc}", "down")
        else:
            leftovers.append(DESTROY_FAILED)
            return leftovers
        say(f"destroy done in {time.monotonic() - step:.0f}s", "tofu")
        if deployment.remove_state_bucket():
            say("removed the state bucket", "down")
        other_regions = [r for r in control(state, "GET", "regions") if r != state.region]
        leftovers += remaining_resources(_client_factory(state), other_regions)
    return leftovers


# --- status, plan, fire ----------------------------------------------------------------------


def _running_state(env: str, stack: stacks.Stack) -> SandboxState:
    state = SandboxState.load(SandboxPaths.for_env(env, stack.name))
    if state is None or not pid_alive(state.server_pid):
        raise SandboxError(f"no {stack.name} {env} sandbox is running: "
                           f"`python -m tapharness.sandbox up --stack {stack.name} --env {env}`")
    return state


def cmd_status(args: argparse.Namespace) -> int:
    paths = SandboxPaths.for_env(args.env, args.stack.name)
    state = SandboxState.load(paths)
    if state is None:
        print(f"{args.stack.name} {args.env}: down")
        return 1
    alive = pid_alive(state.server_pid)
    print(f"{args.stack.name} {args.env}: {'up' if alive else 'DEAD (stale state; run down)'} (pid {state.server_pid})")
    print(f"  moto      {state.endpoint_url}\n  gateway   {state.gateway_url}\n  api       {state.api_url}")
    print(f"  redis     127.0.0.1:{state.redis_port} (TLS)\n  postgres  127.0.0.1:{state.postgres_port}")
    print(f"  outputs   {paths.outputs_file if paths.outputs_file.exists() else '(not written)'}")
    if not alive:
        return 1
    health = control(state, "GET", "health")
    print(f"  lambda workers running: {health['lambda_workers']}")
    for poller in control(state, "GET", "pollers"):
        print(f"  poller {poller['uuid'][:8]} {poller['shard']:<22} {poller['function'].rsplit(':', 1)[-1]:<40} "
              f"invocations={poller['invocations']} delivered={poller['delivered']} "
              f"failed_batches={poller['failed_batches']} last_error={poller['last_error']}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    state = _running_state(args.env, args.stack)
    paths = SandboxPaths.for_env(args.env, args.stack.name)
    say = Progress()
    deployment = StackDeployment(paths, args.env, state.endpoint_url, {**state.tofu_vars, **_parse_vars(args.var)},
                                 lambda m: say(m, "tofu"), stacks.resolve(state.stack_dir))
    changes = deployment.plan_changes()
    say("changes pending (see logs/tofu-plan.log)" if changes else "no changes: the stack is in step", "plan")
    return 2 if changes else 0


def cmd_fire(args: argparse.Namespace) -> int:
    state = _running_state(args.env, args.stack)
    fired = control(state, "POST", f"rules/{args.rule}/fire")
    print(json.dumps(fired, indent=2))
    return 0


def cmd_iam(args: argparse.Namespace) -> int:
    from tapharness.sandbox.iam.report import format_report

    report = control(_running_state(args.env, args.stack), "GET", "iam")
    print(json.dumps(report, indent=2) if args.json else format_report(report, show_unused=not args.denials_only))
    return 1 if report["denials"] else 0


def cmd_network(args: argparse.Namespace) -> int:
    from tapharness.sandbox.network import format_report

    report = control(_running_state(args.env, args.stack), "GET", "network")
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 1 if report["refused"] else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tapharness.sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler, text in (("up", cmd_up, "start and deploy"), ("status", cmd_status, "show what runs"),
                                ("down", cmd_down, "destroy and stop"), ("plan", cmd_plan, "idempotency check"),
                                ("fire", cmd_fire, "fire a scheduled rule now"),
                                ("iam", cmd_iam, "the IAM report of the run"),
                                ("network", cmd_network, "the network report of the run"),
                                ("serve", cmd_serve, "internal")):
        sub = commands.add_parser(name, help=text)
        sub.set_defaults(handler=handler)
        sub.add_argument("--env", default="dev", choices=("dev", "staging", "prod"))
        sub.add_argument("--stack", default=None, metavar="NAME|DIR",
                         help=f"the stack: a name ({', '.join(stacks.registry())}; default ${stacks.ENV_VAR} or "
                              f"{stacks.DEFAULT_STACK}) or a directory whose lib/ holds *.tf")
        if name in ("up", "down"):
            sub.add_argument("--keep", action="store_true", help="leave everything running after a failure")
        if name in ("up", "plan"):
            sub.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                             help="extra tofu variable (repeatable), on top of tfvars/<env>.tfvars")
        if name in ("iam", "network"):
            sub.add_argument("--json", action="store_true", help="the report as JSON")
        if name == "iam":
            sub.add_argument("--denials-only", action="store_true", help="leave out the granted-but-unused actions")
        if name == "fire":
            sub.add_argument("rule", help="EventBridge rule name")
        if name == "serve":
            sub.add_argument("--moto-port", type=int, default=0)
            sub.add_argument("--gateway-port", type=int, default=0)
            sub.add_argument("--region", default=REGION)
            sub.add_argument("--ready-file")
            sub.add_argument("--no-services", action="store_true", help="without Redis and PostgreSQL")
            sub.add_argument("--services-dir", help="Redis and PostgreSQL data (default: the sandbox's)")
            sub.add_argument("--cache-dir", help="unzipped function code (default: the sandbox's)")
            sub.add_argument("--poller-settings", help="PollerSettings as JSON")
            sub.add_argument("--no-scheduler", action="store_true", help="schedules fire only when asked")
            sub.add_argument("--exit-with-parent", action="store_true",
                             help="stop when standard input closes (the starting process exited)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.stack = stacks.resolve(args.stack)
    except stacks.UnknownStack as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except SandboxError as exc:
        print(exc, file=sys.stderr)
        return 1
