"""Partial batch responses for stream and queue consumers that aggregate before writing.

Powertools' BatchProcessor handles one record at a time; these consumers write once per
user (or once per batch), so they aggregate first and then report exactly the records
whose aggregate failed, in the same `batchItemFailures` shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def response(failed_ids: Iterable[str]) -> dict[str, Any]:
    unique = list(dict.fromkeys(failed_ids))
    return {"batchItemFailures": [{"itemIdentifier": item_id} for item_id in unique]}


def stream_response(sequence_numbers: Iterable[str], failed_ids: Iterable[str]) -> dict[str, Any]:
    """For streams (Kinesis, DynamoDB): Lambda checkpoints at the lowest failed record and retries
    from there, so only the first failed record in delivery order is reported."""
    failed = set(failed_ids)
    first = next((sequence for sequence in sequence_numbers if sequence in failed), None)
    return response([] if first is None else [first])


def fifo_failures(records: Sequence[tuple[str, str]], failed_ids: Iterable[str]) -> list[str]:
    """For FIFO queues: once a message of a group fails, every later message of that
    group must be reported too, or SQS would deliver them out of order.

    `records` are (message id, message group id) in delivery order.
    """
    failed = set(failed_ids)
    broken_groups: set[str] = set()
    result = []
    for message_id, group in records:
        if message_id in failed or group in broken_groups:
            broken_groups.add(group)
            result.append(message_id)
    return result


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
