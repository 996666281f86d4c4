"""Hourly aggregates per page and per user (contract.md, "Aggregates"): what the insights read.

Per (page or user, hour of occurred_at) two items under pk AGG#PAGE#<page> or AGG#USER#<user_id>:
    sk <hour>#count     events, t_<event_type> counters; ADDed in the same transaction that stores
                        the event's items on condition they are new, so an event counts exactly once
                        however often its record is retried or replayed
    sk <hour>#distinct  sketch (users of a page, pages of a user) and version; adding to a sketch is
                        idempotent, so it is merged after the transaction, guarded by version
An insight over N hours reads at most 2N items, whatever the traffic: its cost is bounded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tap_common.dynamo import serialize

from clickstream_common.events import ClickEvent
from clickstream_common.sketch import Sketch

MAX_TRANSACTION_ITEMS = 100  # TransactWriteItems' limit
COUNT, DISTINCT = "count", "distinct"


def hour_of(occurred_at: str) -> str:
    """The UTC hour of a stored occurred_at ("2026-12-02T10:00:00.123Z" -> "2026-12-02T10")."""
    return occurred_at[:13]


def page_aggregate(page: str) -> str:
    return f"AGG#PAGE#{page}"


def user_aggregate(user_id: str) -> str:
    return f"AGG#USER#{user_id}"


def counter_key(pk: str, hour: str) -> dict[str, str]:
    return {"pk": pk, "sk": f"{hour}#{COUNT}"}


def distinct_key(pk: str, hour: str) -> dict[str, str]:
    return {"pk": pk, "sk": f"{hour}#{DISTINCT}"}


def type_counter(event_type: str) -> str:
    return f"t_{event_type}"


def _aggregates(event: ClickEvent) -> list[tuple[str, str]]:
    """(aggregate pk, the value it counts distinct) an event contributes to."""
    return [(page_aggregate(event.page), event.user_id), (user_aggregate(event.user_id), event.page)]


def transaction_chunks(events: list[ClickEvent]) -> list[list[ClickEvent]]:
    """Events grouped so that each group's items and counters fit one transaction: two items per
    event plus one counter per aggregate the group touches (a transaction names an item once)."""
    chunks: list[list[ClickEvent]] = []
    chunk: list[ClickEvent] = []
    counters: set[tuple[str, str]] = set()
    for event in events:
        mine = {(pk, hour_of(event.occurred_at)) for pk, _ in _aggregates(event)}
        if chunk and 2 * (len(chunk) + 1) + len(counters | mine) > MAX_TRANSACTION_ITEMS:
            chunks.append(chunk)
            chunk, counters = [], set()
        chunk.append(event)
        counters |= mine
    if chunk:
        chunks.append(chunk)
    return chunks


def transact_items(table: str, events: list[ClickEvent]) -> list[dict[str, Any]]:
    """TransactWriteItems' items: each event's two items (the per-user one on condition it is new:
    the event's exactly-once mark) and the counters they add to. Items come first, in event order,
    two per event, so a cancellation reason at 2i is event i's."""
    actions: list[dict[str, Any]] = []
    deltas: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for event in events:
        user_item, page_item = event.items()
        actions.append({"Put": {"TableName": table, "Item": serialize(user_item),
                                "ConditionExpression": "attribute_not_exists(pk)"}})
        actions.append({"Put": {"TableName": table, "Item": serialize(page_item)}})
        for pk, _ in _aggregates(event):
            delta = deltas[(pk, hour_of(event.occurred_at))]
            delta["events"] += 1
            delta[type_counter(event.event_type)] += 1
    for (pk, hour), delta in deltas.items():
        names = {f"#a{i}": name for i, name in enumerate(sorted(delta))}
        actions.append({"Update": {
            "TableName": table, "Key": serialize(counter_key(pk, hour)),
            "UpdateExpression": "ADD " + ", ".join(f"{alias} :a{alias[2:]}" for alias in names),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize({f":a{alias[2:]}": delta[name] for alias, name in names.items()})}})
    return actions


@dataclass
class DistinctUpdate:
    """What one batch adds to one aggregate's distinct sketch for one hour."""

    pk: str
    hour: str
    values: set[str] = field(default_factory=set)
    sequence_numbers: list[str] = field(default_factory=list)


def distinct_updates(events: Iterable[tuple[str, ClickEvent]]) -> list[DistinctUpdate]:
    updates: dict[tuple[str, str], DistinctUpdate] = {}
    for sequence, event in events:
        for pk, value in _aggregates(event):
            hour = hour_of(event.occurred_at)
            update = updates.setdefault((pk, hour), DistinctUpdate(pk, hour))
            update.values.add(value)
            update.sequence_numbers.append(sequence)
    return list(updates.values())


def merged_sketch(current: bytes | None, values: set[str]) -> Sketch | None:
    """The stored sketch with the new values, or None when they add nothing (no write needed)."""
    before = Sketch.loads(current) if current else Sketch()
    after = before.merge(Sketch.of(values))
    return None if after == before else after


@dataclass
class Insight:
    """The sum of one aggregate's hourly items over a window."""

    events: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    distinct: Sketch = field(default_factory=Sketch)

    def add(self, item: dict[str, Any]) -> None:
        if item["sk"].endswith(f"#{COUNT}"):
            self.events += int(item.get("events", 0))
            for name, value in item.items():
                if name.startswith("t_"):
                    self.by_type[name[2:]] = self.by_type.get(name[2:], 0) + int(value)
        elif item["sk"].endswith(f"#{DISTINCT}") and item.get("sketch"):
            self.distinct = self.distinct.merge(Sketch.loads(bytes(item["sketch"])))
