"""Kinesis clickstream -> DynamoDB behaviour and its hourly aggregates, losing nothing, counting once.

Valid events are stored per user and per page in transactions that also add them to their page's
and user's hourly counters (clickstream_common.aggregates); the per-user item is put on condition
it is new, so a retried or replayed record is neither stored nor counted twice: its transaction is
cancelled for that item and the rest go through again. The distinct sketches of the touched hours
are merged next (idempotent, guarded by version). A record that is not an event (poison) is parked
in the stream_failures queue with its reason and acknowledged. What DynamoDB still refuses after
the retries (throttling, conflicts) is reported as a batch item failure: Lambda retries from the
first one, bisecting, and gives up at the records' maximum age, keeping them in the given-up bucket.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from clickstream_common import aggregates
from clickstream_common.events import ClickEvent, InvalidEvent, parse_event
from tap_common import aws, batch, config
from tap_common.dynamo import UnprocessedError, batch_get, deserialize, serialize
from tap_common.logs import logger as make_logger

logger = make_logger()


def decode(records: list[dict[str, Any]]) -> tuple[list[tuple[str, ClickEvent]], list[tuple[dict[str, Any], str]]]:
    """(sequence number, event) of the valid records, (record, reason) of the poison ones."""
    events: list[tuple[str, ClickEvent]] = []
    poison: list[tuple[dict[str, Any], str]] = []
    for record in records:
        try:
            raw = base64.b64decode(record["kinesis"]["data"], validate=True)
            events.append((record["kinesis"]["sequenceNumber"], parse_event(raw)))
        except (binascii.Error, ValueError) as exc:  # InvalidEvent is a ValueError
            poison.append((record, str(exc) if isinstance(exc, InvalidEvent) else "data is not base64"))
    return events, poison


def park(poison: list[tuple[dict[str, Any], str]]) -> set[str]:
    """Send poison records to the failure queue; returns the sequence numbers that could not be parked."""
    unparked: set[str] = set()
    for start in range(0, len(poison), 10):
        chunk = poison[start:start + 10]
        entries = [{"Id": str(i), "MessageBody": json.dumps({
            "reason": reason, "sequence_number": record["kinesis"]["sequenceNumber"],
            "partition_key": record["kinesis"].get("partitionKey"), "source": record.get("eventSourceARN"),
            "data": record["kinesis"]["data"]})} for i, (record, reason) in enumerate(chunk)]
        try:
            response = aws.client("sqs").send_message_batch(QueueUrl=config.require("POISON_QUEUE_URL"), Entries=entries)
            failed_ids = {int(f["Id"]) for f in response.get("Failed", [])}
        except (ClientError, BotoCoreError):
            logger.exception("poison records not parked")
            failed_ids = set(range(len(chunk)))
        unparked.update(chunk[i][0]["kinesis"]["sequenceNumber"] for i in failed_ids)
    return unparked


ATTEMPTS = 8  # per transaction and per sketch: conflicts with the other batches on a hot hour
# Sketches are merged concurrently: one conditional write per touched hour, each waiting on the network.
_merges = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sketch")
RETRIED_CANCELLATIONS = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded",
                         "RequestLimitExceeded", "None"}


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.02 * 2 ** attempt, 1.0)))  # full jitter: conflicting batches part


def _transact(table: str, events: list[ClickEvent]) -> bool:
    """Store and count `events` once; True when each is stored (now or before)."""
    pending = events
    for attempt in range(ATTEMPTS):
        if not pending:
            return True
        try:
            aws.client("dynamodb").transact_write_items(TransactItems=aggregates.transact_items(table, pending))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            codes = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
            stored_before = {i // 2 for i, code in enumerate(codes[:2 * len(pending)])
                             if i % 2 == 0 and code == "ConditionalCheckFailed"}
            if stored_before:  # counted when first stored: the others go through again at once
                pending = [e for i, e in enumerate(pending) if i not in stored_before]
                continue
            if not set(codes) <= RETRIED_CANCELLATIONS:
                raise
            _backoff(attempt)
    return not pending


def store(events: list[tuple[str, ClickEvent]]) -> set[str]:
    """Store and count every event; returns the sequence numbers of events not stored."""
    table = config.require("BEHAVIOUR_TABLE")
    first: dict[tuple[str, str], tuple[str, ClickEvent]] = {}
    for sequence, event in events:
        first.setdefault((event.event_id, event.occurred_at), (sequence, event))  # the same event twice in a batch
    failed: set[str] = set()
    for chunk in aggregates.transaction_chunks([event for _, event in first.values()]):
        try:
            stored = _transact(table, chunk)
        except (ClientError, BotoCoreError):
            logger.exception("behaviour writes failed", extra={"events": len(chunk)})
            stored = False
        if not stored:
            ids = {event.event_id for event in chunk}
            failed.update(sequence for sequence, event in events if event.event_id in ids)
    return failed | merge_distinct(table, [(s, e) for s, e in events if s not in failed])


def _merge_one(table: str, update: aggregates.DistinctUpdate, item: dict[str, Any] | None) -> None:
    key = aggregates.distinct_key(update.pk, update.hour)
    for attempt in range(ATTEMPTS):
        sketch = aggregates.merged_sketch(bytes(item["sketch"]) if item else None, update.values)
        if sketch is None:
            return
        version = int(item["version"]) if item else 0
        try:
            aws.client("dynamodb").put_item(
                TableName=table, Item=serialize({**key, "sketch": sketch.dumps(), "version": version + 1}),
                ConditionExpression="attribute_not_exists(pk) OR version = :v",
                ExpressionAttributeValues={":v": {"N": str(version)}})
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
        _backoff(attempt)
        found = aws.client("dynamodb").get_item(TableName=table, Key=serialize(key), ConsistentRead=True).get("Item")
        item = deserialize(found) if found else None
    raise RuntimeError(f"sketch {key} kept changing under {ATTEMPTS} attempts")


def merge_distinct(table: str, events: list[tuple[str, ClickEvent]]) -> set[str]:
    """Merge the stored events into their hours' distinct sketches; returns the sequence numbers
    of events whose sketches could not be merged (retried: merging again changes nothing)."""
    updates = aggregates.distinct_updates(events)
    if not updates:
        return set()
    try:
        found = batch_get({table: [aggregates.distinct_key(u.pk, u.hour) for u in updates]}, consistent=True)[table]
    except (ClientError, BotoCoreError, UnprocessedError):
        logger.exception("distinct sketches not read")
        return {sequence for u in updates for sequence in u.sequence_numbers}
    current = {(item["pk"], item["sk"]): item for item in found}

    def merge(update: aggregates.DistinctUpdate) -> list[str]:
        key = aggregates.distinct_key(update.pk, update.hour)
        try:
            _merge_one(table, update, current.get((key["pk"], key["sk"])))
            return []
        except (ClientError, BotoCoreError, RuntimeError):
            logger.exception("distinct sketch not merged", extra=key)
            return update.sequence_numbers

    return {sequence for failed in _merges.map(merge, updates) for sequence in failed}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    events, poison = decode(records)
    failed = park(poison) | store(events)
    logger.info("batch processed", extra={"records": len(records), "stored": len(events), "poisoned": len(poison),
                                          "failed": len(failed)})
    return batch.stream_response((r["kinesis"]["sequenceNumber"] for r in records), failed)
