"""SQS as an event source: one queue delivered to one mapping's function (``QueuePoller``).
What the sandbox changes in moto's SQS is ``services.sqs``.

SQS: ReceiveMessage (long poll) up to ``BatchSize`` within the batching window; messages that
match no filter are deleted; a function error leaves the batch to the visibility timeout (and
so to the queue's redrive policy); ``batchItemFailures`` deletes only the successes.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from tapharness.sandbox.clients import AwsClients, Invoker
from tapharness.sandbox.filters import decode_json, matches_any
from tapharness.sandbox.pollers.base import (
    MappingConfig,
    PollerSettings,
    PollerThread,
    failed_item_ids,
)


def sqs_event_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message (ReceiveMessage shape) as a record of Lambda's SQS event."""
    attributes = {
        name: {"stringValue": value.get("StringValue"), "binaryValue": value.get("BinaryValue"),
               "stringListValues": value.get("StringListValues", []),
               "binaryListValues": value.get("BinaryListValues", []), "dataType": value["DataType"]}
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    for value in attributes.values():
        for key in ("stringValue", "binaryValue"):
            if value[key] is None:
                del value[key]
            elif isinstance(value[key], bytes):
                value[key] = base64.b64encode(value[key]).decode()
    record = {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"], "attributes": message.get("Attributes") or {},
        "messageAttributes": attributes, "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


class QueuePoller(PollerThread):
    """Delivers one SQS queue to one mapping's function."""

    def __init__(self, config: MappingConfig, clients: AwsClients, settings: PollerSettings,
                 invoker: Invoker | None = None) -> None:
        super().__init__(f"poller-{config.uuid[:8]}-sqs", config, clients, settings, invoker)
        self._queue_url: str | None = None

    def _forget_position(self) -> None:
        self._queue_url = None

    def _url(self) -> str:
        if self._queue_url is None:
            self._queue_url = self.clients.queue_url(self.config.source_arn)
        return self._queue_url

    def _receive(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages, gathered for at most the batching window once one has arrived."""
        messages: list[dict[str, Any]] = []
        started = time.monotonic()
        while len(messages) < self.config.batch_size and not self._stop_event.is_set():
            received = self.clients.client("sqs").receive_message(
                QueueUrl=self._url(), MaxNumberOfMessages=min(10, self.config.batch_size - len(messages)),
                WaitTimeSeconds=0 if messages else self.settings.sqs_wait_seconds,
                AttributeNames=["All"], MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            messages += received
            if not messages or time.monotonic() - started >= self.config.batching_window:
                break
            if not received:
                self._stop_event.wait(self.settings.poll_interval)
        return messages

    def _delete_messages(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start:start + 10]
            self.clients.client("sqs").delete_message_batch(QueueUrl=self._url(), Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)])

    def _step(self) -> None:
        messages = self._receive()
        if not messages:
            return
        records = [sqs_event_record(m, self.config.source_arn, self.clients.region) for m in messages]
        wanted, skipped = [], []
        for message, record in zip(messages, records, strict=True):
            view = {**record, "body": decode_json(record["body"])}
            (wanted if matches_any(self.config.filters, view) else skipped).append((message, record))
        if skipped:
            self.stats.filtered += len(skipped)
            self._delete_messages([m for m, _ in skipped])
        if not wanted:
            return
        outcome = self.invoker.invoke(self.config.function_arn, {"Records": [r for _, r in wanted]})
        self.stats.invocations += 1
        ids = [r["messageId"] for _, r in wanted]
        if outcome.function_error:
            self.stats.failed_batches += 1
            self.stats.last_error = json.dumps(outcome.payload)[:500]
            return
        reported = failed_item_ids(outcome, ids) if self.config.report_item_failures else []
        if reported is None:
            self.stats.failed_batches += 1
            self.stats.last_error = f"invalid batchItemFailures: {json.dumps(outcome.payload)[:400]}"
            return
        succeeded = [m for m, r in wanted if r["messageId"] not in reported]
        self._delete_messages(succeeded)
        self.stats.delivered += len(succeeded)
        if reported:
            self.stats.failed_batches += 1

