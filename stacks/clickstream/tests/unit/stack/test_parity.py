"""Topology parity: dev, staging and prod plan the same resources; only capacities differ."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tapharness.checks.parity import (
    other,
    test_every_environment_plans_the_same_resource_addresses_and_types,
    test_only_allowed_attributes_differ_from_dev,
)
from tapharness.plan import PlanSummary

pytestmark = pytest.mark.plan

__all__ = ["other", "test_every_environment_plans_the_same_resource_addresses_and_types",
           "test_only_allowed_attributes_differ_from_dev"]

ALLOWED: dict[tuple[str, str], str] = {
    ("aws_kinesis_stream.events", "shard_count"): "stream capacity",
    ("aws_kinesis_stream.events", "retention_period"): "replay window",
    ("aws_lambda_event_source_mapping.events", "maximum_record_age_in_seconds"): "replay window (half of it)",
    ("aws_lambda_function.*", "memory_size"): "function memory",
    ("aws_dynamodb_table.behaviour", "*_capacity"): "table capacity",
    ("aws_appautoscaling_target.table*", "*_capacity"): "table capacity",
}


@pytest.fixture
def parity_allowed() -> dict[tuple[str, str], str]:
    return ALLOWED


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_the_stream_takes_the_peak_with_headroom(plans: Callable[[str], PlanSummary], env: str) -> None:
    """~10,000 events/min is ~167 records/s; a shard takes 1,000 records/s. Two shards keep the peak
    under a tenth of the capacity and a hot partition key at most at a shard's limit."""
    shards = plans(env).values["aws_kinesis_stream.events"]["shard_count"]
    assert shards * 1000 >= 5 * (10_000 / 60) and shards >= 2, shards


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_table_auto_scaling_reaches_the_peaks_writes(plans: Callable[[str], PlanSummary], env: str) -> None:
    """Each event writes two items: ~334 write units per second at the peak, reachable by auto scaling."""
    write = plans(env).values['aws_appautoscaling_target.table["write"]']
    assert write["max_capacity"] >= 2 * 10_000 / 60, write
