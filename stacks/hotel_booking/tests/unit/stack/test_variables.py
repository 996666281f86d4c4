"""Bad variables fail the plan early, with a message that names the variable."""

from __future__ import annotations

import re

import pytest

from tapharness.checks.variables import (
    test_the_sandbox_sets_only_variables_the_stack_declares,
)
from tapharness.plan import Planner

pytestmark = pytest.mark.plan

__all__ = ["test_the_sandbox_sets_only_variables_the_stack_declares"]

# One representative invalid value per validated variable (HCL literal syntax).
INVALID = {
    "aws_region": '"moon-base-1"',
    "project_name": '"Global Booking"',
    "environment": '"qa"',
    "tags": '{ Owner = "" }',
    "vpc_cidr": '"10.60.0.0/40"',
    "num_availability_zones": "1",
    "public_subnet_cidrs": '["10.60.0.0/24", "nope"]',
    "private_subnet_cidrs": '["10.60.16.0/20", "10.60.300.0/20"]',
    "booking_api_rate_limit_rps": "0",
    "booking_api_burst_limit": "10.5",
    "booking_client_principals": '["*"]',
    "max_nights": "50",
    "dynamodb_table_name": '"x"',
    "dynamodb_replica_regions": '["eu-west-1", "eu-west-1"]',
    "hold_ttl_seconds": "30",
    "booking_retention_days": "7",
    "lambda_runtime": '"nodejs20.x"',
    "lambda_memory_mb": '{ booking_handler = 64 }',
    "lambda_timeout_seconds": "901",
    "cache_node_type": '"m5.large"',
    "cache_num_nodes": "0",
    "cache_ttl_seconds": "10",
    "pms_integrations": '{ "Bad Name" = { endpoint_url = "ftp://pms", max_concurrency = 1 } }',
    "pms_queue_visibility_timeout_seconds": "43201",
    "pms_max_retries": "11",
    "pms_backoff_base_ms": "1",
    "circuit_failure_threshold": "0",
    "circuit_open_seconds": "1",
    "pms_max_receive_count": "1",
    "reconciliation_schedule_expression": '"every 5 minutes"',
    "reconciliation_window_seconds": "5",
    "replication_lag_alarm_ms": "10",
    "db_name": '"1bookings"',
    "master_username": '"postgres"',
    "aurora_min_capacity": "0.25",
    "aurora_max_capacity": "512",
    "backup_retention_days": "0",
    "log_retention_days": "2",
    "secret_recovery_window_days": "3",
}



@pytest.fixture(scope="module")
def rejected(workspace: Planner) -> tuple[int, list[str]]:
    """One plan with every invalid value at once: OpenTofu reports each failed validation."""
    return workspace.validation_errors("dev", INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_value_fails_the_plan_naming_the_variable(rejected: tuple[int, list[str]], name: str) -> None:
    returncode, messages = rejected
    assert returncode == 1
    naming = [m for m in messages if re.search(rf"\b{name}\b", m)]
    assert naming, f"{name}={INVALID[name]} produced no error naming it; errors were:\n" + "\n".join(messages)


def test_every_validated_variable_has_an_invalid_example(workspace: Planner) -> None:
    variables = workspace.stack.lib.joinpath("tap_stack.tf").read_text()
    validated = set(re.findall(r'variable "(\w+)" \{(?:(?!\nvariable ).)*?validation \{', variables, re.DOTALL))
    assert validated == set(INVALID), {"untested": validated - set(INVALID), "unknown": set(INVALID) - validated}


def test_a_replica_in_the_primary_region_fails_the_plan(workspace: Planner) -> None:
    returncode, messages = workspace.validation_errors("dev", {"dynamodb_replica_regions": '["us-west-2"]'})
    assert returncode == 1 and any("dynamodb_replica_regions" in m for m in messages), messages


def test_a_visibility_timeout_shorter_than_six_function_timeouts_fails_the_plan(workspace: Planner) -> None:
    returncode, messages = workspace.validation_errors("dev", {"pms_queue_visibility_timeout_seconds": "60"})
    assert returncode == 1 and any("pms_queue_visibility_timeout_seconds" in m for m in messages), messages


def test_aurora_min_capacity_above_max_fails_the_plan(workspace: Planner) -> None:
    returncode, messages = workspace.validation_errors("dev", {"aurora_min_capacity": "8", "aurora_max_capacity": "4"})
    assert returncode == 1 and any("aurora_min_capacity" in m for m in messages), messages


def test_a_worker_timeout_shorter_than_one_pms_updates_worst_case_fails_the_plan(workspace: Planner) -> None:
    # 4 calls of 3 s + 0.2 + 0.4 + 0.8 s of backoff + 3 s of audit = 16.4 s > 10 s.
    returncode, messages = workspace.validation_errors("dev", {"lambda_timeout_seconds": "10", "pms_max_retries": "3",
                                                               "pms_backoff_base_ms": "200"})
    assert returncode == 1 and any("lambda_timeout_seconds" in m for m in messages), messages


def test_the_plan_and_the_worker_agree_on_the_worst_case(workspace: Planner) -> None:
    """The sign-off's settings (10 s functions, one retry) fit in both the precondition's arithmetic
    and the handler's: 2 calls of 3 s + 0.2 s + 3 s = 9.2 s."""
    from tapharness.lambdas import load_package

    worker = load_package("pms_sync_worker", "handler")
    assert worker.handler.worst_case_ms(1, 200) == 9_200 and worker.handler.worst_case_ms(3, 200) == 16_400
    returncode, messages = workspace.validation_errors("dev", {"lambda_timeout_seconds": "10", "pms_max_retries": "1",
                                                               "pms_backoff_base_ms": "200"})
    assert returncode == 0, messages
