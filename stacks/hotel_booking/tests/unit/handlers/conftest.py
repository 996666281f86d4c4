"""Fixtures for the hotel-booking handler tests: moto with the stack's tables, real Redis and
PostgreSQL, and helpers that arrange the inventory the way the contract describes it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
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
    relaxed,
    set_lambda_env,
)
from tapharness.lambdas import REGION, FakeContext, load_package, reset_container

__all__ = ["REGION", "FakeContext", "calls_stay_within_the_inventory", "context", "load_package", "log_records",
           "postgres_server", "redis_env", "redis_server", "relaxed"]

TABLE = "global-booking-test-inventory"
CIRCUIT_TABLE = "global-booking-test-pms-circuit"
REPLICA_REGION = "eu-west-1"


@pytest.fixture(autouse=True)
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    set_lambda_env(monkeypatch, {"ENVIRONMENT": "test", "PROJECT": "global-booking", "LOG_LEVEL": "INFO",
                                 "POWERTOOLS_SERVICE_NAME": "unit", "INVENTORY_TABLE": TABLE})
    reset_container()
    yield
    reset_container()


def _create_inventory(region: str) -> None:
    boto3.client("dynamodb", region_name=region).create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})


@pytest.fixture
def aws() -> Iterator[Any]:
    """moto for every AWS service: the inventory in the primary and one replica region, the breaker table."""
    with emulated_aws():
        for region in (REGION, REPLICA_REGION):
            _create_inventory(region)
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(TableName=CIRCUIT_TABLE, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pms_id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pms_id", "AttributeType": "S"}])
        yield ddb


@pytest.fixture
def postgres_env(aws: Any, postgres_server: services.PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with postgres_settings(postgres_server, monkeypatch, ("pms_inventory",)) as conn:
        yield conn


def stay(days_ahead: int = 30) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days_ahead)).isoformat()


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def put_property(property_id: str = "h1", pms_id: str = "opera",
                 rooms: dict[str, str] | None = None, region: str = REGION) -> None:
    """A property with rooms {room_id: room_class} (default: two deluxe rooms and one suite)."""
    rooms = rooms or {"deluxe-king": "deluxe", "deluxe-twin": "deluxe", "suite": "suite"}
    boto3.resource("dynamodb", region_name=region).Table(TABLE).put_item(Item={
        "pk": f"PROPERTY#{property_id}", "sk": "PROPERTY", "pms_id": pms_id,
        "rooms": {room: {"room_class": cls, "total_units": 10} for room, cls in rooms.items()}})


def put_night(property_id: str, room_id: str, stay_date: str, available: int, total: int = 10, version: int = 1,
              updated_at: str | None = None, region: str = REGION) -> str:
    pk = f"{property_id}#{room_id}#{stay_date}"
    boto3.resource("dynamodb", region_name=region).Table(TABLE).put_item(Item={
        "pk": pk, "sk": "INVENTORY", "available_units": available, "total_units": total, "version": version,
        "updated_at": updated_at or ago(0)})
    return pk


def put_allocation(pk: str, booking_id: str, units: int = 1, created_at: str | None = None) -> None:
    boto3.resource("dynamodb", region_name=REGION).Table(TABLE).put_item(Item={
        "pk": pk, "sk": f"BOOKING#{booking_id}", "booking_id": booking_id, "units": units, "guest_id": "g1",
        "created_at": created_at or ago(0)})


def night(pk: str, region: str = REGION) -> dict[str, Any]:
    return boto3.resource("dynamodb", region_name=region).Table(TABLE).get_item(
        Key={"pk": pk, "sk": "INVENTORY"}, ConsistentRead=True)["Item"]


def items(prefix: str = "") -> list[dict[str, Any]]:
    found = boto3.resource("dynamodb", region_name=REGION).Table(TABLE).scan()["Items"]
    return [i for i in found if str(i["pk"]).startswith(prefix)]


def today() -> date:
    return datetime.now(UTC).date()
