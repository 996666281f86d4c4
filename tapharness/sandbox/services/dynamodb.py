"""DynamoDB and DynamoDB Streams: the sandbox's changes to moto's.

Contributor Insights (kept on the backend), TransactWriteItems without moto's table copies and
with DynamoDB's item-level conflicts and client tokens,
Query on one partition, the answers' serializer, Streams GetRecords, and the hooks of global
tables (``tapharness.sandbox.globaltables``, whose replicator runs there) and of Time to Live
(``tapharness.sandbox.ttl``, whose sweeper deletes expired items). Event source mappings
on streams are read by ``tapharness.sandbox.pollers.dynamodb``.
"""

from __future__ import annotations

import base64
import calendar
import inspect
import json
import os
import threading
import time
from datetime import datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    DynamodbException,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamRecord, StreamShard, Table
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

from tapharness.sandbox import globaltables, ttl
from tapharness.sandbox.patches import patch, store

# --- DynamoDB ------------------------------------------------------------------------

def _insights_key(self: DynamoHandler) -> tuple[str, str]:
    table = self.body["TableName"]
    self.dynamodb_backend.get_table(table)
    return table, self.body.get("IndexName") or ""


def _insights(table: str, index: str, status: str) -> dict[str, Any]:
    description: dict[str, Any] = {"TableName": table, "ContributorInsightsStatus": status}
    if index:
        description["IndexName"] = index
    return description


@patch(DynamoHandler, "update_contributor_insights")
def update_contributor_insights(self: DynamoHandler) -> ActionResult:
    """UpdateContributorInsights: ENABLE/DISABLE take effect at once (ENABLED/DISABLED)."""
    table, index = _insights_key(self)
    status = "ENABLED" if self.body["ContributorInsightsAction"] == "ENABLE" else "DISABLED"
    store(self.dynamodb_backend, "contributor_insights")[(table, index)] = status
    return ActionResult(_insights(table, index, status))


@patch(DynamoHandler, "describe_contributor_insights")
def describe_contributor_insights(self: DynamoHandler) -> ActionResult:
    """DescribeContributorInsights of a table or index (DISABLED until enabled)."""
    table, index = _insights_key(self)
    status = store(self.dynamodb_backend, "contributor_insights").get((table, index), "DISABLED")
    return ActionResult({**_insights(table, index, status), "ContributorInsightsRuleList": []})


@patch(DynamoHandler, "list_contributor_insights")
def list_contributor_insights(self: DynamoHandler) -> ActionResult:
    """ListContributorInsights (optionally for one table)."""
    wanted = self.body.get("TableName")
    summaries = [
        {**_insights(table, index, status)}
        for (table, index), status in store(self.dynamodb_backend, "contributor_insights").items()
        if not wanted or table == wanted
    ]
    return ActionResult({"ContributorInsightsSummaries": summaries})


# --- Global tables (tapharness.sandbox.globaltables) -----------------------------------
# UpdateTable with ReplicaUpdates, the Replicas of DescribeTable, and every stream record
# handed to the replicator.
patch.replace(DynamoHandler, "update_table", globaltables.update_table)
patch.replace(Table, "describe", globaltables.describe)
patch.replace(StreamShard, "add", globaltables.stream_add)
# --- Time to Live (tapharness.sandbox.ttl, whose sweeper runs there): its deletions' stream records
patch.replace(StreamRecord, "__init__", ttl.stream_record)


# --- Speed: what a profile of the sandbox under load showed ----------------------------

# DynamoDB TransactWriteItems: moto deep-copies every table a transaction touches, once per
# item, to roll back on failure (a third of the sandbox's CPU under load, growing with the
# table), and a rollback swaps the table object under the stream readers. As in DynamoDB,
# every condition is checked first against the state before the transaction, and then either
# all writes apply or none does.
#
# Conflicts as DynamoDB has them ("Transaction conflict handling in DynamoDB", developer guide):
# the items of an ongoing TransactWriteItems are held until it ends; another transaction that
# touches one is cancelled with TransactionConflict in its cancellation reasons, and a PutItem,
# UpdateItem or DeleteItem on one fails with TransactionConflictException. There is no global
# lock: transactions on other items run side by side. A transaction holds its items for
# TRANSACTION_HOLD_S at least (DynamoDB's two-phase commit takes longer than a single write; the
# figure is the sandbox's), so racing writers meet each other as they would on AWS.
TRANSACTION_HOLD_S = float(os.environ.get("TAPSTACK_DYNAMODB_TRANSACTION_HOLD_MS", "10")) / 1000
# "A client token is valid for 10 minutes after the first request that uses it is completed"
# (TransactWriteItems, DynamoDB API reference).
TOKEN_LIFETIME_S = 600
_HELD: set[tuple[str, str, str, str]] = set()  # the items of ongoing transactions
_HELD_LOCK = threading.Lock()
_ONGOING = "Transaction is ongoing for the item"


class TransactionConflictException(DynamodbException):
    error_type = "com.amazonaws.dynamodb.v20120810#TransactionConflictException"

    def __init__(self) -> None:
        super().__init__(self.error_type, message=_ONGOING)


def _item_key(table: Table, attributes: dict[str, Any]) -> dict[str, Any]:
    key = {table.hash_key_attr: attributes[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attributes[table.range_key_attr]
    return key


def _held_key(backend: DynamoDBBackend, table: str, key: dict[str, Any]) -> tuple[str, str, str, str]:
    return backend.account_id, backend.region_name, table, json.dumps(key, sort_keys=True)


def _hold(targets: list[tuple[str, str, str, str]]) -> list[int]:
    """Hold every target; the indexes of those another transaction holds (then none is held)."""
    with _HELD_LOCK:
        taken = [i for i, target in enumerate(targets) if target in _HELD]
        if not taken:
            _HELD.update(targets)
        return taken


def _release(targets: list[tuple[str, str, str, str]]) -> None:
    with _HELD_LOCK:
        _HELD.difference_update(targets)


@patch(DynamoDBBackend, "transact_write_items")
def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    targets: list[tuple[str, str, str, str]] = []
    operations = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise MockValidationException("Unsupported transaction operation")
        table = self.get_table(op["TableName"])
        key = _item_key(table, op["Item"]) if op_type == "Put" else op["Key"]
        target = _held_key(self, str(op["TableName"]), key)
        if target in targets:
            raise MultipleTransactionsException()
        targets.append(target)
        if op_type == "Update":
            UpdateExpressionParser.make(op["UpdateExpression"])  # a malformed expression fails before any write
        operations.append((op_type, op, key))
    taken = _hold(targets)
    if taken:
        raise TransactionCanceledException([("TransactionConflict", _ONGOING, None) if i in taken else (None, None, None)
                                            for i in range(len(targets))])
    try:
        time.sleep(TRANSACTION_HOLD_S)
        errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
        for _, op, key in operations:
            condition = op.get("ConditionExpression")
            current = self.get_item(op["TableName"], key)
            if condition is not None and not get_filter_expression(
                    condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")).expr(current):
                old = (current.to_json()["Attributes"]
                       if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else None)
                errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
            else:
                errors.append((None, None, None))
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)
        for op_type, op, key in operations:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(op["TableName"], op["Item"], expression_attribute_names=names,
                              expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(op["TableName"], key, expression_attribute_names=names,
                                 expression_attribute_values=values)
            elif op_type == "Update":
                self.update_item(op["TableName"], key, update_expression=op["UpdateExpression"],
                                 expression_attribute_names=names, expression_attribute_values=values)
    finally:
        _release(targets)


_TRANSACT_WRITE = DynamoHandler.transact_write_items
_TOKENS_LOCK = threading.Lock()


@patch(DynamoHandler, "transact_write_items")
def transact_write_items(self: DynamoHandler) -> ActionResult:
    """TransactWriteItems with its ClientRequestToken: a repeat within ten minutes of a transaction
    that succeeded succeeds again without writing; the same token with other items is
    IdempotentParameterMismatchException, and while its transaction still runs
    TransactionInProgressException (DynamoDB API reference)."""
    token = self.body.get("ClientRequestToken")
    if not token:
        return _TRANSACT_WRITE(self)
    digest = json.dumps(self.body["TransactItems"], sort_keys=True)
    tokens = store(self.dynamodb_backend, "transaction_tokens")  # token -> (digest, given at, committed)
    now = time.monotonic()
    with _TOKENS_LOCK:
        while tokens:  # in the order they were given: the expired ones come first
            oldest = next(iter(tokens))
            if now - tokens[oldest][1] <= TOKEN_LIFETIME_S:
                break
            del tokens[oldest]
        if token in tokens:
            given, _, committed = tokens[token]
            if not committed:
                raise TransactionInProgressException()
            if given != digest:
                raise IdempotentParameterMismatchException()
            return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
        tokens[token] = (digest, now, False)
    try:
        answer = _TRANSACT_WRITE(self)
    except BaseException:  # a transaction that did not commit leaves its token free for a retry
        with _TOKENS_LOCK:
            tokens.pop(token, None)
        raise
    with _TOKENS_LOCK:
        tokens[token] = (digest, now, True)
    return answer


class TransactionInProgressException(DynamodbException):
    """The same ClientRequestToken while its transaction still runs (DynamoDB API reference,
    TransactWriteItems: "TransactionInProgressException")."""

    error_type = "com.amazonaws.dynamodb.v20120810#TransactionInProgressException"

    def __init__(self) -> None:
        super().__init__(self.error_type, message="The transaction with the given request token is already in "
                                                  "progress.")


class IdempotentParameterMismatchException(DynamodbException):
    error_type = "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException"

    def __init__(self) -> None:
        super().__init__(self.error_type, message="The request uses the same client token as a previous, but "
                                                  "non-identical request.")


def _single_write(name: str, key_of: Any) -> None:
    original = getattr(DynamoHandler, name)

    def write(self: DynamoHandler) -> Any:
        """A single-item write to an item an ongoing transaction holds fails with TransactionConflictException."""
        if _HELD:
            try:
                key = key_of(self)
            except (KeyError, TypeError):
                key = None  # a request without its key: moto's own validation answers it
            if key is not None and _held_key(self.dynamodb_backend, self.body["TableName"], key) in _HELD:
                raise TransactionConflictException()
        return original(self)

    patch.replace(DynamoHandler, name, write)


_single_write("put_item", lambda h: _item_key(h.dynamodb_backend.get_table(h.body["TableName"]), h.body["Item"]))
_single_write("update_item", lambda h: h.body["Key"])
_single_write("delete_item", lambda h: h.body["Key"])


# DynamoDB Query on a table's own key: moto sorts every item of the table and then keeps
# those of the partition (two thirds of the sandbox's CPU once the table holds thousands of
# items). The query is the same on the one partition it asks for.
_TABLE_QUERY = Table.query


class _Partition:
    """A table seen through one partition key: ``all_items`` holds only that partition's."""

    def __init__(self, table: Table, hash_key: Any) -> None:
        self._table = table
        self._hash_key = hash_key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def all_items(self) -> list[Any]:
        partition = self._table.items.get(self._hash_key)
        if partition is None:
            return []
        return list(partition.values()) if self._table.range_key_attr else [partition]


_QUERY_SIGNATURE = inspect.signature(_TABLE_QUERY)


@patch(Table, "query")
def _table_query(self: Table, *args: Any, **kwargs: Any) -> Any:
    arguments = _QUERY_SIGNATURE.bind(self, *args, **kwargs).arguments
    if arguments.get("index_name") or arguments["hash_key"] is None:
        return _TABLE_QUERY(self, *args, **kwargs)
    return _TABLE_QUERY(_Partition(self, arguments["hash_key"]), *args, **kwargs)  # type: ignore[arg-type]


# DynamoDB answers with items (GetItem, Query, BatchGetItem, ...) went through moto's
# model-driven serializer, attribute value by attribute value (a fifth of the sandbox's CPU under
# load). Those results are already in the wire's JSON shape; only binary values need base64, as
# the serializer gives them, and absent members (None) are left out. A result holding anything
# else (the datetimes of DescribeTable) keeps moto's serializer.
_DYNAMO_EXECUTE = DynamoResult.execute_result
_DYNAMO_HEADERS = {"Content-Type": "application/x-amz-json-1.0"}


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _blob(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


@patch(DynamoResult, "execute_result")
def _dynamo_result(self: DynamoResult, context: Any) -> Any:
    try:
        body = json.dumps(_without_none(self.result), default=_blob)
    except TypeError:
        return _DYNAMO_EXECUTE(self, context)
    return 200, dict(_DYNAMO_HEADERS), body


# DynamoDB Streams GetRecords: the same serializer, over every record's keys and images (an
# eighth of the sandbox's CPU under load, for the recommendations mapping alone). The records
# are in the wire's shape but for ApproximateCreationDateTime, a datetime the JSON protocol
# sends as epoch seconds (with milliseconds), as moto's serializer does.
class _StreamRecords(ActionResult):
    def execute_result(self, context: Any) -> Any:
        result = dict(self.result)  # type: ignore[call-overload]
        result["Records"] = [_stream_record(r) for r in result["Records"]]
        return 200, dict(_DYNAMO_HEADERS), json.dumps(_without_none(result), default=_blob)


def _epoch(value: datetime) -> int | float:
    seconds = calendar.timegm(value.timetuple())
    return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds


def _stream_record(record: dict[str, Any]) -> dict[str, Any]:
    created = record["dynamodb"].get("ApproximateCreationDateTime")
    if not isinstance(created, datetime):
        return record
    return {**record, "dynamodb": {**record["dynamodb"], "ApproximateCreationDateTime": _epoch(created)}}


@patch(DynamoDBStreamsHandler, "get_records")
def streams_get_records(self: DynamoDBStreamsHandler) -> ActionResult:
    limit = self._get_param("Limit")
    return _StreamRecords(self.backend.get_records(self._get_param("ShardIterator"), 1000 if limit is None else limit))
