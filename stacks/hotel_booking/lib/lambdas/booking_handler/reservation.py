"""The reservation of a booking as one DynamoDB transaction, with optimistic locking.

Every night is an Update conditioned on the version read a moment before (and on enough
units, so a stale read can never sell below zero); the booking, its allocations and the
request's hold are Puts that must not exist yet. The booking id derives from the request id,
so a retried request finds its own hold and gets the first answer again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from booking_common.model import (
    Night,
    Property,
    allocation_key,
    booking_key,
    hold_key,
    inventory_key,
    night_pk,
    now_iso,
)
from request import BookingRequest
from tap_common.dynamo import serialize

BOOKING_NAMESPACE = uuid.UUID("6f1c3f0e-3c1a-4e0b-9a43-0c6f1e2b7d51")


class NotBookable(Exception):
    """The request cannot be booked as asked: `status` 404 (no such room) or 409 (not available)."""

    def __init__(self, status: int, error: str, field: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.field = field


def booking_id_for(request_id: str) -> str:
    return str(uuid.uuid5(BOOKING_NAMESPACE, request_id))


def check_offer(request: BookingRequest, prop: Property | None) -> Property:
    """The property, when it offers the requested room."""
    if prop is None:
        raise NotBookable(404, "unknown property", "property_id")
    if request.room_id not in prop.rooms:
        raise NotBookable(404, "the property has no such room", "room_id")
    return prop


def nights_to_reserve(request: BookingRequest, items: dict[str, dict[str, Any]]) -> list[Night]:
    """The request's nights as read; NotBookable when one is not on sale or has too few units."""
    nights = []
    for stay_date in request.stay_dates:
        item = items.get(night_pk(request.property_id, request.room_id, stay_date))
        if item is None:
            raise NotBookable(409, f"not on sale on {stay_date}", "check_in")
        night = Night.from_item(item)
        if night.available_units < request.units:
            raise NotBookable(409, f"sold out on {stay_date}", "check_in")
        nights.append(night)
    return nights


def _expires_at(stay_date: str, retention_days: int) -> int:
    moment = datetime.combine(date.fromisoformat(stay_date), time.min) + timedelta(days=retention_days)
    return int(moment.timestamp())


def transaction(request: BookingRequest, nights: list[Night], table: str, now: datetime,
                hold_ttl_seconds: int, retention_days: int) -> list[dict[str, Any]]:
    """TransactWriteItems entries: the hold first, then the booking, then per night its update
    and its allocation (the handler reads cancellation reasons by this order)."""
    booking_id = booking_id_for(request.request_id)
    stamp = now_iso(now)
    last_night = request.stay_dates[-1]
    not_yet = "attribute_not_exists(pk)"
    items: list[dict[str, Any]] = [
        {"Put": {"TableName": table, "ConditionExpression": not_yet, "Item": serialize({
            **hold_key(request.request_id), "booking_id": booking_id, "created_at": stamp,
            "expires_at": int(now.timestamp()) + hold_ttl_seconds})}},
        {"Put": {"TableName": table, "ConditionExpression": not_yet, "Item": serialize({
            **booking_key(booking_id), "booking_id": booking_id, "request_id": request.request_id,
            "property_id": request.property_id, "rooms": {d: request.room_id for d in request.stay_dates},
            "units": request.units, "guest_id": request.guest_id, "status": "confirmed", "created_at": stamp,
            "expires_at": _expires_at(last_night, retention_days)})}},
    ]
    for night in nights:
        items.append({"Update": {
            "TableName": table,
            "Key": serialize(inventory_key(night.pk)),
            "UpdateExpression": "SET available_units = available_units - :units, version = version + :one, "
                                "updated_at = :now",
            "ConditionExpression": "version = :seen AND available_units >= :units",
            "ExpressionAttributeValues": serialize({":units": request.units, ":one": 1, ":now": stamp,
                                                    ":seen": night.version}),
        }})
        items.append({"Put": {"TableName": table, "ConditionExpression": not_yet, "Item": serialize({
            **allocation_key(night.pk, booking_id), "booking_id": booking_id, "units": request.units,
            "guest_id": request.guest_id, "created_at": stamp,
            "expires_at": _expires_at(night.stay_date, retention_days)})}})
    return items


def reserved(nights: list[Night], units: int, now: datetime) -> list[Night]:
    """The nights as the committed transaction left them."""
    stamp = now_iso(now)
    return [Night(n.property_id, n.room_id, n.stay_date, n.available_units - units, n.total_units, n.version + 1,
                  stamp) for n in nights]


@dataclass(frozen=True)
class Outcome:
    """Why a transaction was cancelled: a repeated request, a lost race, or something else."""

    duplicate: bool
    race: bool


def cancellation(reasons: list[dict[str, Any]]) -> Outcome:
    codes = [r.get("Code", "None") for r in reasons]
    duplicate = "ConditionalCheckFailed" in codes[:2]  # the hold or the booking exists already
    race = "TransactionConflict" in codes or "ConditionalCheckFailed" in codes[2::2]  # a night moved on
    return Outcome(duplicate, race)
