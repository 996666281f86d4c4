"""Kinesis clickstream -> DynamoDB behaviour, losing nothing.

Valid events are stored per user and per page with BatchWriteItem (keys carry the event id, so
a retried record overwrites itself: no duplicates). A record that is not an event (poison) is
parked in the stream_failures queue with its reason and acknowledged. A record whose write
DynamoDB still refuses after the SDK's and the batch helper's retries (throttling) is reported
as a batch item failure: Lambda retries from the first one, bisecting, and finally parks what
it gives up in the same queue.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from clickstream_common.events import ClickEvent, InvalidEvent, parse_event
from tap_common import aws, batch, config
from tap_common.dynamo import UnprocessedError, batch_put
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


def store(events: list[tuple[str, ClickEvent]]) -> set[str]:
    """Write every event's items; returns the sequence numbers of events not (fully) written."""
    items: dict[tuple[str, str], dict[str, Any]] = {}
    owner: dict[tuple[str, str], str] = {}
    for sequence, event in events:
        for item in event.items():
            key = (item["pk"], item["sk"])
            items[key] = item  # the same event twice in one batch: BatchWriteItem refuses duplicate keys
            owner.setdefault(key, sequence)
    try:
        left = batch_put(config.require("BEHAVIOUR_TABLE"), list(items.values()))
    except (ClientError, BotoCoreError, UnprocessedError):
        logger.exception("behaviour writes failed")
        return {sequence for sequence, _ in events}
    return {owner[(item["pk"], item["sk"])] for item in left}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    events, poison = decode(records)
    failed = park(poison) | store(events)
    logger.info("batch processed", extra={"records": len(records), "stored": len(events), "poisoned": len(poison),
                                          "failed": len(failed)})
    return batch.stream_response((r["kinesis"]["sequenceNumber"] for r in records), failed)
