"""cache_updater: each changed room-night reaches its property's snapshot, never older over newer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from .conftest import load_package, stay

cu = load_package("cache_updater", "handler")
_serialize = TypeSerializer().serialize


@pytest.fixture
def env(aws: Any, redis_env: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CACHE_TTL_SECONDS", "900")
    return redis_env


def record(sequence: int, property_id: str = "h1", room: str = "deluxe-king", stay_date: str | None = None,
           units: int = 4, version: int = 2, event: str = "MODIFY") -> dict[str, Any]:
    pk = f"{property_id}#{room}#{stay_date or stay(30)}"
    image = {"pk": pk, "sk": "INVENTORY", "available_units": units, "total_units": 10, "version": version,
             "updated_at": "2026-12-02T08:00:00.000Z"}
    ddb: dict[str, Any] = {"Keys": {"pk": {"S": pk}, "sk": {"S": "INVENTORY"}}, "SequenceNumber": str(sequence)}
    if event != "REMOVE":
        ddb["NewImage"] = {k: _serialize(v) for k, v in image.items()}
    return {"eventName": event, "dynamodb": ddb}


def cached(redis: Any, property_id: str = "h1", room: str = "deluxe-king", stay_date: str | None = None) -> Any:
    value = redis.hget(f"avail:{property_id}", f"{room}#{stay_date or stay(30)}")
    return None if value is None else json.loads(value)


def test_a_changed_night_lands_in_its_propertys_snapshot_with_a_ttl(env: Any, context: Any) -> None:
    response = cu.handler.lambda_handler({"Records": [record(1, units=4, version=2)]}, context)
    assert response == {"batchItemFailures": []}
    assert cached(env) == {"units": 4, "version": 2}
    assert 0 < env.ttl("avail:h1") <= 900


def test_only_the_changed_propertys_snapshot_is_touched(env: Any, context: Any) -> None:
    env.hset("avail:h2", "suite#2030-01-01", json.dumps({"units": 1, "version": 9}))
    cu.handler.lambda_handler({"Records": [record(1, property_id="h1")]}, context)
    assert set(env.keys("avail:*")) == {"avail:h1", "avail:h2"}
    assert env.hgetall("avail:h2") == {"suite#2030-01-01": json.dumps({"units": 1, "version": 9})}


def test_an_older_version_never_replaces_a_newer_cached_one(env: Any, context: Any) -> None:
    cu.handler.lambda_handler({"Records": [record(2, units=3, version=5)]}, context)
    cu.handler.lambda_handler({"Records": [record(1, units=7, version=4)]}, context)
    assert cached(env) == {"units": 3, "version": 5}


def test_within_a_batch_the_newest_image_of_a_night_wins(env: Any, context: Any) -> None:
    cu.handler.lambda_handler({"Records": [record(1, units=5, version=3), record(2, units=4, version=4)]}, context)
    assert cached(env) == {"units": 4, "version": 4}


def test_a_removed_night_leaves_the_snapshot(env: Any, context: Any) -> None:
    cu.handler.lambda_handler({"Records": [record(1)]}, context)
    cu.handler.lambda_handler({"Records": [record(2, event="REMOVE")]}, context)
    assert cached(env) is None


def test_a_record_that_is_not_an_inventory_change_is_reported_not_dropped(env: Any, context: Any) -> None:
    poison = {"eventName": "MODIFY", "dynamodb": {"Keys": {"pk": {"S": "not-a-night"}, "sk": {"S": "INVENTORY"}},
                                                  "SequenceNumber": "7"}}
    response = cu.handler.lambda_handler({"Records": [record(5), poison, record(9, room="suite")]}, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "7"}]}


def test_when_redis_is_down_the_batch_is_retried_from_the_first_record(env: Any, context: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PORT", "1")
    response = cu.handler.lambda_handler({"Records": [record(11), record(12, property_id="h2")]}, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "11"}]}
