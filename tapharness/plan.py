"""Plan once, ask many questions: a working copy of lib/, real `tofu plan` runs and their summaries.

A plan needs no AWS account: it runs against a moto server (``AWS_ENDPOINT_URL``) with
dummy credentials, so the provider's own calls and the stack's data sources
(availability zones, caller identity, partition, random passwords) are answered by a
real API instead of being skipped.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tftest

from tapharness import memo, stacks, toolchain
from tapharness.stacks import Stack

ENVS = ("dev", "staging", "prod")
RESOURCE_REF = re.compile(r'^[a-z0-9_]+\.[A-Za-z0-9_-]+(\["[^"]*"\])?')
# What a working copy never takes from lib/: local state, init artefacts, build output.
COPY_IGNORE = shutil.ignore_patterns(".build", ".terraform", "terraform.tfstate*", ".terraform.lock.hcl", "*.zip",
                                     "__pycache__", "*.pyc")


LOCAL_BACKEND_OVERRIDE = """\
# Written by tapharness.plan (plan working copy only, never in lib/): state stays local.
terraform {
  backend "local" {}
}
"""


def offline_aws_env(endpoint: str) -> dict[str, str]:
    """Environment for a provider talking to a local moto server instead of an account."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@dataclass(frozen=True)
class PlanSummary:
    """The parts of a plan the tests ask about, keyed by resource address."""

    env: str
    values: dict[str, dict[str, Any]]
    types: dict[str, str]
    unknown: dict[str, dict[str, Any]]
    outputs: dict[str, Any]
    variables: dict[str, Any]
    data: dict[str, dict[str, Any]] = field(repr=False)
    references: dict[str, dict[str, list[str]]] = field(repr=False)
    raw: dict[str, Any] = field(repr=False)

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.types.values())

    def of_type(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {addr: self.values[addr] for addr, t in self.types.items() if t == rtype}

    def refs(self, address: str, attribute: str) -> list[str]:
        """Addresses an attribute's expression refers to (from the configuration, per resource block)."""
        block = address.split("[", 1)[0]
        return self.references.get(block, {}).get(attribute, [])

    def targets(self, address: str, attribute: str) -> set[str]:
        """Resource instances an attribute of one instance refers to.

        A reference like `aws_sqs_queue.consumer` next to `each.key` resolves to the
        instance with this instance's own key; `x.y["k"]` resolves to itself.
        """
        refs = self.refs(address, attribute)
        key = address[len(address.split("[", 1)[0]):]
        found: set[str] = set()
        for ref in refs:
            if ref.startswith(("var.", "local.", "each.", "data.", "path.", "count.")):
                continue
            match = RESOURCE_REF.match(ref)
            if not match:
                continue
            base = match.group(0)
            if "[" in base or base in self.types:
                found.add(base)
            elif "each.key" in refs and f"{base}{key}" in self.types:
                found.add(f"{base}{key}")
        return found


def _walk_modules(module: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(module.get("resources", []))
    for child in module.get("child_modules", []):
        found += _walk_modules(child)
    return found


def _config_references(raw: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}

    def collect(expr: Any) -> list[str]:
        refs: list[str] = []
        if isinstance(expr, dict):
            refs += expr.get("references", [])
            for value in expr.values():
                if isinstance(value, (dict, list)):
                    refs += collect(value)
        elif isinstance(expr, list):
            for item in expr:
                refs += collect(item)
        return refs

    for resource in raw.get("configuration", {}).get("root_module", {}).get("resources", []):
        out[resource["address"]] = {name: collect(expr) for name, expr in resource.get("expressions", {}).items()}
    return out


def summarize(env: str, raw: dict[str, Any]) -> PlanSummary:
    values: dict[str, dict[str, Any]] = {}
    types: dict[str, str] = {}
    for resource in _walk_modules(raw.get("planned_values", {}).get("root_module", {})):
        if resource.get("mode") == "managed":
            values[resource["address"]] = resource.get("values", {})
            types[resource["address"]] = resource["type"]
    unknown = {rc["address"]: rc["change"].get("after_unknown") or {}
               for rc in raw.get("resource_changes", []) if rc.get("mode") == "managed"}
    outputs = {name: out.get("value") for name, out in raw.get("planned_values", {}).get("outputs", {}).items()}
    # Data sources read during the plan sit in prior_state; those deferred to apply
    # (their inputs are unknown) are "read" changes with their known parts in `after`.
    data = {r["address"]: r.get("values", {})
            for r in _walk_modules(raw.get("prior_state", {}).get("values", {}).get("root_module", {}))
            if r.get("mode") == "data"}
    data.update({rc["address"]: rc["change"].get("after") or {}
                 for rc in raw.get("resource_changes", []) if rc.get("mode") == "data"})
    variables = {name: v.get("value") for name, v in raw.get("variables", {}).items()}
    return PlanSummary(env, values, types, unknown, outputs, variables, data, _config_references(raw), raw)


def tofu_environ() -> dict[str, str]:
    """This process's environment without what would change a plan behind the memo's back
    (``TF_VAR_*`` values, ``TF_CLI_ARGS*`` options): a plan reads only the stack's files."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("TF_VAR_", "TF_CLI_ARGS"))}


def _hcl(value: Any) -> str:
    """A -var value as OpenTofu reads it: bools lowercase, lists and maps as JSON, the rest as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


class Workspace:
    """An initialised working copy of a stack's lib/ (so state, locks and zips never land in the repo)."""

    def __init__(self, directory: Path, aws_env: dict[str, str], stack: Stack | None = None) -> None:
        self.dir = directory
        self.stack = stack or stacks.resolve()
        if directory.exists():
            shutil.rmtree(directory)
        shutil.copytree(self.stack.lib, directory, ignore=COPY_IGNORE)
        # The Lambda layer is built by `make setup` under lib/.build; link it rather than copy it.
        layer = self.stack.lib / ".build" / "layer"
        if not layer.is_dir():
            raise RuntimeError(f"{layer} is missing: run `make setup` first")
        (directory / ".build").mkdir(exist_ok=True)
        (directory / ".build" / "layer").symlink_to(layer, target_is_directory=True)
        # A stack's remote-state backend (S3, configured per environment at init) is replaced by
        # local state: plans need no bucket, and a stack without a backend keeps the default.
        (directory / "zz_plan_override.tf").write_text(LOCAL_BACKEND_OVERRIDE)
        self.env = {**toolchain.environment(), **aws_env}
        self.binary = self.env["TOFU_BIN"]
        self.tf = tftest.TerraformTest(str(directory), binary=self.binary, env=self.env)
        self.tf.setup(cleanup_on_exit=False)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run tofu without raising, for tests that expect failures or exit codes."""
        return subprocess.run([self.binary, *args], cwd=self.dir, env={**tofu_environ(), **self.env},
                              capture_output=True, text=True, check=False)

    def validation_errors(self, env: str, overrides: dict[str, str]) -> tuple[int, list[str]]:
        """Plan ``env`` with ``overrides`` (-var NAME=HCL literal); (exit code, each error's detail)."""
        args = [arg for name, value in overrides.items() for arg in ("-var", f"{name}={value}")]
        result = self.run("plan", "-input=false", "-refresh=false", "-json", "-lock=false",
                          f"-var-file={self.stack.tfvars_file(env)}", *args)
        messages = []
        for line in result.stdout.splitlines():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("type") == "diagnostic" and message["diagnostic"]["severity"] == "error":
                messages.append(message["diagnostic"].get("detail", "").split("\n\nThis was checked")[0])
        return result.returncode, messages

    def plan(self, env: str, tf_vars: dict[str, Any] | None = None) -> PlanSummary:
        """Plan ``env``'s tfvars with ``tf_vars`` on top: the -var options come after -var-file, because
        OpenTofu lets the last one win (tftest puts them before, so the file's values won)."""
        overrides = [arg for name, value in (tf_vars or {}).items() for arg in ("-var", f"{name}={_hcl(value)}")]
        plan_file = f"plan-{env}-{os.getpid()}.tfplan"
        planned = self.run("plan", "-input=false", "-no-color", "-lock=false", f"-out={plan_file}",
                           f"-var-file={self.stack.tfvars_file(env)}", *overrides)
        if planned.returncode != 0:
            raise RuntimeError(f"tofu plan of {env} with {tf_vars} failed:\n{planned.stderr[-4000:]}")
        shown = self.run("show", "-json", plan_file)
        (self.dir / plan_file).unlink(missing_ok=True)
        return summarize(env, json.loads(shown.stdout))


_IGNORED_DIRS = {".build", ".terraform", "__pycache__"}


def _plan_inputs(directory: Path) -> list[Path]:
    """The files of a lib/ a working copy takes (what COPY_IGNORE leaves)."""
    return [path for path in directory.rglob("*") if path.is_file()
            and not _IGNORED_DIRS & set(path.relative_to(directory).parts[:-1])
            and not COPY_IGNORE(str(path.parent), [path.name])]


def _built_layer(stack: Stack) -> list[Path]:
    """The first-party packages of the layer the plan zips, as built (tap_common, the stack's
    *_common): a change not yet built by ``make setup`` is not planned under the new sources' key."""
    built = stack.lib / ".build" / "layer" / "python"
    return sorted(path for package in built.glob("*_common") if package.is_dir()
                  for path in package.rglob("*.py") if "__pycache__" not in path.parts)


@functools.cache
def stack_digest(stack: Stack) -> str:
    """The content hash of everything a plan of ``stack`` depends on: its lib/ and tfvars/, the
    packages of its built layer, the toolchain's versions (OpenTofu, providers and their sources,
    moto answering the provider) and the code that plans."""
    here = Path(__file__).resolve().parent
    harness = [here / "plan.py", here / "offline_aws.py", here / "sandbox" / "asl.py"]
    archive_provider = toolchain.ROOT / "tools" / "archive-provider"
    versions = [toolchain.OPENTOFU_VERSION, toolchain.AWS_PROVIDER_VERSION, toolchain.ARCHIVE_PROVIDER_VERSION,
                toolchain.environment()["TOFU_BIN"], importlib.metadata.version("moto"),
                memo.files_digest(toolchain.ROOT, [p for p in archive_provider.iterdir() if p.is_file()])]
    layer = stack.lib / ".build" / "layer" / "python"
    return memo.digest([*versions, memo.files_digest(stack.lib, _plan_inputs(stack.lib)),
                        memo.files_digest(layer, _built_layer(stack)) if layer.is_dir() else "no layer",
                        memo.files_digest(stack.root, sorted(stack.tfvars.glob("*.tfvars"))),
                        *(memo.files_digest(toolchain.ROOT, [path]) for path in harness)])


class Planner:
    """Plans and validation errors of a stack, answered from ``memo`` while the stack is unchanged:
    an initialised ``Workspace`` is made only when something must really run."""

    def __init__(self, stack: Stack, workspace_factory: Callable[[], Workspace]) -> None:
        self.stack = stack
        self._workspace = workspace_factory

    def _key(self, *parts: Any) -> str:
        return memo.digest([stack_digest(self.stack), json.dumps(parts, sort_keys=True)])

    def plan(self, env: str, tf_vars: dict[str, Any] | None = None) -> PlanSummary:
        raw = memo.get("plan", self._key(env, tf_vars), lambda: self._workspace().plan(env, tf_vars).raw)
        return summarize(env, raw)

    def validation_errors(self, env: str, overrides: dict[str, str]) -> tuple[int, list[str]]:
        """Plan ``env`` with ``overrides`` (-var NAME=HCL literal); (exit code, each error's detail)."""
        code, messages = memo.get("validation", self._key(env, overrides),
                                  lambda: self._workspace().validation_errors(env, overrides))
        return code, messages

    def json_answer(self, *args: str) -> dict[str, Any]:
        """The JSON a read-only ``tofu`` command (``validate -json``, ``version -json``) prints in the
        working copy: a function of the stack and the toolchain, so answered from the memo as plans are."""
        return json.loads(memo.get("tofu-json", self._key(*args), lambda: self._workspace().run(*args).stdout))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run tofu in the working copy (never from the memo)."""
        return self._workspace().run(*args)
