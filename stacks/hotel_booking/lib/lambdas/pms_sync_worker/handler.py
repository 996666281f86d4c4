"""SQS (one queue per PMS integration) -> the property's PMS, then Aurora's record of it.

Per message: skip it when the PMS already acknowledged this version or a newer one; push it
with retries (exponential backoff, full jitter); record the acknowledgement in Aurora. A
refusal (4xx) parks the message in the DLQ at once. Exhausted retries count against the PMS's
circuit breaker (DynamoDB, shared by every worker); while it is open no call is made and the
messages wait on the queue until it half-opens. Nothing is dropped: a message is deleted only
once delivered, superseded or parked.

SLA: enqueue and attempt delivery to the property's PMS < 60 s after the booking.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import audit
import pms_api
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from breaker import Breaker, backoff_delays
from pg8000.exceptions import DatabaseError, InterfaceError
from tap_common import aws, batch, config
from tap_common.logs import logger as make_logger
from tap_common.secrets import secret_json

logger = make_logger()

UPDATE_FIELDS = {"property_id": str, "room_id": str, "stay_date": str, "available_units": int,
                 "total_units": int, "version": int}
BACKOFF_CAP_MS = 5000
SAFETY_MS = 5000  # stop calling the PMS this close to the function's timeout


@dataclass
class Outcome:
    failed: list[str] = field(default_factory=list)
    deferred: list[dict[str, Any]] = field(default_factory=list)  # records that wait out an open breaker
    parked: int = 0
    delivered: int = 0
    skipped: int = 0


def parse_update(body: str, pms_id: str) -> dict[str, Any]:
    """The update a message carries; ValueError (not JSON) or TypeError when it is not one (poison)."""
    update = json.loads(body)
    if not isinstance(update, dict):
        raise TypeError("not an object")
    for name, kind in UPDATE_FIELDS.items():
        if not isinstance(update.get(name), kind) or isinstance(update.get(name), bool):
            raise TypeError(f"{name} missing or not {kind.__name__}")
    return {**{name: update[name] for name in UPDATE_FIELDS}, "pms_id": pms_id}


def _load_breaker(pms_id: str) -> Breaker:
    item = aws.client("dynamodb").get_item(TableName=config.require("CIRCUIT_TABLE"), Key={"pms_id": {"S": pms_id}},
                                           ConsistentRead=True).get("Item")
    if not item:
        return Breaker()
    return Breaker(int(item["failures"]["N"]), float(item["open_until"]["N"]))


def _save_breaker(pms_id: str, state: Breaker) -> None:
    aws.client("dynamodb").update_item(
        TableName=config.require("CIRCUIT_TABLE"), Key={"pms_id": {"S": pms_id}},
        UpdateExpression="SET failures = :f, open_until = :o, updated_at = :t",
        ExpressionAttributeValues={":f": {"N": str(state.failures)}, ":o": {"N": repr(state.open_until)},
                                   ":t": {"N": repr(time.time())}})


def _circuit_metric(pms_id: str, is_open: bool) -> None:
    aws.client("cloudwatch").put_metric_data(Namespace=config.require("METRICS_NAMESPACE"), MetricData=[{
        "MetricName": "CircuitOpen", "Dimensions": [{"Name": "Pms", "Value": pms_id}], "Value": 1 if is_open else 0}])


def _park(dlq_url: str, record: dict[str, Any], reason: str) -> None:
    aws.client("sqs").send_message(QueueUrl=dlq_url, MessageBody=record["body"], MessageAttributes={
        "reason": {"DataType": "String", "StringValue": reason[:256]}})


def _deliver(endpoint: str, api_key: str, update: dict[str, Any]) -> None:
    """Push with retries; raises pms_api.Refused, or pms_api.Unavailable once retries run out."""
    delays = backoff_delays(config.integer("MAX_RETRIES"), config.integer("BACKOFF_BASE_MS"), BACKOFF_CAP_MS,
                            random.random())
    for delay in delays:
        try:
            pms_api.push(endpoint, api_key, update)
            return
        except pms_api.Unavailable as exc:
            logger.warning("PMS call failed; backing off", extra={"pms_id": update["pms_id"], "error": str(exc),
                                                                  "delay_s": round(delay, 3)})
            time.sleep(delay)
    pms_api.push(endpoint, api_key, update)


def sync_queue(pms_id: str, queue: dict[str, str], records: list[dict[str, Any]], context: LambdaContext) -> Outcome:
    outcome = Outcome()
    endpoint = json.loads(config.require("PMS_ENDPOINTS"))[pms_id]
    state = _load_breaker(pms_id)
    was_open = state.state(time.time()) != "closed"
    threshold, open_seconds = config.integer("CIRCUIT_FAILURE_THRESHOLD"), config.integer("CIRCUIT_OPEN_SECONDS")
    for record in records:
        message_id = record["messageId"]
        try:
            update = parse_update(record["body"], pms_id)
        except (ValueError, TypeError) as exc:
            logger.error("poison message parked", extra={"message_id": message_id, "error": str(exc)})
            _park(queue["dlq_url"], record, f"not an inventory update: {exc}")
            outcome.parked += 1
            continue
        now = time.time()
        if state.state(now) == "open" or context.get_remaining_time_in_millis() < SAFETY_MS:
            outcome.failed.append(message_id)
            continue
        try:
            acknowledged = audit.acknowledged_version(update)
            if acknowledged is not None and acknowledged >= update["version"]:
                outcome.skipped += 1
                continue
            api_key = secret_json(json.loads(config.require("PMS_API_KEY_SECRET_ARNS"))[pms_id])["api_key"]
            _deliver(endpoint, api_key, update)
        except pms_api.Refused as exc:
            logger.error("PMS refused the update; parked", extra={"message_id": message_id, "error": str(exc)})
            _park(queue["dlq_url"], record, str(exc))
            outcome.parked += 1
            continue
        except (pms_api.Unavailable, ClientError, BotoCoreError, KeyError) as exc:
            state = state.after_failure(time.time(), threshold, open_seconds)
            _save_breaker(pms_id, state)
            logger.warning("delivery failed", extra={"message_id": message_id, "pms_id": pms_id, "error": str(exc),
                                                     "breaker": state.state(time.time()), "failures": state.failures})
            outcome.failed.append(message_id)
            continue
        except (DatabaseError, InterfaceError, OSError):
            logger.exception("audit store unavailable", extra={"message_id": message_id})
            outcome.failed.append(message_id)
            continue
        try:
            audit.record(update)
        except (DatabaseError, InterfaceError, OSError):
            # Delivered but not recorded: retried, and the PMS takes the same version again.
            logger.exception("acknowledgement not recorded", extra={"message_id": message_id})
            outcome.failed.append(message_id)
            continue
        outcome.delivered += 1
        if state.failures or state.open_until:
            state = state.after_success()
            _save_breaker(pms_id, state)
            logger.info("circuit closed", extra={"pms_id": pms_id})
    is_open = state.state(time.time()) == "open"
    if is_open or was_open:
        _circuit_metric(pms_id, is_open)
    if is_open:
        # Everything not delivered waits until the breaker half-opens, not a whole visibility timeout.
        outcome.deferred = [r for r in records if r["messageId"] in set(outcome.failed)]
    if outcome.deferred:
        wait = max(1, math.ceil(state.seconds_left(time.time())))
        for chunk in batch.chunks(outcome.deferred, 10):
            aws.client("sqs").change_message_visibility_batch(QueueUrl=queue["queue_url"], Entries=[
                {"Id": str(i), "ReceiptHandle": r["receiptHandle"], "VisibilityTimeout": wait}
                for i, r in enumerate(chunk)])
    return outcome


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    queues: dict[str, dict[str, str]] = json.loads(config.require("PMS_QUEUES"))
    by_queue: dict[str, list[dict[str, Any]]] = {}
    for record in event.get("Records", []):
        by_queue.setdefault(record["eventSourceARN"], []).append(record)
    failed: list[str] = []
    for queue_arn, records in by_queue.items():
        queue = queues[queue_arn]
        outcome = sync_queue(queue["pms_id"], queue, records, context)
        failed += outcome.failed
        logger.info("pms batch", extra={"pms_id": queue["pms_id"], "delivered": outcome.delivered,
                                        "skipped": outcome.skipped, "parked": outcome.parked,
                                        "failed": len(outcome.failed), "deferred": len(outcome.deferred)})
    return batch.response(failed)
