"""Step Functions task: act on reconciliation's findings.

    overbooking    move the newest allocations of the night to an equivalent room of the same
                   property with units left (one transaction), republish both nights; what
                   cannot be moved is counted in UnresolvedOverbooking (alarm: human ops)
    accounting     set available_units back to total_units minus the allocations, republish
    cache_drift    write the table's values over the property's cached ones
    pms_drift      republish the night so its PMS gets the current availability again
    replica_drift  counted in ReplicaDrift (alarm): replication is AWS's to repair, and a write
                   to a replica would race the primary

SLA: overbooking auto-reassigned < 60 s after detection, the correction pushed to the PMS < 2 min.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from booking_common import cache
from booking_common.model import (
    Night,
    Property,
    allocation_key,
    booking_key,
    inventory_key,
    night_pk,
    now_iso,
    split_night_pk,
)
from booking_common.store import allocations, read_night, read_property
from botocore.exceptions import ClientError
from tap_common import aws, config
from tap_common.cache import redis_client
from tap_common.dynamo import serialize
from tap_common.logs import logger as make_logger

logger = make_logger()

REASSIGN_PASSES = 3  # fresh reads of a night after moves that lost their race


class Store:
    """Reads of the primary table for one run; properties are read once."""

    def __init__(self, table: str) -> None:
        self.table = table
        self._properties: dict[str, Property | None] = {}

    def night(self, pk: str) -> Night | None:
        return read_night(self.table, pk)

    def prop(self, property_id: str) -> Property | None:
        if property_id not in self._properties:
            self._properties[property_id] = read_property(self.table, property_id, consistent=True)
        return self._properties[property_id]

    def allocations(self, pk: str) -> list[dict[str, Any]]:
        return allocations(self.table, pk)


def publish(store: Store, nights: list[Night], reason: str) -> int:
    sent = 0
    for night in nights:
        prop = store.prop(night.property_id)
        if prop is None:
            logger.error("night of an unknown property", extra={"pk": night.pk})
            continue
        aws.client("sns").publish(TopicArn=config.require("INVENTORY_TOPIC_ARN"), **night.publication(prop.pms_id, reason))
        sent += 1
    return sent


def _set_available(store: Store, night: Night, available: int) -> Night | None:
    """Correct one night's units under its optimistic lock; None when it moved meanwhile."""
    stamp = now_iso()
    try:
        aws.client("dynamodb").update_item(
            TableName=store.table, Key=serialize(inventory_key(night.pk)),
            UpdateExpression="SET available_units = :a, version = version + :one, updated_at = :now",
            ConditionExpression="version = :seen",
            ExpressionAttributeValues=serialize({":a": available, ":one": 1, ":now": stamp, ":seen": night.version}))
    except ClientError as exc:
        if aws.error_code(exc) == "ConditionalCheckFailedException":
            return None
        raise
    return Night(night.property_id, night.room_id, night.stay_date, available, night.total_units, night.version + 1,
                 stamp)


def fix_accounting(store: Store, pk: str) -> list[Night]:
    night = store.night(pk)
    if night is None:
        return []
    sold = sum(int(a["units"]) for a in store.allocations(pk))
    if sold > night.total_units or night.available_units == night.total_units - sold:
        return []
    fixed = _set_available(store, night, night.total_units - sold)
    return [fixed] if fixed else []


def _move(store: Store, source: Night, sold: int, allocation: dict[str, Any], target: Night) -> list[Night] | None:
    """One transaction: the allocation moves from source to target; None when either night moved."""
    units = int(allocation["units"])
    booking_id = allocation["booking_id"]
    stamp = now_iso()
    left = max(0, source.total_units - (sold - units))
    moved = {**allocation, **allocation_key(target.pk, booking_id), "reassigned_from": source.room_id}
    try:
        aws.client("dynamodb").transact_write_items(TransactItems=[
            {"Update": {"TableName": store.table, "Key": serialize(inventory_key(target.pk)),
                        "UpdateExpression": "SET available_units = available_units - :u, version = version + :one, "
                                            "updated_at = :now",
                        "ConditionExpression": "version = :seen AND available_units >= :u",
                        "ExpressionAttributeValues": serialize({":u": units, ":one": 1, ":now": stamp,
                                                                ":seen": target.version})}},
            {"Put": {"TableName": store.table, "Item": serialize(moved),
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Delete": {"TableName": store.table, "Key": serialize(allocation_key(source.pk, booking_id)),
                        "ConditionExpression": "attribute_exists(pk)"}},
            {"Update": {"TableName": store.table, "Key": serialize(inventory_key(source.pk)),
                        "UpdateExpression": "SET available_units = :left, version = version + :one, updated_at = :now",
                        "ConditionExpression": "version = :seen",
                        "ExpressionAttributeValues": serialize({":left": left, ":one": 1, ":now": stamp,
                                                                ":seen": source.version})}},
            {"Update": {"TableName": store.table, "Key": serialize(booking_key(booking_id)),
                        "UpdateExpression": "SET #rooms.#night = :room",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeNames": {"#rooms": "rooms", "#night": source.stay_date},
                        "ExpressionAttributeValues": serialize({":room": target.room_id})}},
        ])
    except ClientError as exc:
        if aws.error_code(exc) == "TransactionCanceledException":
            return None
        raise
    return [Night(source.property_id, source.room_id, source.stay_date, left, source.total_units, source.version + 1,
                  stamp),
            Night(target.property_id, target.room_id, target.stay_date, target.available_units - units,
                  target.total_units, target.version + 1, stamp)]


def reassign(store: Store, pk: str) -> tuple[list[Night], int, int]:
    """(changed nights, allocations moved, units still overbooked) for one night.

    A move that loses a race (a booking, or another resolver, changed the night or its bookings
    first) starts the pass again from a fresh read of both the night and its allocations, at most
    REASSIGN_PASSES times: the stale view would count units that already moved."""
    changed: list[Night] = []
    moves = 0
    prop = store.prop(split_night_pk(pk)[0])
    night = store.night(pk)
    if night is None or prop is None or night.room_id not in prop.rooms:
        return changed, moves, 0
    sold = 0
    for _ in range(REASSIGN_PASSES):
        night = store.night(pk) or night
        allocations = sorted(store.allocations(pk), key=lambda a: (str(a.get("created_at", "")), a["booking_id"]),
                             reverse=True)
        sold = sum(int(a["units"]) for a in allocations)
        lost_race = False
        for allocation in allocations:
            if sold <= night.total_units or lost_race:
                break
            for room in prop.equivalent_rooms(night.room_id):
                target = store.night(night_pk(night.property_id, room, night.stay_date))
                if target is None or target.available_units < int(allocation["units"]):
                    continue
                result = _move(store, night, sold, allocation, target)
                if result is None:
                    lost_race = True
                    break
                night = result[0]
                changed += result
                sold -= int(allocation["units"])
                moves += 1
                logger.info("guest reassigned", extra={"booking_id": allocation["booking_id"], "from": pk,
                                                       "to": result[1].pk})
                break
        if not lost_race:
            break
    return changed, moves, max(0, sold - night.total_units)


def repair_cache(store: Store, pks: list[str]) -> int:
    by_property: dict[str, list[str]] = defaultdict(list)
    for pk in pks:
        by_property[split_night_pk(pk)[0]].append(pk)
    client = redis_client()
    repaired = 0
    for property_id, group in by_property.items():
        nights = [n for n in (store.night(pk) for pk in group) if n is not None]
        gone = {cache.cache_field(*split_night_pk(pk)[1:]) for pk in group} - {
            cache.cache_field(n.room_id, n.stay_date) for n in nights}
        if nights:
            repaired += cache.write_nights(client, property_id, nights, config.integer("CACHE_TTL_SECONDS"), repair=True)
        cache.remove_fields(client, property_id, gone)
    return repaired


def _metrics(unresolved: int, replica_drift: int) -> None:
    aws.client("cloudwatch").put_metric_data(Namespace=config.require("METRICS_NAMESPACE"), MetricData=[
        {"MetricName": "UnresolvedOverbooking", "Value": unresolved, "Unit": "Count"},
        {"MetricName": "ReplicaDrift", "Value": replica_drift, "Unit": "Count"},
    ])


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    store = Store(config.require("INVENTORY_TABLE"))
    kinds: dict[str, list[str]] = defaultdict(list)
    for finding in (event or {}).get("findings", []):
        if isinstance(finding, dict) and isinstance(finding.get("pk"), str) and finding["pk"].count("#") == 2:
            kinds[finding.get("kind", "")].append(finding["pk"])
    summary = {"reassigned": 0, "unresolved": 0, "accounting_fixed": 0, "cache_repaired": 0, "republished": 0,
               "replica_drift": len(kinds["replica_drift"])}
    changed: list[Night] = []
    for pk in dict.fromkeys(kinds["overbooking"]):
        nights, moves, still_over = reassign(store, pk)
        changed += nights
        summary["reassigned"] += moves
        if still_over:
            summary["unresolved"] += 1
            logger.error("overbooking unresolved: no equivalent room", extra={"pk": pk, "units_over": still_over})
    for pk in dict.fromkeys(kinds["accounting"]):
        fixed = fix_accounting(store, pk)
        summary["accounting_fixed"] += len(fixed)
        changed += fixed
    summary["cache_repaired"] = repair_cache(store, list(dict.fromkeys(kinds["cache_drift"])))
    stale = [n for n in (store.night(pk) for pk in dict.fromkeys(kinds["pms_drift"])) if n is not None]
    summary["republished"] = publish(store, changed, "correction") + publish(store, stale, "reconciliation")
    _metrics(summary["unresolved"], summary["replica_drift"])
    logger.info("findings resolved", extra={**summary, "at": datetime.now(UTC).isoformat()})
    return summary
