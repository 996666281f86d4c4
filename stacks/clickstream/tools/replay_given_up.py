"""Put the records the stream mapping gave up back on the clickstream stream.

    python stacks/clickstream/tools/replay_given_up.py [--env dev] [--dry-run]

The mapping gives a batch up (after retrying it until the records' maximum age: an outage, a
throttled function) to the given-up bucket, as Lambda's failure record with the whole invocation
event: ``aws/lambda/<mapping>/<shard>/YYYY/MM/DD/<time>-<uuid>``, its ``payload`` holding the
records with their data and partition keys. This puts every record of every failure record back
on the stream with its own partition key (so per-user order among replayed records is kept) and
deletes the failure record once all of its records are accepted. Replaying twice stores and counts
nothing twice: the processor writes an event's items on condition they are new.

The target is the sandbox of ``--env`` by default, or the account ``TAPSTACK_OUTPUTS`` names
(``tapharness.deployed``); the stack's outputs give the bucket and the stream.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tapharness.deployed import Target, load_target

PREFIX = "aws/lambda/"
PUT_RECORDS_LIMIT = 500
PUT_ATTEMPTS = 5


@dataclass(frozen=True)
class Entry:
    data: bytes
    partition_key: str


def entries_of(failure_record: dict[str, Any]) -> list[Entry]:
    """The records of one failure record, with their data and partition keys, in stream order."""
    payload = json.loads(failure_record["payload"])
    return [Entry(base64.b64decode(r["kinesis"]["data"]), r["kinesis"]["partitionKey"]) for r in payload["Records"]]


def put_all(kinesis: Any, stream: str, entries: list[Entry]) -> int:
    """PutRecords in chunks, retrying the entries Kinesis refused (throttling); the count that failed."""
    left = 0
    for start in range(0, len(entries), PUT_RECORDS_LIMIT):
        pending = [{"Data": e.data, "PartitionKey": e.partition_key} for e in entries[start:start + PUT_RECORDS_LIMIT]]
        for _ in range(PUT_ATTEMPTS):
            response = kinesis.put_records(StreamName=stream, Records=pending)
            pending = [entry for entry, result in zip(pending, response["Records"], strict=True) if "ErrorCode" in result]
            if not pending:
                break
        left += len(pending)
    return left


def replay(target: Target, dry_run: bool = False) -> dict[str, int]:
    s3, kinesis = target.client("s3"), target.client("kinesis")
    bucket, stream = str(target.output("given_up_bucket")), str(target.output("kinesis_stream_name"))
    counts = {"failure_records": 0, "records": 0, "replayed": 0, "left": 0}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for item in page.get("Contents", []):
            record = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            entries = entries_of(record)
            counts["failure_records"] += 1
            counts["records"] += len(entries)
            if dry_run:
                continue
            left = put_all(kinesis, stream, entries)
            counts["replayed"] += len(entries) - left
            counts["left"] += left
            if not left:
                s3.delete_object(Bucket=bucket, Key=item["Key"])
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="dev", choices=("dev", "staging", "prod"))
    parser.add_argument("--dry-run", action="store_true", help="count what would be replayed, change nothing")
    args = parser.parse_args()
    target = load_target({**os.environ, "TAPSTACK_STACK": "clickstream", "TAPSTACK_ENV": args.env})
    counts = replay(target, args.dry_run)
    print(json.dumps(counts))
    return 1 if counts["left"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
