"""Fixtures for the handler unit tests: Lambda-style imports, moto, real Redis/PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tapharness import services
from tapharness.handler_testing import (
    calls_stay_within_the_inventory,
    context,
    emulated_aws,
    log_records,
    postgres_server,
    postgres_settings,
    redis_env,
    redis_server,
    redis_tls_server,
    relaxed,
    set_lambda_env,
)
from tapharness.lambdas import REGION, FakeContext, load_package, reset_container

__all__ = ["REGION", "TABLES", "FakeContext", "calls_stay_within_the_inventory", "context", "load_package",
           "log_records", "postgres_server", "redis_env", "redis_server", "redis_tls_server", "relaxed"]

TABLES = {
    "ACTIVITY_TABLE": "tap-test-user_activity",
    "RECOMMENDATIONS_TABLE": "tap-test-user_recommendations",
    "ACHIEVEMENTS_TABLE": "tap-test-user_achievements",
    "CATALOG_TABLE": "tap-test-content_catalog",
}


@pytest.fixture(autouse=True)
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    set_lambda_env(monkeypatch, {"ENV": "test", "PROJECT": "tap", "LOG_LEVEL": "INFO",
                                 "POWERTOOLS_SERVICE_NAME": "unit", **TABLES})
    reset_container()
    yield
    reset_container()


@pytest.fixture
def aws() -> Iterator[Any]:
    """moto for every AWS service, with the four DynamoDB tables of the contract."""
    with emulated_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        string = "S"
        definitions = {
            "ACTIVITY_TABLE": (("user_id", "timestamp"), True),
            "RECOMMENDATIONS_TABLE": (("user_id",), False),
            "ACHIEVEMENTS_TABLE": (("user_id", "badge_id"), False),
            "CATALOG_TABLE": (("content_id",), False),
        }
        for env, (keys, stream) in definitions.items():
            request: dict[str, Any] = {
                "TableName": TABLES[env],
                "KeySchema": [
                    {"AttributeName": name, "KeyType": "HASH" if i == 0 else "RANGE"} for i, name in enumerate(keys)
                ],
                "AttributeDefinitions": [{"AttributeName": name, "AttributeType": string} for name in keys],
                "BillingMode": "PAY_PER_REQUEST",
            }
            if stream:
                request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
            ddb.create_table(**request)
        yield ddb


@pytest.fixture
def postgres_env(aws: Any, postgres_server: services.PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with postgres_settings(postgres_server, monkeypatch, ("content_stats", "processed_events", "content_licenses", "viewer_titles")) as conn:
        yield conn
