"""DynamoDB helpers on the low-level client: (de)serialisation and the batch APIs with
their unprocessed-item retries."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from tap_common import aws
from tap_common.batch import chunks

BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
TRANSACTION_LIMIT = 100
_UNPROCESSED_ATTEMPTS = 5

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class UnprocessedError(RuntimeError):
    """DynamoDB kept returning unprocessed items after every retry."""

    def __init__(self, message: str, unprocessed: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(message)
        self.unprocessed = list(unprocessed)


def to_dynamo_value(value: Any) -> Any:
    """Python value → value the TypeSerializer accepts (floats become Decimal)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot store non-finite number {value!r}")
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {str(k): to_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dynamo_value(v) for v in value]
    return value


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(to_dynamo_value(value)) for key, value in item.items()}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def _backoff(attempt: int) -> None:
    time.sleep(min(0.05 * 2**attempt, 1.0))


def batch_get(
    requests: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    consistent: bool = False,
    projection: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
    region: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Read keys from one or more tables with as few BatchGetItem calls as possible.

    `requests` maps table name → plain-Python keys; `projection` maps table name → a
    ProjectionExpression whose `#name` tokens `names` resolves; `region` reads a global table's
    replica there (None: the function's region). Returns table → items.
    """
    pending: list[tuple[str, dict[str, Any]]] = [
        (table, serialize(key)) for table, keys in requests.items() for key in _unique(keys)
    ]
    found: dict[str, list[dict[str, Any]]] = {table: [] for table in requests}
    for chunk in chunks(pending, BATCH_GET_LIMIT):
        request: dict[str, Any] = {}
        for table, key in chunk:
            entry = request.setdefault(table, {"Keys": [], "ConsistentRead": consistent})
            if projection and table in projection:
                entry["ProjectionExpression"] = projection[table]
                if names:
                    entry["ExpressionAttributeNames"] = dict(names)
            entry["Keys"].append(key)
        for attempt in range(_UNPROCESSED_ATTEMPTS):
            response = aws.client("dynamodb", region).batch_get_item(RequestItems=request)
            for table, items in response.get("Responses", {}).items():
                found[table].extend(deserialize(item) for item in items)
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            _backoff(attempt)
        else:
            keys = [key for entry in request.values() for key in entry["Keys"]]
            raise UnprocessedError(f"{len(keys)} keys unprocessed by BatchGetItem", keys)
    return found


def _unique(keys: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    # BatchGetItem rejects a request that names the same key twice.
    seen: set[tuple[tuple[str, Any], ...]] = set()
    unique = []
    for key in keys:
        marker = tuple(sorted(key.items()))
        if marker not in seen:
            seen.add(marker)
            unique.append(key)
    return unique


def batch_put(table: str, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Put items with BatchWriteItem (25 per call). Returns the items still unprocessed
    after the retries (plain Python), so the caller can fail exactly those."""
    left: list[dict[str, Any]] = []
    for chunk in chunks(list(items), BATCH_WRITE_LIMIT):
        request = {table: [{"PutRequest": {"Item": serialize(item)}} for item in chunk]}
        for attempt in range(_UNPROCESSED_ATTEMPTS):
            response = aws.client("dynamodb").batch_write_item(RequestItems=request)
            request = response.get("UnprocessedItems") or {}
            if not request:
                break
            _backoff(attempt)
        else:
            left.extend(deserialize(entry["PutRequest"]["Item"]) for entry in request.get(table, []))
    return left
