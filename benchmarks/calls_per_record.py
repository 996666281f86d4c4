"""AWS API calls per record for each consumer, on generated batches (not a test).

Runs every handler in-process against moto (and a real Redis / PostgreSQL from
tapharness.services for the consumers that need them), counts the AWS operations its
clients issue with a botocore `before-call` hook, and prints one table. Every batch is
run twice, first on a cold container (secrets fetched, schema created), then warm.

    python benchmarks/calls_per_record.py
"""

from __future__ import annotations

import base64
import json
import os
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# The imports below need the repository on sys.path.
import boto3
from boto3.dynamodb.types import TypeSerializer
from moto import mock_aws
from moto.sagemakerruntime.models import sagemakerruntime_backends

from tapharness import services
from tapharness.lambdas import FakeContext as Context
from tapharness.lambdas import load_package, reset_container, tap_common

REGION = "us-east-1"
ACCOUNT = "123456789012"
SERVICES = ("dynamodb", "s3", "sns", "kinesis", "secretsmanager", "sagemaker-runtime", "athena")
TABLES = {
    "ACTIVITY_TABLE": ("bench-user_activity", ("user_id", "timestamp")),
    "RECOMMENDATIONS_TABLE": ("bench-user_recommendations", ("user_id",)),
    "ACHIEVEMENTS_TABLE": ("bench-user_achievements", ("user_id", "badge_id")),
    "CATALOG_TABLE": ("bench-content_catalog", ("content_id",)),
}
USERS, EVENTS_PER_USER = 10, 10


@dataclass
class Row:
    consumer: str
    batch: str
    records: int
    cold: Counter[str]
    warm: Counter[str]


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """Counts operations of the handler's (cached) clients while the block runs."""
    calls: Counter[str] = Counter()

    def hook(model: Any, **_: Any) -> None:
        calls[f"{model.service_model.service_name}:{model.name}"] += 1

    clients = [tap_common.aws.client(service) for service in SERVICES]
    for client in clients:
        client.meta.events.register("before-call", hook, unique_id="bench-counter")
    try:
        yield calls
    finally:
        for client in clients:
            client.meta.events.unregister("before-call", unique_id="bench-counter")


def measure(run: Callable[[], Any], second: Callable[[], Any] | None = None) -> tuple[Counter[str], Counter[str]]:
    reset_container()
    with counting() as cold:
        run()
    with counting() as warm:
        (second or run)()
    return cold, warm


def viewing(n: int, user: str, event_type: str = "watch", position: float = 60.0) -> dict[str, Any]:
    ts = f"2026-11-23T06:{n // 60 % 60:02d}:{n % 60:02d}.000Z"
    return {
        "event_id": str(uuid.UUID(int=n, version=4)),
        "event_type": event_type,
        "user_id": user,
        "content_id": f"content-{n % 7}",
        "position_seconds": position,
        "duration_seconds": 600,
        "client_timestamp": ts,
        "received_at": ts,
    }


def generated_events(offset: int) -> list[dict[str, Any]]:
    """USERS x EVENTS_PER_USER events, every third one a full completion."""
    events = []
    for u in range(USERS):
        for e in range(EVENTS_PER_USER):
            n = offset + u * EVENTS_PER_USER + e
            complete = n % 3 == 0
            events.append(viewing(n, f"user-{u}", "complete" if complete else "watch", 600.0 if complete else 60.0 * (e + 1)))
    return events


def kinesis_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "kinesis": {
                    "partitionKey": r["user_id"],
                    "sequenceNumber": f"{49600000000000000000000000000000 + i}",
                    "data": base64.b64encode(json.dumps(r).encode()).decode(),
                    "approximateArrivalTimestamp": 1795413600.0,
                },
                "eventID": f"shardId-000000000000:{49600000000000000000000000000000 + i}",
                "eventSource": "aws:kinesis",
            }
            for i, r in enumerate(records)
        ]
    }


def sqs_event(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "body": json.dumps(b),
                "attributes": {"MessageGroupId": b["user_id"]},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
            }
            for i, b in enumerate(bodies)
        ]
    }


def create_tables() -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    for env, (name, keys) in TABLES.items():
        os.environ[env] = name
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": k, "KeyType": "HASH" if i == 0 else "RANGE"} for i, k in enumerate(keys)],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
            BillingMode="PAY_PER_REQUEST",
        )


def secret(name: str, value: dict[str, Any]) -> str:
    return boto3.client("secretsmanager", region_name=REGION).create_secret(Name=name, SecretString=json.dumps(value))["ARN"]


def bench_activity() -> Row:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="bench-raw")
    os.environ.update(RAW_BUCKET="bench-raw", RAW_PREFIX="raw/")
    handler = load_package("activity_consumer").handler
    first, second = kinesis_event(generated_events(0)), kinesis_event(generated_events(1000))
    cold, warm = measure(lambda: handler.lambda_handler(first, Context()), lambda: handler.lambda_handler(second, Context()))
    return Row("activity_consumer", f"Kinesis, {USERS} users x {EVENTS_PER_USER} events", len(first["Records"]), cold, warm)


def bench_completion() -> Row:
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="bench.fifo", Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"})
    os.environ["COMPLETE_TOPIC_ARN"] = topic["TopicArn"]
    handler = load_package("completion_detector").handler
    first, second = kinesis_event(generated_events(0)), kinesis_event(generated_events(1000))
    cold, warm = measure(lambda: handler.lambda_handler(first, Context()), lambda: handler.lambda_handler(second, Context()))
    return Row("completion_detector", "Kinesis, same batch (1/3 complete)", len(first["Records"]), cold, warm)


def bench_recommendations(redis_server: services.RedisServer | None) -> Row | str:
    if redis_server is None:
        return "recommendations: skipped, no redis-server"
    import redis

    os.environ.update(
        REDIS_HOST=redis_server.host,
        REDIS_PORT=str(redis_server.port),
        REDIS_TLS="false",
        REDIS_AUTH_SECRET_ARN=secret("bench-redis", {"auth_token": redis_server.password}),
        SAGEMAKER_ENDPOINT="bench-recs",
        RECOMMENDATION_TTL_HOURS="24",
        TTL_ATTRIBUTE="expires_at",
        TOP_N="10",
    )
    cache = redis.Redis(host=redis_server.host, port=redis_server.port, password=redis_server.password)
    for c in range(7):
        cache.zadd(f"cf:content-{c}", {f"content-{(c + k) % 40}": 1.0 / k for k in range(1, 20)})
    backend = sagemakerruntime_backends[ACCOUNT][REGION]
    answer = json.dumps({"recommendations": [{"content_id": f"content-{k}", "score": 1.0 / k} for k in range(1, 15)]})
    backend.results_queue.extend([(answer, "application/json", "AllTraffic", "")] * 100)
    serializer = TypeSerializer()
    ddb = boto3.client("dynamodb", region_name=REGION)
    table = os.environ["ACTIVITY_TABLE"]
    records = []
    for r in generated_events(0):
        key = {"user_id": r["user_id"], "timestamp": f"{r['client_timestamp']}#{r['event_id']}"}
        item = {**key, "content_id": r["content_id"], "progress": {"N": "0.5"}}
        ddb.put_item(TableName=table, Item={k: v if isinstance(v, dict) else serializer.serialize(v) for k, v in item.items()})
        records.append(("INSERT", key))
    records += [("MODIFY", {"user_id": f"user-{u}", "timestamp": "SUMMARY"}) for u in range(USERS)]
    event = {
        "Records": [
            {
                "eventName": name,
                "eventSource": "aws:dynamodb",
                "dynamodb": {
                    "Keys": {k: serializer.serialize(v) for k, v in keys.items()},
                    "NewImage": {k: serializer.serialize(v) for k, v in keys.items()},
                    "SequenceNumber": str(1000 + i),
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
            }
            for i, (name, keys) in enumerate(records)
        ]
    }
    handler = load_package("recommendations").handler
    cold, warm = measure(lambda: handler.lambda_handler(event, Context()))
    return Row("recommendations", f"DDB stream, {USERS} users (events + SUMMARY)", len(event["Records"]), cold, warm)


def bench_analytics(pg: services.PostgresServer | None) -> Row | str:
    if pg is None:
        return "analytics_consumer: skipped, no PostgreSQL"
    os.environ.update(
        DB_SECRET_ARN=secret("bench-db", {"username": pg.user, "password": pg.password}),
        DB_HOST=pg.host,
        DB_PORT=str(pg.port),
        DB_NAME=pg.database,
    )
    handler = load_package("analytics_consumer").handler
    def completions(offset: int) -> dict[str, Any]:
        done = [r for r in generated_events(offset) if r["event_type"] == "complete"][:10]
        return sqs_event([{**r, "completion_ratio": 1.0} for r in done])

    first, second = completions(0), completions(1000)
    cold, warm = measure(lambda: handler.lambda_handler(first, Context()), lambda: handler.lambda_handler(second, Context()))
    return Row("analytics_consumer", "SQS FIFO, 10 messages (1 SQL transaction)", 10, cold, warm)


def bench_achievements() -> Row:
    sns = boto3.client("sns", region_name=REGION)
    os.environ["NOTIFICATIONS_TOPIC_ARN"] = sns.create_topic(Name="bench-notifications")["TopicArn"]
    serializer = TypeSerializer()
    ddb = boto3.client("dynamodb", region_name=REGION)
    bodies = []
    for u in range(10):
        r = viewing(5000 + u, f"ach-{u}", "complete", 600.0)
        completed = 10 if u == 0 else 3
        for item in (
            {"user_id": r["user_id"], "timestamp": f"{r['client_timestamp']}#{r['event_id']}"},
            {"user_id": r["user_id"], "timestamp": "SUMMARY", "completed_count": completed, "watch_seconds": 1800},
        ):
            ddb.put_item(TableName=os.environ["ACTIVITY_TABLE"], Item={k: serializer.serialize(v) for k, v in item.items()})
        bodies.append({**r, "completion_ratio": 1.0})
    handler = load_package("achievements_consumer").handler
    event = sqs_event(bodies)
    cold, warm = measure(lambda: handler.lambda_handler(event, Context()))
    return Row("achievements_consumer", "SQS FIFO, 10 users, 1 earns a badge (cold); redelivery (warm)", 10, cold, warm)


def bench_thumbnail() -> Row:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="bench-thumbs")
    os.environ.update(THUMBNAILS_BUCKET="bench-thumbs", MAX_THUMBNAIL_BYTES="5242880")
    png = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + (320).to_bytes(4, "big") + (180).to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    s3.put_object(Bucket="bench-thumbs", Key="uploads/c1/a.png", Body=png)
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "s3": {"bucket": {"name": "bench-thumbs"}, "object": {"key": "uploads/c1/a.png", "size": len(png)}},
            }
        ]
    }
    handler = load_package("thumbnail_validator").handler
    cold, warm = measure(lambda: handler.lambda_handler(event, Context()))
    return Row("thumbnail_validator", "S3 event, 1 PNG", 1, cold, warm)


def bench_event_processor() -> Row:
    boto3.client("kinesis", region_name=REGION).create_stream(StreamName="bench", ShardCount=1)
    os.environ["STREAM_NAME"] = "bench"
    body = {k: v for k, v in viewing(1, "user-1").items() if k not in ("event_type", "received_at")}
    event = {"resource": "/watch", "path": "/watch", "httpMethod": "POST", "body": json.dumps(body), "isBase64Encoded": False}
    handler = load_package("event_processor").handler
    cold, warm = measure(lambda: handler.lambda_handler(event, Context()))
    return Row("event_processor", "API request", 1, cold, warm)


def start(launcher: Callable[[], Any]) -> Any:
    try:
        return launcher()
    except services.ServiceUnavailable as exc:
        print(f"note: {exc}")
        return None


def main() -> None:
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION,
        ENV="bench", PROJECT="tap", LOG_LEVEL="WARNING", POWERTOOLS_SERVICE_NAME="bench", FULL_COMPLETION_RATIO="0.9",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    redis_server = start(services.start_redis)
    pg = start(services.start_postgres)
    try:
        with mock_aws():
            create_tables()
            results = [
                bench_event_processor(),
                bench_activity(),
                bench_completion(),
                bench_recommendations(redis_server),
                bench_analytics(pg),
                bench_achievements(),
                bench_thumbnail(),
            ]
            reset_container()
    finally:
        for server in (redis_server, pg):
            if server is not None:
                server.stop()
    print(f"{'consumer':<22} {'records':>7} {'cold':>5} {'warm':>5} {'warm/rec':>8}  warm calls by operation | batch")
    for row in results:
        if isinstance(row, str):
            print(row)
            continue
        warm_total, cold_total = sum(row.warm.values()), sum(row.cold.values())
        ops = ", ".join(f"{op.split(':')[1]} {n}" for op, n in sorted(row.warm.items())) or "none"
        print(f"{row.consumer:<22} {row.records:>7} {cold_total:>5} {warm_total:>5} {warm_total / row.records:>8.3f}  {ops} | {row.batch}")


if __name__ == "__main__":
    main()
