"""checkov finds nothing on any environment's plan, except the skips the stack's .checkov.yaml explains."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tapharness import memo, toolchain
from tapharness.plan import PlanSummary
from tapharness.stacks import Stack


def _config(stack: Stack) -> Path:
    """The stack's checkov configuration, beside its lib/."""
    return stack.root / ".checkov.yaml"


def _skips(config: Path) -> dict[str, str]:
    skips: dict[str, str] = {}
    in_list = False
    for line in config.read_text().splitlines():
        if line.startswith("skip-check:"):
            in_list = True
            continue
        if in_list and (match := re.match(r"\s+-\s+(CKV2?_\w+)\s*(?:#\s*(.*))?$", line)):
            skips[match.group(1)] = (match.group(2) or "").strip()
        elif in_list and line and not line.startswith(" "):
            in_list = False
    return skips


def test_every_checkov_skip_has_a_reason(stack: Stack) -> None:
    unexplained = [check for check, reason in _skips(_config(stack)).items() if len(reason.split()) < 3]
    assert not unexplained, f"skips without a one-line reason in {_config(stack)}: {unexplained}"


def _checkov_report(plan: PlanSummary, config: Path, plan_file: Path) -> dict[str, Any]:
    """checkov's JSON report of the plan, kept in the memo per (plan, configuration, checkov version)."""
    def scan() -> dict[str, Any]:
        plan_file.write_text(json.dumps(plan.raw))
        checkov = Path((toolchain.CACHE / "checkov-bin").read_text())
        result = subprocess.run(
            [str(checkov), "-f", str(plan_file), "--config-file", str(config), "-o", "json", "--compact",
             "--skip-download"],
            capture_output=True, text=True, check=False)
        return {"report": json.loads(result.stdout), "stderr": result.stderr[-2000:]}

    key = memo.digest([json.dumps(plan.raw, sort_keys=True), config.read_bytes(),
                       (toolchain.ROOT / "requirements-checkov.txt").read_bytes()])
    return memo.get("checkov", key, scan)


@pytest.mark.plan
@pytest.mark.slow
def test_checkov_finds_no_failed_check(plan: PlanSummary, stack: Stack, tmp_path: Path) -> None:
    scanned = _checkov_report(plan, _config(stack), tmp_path / f"{plan.env}.plan.json")
    report = scanned["report"]
    reports = report if isinstance(report, list) else [report]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}"
              for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    passed = sum(len(r.get("results", {}).get("passed_checks", [])) for r in reports)
    assert passed > 0, f"checkov evaluated nothing on the {plan.env} plan:\n{scanned['stderr']}"
    assert not failed, f"{len(failed)} failed checks on {plan.env}:\n" + "\n".join(sorted(failed))
