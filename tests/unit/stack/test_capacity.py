"""Capacity: each environment's tfvars land on the resources that carry them; prod is the largest."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tapharness.plan import PlanSummary

pytestmark = pytest.mark.plan

MEMORY_VARIABLE = {
    "event_processor": "event_processor_memory",
    "activity_consumer": "event_processor_memory",
    "completion_detector": "event_processor_memory",
    "recommendations": "recommendations_memory",
    "analytics_consumer": "analytics_memory",
    "achievements_consumer": "achievements_memory",
    "expiration_find": "expiration_memory",
    "expiration_mark": "expiration_memory",
    "expiration_purge": "expiration_memory",
    "expiration_archive": "expiration_memory",
    "thumbnail_validator": "expiration_memory",
}


def test_api_stage_throttles_at_the_configured_rate_and_burst(plan: PlanSummary) -> None:
    [settings] = plan.values["aws_api_gateway_method_settings.all"]["settings"]
    assert (settings["throttling_rate_limit"], settings["throttling_burst_limit"]) == (
        plan.variables["throttle_rate_limit"], plan.variables["throttle_burst_limit"])


def test_kinesis_stream_has_the_configured_mode_shards_and_retention(plan: PlanSummary) -> None:
    stream = plan.values["aws_kinesis_stream.activity"]
    [mode] = stream["stream_mode_details"]
    assert mode["stream_mode"] == plan.variables["stream_mode"]
    assert stream["retention_period"] == plan.variables["retention_hours"]
    if plan.variables["stream_mode"] == "PROVISIONED":
        assert stream["shard_count"] == plan.variables["shard_count"]


@pytest.mark.parametrize("function", sorted(MEMORY_VARIABLE))
def test_function_gets_its_memory_and_timeout(plan: PlanSummary, function: str) -> None:
    values = plan.values[f'aws_lambda_function.this["{function}"]']
    assert values["memory_size"] == plan.variables[MEMORY_VARIABLE[function]]
    assert values["timeout"] <= plan.variables["timeout_s"]
    assert values["runtime"] == plan.variables["runtime"]


def test_tables_use_the_configured_billing_mode_and_capacity(plan: PlanSummary) -> None:
    for address, table in plan.of_type("aws_dynamodb_table").items():
        assert table["billing_mode"] == plan.variables["billing_mode"], address
        if table["billing_mode"] == "PROVISIONED":
            assert (table["read_capacity"], table["write_capacity"]) == (plan.variables["rcu"],
                                                                         plan.variables["wcu"]), address


def test_recommendations_expire_after_the_configured_ttl(plan: PlanSummary) -> None:
    table = plan.values['aws_dynamodb_table.this["recommendations"]']
    assert table["ttl"] == [{"attribute_name": plan.variables["ttl_attribute"], "enabled": True}]


def test_redis_has_the_configured_nodes(plan: PlanSummary) -> None:
    redis = plan.values["aws_elasticache_replication_group.cache"]
    assert redis["num_cache_clusters"] == plan.variables["num_cache_clusters"]
    assert redis["node_type"] == plan.variables["node_type"]
    assert redis["automatic_failover_enabled"] == (plan.variables["num_cache_clusters"] > 1)


def test_aurora_scales_between_the_configured_capacities(plan: PlanSummary) -> None:
    cluster = plan.values["aws_rds_cluster.aurora"]
    [scaling] = cluster["serverlessv2_scaling_configuration"]
    assert (scaling["min_capacity"], scaling["max_capacity"]) == (plan.variables["min_capacity"],
                                                                  plan.variables["max_capacity"])
    assert cluster["backup_retention_period"] == plan.variables["backup_retention_days"]
    assert cluster["preferred_maintenance_window"] == plan.variables["preferred_maintenance_window"]


def test_queues_use_the_configured_visibility_and_retention(plan: PlanSummary) -> None:
    for queue in ("analytics", "achievements"):
        values = plan.values[f'aws_sqs_queue.consumer["{queue}"]']
        assert values["visibility_timeout_seconds"] == plan.variables["visibility_timeout_seconds"]
        assert values["message_retention_seconds"] == plan.variables["message_retention_seconds"]


def test_log_groups_keep_logs_for_the_configured_days(plan: PlanSummary) -> None:
    groups = plan.of_type("aws_cloudwatch_log_group")
    assert {v["retention_in_days"] for v in groups.values()} == {plan.variables["log_retention_days"]}


def test_api_latency_alarm_fires_at_the_configured_threshold(plan: PlanSummary) -> None:
    alarm = plan.values['aws_cloudwatch_metric_alarm.this["api_latency_p95"]']
    assert alarm["threshold"] == plan.variables["alarm_latency_threshold"]


def test_archive_moves_to_glacier_after_the_configured_days(plan: PlanSummary) -> None:
    rules = plan.values['aws_s3_bucket_lifecycle_configuration.this["archive"]']["rule"]
    transitions = [t for r in rules for t in r.get("transition", []) if t["storage_class"] == "GLACIER"]
    assert [t["days"] for t in transitions] == [plan.variables["lifecycle_glacier_days"]]


@pytest.mark.parametrize("variable", ["throttle_rate_limit", "throttle_burst_limit", "shard_count",
                                      "recommendations_memory", "num_cache_clusters", "max_capacity"])
def test_capacity_grows_from_dev_to_staging_to_prod(plans: Callable[[str], PlanSummary], variable: str) -> None:
    dev, staging, prod = (plans(env).variables[variable] for env in ("dev", "staging", "prod"))
    assert dev <= staging <= prod and dev < prod, f"{variable}: dev={dev} staging={staging} prod={prod}"
