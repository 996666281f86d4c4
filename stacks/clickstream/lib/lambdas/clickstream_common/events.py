"""Clickstream events and how they are stored (contract.md, "Events" and "Items").

A producer puts one JSON event per Kinesis record, partition key user_id:
    {"event_id": uuid, "user_id", "session_id", "page", "event_type", "occurred_at": ISO-8601 UTC}
Each event is stored twice, keyed so that a replayed record overwrites itself:
    pk USER#<user_id>, sk <occurred_at>#<event_id>
    pk PAGE#<page>,    sk <occurred_at>#<event_id>
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

IDENTIFIER = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
EVENT_TYPES = frozenset({"page_view", "click", "scroll", "search", "add_to_cart", "purchase"})
MAX_EVENT_BYTES = 4096


class InvalidEvent(ValueError):
    """Not a clickstream event; the reason says why."""


@dataclass(frozen=True)
class ClickEvent:
    event_id: str
    user_id: str
    session_id: str
    page: str
    event_type: str
    occurred_at: str

    @property
    def sort_key(self) -> str:
        return f"{self.occurred_at}#{self.event_id}"

    def items(self) -> list[dict[str, Any]]:
        """The event's two items: per user and per page."""
        attributes = {"event_id": self.event_id, "user_id": self.user_id, "session_id": self.session_id,
                      "page": self.page, "event_type": self.event_type, "occurred_at": self.occurred_at}
        return [{"pk": user_key(self.user_id), "sk": self.sort_key, **attributes},
                {"pk": page_key(self.page), "sk": self.sort_key, **attributes}]


def user_key(user_id: str) -> str:
    return f"USER#{user_id}"


def page_key(page: str) -> str:
    return f"PAGE#{page}"


def _identifier(payload: dict[str, Any], field: str) -> str:
    value = payload.get(field)
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise InvalidEvent(f"{field} must be 1-128 letters, digits, '_', '.' or '-'")
    return value


def parse_event(raw: bytes) -> ClickEvent:
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event larger than {MAX_EVENT_BYTES} bytes")
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidEvent("not JSON") from None
    if not isinstance(payload, dict):
        raise InvalidEvent("not a JSON object")
    try:
        event_id = str(uuid.UUID(str(payload.get("event_id"))))
    except ValueError:
        raise InvalidEvent("event_id must be a UUID") from None
    event_type = payload.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:  # a list or object is not hashable
        raise InvalidEvent(f"event_type must be one of {sorted(EVENT_TYPES)}")
    return ClickEvent(event_id, _identifier(payload, "user_id"), _identifier(payload, "session_id"),
                      _identifier(payload, "page"), event_type, _utc(payload.get("occurred_at")))


def _utc(occurred: Any) -> str:
    """occurred_at in UTC with milliseconds; a time UTC cannot hold (year 1 east of Greenwich,
    year 9999 west of it) is as invalid as a malformed one."""
    try:
        moment = datetime.fromisoformat(occurred) if isinstance(occurred, str) else None
        if moment is None or moment.tzinfo is None:
            raise ValueError
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (ValueError, OverflowError):
        raise InvalidEvent("occurred_at must be an ISO-8601 time with a zone, within years 1-9999 in UTC") from None
