"""Plans answered from the memo: the same for an unchanged stack, planned again after any change to
what a plan depends on (two stacks whose files differ never share one)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tapharness import memo
from tapharness.plan import Planner, stack_digest, tofu_environ
from tapharness.stacks import Stack


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memo, "ROOT", tmp_path / "memo")
    monkeypatch.delenv("TAPSTACK_MEMO", raising=False)
    stack_digest.cache_clear()


def make_stack(parent: Path, name: str) -> Stack:
    root = parent / name
    (root / "lib" / "lambdas" / "fn").mkdir(parents=True)
    (root / "tfvars").mkdir()
    (root / "lib" / "tap_stack.tf").write_text("# a stack\n")
    (root / "lib" / "lambdas" / "fn" / "handler.py").write_text("def handler(e, c):\n    return 1\n")
    (root / "tfvars" / "dev.tfvars").write_text('env = "dev"\n')
    return Stack(name, root)


class Counting:
    """A workspace factory whose plans say which stack and how many plans it has made."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.plans = 0

    def __call__(self) -> Any:
        def plan(env: str, tf_vars: dict[str, Any] | None = None) -> Any:
            self.plans += 1
            return SimpleNamespace(raw={"variables": {"stack": {"value": self.stack.name}, "n": {"value": self.plans}}})

        return SimpleNamespace(plan=plan)


def planned(stack: Stack, factory: Callable[[], Any]) -> dict[str, Any]:
    return Planner(stack, factory).plan("dev").variables


def test_an_unchanged_stack_is_not_planned_again(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, "one")
    factory = Counting(stack)
    assert planned(stack, factory) == planned(stack, factory) == {"stack": "one", "n": 1}
    assert factory.plans == 1


@pytest.mark.parametrize("changed", ["lib/tap_stack.tf", "lib/lambdas/fn/handler.py", "tfvars/dev.tfvars"])
def test_a_change_to_what_the_plan_reads_plans_again(tmp_path: Path, changed: str) -> None:
    stack = make_stack(tmp_path, "one")
    factory = Counting(stack)
    planned(stack, factory)
    (stack.root / changed).write_text((stack.root / changed).read_text() + "# changed\n")
    stack_digest.cache_clear()
    assert planned(stack, factory)["n"] == 2


def test_build_output_and_bytecode_do_not_count_as_changes(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, "one")
    before = stack_digest(stack)
    (stack.lib / ".build").mkdir()
    (stack.lib / ".build" / "layer.zip").write_bytes(b"zip")
    (stack.lib / "lambdas" / "fn" / "__pycache__").mkdir()
    (stack.lib / "lambdas" / "fn" / "__pycache__" / "handler.cpython-312.pyc").write_bytes(b"pyc")
    stack_digest.cache_clear()
    assert stack_digest(stack) == before


def test_two_stacks_whose_files_differ_keep_their_own_plans(tmp_path: Path) -> None:
    first, second = make_stack(tmp_path, "first"), make_stack(tmp_path, "second")
    (second.lib / "tap_stack.tf").write_text("# another stack\n")
    assert planned(first, Counting(first))["stack"] == "first"
    assert planned(second, Counting(second))["stack"] == "second"


def test_a_layer_built_from_older_sources_is_part_of_the_key(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, "one")
    built = stack.lib / ".build" / "layer" / "python" / "tap_common"
    built.mkdir(parents=True)
    (built / "config.py").write_text("OLD = 1\n")
    before = stack_digest(stack)
    (built / "config.py").write_text("NEW = 1\n")  # `make setup` rebuilt the layer
    stack_digest.cache_clear()
    assert stack_digest(stack) != before


def test_tf_var_values_in_the_environment_never_reach_a_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_VAR_env", "prod")
    monkeypatch.setenv("TF_CLI_ARGS_plan", "-var=env=prod")
    assert not {k for k in tofu_environ() if k.startswith(("TF_VAR_", "TF_CLI_ARGS"))}


def test_with_the_memo_off_each_run_plans_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = make_stack(tmp_path, "one")
    factory = Counting(stack)
    monkeypatch.setenv("TAPSTACK_MEMO", "off")
    for run in ("run-a", "run-b"):
        monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", run)
        planned(stack, factory)
        planned(stack, factory)
    assert factory.plans == 2


def test_an_entry_unread_for_a_week_is_removed(tmp_path: Path) -> None:
    memo.get("kind", "old", lambda: 1)
    old = memo.ROOT / "kind" / "old.json"
    stale = old.stat().st_mtime - (memo.KEEP_DAYS + 1) * 86_400
    os.utime(old, (stale, stale))
    memo.get("kind", "new", lambda: 2)
    assert not old.exists()
    assert memo.get("kind", "new", lambda: 3) == 2
