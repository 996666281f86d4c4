"""DynamoDB global tables (version 2019.11.21) in the sandbox; moto has none.

The patches (``update_table``, ``describe``, ``stream_add``) are registered in ``services.dynamodb``;
``start()`` runs the replicator.

``UpdateTable`` with ``ReplicaUpdates`` creates (or deletes) the replica: a table of the same
name, keys, indexes and stream in the other region, listed with ``ReplicaStatus: ACTIVE`` under
``Replicas`` by ``DescribeTable`` in every member's region (the other members). A write to any
member reaches the others asynchronously, after ``delay_s`` (default 0.5 s; AWS typically
replicates in under a second to a few seconds); each replicated batch records
``AWS/DynamoDB ReplicationLatency`` (TableName, ReceivingRegion) in the writer's region, in ms.

Conflicts are resolved as global tables with multi-Region eventual consistency resolve them, "last
writer wins" (Developer Guide, "How DynamoDB global tables work"): every member keeps, per item, the
time and region of the write it holds (its own or a replicated one, deletes included); a replicated
write older than that is discarded, so members that took conflicting writes while apart converge on
the latest one whatever order the writes arrive in (equal times: the later region name wins). A
local write racing a replicated one for the same item within the same instant is not serialised.

Failure injection for tests (``GET/POST /_sandbox/replication``): pausing replication to a region
holds its writes back (they flow once resumed), so a replica falls behind as in a regional
outage; ``delay_s`` sets the lag.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from moto.core.responses import ActionResult
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult

from tapharness.sandbox import metrics

log = logging.getLogger("tapharness.sandbox.globaltables")

_UPDATE_TABLE = DynamoHandler.update_table
_DESCRIBE = Table.describe
_STREAM_ADD = StreamShard.add
_APPLYING = threading.local()  # set while the replicator writes, so its writes are not replicated again


@dataclass(order=True)
class _Change:
    due: float
    order: int
    written: float = field(compare=False)
    source: str = field(compare=False)
    target: str = field(compare=False)
    table: str = field(compare=False)
    new: dict[str, Any] | None = field(compare=False)  # the item in DynamoDB JSON; None: deleted
    key: tuple[Any, Any] = field(compare=False)  # (hash key, range key) as moto DynamoTypes


class Replicator:
    """The replication of every global table of one account, on one background thread."""

    def __init__(self, account_id: str, delay_s: float = 0.5) -> None:
        self.account_id = account_id
        self.delay_s = delay_s
        self.paused: set[str] = set()
        self._queue: list[_Change] = []
        self._held: list[_Change] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self.replicated = 0
        self.discarded = 0  # replicated writes older than the member's own (last writer wins)
        # (region, table, item key) -> (time, region) of the write the member holds
        self._stamps: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._thread = threading.Thread(target=self._run, name="dynamodb-replication", daemon=True)

    # --- membership ---------------------------------------------------------------------

    def members(self, table: Table) -> set[str]:
        return set(getattr(table, "_global_members", ()) or ())

    def _table(self, region: str, name: str) -> Table | None:
        return dynamodb_backends[self.account_id][region].tables.get(name)

    def create_replica(self, source: Table, region: str, kms_key: str | None = None) -> None:
        """A replica in ``region``, encrypted as AWS encrypts one: with ``kms_key`` (the Create
        update's KMSMasterKeyId) when given, else, for a table under a KMS key, with DynamoDB's
        AWS managed key of the replica's own region (a key never spans regions)."""
        backend = dynamodb_backends[self.account_id][region]
        sse = dict(source.sse_specification) if source.sse_specification else None
        if sse is not None:
            sse.pop("KMSMasterKeyId", None)
            if kms_key:
                sse["KMSMasterKeyId"] = kms_key
        if source.name not in backend.tables:
            backend.create_table(
                source.name, schema=source.schema, throughput=source.throughput, attr=source.attr,
                global_indexes=[i.describe() for i in source.global_indexes],
                indexes=[i.describe() for i in source.indexes], streams=source.stream_specification,
                billing_mode=source.billing_mode, sse_specification=sse, tags=[],
                deletion_protection_enabled=source.deletion_protection_enabled, warm_throughput=None)
            replica = backend.tables[source.name]
            for item in (i for items in source.items.values()
                         for i in (items.values() if source.has_range_key else [items])):
                self._write(replica, item.to_json()["Attributes"], None)
        members = self.members(source) | {source.region_name, region}
        self._set_members(source.name, members)

    def delete_replica(self, source: Table, region: str) -> None:
        members = self.members(source) - {region}
        backend = dynamodb_backends[self.account_id][region]
        replica = backend.tables.get(source.name)
        if replica is not None:
            replica.deletion_protection_enabled = False
            backend.delete_table(source.name)
        self._set_members(source.name, members if len(members) > 1 else set())

    def _set_members(self, name: str, members: set[str]) -> None:
        for backend in list(dynamodb_backends[self.account_id].values()):
            table = backend.tables.get(name)
            if table is not None and (not members or backend.region_name in members):
                table._global_members = frozenset(members)  # type: ignore[attr-defined]

    # --- replication --------------------------------------------------------------------

    def changed(self, table: Table, old: Item | None, new: Item | None) -> None:
        """A write to a member: queue it for every other member."""
        if getattr(_APPLYING, "active", False):
            return
        members = self.members(table)
        if not members:
            return
        item = new or old
        if item is None:
            return
        now = time.time()
        with self._wake:
            self._stamps[(table.region_name, table.name, _item_key(item))] = (now, table.region_name)
            for region in sorted(members - {table.region_name}):
                change = _Change(now + self.delay_s, next(self._order), now, table.region_name, region, table.name,
                                 new.to_json()["Attributes"] if new is not None else None,
                                 (item.hash_key, item.range_key))
                heapq.heappush(self._queue, change)
            self._wake.notify()

    def control(self, region: str | None = None, paused: bool | None = None, delay_s: float | None = None) -> None:
        with self._wake:
            if delay_s is not None:
                self.delay_s = max(0.0, float(delay_s))
            if region is not None and paused is not None:
                if paused:
                    self.paused.add(region)
                else:
                    self.paused.discard(region)
                    for change in self._held:
                        if change.target == region:
                            heapq.heappush(self._queue, change)
                    self._held = [c for c in self._held if c.target != region]
            self._wake.notify()

    def status(self) -> dict[str, Any]:
        with self._wake:
            return {"delay_s": self.delay_s, "paused": sorted(self.paused), "pending": len(self._queue),
                    "held": len(self._held), "replicated": self.replicated, "discarded": self.discarded}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._queue or self._queue[0].due > time.time()):
                    self._wake.wait(timeout=None if not self._queue else max(0.0, self._queue[0].due - time.time()))
                if self._stopped:
                    return
                ready = []
                while self._queue and self._queue[0].due <= time.time():
                    change = heapq.heappop(self._queue)
                    (self._held if change.target in self.paused else ready).append(change)
            if ready:
                try:
                    self._apply(ready)
                except Exception:  # one broken change must not stop replication for every table
                    log.exception("replication batch failed")

    def _apply(self, changes: list[_Change]) -> None:
        latency: dict[tuple[str, str, str], list[float]] = {}
        for change in changes:
            target = self._table(change.target, change.table)
            if target is None:
                continue
            stamp_key = (change.target, change.table, _key_text(change.key))
            with self._wake:
                held = self._stamps.get(stamp_key)
                if held is not None and held > (change.written, change.source):
                    self.discarded += 1  # the member holds a later write: this one lost
                    continue
                self._stamps[stamp_key] = (change.written, change.source)
            self._write(target, change.new, change.key)
            latency.setdefault((change.source, change.table, change.target), []).append(
                (time.time() - change.written) * 1000)
            self.replicated += 1
        self._prune()
        for (source, table, target), values in latency.items():  # stamped on the sandbox's clock, as every metric
            metrics.put(self.account_id, source, "AWS/DynamoDB", {"TableName": table, "ReceivingRegion": target},
                        {"ReplicationLatency": (sum(values) / len(values), "Milliseconds")})

    def _prune(self) -> None:
        """Forget the times of writes older than every change still queued or held: a change compares
        only against a time at least as old as itself, and a forgotten older time loses to it anyway."""
        with self._wake:
            if len(self._stamps) < 10_000:
                return
            oldest = min((c.written for c in (*self._queue, *self._held)), default=time.time())
            self._stamps = {key: held for key, held in self._stamps.items() if held[0] >= oldest}

    @staticmethod
    def _write(table: Table, new: dict[str, Any] | None, key: tuple[Any, Any] | None) -> None:
        _APPLYING.active = True
        try:
            if new is not None:
                table.put_item(new)
            elif key is not None:
                table.delete_item(key[0], key[1])
        finally:
            _APPLYING.active = False


def _key_text(key: tuple[Any, Any]) -> str:
    """An item's primary key as text (moto's key types are not hashable)."""
    return json.dumps([part.to_json() if part is not None else None for part in key], sort_keys=True)


def _item_key(item: Item) -> str:
    return _key_text((item.hash_key, item.range_key))


_REPLICATOR: Replicator | None = None


def stream_add(self: StreamShard, old: Item | None, new: Item | None) -> None:
    _STREAM_ADD(self, old, new)
    if _REPLICATOR is not None:
        _REPLICATOR.changed(self.table, old, new)


def update_table(self: DynamoHandler) -> ActionResult:
    """UpdateTable, with ReplicaUpdates (Create / Delete) handled before the other changes."""
    updates = self.body.get("ReplicaUpdates") or []
    if updates and _REPLICATOR is not None:
        table = self.dynamodb_backend.get_table(self.body["TableName"])
        for update in updates:
            if "Create" in update:
                _REPLICATOR.create_replica(table, update["Create"]["RegionName"], update["Create"].get("KMSMasterKeyId"))
            elif "Delete" in update:
                _REPLICATOR.delete_replica(table, update["Delete"]["RegionName"])
        others = {k for k in self.body if k not in ("TableName", "ReplicaUpdates")}
        if not others:
            return DynamoResult(table.describe())
    return _UPDATE_TABLE(self)


def describe(self: Table, base_key: str = "TableDescription") -> dict[str, Any]:
    description = _DESCRIBE(self, base_key)
    members = sorted(set(getattr(self, "_global_members", ()) or ()) - {self.region_name})
    if members:
        description[base_key]["Replicas"] = [{"RegionName": region, "ReplicaStatus": "ACTIVE"} for region in members]
        description[base_key]["GlobalTableVersion"] = "2019.11.21"
    return description


def start(account_id: str, delay_s: float = 0.5) -> Replicator:
    """Start replicating (once per process); the moto patches are in ``services.dynamodb``."""
    global _REPLICATOR
    if _REPLICATOR is None:
        _REPLICATOR = Replicator(account_id, delay_s)
        _REPLICATOR.start()
    return _REPLICATOR
