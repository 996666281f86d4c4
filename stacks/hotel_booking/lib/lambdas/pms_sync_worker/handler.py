"""SQS (one queue per PMS integration) -> the property's PMS, then Aurora's record of it.

Per room-night of a batch (its newest version: ``newest_per_night``), in one Aurora transaction
holding the room-night's lock (audit.deliver_if_newer): skip it when the PMS already acknowledged
this version or a newer one; push it with retries (exponential backoff, full jitter) over a
connection kept from call to call (pms_api); record the acknowledgement. A refusal (4xx) parks the
message in the DLQ at once; a refused API key (401/403) is a failure, not a refusal. Exhausted
retries count against the PMS's circuit breaker (circuit.py: DynamoDB, shared by every worker,
atomic updates); while it is open, or another worker holds its half-open probe, no call is made
and the messages are sent again to their queue with a delay (up to SQS's 15 minutes) that ends
when the breaker half-opens: waiting spends none of their receive count, so a long outage moves
nothing to the DLQ. A message is started only with time left for its worst case. Nothing is
dropped: a message is deleted only once delivered, superseded (a newer version of its room-night
in the same batch: one call carries the newest), parked or sent again.

SLA: enqueue and attempt delivery to the property's PMS < 60 s after the booking.
"""

from __future__ import annotations

import functools
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import audit
import circuit
import pms_api
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from breaker import backoff_delays
from pg8000.exceptions import DatabaseError, InterfaceError
from tap_common import aws, batch, config
from tap_common.logs import logger as make_logger
from tap_common.secrets import secret_json

logger = make_logger()

UPDATE_FIELDS = {"property_id": str, "room_id": str, "stay_date": str, "available_units": int,
                 "total_units": int, "version": int}
BACKOFF_CAP_MS = 5000
AUDIT_BUDGET_MS = 3000  # the two Aurora transactions of a message (read the acknowledgement, record it)
MAX_DELAY_S = 900  # SQS's longest message delay


@dataclass
class Outcome:
    failed: list[str] = field(default_factory=list)
    deferred: list[dict[str, Any]] = field(default_factory=list)  # records sent again to wait out the breaker
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


def newest_per_night(updates: list[tuple[dict[str, Any], dict[str, Any]]]
                     ) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], int]:
    """The (record, update) pairs reduced to the newest version of each room-night, in the order
    they came, and how many older ones that supersedes: a PMS needs only a night's latest state,
    so a batch holding several versions of it makes one call, and the older messages are done."""
    newest: dict[tuple[str, str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
    for record, update in updates:
        night = (update["property_id"], update["room_id"], update["stay_date"])
        if night not in newest or update["version"] > newest[night][1]["version"]:
            newest[night] = (record, update)
    kept = {id(pair[0]) for pair in newest.values()}
    return [pair for pair in updates if id(pair[0]) in kept], len(updates) - len(newest)


def worst_case_ms(retries: int, base_ms: int) -> int:
    """The longest a message can take: every attempt timing out, every backoff at its cap, and
    the audit store's two transactions."""
    attempts_ms = (retries + 1) * pms_api.TIMEOUT_S * 1000
    return int(attempts_ms + sum(backoff_delays(retries, base_ms, BACKOFF_CAP_MS, 1.0)) * 1000 + AUDIT_BUDGET_MS)


def _circuit_metric(pms_id: str, is_open: bool) -> None:
    aws.client("cloudwatch").put_metric_data(Namespace=config.require("METRICS_NAMESPACE"), MetricData=[{
        "MetricName": "CircuitOpen", "Dimensions": [{"Name": "Pms", "Value": pms_id}], "Value": 1 if is_open else 0}])


def _park(dlq_url: str, record: dict[str, Any], reason: str) -> None:
    aws.client("sqs").send_message(QueueUrl=dlq_url, MessageBody=record["body"], MessageAttributes={
        "reason": {"DataType": "String", "StringValue": reason[:256]}})


def _deliver(endpoint: str, api_key: str, update: dict[str, Any]) -> None:
    """Push with retries; raises pms_api.Refused, pms_api.KeyRejected at once (a retry in a moment
    will not heal a key), or pms_api.Unavailable once retries run out."""
    delays = backoff_delays(config.integer("MAX_RETRIES"), config.integer("BACKOFF_BASE_MS"), BACKOFF_CAP_MS,
                            random.random())
    for delay in delays:
        try:
            pms_api.push(endpoint, api_key, update)
            return
        except pms_api.KeyRejected:
            raise
        except pms_api.Unavailable as exc:
            logger.warning("PMS call failed; backing off", extra={"pms_id": update["pms_id"], "error": str(exc),
                                                                  "delay_s": round(delay, 3)})
            time.sleep(delay)
    pms_api.push(endpoint, api_key, update)


def _defer(queue_url: str, records: list[dict[str, Any]], wait_s: float) -> None:
    """Send the records again with a delay that ends when the breaker half-opens (the originals
    are then deleted as processed): their receive count starts afresh."""
    delay = max(1, min(MAX_DELAY_S, math.ceil(wait_s)))
    for chunk in batch.chunks(records, 10):
        response = aws.client("sqs").send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": r["body"], "DelaySeconds": delay} for i, r in enumerate(chunk)])
        if response.get("Failed"):
            raise RuntimeError(f"deferred messages not sent again: {response['Failed']}")


def sync_queue(pms_id: str, queue: dict[str, str], records: list[dict[str, Any]], context: LambdaContext) -> Outcome:
    outcome = Outcome()
    endpoint = json.loads(config.require("PMS_ENDPOINTS"))[pms_id]
    threshold, open_seconds = config.integer("CIRCUIT_FAILURE_THRESHOLD"), config.integer("CIRCUIT_OPEN_SECONDS")
    worst_ms = worst_case_ms(config.integer("MAX_RETRIES"), config.integer("BACKOFF_BASE_MS"))
    opened = False
    wait_s = 0.0
    parsed: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for record in records:
        try:
            parsed.append((record, parse_update(record["body"], pms_id)))
        except (ValueError, TypeError) as exc:
            logger.error("poison message parked", extra={"message_id": record["messageId"], "error": str(exc)})
            _park(queue["dlq_url"], record, f"not an inventory update: {exc}")
            outcome.parked += 1
    latest, outcome.skipped = newest_per_night(parsed)
    admission: circuit.Admission | None = None
    for record, update in latest:
        message_id = record["messageId"]
        if context.get_remaining_time_in_millis() < worst_ms:
            outcome.failed.append(message_id)  # comes back after the visibility timeout
            continue
        # A closed breaker is read once per batch; after a failure, a probe or a wait it is read again
        # (another worker may have opened it: at most one call of this batch goes out meanwhile).
        if admission is None or not admission.call or admission.state.probe_until:
            admission = circuit.admit(pms_id, time.time(), worst_ms / 1000)
        if not admission.call:
            outcome.deferred.append(record)
            wait_s = max(wait_s, admission.wait_s)
            continue
        try:
            api_key = secret_json(json.loads(config.require("PMS_API_KEY_SECRET_ARNS"))[pms_id])["api_key"]
            if not audit.deliver_if_newer(update, functools.partial(_deliver, endpoint, api_key, update)):
                outcome.skipped += 1
                continue
        except pms_api.Refused as exc:
            logger.error("PMS refused the update; parked", extra={"message_id": message_id, "error": str(exc)})
            _park(queue["dlq_url"], record, str(exc))
            outcome.parked += 1
            continue
        except (pms_api.Unavailable, ClientError, BotoCoreError, KeyError) as exc:
            state = circuit.failed(pms_id, time.time(), threshold, open_seconds, admission.state)
            admission = None
            opened |= state.state(time.time()) == "open"
            log = logger.error if isinstance(exc, pms_api.KeyRejected) else logger.warning
            log("delivery failed", extra={"message_id": message_id, "pms_id": pms_id, "error": str(exc),
                                          "breaker": state.state(time.time()), "failures": state.failures})
            outcome.failed.append(message_id)
            continue
        except (DatabaseError, InterfaceError, OSError):
            # Before the push, or delivered but not recorded: retried, and the PMS takes the same
            # version again at worst.
            logger.exception("audit store unavailable", extra={"message_id": message_id})
            outcome.failed.append(message_id)
            continue
        outcome.delivered += 1
        closed = circuit.succeeded(pms_id, time.time(), admission.state)
        if closed != admission.state:
            logger.info("circuit closed", extra={"pms_id": pms_id})
            admission = circuit.Admission(True, 0.0, closed)
    if opened or outcome.deferred:
        _circuit_metric(pms_id, True)
    if outcome.deferred:
        _defer(queue["queue_url"], outcome.deferred, wait_s)
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
