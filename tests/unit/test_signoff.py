"""The sign-off of one stack: its own suites, its own sandbox, the stack named in every command."""

from __future__ import annotations

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
