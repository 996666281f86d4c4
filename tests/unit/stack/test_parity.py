"""Topology parity: dev, staging and prod plan the same resources; only capacities differ.

The allow-list below mirrors the spec's "Allowed to differ" line, one entry per attribute
that carries an allowed difference. Any other difference fails, naming the resource and
the attribute path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from typing import Any

import pytest

from tapharness.plan import PlanSummary

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

ENV_WORD = re.compile(r"(?<![A-Za-z0-9])(dev|staging|prod)(?![A-Za-z0-9])")


def _normalize(value: Any) -> Any:
    if isinstance(value, str):
        return ENV_WORD.sub("<env>", value)
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


def _differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _differences(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b)):
            yield from _differences(x, y, f"{path}.{index}")
    elif a != b:
        yield path


def _allowed(address: str, path: str) -> bool:
    return any(fnmatchcase(address, a) and fnmatchcase(path, p) for a, p in ALLOWED)


@pytest.fixture(params=("staging", "prod"))
def other(request: pytest.FixtureRequest, plans: Callable[[str], PlanSummary]) -> PlanSummary:
    return plans(request.param)


@pytest.mark.plan
def test_every_environment_plans_the_same_resource_addresses_and_types(dev: PlanSummary,
                                                                        other: PlanSummary) -> None:
    missing = sorted(set(dev.types.items()) - set(other.types.items()))
    extra = sorted(set(other.types.items()) - set(dev.types.items()))
    assert not missing and not extra, f"{other.env} vs dev: missing {missing}, extra {extra}"


@pytest.mark.plan
def test_only_allowed_attributes_differ_from_dev(dev: PlanSummary, other: PlanSummary) -> None:
    offending = [
        f"{address}: {path} (dev={_lookup(dev.values[address], path)!r}, "
        f"{other.env}={_lookup(other.values[address], path)!r})"
        for address in sorted(set(dev.values) & set(other.values))
        for path in _differences(_normalize(dev.values[address]), _normalize(other.values[address]))
        if not _allowed(address, path)
    ]
    assert not offending, f"{other.env} differs from dev outside the allow-list:\n" + "\n".join(offending)


@pytest.mark.plan
def test_unknown_after_apply_attributes_are_the_same_in_every_environment(dev: PlanSummary,
                                                                          other: PlanSummary) -> None:
    offending = [address for address in sorted(set(dev.unknown) & set(other.unknown))
                 if dev.unknown[address] != other.unknown[address]]
    assert not offending, f"{other.env}: attributes known only after apply differ from dev at {offending}"


def _lookup(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, list):
            value = value[int(part)] if part.isdigit() and int(part) < len(value) else None
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def test_the_allow_list_only_names_the_specs_categories() -> None:
    spec = {"API throttle limits", "Kinesis shards", "Lambda memory/timeout", "DynamoDB capacity", "Redis nodes",
            "Aurora capacity", "TTL duration", "schedule frequency", "alarm thresholds"}
    assert set(ALLOWED.values()) <= spec, set(ALLOWED.values()) - spec


def test_a_difference_outside_the_allow_list_is_reported() -> None:
    dev = {"name": "tap-dev-x", "memory_size": 128, "tracing_config": [{"mode": "Active"}]}
    prod = {"name": "tap-prod-x", "memory_size": 1024, "tracing_config": [{"mode": "PassThrough"}]}
    paths = [p for p in _differences(_normalize(dev), _normalize(prod))
             if not _allowed('aws_lambda_function.this["x"]', p)]
    assert paths == ["tracing_config.0.mode"]
