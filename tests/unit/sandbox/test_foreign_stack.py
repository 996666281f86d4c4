"""``sandbox up --stack DIR`` takes any directory whose lib/ holds *.tf, inside the repository or not:
no layer, no tfvars, none of our variables, an empty ``backend "s3" {}`` (no ``backend/<env>.hcl``:
the sandbox keeps its state locally)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest

from tapharness import stacks
from tapharness.sandbox import cli
from tapharness.sandbox.deploy import StackDeployment
from tapharness.sandbox.state import SandboxPaths, SandboxState

FOREIGN = Path(__file__).parent / "foreign_stack"


@pytest.fixture
def own_sandboxes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TAPSTACK_SANDBOX_DIR", str(tmp_path / "sandboxes"))
    return tmp_path


@pytest.mark.slow
def test_a_stack_of_nobodys_conventions_outside_the_repository_deploys_runs_and_tears_down(own_sandboxes: Path) -> None:
    root = shutil.copytree(FOREIGN, own_sandboxes / "greeter")
    assert cli.main(["up", "--stack", str(root)]) == 0
    try:
        paths = SandboxPaths.for_env("dev", "greeter")
        state = SandboxState.load(paths)
        assert state is not None
        deployed = StackDeployment(paths, "dev", state.endpoint_url, say=lambda _: None, stack=stacks.resolve(str(root)))
        assert deployed.declared == {"region", "greeting"}  # as tofu graph lists them: no deletion_protection
        outputs = json.loads(paths.outputs_file.read_text())
        client = {"endpoint_url": state.endpoint_url, "region_name": "us-east-1",
                  "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        answer = boto3.client("lambda", **client).invoke(FunctionName=outputs["function_name"]["value"],
                                                         Payload=json.dumps({"name": "sandbox"}))
        assert json.loads(answer["Payload"].read()) == {"said": "hello, sandbox!"}
        item = boto3.client("dynamodb", **client).get_item(TableName=outputs["table"]["value"],
                                                           Key={"name": {"S": "sandbox"}})["Item"]
        assert item["said"] == {"S": "hello, sandbox!"}
    finally:
        assert cli.main(["down", "--stack", str(root)]) == 0


def test_a_directory_without_configuration_is_refused_in_one_line_naming_what_is_missing(
        own_sandboxes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = own_sandboxes / "empty"
    (empty / "lib").mkdir(parents=True)
    assert cli.main(["up", "--stack", str(empty)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "lib/ holds its *.tf" in error, error
