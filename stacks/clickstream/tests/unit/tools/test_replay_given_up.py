"""The replay tool puts given-up records back on the stream, with their partition keys, once."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tapharness.deployed import Target

TOOL = Path(__file__).resolve().parents[3] / "tools" / "replay_given_up.py"
spec = importlib.util.spec_from_file_location("replay_given_up", TOOL)
assert spec is not None and spec.loader is not None
replay_tool = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = replay_tool  # its dataclasses look their module up there
spec.loader.exec_module(replay_tool)

REGION, BUCKET, STREAM = "us-east-1", "clickstream-dev-given-up-test", "clickstream-dev-events"


def failure_record(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Lambda's failure record for an S3 destination: metadata and the whole invocation event."""
    records = [{"kinesis": {"partitionKey": key, "sequenceNumber": str(i),
                            "data": base64.b64encode(json.dumps(body).encode()).decode()}}
               for i, (key, body) in enumerate(events)]
    return {"requestContext": {"condition": "RecordAgeExceeded"}, "version": "1.0",
            "KinesisBatchInfo": {"shardId": "shardId-000000000000", "batchSize": len(records)},
            "payload": json.dumps({"Records": records})}


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        boto3.client("kinesis", region_name=REGION).create_stream(StreamName=STREAM, ShardCount=1)
        yield Target(outputs={"given_up_bucket": BUCKET, "kinesis_stream_name": STREAM,
                              "kinesis_stream_arn": f"arn:aws:kinesis:{REGION}:123456789012:stream/{STREAM}"},
                     source=tmp_path / "outputs.json", env="dev")


def stream_records(target: Target) -> list[tuple[str, dict[str, Any]]]:
    kinesis = target.client("kinesis")
    iterator = kinesis.get_shard_iterator(StreamName=STREAM, ShardId="shardId-000000000000",
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return [(r["PartitionKey"], json.loads(r["Data"])) for r in kinesis.get_records(ShardIterator=iterator)["Records"]]


def test_every_given_up_record_goes_back_on_the_stream_with_its_key_and_the_record_is_deleted(target: Target) -> None:
    events = [("u1", {"event_id": "a"}), ("u2", {"event_id": "b"}), ("u1", {"event_id": "c"})]
    s3 = target.client("s3")
    s3.put_object(Bucket=BUCKET, Key="aws/lambda/esm/shardId-000000000000/2026/12/07/2026-12-07T10.00.00-x",
                  Body=json.dumps(failure_record(events)).encode())
    assert replay_tool.replay(target) == {"failure_records": 1, "records": 3, "replayed": 3, "left": 0}
    assert stream_records(target) == events
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    assert replay_tool.replay(target)["records"] == 0  # nothing is replayed twice


def test_a_dry_run_counts_and_changes_nothing(target: Target) -> None:
    target.client("s3").put_object(Bucket=BUCKET, Key="aws/lambda/esm/s/2026/12/07/t-x",
                                   Body=json.dumps(failure_record([("u1", {"event_id": "a"})])).encode())
    assert replay_tool.replay(target, dry_run=True) == {"failure_records": 1, "records": 1, "replayed": 0, "left": 0}
    assert stream_records(target) == [] and target.client("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"] == 1
