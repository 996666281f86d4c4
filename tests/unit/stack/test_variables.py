"""Bad variables fail the plan early, with a message that names the variable."""

from __future__ import annotations

import re

import pytest

from tapharness.checks.variables import (
    test_the_sandbox_sets_only_variables_the_stack_declares,
)
from tapharness.plan import Planner

__all__ = ["test_the_sandbox_sets_only_variables_the_stack_declares"]

# One representative invalid value per validated variable (HCL literal syntax).
INVALID = {
    "env": '"qa"',
    "aws_region": '"mars-north-1"',
    "project_name": '"Has Spaces"',
    "owner": '""',
    "cost_center": '""',
    "vpc_cidr": '"10.0.0.0/33"',
    "public_subnet_cidrs": '["10.0.0.0/24", "not-a-cidr"]',
    "private_subnet_cidrs": '["10.0.10.0/24", "300.0.0.0/24"]',
    "num_availability_zones": "0",
    "stage_name": '"v1 beta"',
    "throttle_rate_limit": "0",
    "throttle_burst_limit": "-1",
    "stream_mode": '"SOMETIMES"',
    "shard_count": "0",
    "retention_hours": "12",
    "billing_mode": '"FREE"',
    "rcu": "0",
    "wcu": "0",
    "ttl_attribute": '""',
    "event_processor_memory": "64",
    "recommendations_memory": "20480",
    "analytics_memory": "100",
    "achievements_memory": "10241",
    "expiration_memory": "127",
    "timeout_s": "901",
    "runtime": '"nodejs20.x"',
    "node_type": '"m5.large"',
    "num_cache_clusters": "0",
    "engine_version": '"banana"',
    "master_username": '"admin"',
    "db_name": '"1-bad-name"',
    "min_capacity": "0.25",
    "max_capacity": "512",
    "backup_retention_days": "0",
    "preferred_maintenance_window": '"sometime"',
    "recommendations_endpoint_name": '"-bad"',
    "visibility_timeout_seconds": "43201",
    "message_retention_seconds": "30",
    "expiration_schedule_expression": '"every night"',
    "archive_bucket_name": '"Bad_Bucket"',
    "thumbnails_bucket_name": '"x"',
    "output_bucket": '"UPPER"',
    "lifecycle_glacier_days": "0",
    "log_retention_days": "2",
    "alarm_latency_threshold": "0",
}




@pytest.fixture(scope="module")
def rejected(workspace: Planner) -> tuple[int, list[str]]:
    """One plan with every invalid value at once: OpenTofu reports each failed validation."""
    return workspace.validation_errors("dev", INVALID)


@pytest.mark.plan
@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_value_fails_the_plan_naming_the_variable(rejected: tuple[int, list[str]], name: str) -> None:
    returncode, messages = rejected
    assert returncode == 1
    naming = [m for m in messages if re.search(rf"\b{name}\b", m)]
    assert naming, f"{name}={INVALID[name]} produced no error naming it; errors were:\n" + "\n".join(messages)


@pytest.mark.plan
def test_each_invalid_value_alone_fails_the_plan(workspace: Planner) -> None:
    """The batched plan above cannot hide a value that is only rejected because of another one."""
    for name in ("env", "min_capacity", "expiration_schedule_expression"):
        returncode, messages = workspace.validation_errors("dev", {name: INVALID[name]})
        assert returncode == 1 and any(name in m for m in messages), f"{name}: {messages}"


@pytest.mark.plan
def test_aurora_min_capacity_above_max_fails_the_plan(workspace: Planner) -> None:
    returncode, messages = workspace.validation_errors("dev", {"min_capacity": "8", "max_capacity": "4"})
    assert returncode == 1
    assert any("min_capacity" in m and "max_capacity" in m for m in messages), messages


@pytest.mark.plan
def test_subnet_lists_shorter_than_the_zone_count_fail_the_plan(workspace: Planner) -> None:
    returncode, messages = workspace.validation_errors("dev", {"num_availability_zones": "4"})
    assert returncode == 1
    assert any("num_availability_zones" in m for m in messages), messages


@pytest.mark.plan
def test_a_timeout_at_or_under_the_duration_alarms_threshold_fails_the_plan(workspace: Planner) -> None:
    returncode, messages = workspace.validation_errors("dev", {"timeout_s": "10"})  # dev's alarm is at 10,000 ms
    assert returncode == 1
    assert any("timeout_s" in m and "can never fire" in m for m in messages), messages
