"""The sign-off of one stack: its own suites, its own sandbox, the stack named in every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tapharness import signoff, stacks


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    ran: list[tuple[list[str], dict[str, str]]] = []

    def record(step: signoff.Step, command: list[str], timeout: float, env: dict[str, str] | None = None) -> signoff.Step:
        ran.append((command, env or {}))
        step.returncode = 0
        return step

    monkeypatch.setattr(signoff, "run_step", record)
    monkeypatch.setattr(signoff.SignOff, "_iam_report", lambda self, env, directory: None)
    monkeypatch.setattr(signoff.SignOff, "_network_report", lambda self, env, directory: None)
    monkeypatch.setattr(signoff.SignOff, "_alarms_report", lambda self, env, directory: None)
    return ran


def stack_under_test(tmp_path: Path) -> stacks.Stack:
    root = tmp_path / "hotel_booking"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "tap_stack.tf").write_text("")
    return stacks.Stack("hotel_booking", root)


def test_the_unit_suite_is_the_stacks_own_and_runs_with_the_stack_selected(tmp_path, commands) -> None:
    stack = stack_under_test(tmp_path)
    signoff.SignOff(tmp_path / "reports", "2", False, (), stack).unit()
    [(command, env)] = commands
    assert str(stack.root / "tests" / "unit") in command
    assert env[stacks.ENV_VAR] == "hotel_booking"


def test_every_sandbox_command_and_the_integration_suite_name_the_stack(tmp_path, commands) -> None:
    stack = stack_under_test(tmp_path)
    signoff.SignOff(tmp_path / "reports", "2", False, (), stack).integration("dev")
    sandbox_commands = [c for c, _ in commands if "tapharness.sandbox" in c]
    assert [c[c.index("tapharness.sandbox") + 1] for c in sandbox_commands] == ["up", "down"]
    assert all(c[c.index("--stack") + 1] == "hotel_booking" for c in sandbox_commands)
    [(suite, env)] = [(c, e) for c, e in commands if "pytest" in c]
    assert str(stack.root / "tests" / "integration") in suite
    assert (env[stacks.ENV_VAR], env["TAPSTACK_ENV"]) == ("hotel_booking", "dev")


def test_the_default_stacks_suites_are_the_repository_roots() -> None:
    assert signoff.SignOff(Path("reports"), "2", False, ())._tests("unit") == "tests/unit"



def test_the_summary_lists_the_alarms_that_fired_and_those_never_reported(tmp_path) -> None:
    run = signoff.SignOff(tmp_path / "reports", "2", False, (), stack_under_test(tmp_path))
    run.alarms["dev"] = [
        {"alarm": "parked", "state": "ALARM", "metric_reported": True,
         "changes": [{"at": "2026-12-07T11:00:00+00:00", "from": "INSUFFICIENT_DATA", "to": "OK"},
                     {"at": "2026-12-07T11:03:00+00:00", "from": "OK", "to": "ALARM"}]},
        {"alarm": "quiet", "state": "OK", "metric_reported": True,
         "changes": [{"at": "2026-12-07T11:00:00+00:00", "from": "INSUFFICIENT_DATA", "to": "OK"}]},
        {"alarm": "db-load", "state": "INSUFFICIENT_DATA", "metric_reported": False, "changes": []},
    ]
    summary = signoff.render(run, signoff.datetime.now(signoff.UTC), 60)
    assert "## Alarms (dev): 1 of 3 fired during the run" in summary
    assert "| parked | 2026-12-07T11:03:00+00:00 | ALARM |" in summary
    assert "made it): db-load" in summary


def test_a_refused_network_path_fails_the_sign_off_and_the_summary_names_what_is_missing(tmp_path, monkeypatch) -> None:
    report = {"refused": 1, "functions": {"writer": {
        "used": {"aws:dynamodb": "gateway endpoint vpce-1 (route table rtb-1)"},
        "refused": {"host:redis.example": {"missing": "no ingress rule of redis's security groups", "attempts": 3}}}}}

    def network_command(step: signoff.Step, command: list[str], timeout: float, env: dict[str, str] | None = None):
        assert step.log is not None
        step.log.parent.mkdir(parents=True, exist_ok=True)
        step.log.write_text(json.dumps(report))
        step.returncode = 1  # `sandbox network` exits 1 on a refused path
        return step

    monkeypatch.setattr(signoff, "run_step", network_command)
    run = signoff.SignOff(tmp_path / "reports", "2", False, (), stack_under_test(tmp_path))
    run._network_report("dev", tmp_path / "reports" / "dev")
    assert not run.passed
    summary = signoff.render(run, signoff.datetime.now(signoff.UTC), 60)
    assert "## Network (dev): 1 refused path(s), 1 path(s) used" in summary
    assert "| writer | host:redis.example | 3 | no ingress rule of redis's security groups |" in summary
    assert json.loads((tmp_path / "reports" / "dev" / "network.json").read_text()) == report
