"""The stack applied to the sandbox from a scratch working copy of its lib/.

A stack (``tapharness.stacks``) is a directory with ``lib/*.tf`` and, optionally, ``tfvars/<env>.tfvars``,
``lib/layer/requirements.txt`` (a Lambda layer built from it), ``backend/<env>.hcl`` and ``sandbox.yaml``:
one of the repository's, a copy of one, or any other (``python -m tapharness.sandbox up --stack DIR``). Its ``lib/`` is copied to
``.sandbox/<stack>/<env>/work/lib`` (as ``tapharness.plan`` does for plans: no
state, no ``.terraform``, no build output; the built layer is linked), so ``.terraform``, the
lock file, the zips and the state never land in ``lib/``. One extra file is written there,
``zz_sandbox_override.tf``, an OpenTofu override of the ``aws`` provider block for moto
(path-style S3, no metadata or credential checks); the endpoint comes from
``AWS_ENDPOINT_URL``. The tfvars of the environment are used as they are, plus those of
``SANDBOX_VARS`` (deletion protection off, so ``down`` can destroy) the stack declares (as
``tofu graph`` lists its root variables) and any ``--var`` given.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import boto3

from tapharness import stacks, toolchain
from tapharness.plan import COPY_IGNORE, LOCAL_BACKEND_OVERRIDE, offline_aws_env
from tapharness.sandbox.state import SandboxPaths

_HCL_STRING = re.compile(r'^\s*(\w+)\s*=\s*"([^"]*)"', re.MULTILINE)
_ROOT_VARIABLE = re.compile(r'"\[root\] var\.(\w+)" \[label')
PROVIDER_OVERRIDE = """\
# Written by tapharness.sandbox (sandbox working copy only, never in lib/).
provider "aws" {
  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  max_retries                 = 2 # a call moto lacks fails in seconds, not after minutes of backoff
}
"""
# Resources tofu applies or destroys at once. The AWS provider's waiters hold a slot for 25 to
# 55 s each while they poll for propagation (SQS attributes and policies, S3 lifecycle, KMS,
# Aurora, ElastiCache) though a local server answers at once; tofu's default of 10 leaves the
# resources behind them queued.
PARALLELISM = 48
# Variables the sandbox always sets on top of the environment's tfvars.
SANDBOX_VARS = {"deletion_protection": "false"}


class TofuError(RuntimeError):
    """A tofu command failed; the message carries the tail of its log."""


class StackDeployment:
    """tofu init/apply/plan/output/destroy of lib/ for one environment, against one endpoint."""

    def __init__(self, paths: SandboxPaths, env: str, endpoint_url: str, extra_vars: dict[str, str] | None = None,
                 say: Callable[[str], None] = print, stack: stacks.Stack | None = None) -> None:
        self.paths = paths
        self.env = env
        self.stack = stack or stacks.resolve()
        self.lib = self.stack.lib
        self.endpoint_url = endpoint_url
        self.extra_vars = dict(extra_vars or {})
        self.say = say
        self.dir = paths.work_dir / "lib"

    @functools.cached_property
    def declared(self) -> frozenset[str]:
        """The variables the configuration's root module declares, as tofu itself reads them (after init)."""
        return frozenset(_ROOT_VARIABLE.findall(self.run("graph", "graph", capture=True).stdout))

    @property
    def vars(self) -> dict[str, str]:
        """``SANDBOX_VARS`` the stack declares, then the extra variables."""
        return {**{k: v for k, v in SANDBOX_VARS.items() if k in self.declared}, **self.extra_vars}

    @property
    def var_args(self) -> list[str]:
        tfvars = self.stack.tfvars_file(self.env)
        args = [f"-var-file={tfvars}"] if tfvars.is_file() else []
        args += [f"-var={key}={value}" for key, value in sorted(self.vars.items())]
        return args

    def prepare(self) -> None:
        """A fresh working copy of lib/ with the provider override and, for a stack with a layer
        (``lib/layer/requirements.txt``), the built layer linked (built by ``make setup`` for the
        repository's stacks; any other gets its layer built here)."""
        if not list(self.lib.glob("*.tf")):
            raise TofuError(f"{self.lib}/*.tf: no such files (a stack directory holds its configuration in lib/)")
        layer = self.lib / ".build" / "layer"
        has_layer = (self.lib / "layer" / "requirements.txt").is_file()
        if has_layer and not layer.is_dir():
            if self.stack.root == stacks.REPO_ROOT:
                raise TofuError(f"{layer} is missing: run `make setup` first (it builds the Lambda layer)")
            toolchain.build_layer(self.lib)
        if self.dir.exists():
            shutil.rmtree(self.dir)
        shutil.copytree(self.lib, self.dir, ignore=COPY_IGNORE)
        if has_layer:
            (self.dir / ".build").mkdir(exist_ok=True)
            (self.dir / ".build" / "layer").symlink_to(layer, target_is_directory=True)
        backend = self.state_backend()
        (self.dir / "zz_sandbox_override.tf").write_text(
            PROVIDER_OVERRIDE + (s3_backend_override(backend, self.endpoint_url) if backend else LOCAL_BACKEND_OVERRIDE))

    def _env(self) -> dict[str, str]:
        return {**os.environ, **toolchain.environment(), **offline_aws_env(self.endpoint_url),
                "TF_INPUT": "0"}

    def run(self, phase: str, *args: str, ok_codes: tuple[int, ...] = (0,),
            capture: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``tofu <args>`` with its output in logs/tofu-<phase>.log (stdout returned instead when
        ``capture``) and a progress line every 20 s."""
        self.paths.logs_dir.mkdir(parents=True, exist_ok=True)
        log = self.paths.logs_dir / f"tofu-{phase}.log"
        env = self._env()
        started = time.monotonic()
        done = threading.Event()

        def progress() -> None:
            while not done.wait(20):
                self.say(f"tofu {phase}: still running ({time.monotonic() - started:.0f}s, log {log})")

        threading.Thread(target=progress, daemon=True).start()
        try:
            with log.open("w") as out:
                out.write(f"$ tofu {' '.join(args)}\n")
                out.flush()
                result = subprocess.run([env["TOFU_BIN"], *args], cwd=self.dir, env=env,
                                        stdout=subprocess.PIPE if capture else out, stderr=out, text=True,
                                        check=False)
        finally:
            done.set()
        if result.returncode not in ok_codes:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise TofuError(f"tofu {phase} failed (exit {result.returncode}) after "
                            f"{time.monotonic() - started:.0f}s; last lines of {log}:\n{tail}")
        return result

    def state_backend(self) -> dict[str, str] | None:
        """bucket, key and region of the stack's S3 backend for this environment (None: local state)."""
        settings = self.stack.backend_file(self.env)
        if not settings.is_file():
            return None
        values = dict(_HCL_STRING.findall(settings.read_text()))
        missing = {"bucket", "key", "region"} - set(values)
        if missing:
            raise TofuError(f"{settings} lacks {sorted(missing)}")
        return values

    def init(self) -> None:
        """tofu init; a stack with an S3 backend first gets its state bucket in the sandbox's S3."""
        backend = self.state_backend()
        if backend:
            s3 = self._s3(backend["region"])
            if backend["bucket"] not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
                s3.create_bucket(Bucket=backend["bucket"], **({} if backend["region"] == "us-east-1" else {
                    "CreateBucketConfiguration": {"LocationConstraint": backend["region"]}}))
                s3.put_bucket_versioning(Bucket=backend["bucket"], VersioningConfiguration={"Status": "Enabled"})
        self.run("init", "init", "-input=false", "-no-color")

    def remove_state_bucket(self) -> bool:
        """After destroy: the S3 backend's bucket and every version in it; True when there was one."""
        backend = self.state_backend()
        if not backend:
            return False
        s3 = self._s3(backend["region"])
        if backend["bucket"] not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            return False
        _delete_versions(s3, backend["bucket"])
        s3.delete_bucket(Bucket=backend["bucket"])
        return True

    def _s3(self, region: str) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=region, aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    def apply(self) -> None:
        self.run("apply", "apply", "-auto-approve", "-input=false", "-no-color", f"-parallelism={PARALLELISM}",
                 *self.var_args)

    def plan_changes(self) -> bool:
        """Whether ``tofu plan -detailed-exitcode`` finds changes (False = the stack is in step)."""
        result = self.run("plan", "plan", "-detailed-exitcode", "-input=false", "-no-color", *self.var_args,
                          ok_codes=(0, 2))
        return result.returncode == 2

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.run("output", "output", "-json", "-no-color", capture=True).stdout)

    def state_resources(self) -> list[str]:
        """Addresses in the state (local, or the S3 backend's in the sandbox); [] before any apply."""
        if self.state_backend() is None and not (self.dir / "terraform.tfstate").exists():
            return []
        if not (self.dir / ".terraform").exists():
            return []
        result = self.run("state-list", "state", "list", "-no-color", capture=True)
        return [line for line in result.stdout.splitlines() if line]

    def destroy(self) -> None:
        self.run("destroy", "destroy", "-auto-approve", "-input=false", "-no-color", f"-parallelism={PARALLELISM}",
                 *self.var_args)


def _delete_versions(s3: Any, bucket: str) -> int:
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        versions = page.get("Versions", []) + page.get("DeleteMarkers", [])
        if versions:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [
                {"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]})
            deleted += len(versions)
    return deleted


def empty_buckets(client: Callable[[str], Any], keep: Iterable[str] = ()) -> int:
    """Delete every object version and delete marker in every bucket of the sandbox account but
    ``keep`` (the state bucket, which ``destroy`` still needs).

    The stack's data buckets refuse DeleteBucket while they hold objects (as on AWS); the
    sandbox's data is throwaway, so ``down`` empties them before ``tofu destroy``."""
    s3 = client("s3")
    kept = set(keep)
    return sum(_delete_versions(s3, bucket["Name"]) for bucket in s3.list_buckets()["Buckets"]
               if bucket["Name"] not in kept)


def s3_backend_override(backend: dict[str, str], endpoint_url: str) -> str:
    """The stack's S3 backend pointed at the sandbox (same bucket, key and region; S3-native lock)."""
    return f"""terraform {{
  backend "s3" {{
    bucket                      = "{backend['bucket']}"
    key                         = "{backend['key']}"
    region                      = "{backend['region']}"
    use_lockfile                = true
    use_path_style              = true
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_region_validation      = true
    endpoints = {{
      s3 = "{endpoint_url}"
    }}
  }}
}}
"""


def _names(response: dict[str, Any], key: str, field: str | None = None) -> list[str]:
    return [str(item[field]) if field else str(item) for item in response.get(key, [])]


def _customer_keys_in_use(client: Callable[[str], Any]) -> list[str]:
    """Customer-managed keys not scheduled for deletion. AWS-managed keys (``alias/aws/*``, which moto
    creates on first use as customer keys) belong to the account, not to the stack."""
    kms = client("kms")
    aws_managed = {a["TargetKeyId"] for a in kms.list_aliases()["Aliases"]
                   if a["AliasName"].startswith("alias/aws/") and a.get("TargetKeyId")}
    keys = []
    for key in kms.list_keys()["Keys"]:
        metadata = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
        if key["KeyId"] in aws_managed:
            continue
        if metadata.get("KeyManager") == "CUSTOMER" and metadata["KeyState"] != "PendingDeletion":
            keys.append(f"{key['KeyId']} ({metadata.get('Description') or 'no description'})")
    return keys


# Resources of global services: listed once, whatever region a client is for.
_GLOBAL_KINDS = ("s3 bucket", "iam role")


def remaining_resources(client: Callable[[str], Any], regions: Iterable[str] = ()) -> list[str]:
    """What a destroyed stack may have left in the account: one line per resource still there.
    ``client(service)`` is for the sandbox's own region; ``regions`` adds others to look in
    (``client(service, region)``), e.g. where a global table had replicas."""
    checks: list[tuple[str, Callable[[Any], list[str]]]] = [
        ("lambda function", lambda c: _names(c("lambda").list_functions(), "Functions", "FunctionName")),
        ("event source mapping", lambda c: _names(c("lambda").list_event_source_mappings(), "EventSourceMappings",
                                                  "UUID")),
        ("lambda layer", lambda c: _names(c("lambda").list_layers(), "Layers", "LayerName")),
        ("dynamodb table", lambda c: _names(c("dynamodb").list_tables(), "TableNames")),
        ("kinesis stream", lambda c: _names(c("kinesis").list_streams(), "StreamNames")),
        ("sqs queue", lambda c: _names(c("sqs").list_queues(), "QueueUrls")),
        ("sns topic", lambda c: _names(c("sns").list_topics(), "Topics", "TopicArn")),
        ("s3 bucket", lambda c: _names(c("s3").list_buckets(), "Buckets", "Name")),
        ("state machine", lambda c: _names(c("stepfunctions").list_state_machines(), "stateMachines", "name")),
        ("rest api", lambda c: _names(c("apigateway").get_rest_apis(), "items", "name")),
        ("event rule", lambda c: _names(c("events").list_rules(), "Rules", "Name")),
        ("log group", lambda c: _names(c("logs").describe_log_groups(), "logGroups", "logGroupName")),
        ("alarm", lambda c: _names(c("cloudwatch").describe_alarms(), "MetricAlarms", "AlarmName")),
        ("replication group", lambda c: _names(c("elasticache").describe_replication_groups(), "ReplicationGroups",
                                                "ReplicationGroupId")),
        ("db cluster", lambda c: _names(c("rds").describe_db_clusters(), "DBClusters", "DBClusterIdentifier")),
        ("db instance", lambda c: _names(c("rds").describe_db_instances(), "DBInstances", "DBInstanceIdentifier")),
        ("secret", lambda c: _names(c("secretsmanager").list_secrets(), "SecretList", "Name")),
        ("glue database", lambda c: _names(c("glue").get_databases(), "DatabaseList", "Name")),
        ("athena workgroup", lambda c: [n for n in _names(c("athena").list_work_groups(), "WorkGroups", "Name")
                                        if n != "primary"]),
        ("kms key", _customer_keys_in_use),
        ("vpc", lambda c: [v["VpcId"] for v in c("ec2").describe_vpcs()["Vpcs"] if not v.get("IsDefault")]),
        ("iam role", lambda c: [r["RoleName"] for r in c("iam").list_roles()["Roles"]
                                if not r["Path"].startswith("/aws-service-role/")]),
    ]
    found = []
    for kind, check in checks:
        found += [f"{kind}: {name}" for name in check(client)]
    for region in regions:
        in_region = functools.partial(client, region=region)
        for kind, check in checks:
            if kind not in _GLOBAL_KINDS:
                found += [f"{kind} ({region}): {name}" for name in check(in_region)]
    return found
