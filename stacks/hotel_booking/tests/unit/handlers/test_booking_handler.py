"""booking_handler: a booking either takes every night under its optimistic lock or writes nothing."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .conftest import (
    REGION,
    TABLE,
    items,
    load_package,
    night,
    put_night,
    put_property,
    relaxed,
    stay,
    today,
)

bh = load_package("booking_handler", "handler", "request", "reservation")


@pytest.fixture
def env(aws: Any, redis_env: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="inventory-updates")["TopicArn"]
    queue = sqs.create_queue(QueueName="opera-pms")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    for name, value in {"INVENTORY_TOPIC_ARN": topic, "HOLD_TTL_SECONDS": "900", "BOOKING_RETENTION_DAYS": "400",
                        "MAX_NIGHTS": "14", "MAX_UNITS": "9", "BOOKING_MAX_ATTEMPTS": "3"}.items():
        monkeypatch.setenv(name, value)
    put_property("h1")
    return {"queue": queue, "redis": redis_env}


def booking(**overrides: Any) -> dict[str, Any]:
    body = {"request_id": str(uuid.uuid4()), "property_id": "h1", "room_id": "deluxe-king", "check_in": stay(30),
            "nights": 2, "units": 1, "guest_id": "guest-7"}
    return {**body, **overrides}


def post(body: Any, context: Any, raw: str | None = None, base64_encoded: bool = False) -> tuple[int, dict[str, Any]]:
    text = raw if raw is not None else json.dumps(body)
    if base64_encoded:
        text = base64.b64encode(text.encode()).decode()
    event = {"version": "2.0", "routeKey": "POST /book", "rawPath": "/book", "body": text,
             "isBase64Encoded": base64_encoded, "requestContext": {"http": {"method": "POST", "path": "/book"}}}
    response = bh.handler.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def stock(available: int = 5, nights: int = 2, room: str = "deluxe-king", version: int = 1) -> list[str]:
    return [put_night("h1", room, stay(30 + i), available, version=version) for i in range(nights)]


def test_a_booking_takes_a_unit_of_every_night_and_bumps_each_version(env: Any, context: Any) -> None:
    pks = stock(available=5)
    status, body = post(booking(), context)
    assert status == 201 and body["status"] == "confirmed"
    assert [(night(pk)["available_units"], night(pk)["version"]) for pk in pks] == [(4, 2), (4, 2)]
    assert [n["stay_date"] for n in body["nights"]] == [stay(30), stay(31)]


def test_a_booking_writes_its_record_its_allocations_and_an_expiring_hold(env: Any, context: Any) -> None:
    pks = stock()
    request = booking()
    _, body = post(request, context)
    assert {(i["pk"], i["sk"]) for i in items() if i["sk"].startswith("BOOKING#")} == {
        (pk, f"BOOKING#{body['booking_id']}") for pk in pks}
    [hold] = items("HOLD#")
    assert hold["booking_id"] == body["booking_id"] and int(hold["expires_at"]) > 0
    [record] = items(f"BOOKING#{body['booking_id']}")
    assert record["rooms"] == {stay(30): "deluxe-king", stay(31): "deluxe-king"}


def test_the_last_unit_goes_to_one_booking_and_the_next_gets_409_and_writes_nothing(env: Any, context: Any) -> None:
    [pk] = stock(available=1, nights=1)
    first, _ = post(booking(nights=1), context)
    before = items()
    second, body = post(booking(nights=1), context)
    assert (first, second) == (201, 409) and "sold out" in body["error"]
    assert items() == before and night(pk)["available_units"] == 0


def test_a_repeated_request_returns_the_first_booking_and_takes_units_once(env: Any, context: Any) -> None:
    [pk] = stock(available=3, nights=1)
    request = booking(nights=1)
    first_status, first = post(request, context)
    again_status, again = post(request, context)
    assert (first_status, again_status) == (201, 200) and again["booking_id"] == first["booking_id"]
    assert night(pk)["available_units"] == 2


def test_a_retried_request_that_took_the_last_unit_gets_its_booking_not_409(env: Any, context: Any) -> None:
    [pk] = stock(available=1, nights=1)
    request = booking(nights=1)
    first_status, first = post(request, context)
    before = items()
    again_status, again = post(request, context)  # the client's retry after a timeout
    assert (first_status, again_status) == (201, 200), again
    assert again["booking_id"] == first["booking_id"] and again["status"] == "confirmed"
    assert items() == before and night(pk)["available_units"] == 0


def test_a_booking_that_loses_the_race_rereads_and_succeeds(env: Any, context: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    [pk] = stock(available=2, nights=1)
    reads = bh.handler.batch_get
    raced: list[bool] = []

    def read_then_lose(*args: Any, **kwargs: Any) -> Any:
        found = reads(*args, **kwargs)
        if not raced:  # a concurrent booking commits between this read and our transaction
            raced.append(True)
            table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
            table.update_item(Key={"pk": pk, "sk": "INVENTORY"},
                              UpdateExpression="SET available_units = available_units - :one, version = version + :one",
                              ExpressionAttributeValues={":one": 1})
        return found

    monkeypatch.setattr(bh.handler, "batch_get", read_then_lose)
    status, _ = post(booking(nights=1), context)
    assert status == 201 and raced
    assert (night(pk)["available_units"], night(pk)["version"]) == (0, 3)


def test_a_booking_that_loses_every_race_gets_409_conflict(env: Any, context: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    [pk] = stock(available=5, nights=1)
    reads = bh.handler.batch_get

    def always_stale(*args: Any, **kwargs: Any) -> Any:
        found = reads(*args, **kwargs)
        boto3.resource("dynamodb", region_name=REGION).Table(TABLE).update_item(
            Key={"pk": pk, "sk": "INVENTORY"}, UpdateExpression="SET version = version + :one",
            ExpressionAttributeValues={":one": 1})
        return found

    monkeypatch.setattr(bh.handler, "batch_get", always_stale)
    status, body = post(booking(nights=1), context)
    assert status == 409 and "retry" in body["error"]
    assert night(pk)["available_units"] == 5 and items("BOOKING#") == []


def test_each_changed_night_is_published_for_the_propertys_pms(env: Any, context: Any) -> None:
    stock(available=5)
    post(booking(), context)
    messages = boto3.client("sqs", region_name=REGION).receive_message(
        QueueUrl=env["queue"], MaxNumberOfMessages=10, MessageAttributeNames=["All"])["Messages"]
    bodies = sorted((json.loads(m["Body"]) for m in messages), key=lambda b: b["stay_date"])
    assert [(b["stay_date"], b["available_units"], b["version"], b["pms_id"]) for b in bodies] == [
        (stay(30), 4, 2, "opera"), (stay(31), 4, 2, "opera")]
    assert {m["MessageAttributes"]["pms_id"]["StringValue"] for m in messages} == {"opera"}


def test_a_failed_publish_does_not_undo_the_booking(env: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    [pk] = stock(available=5, nights=1)
    monkeypatch.setenv("INVENTORY_TOPIC_ARN", f"arn:aws:sns:{REGION}:123456789012:no-such-topic")
    status, _ = post(booking(nights=1), context)
    assert status == 201 and night(pk)["available_units"] == 4


@pytest.mark.parametrize(("change", "field"), [
    ({"check_in": "2020-01-01"}, "check_in"),
    ({"units": 0}, "units"),
    ({"nights": 0}, "nights"),
    ({"nights": 15}, "nights"),
    ({"units": True}, "units"),
    ({"request_id": "not-a-uuid"}, "request_id"),
    ({"property_id": "h1#x"}, "property_id"),
    ({"check_in": "2026-02-30"}, "check_in"),
    ({"surprise": 1}, "surprise"),
])
def test_an_invalid_booking_is_400_naming_the_field_and_writes_nothing(env: Any, context: Any, change: dict[str, Any],
                                                                       field: str) -> None:
    stock()
    before = items()
    status, body = post(booking(**change), context)
    assert (status, body.get("field")) == (400, field), body
    assert items() == before


@pytest.mark.parametrize("raw", ["{", "[1, 2]", '{"units": NaN}', "[" * 3000, b"\xff\xfe".decode("latin-1")])
@pytest.mark.parametrize("base64_encoded", [False, True])
def test_a_body_that_is_not_a_json_object_is_400(env: Any, context: Any, raw: str, base64_encoded: bool) -> None:
    status, body = post(None, context, raw=raw, base64_encoded=base64_encoded)
    assert status == 400 and body["field"] == "body"
    assert items("BOOKING#") == []


def test_a_body_over_4_kib_is_413(env: Any, context: Any) -> None:
    status, body = post(booking(guest_id="g" * 5000), context)
    assert (status, body["field"]) == (413, "body")


def test_a_huge_integer_is_400_naming_its_field(env: Any, context: Any) -> None:
    status, body = post(None, context, raw=json.dumps(booking()).replace('"units": 1', '"units": 1' + "0" * 3000))
    assert (status, body["field"]) == (400, "units")


def test_an_unknown_property_is_404(env: Any, context: Any) -> None:
    status, body = post(booking(property_id="nowhere"), context)
    assert (status, body["field"]) == (404, "property_id")


def test_a_room_the_property_does_not_have_is_404(env: Any, context: Any) -> None:
    status, body = post(booking(room_id="penthouse"), context)
    assert (status, body["field"]) == (404, "room_id")


def test_a_night_not_on_sale_is_409(env: Any, context: Any) -> None:
    status, body = post(booking(check_in=stay(200)), context)
    assert status == 409 and "not on sale" in body["error"]


def availability(context: Any, property_id: str = "h1", **query: str) -> tuple[int, dict[str, Any]]:
    event = {"version": "2.0", "routeKey": "GET /availability/{property_id}",
             "pathParameters": {"property_id": property_id}, "queryStringParameters": query or None}
    response = bh.handler.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def test_availability_answers_from_the_cache_when_it_holds_every_night(env: Any, context: Any) -> None:
    nights = [bh.reservation.Night("h1", room, stay(30), 3, 10, 4, "2026-01-01T00:00:00Z")
              for room in ("deluxe-king", "deluxe-twin", "suite")]
    bh.handler.cache.write_nights(env["redis"], "h1", nights, 900)
    status, body = availability(context, **{"from": stay(30), "nights": "1"})
    assert status == 200 and body["source"] == "cache"
    assert body["rooms"]["deluxe-king"] == {stay(30): 3}


def test_availability_reads_the_table_for_what_the_cache_lacks(env: Any, context: Any) -> None:
    put_night("h1", "suite", stay(30), 6)
    status, body = availability(context, **{"from": stay(30), "nights": "1"})
    assert status == 200 and body["source"] == "table"
    assert body["rooms"]["suite"] == {stay(30): 6} and body["rooms"]["deluxe-king"] == {stay(30): None}


@pytest.mark.parametrize(("query", "field"), [({"nights": "0"}, "nights"), ({"nights": "x"}, "nights"),
                                              ({"from": "2020-01-01"}, "from")])
def test_an_invalid_availability_query_is_400(env: Any, context: Any, query: dict[str, str], field: str) -> None:
    status, body = availability(context, **query)
    assert (status, body["field"]) == (400, field)


def test_an_unknown_route_is_404(env: Any, context: Any) -> None:
    response = bh.handler.lambda_handler({"routeKey": "DELETE /book"}, context)
    assert response["statusCode"] == 404


@relaxed
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20))
def test_any_json_body_is_parsed_or_refused_with_400(payload: Any) -> None:
    try:
        bh.request.parse_booking(json.dumps(payload), False, today(), 14, 9)
    except bh.request.Rejected as rejection:
        assert rejection.status in (400, 413)
