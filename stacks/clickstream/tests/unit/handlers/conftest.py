"""Fixtures for the clickstream handler tests: moto with the behaviour table and the failure queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tapharness.handler_testing import (
    calls_stay_within_the_inventory,
    context,
    emulated_aws,
    relaxed,
    set_lambda_env,
)
from tapharness.lambdas import REGION, load_package, reset_container

__all__ = ["REGION", "calls_stay_within_the_inventory", "context", "load_package", "relaxed"]

TABLE = "clickstream-test-behaviour"


@pytest.fixture(autouse=True)
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    set_lambda_env(monkeypatch, {"ENVIRONMENT": "test", "LOG_LEVEL": "INFO", "POWERTOOLS_SERVICE_NAME": "unit",
                                 "BEHAVIOUR_TABLE": TABLE})
    reset_container()
    yield
    reset_container()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto: the behaviour table (provisioned, as the stack makes it) and the stream_failures queue."""
    with emulated_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(TableName=TABLE, BillingMode="PROVISIONED",
                         ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "S"}])
        queue = boto3.client("sqs", region_name=REGION).create_queue(QueueName="stream-failures")["QueueUrl"]
        monkeypatch.setenv("POISON_QUEUE_URL", queue)
        yield {"ddb": ddb, "queue": queue}
