"""Kinesis consumer: viewing events → user_activity.

Per batch: one BatchGetItem for the SUMMARY items of the batch's users and the markers of the
titles the batch completes, then per user (up to eight users at once) one TransactWriteItems
(event items and the markers of newly completed titles, each `attribute_not_exists`, plus the
SUMMARY put guarded by its version; 100 items at most), then one S3 object with the batch's raw
events for Athena. A transaction cancelled only by existing event items is retried without
them, any other cancellation after reading the user's state again, so a redelivered batch
leaves the same state and a title completed twice counts once. Records of a user whose write
failed, and records that cannot be parsed, are reported in `batchItemFailures`.

A write that takes the viewer's watch time over a badge threshold first sends the event that
did it to the achievements queue (which awards badges from the SUMMARY), so watch-time badges
do not wait for a completion. Sent before the write: if the write then fails, the retried batch
crosses again and sends again (the FIFO queue drops the same body within five minutes), and
the achievements consumer waits for the event item before it reads the SUMMARY.

The mapping uses a tumbling window: `state` carries per-window counters across
invocations and, on the final invoke for the window, they are emitted as EMF metrics
and one structured log line. Durable writes never wait for the window.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aggregate import (
    Summary,
    apply_events,
    chronological,
    completed_title_key,
    completes,
    crosses_watch_milestone,
    event_item,
    newly_completed,
    window_totals,
)
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
    KinesisStreamRecord,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from tap_common import aws, batch, config, dynamo
from tap_common.events import ViewingEvent
from tap_common.logs import logger as make_logger

logger = make_logger()

SUMMARY = "SUMMARY"
ITEMS_BESIDE_SUMMARY = dynamo.TRANSACTION_LIMIT - 1
TRANSACTION_ATTEMPTS = 4
# Users' writes are independent: a batch of many viewers writes them side by side, so its
# duration is not the sum of one round trip per user (the boto3 client is thread-safe).
_WRITERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="user-writer")
AWS_ERRORS = (ClientError, BotoCoreError, dynamo.UnprocessedError)


class WriteConflict(RuntimeError):
    """The user's transaction kept being cancelled by concurrent writers."""


@dataclass
class UserResult:
    applied: list[ViewingEvent] = field(default_factory=list)
    duplicates: int = 0


@dataclass
class Parsed:
    record: KinesisStreamRecord
    event: ViewingEvent

    @property
    def sequence_number(self) -> str:
        return self.record.kinesis.sequence_number


def _parse(records: list[KinesisStreamRecord]) -> tuple[list[Parsed], list[str]]:
    parsed, poison = [], []
    for record in records:
        try:
            parsed.append(Parsed(record, ViewingEvent.from_record(record.kinesis.data_as_json())))
        except ValueError as exc:
            logger.warning(
                "poison record", extra={"sequence_number": record.kinesis.sequence_number, "reason": str(exc)}
            )
            poison.append(record.kinesis.sequence_number)
    return parsed, poison


@dataclass
class UserState:
    summary: Summary
    completed: set[str] = field(default_factory=set)


def _read_states(table: str, events_by_user: dict[str, list[ViewingEvent]], ratio: float) -> dict[str, UserState]:
    """Each user's SUMMARY and which of the titles the batch completes were completed before."""
    keys = [{"user_id": user, "timestamp": SUMMARY} for user in events_by_user]
    keys += [{"user_id": user, "timestamp": completed_title_key(title)}
             for user, events in events_by_user.items() for title in newly_completed(events, ratio, set())]
    items = dynamo.batch_get({table: keys}, consistent=True)[table]
    summaries = {item["user_id"]: item for item in items if item["timestamp"] == SUMMARY}
    states = {user: UserState(Summary.from_item(user, summaries.get(user))) for user in events_by_user}
    for item in items:
        if item["timestamp"] != SUMMARY:
            states[item["user_id"]].completed.add(str(item["content_id"]))
    return states


def _read_state(table: str, user: str, events: list[ViewingEvent], ratio: float) -> UserState:
    return _read_states(table, {user: events}, ratio)[user]


def _put_new(table: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": table,
            "Item": dynamo.serialize(item),
            "ConditionExpression": "attribute_not_exists(#ts)",
            "ExpressionAttributeNames": {"#ts": "timestamp"},
        }
    }


def _announce_watch_milestone(event: ViewingEvent) -> None:
    aws.client("sqs").send_message(
        QueueUrl=config.require("ACHIEVEMENTS_QUEUE_URL"),
        MessageBody=json.dumps(event.to_record(), separators=(",", ":")),
        MessageGroupId=event.user_id,
    )
    logger.info("watch milestone announced", extra={"user_id": event.user_id, "event_id": event.event_id})


def _transaction(table: str, before: Summary, after: Summary, events: list[ViewingEvent],
                 new_titles: dict[str, ViewingEvent]) -> list[dict[str, Any]]:
    """Event items, markers of newly completed titles, then the SUMMARY put (always last),
    guarded by the version it was read at."""
    items = [_put_new(table, event_item(event)) for event in events]
    items += [
        _put_new(table, {"user_id": before.user_id, "timestamp": completed_title_key(title),
                         "content_id": title, "event_id": event.event_id})
        for title, event in new_titles.items()
    ]
    summary_put: dict[str, Any] = {"TableName": table, "Item": dynamo.serialize(after.to_item())}
    if before.version == 0:
        summary_put["ConditionExpression"] = "attribute_not_exists(#ts)"
        summary_put["ExpressionAttributeNames"] = {"#ts": "timestamp"}
    else:
        summary_put["ConditionExpression"] = "#v = :v"
        summary_put["ExpressionAttributeNames"] = {"#v": "version"}
        summary_put["ExpressionAttributeValues"] = {":v": {"N": str(before.version)}}
    items.append({"Put": summary_put})
    return items


def _transaction_chunks(events: list[ViewingEvent], ratio: float) -> list[list[ViewingEvent]]:
    """Consecutive events whose items and completion markers fit one transaction with the SUMMARY."""
    chunks: list[list[ViewingEvent]] = [[]]
    titles: set[str] = set()  # the titles the last chunk completes (a marker each, at most)
    for event in events:
        title = {event.content_id} if completes(event, ratio) else set()
        if len(chunks[-1]) + 1 + len(titles | title) > ITEMS_BESIDE_SUMMARY:
            chunks.append([])
            titles = set()
        chunks[-1].append(event)
        titles |= title
    return [chunk for chunk in chunks if chunk]


def _write_chunk(table: str, state: UserState, events: list[ViewingEvent], ratio: float, result: UserResult) -> UserState:
    """Apply one chunk of a user's events; returns the user's state as stored afterwards."""
    pending = list(events)
    user = state.summary.user_id
    for attempt in range(TRANSACTION_ATTEMPTS):
        if not pending:
            return state
        after = apply_events(state.summary, pending, ratio, state.completed)
        new_titles = newly_completed(pending, ratio, state.completed)
        if crosses_watch_milestone(state.summary, after):
            _announce_watch_milestone(pending[-1])
        # Same token only for the SDK's own retries of this very request.
        token_source = f"{user}|{state.summary.version}|{attempt}|{','.join(e.event_id for e in pending)}"
        try:
            aws.client("dynamodb").transact_write_items(
                TransactItems=_transaction(table, state.summary, after, pending, new_titles),
                ClientRequestToken=hashlib.sha256(token_source.encode()).hexdigest()[:36],
            )
        except ClientError as exc:
            if aws.error_code(exc) != "TransactionCanceledException":
                raise
            codes = [reason.get("Code", "None") for reason in exc.response.get("CancellationReasons", [])]
            event_codes, other_codes = codes[: len(pending)], codes[len(pending):]
            existing = {e.event_id for e, code in zip(pending, event_codes) if code == "ConditionalCheckFailed"}
            only_existing_events = (
                len(event_codes) == len(pending)
                and all(code in ("None", "ConditionalCheckFailed") for code in event_codes)
                and all(code == "None" for code in other_codes)
            )
            result.duplicates += len(existing)
            pending = [e for e in pending if e.event_id not in existing]
            if not only_existing_events:
                state = _read_state(table, user, pending, ratio)
            continue
        result.applied.extend(pending)
        return UserState(after, state.completed | set(new_titles))
    if pending:
        raise WriteConflict(f"transaction for user {user} cancelled {TRANSACTION_ATTEMPTS} times")
    return state


def _write_user(table: str, state: UserState, events: list[ViewingEvent], ratio: float) -> UserResult:
    result = UserResult()
    ordered = chronological(events)
    result.duplicates += len(events) - len(ordered)
    for chunk in _transaction_chunks(ordered, ratio):
        state = _write_chunk(table, state, chunk, ratio, result)
    return result


def _raw_key(first: KinesisStreamRecord) -> str:
    arrived = datetime.fromtimestamp(first.kinesis.approximate_arrival_timestamp, tz=UTC)
    shard = first.event_id.partition(":")[0] or "shard"
    return (
        f"{config.optional('RAW_PREFIX', 'raw/')}year={arrived:%Y}/month={arrived:%m}/day={arrived:%d}/"
        f"{shard}-{first.kinesis.sequence_number}.json"
    )


def _store_raw(stored: list[Parsed]) -> None:
    """One JSON-lines object per batch, keyed by shard and first sequence number, so a
    redelivered batch overwrites its own object (the archive query de-duplicates by event_id)."""
    body = "\n".join(json.dumps(p.event.to_record(), separators=(",", ":")) for p in stored) + "\n"
    aws.client("s3").put_object(
        Bucket=config.require("RAW_BUCKET"),
        Key=_raw_key(stored[0].record),
        Body=body.encode("utf-8"),
        ContentType="application/x-ndjson",
    )


def _emit_window(event: dict[str, Any], state: dict[str, Any]) -> None:
    metrics = Metrics(namespace=config.require("PROJECT"))
    metrics.add_dimension(name="environment", value=config.require("ENV"))
    metrics.add_metric(name="WindowEventsApplied", unit=MetricUnit.Count, value=state["applied"])
    metrics.add_metric(name="WindowDuplicates", unit=MetricUnit.Count, value=state["duplicates"])
    metrics.add_metric(name="WindowFailedRecords", unit=MetricUnit.Count, value=state["failed"])
    for event_type, count in sorted(state["by_type"].items()):
        metrics.add_metric(name=f"WindowEvents_{event_type}", unit=MetricUnit.Count, value=count)
    metrics.flush_metrics()
    logger.info(
        "tumbling window closed",
        extra={
            "window": event.get("window"),
            "shard_id": event.get("shardId"),
            "terminated_early": bool(event.get("isWindowTerminatedEarly")),
            "totals": state,
        },
    )


def process(event: dict[str, Any]) -> tuple[list[str], list[ViewingEvent], int]:
    """Write the batch; returns (failed sequence numbers, newly applied events, duplicates)."""
    records = list(KinesisStreamEvent(event).records)
    parsed, failed = _parse(records)
    if not parsed:
        return failed, [], 0
    table = config.require("ACTIVITY_TABLE")
    ratio = config.full_completion_ratio()
    by_user: dict[str, list[Parsed]] = defaultdict(list)
    for item in parsed:
        by_user[item.event.user_id].append(item)
    try:
        states = _read_states(table, {user: [p.event for p in items] for user, items in by_user.items()}, ratio)
    except AWS_ERRORS:
        logger.exception("reading summaries failed; whole batch reported")
        return [r.kinesis.sequence_number for r in records], [], 0

    def write(user: str) -> UserResult | None:
        try:
            return _write_user(table, states[user], [p.event for p in by_user[user]], ratio)
        except (*AWS_ERRORS, WriteConflict):
            logger.exception("user write failed", extra={"user_id": user, "records": len(by_user[user])})
            return None

    applied: list[ViewingEvent] = []
    duplicates = 0
    stored: list[Parsed] = []
    for user, result in zip(by_user, _WRITERS.map(write, by_user), strict=True):
        items = by_user[user]
        if result is None:
            failed.extend(p.sequence_number for p in items)
            continue
        applied.extend(result.applied)
        duplicates += result.duplicates
        stored.extend(items)
    if stored:
        try:
            _store_raw(stored)
        except (ClientError, BotoCoreError):
            logger.exception("raw event object not stored; its records are reported for retry")
            failed.extend(p.sequence_number for p in stored)
    order = {r.kinesis.sequence_number: i for i, r in enumerate(records)}
    return sorted(set(failed), key=order.__getitem__), applied, duplicates


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failed, applied, duplicates = process(event)
    logger.info(
        "batch processed",
        extra={"applied": len(applied), "duplicates": duplicates, "failed": len(failed)},
    )
    response = batch.response(failed)
    if "window" not in event:
        return response
    state = window_totals(event.get("state") or {}, applied, duplicates, len(failed))
    if event.get("isFinalInvokeForWindow"):
        _emit_window(event, state)
        state = {}
    return {"state": state, **response}
