"""completion_detector: 'complete' events → watched-complete FIFO topic, with the
attributes the analytics and achievements subscriptions filter on."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import tap_common.aws
from tap_common.events import ViewingEvent

from .conftest import REGION, load_package, log_records
from .factories import kinesis_event, sequence_numbers, viewing

mod = load_package("completion_detector", "handler", "completion")


def test_entry_is_grouped_by_user_and_deduplicated_by_event_id() -> None:
    entry = mod.completion.publish_entry("0", ViewingEvent.from_record(viewing(1, event_type="complete")))
    assert (entry["MessageGroupId"], entry["MessageDeduplicationId"]) == ("user-1", viewing(1)["event_id"])


def test_entry_carries_the_filter_attributes() -> None:
    event = ViewingEvent.from_record(viewing(1, event_type="complete", position=555, duration=600))
    attributes = mod.completion.publish_entry("0", event)["MessageAttributes"]
    assert attributes == {
        "event_type": {"DataType": "String", "StringValue": "complete"},
        "completion_ratio": {"DataType": "Number", "StringValue": "0.925"},
        "content_id": {"DataType": "String", "StringValue": "content-1"},
    }


def test_entry_body_is_the_record_plus_completion_ratio() -> None:
    record = viewing(1, event_type="complete", position=300, duration=600)
    body = json.loads(mod.completion.publish_entry("0", ViewingEvent.from_record(record))["Message"])
    assert body == {**record, "completion_ratio": 0.5}


@pytest.fixture
def fanout(aws: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The watched-complete FIFO topic with the two FIFO queues and their filter policies."""
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(
        Name="tap-test-watched-complete.fifo",
        Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"},
    )["TopicArn"]
    queues = {}
    policies = {
        "analytics": {"event_type": ["complete"]},
        "achievements": {"event_type": ["complete"], "completion_ratio": [{"numeric": [">=", 0.9]}]},
    }
    for name, policy in policies.items():
        url = sqs.create_queue(
            QueueName=f"tap-test-{name}.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps(policy)},
        )
        queues[name] = url
    monkeypatch.setenv("COMPLETE_TOPIC_ARN", topic)
    monkeypatch.setenv("FULL_COMPLETION_RATIO", "0.9")
    return queues


def received(queue_url: str) -> list[dict[str, Any]]:
    """Every message on the queue (received and deleted page by page)."""
    sqs = boto3.client("sqs", region_name=REGION)
    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_complete_events_reach_analytics_whatever_the_ratio(fanout: dict[str, str], context: Any) -> None:
    event = kinesis_event([viewing(1, event_type="complete", position=600), viewing(2, event_type="complete", position=300)])
    mod.handler.lambda_handler(event, context)
    assert sorted(m["event_id"] for m in received(fanout["analytics"])) == [viewing(1)["event_id"], viewing(2)["event_id"]]


def test_only_full_completions_reach_achievements(fanout: dict[str, str], context: Any) -> None:
    event = kinesis_event([viewing(1, event_type="complete", position=600), viewing(2, event_type="complete", position=300)])
    mod.handler.lambda_handler(event, context)
    assert [m["event_id"] for m in received(fanout["achievements"])] == [viewing(1)["event_id"]]


def test_watch_and_pause_events_are_not_published(fanout: dict[str, str], context: Any) -> None:
    response = mod.handler.lambda_handler(kinesis_event([viewing(1), viewing(2, event_type="pause")]), context)
    assert response == {"batchItemFailures": []}
    assert received(fanout["analytics"]) == []


def test_more_than_ten_completions_are_all_published(fanout: dict[str, str], context: Any) -> None:
    records = [viewing(n, user=f"user-{n}", event_type="complete", position=600) for n in range(1, 24)]
    assert mod.handler.lambda_handler(kinesis_event(records), context) == {"batchItemFailures": []}
    assert len({m["event_id"] for m in received(fanout["analytics"])}) == 23


def test_poison_record_is_the_only_one_reported(fanout: dict[str, str], context: Any) -> None:
    event = kinesis_event([viewing(1, event_type="complete", position=600), b"{broken"])
    response = mod.handler.lambda_handler(event, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence_numbers(event)[1]}]}


def test_entries_sns_rejects_are_reported(fanout: dict[str, str], context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client = tap_common.aws.client("sns")

    def second_entry_fails(**kwargs: Any) -> dict[str, Any]:
        entries = kwargs["PublishBatchRequestEntries"]
        return {
            "Successful": [{"Id": e["Id"], "MessageId": "x"} for e in entries if e["Id"] != "1"],
            "Failed": [{"Id": "1", "Code": "InternalError", "SenderFault": False}],
        }

    monkeypatch.setattr(client, "publish_batch", second_entry_fails)
    event = kinesis_event([viewing(n, event_type="complete", position=600) for n in (1, 2, 3)])
    response = mod.handler.lambda_handler(event, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence_numbers(event)[1]}]}


def test_unreachable_topic_reports_every_completion(fanout: dict[str, str], context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPLETE_TOPIC_ARN", f"arn:aws:sns:{REGION}:123456789012:missing.fifo")
    event = kinesis_event([viewing(1, event_type="complete", position=600), viewing(2)])
    response = mod.handler.lambda_handler(event, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence_numbers(event)[0]}]}


def test_each_published_completion_is_logged_with_its_content_and_ratio(
        fanout: dict[str, str], context: Any) -> None:
    with log_records(mod.handler.logger) as records:
        mod.handler.lambda_handler(kinesis_event([viewing(1, content="c1", event_type="complete", position=300)]),
                                   context)
    [line] = [r.__dict__ for r in records if r.getMessage() == "completion published"]
    assert (line["content_id"], line["completion_ratio"]) == ("c1", 0.5)
