"""Building blocks of the integration tests: test-owned ids and events, the API, readers of the
stack's stores, a test-owned subscriber queue, a small PNG.

Everything here talks to the deployed stack through ``tapharness.deployed.Target``; nothing
imports the handlers, so the suite checks the deployed behaviour against docs/contract.md.
"""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from tapharness.deployed import Target
from tapharness.retry import wait_for

# Bound of one asynchronous hop (poll, cold start, invoke, write), generous for a loaded 2-core
# machine; waits that include SQS redeliveries add the queue's visibility timeout on top.
HOP_TIMEOUT_S = 120.0
_DESERIALIZER = TypeDeserializer()
_SERIALIZER = TypeSerializer()


def new_id(kind: str) -> str:
    """A test-owned identifier, unique per call (valid as user_id/content_id: [A-Za-z0-9_-]{1,64})."""
    return f"it-{kind}-{uuid.uuid4().hex[:16]}"


def iso_ms(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds, the API's client_timestamp format."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class Clock:
    """Strictly increasing client timestamps, one second apart, starting a minute ago."""

    def __init__(self) -> None:
        self._next = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)

    def tick(self) -> str:
        value, self._next = self._next, self._next + timedelta(seconds=1)
        return iso_ms(value)


@dataclass(frozen=True)
class ViewingEvent:
    """One viewing event as a client posts it to ``/<route>``."""

    route: str
    user_id: str
    content_id: str
    position_seconds: float
    duration_seconds: float
    client_timestamp: str
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def body(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "user_id": self.user_id, "content_id": self.content_id,
                "position_seconds": self.position_seconds, "duration_seconds": self.duration_seconds,
                "client_timestamp": self.client_timestamp}

    def record(self) -> dict[str, Any]:
        """The Kinesis record event_processor would write for it."""
        return {**self.body(), "event_type": self.route, "received_at": iso_ms(datetime.now(UTC))}

    @property
    def progress(self) -> float:
        return min(1.0, self.position_seconds / self.duration_seconds)

    @property
    def sort_key(self) -> str:
        return f"{self.client_timestamp}#{self.event_id}"


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any


class Api:
    """POSTs to the stack's ingestion routes (``api_endpoints`` output)."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def post_bytes(self, route: str, data: bytes, content_type: str = "application/json") -> ApiResponse:
        request = urllib.request.Request(self.target.route_url(route), data=data, method="POST",
                                         headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        return ApiResponse(status, body)

    def send(self, event: ViewingEvent) -> None:
        """Post an event that must be accepted (202 with its event_id)."""
        response = self.post_bytes(event.route, json.dumps(event.body()).encode())
        expected = {"event_id": event.event_id, "status": "accepted"}
        assert (response.status, response.body) == (202, expected), (
            f"POST /{event.route} of {event.body()} answered {response.status} {response.body!r}, "
            f"expected 202 {expected!r}")


# --- DynamoDB ------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """DynamoDB numbers (Decimal) as int/float, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _item(raw: dict[str, Any]) -> dict[str, Any]:
    return plain({k: _DESERIALIZER.deserialize(v) for k, v in raw.items()})


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _SERIALIZER.serialize(v) for k, v in item.items()}


def get_item(target: Target, table: str, key: dict[str, str]) -> dict[str, Any] | None:
    response = target.client("dynamodb").get_item(TableName=target.output("dynamodb_table_names", table),
                                                  Key=serialize(key), ConsistentRead=True)
    return _item(response["Item"]) if "Item" in response else None


def put_item(target: Target, table: str, item: dict[str, Any]) -> None:
    target.client("dynamodb").put_item(TableName=target.output("dynamodb_table_names", table), Item=serialize(item))


def delete_item(target: Target, table: str, key: dict[str, str]) -> None:
    target.client("dynamodb").delete_item(TableName=target.output("dynamodb_table_names", table), Key=serialize(key))


def activity_items(target: Target, user_id: str) -> dict[str, dict[str, Any]]:
    """Every user_activity item of the user, by sort key (event items and SUMMARY)."""
    items: dict[str, dict[str, Any]] = {}
    request: dict[str, Any] = {
        "TableName": target.output("dynamodb_table_names", "activity"),
        "KeyConditionExpression": "user_id = :u",
        "ExpressionAttributeValues": {":u": {"S": user_id}},
        "ConsistentRead": True,
    }
    while True:
        page = target.client("dynamodb").query(**request)
        for raw in page["Items"]:
            item = _item(raw)
            items[item["timestamp"]] = item
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def summary(target: Target, user_id: str) -> dict[str, Any] | None:
    return get_item(target, "activity", {"user_id": user_id, "timestamp": "SUMMARY"})


def bank_watch_time(target: Target, user_id: str, seconds: float) -> None:
    """Give the viewer ``seconds`` of watch history, as if watched long ago: the stack credits
    watch time against the API's clock, so 100 hours cannot be earned in a test run. The
    version bump makes a concurrent activity write re-read the SUMMARY instead of losing this."""
    target.client("dynamodb").update_item(
        TableName=target.output("dynamodb_table_names", "activity"),
        Key=serialize({"user_id": user_id, "timestamp": "SUMMARY"}),
        UpdateExpression="ADD watch_seconds :s, version :one",
        ExpressionAttributeValues=serialize({":s": Decimal(str(seconds)), ":one": 1}))


def badges(target: Target, user_id: str) -> dict[str, dict[str, Any]]:
    """The user's user_achievements items by badge_id."""
    page = target.client("dynamodb").query(
        TableName=target.output("dynamodb_table_names", "achievements"), KeyConditionExpression="user_id = :u",
        ExpressionAttributeValues={":u": {"S": user_id}}, ConsistentRead=True)
    return {item["badge_id"]: item for item in map(_item, page["Items"])}


def wait_for_summary(target: Target, user_id: str, description: str, ready: Callable[[dict[str, Any]], bool],
                     timeout: float = HOP_TIMEOUT_S) -> dict[str, Any]:
    """The user's SUMMARY item once ``ready`` holds for it."""
    return wait_for(f"the SUMMARY item of {user_id} to show {description}", lambda: summary(target, user_id),
                    timeout, ready=lambda item: item is not None and ready(item))


# --- Kinesis -------------------------------------------------------------------------------


def stream_iterators(target: Target) -> dict[str, str]:
    """A LATEST iterator per shard of the viewing stream: reading them later returns what arrived since."""
    kinesis = target.client("kinesis")
    stream = target.output("kinesis_stream_name")
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    return {shard["ShardId"]: kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                                         ShardIteratorType="LATEST")["ShardIterator"]
            for shard in shards}


def records_since(target: Target, iterators: dict[str, str]) -> list[bytes]:
    """The data of every record written after ``iterators`` were taken, up to now."""
    kinesis = target.client("kinesis")
    found: list[bytes] = []
    for iterator in iterators.values():
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            found += [record["Data"] for record in page["Records"]]
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            iterator = page.get("NextShardIterator")
    return found


# --- SQS -----------------------------------------------------------------------------------


def take_messages(target: Target, queue_url: str, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """One receive round on a queue this test does not own: deletes and returns the messages
    that ``match`` accepts; the others become visible again after two seconds."""
    sqs = target.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                   VisibilityTimeout=2, AttributeNames=["All"]).get("Messages", [])
    taken = [m for m in messages if match(m)]
    for message in taken:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return taken


def queue_attributes(target: Target, queue_key: str) -> dict[str, str]:
    return target.client("sqs").get_queue_attributes(QueueUrl=target.output("sqs_queue_urls", queue_key),
                                                     AttributeNames=["All"])["Attributes"]


def redelivery_bound(target: Target, queue_key: str) -> float:
    """How long a message of the queue can take when its first delivery is retried once."""
    return 2 * float(queue_attributes(target, queue_key)["VisibilityTimeout"]) + HOP_TIMEOUT_S


class Inbox:
    """A test-owned SQS queue subscribed (raw delivery) to one of the stack's SNS topics."""

    def __init__(self, target: Target, topic_arn: str) -> None:
        self.target = target
        sqs, sns = target.client("sqs"), target.client("sns")
        self.url = sqs.create_queue(QueueName=new_id("inbox"))["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]}
        sqs.set_queue_attributes(QueueUrl=self.url, Attributes={"Policy": json.dumps(policy)})
        self.subscription = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn,
                                          Attributes={"RawMessageDelivery": "true"},
                                          ReturnSubscriptionArn=True)["SubscriptionArn"]
        self.received: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        """Read everything delivered so far; returns all message bodies received since creation."""
        sqs = self.target.client("sqs")
        while True:
            messages = sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", [])
            if not messages:
                return self.received
            for message in messages:
                self.received.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def for_user(self, user_id: str) -> list[dict[str, Any]]:
        return [body for body in self.drain() if body.get("user_id") == user_id]

    def close(self) -> None:
        self.target.client("sns").unsubscribe(SubscriptionArn=self.subscription)
        self.target.client("sqs").delete_queue(QueueUrl=self.url)


# --- images --------------------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG of the given size."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + b"\x20\x80\xe0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
