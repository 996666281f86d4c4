"""Builders of the events AWS delivers to the handlers (Kinesis, SQS FIFO, DynamoDB
stream, S3, API Gateway proxy v1) and of viewing records."""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tap_common import dynamo

_sequence = itertools.count(49590338271490256608559692538361571095921575989136588801)
ARRIVAL = 1795413600.0  # 2026-11-23T06:00:00Z


def event_id(n: int) -> str:
    return str(uuid.UUID(int=n, version=4))


def viewing(
    n: int,
    user: str = "user-1",
    content: str = "content-1",
    event_type: str = "watch",
    position: float = 60,
    duration: float = 600,
    timestamp: str | None = None,
    received: str | None = None,
) -> dict[str, Any]:
    """The Kinesis record of the n-th test event (event_id derived from n); received when sent
    unless said."""
    ts = timestamp or f"2026-11-23T06:{n // 60 % 60:02d}:{n % 60:02d}.000Z"
    return {
        "event_id": event_id(n),
        "event_type": event_type,
        "user_id": user,
        "content_id": content,
        "position_seconds": position,
        "duration_seconds": duration,
        "client_timestamp": ts,
        "received_at": received or ts,
    }


def kinesis_event(
    payloads: Sequence[Mapping[str, Any] | bytes],
    *,
    shard: str = "shardId-000000000000",
    window: bool = False,
    state: Mapping[str, Any] | None = None,
    final: bool = False,
) -> dict[str, Any]:
    records = []
    for payload in payloads:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        seq = str(next(_sequence))
        key = payload.get("user_id", "x") if isinstance(payload, Mapping) else "x"
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": key,
                    "sequenceNumber": seq,
                    "data": base64.b64encode(data).decode(),
                    "approximateArrivalTimestamp": ARRIVAL,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard}:{seq}",
                "eventName": "aws:kinesis:record",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/tap-test-activity",
            }
        )
    event: dict[str, Any] = {"Records": records}
    if window:
        event.update(
            {
                "window": {"start": "2026-11-23T06:00:00Z", "end": "2026-11-23T06:01:00Z"},
                "state": dict(state or {}),
                "shardId": shard,
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/tap-test-activity",
                "isFinalInvokeForWindow": final,
                "isWindowTerminatedEarly": False,
            }
        )
    return event


def sequence_numbers(event: Mapping[str, Any]) -> list[str]:
    return [r["kinesis"]["sequenceNumber"] for r in event["Records"]]


def sqs_event(bodies: Iterable[tuple[str, Mapping[str, Any] | str]]) -> dict[str, Any]:
    """FIFO SQS event from (message group id, body) pairs; message ids m0, m1, ..."""
    records = []
    for index, (group, body) in enumerate(bodies):
        records.append(
            {
                "messageId": f"m{index}",
                "receiptHandle": f"handle-{index}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795413600000",
                    "SequenceNumber": str(18800000000000000000 + index),
                    "MessageGroupId": group,
                    "SenderId": "AIDAEXAMPLE",
                    "MessageDeduplicationId": f"dedup-{index}",
                    "ApproximateFirstReceiveTimestamp": "1795413600000",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tap-test-queue.fifo",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


def completion_body(record: Mapping[str, Any], ratio: float) -> dict[str, Any]:
    return {**record, "completion_ratio": ratio}


def stream_event(changes: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """DynamoDB stream event on user_activity from (event name, new image) pairs."""
    records = []
    for name, image in changes:
        seq = str(next(_sequence))
        keys = {"user_id": image["user_id"], "timestamp": image["timestamp"]}
        records.append(
            {
                "eventID": seq[-8:],
                "eventName": name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": ARRIVAL,
                    "Keys": dynamo.serialize(keys),
                    "NewImage": dynamo.serialize(image),
                    "SequenceNumber": seq,
                    "SizeBytes": 100,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/tap-test-user_activity/stream/x",
            }
        )
    return {"Records": records}


def s3_event(bucket: str, key: str, size: int | None, version: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key, "eTag": "0" * 32, "sequencer": "0055AED6DCD90281E5"}
    if size is not None:
        obj["size"] = size
    if version is not None:
        obj["versionId"] = version
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-23T06:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "thumbnails",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}", "ownerIdentity": {"principalId": "x"}},
                    "object": obj,
                },
            }
        ]
    }


def api_event(path: str, body: str | None, *, base64_encoded: bool = False) -> dict[str, Any]:
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": path, "httpMethod": "POST", "stage": "test", "requestId": "req-1"},
        "body": body,
        "isBase64Encoded": base64_encoded,
    }
