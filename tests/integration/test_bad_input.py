"""Flow 7: bad input is refused at the door, and poison that gets past it is parked.

- Malformed, invalid, hostile (nesting too deep, a 5,000-digit number, NaN, invalid UTF-8, whether
  sent as JSON, which the API's model checks, or as text, which reaches the function) and oversize
  requests → 4xx, and no record reaches the viewing stream
  (read from LATEST iterators taken before the request; event_processor writes before it
  answers, so reading up to now after the answer is conclusive).
- A poison Kinesis record (non-JSON, between two valid ones in one PutRecords) → each stream
  consumer that gets it (every mapping without a filter) reports only it in batchItemFailures,
  so the valid records of the batch are applied; the retries fail again and the mapping sends
  the failed part of the batch (from the poison on) to the on-failure queue (``stream_failures``),
  whose alarm fires.
  Records after a poison are applied on the first attempt and re-applied idempotently, so
  concurrent tests lose nothing; they only wait behind the retries.
- A poison SQS message on the analytics queue → reported failed on every delivery (meanwhile the
  queue's oldest-message alarm fires) → moved to the analytics DLQ by the redrive policy after
  maxReceiveCount receives.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from tapharness.deployed import Target
from tapharness.retry import wait_for

from .flows import (
    HOP_TIMEOUT_S,
    Api,
    Clock,
    ViewingEvent,
    activity_items,
    new_id,
    queue_attributes,
    records_since,
    stream_iterators,
    take_messages,
)

pytestmark = pytest.mark.integration

MAX_WAIT_VAR = "TAPSTACK_MAX_WAIT_S"


def valid_body(user: str) -> dict[str, Any]:
    return ViewingEvent("watch", user, new_id("content"), 10.0, 100.0, Clock().tick()).body()


def invalid_json(user: str) -> bytes:
    return json.dumps(valid_body(user)).encode()[:-12]


def extra_property(user: str) -> bytes:
    return json.dumps({**valid_body(user), "extra": 1}).encode()


def position_beyond_duration(user: str) -> bytes:
    return json.dumps({**valid_body(user), "position_seconds": 101.0}).encode()


def oversize(user: str) -> bytes:
    """A schema-valid body over the 8 KiB limit (JSON whitespace is free to add)."""
    return json.dumps(valid_body(user), indent=9000).encode()


@pytest.mark.parametrize(("make_body", "status"), [
    (invalid_json, 400), (extra_property, 400), (position_beyond_duration, 400), (oversize, 413)],
    ids=["invalid-json", "extra-property", "position-beyond-duration", "oversize"])
def test_bad_request_is_refused_without_a_stream_record(
        target: Target, api: Api, make_body: Callable[[str], bytes], status: int) -> None:
    user = new_id("user")
    body = make_body(user)
    iterators = stream_iterators(target)
    response = api.post_bytes("watch", body)
    assert response.status == status, f"{len(body)}-byte body answered {response.status} {response.body!r}"
    leaked = [data for data in records_since(target, iterators) if user.encode() in data]
    assert not leaked, f"records for {user} reached the stream: {leaked}"


HOSTILE = {
    "nested-too-deep": lambda user: b"[" * 3000 + json.dumps(valid_body(user)).encode() + b"]" * 3000,
    "5000-digit-number": lambda user: json.dumps(valid_body(user)).replace("10.0", "9" * 5000, 1).encode(),
    "nan": lambda user: json.dumps({**valid_body(user), "position_seconds": float("nan")}).encode(),
    "invalid-utf8": lambda user: json.dumps(valid_body(user)).replace(user, f"{user}\udcff", 1).encode(
        "utf-8", "surrogateescape"),
}


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
@pytest.mark.parametrize("make_body", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_json_is_400_in_every_content_type_without_a_stream_record(
        target: Target, api: Api, make_body: Callable[[str], bytes], content_type: str) -> None:
    user = new_id("user")
    body = make_body(user)
    iterators = stream_iterators(target)
    response = api.post_bytes("watch", body, content_type)
    assert response.status == 400, f"{len(body)}-byte {content_type} body answered {response.status} {response.body!r}"
    leaked = [data for data in records_since(target, iterators) if user.encode() in data]
    assert not leaked, f"records for {user} reached the stream: {leaked}"


def batch_info(message: dict[str, Any]) -> dict[str, Any]:
    return json.loads(message["Body"]).get("KinesisBatchInfo") or {}


def covers(info: dict[str, Any], sequence: str) -> bool:
    return int(info.get("startSequenceNumber", -1)) <= int(sequence) <= int(info.get("endSequenceNumber", -1))


def unfiltered_consumers(target: Target, stream_arn: str) -> set[str]:
    """Functions whose mapping on the stream has no filter: they get every record, poison included
    (a filter on ``data`` drops records that are not JSON before the function sees them)."""
    pages = target.client("lambda").get_paginator("list_event_source_mappings").paginate(EventSourceArn=stream_arn)
    return {mapping["FunctionArn"].split(":")[6] for page in pages for mapping in page["EventSourceMappings"]
            if not (mapping.get("FilterCriteria") or {}).get("Filters")}


def test_poison_record_goes_to_the_on_failure_queue_while_the_rest_of_its_batch_is_applied(
        target: Target, latency: Callable[..., float]) -> None:
    stream_arn = target.output("kinesis_stream_arn")
    failures_url = target.output("sqs_queue_urls", "stream_failures")
    consumers = unfiltered_consumers(target, stream_arn)
    assert consumers, f"no event source mapping reads {stream_arn} unfiltered"
    sqs = target.client("sqs")

    def parked() -> int:
        return int(sqs.get_queue_attributes(QueueUrl=failures_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"]["ApproximateNumberOfMessages"])

    parked_before = parked()
    user, clock = new_id("user"), Clock()
    before, after = (ViewingEvent("watch", user, new_id("content"), 10.0, 100.0, clock.tick()) for _ in range(2))
    started = time.monotonic()
    written = target.client("kinesis").put_records(StreamName=target.output("kinesis_stream_name"), Records=[
        {"Data": json.dumps(before.record()).encode(), "PartitionKey": user},
        {"Data": f"not json: {user}".encode(), "PartitionKey": user},
        {"Data": json.dumps(after.record()).encode(), "PartitionKey": user}])["Records"]
    sequences = [record["SequenceNumber"] for record in written]
    wait_for("the first on-failure record in stream_failures", parked, 3 * HOP_TIMEOUT_S,
             ready=lambda count: count > parked_before, max_interval=1.0)
    # While it waits there, the failure queue's alarm fires (2 of 3 five-minute samples with a message).
    assert target.alarm_fires(str(target.output("alarm_names", "dlq_messages_stream_failures"))) == "ALARM"
    reported: list[dict[str, Any]] = []

    def failing_functions() -> set[str]:
        reported.extend(take_messages(target, failures_url, lambda m: batch_info(m).get("streamArn") == stream_arn
                                      and covers(batch_info(m), sequences[1])))
        return {json.loads(m["Body"])["requestContext"]["functionArn"].split(":")[6] for m in reported}

    wait_for(f"on-failure records covering the poison (sequence {sequences[1]}) from {sorted(consumers)}",
             failing_functions, 3 * HOP_TIMEOUT_S, ready=lambda names: names >= consumers, max_interval=1.0)
    latency("poison PutRecord → stream_failures", started)
    assert all(covers(batch_info(m), sequences[2]) for m in reported), (
        f"the record after the poison ({sequences[2]}) was not in the discarded batch: {[batch_info(m) for m in reported]}")
    items = activity_items(target, user)
    assert {before.sort_key, after.sort_key} <= set(items), (
        f"records of the poison's batch were not applied; user_activity of {user} has {sorted(items)}")


@pytest.mark.parametrize("queue", ["analytics", "achievements"])
def test_poison_message_moves_to_the_dead_letter_queue_after_max_receive_count_and_raises_its_alarm(
        target: Target, latency: Callable[..., float], queue: str) -> None:
    attributes = queue_attributes(target, queue)
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == target.output("sqs_queue_arns", f"{queue}_dlq"), redrive
    max_receive, visibility = int(redrive["maxReceiveCount"]), float(attributes["VisibilityTimeout"])
    bound = (max_receive + 1) * visibility + HOP_TIMEOUT_S
    budget = float(os.environ.get(MAX_WAIT_VAR, "900"))
    if bound > budget:
        pytest.skip(f"{max_receive} receives × {visibility:.0f}s visibility need up to {bound:.0f}s, over the "
                    f"{budget:.0f}s budget: raise {MAX_WAIT_VAR}, or in the sandbox deploy with "
                    "`up --var timeout_s=15 --var visibility_timeout_seconds=15` (what tapharness.signoff does)")
    marker = new_id("poison")
    body = f"not json: {marker}"
    started = time.monotonic()
    target.client("sqs").send_message(QueueUrl=target.output("sqs_queue_urls", queue), MessageBody=body,
                                      MessageGroupId=marker, MessageDeduplicationId=marker)
    dlq_url = target.output("sqs_queue_urls", f"{queue}_dlq")
    sqs = target.client("sqs")
    if target.is_sandbox:
        # While the consumer fails it the message ages, a minute a look on the sandbox's clock, past
        # the oldest-message threshold before its receives run out (in an account that takes the
        # threshold's real minutes, 30 in dev, longer than the message lives here).
        assert target.alarm_fires(str(target.output("alarm_names", f"sqs_oldest_message_{queue}")),
                                  timeout=min(bound, 60)) == "ALARM"

    def visible_on_the_dlq() -> int:
        return int(sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"]["ApproximateNumberOfMessages"])

    wait_for(f"the poison message {marker} on the {queue} DLQ", visible_on_the_dlq, bound, max_interval=5.0)
    latency(f"poison SQS message → {queue} DLQ", started)
    # While it waits there, the DLQ's alarm fires (2 of 3 one-minute samples with a message).
    assert target.alarm_fires(str(target.output("alarm_names", f"dlq_messages_{queue}_dlq"))) == "ALARM"
    parked = wait_for(f"the poison message {marker} read back from the DLQ",
                      lambda: take_messages(target, dlq_url, lambda m: m["Body"] == body), 30)
    receives = int(parked[0]["Attributes"]["ApproximateReceiveCount"])
    assert receives > max_receive, f"moved after {receives} receives, expected more than {max_receive}"
