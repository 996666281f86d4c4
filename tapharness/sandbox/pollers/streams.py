"""One shard of a stream delivered to one mapping's function (``ShardPoller``), with Lambda's
semantics; the sources are ``pollers.kinesis`` and ``pollers.dynamodb``.

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
  failure record: requestContext, responseContext, KinesisBatchInfo/DDBStreamBatchInfo; to an S3
  bucket the same record with ``payload``, the whole invocation event, under
  ``aws/lambda/<mapping UUID>/<shard>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>``: "For Amazon S3
  destinations, Lambda also sends the entire invocation record along with the metadata",
  kinesis-on-failure-destination.html) and are skipped; retries back off exponentially from
  ``settings.retry_base_delay``;
- ``MaximumRecordAgeInSeconds``: records older than that (by arrival) are not invoked again but
  given up the same way (condition ``RecordAgeExceeded``, the name AWS's records carry but its
  documentation does not list);
- a throttled invocation (reserved concurrency) does not use up retry attempts: "If a Lambda event
  source mapping is unable to invoke the function due to throttling ... it retries until the
  records expire or exceed the maximum age" (kinesis-on-failure-destination.html);
- ``TumblingWindowInSeconds``: a batch never spans windows (by record arrival time); the event
  carries ``window``, ``state`` (the last ``state`` the function returned in this window),
  ``shardId``, ``eventSourceARN``, ``isFinalInvokeForWindow``, ``isWindowTerminatedEarly``;
  after the window ends one final invocation with no records and the window's state is made.
Not emulated: ParallelizationFactor (one batch at a time per shard).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from tapharness.sandbox import clock, metrics
from tapharness.sandbox.clients import AwsClients, InvokeOutcome, Invoker
from tapharness.sandbox.filters import matches_any
from tapharness.sandbox.pollers.base import (
    MappingConfig,
    PollerSettings,
    PollerThread,
    StreamRecord,
    _iso,
    failed_item_ids,
)
from tapharness.sandbox.pollers.dynamodb import DynamoDBStreamSource
from tapharness.sandbox.pollers.kinesis import KinesisSource

StreamSource = KinesisSource | DynamoDBStreamSource


@dataclass
class _Attempt:
    records: list[StreamRecord]
    retries: int = 0
    invocations: int = 0


class ShardPoller(PollerThread):
    """Delivers one shard of a stream to one mapping's function."""

    def __init__(self, config: MappingConfig, source: StreamSource, shard_id: str, clients: AwsClients,
                 settings: PollerSettings, role: str = "", invoker: Invoker | None = None) -> None:
        super().__init__(f"poller-{config.uuid[:8]}-{shard_id}", config, clients, settings, invoker)
        self.source = source
        self.shard_id = shard_id
        self.role = role
        self._buffer: list[StreamRecord] = []
        self._buffered_since: float | None = None
        self._pending: list[_Attempt] = []
        self._checkpoint: str | None = None
        self._last_read: str | None = None
        self._iterator: str | None = None
        self._next_read = 0.0
        self._window: tuple[int, int] | None = None
        self._window_state: dict[str, Any] = {}

    def _forget_position(self) -> None:
        self._iterator = None

    # --- reading ---------------------------------------------------------------------

    def _fetch(self) -> None:
        position = self._last_read or self._checkpoint
        if self._iterator is None:
            self._iterator = self.source.iterator(self.shard_id, self.config.starting_position, position)
        read_at = time.monotonic()
        records, self._iterator = self.source.read(self._iterator, self.shard_id, self.role)
        self.stats.reads += 1
        # A read that found records and caught up with the shard is followed by the next one at the
        # base rate, however fast records arrive (Lambda "polls shards ... at a base rate of once per
        # second" for Kinesis, four times for DynamoDB Streams, and "when more records are available,
        # keeps processing batches until the function catches up"; a Kinesis shard serves five
        # GetRecords per second in all). After an empty read, the first write wakes the shard at once.
        caught_up = bool(records) and len(records) < self.source.read_limit
        self._next_read = read_at + self.source.idle_interval if caught_up else 0.0
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
        if records:  # AWS/Lambda IteratorAge: the age of the batch's last record when it is handed over
            metrics.iterator_age(self.config.function_arn, (clock.now() - records[-1].arrival) * 1000)
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
        # Windows are cut from the records' arrival on the sandbox's clock: they end on that clock too
        # (on real time, a window opened after a test moved the clock on closed only that much later).
        if not (self.config.tumbling_window and self._window) or clock.now() < self._window[1]:
            return
        if any(self._window_of(r) == self._window for r in self._buffer) or self._pending:
            return
        self._close_window()

    def _advance(self, records: list[StreamRecord]) -> None:
        if records:
            self._checkpoint = records[-1].sequence
            self.stats.delivered += len(records)

    def _expired(self, attempt: _Attempt) -> bool:
        """Give up the attempt's records older than the mapping's maximum age; whether none is left."""
        if self.config.max_record_age < 0:
            return False
        oldest_kept = clock.now() - self.config.max_record_age
        expired = [r for r in attempt.records if r.arrival < oldest_kept]
        if not expired:
            return False
        self._give_up(expired, attempt, None, "RecordAgeExceeded")
        attempt.records = attempt.records[len(expired):]
        if attempt.records:
            return False
        self._pending.pop(0)
        return True

    def _process(self, attempt: _Attempt) -> None:
        config = self.config
        if self._expired(attempt):
            return
        if config.tumbling_window:
            window = self._window_of(attempt.records[0])
            if window != self._window:
                if self._window:
                    self._close_window()
                self._window = window
        try:
            outcome = self._invoke(attempt.records)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TooManyRequestsException":
                raise
            self.stats.throttled += 1  # not a retry attempt: the batch waits for the function or its age
            self._stop_event.wait(self.settings.retry_max_delay)
            return
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
            self._pending.pop(0)
            self._give_up(failed, attempt, outcome, "RetryAttemptsExhausted")
            return
        self._pending[0] = _Attempt(failed, attempt.retries + 1, attempt.invocations)
        delay = min(self.settings.retry_max_delay, self.settings.retry_base_delay * 2 ** attempt.retries)
        self._stop_event.wait(delay)

    def _give_up(self, records: list[StreamRecord], attempt: _Attempt, outcome: InvokeOutcome | None,
                 condition: str) -> None:
        """Skip the records, after sending Lambda's failure record to the on-failure destination."""
        self._checkpoint = records[-1].sequence
        self.stats.given_up += len(records)
        if not self.config.on_failure_arn:
            return
        response: dict[str, Any] = {"statusCode": outcome.status_code if outcome else 0, "executedVersion": "$LATEST"}
        if outcome is not None and outcome.function_error:
            response["functionError"] = "Unhandled"
        now = clock.now()  # the failure record and its S3 key are dated on the sandbox's clock
        message: dict[str, Any] = {
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": self.config.function_arn,
                               "condition": condition, "approximateInvokeCount": attempt.invocations},
            "responseContext": response,
            "version": "1.0",
            "timestamp": _iso(now),
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
        key = None
        if self.config.on_failure_arn.startswith("arn:aws:s3:::"):
            message["payload"] = json.dumps(self._event(records))
            key = (f"aws/lambda/{self.config.uuid}/{self.shard_id}/{time.strftime('%Y/%m/%d', time.gmtime(now))}/"
                   f"{time.strftime('%Y-%m-%dT%H.%M.%S', time.gmtime(now))}-{uuid.uuid4()}")
        self.clients.send_to_destination(self.config.on_failure_arn, message, key)
        self.stats.sent_to_destination += len(records)

    def stop(self) -> None:
        super().stop()
        self.source.writes.notify()  # out of an idle wait

    def _step(self) -> None:
        if not self._pending:
            writes = self.source.writes.generation
            if time.monotonic() >= self._next_read:
                self._fetch()
            batch = self._take_batch()
            if not batch:
                self._finish_window_if_due()
                if self._buffer or self._window is not None:
                    self._stop_event.wait(self.settings.poll_interval)  # a batching or tumbling window runs
                elif self._next_read:
                    self._stop_event.wait(max(0.0, self._next_read - time.monotonic()))
                elif not self._stop_event.is_set():
                    self.source.writes.wait(writes, max(self.settings.poll_interval, self.source.idle_interval))
                return
            self._pending.append(_Attempt(batch))
        self._process(self._pending[0])
