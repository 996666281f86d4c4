"""The toolchain the whole suite stands on: OpenTofu and providers from the local mirror."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tapharness import toolchain

ROOT = toolchain.ROOT


def _tofu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "bin" / "tofu"), *args], cwd=ROOT, capture_output=True, text=True,
                          check=False)


def test_wrapper_runs_opentofu_at_the_pinned_version() -> None:
    version = json.loads(_tofu("version", "-json").stdout)
    assert version["terraform_version"] == toolchain.OPENTOFU_VERSION, version


def test_cli_config_resolves_hashicorp_providers_from_the_local_mirror_only() -> None:
    config = Path(toolchain.environment()["TF_CLI_CONFIG_FILE"]).read_text()
    assert f'path    = "{toolchain.CACHE / "mirror"}"' in config
    assert 'exclude = ["registry.opentofu.org/hashicorp/*"' in config


def test_mirror_holds_the_pinned_aws_and_archive_providers() -> None:
    base = toolchain.CACHE / "mirror" / "registry.opentofu.org" / "hashicorp"
    for name, version in (("aws", toolchain.AWS_PROVIDER_VERSION), ("archive", toolchain.ARCHIVE_PROVIDER_VERSION)):
        package = base / name / version / toolchain._platform()
        binaries = list(package.glob(f"terraform-provider-{name}*"))
        assert binaries, f"no {name} provider binary in {package}"


def test_working_copy_uses_the_pinned_providers(workspace) -> None:
    selections = workspace.json_answer("version", "-json")["provider_selections"]
    assert selections == {
        "registry.opentofu.org/hashicorp/aws": toolchain.AWS_PROVIDER_VERSION,
        "registry.opentofu.org/hashicorp/archive": toolchain.ARCHIVE_PROVIDER_VERSION,
    }


def test_every_stack_is_tofu_fmt_clean() -> None:
    result = _tofu("fmt", "-check", "-recursive", "-diff", "lib", "stacks")
    assert result.returncode == 0, f"tofu fmt would change:\n{result.stdout}{result.stderr}"


def test_configuration_is_valid(workspace) -> None:
    report = workspace.json_answer("validate", "-json")
    assert report["valid"], json.dumps(report["diagnostics"], indent=2)
    assert report["warning_count"] == 0, json.dumps(report["diagnostics"], indent=2)


def test_archive_provider_go_tests_pass() -> None:
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain: tools/archive-provider is only built (and tested) where Go exists")
    result = subprocess.run(["go", "test", "./..."], cwd=ROOT / "tools" / "archive-provider",
                            env={**os.environ, "GOFLAGS": "-mod=mod"}, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_python_sources_are_ruff_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_wrapper_works_with_itself_on_path() -> None:
    env = {**os.environ, "PATH": f"{ROOT / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("TOFU_BIN", None)
    result = subprocess.run(["tofu", "version"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 0 and "OpenTofu" in result.stdout, result.stdout + result.stderr


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_every_package_of_the_harness_venv_is_the_version_the_lock_pins() -> None:
    """A package the lock does not pin, or pins at another version, is one a fresh machine may
    install differently (a newer botocore once broke every Athena call against moto)."""
    from importlib import metadata

    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in metadata.distributions()}
    installed = {name: version for name, version in installed.items() if name not in ("pip", "setuptools", "wheel")}
    pins = _pins(ROOT / "requirements.lock")
    differing = {name: (version, pins.get(name)) for name, version in installed.items() if pins.get(name) != version}
    assert differing == {}, f"installed vs requirements.lock: {differing}"


def test_every_requirement_is_pinned_in_the_lock_at_its_own_version() -> None:
    pins = _pins(ROOT / "requirements.lock")
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert pins.get(name.split("[")[0].lower()) == version, f"{line} is not what requirements.lock pins"
