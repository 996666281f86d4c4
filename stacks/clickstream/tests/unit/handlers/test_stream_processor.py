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
