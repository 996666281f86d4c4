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

INVALID = {
    "aws_region": '"moon-1"',
    "project_name": '"Click Stream"',
    "environment": '"qa"',
    "unique_suffix": '"UPPER"',
    "tags": "{ Owner = \"x\" }",
    "ssh_allowed_cidr": '"0.0.0.0/0"',
    "vpc_cidr": '"10.70.0.0/99"',
    "availability_zone_count": "1",
    "shard_count": "0",
    "stream_retention_hours": "12",
    "processor_memory_mb": "64",
    "insights_memory_mb": "20000",
    "batch_size": "0",
    "table_min_write_capacity": "0",
    "table_max_write_capacity": "50000",
    "table_min_read_capacity": "0",
    "table_max_read_capacity": "0",
    "autoscaling_target_utilization": "95",
    "alb_listener_port": "70000",
    "log_retention_days": "2",
    "max_record_age_seconds": "59",
}



@pytest.fixture(scope="module")
def rejected(workspace: Planner) -> tuple[int, list[str]]:
    return workspace.validation_errors("dev", INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_value_fails_the_plan_naming_the_variable(rejected: tuple[int, list[str]], name: str) -> None:
    returncode, messages = rejected
    assert returncode == 1
    assert [m for m in messages if re.search(rf"\b{name}\b", m)], f"{name}={INVALID[name]}: " + "\n".join(messages)


def test_minimum_capacity_above_maximum_fails_the_plan(workspace: Planner) -> None:
    returncode, messages = workspace.validation_errors("dev", {"table_min_write_capacity": "500", "table_max_write_capacity": "100"})
    assert returncode == 1 and any("table_min_write_capacity" in m for m in messages), messages


def test_turning_ssh_on_opens_port_22_to_the_admin_range_only(workspace: Planner) -> None:
    plan = workspace.plan("dev", tf_vars={"enable_ssh_from_admin_cidr": True})
    ssh = [r for r in plan.of_type("aws_network_acl_rule").values() if r["from_port"] == 22]
    assert [r["cidr_block"] for r in ssh] == [plan.variables["ssh_allowed_cidr"]]


def test_a_project_name_too_long_for_the_load_balancers_name_fails_the_plan(workspace: Planner) -> None:
    # <project>-staging-insights names the ALB and its target group, which AWS limits to 32 characters.
    returncode, messages = workspace.validation_errors("staging", {"project_name": '"clickstream-web1"'})
    assert returncode == 1 and any(re.search(r"\bproject_name\b", m) for m in messages), messages


def test_a_maximum_record_age_over_half_the_streams_retention_fails_the_plan(workspace: Planner) -> None:
    returncode, messages = workspace.validation_errors("dev", {"max_record_age_seconds": "43201",
                                                               "stream_retention_hours": "24"})
    assert returncode == 1 and any(re.search(r"\bmax_record_age_seconds\b", m) for m in messages), messages
