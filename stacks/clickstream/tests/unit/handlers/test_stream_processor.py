"""stream_processor: every record is stored once or parked; none is lost, none counted twice."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from .conftest import REGION, TABLE, load_package, relaxed

sp = load_package("stream_processor", "handler")


def click(user: str = "u1", page: str = "home", event_type: str = "page_view", event_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id or str(uuid.uuid4()), "user_id": user, "session_id": "s1", "page": page,
            "event_type": event_type, "occurred_at": "2026-12-02T10:00:00.123+00:00"}


def record(sequence: int, payload: Any) -> dict[str, Any]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {"eventSource": "aws:kinesis", "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            "kinesis": {"sequenceNumber": str(sequence), "partitionKey": "u1",
                        "data": base64.b64encode(data).decode()}}


def items() -> list[dict[str, Any]]:
    return boto3.resource("dynamodb", region_name=REGION).Table(TABLE).scan()["Items"]


def parked(queue: str) -> list[dict[str, Any]]:
    messages = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def test_each_event_is_stored_per_user_and_per_page(aws: Any, context: Any) -> None:
    event = click(user="u7", page="checkout")
    assert sp.handler.lambda_handler({"Records": [record(1, event)]}, context) == {"batchItemFailures": []}
    stored = sorted((i["pk"], i["sk"]) for i in items())
    assert stored == [("PAGE#checkout", f"2026-12-02T10:00:00.123Z#{event['event_id']}"),
                      ("USER#u7", f"2026-12-02T10:00:00.123Z#{event['event_id']}")]


def test_a_replayed_record_is_not_stored_twice(aws: Any, context: Any) -> None:
    event = click()
    sp.handler.lambda_handler({"Records": [record(1, event)]}, context)
    sp.handler.lambda_handler({"Records": [record(1, event), record(2, event)]}, context)
    assert len(items()) == 2


def test_a_poison_record_is_parked_with_its_reason_and_the_rest_stored(aws: Any, context: Any) -> None:
    response = sp.handler.lambda_handler({"Records": [record(1, click()), record(2, b"{not json"),
                                                      record(3, {**click(), "event_type": "teleport"})]}, context)
    assert response == {"batchItemFailures": []}
    found = sorted(parked(aws["queue"]), key=lambda p: p["sequence_number"])
    assert [p["sequence_number"] for p in found] == ["2", "3"]
    assert found[0]["reason"] == "not JSON" and found[1]["reason"].startswith("event_type must be one of")
    assert len(items()) == 2


def test_writes_still_refused_are_retried_from_the_first_failed_record(aws: Any, context: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def throttled(table: str, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [item for item in batch if item["user_id"] == "slow"]

    monkeypatch.setattr(sp.handler, "batch_put", throttled)
    response = sp.handler.lambda_handler({"Records": [record(5, click()), record(6, click(user="slow")),
                                                      record(7, click(user="slow"))]}, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "6"}]}


def test_a_failed_table_call_fails_the_whole_batch_rather_than_dropping_it(aws: Any, context: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(table: str, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                          "BatchWriteItem")

    monkeypatch.setattr(sp.handler, "batch_put", unavailable)
    response = sp.handler.lambda_handler({"Records": [record(8, click()), record(9, click())]}, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "8"}]}


def test_a_poison_record_that_cannot_be_parked_is_retried(aws: Any, context: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POISON_QUEUE_URL", f"https://sqs.{REGION}.amazonaws.com/123456789012/missing")
    response = sp.handler.lambda_handler({"Records": [record(4, b"junk")]}, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "4"}]}


@relaxed
@given(st.binary(max_size=300))
def test_any_bytes_are_an_event_or_an_invalid_event(raw: bytes) -> None:
    try:
        sp.handler.parse_event(raw)
    except ValueError:
        return


def test_a_time_at_the_edge_of_the_calendar_is_parked_not_a_failed_batch(aws: Any, context: Any) -> None:
    edge = {**click(), "occurred_at": "0001-01-01T00:00:00+01:00"}  # UTC would be year 0
    response = sp.handler.lambda_handler({"Records": [record(1, click()), record(2, edge), record(3, click())]},
                                         context)
    assert response == {"batchItemFailures": []}
    [poison] = parked(aws["queue"])
    assert poison["sequence_number"] == "2" and "occurred_at" in poison["reason"]
    assert len(items()) == 4


# Valid JSON objects whose fields take hostile values: the shapes a producer's bug or an attacker
# sends, which random bytes almost never reach.
HOSTILE_TEXT = st.one_of(st.text(max_size=40), st.sampled_from([
    "", " ", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-02-30T00:00:00Z", "2026-12-02T10:00:00",
    "2026-12-02T10:00:00+24:00", "2026-12-02T10:00:00+23:59", "NaN", "\x00", "../../etc", "a" * 129, "home page"]))
HOSTILE_VALUE = st.one_of(HOSTILE_TEXT, st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                          st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                               max_size=2))


EDGE_TIMES = st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-02-30T00:00:00Z",
                              "2026-12-02T10:00:00", "2026-12-02T10:00:00+24:00", "2026-12-02T10:00:00+23:59"])
# Per field: what a hostile producer puts there (a missing field is `...`).
FIELD_VALUES = {
    "event_id": st.one_of(st.uuids().map(str), HOSTILE_VALUE, st.just(...)),
    "user_id": st.one_of(HOSTILE_VALUE, st.just(...)),
    "session_id": st.one_of(HOSTILE_VALUE, st.just(...)),
    "page": st.one_of(HOSTILE_VALUE, st.just(...)),
    "event_type": st.one_of(st.sampled_from(["page_view", "click", "purchase"]), HOSTILE_VALUE, st.just(...)),
    "occurred_at": st.one_of(EDGE_TIMES, st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
                             HOSTILE_VALUE, st.just(...)),
}
CHANGE = st.sampled_from(sorted(FIELD_VALUES)).flatmap(lambda field: st.tuples(st.just(field), FIELD_VALUES[field]))


@relaxed
@given(st.lists(CHANGE, min_size=1, max_size=3))
def test_any_event_with_hostile_fields_is_an_event_or_an_invalid_event(changes: list[tuple[str, Any]]) -> None:
    payload = click()
    for field, value in changes:  # a valid event with one to three fields replaced or removed (...)
        if value is ...:
            payload.pop(field, None)
        else:
            payload[field] = value
    try:
        event = sp.handler.parse_event(json.dumps(payload).encode())
    except sp.handler.InvalidEvent:
        return
    assert event.occurred_at.endswith("Z") and len(event.items()) == 2
