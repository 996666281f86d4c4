"""achievements_consumer: milestone boundaries (pure), waiting for the activity
consumer, exactly-once badges and notifications against moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import tap_common.aws
from tap_common import dynamo

from .conftest import REGION, TABLES, load_package
from .factories import completion_body, sqs_event, viewing

mod = load_package("achievements_consumer", "handler", "milestones")
ms = mod.milestones
HOUR = 3600


@pytest.mark.parametrize(("completed", "earned"), [(9, []), (10, ["videos_10"]), (11, ["videos_10"])])
def test_videos_badge_from_the_tenth_completion(completed: int, earned: list[str]) -> None:
    assert ms.earned_badges(completed, 0) == earned


@pytest.mark.parametrize(("seconds", "earned"), [(99.9 * HOUR, []), (100 * HOUR, ["hours_100"]), (100 * HOUR + 1, ["hours_100"])])
def test_hours_badge_from_the_hundredth_hour(seconds: float, earned: list[str]) -> None:
    assert ms.earned_badges(0, seconds) == earned


def test_both_badges_can_be_earned_together() -> None:
    assert ms.earned_badges(10, 100 * HOUR) == ["videos_10", "hours_100"]


USER = "user-1"


@pytest.fixture
def env(aws: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The notifications topic with a queue subscribed to it, to observe what is published."""
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="tap-test-user-notifications")["TopicArn"]
    url = sqs.create_queue(QueueName="notifications-probe")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    monkeypatch.setenv("NOTIFICATIONS_TOPIC_ARN", topic)
    return {"topic": topic, "queue": url}


def record_activity(n: int, completed: int, watch_seconds: float, user: str = USER) -> dict[str, Any]:
    """What the activity consumer leaves behind for event n: its item and the SUMMARY."""
    record = viewing(n, user=user, event_type="complete", position=600)
    ddb = boto3.client("dynamodb", region_name=REGION)
    items = [
        {"user_id": user, "timestamp": f"{record['client_timestamp']}#{record['event_id']}", "event_id": record["event_id"]},
        {"user_id": user, "timestamp": "SUMMARY", "completed_count": completed, "watch_seconds": watch_seconds},
    ]
    for item in items:
        ddb.put_item(TableName=TABLES["ACTIVITY_TABLE"], Item=dynamo.serialize(item))
    return record


def notifications(queue: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        for m in messages:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return bodies


def badges(user: str = USER) -> dict[str, dict[str, Any]]:
    ddb = boto3.client("dynamodb", region_name=REGION)
    items = ddb.query(
        TableName=TABLES["ACHIEVEMENTS_TABLE"],
        KeyConditionExpression="user_id = :u",
        ExpressionAttributeValues={":u": {"S": user}},
    )["Items"]
    return {item["badge_id"]["S"]: dynamo.deserialize(item) for item in items}


def deliver(context: Any, *records: dict[str, Any]) -> dict[str, Any]:
    return mod.handler.lambda_handler(sqs_event([(r["user_id"], completion_body(r, 1.0)) for r in records]), context)


def test_ninth_completion_awards_nothing(env: dict[str, str], context: Any) -> None:
    deliver(context, record_activity(9, completed=9, watch_seconds=9 * 600))
    assert (badges(), notifications(env["queue"])) == ({}, [])


def test_tenth_completion_awards_the_badge_and_notifies_once(env: dict[str, str], context: Any) -> None:
    record = record_activity(10, completed=10, watch_seconds=6000)
    assert deliver(context, record) == {"batchItemFailures": []}
    assert badges()["videos_10"]["event_id"] == record["event_id"]
    [note] = notifications(env["queue"])
    assert (note["user_id"], note["badge_id"]) == (USER, "videos_10")


def test_eleventh_completion_adds_no_badge_and_no_notification(env: dict[str, str], context: Any) -> None:
    deliver(context, record_activity(10, completed=10, watch_seconds=6000))
    notifications(env["queue"])
    deliver(context, record_activity(11, completed=11, watch_seconds=6600))
    assert (list(badges()), notifications(env["queue"])) == (["videos_10"], [])


def test_hundredth_hour_awards_the_hours_badge(env: dict[str, str], context: Any) -> None:
    deliver(context, record_activity(1, completed=1, watch_seconds=100 * HOUR))
    assert list(badges()) == ["hours_100"]


def test_just_under_a_hundred_hours_awards_nothing(env: dict[str, str], context: Any) -> None:
    deliver(context, record_activity(1, completed=1, watch_seconds=99.9 * HOUR))
    assert badges() == {}


def test_same_message_twice_gives_one_badge_and_one_notification(env: dict[str, str], context: Any) -> None:
    record = record_activity(10, completed=10, watch_seconds=6000)
    deliver(context, record)
    first = badges()
    assert deliver(context, record) == {"batchItemFailures": []}
    assert badges() == first
    assert len(notifications(env["queue"])) == 1


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not-ready events are waited for 0.3 s instead of READY_WAIT_S, to keep the suite fast."""
    monkeypatch.setattr(mod.handler, "READY_WAIT_S", 0.3)


@pytest.fixture
def visibility_changes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The ChangeMessageVisibilityBatch requests the handler makes."""
    calls: list[dict[str, Any]] = []
    client = tap_common.aws.client("sqs")
    monkeypatch.setattr(client, "change_message_visibility_batch", lambda **kwargs: calls.append(kwargs) or {})
    return calls


def test_event_written_while_waiting_is_awarded_without_a_retry(env: dict[str, str], context: Any,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                visibility_changes: list[dict[str, Any]]) -> None:
    early = viewing(10, event_type="complete", position=600)
    pauses: list[float] = []

    def activity_lands_meanwhile(seconds: float) -> None:
        pauses.append(seconds)
        ddb = boto3.client("dynamodb", region_name=REGION)
        for item in ({"user_id": USER, "timestamp": f"{early['client_timestamp']}#{early['event_id']}"},
                     {"user_id": USER, "timestamp": "SUMMARY", "completed_count": 10, "watch_seconds": 6000}):
            ddb.put_item(TableName=TABLES["ACTIVITY_TABLE"], Item=dynamo.serialize(item))

    monkeypatch.setattr(mod.handler.time, "sleep", activity_lands_meanwhile)
    assert deliver(context, early) == {"batchItemFailures": []}
    assert pauses == [0.25]
    assert list(badges()) == ["videos_10"]
    assert visibility_changes == []


def test_message_still_not_ready_after_the_wait_comes_back_in_five_seconds(
        env: dict[str, str], context: Any, visibility_changes: list[dict[str, Any]]) -> None:
    early = viewing(10, event_type="complete", position=600)
    assert deliver(context, early) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert visibility_changes == [{
        "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/tap-test-queue.fifo",
        "Entries": [{"Id": "0", "ReceiptHandle": "handle-0", "VisibilityTimeout": 5}]}]


def test_the_wait_never_eats_into_the_time_the_writes_need(env: dict[str, str], context: Any,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          visibility_changes: list[dict[str, Any]]) -> None:
    monkeypatch.setattr(mod.handler, "READY_WAIT_S", 5.0)
    monkeypatch.setattr(mod.handler.time, "sleep", lambda seconds: pytest.fail(f"slept {seconds}s"))
    context.remaining_ms = mod.handler.RESERVE_MS
    assert deliver(context, viewing(10, event_type="complete", position=600)) == {
        "batchItemFailures": [{"itemIdentifier": "m0"}]}


@pytest.mark.parametrize(("receive_count", "delay"), [(1, 5), (2, 20), (3, 80), (4, None), (5, None)])
def test_retries_come_sooner_then_at_the_queue_timeout_before_the_dlq(receive_count: int, delay: int | None) -> None:
    assert mod.handler.retry_delay(receive_count) == delay


def test_event_not_yet_in_user_activity_is_reported_for_retry(env: dict[str, str], context: Any) -> None:
    early = viewing(10, event_type="complete", position=600)
    other = record_activity(3, completed=3, watch_seconds=1800, user="user-2")
    response = deliver(context, early, other)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


def test_later_messages_of_a_waiting_user_are_reported_too(env: dict[str, str], context: Any) -> None:
    early = viewing(10, event_type="complete", position=600)
    later = viewing(11, event_type="complete", position=600)
    assert deliver(context, early, later) == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}


def test_poison_message_is_the_only_one_reported(env: dict[str, str], context: Any) -> None:
    good = record_activity(1, completed=1, watch_seconds=600, user="user-2")
    event = sqs_event([(USER, "{oops"), ("user-2", completion_body(good, 1.0))])
    assert mod.handler.lambda_handler(event, context) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


def test_failed_publish_is_retried_without_a_second_badge(env: dict[str, str], context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    record = record_activity(10, completed=10, watch_seconds=6000)
    client = tap_common.aws.client("sns")
    original = client.publish_batch

    def fails(**kwargs: Any) -> Any:
        raise client.exceptions.InternalErrorException({"Error": {"Code": "InternalError", "Message": "x"}}, "PublishBatch")

    monkeypatch.setattr(client, "publish_batch", fails)
    assert deliver(context, record) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert "notified_at" not in badges()["videos_10"]
    monkeypatch.setattr(client, "publish_batch", original)
    assert deliver(context, record) == {"batchItemFailures": []}
    assert len(notifications(env["queue"])) == 1
    assert "notified_at" in badges()["videos_10"]


def test_notification_carries_the_badge_attribute(env: dict[str, str], context: Any) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    deliver(context, record_activity(10, completed=10, watch_seconds=6000))
    [message] = sqs.receive_message(QueueUrl=env["queue"], MessageAttributeNames=["All"])["Messages"]
    assert message["MessageAttributes"]["badge_id"]["StringValue"] == "videos_10"
