"""Topology parity: dev, staging and prod plan the same resources; only capacities differ.

The allow-list below mirrors the spec's "Allowed to differ" line, one entry per attribute
that carries an allowed difference. Any other difference fails, naming the resource and
the attribute path.
"""

from __future__ import annotations

import pytest

from tapharness.checks.parity import (
    other,
    test_every_environment_plans_the_same_resource_addresses_and_types,
    test_only_allowed_attributes_differ_from_dev,
)
from tapharness.parity import allowed, differences, normalize
from tapharness.plan import PlanSummary

__all__ = ["other", "test_every_environment_plans_the_same_resource_addresses_and_types",
           "test_only_allowed_attributes_differ_from_dev"]

# (resource address glob, attribute path glob) → the spec's category of allowed difference.
ALLOWED: dict[tuple[str, str], str] = {
    ("aws_api_gateway_method_settings.*", "settings.0.throttling_*_limit"): "API throttle limits",
    ("aws_kinesis_stream.*", "shard_count"): "Kinesis shards",
    ("aws_lambda_function.*", "memory_size"): "Lambda memory/timeout",
    ("aws_lambda_function.*", "timeout"): "Lambda memory/timeout",
    ("aws_dynamodb_table.*", "read_capacity"): "DynamoDB capacity",
    ("aws_dynamodb_table.*", "write_capacity"): "DynamoDB capacity",
    ("aws_elasticache_replication_group.*", "num_cache_clusters"): "Redis nodes",
    ("aws_elasticache_replication_group.*", "node_type"): "Redis nodes",
    # Failover and Multi-AZ need two or more nodes, so they follow the node count.
    ("aws_elasticache_replication_group.*", "automatic_failover_enabled"): "Redis nodes",
    ("aws_elasticache_replication_group.*", "multi_az_enabled"): "Redis nodes",
    ("aws_rds_cluster.*", "serverlessv2_scaling_configuration.0.*_capacity"): "Aurora capacity",
    ("aws_lambda_function.*", "environment.0.variables.RECOMMENDATION_TTL_HOURS"): "TTL duration",
    ("aws_cloudwatch_event_rule.*", "schedule_expression"): "schedule frequency",
    ("aws_cloudwatch_metric_alarm.*", "threshold"): "alarm thresholds",
}


@pytest.fixture
def parity_allowed() -> dict[tuple[str, str], str]:
    return ALLOWED

@pytest.mark.plan
def test_unknown_after_apply_attributes_are_the_same_in_every_environment(dev: PlanSummary,
                                                                          other: PlanSummary) -> None:
    offending = [address for address in sorted(set(dev.unknown) & set(other.unknown))
                 if dev.unknown[address] != other.unknown[address]]
    assert not offending, f"{other.env}: attributes known only after apply differ from dev at {offending}"


def test_the_allow_list_only_names_the_specs_categories() -> None:
    spec = {"API throttle limits", "Kinesis shards", "Lambda memory/timeout", "DynamoDB capacity", "Redis nodes",
            "Aurora capacity", "TTL duration", "schedule frequency", "alarm thresholds"}
    assert set(ALLOWED.values()) <= spec, set(ALLOWED.values()) - spec


def test_a_difference_outside_the_allow_list_is_reported() -> None:
    dev = {"name": "tap-dev-x", "memory_size": 128, "tracing_config": [{"mode": "Active"}]}
    prod = {"name": "tap-prod-x", "memory_size": 1024, "tracing_config": [{"mode": "PassThrough"}]}
    paths = [p for p in differences(normalize(dev), normalize(prod))
             if not allowed('aws_lambda_function.this["x"]', p, ALLOWED)]
    assert paths == ["tracing_config.0.mode"]
