"""SQS (achievements FIFO queue) → user_achievements + user-notifications.

The activity consumer and this consumer run in parallel, so a message can arrive before
its event is in user_activity. That race usually lasts a second or two (the activity
mapping's batching window), so the consumer first reads again a few times within
`READY_WAIT_S` seconds, which spends none of the DLQ's receive budget. A message still not
ready after that (and, FIFO order, the later ones of its user) is reported as failed. Every
reported message is made visible again sooner than the queue's visibility timeout: after
`RETRY_DELAYS_S[n - 1]` seconds on its n-th receive, then at the queue's own timeout, so an
activity path that is really behind still has its receives before the DLQ.

Per batch one BatchGetItem reads the messages' event items, the users' SUMMARY items and
their existing badges. Milestones come from SUMMARY. A new badge is written with a
conditional put (exactly once); a notification is published (PublishBatch) when the put
succeeded, or when an earlier attempt wrote the badge but never recorded `notified_at`
(its publish failed), and `notified_at` is set after the publish.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from milestones import earned_badges
from tap_common import aws, batch, config, dynamo
from tap_common.events import ViewingEvent, format_timestamp
from tap_common.logs import logger as make_logger
from tap_common.milestones import HOURS_100, VIDEOS_10

logger = make_logger()

SUMMARY = "SUMMARY"
BADGES = (VIDEOS_10, HOURS_100)
PUBLISH_BATCH_LIMIT = 10
READY_WAIT_S = 5.0
READY_POLL_S = (0.25, 0.5, 1.0)  # the last pause repeats
# Time the invocation keeps for its own writes after waiting.
RESERVE_MS = 10_000
RETRY_DELAYS_S = (5, 20, 80)
AWS_ERRORS = (ClientError, BotoCoreError, dynamo.UnprocessedError)


@dataclass(frozen=True)
class Award:
    user_id: str
    badge_id: str
    awarded_at: str


def _parse(records: list[Any]) -> tuple[dict[str, list[tuple[str, ViewingEvent]]], list[str]]:
    by_user: dict[str, list[tuple[str, ViewingEvent]]] = defaultdict(list)
    poison = []
    for record in records:
        try:
            event = ViewingEvent.from_record(json.loads(record.body))
        except ValueError as exc:
            logger.warning("poison message", extra={"message_id": record.message_id, "reason": str(exc)})
            poison.append(record.message_id)
            continue
        by_user[event.user_id].append((record.message_id, event))
    return by_user, poison


def _read_state(
    activity: str, achievements: str, by_user: dict[str, list[tuple[str, ViewingEvent]]]
) -> tuple[set[tuple[str, str]], dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """(event keys present, SUMMARY per user, existing badges) in one BatchGetItem round."""
    activity_keys = [{"user_id": user, "timestamp": SUMMARY} for user in by_user]
    activity_keys += [{"user_id": e.user_id, "timestamp": e.sort_key} for msgs in by_user.values() for _, e in msgs]
    badge_keys = [{"user_id": user, "badge_id": badge} for user in by_user for badge in BADGES]
    found = dynamo.batch_get(
        {activity: activity_keys, achievements: badge_keys},
        consistent=True,
        projection={activity: "user_id, #ts, completed_count, watch_seconds"},
        names={"#ts": "timestamp"},
    )
    present = {(str(i["user_id"]), str(i["timestamp"])) for i in found[activity]}
    summaries = {str(i["user_id"]): i for i in found[activity] if i["timestamp"] == SUMMARY}
    badges = {(str(i["user_id"]), str(i["badge_id"])): i for i in found[achievements]}
    return present, summaries, badges


def _not_ready(by_user: dict[str, list[tuple[str, ViewingEvent]]], present: set[tuple[str, str]]) -> set[str]:
    return {user for user, messages in by_user.items() if any((user, e.sort_key) not in present for _, e in messages)}


def _read_when_ready(
    activity: str, achievements: str, by_user: dict[str, list[tuple[str, ViewingEvent]]], context: LambdaContext
) -> tuple[set[tuple[str, str]], dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """`_read_state`, read again for up to READY_WAIT_S (and never into the time the rest of the
    invocation needs) while some event is not yet in user_activity."""
    state = _read_state(activity, achievements, by_user)
    deadline = time.monotonic() + min(READY_WAIT_S, max(0.0, (context.get_remaining_time_in_millis() - RESERVE_MS) / 1000))
    attempt = 0
    while _not_ready(by_user, state[0]):
        pause = READY_POLL_S[min(attempt, len(READY_POLL_S) - 1)]
        if time.monotonic() + pause > deadline:
            break
        time.sleep(pause)
        attempt += 1
        state = _read_state(activity, achievements, by_user)
    return state


def retry_delay(receive_count: int) -> int | None:
    """Seconds until a not-yet-ready message is received again, or None for the queue's own timeout."""
    return RETRY_DELAYS_S[receive_count - 1] if 1 <= receive_count <= len(RETRY_DELAYS_S) else None


def _retry_sooner(records: list[Any], failed: list[str]) -> None:
    """Shorten the visibility timeout of the reported messages (best effort: if this fails, SQS
    redelivers them at the queue's timeout, as it would have anyway)."""
    by_id = {r.message_id: r for r in records}
    entries = []
    for message_id in failed:
        record = by_id[message_id]
        delay = retry_delay(int(record.attributes.approximate_receive_count))
        if delay is not None:
            entries.append({"Id": str(len(entries)), "ReceiptHandle": record.receipt_handle, "VisibilityTimeout": delay})
    if not entries:
        return
    _, _, _, region, account, name = records[0].event_source_arn.split(":")
    url = f"https://sqs.{region}.amazonaws.com/{account}/{name}"
    for chunk in batch.chunks(entries, 10):
        try:
            aws.client("sqs").change_message_visibility_batch(QueueUrl=url, Entries=list(chunk))
        except (ClientError, BotoCoreError):
            logger.exception("shortening the visibility of retried messages failed", extra={"entries": len(chunk)})


def _award(table: str, user: str, badge: str, event_id: str, now: str) -> Award | None:
    """Write the badge once. Returns the award to notify, or None when it was already notified."""
    try:
        aws.client("dynamodb").put_item(
            TableName=table,
            Item=dynamo.serialize({"user_id": user, "badge_id": badge, "awarded_at": now, "event_id": event_id}),
            ConditionExpression="attribute_not_exists(badge_id)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if aws.error_code(exc) != "ConditionalCheckFailedException":
            raise
        existing = dynamo.deserialize(exc.response.get("Item", {}))
        if "notified_at" in existing:
            return None
        return Award(user, badge, str(existing.get("awarded_at", now)))
    return Award(user, badge, now)


def _notify(topic: str, table: str, awards: list[Award]) -> set[str]:
    """Publish the awards and mark them notified; returns the users whose publish failed."""
    failed: set[str] = set()
    for chunk in batch.chunks(awards, PUBLISH_BATCH_LIMIT):
        entries = [
            {
                "Id": str(index),
                "Message": json.dumps({"user_id": a.user_id, "badge_id": a.badge_id, "awarded_at": a.awarded_at}),
                "MessageAttributes": {"badge_id": {"DataType": "String", "StringValue": a.badge_id}},
            }
            for index, a in enumerate(chunk)
        ]
        try:
            response = aws.client("sns").publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
        except (ClientError, BotoCoreError):
            logger.exception("notification publish failed", extra={"entries": len(chunk)})
            failed.update(a.user_id for a in chunk)
            continue
        published = {int(entry["Id"]) for entry in response.get("Successful", [])}
        for index, award in enumerate(chunk):
            if index not in published:
                failed.add(award.user_id)
                continue
            aws.client("dynamodb").update_item(
                TableName=table,
                Key=dynamo.serialize({"user_id": award.user_id, "badge_id": award.badge_id}),
                UpdateExpression="SET notified_at = :now",
                ExpressionAttributeValues=dynamo.serialize({":now": format_timestamp(datetime.now(UTC))}),
            )
    return failed


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = list(SQSEvent(event).records)
    order = [(r.message_id, r.attributes.message_group_id or r.message_id) for r in records]
    by_user, failed = _parse(records)
    if not by_user:
        return batch.response(batch.fifo_failures(order, failed))
    activity = config.require("ACTIVITY_TABLE")
    achievements = config.require("ACHIEVEMENTS_TABLE")
    try:
        present, summaries, badges = _read_when_ready(activity, achievements, by_user, context)
    except AWS_ERRORS:
        logger.exception("reading activity failed; whole batch reported")
        return batch.response(message_id for message_id, _ in order)

    now = format_timestamp(datetime.now(UTC))
    awards: list[Award] = []
    ready_messages: dict[str, list[str]] = {}
    for user, messages in by_user.items():
        ready = []
        for message_id, viewing in messages:
            if (user, viewing.sort_key) not in present:
                logger.info("event not yet in user_activity; retried later", extra={"event_id": viewing.event_id})
                failed.append(message_id)
                break
            ready.append((message_id, viewing))
        summary = summaries.get(user)
        if not ready or summary is None:
            continue
        ready_messages[user] = [message_id for message_id, _ in ready]
        for _, viewing in ready:  # completions carry the fields the completion-funnel query counts
            fields = ({"content_id": viewing.content_id, "completion_ratio": round(viewing.progress, 4)}
                      if viewing.event_type == "complete" else {})
            logger.info("milestones checked", extra={"event_id": viewing.event_id, "user_id": user,
                                                     "event_type": viewing.event_type, **fields})
        trigger = ready[-1][1].event_id
        try:
            for badge in earned_badges(int(summary.get("completed_count", 0)), float(summary.get("watch_seconds", 0))):
                existing = badges.get((user, badge))
                if existing is None:
                    award = _award(achievements, user, badge, trigger, now)
                elif "notified_at" not in existing:
                    award = Award(user, badge, str(existing.get("awarded_at", now)))
                else:
                    award = None
                if award is not None:
                    awards.append(award)
        except AWS_ERRORS:
            logger.exception("badge write failed", extra={"user_id": user})
            failed.extend(ready_messages.pop(user))

    if awards:
        try:
            unnotified = _notify(config.require("NOTIFICATIONS_TOPIC_ARN"), achievements, awards)
        except AWS_ERRORS:
            logger.exception("marking notifications failed")
            unnotified = {a.user_id for a in awards}
        for user in unnotified:
            failed.extend(ready_messages.get(user, []))
        logger.info("badges awarded", extra={"awards": [a.__dict__ for a in awards], "unnotified": sorted(unnotified)})
    reported = batch.fifo_failures(order, failed)
    _retry_sooner(records, reported)
    return batch.response(reported)
