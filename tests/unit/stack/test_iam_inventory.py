"""Least privilege both ways: each function's role grants exactly what docs/iam_inventory.yaml says it needs."""

from tapharness.checks.iam_inventory import (
    test_actions_without_a_resource_type_are_granted_on_every_resource,
    test_inventory_lists_every_function_of_the_stack,
    test_inventory_lists_the_kms_actions_aws_checks_for_the_functions_calls,
    test_inventory_names_only_actions_of_the_authorization_reference,
    test_role_grants_every_action_its_function_needs,
    test_role_grants_no_action_its_function_does_not_need,
)

__all__ = [
    "test_actions_without_a_resource_type_are_granted_on_every_resource",
    "test_inventory_lists_every_function_of_the_stack",
    "test_inventory_lists_the_kms_actions_aws_checks_for_the_functions_calls",
    "test_inventory_names_only_actions_of_the_authorization_reference",
    "test_role_grants_every_action_its_function_needs",
    "test_role_grants_no_action_its_function_does_not_need",
]
