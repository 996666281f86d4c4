"""The sandbox sets only variables the stack declares (its sandbox.yaml against the plan)."""

from __future__ import annotations

from tapharness.plan import PlanSummary
from tapharness.sandbox.adapter import Adapter
from tapharness.stacks import Stack


def test_the_sandbox_sets_only_variables_the_stack_declares(dev: PlanSummary, stack: Stack) -> None:
    adapter = Adapter.load(stack)
    undeclared = (set(adapter.vars) | set(adapter.integration_vars)) - set(dev.variables)
    assert not undeclared, f"sandbox.yaml sets {sorted(undeclared)}, which the stack does not declare"
