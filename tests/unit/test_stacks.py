"""Several stacks, one harness: every path derives from a stack root, and nothing two stacks keep
(plans, sandboxes) is shared between them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapharness import stacks
from tapharness.sandbox import cli
from tapharness.sandbox.state import SandboxPaths


def make_stack(parent: Path, name: str) -> Path:
    root = parent / name
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "tap_stack.tf").write_text("# a stack\n")
    return root


@pytest.fixture(autouse=True)
def no_stack_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(stacks.ENV_VAR, raising=False)


def test_the_repository_root_is_the_default_stack() -> None:
    stack = stacks.resolve()
    assert (stack.name, stack.root) == (stacks.DEFAULT_STACK, stacks.REPO_ROOT)
    assert stack.lib.joinpath("tap_stack.tf").is_file()
    assert stack.tfvars_file("dev").is_file()
    assert stack.inventory_file.is_file()


def test_each_directory_under_stacks_with_a_stack_file_is_a_stack_of_its_name(tmp_path: Path) -> None:
    make_stack(tmp_path, "hotel_booking")
    (tmp_path / "notes").mkdir()
    assert list(stacks.registry(tmp_path)) == [stacks.DEFAULT_STACK, "hotel_booking"]
    assert stacks.resolve("hotel_booking", tmp_path).lib == tmp_path / "hotel_booking" / "lib"


def test_the_environment_variable_picks_the_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_stack(tmp_path, "clickstream")
    monkeypatch.setenv(stacks.ENV_VAR, "clickstream")
    assert stacks.resolve(None, tmp_path).name == "clickstream"


def test_a_stack_directory_is_named_after_it_unless_it_is_a_known_stack(tmp_path: Path) -> None:
    copy = make_stack(tmp_path, "scratch")
    assert stacks.resolve(str(copy)).name == "scratch"
    assert stacks.resolve(str(stacks.REPO_ROOT)).name == stacks.DEFAULT_STACK


def test_an_unknown_stack_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(stacks.UnknownStack, match=stacks.DEFAULT_STACK):
        stacks.resolve("no_such_stack")


def test_the_sandbox_commands_refuse_an_unknown_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--stack", "no_such_stack"]) == 2
    assert "no stack 'no_such_stack'" in capsys.readouterr().err


def test_sandboxes_of_two_stacks_in_one_env_have_their_own_directories() -> None:
    assert SandboxPaths.for_env("dev", "video_streaming").base != SandboxPaths.for_env("dev", "hotel_booking").base
    assert SandboxPaths.for_env("dev").base.parts[-2:] == (stacks.DEFAULT_STACK, "dev")
