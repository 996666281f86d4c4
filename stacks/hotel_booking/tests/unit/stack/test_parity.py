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

# (resource address glob, attribute path glob) -> why it may differ between environments.
ALLOWED: dict[tuple[str, str], str] = {
    ("aws_apigatewayv2_stage.default", "default_route_settings.0.throttling_*_limit"): "API throttle",
    ("aws_lambda_function.*", "memory_size"): "function memory",
    ("aws_elasticache_replication_group.cache", "node_type"): "cache nodes",
    ("aws_elasticache_replication_group.cache", "num_cache_clusters"): "cache nodes",
    # Failover and Multi-AZ need two or more nodes, so they follow the node count.
    ("aws_elasticache_replication_group.cache", "automatic_failover_enabled"): "cache nodes",
    ("aws_elasticache_replication_group.cache", "multi_az_enabled"): "cache nodes",
    ("aws_rds_cluster.aurora", "serverlessv2_scaling_configuration.0.*_capacity"): "Aurora capacity",
    ("aws_rds_cluster.aurora", "backup_retention_period"): "backup retention",
    ("aws_lambda_event_source_mapping.pms*", "scaling_config.0.maximum_concurrency"): "PMS concurrency",
}


@pytest.fixture
def parity_allowed() -> dict[tuple[str, str], str]:
    return ALLOWED


def test_every_environment_replicates_to_the_same_regions(dev: PlanSummary, other: PlanSummary) -> None:
    def regions(plan: PlanSummary) -> list[str]:
        return sorted(r["region_name"] for r in plan.values["aws_dynamodb_table.inventory"]["replica"])

    assert regions(other) == regions(dev) and len(regions(dev)) >= 1


def test_production_has_at_least_the_capacity_of_staging_and_dev(plans: Callable[[str], PlanSummary]) -> None:
    def capacity(env: str) -> tuple[float, ...]:
        values = plans(env).values
        return (values["aws_apigatewayv2_stage.default"]["default_route_settings"][0]["throttling_rate_limit"],
                values["aws_elasticache_replication_group.cache"]["num_cache_clusters"],
                values["aws_rds_cluster.aurora"]["serverlessv2_scaling_configuration"][0]["max_capacity"],
                values['aws_lambda_function.this["booking_handler"]']["memory_size"])

    dev, staging, prod = capacity("dev"), capacity("staging"), capacity("prod")
    assert all(d <= s <= p for d, s, p in zip(dev, staging, prod, strict=True)), (dev, staging, prod)


def test_production_absorbs_the_sla_burst(plans: Callable[[str], PlanSummary]) -> None:
    """SLA: ~1,200 RPS sustained and ~2,000 RPS bursts at the booking API."""
    settings = plans("prod").values["aws_apigatewayv2_stage.default"]["default_route_settings"][0]
    assert settings["throttling_rate_limit"] >= 1200 and settings["throttling_burst_limit"] >= 2000, settings
