"""Turn an HTTP API (payload 2.0) request into a booking or availability query, or a rejection."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from booking_common.model import IDENTIFIER
from tap_common.http import Rejected, body_bytes, parse_json

MAX_BODY_BYTES = 4 * 1024
MAX_DAYS_AHEAD = 730  # inventory is loaded two years ahead
MAX_QUERY_NIGHTS = 31
BOOKING_FIELDS = {"request_id", "property_id", "room_id", "check_in", "nights", "units", "guest_id"}


@dataclass(frozen=True)
class BookingRequest:
    request_id: str
    property_id: str
    room_id: str
    check_in: date
    nights: int
    units: int
    guest_id: str

    @property
    def stay_dates(self) -> list[str]:
        return [(self.check_in + timedelta(days=i)).isoformat() for i in range(self.nights)]


@dataclass(frozen=True)
class AvailabilityQuery:
    property_id: str
    start: date
    nights: int

    @property
    def stay_dates(self) -> list[str]:
        return [(self.start + timedelta(days=i)).isoformat() for i in range(self.nights)]


def _identifier(payload: dict[str, Any], field: str) -> str:
    value = payload.get(field)
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise Rejected(400, "must be 1-64 letters, digits, '_' or '-'", field)
    return value


def _whole(payload: dict[str, Any], field: str, low: int, high: int) -> int:
    value = payload.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Rejected(400, f"must be a whole number from {low} to {high}", field)
    return value


def _stay_date(value: Any, field: str, today: date) -> date:
    try:
        parsed = date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise Rejected(400, "must be a date YYYY-MM-DD", field)
    if parsed < today:
        raise Rejected(400, "is in the past", field)
    if parsed > today + timedelta(days=MAX_DAYS_AHEAD):
        raise Rejected(400, f"is more than {MAX_DAYS_AHEAD} days ahead", field)
    return parsed


def parse_booking(body: str | None, is_base64: bool, today: date, max_nights: int, max_units: int) -> BookingRequest:
    payload = parse_json(body_bytes(body, is_base64, MAX_BODY_BYTES))
    if not isinstance(payload, dict):
        raise Rejected(400, "body must be a JSON object", "body")
    unknown = sorted(set(payload) - BOOKING_FIELDS)
    if unknown:
        raise Rejected(400, "unknown field", unknown[0])
    try:
        request_id = str(uuid.UUID(str(payload.get("request_id"))))
    except ValueError:
        raise Rejected(400, "must be a UUID", "request_id") from None
    return BookingRequest(
        request_id=request_id,
        property_id=_identifier(payload, "property_id"),
        room_id=_identifier(payload, "room_id"),
        check_in=_stay_date(payload.get("check_in"), "check_in", today),
        nights=_whole(payload, "nights", 1, max_nights),
        units=_whole(payload, "units", 1, max_units),
        guest_id=_identifier(payload, "guest_id"),
    )


def parse_availability(path: dict[str, str] | None, query: dict[str, str] | None, today: date) -> AvailabilityQuery:
    property_id = (path or {}).get("property_id", "")
    if not IDENTIFIER.match(property_id):
        raise Rejected(400, "must be 1-64 letters, digits, '_' or '-'", "property_id")
    query = query or {}
    start = _stay_date(query["from"], "from", today) if "from" in query else today
    raw = query.get("nights", "7")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_QUERY_NIGHTS:
        raise Rejected(400, f"must be a whole number from 1 to {MAX_QUERY_NIGHTS}", "nights")
    return AvailabilityQuery(property_id, start, int(raw))
