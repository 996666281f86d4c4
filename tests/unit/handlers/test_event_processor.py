"""event_processor: request validation (every rejection path) and the Kinesis write."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .conftest import REGION, load_package, log_records, relaxed
from .factories import api_event

mod = load_package("event_processor", "handler", "validation")
STREAM = "tap-test-activity"

VALID = {
    "event_id": "0b6d6f8e-2f57-4c1e-9a43-3c1c1d2a7e10",
    "user_id": "user_1",
    "content_id": "content-9",
    "position_seconds": 120,
    "duration_seconds": 3600,
    "client_timestamp": "2026-11-23T06:00:00.000Z",
}


def body(**changes: Any) -> dict[str, Any]:
    payload = {**VALID, **changes}
    return {k: v for k, v in payload.items() if v is not ...}


def reject(payload: Any, path: str = "/watch") -> mod.validation.Rejected:
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    with pytest.raises(mod.validation.Rejected) as caught:
        mod.validation.parse_request(path, raw, False)
    return caught.value


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"event_id": ...}, "event_id"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"event_id": 7}, "event_id"),
        ({"user_id": ...}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "a" * 65}, "user_id"),
        ({"user_id": "bad id!"}, "user_id"),
        ({"content_id": ...}, "content_id"),
        ({"content_id": "x/y"}, "content_id"),
        ({"position_seconds": ...}, "position_seconds"),
        ({"position_seconds": -1}, "position_seconds"),
        ({"position_seconds": "12"}, "position_seconds"),
        ({"position_seconds": True}, "position_seconds"),
        ({"position_seconds": 86401, "duration_seconds": 86400}, "position_seconds"),
        ({"duration_seconds": ...}, "duration_seconds"),
        ({"duration_seconds": 0}, "duration_seconds"),
        ({"duration_seconds": 86401}, "duration_seconds"),
        ({"position_seconds": 3601}, "position_seconds"),
        ({"client_timestamp": ...}, "client_timestamp"),
        ({"client_timestamp": "yesterday"}, "client_timestamp"),
        ({"client_timestamp": "2026-11-23T06:00:00+02:00"}, "client_timestamp"),
        ({"client_timestamp": "2026-13-23T06:00:00Z"}, "client_timestamp"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_field_is_rejected_with_400_naming_it(changes: dict[str, Any], field: str) -> None:
    rejection = reject(body(**changes))
    assert (rejection.status, rejection.field) == (400, field)


def test_non_json_body_is_rejected_with_400() -> None:
    rejection = reject("{not json")
    assert (rejection.status, rejection.field) == (400, "body")


HOSTILE_BODIES = {
    "nested 3000 arrays deep": b"[" * 3000 + b"]" * 3000,
    "nested 1200 objects deep": b'{"a":' * 1200 + b"1" + b"}" * 1200,
    "an integer of 5000 digits": json.dumps(VALID)[:-1].encode() + b', "n": ' + b"9" * 5000 + b"}",
    "NaN": json.dumps(body(position_seconds=float("nan"))).encode(),
    "Infinity": json.dumps(body(duration_seconds=float("inf"))).encode(),
    "invalid UTF-8": json.dumps(VALID).replace("user_1", "user_\\xff").encode().replace(b"\\xff", b"\xff"),
}


# API Gateway hands a function a body that is not UTF-8 base64-encoded; any other body may come either way.
HOSTILE_CASES = [
    pytest.param(raw, encoded, id=f"{name}, {'base64' if encoded else 'text'}")
    for name, raw in HOSTILE_BODIES.items()
    for encoded in (False, True)
    if encoded or name != "invalid UTF-8"
]


@pytest.mark.parametrize(("raw", "encoded"), HOSTILE_CASES)
def test_hostile_json_is_rejected_with_400_naming_the_body(raw: bytes, encoded: bool) -> None:
    sent = base64.b64encode(raw).decode() if encoded else raw.decode()
    with pytest.raises(mod.validation.Rejected) as caught:
        mod.validation.parse_request("/watch", sent, encoded)
    assert (caught.value.status, caught.value.field) == (400, "body")


NOW = mod.validation.datetime(2026, 11, 23, 6, 0, tzinfo=mod.validation.UTC)


def test_client_timestamp_past_the_future_tolerance_is_rejected_with_400() -> None:
    raw = json.dumps(body(client_timestamp="2026-11-23T06:05:01.000Z"))
    with pytest.raises(mod.validation.Rejected) as caught:
        mod.validation.parse_request("/watch", raw, False, now=NOW)
    assert (caught.value.status, caught.value.field) == (400, "client_timestamp")


def test_client_clock_ahead_within_the_tolerance_is_accepted() -> None:
    raw = json.dumps(body(client_timestamp="2026-11-23T06:05:00.000Z"))
    assert mod.validation.parse_request("/watch", raw, False, now=NOW).client_timestamp == "2026-11-23T06:05:00.000Z"


def test_json_array_body_is_rejected_with_400() -> None:
    assert reject([VALID]).field == "body"


def test_missing_body_is_rejected_with_400() -> None:
    with pytest.raises(mod.validation.Rejected) as caught:
        mod.validation.parse_request("/watch", None, False)
    assert (caught.value.status, caught.value.field) == (400, "body")


def test_invalid_base64_body_is_rejected_with_400() -> None:
    with pytest.raises(mod.validation.Rejected) as caught:
        mod.validation.parse_request("/watch", "!!!", True)
    assert caught.value.status == 400


def test_body_over_8_kib_is_rejected_with_413() -> None:
    assert reject(" " * 8193).status == 413


def test_body_of_exactly_8_kib_is_not_rejected_for_size() -> None:
    raw = json.dumps(VALID)
    padded = raw + " " * (8192 - len(raw))
    assert mod.validation.parse_request("/watch", padded, False).event_id == VALID["event_id"]


def test_unknown_route_is_rejected_with_404() -> None:
    assert reject(VALID, path="/rewind").status == 404


@pytest.mark.parametrize("path", ["/watch", "/pause", "/complete"])
def test_event_type_comes_from_the_path(path: str) -> None:
    assert mod.validation.parse_request(path, json.dumps(VALID), False).event_type == path[1:]


def test_timestamps_are_normalised_to_milliseconds_utc() -> None:
    event = mod.validation.parse_request("/watch", json.dumps(body(client_timestamp="2026-11-23T06:00:00+00:00")), False)
    assert event.client_timestamp == "2026-11-23T06:00:00.000Z"


@relaxed
@given(
    position=st.floats(min_value=0, max_value=86400, allow_nan=False),
    extra=st.floats(min_value=0, max_value=86400, allow_nan=False),
)
def test_any_position_within_duration_is_accepted(position: float, extra: float) -> None:
    duration = min(86400.0, max(1.0, position + extra))
    position = min(position, duration)
    raw = json.dumps(body(position_seconds=position, duration_seconds=duration))
    event = mod.validation.parse_request("/pause", raw, False)
    assert 0 <= event.progress <= 1


@pytest.fixture
def stream(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    kinesis = boto3.client("kinesis", region_name=REGION)
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    monkeypatch.setenv("STREAM_NAME", STREAM)
    return kinesis


def read_stream(kinesis: Any) -> list[dict[str, Any]]:
    shard = kinesis.describe_stream(StreamName=STREAM)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    return [{"key": r["PartitionKey"], "data": json.loads(r["Data"])} for r in records]


def test_valid_event_returns_202_with_event_id(stream: Any, context: Any) -> None:
    response = mod.handler.lambda_handler(api_event("/complete", json.dumps(VALID)), context)
    assert (response["statusCode"], json.loads(response["body"])) == (
        202,
        {"event_id": VALID["event_id"], "status": "accepted"},
    )


def test_valid_event_writes_one_record_partitioned_by_user(stream: Any, context: Any) -> None:
    mod.handler.lambda_handler(api_event("/complete", json.dumps(VALID)), context)
    [record] = read_stream(stream)
    assert record["key"] == "user_1"
    assert {k: record["data"][k] for k in (*VALID, "event_type")} == {**VALID, "event_type": "complete"}


def test_base64_encoded_body_is_accepted(stream: Any, context: Any) -> None:
    encoded = base64.b64encode(json.dumps(VALID).encode()).decode()
    response = mod.handler.lambda_handler(api_event("/watch", encoded, base64_encoded=True), context)
    assert response["statusCode"] == 202


def test_rejected_request_writes_nothing(stream: Any, context: Any) -> None:
    response = mod.handler.lambda_handler(api_event("/watch", json.dumps(body(user_id="no spaces"))), context)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["field"] == "user_id"
    assert read_stream(stream) == []


@pytest.mark.parametrize("raw", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_hostile_request_returns_400_and_writes_nothing(stream: Any, context: Any, raw: bytes) -> None:
    encoded = base64.b64encode(raw).decode()
    response = mod.handler.lambda_handler(api_event("/watch", encoded, base64_encoded=True), context)
    assert (response["statusCode"], json.loads(response["body"])["field"]) == (400, "body")
    assert read_stream(stream) == []


def test_oversize_request_returns_413(stream: Any, context: Any) -> None:
    response = mod.handler.lambda_handler(api_event("/watch", "x" * 9000), context)
    assert response["statusCode"] == 413


def test_kinesis_failure_returns_500_internal(stream: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_NAME", "missing-stream")
    response = mod.handler.lambda_handler(api_event("/watch", json.dumps(VALID)), context)
    assert (response["statusCode"], json.loads(response["body"])) == (500, {"error": "internal"})



def test_accepted_event_is_logged_with_the_fields_the_saved_queries_read(
        stream: Any, context: Any) -> None:
    with log_records(mod.handler.logger) as records:
        mod.handler.lambda_handler(api_event("/watch", json.dumps(VALID)), context)
    [line] = [r.__dict__ for r in records if r.getMessage() == "event accepted"]
    fields = ("user_id", "content_id", "position_seconds", "duration_seconds")
    assert {k: line[k] for k in ("event_type", *fields)} == {"event_type": "watch", **{k: VALID[k] for k in fields}}
