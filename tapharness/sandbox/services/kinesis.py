"""Kinesis Data Streams: CreateStream's Tags, and shards whose PutRecord and GetRecords do not
cost the shard's length. Event source mappings on streams are read by
``tapharness.sandbox.pollers.kinesis``."""

from __future__ import annotations

import threading

from moto.core.responses import ActionResult
from moto.kinesis.models import Record, Shard
from moto.kinesis.responses import KinesisResponse

from tapharness.sandbox import clock
from tapharness.sandbox.patches import patch

# Kinesis: CreateStream's Tags are dropped.
_CREATE_STREAM = KinesisResponse.create_stream


@patch(KinesisResponse, "create_stream")
def create_stream(self: KinesisResponse) -> ActionResult:
    """CreateStream that keeps its Tags."""
    response = _CREATE_STREAM(self)
    tags = self._get_param("Tags")
    if tags:
        self.kinesis_backend.add_tags_to_stream(None, self._get_param("StreamName"), tags)
    return response


# --- Speed: what a profile of the sandbox under load showed ----------------------------

# Kinesis: moto finds a shard's last sequence number by listing every record's key, on every
# PutRecord and every LATEST iterator, and reads GetRecords by scanning the shard from its first
# record, so both cost the shard's length. Its sequence numbers are consecutive integers, so the
# last one is the newest key and a read starts right after the iterator's. PutRecord, which moto
# marks "not safe for concurrency", takes a lock: two concurrent puts could get the same number
# and the second would overwrite the first record.
_SHARD_LOCK = threading.Lock()


@patch(Shard, "get_max_sequence_number")
def _shard_max_sequence(self: Shard) -> int:
    return next(reversed(self.records), 0)


@patch(Shard, "get_min_sequence_number")
def _shard_min_sequence(self: Shard) -> int:
    return next(iter(self.records), 0)


@patch(Shard, "put_record")
def _shard_put_record(self: Shard, partition_key: str, data: str, explicit_hash_key: str) -> str:
    with _SHARD_LOCK:
        sequence = _shard_max_sequence(self) + 1
        record = Record(partition_key, data, sequence, explicit_hash_key)
        # Arrival on the sandbox's clock: a mapping's maximum record age is judged on it.
        record.created_at_datetime, record.created_at = clock.utc(), clock.now()
        self.records[sequence] = record
    return str(sequence)


@patch(Shard, "get_records")
def _shard_get_records(self: Shard, last_sequence_id: str, limit: int | None) -> tuple[list[Record], int, int]:
    last = int(last_sequence_id)
    newest = _shard_max_sequence(self)
    results: list[Record] = []
    sequence = max(last + 1, _shard_min_sequence(self))
    while sequence <= newest and (limit is None or len(results) < limit):
        record = self.records.get(sequence)
        if record is not None:
            results.append(record)
            last = sequence
        sequence += 1
    behind = self.records[newest].created_at - results[-1].created_at if results else 0.0
    return results, last, int(behind * 1000)
