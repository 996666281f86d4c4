"""overbooking_resolver: overbooked guests move to an equivalent room; what cannot move raises the alarm."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from .conftest import (
    REGION,
    TABLE,
    ago,
    items,
    load_package,
    night,
    put_allocation,
    put_night,
    put_property,
    stay,
)

ob = load_package("overbooking_resolver", "handler")


@pytest.fixture
def env(aws: Any, redis_env: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="inventory-updates")["TopicArn"]
    queue = sqs.create_queue(QueueName="opera-pms")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    for name, value in {"INVENTORY_TOPIC_ARN": topic, "CACHE_TTL_SECONDS": "900",
                        "METRICS_NAMESPACE": "global-booking-test/booking"}.items():
        monkeypatch.setenv(name, value)
    put_property("h1")
    boto3.resource("dynamodb", region_name=REGION).Table(TABLE).put_item(Item={
        "pk": "BOOKING#late", "sk": "BOOKING", "booking_id": "late", "property_id": "h1",
        "rooms": {stay(30): "deluxe-king"}, "units": 1, "status": "confirmed"})
    return {"queue": queue, "redis": redis_env}


def overbooked() -> str:
    """deluxe-king on stay(30): 2 units, 3 allocated (the last-writer-wins of two regions)."""
    pk = put_night("h1", "deluxe-king", stay(30), 0, total=2, version=7)
    put_allocation(pk, "early-1", created_at=ago(300))
    put_allocation(pk, "early-2", created_at=ago(200))
    put_allocation(pk, "late", created_at=ago(10))
    return pk


def published(env: dict[str, Any]) -> list[dict[str, Any]]:
    messages = boto3.client("sqs", region_name=REGION).receive_message(
        QueueUrl=env["queue"], MaxNumberOfMessages=10).get("Messages", [])
    return sorted((json.loads(m["Body"]) for m in messages), key=lambda b: b["room_id"])


def metric_sum(name: str) -> float:
    stats = boto3.client("cloudwatch", region_name=REGION).get_metric_statistics(
        Namespace="global-booking-test/booking", MetricName=name, StartTime="2000-01-01", EndTime="2100-01-01",
        Period=86400, Statistics=["Sum"])["Datapoints"]
    return sum(d["Sum"] for d in stats)


def run(pk: str, kind: str, context: Any) -> dict[str, Any]:
    return ob.handler.lambda_handler({"finding_count": 1, "findings": [{"kind": kind, "pk": pk, "detail": {}}]}, context)


def test_the_newest_booking_moves_to_an_equivalent_room_with_units_left(env: dict[str, Any], context: Any) -> None:
    pk = overbooked()
    twin = put_night("h1", "deluxe-twin", stay(30), 3, version=1)
    result = run(pk, "overbooking", context)
    assert (result["reassigned"], result["unresolved"]) == (1, 0)
    assert {i["sk"] for i in items(pk)} == {"INVENTORY", "BOOKING#early-1", "BOOKING#early-2"}
    assert {i["sk"] for i in items(twin)} == {"INVENTORY", "BOOKING#late"}
    assert (night(pk)["available_units"], night(twin)["available_units"]) == (0, 2)
    [booking] = items("BOOKING#late")
    assert booking["rooms"] == {stay(30): "deluxe-twin"}


def test_both_changed_nights_are_republished_to_the_pms(env: dict[str, Any], context: Any) -> None:
    pk = overbooked()
    put_night("h1", "deluxe-twin", stay(30), 3, version=1)
    run(pk, "overbooking", context)
    assert [(m["room_id"], m["available_units"], m["reason"]) for m in published(env)] == [
        ("deluxe-king", 0, "correction"), ("deluxe-twin", 2, "correction")]


def test_a_room_of_another_class_is_never_used(env: dict[str, Any], context: Any) -> None:
    pk = overbooked()
    put_night("h1", "suite", stay(30), 5)
    result = run(pk, "overbooking", context)
    assert (result["reassigned"], result["unresolved"]) == (0, 1)
    assert metric_sum("UnresolvedOverbooking") == 1
    assert {i["sk"] for i in items(pk)} == {"INVENTORY", "BOOKING#early-1", "BOOKING#early-2", "BOOKING#late"}


def test_a_night_no_longer_overbooked_is_left_alone(env: dict[str, Any], context: Any) -> None:
    pk = put_night("h1", "deluxe-king", stay(30), 1, total=2)
    put_allocation(pk, "only")
    result = run(pk, "overbooking", context)
    assert (result["reassigned"], result["unresolved"]) == (0, 0) and published(env) == []


def test_units_that_disagree_with_the_allocations_are_recomputed(env: dict[str, Any], context: Any) -> None:
    pk = put_night("h1", "suite", stay(30), 9, total=10, version=4)
    put_allocation(pk, "a", units=3)
    result = run(pk, "accounting", context)
    assert result["accounting_fixed"] == 1
    assert (night(pk)["available_units"], night(pk)["version"]) == (7, 5)


def test_after_a_lost_race_the_resolver_rereads_the_allocations_too(env: dict[str, Any], context: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Another resolver moved the newest booking first: this one's move is cancelled, and the night
    it re-reads is no longer overbooked. Counting the stale allocations would report 1 unit still
    overbooked (a false UnresolvedOverbooking)."""
    pk = overbooked()
    put_night("h1", "deluxe-twin", stay(30), 3, version=1)
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
    move = ob.handler._move

    def another_resolver_moved_it_first(*args: Any) -> Any:
        monkeypatch.setattr(ob.handler, "_move", move)
        table.delete_item(Key={"pk": pk, "sk": "BOOKING#late"})
        table.update_item(Key={"pk": pk, "sk": "INVENTORY"}, UpdateExpression="SET available_units = :a, version = :v",
                          ExpressionAttributeValues={":a": 0, ":v": 8})
        return None

    monkeypatch.setattr(ob.handler, "_move", another_resolver_moved_it_first)
    result = run(pk, "overbooking", context)
    assert (result["reassigned"], result["unresolved"]) == (0, 0)


def test_a_drifted_cache_gets_the_tables_value(env: dict[str, Any], context: Any) -> None:
    pk = put_night("h1", "suite", stay(30), 6, version=3)
    env["redis"].hset("avail:h1", f"suite#{stay(30)}", json.dumps({"units": 9, "version": 3}))
    assert run(pk, "cache_drift", context)["cache_repaired"] == 1
    assert json.loads(env["redis"].hget("avail:h1", f"suite#{stay(30)}")) == {"units": 6, "version": 3}


def test_a_cache_repair_never_replaces_a_newer_value_than_it_read(env: dict[str, Any], context: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache_updater may write a booking's newer version between the resolver's read of the
    table and its repair: the repair must not put the older value back."""
    pk = put_night("h1", "suite", stay(30), 6, version=3)
    field = f"suite#{stay(30)}"
    env["redis"].hset("avail:h1", field, json.dumps({"units": 9, "version": 3}))
    write = ob.handler.cache.write_nights

    def booking_lands_first(client: Any, *args: Any, **kwargs: Any) -> int:
        env["redis"].hset("avail:h1", field, json.dumps({"units": 5, "version": 4}))  # the cache_updater's write
        return write(client, *args, **kwargs)

    monkeypatch.setattr(ob.handler.cache, "write_nights", booking_lands_first)
    run(pk, "cache_drift", context)
    assert json.loads(env["redis"].hget("avail:h1", field)) == {"units": 5, "version": 4}


def test_a_night_the_pms_lacks_is_published_again(env: dict[str, Any], context: Any) -> None:
    pk = put_night("h1", "suite", stay(30), 6, version=3)
    assert run(pk, "pms_drift", context)["republished"] == 1
    assert [(m["room_id"], m["version"], m["reason"]) for m in published(env)] == [("suite", 3, "reconciliation")]


def test_replica_drift_is_counted_for_the_alarm_not_written(env: dict[str, Any], context: Any) -> None:
    pk = put_night("h1", "suite", stay(30), 6, version=3)
    before = items()
    assert run(pk, "replica_drift", context)["replica_drift"] == 1
    assert metric_sum("ReplicaDrift") == 1 and items() == before
