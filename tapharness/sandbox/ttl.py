"""DynamoDB Time to Live: the service deletes the items that have expired.

On AWS, TTL deletes an item some time after the epoch-seconds Number in its TTL attribute has
passed ("within a few days"), never an item whose attribute is not a Number or lies more than
five years in the past, and only if it is still expired when deleted (an update that moved the
time on keeps it). The deletion is the service's: its stream record is a REMOVE whose
``userIdentity`` is ``{"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}`` (DynamoDB
Streams API reference, Record and Identity; a Lambda event spells them ``principalId`` and
``type``), and a global table's replicas delete the item too, where "TTL deletions that are
replicated to global table regions are not identifiable in DynamoDB streams" (developer guide,
"Working with expired items").

The sandbox deletes an item ``delay_s`` after it expires on the sandbox's clock (``clock``: a test
may move it forward), in a sweep every ``interval_s``; the deletion goes through moto's own
delete, so streams, event source mappings and the global-table replicator see it as they see any.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from moto.dynamodb.exceptions import ConditionalCheckFailed
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import StreamRecord, Table

from tapharness.sandbox import clock

log = logging.getLogger("tapharness.sandbox.ttl")
FIVE_YEARS_S = 5 * 365 * 86400
SERVICE_IDENTITY = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
_DELETING = threading.local()


@dataclass(frozen=True)
class TtlSettings:
    """How long after its expiry the sandbox deletes an item, and how often it looks."""

    delay_s: float = float(os.environ.get("TAPSTACK_TTL_DELAY_S", "2"))
    interval_s: float = 1.0


_STREAM_RECORD_INIT = StreamRecord.__init__


def stream_record(self: StreamRecord, *args: Any, **kwargs: Any) -> None:
    """StreamRecord.__init__ (installed by ``services.dynamodb``): created on the sandbox's clock
    (a mapping's maximum record age is judged on it), and a record of a deletion TTL makes names
    the service as the one who deleted."""
    _STREAM_RECORD_INIT(self, *args, **kwargs)
    self.record["dynamodb"]["ApproximateCreationDateTime"] = clock.utc()
    if getattr(_DELETING, "active", False):
        self.record["userIdentity"] = dict(SERVICE_IDENTITY)


def expiry(item: Any, attribute: str) -> float | None:
    """The item's TTL in epoch seconds; None when the attribute is absent or not a Number."""
    value = item.attrs.get(attribute)
    if value is None or value.type != "N":
        return None
    try:
        return float(Decimal(str(value.value)))
    except (InvalidOperation, ValueError):
        return None


def due(expires: float | None, now: float, delay_s: float) -> bool:
    """Whether TTL deletes an item expiring at ``expires`` by ``now``."""
    return expires is not None and now - FIVE_YEARS_S <= expires <= now - delay_s


def _key(table: Table, item: Any) -> dict[str, Any]:
    key = {table.hash_key_attr: item.hash_key.to_json()}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = item.range_key.to_json()
    return key


def sweep(settings: TtlSettings) -> int:
    """One pass over every table with TTL enabled, in every account and region: the items deleted."""
    now = clock.now()
    deleted = 0
    for regions in list(dynamodb_backends.values()):
        for backend in list(regions.values()):
            for table in list(backend.tables.values()):
                ttl = table.ttl or {}
                if ttl.get("TimeToLiveStatus") != "ENABLED" or not ttl.get("AttributeName"):
                    continue
                deleted += _expire(backend, table, ttl["AttributeName"], now, settings.delay_s)
    return deleted


def _expire(backend: Any, table: Table, attribute: str, now: float, delay_s: float) -> int:
    try:
        expired = [item for item in table.all_items() if due(expiry(item, attribute), now, delay_s)]
    except RuntimeError:  # a writer changed the table while it was read: the next sweep looks again
        return 0
    deleted = 0
    _DELETING.active = True
    try:
        for item in expired:
            try:
                # Still expired when deleted: an update that moved its time on keeps it.
                backend.delete_item(table.name, _key(table, item), expression_attribute_names={"#ttl": attribute},
                                    expression_attribute_values={":now": {"N": repr(now - delay_s)}},
                                    condition_expression="#ttl <= :now")
                deleted += 1
            except ConditionalCheckFailed:
                continue
    finally:
        _DELETING.active = False
    return deleted


class TtlSweeper(threading.Thread):
    """Sweeps every ``interval_s`` until stopped; a failed sweep is logged and tried again."""

    def __init__(self, settings: TtlSettings | None = None) -> None:
        super().__init__(name="dynamodb-ttl", daemon=True)
        self.settings = settings or TtlSettings()
        self.deleted = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.settings.interval_s):
            try:
                self.deleted += sweep(self.settings)
            except Exception:  # the sandbox keeps running; the next sweep tries again
                log.exception("TTL sweep failed")

    def stop(self) -> None:
        self._stop_event.set()
