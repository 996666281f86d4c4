"""Event source mappings delivered with Lambda's semantics, through the public APIs.

``PollerManager`` reads the deployed mappings (``ListEventSourceMappings``) every
``settings.reconcile_interval`` seconds and keeps one poller per Kinesis/DynamoDB-stream
shard and one per SQS queue mapping; a changed mapping's settings apply to the next batch,
a deleted or disabled mapping's pollers stop. moto's own inline delivery is switched off by
``server.detach_inline_delivery`` so that only these pollers deliver.

Streams (Kinesis ``GetShardIterator``/``GetRecords``, DynamoDB ``dynamodbstreams``), per shard:
- several mappings on one stream each read with their own iterator;
- ``StartingPosition`` TRIM_HORIZON or LATEST (LATEST = when the poller first sees the mapping);
- ``FilterCriteria``: records that match no pattern are skipped (checkpointed);
- ``BatchSize`` and ``MaximumBatchingWindowInSeconds``: invoke when the batch is full or the
  window since the first buffered record has passed (window 0: as soon as records exist);
- ``FunctionResponseTypes: [ReportBatchItemFailures]``: ``batchItemFailures`` checkpoint at the
  lowest failed sequence number, the rest of the batch from there is retried; an identifier
  that is not in the batch fails the whole batch;
- ``BisectBatchOnFunctionError``: a failed batch (function error) of more than one record is
  split in two halves that are retried in order; bisecting does not use up retry attempts;
- ``MaximumRetryAttempts`` (-1 = retry until the record is gone): once used up, the remaining
  records go to ``DestinationConfig.OnFailure`` (SQS SendMessage or SNS Publish of Lambda's
  failure record: requestContext, responseContext, KinesisBatchInfo/DDBStreamBatchInfo) and are
  skipped; retries back off exponentially from ``settings.retry_base_delay``;
- ``TumblingWindowInSeconds``: a batch never spans windows (by record arrival time); the event
  carries ``window``, ``state`` (the last ``state`` the function returned in this window),
  ``shardId``, ``eventSourceARN``, ``isFinalInvokeForWindow``, ``isWindowTerminatedEarly``;
  after the window ends one final invocation with no records and the window's state is made.
Not emulated: ParallelizationFactor (one batch at a time per shard), MaximumRecordAgeInSeconds.

SQS: ReceiveMessage (long poll) up to ``BatchSize`` within the batching window; messages that
match no filter are deleted; a function error leaves the batch to the visibility timeout (and
so to the queue's redrive policy); ``batchItemFailures`` deletes only the successes.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tapharness.sandbox.filters import decode_json, matches_any, parse_filter_criteria

log = logging.getLogger("tapharness.sandbox.pollers")
# What a failed AWS call or an unexpected answer raises; pollers log it and carry on.
POLLER_ERRORS = (BotoCoreError, ClientError, OSError, ValueError, KeyError, TypeError)


@dataclass(frozen=True)
class PollerSettings:
    """Timing knobs (the defaults favour low latency on one machine)."""

    poll_interval: float = 0.2
    reconcile_interval: float = 1.0
    retry_base_delay: float = 0.5
    retry_max_delay: float = 5.0
    sqs_wait_seconds: int = 1


@dataclass(frozen=True)
class MappingConfig:
    """The settings of one event source mapping that the pollers act on."""

    uuid: str
    function_arn: str
    source_arn: str
    batch_size: int
    batching_window: float
    filters: tuple[Any, ...]
    bisect: bool
    max_retries: int
    report_item_failures: bool
    on_failure_arn: str | None
    tumbling_window: int
    starting_position: str
    enabled: bool

    @classmethod
    def from_api(cls, esm: dict[str, Any]) -> MappingConfig:
        return cls(
            uuid=esm["UUID"],
            function_arn=esm["FunctionArn"],
            source_arn=esm["EventSourceArn"],
            batch_size=int(esm.get("BatchSize") or 10),
            batching_window=float(esm.get("MaximumBatchingWindowInSeconds") or 0),
            filters=tuple(parse_filter_criteria(esm.get("FilterCriteria"))),
            bisect=bool(esm.get("BisectBatchOnFunctionError")),
            max_retries=int(esm["MaximumRetryAttempts"]) if esm.get("MaximumRetryAttempts") is not None else -1,
            report_item_failures="ReportBatchItemFailures" in (esm.get("FunctionResponseTypes") or []),
            on_failure_arn=((esm.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"),
            tumbling_window=int(esm.get("TumblingWindowInSeconds") or 0),
            starting_position=esm.get("StartingPosition") or "TRIM_HORIZON",
            enabled=esm.get("State", "Enabled") in ("Enabled", "Enabling", "Updating", "Creating"),
        )

    @property
    def source_kind(self) -> str:
        return self.source_arn.split(":")[2]


@dataclass
class InvokeOutcome:
    function_error: bool
    payload: Any
    status_code: int


class Invoker(Protocol):
    """Whatever invokes a function as the Lambda service does for its event sources and for API
    Gateway: ``AwsClients`` (the Invoke API) or the sandbox's in-process ``LocalLambda``."""

    def invoke(self, function_arn: str, event: dict[str, Any]) -> InvokeOutcome: ...


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Credentials:
    """An access key, as STS AssumeRole returns it."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def env(self) -> dict[str, str]:
        """The variables an SDK reads them from."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env


ADMIN = Credentials("testing", "testing")


class AwsClients:
    """The one factory of boto3 clients against the sandbox endpoint.

    Clients are created once per (service, credentials) and shared by every thread (boto3
    clients are thread-safe; only creating them is not, hence the lock). ``as_principal``
    gives the factory of another principal's credentials (a function's execution role).
    """

    def __init__(self, endpoint_url: str, region: str, credentials: Credentials = ADMIN) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.credentials = credentials
        self._clients: dict[str, Any] = {}
        self._variants: dict[Credentials, AwsClients] = {}
        self._lock = threading.Lock()
        self._session = boto3.session.Session()

    def client(self, service: str) -> Any:
        found = self._clients.get(service)
        if found is not None:
            return found
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(
                    service, endpoint_url=self.endpoint_url, region_name=self.region,
                    aws_access_key_id=self.credentials.access_key_id,
                    aws_secret_access_key=self.credentials.secret_access_key,
                    aws_session_token=self.credentials.session_token,
                    # Only Invoke waits for a function (up to its 900 s timeout); every other call is quick.
                    config=Config(read_timeout=960 if service == "lambda" else 30, connect_timeout=5,
                                  retries={"max_attempts": 2}, max_pool_connections=64),
                )
            return self._clients[service]

    def queue_url(self, queue_arn: str) -> str:
        """The URL of a queue from its ARN, with no call (Lambda and EventBridge need no GetQueueUrl)."""
        _, _, _, _, account, name = queue_arn.split(":")
        return f"{self.endpoint_url}/{account}/{name}"

    def as_principal(self, credentials: Credentials) -> AwsClients:
        """The factory whose clients sign with ``credentials``."""
        if credentials == self.credentials:
            return self
        with self._lock:
            if credentials not in self._variants:
                self._variants[credentials] = AwsClients(self.endpoint_url, self.region, credentials)
            return self._variants[credentials]

    def invoke(self, function_arn: str, event: dict[str, Any]) -> InvokeOutcome:
        response = self.client("lambda").invoke(FunctionName=function_arn, Payload=json.dumps(event).encode())
        raw = response["Payload"].read().decode()
        return InvokeOutcome("FunctionError" in response, decode_json(raw) if raw else None,
                             response["StatusCode"])

    def send_to_destination(self, arn: str, message: dict[str, Any]) -> None:
        service = arn.split(":")[2]
        body = json.dumps(message)
        if service == "sqs":
            self.client("sqs").send_message(QueueUrl=self.queue_url(arn), MessageBody=body)
        elif service == "sns":
            self.client("sns").publish(TopicArn=arn, Message=body)
        else:
            raise ValueError(f"unsupported on-failure destination {arn}")


def failed_item_ids(outcome: InvokeOutcome, batch_ids: list[str]) -> list[str] | None:
    """The identifiers a partial batch response reports, or None when the whole batch failed.

    Lambda's rules: an empty or missing list is success; a malformed response or an
    identifier that is not in the batch fails the whole batch.
    """
    payload = outcome.payload
    if not isinstance(payload, dict) or payload.get("batchItemFailures") is None:
        return []
    failures = payload["batchItemFailures"]
    if not isinstance(failures, list):
        return None
    ids = []
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in batch_ids:
            return None
        ids.append(identifier)
    return ids


# --- stream sources --------------------------------------------------------------------


@dataclass
class StreamRecord:
    """One stream record: its Lambda event shape, sequence number, arrival time and filter view."""

    event: dict[str, Any]
    sequence: str
    arrival: float
    view: dict[str, Any]


class KinesisSource:
    """Kinesis Data Streams, read with GetShardIterator/GetRecords."""

    batch_info_key = "KinesisBatchInfo"

    def __init__(self, clients: AwsClients, stream_arn: str) -> None:
        self.clients = clients
        self.stream_arn = stream_arn

    def shard_ids(self) -> list[str]:
        shards = self.clients.client("kinesis").list_shards(StreamARN=self.stream_arn)["Shards"]
        return [s["ShardId"] for s in shards]

    def iterator(self, shard_id: str, position: str, after: str | None) -> str:
        kwargs: dict[str, Any] = {"StreamARN": self.stream_arn, "ShardId": shard_id}
        if after:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
        else:
            kwargs["ShardIteratorType"] = position
        return self.clients.client("kinesis").get_shard_iterator(**kwargs)["ShardIterator"]

    def read(self, iterator: str, shard_id: str, role: str) -> tuple[list[StreamRecord], str]:
        response = self.clients.client("kinesis").get_records(ShardIterator=iterator, Limit=1000,
                                                               StreamARN=self.stream_arn)
        records = []
        for raw in response["Records"]:
            arrival = raw["ApproximateArrivalTimestamp"].timestamp()
            kinesis = {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": raw["PartitionKey"],
                "sequenceNumber": raw["SequenceNumber"],
                "data": base64.b64encode(raw["Data"]).decode(),
                "approximateArrivalTimestamp": round(arrival, 3),
            }
            event = {
                "kinesis": kinesis, "eventSource": "aws:kinesis", "eventVersion": "1.0",
                "eventID": f"{shard_id}:{raw['SequenceNumber']}", "eventName": "aws:kinesis:record",
                "invokeIdentityArn": role, "awsRegion": self.clients.region, "eventSourceARN": self.stream_arn,
            }
            view = {**kinesis, "data": decode_json(raw["Data"])}
            records.append(StreamRecord(event, raw["SequenceNumber"], arrival, view))
        return records, response["NextShardIterator"]


class DynamoDBStreamSource:
    """DynamoDB Streams, read with the dynamodbstreams API."""

    batch_info_key = "DDBStreamBatchInfo"

    def __init__(self, clients: AwsClients, stream_arn: str) -> None:
        self.clients = clients
        self.stream_arn = stream_arn

    def shard_ids(self) -> list[str]:
        description = self.clients.client("dynamodbstreams").describe_stream(StreamArn=self.stream_arn)
        return [s["ShardId"] for s in description["StreamDescription"]["Shards"]]

    def iterator(self, shard_id: str, position: str, after: str | None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        if after:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        else:
            kwargs["ShardIteratorType"] = position
        return self.clients.client("dynamodbstreams").get_shard_iterator(**kwargs)["ShardIterator"]

    def read(self, iterator: str, shard_id: str, role: str) -> tuple[list[StreamRecord], str]:
        response = self.clients.client("dynamodbstreams").get_records(ShardIterator=iterator, Limit=1000)
        records = []
        for raw in response["Records"]:
            dynamodb = dict(raw["dynamodb"])
            created = dynamodb.get("ApproximateCreationDateTime")
            arrival = created.timestamp() if isinstance(created, datetime) else time.time()
            dynamodb["ApproximateCreationDateTime"] = int(arrival)
            event = {
                "eventID": raw["eventID"], "eventName": raw["eventName"], "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": self.clients.region,
                "dynamodb": dynamodb, "eventSourceARN": self.stream_arn,
            }
            records.append(StreamRecord(event, dynamodb["SequenceNumber"], arrival, event))
        return records, response["NextShardIterator"]


StreamSource = KinesisSource | DynamoDBStreamSource


@dataclass
class _Attempt:
    records: list[StreamRecord]
    retries: int = 0
    invocations: int = 0


@dataclass
class PollerStats:
    """What a poller has done, for ``status`` and tests."""

    invocations: int = 0
    delivered: int = 0
    filtered: int = 0
    failed_batches: int = 0
    sent_to_destination: int = 0
    last_error: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return dict(self.__dict__)


class ShardPoller(threading.Thread):
    """Delivers one shard of a stream to one mapping's function."""

    def __init__(self, config: MappingConfig, source: StreamSource, shard_id: str, clients: AwsClients,
                 settings: PollerSettings, role: str = "", invoker: Invoker | None = None) -> None:
        super().__init__(name=f"poller-{config.uuid[:8]}-{shard_id}", daemon=True)
        self.config = config
        self.source = source
        self.shard_id = shard_id
        self.clients = clients
        self.invoker = invoker or clients
        self.settings = settings
        self.role = role
        self.stats = PollerStats()
        self._stop_event = threading.Event()
        self._buffer: list[StreamRecord] = []
        self._buffered_since: float | None = None
        self._pending: list[_Attempt] = []
        self._checkpoint: str | None = None
        self._last_read: str | None = None
        self._iterator: str | None = None
        self._window: tuple[int, int] | None = None
        self._window_state: dict[str, Any] = {}

    def stop(self) -> None:
        self._stop_event.set()

    # --- reading ---------------------------------------------------------------------

    def _fetch(self) -> None:
        position = self._last_read or self._checkpoint
        if self._iterator is None:
            self._iterator = self.source.iterator(self.shard_id, self.config.starting_position, position)
        records, self._iterator = self.source.read(self._iterator, self.shard_id, self.role)
        if records:
            self._last_read = records[-1].sequence
        for record in records:
            if matches_any(self.config.filters, record.view):
                if not self._buffer:
                    self._buffered_since = time.monotonic()
                self._buffer.append(record)
            else:
                self.stats.filtered += 1
                self._checkpoint = record.sequence

    def _window_of(self, record: StreamRecord) -> tuple[int, int]:
        size = self.config.tumbling_window
        start = int(record.arrival) // size * size
        return start, start + size

    def _take_batch(self) -> list[StreamRecord]:
        """Records ready to go as one batch, honouring batch size, batching window and tumbling windows."""
        if not self._buffer:
            return []
        full = len(self._buffer) >= self.config.batch_size
        waited = time.monotonic() - (self._buffered_since or 0.0) >= self.config.batching_window
        if not (full or waited):
            return []
        batch = self._buffer[: self.config.batch_size]
        if self.config.tumbling_window:
            window = self._window_of(batch[0])
            batch = [r for r in batch if self._window_of(r) == window]
        del self._buffer[: len(batch)]
        self._buffered_since = time.monotonic() if self._buffer else None
        return batch

    # --- invoking --------------------------------------------------------------------

    def _event(self, records: list[StreamRecord], final: bool = False) -> dict[str, Any]:
        event: dict[str, Any] = {"Records": [r.event for r in records]}
        if self.config.tumbling_window and self._window:
            start, end = self._window
            event.update({
                "window": {"start": _iso(start), "end": _iso(end)},
                "state": self._window_state,
                "shardId": self.shard_id,
                "eventSourceARN": self.config.source_arn,
                "isFinalInvokeForWindow": final,
                "isWindowTerminatedEarly": False,
            })
        return event

    def _invoke(self, records: list[StreamRecord], final: bool = False) -> InvokeOutcome:
        event = self._event(records, final)
        outcome = self.invoker.invoke(self.config.function_arn, event)
        self.stats.invocations += 1
        return outcome

    def _close_window(self) -> None:
        """The window's final invocation (no records, its state); the state then starts afresh."""
        outcome = self._invoke([], final=True)
        if outcome.function_error:
            self.stats.last_error = f"final window invocation failed: {outcome.payload}"
        self._window, self._window_state = None, {}

    def _finish_window_if_due(self) -> None:
        if not (self.config.tumbling_window and self._window) or time.time() < self._window[1]:
            return
        if any(self._window_of(r) == self._window for r in self._buffer) or self._pending:
            return
        self._close_window()

    def _advance(self, records: list[StreamRecord]) -> None:
        if records:
            self._checkpoint = records[-1].sequence
            self.stats.delivered += len(records)

    def _process(self, attempt: _Attempt) -> None:
        config = self.config
        if config.tumbling_window:
            window = self._window_of(attempt.records[0])
            if window != self._window:
                if self._window:
                    self._close_window()
                self._window = window
        outcome = self._invoke(attempt.records)
        attempt.invocations += 1
        ids = [r.sequence for r in attempt.records]
        failed: list[StreamRecord]
        if outcome.function_error:
            failed = attempt.records
        else:
            reported = failed_item_ids(outcome, ids) if config.report_item_failures else []
            if reported is None:
                failed = attempt.records
            elif reported:
                first = min(ids.index(i) for i in reported)
                self._advance(attempt.records[:first])
                failed = attempt.records[first:]
            else:
                failed = []
            if config.tumbling_window and isinstance(outcome.payload, dict):
                self._window_state = outcome.payload.get("state") or {}
        if not failed:
            self._pending.pop(0)
            self._advance(attempt.records)
            return
        self.stats.failed_batches += 1
        self.stats.last_error = json.dumps(outcome.payload)[:500]
        if config.bisect and outcome.function_error and len(failed) > 1:
            half = len(failed) // 2
            self._pending[0:1] = [_Attempt(failed[:half], attempt.retries, attempt.invocations),
                                  _Attempt(failed[half:], attempt.retries, attempt.invocations)]
            return
        if config.max_retries >= 0 and attempt.retries >= config.max_retries:
            self._discard(failed, attempt, outcome)
            return
        self._pending[0] = _Attempt(failed, attempt.retries + 1, attempt.invocations)
        delay = min(self.settings.retry_max_delay, self.settings.retry_base_delay * 2 ** attempt.retries)
        self._stop_event.wait(delay)

    def _discard(self, records: list[StreamRecord], attempt: _Attempt, outcome: InvokeOutcome) -> None:
        self._pending.pop(0)
        self._checkpoint = records[-1].sequence
        if not self.config.on_failure_arn:
            return
        response: dict[str, Any] = {"statusCode": outcome.status_code, "executedVersion": "$LATEST"}
        if outcome.function_error:
            response["functionError"] = "Unhandled"
        message = {
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": self.config.function_arn,
                               "condition": "RetryAttemptsExhausted",
                               "approximateInvokeCount": attempt.invocations},
            "responseContext": response,
            "version": "1.0",
            "timestamp": _iso(time.time()),
            self.source.batch_info_key: {
                "shardId": self.shard_id,
                "startSequenceNumber": records[0].sequence,
                "endSequenceNumber": records[-1].sequence,
                "approximateArrivalOfFirstRecord": _iso(records[0].arrival),
                "approximateArrivalOfLastRecord": _iso(records[-1].arrival),
                "batchSize": len(records),
                "streamArn": self.config.source_arn,
            },
        }
        self.clients.send_to_destination(self.config.on_failure_arn, message)
        self.stats.sent_to_destination += len(records)

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self._step()
            except POLLER_ERRORS as exc:  # a poller outlives a failed call; the error is kept and logged
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("poller %s failed a step", self.name)
                self._iterator = None
                self._stop_event.wait(self.settings.retry_max_delay)

    def _step(self) -> None:
        if not self._pending:
            self._fetch()
            batch = self._take_batch()
            if not batch:
                self._finish_window_if_due()
                self._stop_event.wait(self.settings.poll_interval)
                return
            self._pending.append(_Attempt(batch))
        self._process(self._pending[0])


# --- SQS -------------------------------------------------------------------------------


def sqs_event_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message (ReceiveMessage shape) as a record of Lambda's SQS event."""
    attributes = {
        name: {"stringValue": value.get("StringValue"), "binaryValue": value.get("BinaryValue"),
               "stringListValues": value.get("StringListValues", []),
               "binaryListValues": value.get("BinaryListValues", []), "dataType": value["DataType"]}
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    for value in attributes.values():
        for key in ("stringValue", "binaryValue"):
            if value[key] is None:
                del value[key]
            elif isinstance(value[key], bytes):
                value[key] = base64.b64encode(value[key]).decode()
    record = {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"], "attributes": message.get("Attributes") or {},
        "messageAttributes": attributes, "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


class QueuePoller(threading.Thread):
    """Delivers one SQS queue to one mapping's function."""

    def __init__(self, config: MappingConfig, clients: AwsClients, settings: PollerSettings,
                 invoker: Invoker | None = None) -> None:
        super().__init__(name=f"poller-{config.uuid[:8]}-sqs", daemon=True)
        self.config = config
        self.clients = clients
        self.invoker = invoker or clients
        self.settings = settings
        self.stats = PollerStats()
        self._stop_event = threading.Event()
        self._queue_url: str | None = None

    def stop(self) -> None:
        self._stop_event.set()

    def _url(self) -> str:
        if self._queue_url is None:
            self._queue_url = self.clients.queue_url(self.config.source_arn)
        return self._queue_url

    def _receive(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages, gathered for at most the batching window once one has arrived."""
        messages: list[dict[str, Any]] = []
        started = time.monotonic()
        while len(messages) < self.config.batch_size and not self._stop_event.is_set():
            received = self.clients.client("sqs").receive_message(
                QueueUrl=self._url(), MaxNumberOfMessages=min(10, self.config.batch_size - len(messages)),
                WaitTimeSeconds=0 if messages else self.settings.sqs_wait_seconds,
                AttributeNames=["All"], MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            messages += received
            if not messages or time.monotonic() - started >= self.config.batching_window:
                break
            if not received:
                self._stop_event.wait(self.settings.poll_interval)
        return messages

    def _delete_messages(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start:start + 10]
            self.clients.client("sqs").delete_message_batch(QueueUrl=self._url(), Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)])

    def _step(self) -> None:
        messages = self._receive()
        if not messages:
            return
        records = [sqs_event_record(m, self.config.source_arn, self.clients.region) for m in messages]
        wanted, skipped = [], []
        for message, record in zip(messages, records, strict=True):
            view = {**record, "body": decode_json(record["body"])}
            (wanted if matches_any(self.config.filters, view) else skipped).append((message, record))
        if skipped:
            self.stats.filtered += len(skipped)
            self._delete_messages([m for m, _ in skipped])
        if not wanted:
            return
        outcome = self.invoker.invoke(self.config.function_arn, {"Records": [r for _, r in wanted]})
        self.stats.invocations += 1
        ids = [r["messageId"] for _, r in wanted]
        if outcome.function_error:
            self.stats.failed_batches += 1
            self.stats.last_error = json.dumps(outcome.payload)[:500]
            return
        reported = failed_item_ids(outcome, ids) if self.config.report_item_failures else []
        if reported is None:
            self.stats.failed_batches += 1
            self.stats.last_error = f"invalid batchItemFailures: {json.dumps(outcome.payload)[:400]}"
            return
        succeeded = [m for m, r in wanted if r["messageId"] not in reported]
        self._delete_messages(succeeded)
        self.stats.delivered += len(succeeded)
        if reported:
            self.stats.failed_batches += 1

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self._step()
            except POLLER_ERRORS as exc:  # a poller outlives a failed call; the error is kept and logged
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("poller %s failed a step", self.name)
                self._queue_url = None
                self._stop_event.wait(self.settings.retry_max_delay)


# --- manager ---------------------------------------------------------------------------

Poller = ShardPoller | QueuePoller


# (execution role ARN, function name) -> the clients of that role's session
RoleClients = Callable[[str, str], AwsClients]


class PollerManager(threading.Thread):
    """Keeps the pollers in step with the deployed event source mappings.

    As in Lambda, a mapping reads its source and sends to its on-failure destination with the
    function's execution role (``as_role``), while the invocation itself is the service's
    (``invoker``, the Invoke API as administrator unless given).
    """

    def __init__(self, clients: AwsClients, settings: PollerSettings | None = None,
                 as_role: RoleClients | None = None, invoker: Invoker | None = None) -> None:
        super().__init__(name="poller-manager", daemon=True)
        self.clients = clients
        self.invoker: Invoker = invoker or clients
        self.as_role = as_role
        self.settings = settings or PollerSettings()
        self.pollers: dict[tuple[str, str], Poller] = {}
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._roles: dict[str, str] = {}

    def stop(self) -> None:
        self._stop_event.set()
        with self._lock:
            pollers = list(self.pollers.values())
            self.pollers.clear()
        for poller in pollers:
            poller.stop()
        for poller in pollers:
            poller.join(timeout=10)

    def _mappings(self) -> list[MappingConfig]:
        paginator = self.clients.client("lambda").get_paginator("list_event_source_mappings")
        return [MappingConfig.from_api(esm) for page in paginator.paginate() for esm in page["EventSourceMappings"]]

    def _role(self, function_arn: str) -> str:
        if function_arn not in self._roles:
            config = self.clients.client("lambda").get_function_configuration(FunctionName=function_arn)
            self._roles[function_arn] = config["Role"]
        return self._roles[function_arn]

    def _role_clients(self, function_arn: str) -> AwsClients:
        if self.as_role is None:
            return self.clients
        return self.as_role(self._role(function_arn), function_arn.split(":")[6])

    def _start(self, key: tuple[str, str], poller: Poller) -> None:
        self.pollers[key] = poller
        poller.start()

    def reconcile(self) -> None:
        """One pass: start pollers for new mappings/shards, update settings, stop removed ones."""
        wanted: set[tuple[str, str]] = set()
        for config in self._mappings():
            if not config.enabled:
                continue
            kind = config.source_kind
            if kind not in ("sqs", "kinesis", "dynamodb"):
                continue
            as_role = self._role_clients(config.function_arn)
            if kind == "sqs":
                keys: list[tuple[str, str]] = [(config.uuid, "queue")]
                with self._lock:
                    if keys[0] not in self.pollers:
                        self._start(keys[0], QueuePoller(config, as_role, self.settings, self.invoker))
            else:
                source: StreamSource = (KinesisSource(as_role, config.source_arn) if kind == "kinesis"
                                        else DynamoDBStreamSource(as_role, config.source_arn))
                keys = [(config.uuid, shard) for shard in source.shard_ids()]
                role = self._role(config.function_arn)
                with self._lock:
                    for key in keys:
                        if key not in self.pollers:
                            self._start(key, ShardPoller(config, source, key[1], as_role, self.settings, role,
                                                         self.invoker))
            wanted.update(keys)
            with self._lock:
                for key in keys:
                    self.pollers[key].config = config
        with self._lock:
            gone = [key for key in self.pollers if key not in wanted]
            stopped = [self.pollers.pop(key) for key in gone]
        for poller in stopped:
            poller.stop()

    def snapshot(self) -> list[dict[str, Any]]:
        """Per poller: mapping, source, shard and counters."""
        with self._lock:
            return [
                {"uuid": uuid_, "shard": shard, "function": p.config.function_arn,
                 "source": p.config.source_arn, **p.stats.snapshot()}
                for (uuid_, shard), p in sorted(self.pollers.items())
            ]

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.reconcile()
            except POLLER_ERRORS as exc:  # the sandbox keeps running while moto is briefly unavailable
                log.warning("reconciling event source mappings failed: %s", exc)
            self._stop_event.wait(self.settings.reconcile_interval)
