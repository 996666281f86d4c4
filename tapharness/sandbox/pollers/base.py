"""What every poller shares: timing knobs, the mapping's settings, a partial batch response's
failed items, the counters, and the stream record."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tapharness.sandbox.clients import AwsClients, InvokeOutcome, Invoker
from tapharness.sandbox.filters import parse_filter_criteria

log = logging.getLogger("tapharness.sandbox.pollers")
# What a failed AWS call or an unexpected answer raises; pollers log it and carry on.
POLLER_ERRORS = (BotoCoreError, ClientError, OSError, ValueError, KeyError, TypeError)


@dataclass(frozen=True)
class PollerSettings:
    """Timing knobs (the defaults favour low latency on one machine)."""

    poll_interval: float = 0.2  # between reads while a batching or tumbling window runs
    reconcile_interval: float = 5.0  # a served change to a mapping reconciles at once
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
    max_record_age: int
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
            max_record_age=(int(esm["MaximumRecordAgeInSeconds"]) if esm.get("MaximumRecordAgeInSeconds") is not None
                            else -1),
            report_item_failures="ReportBatchItemFailures" in (esm.get("FunctionResponseTypes") or []),
            on_failure_arn=((esm.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"),
            tumbling_window=int(esm.get("TumblingWindowInSeconds") or 0),
            starting_position=esm.get("StartingPosition") or "TRIM_HORIZON",
            enabled=esm.get("State", "Enabled") in ("Enabled", "Enabling", "Updating", "Creating"),
        )

    @property
    def source_kind(self) -> str:
        return self.source_arn.split(":")[2]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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


@dataclass
class PollerStats:
    """What a poller has done, for ``status`` and tests."""

    reads: int = 0        # GetRecords calls (stream pollers)
    invocations: int = 0
    delivered: int = 0
    filtered: int = 0
    failed_batches: int = 0
    sent_to_destination: int = 0
    given_up: int = 0     # records skipped after their retries or their maximum age
    throttled: int = 0    # invocations refused by the function's reserved concurrency
    last_error: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class StreamRecord:
    """One stream record: its Lambda event shape, sequence number, arrival time and filter view."""

    event: dict[str, Any]
    sequence: str
    arrival: float
    view: dict[str, Any]


class PollerThread(threading.Thread):
    """One poller's thread: ``_step`` until stopped. A failed step is kept in the stats and logged,
    the poller forgets where it was reading (``_forget_position``) and tries again after
    ``retry_max_delay``: a poller outlives a failed call."""

    def __init__(self, name: str, config: MappingConfig, clients: AwsClients, settings: PollerSettings,
                 invoker: Invoker | None) -> None:
        super().__init__(name=name, daemon=True)
        self.config = config
        self.clients = clients
        self.invoker = invoker or clients
        self.settings = settings
        self.stats = PollerStats()
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def _step(self) -> None:
        raise NotImplementedError

    def _forget_position(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self._step()
            except POLLER_ERRORS as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("poller %s failed a step", self.name)
                self._forget_position()
                self._stop_event.wait(self.settings.retry_max_delay)
