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
Sketch = load_package("clickstream_common", "sketch").sketch.Sketch


def click(user: str = "u1", page: str = "home", event_type: str = "page_view", event_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id or str(uuid.uuid4()), "user_id": user, "session_id": "s1", "page": page,
            "event_type": event_type, "occurred_at": "2026-12-02T10:00:00.123+00:00"}


def record(sequence: int, payload: Any) -> dict[str, Any]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {"eventSource": "aws:kinesis", "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            "kinesis": {"sequenceNumber": str(sequence), "partitionKey": "u1",
                        "data": base64.b64encode(data).decode()}}


def table_items() -> list[dict[str, Any]]:
    return boto3.resource("dynamodb", region_name=REGION).Table(TABLE).scan()["Items"]


def items() -> list[dict[str, Any]]:
    """The stored events' items (per user and per page), not the aggregates."""
    return [i for i in table_items() if not i["pk"].startswith("AGG#")]


def aggregate(pk: str, hour: str = "2026-12-02T10") -> tuple[dict[str, Any], int]:
    """An hour's counters and its distinct count."""
    found = {i["sk"]: i for i in table_items() if i["pk"] == pk}
    counters = {k: int(v) for k, v in found.get(f"{hour}#count", {}).items() if k not in ("pk", "sk")}
    sketch = found.get(f"{hour}#distinct")
    return counters, Sketch.loads(bytes(sketch["sketch"])).count() if sketch else 0


def dynamodb_refuses(monkeypatch: pytest.MonkeyPatch, operation: str, error: ClientError,
                     when: Any = lambda kwargs: True) -> list[int]:
    """The function's DynamoDB client answers `error` to `operation` calls `when` says; returns the calls made."""
    client = sp.handler.aws.client("dynamodb")
    real = getattr(client, operation)
    calls: list[int] = []

    def refuse(**kwargs: Any) -> Any:
        calls.append(1)
        if when(kwargs):
            raise error
        return real(**kwargs)

    monkeypatch.setattr(client, operation, refuse)
    return calls


def cancelled(*codes: str) -> ClientError:
    return ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                        "CancellationReasons": [{"Code": c} for c in codes]}, "TransactWriteItems")


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


def test_an_event_counts_once_in_its_pages_and_its_users_hour_however_often_it_is_delivered(aws: Any,
                                                                                             context: Any) -> None:
    first, second = click(user="u1", page="home"), click(user="u2", page="home", event_type="click")
    sp.handler.lambda_handler({"Records": [record(1, first), record(2, second)]}, context)
    sp.handler.lambda_handler({"Records": [record(1, first), record(2, second), record(3, first)]}, context)
    assert aggregate("AGG#PAGE#home") == ({"events": 2, "t_page_view": 1, "t_click": 1}, 2)
    assert aggregate("AGG#USER#u1") == ({"events": 1, "t_page_view": 1}, 1)


def test_events_of_another_hour_count_in_that_hour(aws: Any, context: Any) -> None:
    late = {**click(), "occurred_at": "2026-12-02T09:59:59.999Z"}
    sp.handler.lambda_handler({"Records": [record(1, click()), record(2, late)]}, context)
    assert aggregate("AGG#PAGE#home", "2026-12-02T09") == ({"events": 1, "t_page_view": 1}, 1)
    assert aggregate("AGG#PAGE#home", "2026-12-02T10") == ({"events": 1, "t_page_view": 1}, 1)


def test_a_batch_larger_than_a_transaction_is_stored_and_counted_whole(aws: Any, context: Any) -> None:
    records = [record(i, click(user=f"u{i}", page=f"p{i % 7}")) for i in range(120)]
    assert sp.handler.lambda_handler({"Records": records}, context) == {"batchItemFailures": []}
    assert len(items()) == 240
    assert aggregate("AGG#PAGE#p0")[0]["events"] == 18 and aggregate("AGG#PAGE#p0")[1] == 18


def test_a_transaction_still_refused_is_retried_from_its_first_record_and_counted_once(
        aws: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    records = [record(5, click()), record(6, click(user="u2"))]
    with monkeypatch.context() as refusing:
        refusing.setattr(sp.handler, "ATTEMPTS", 2)
        calls = dynamodb_refuses(refusing, "transact_write_items", cancelled("None", "ThrottlingError"))
        assert sp.handler.lambda_handler({"Records": records}, context) == {
            "batchItemFailures": [{"itemIdentifier": "5"}]}
    assert len(calls) == 2 and items() == []
    assert sp.handler.lambda_handler({"Records": records}, context) == {"batchItemFailures": []}
    assert aggregate("AGG#PAGE#home") == ({"events": 2, "t_page_view": 2}, 2)


def test_a_conflict_with_another_batch_is_retried_until_it_goes_through(aws: Any, context: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    conflicts = iter([True, True, False])
    dynamodb_refuses(monkeypatch, "transact_write_items", cancelled("None", "None", "TransactionConflict"),
                     when=lambda kwargs: next(conflicts))
    assert sp.handler.lambda_handler({"Records": [record(1, click())]}, context) == {"batchItemFailures": []}
    assert aggregate("AGG#PAGE#home") == ({"events": 1, "t_page_view": 1}, 1)


def test_a_sketch_not_merged_is_retried_and_nothing_counted_twice(aws: Any, context: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    refused = ClientError({"Error": {"Code": "InternalServerError", "Message": "try again"}}, "PutItem")
    records = [record(1, click(user="u1")), record(2, click(user="u2"))]
    with monkeypatch.context() as refusing:
        dynamodb_refuses(refusing, "put_item", refused)
        assert sp.handler.lambda_handler({"Records": records}, context) == {
            "batchItemFailures": [{"itemIdentifier": "1"}]}
    assert aggregate("AGG#PAGE#home") == ({"events": 2, "t_page_view": 2}, 0)
    assert sp.handler.lambda_handler({"Records": records}, context) == {"batchItemFailures": []}
    assert aggregate("AGG#PAGE#home") == ({"events": 2, "t_page_view": 2}, 2)


def test_a_sketch_changed_by_another_batch_meanwhile_keeps_both_batches_values(aws: Any, context: Any,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sp.handler.lambda_handler({"Records": [record(1, click(user="u1"))]}, context)
    stale = sp.handler.batch_get
    monkeypatch.setattr(sp.handler, "batch_get", lambda *a, **k: {TABLE: []})  # read before u1's batch wrote
    sp.handler.lambda_handler({"Records": [record(2, click(user="u2"))]}, context)
    monkeypatch.setattr(sp.handler, "batch_get", stale)
    assert aggregate("AGG#PAGE#home")[1] == 2


def test_a_failed_table_call_fails_the_whole_batch_rather_than_dropping_it(aws: Any, context: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    refused = ClientError({"Error": {"Code": "ValidationException", "Message": "no"}}, "TransactWriteItems")
    dynamodb_refuses(monkeypatch, "transact_write_items", refused)
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
