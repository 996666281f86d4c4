"""The viewing event: one definition of what is valid, shared by the API handler that
produces Kinesis records and the consumers that read them (contract.md, "API" and
"Kinesis record")."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

EVENT_TYPES = ("watch", "pause", "complete")
MAX_SECONDS = 86400
BODY_FIELDS = ("event_id", "user_id", "content_id", "position_seconds", "duration_seconds", "client_timestamp")
RECORD_FIELDS = ("event_type", *BODY_FIELDS, "received_at")

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|\+00:00)")


class InvalidEvent(ValueError):
    """A field of a viewing event is missing or wrong; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with millisecond precision, e.g. 2026-11-23T06:00:00.000Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_timestamp(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise InvalidEvent(field, "must be an ISO-8601 UTC timestamp like 2026-11-23T06:00:00.000Z")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidEvent(field, "is not a valid date and time") from exc
    return format_timestamp(moment)


def _identifier(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidEvent(field, "must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def _event_id(value: Any) -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise InvalidEvent("event_id", "must be a UUID string")
    return value.lower()


def _seconds(field: str, value: Any, minimum: float) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidEvent(field, "must be a number")
    if not minimum <= value <= MAX_SECONDS:
        raise InvalidEvent(field, f"must be between {minimum:g} and {MAX_SECONDS}")
    return value


def validate_body(body: Any) -> dict[str, Any]:
    """Validate an API request body and return its normalised fields."""
    if not isinstance(body, Mapping):
        raise InvalidEvent("body", "must be a JSON object")
    unknown = sorted(set(body) - set(BODY_FIELDS))
    if unknown:
        raise InvalidEvent(str(unknown[0]), "is not an allowed property")
    for field in BODY_FIELDS:
        if field not in body:
            raise InvalidEvent(field, "is required")
    fields = {
        "event_id": _event_id(body["event_id"]),
        "user_id": _identifier("user_id", body["user_id"]),
        "content_id": _identifier("content_id", body["content_id"]),
        "position_seconds": _seconds("position_seconds", body["position_seconds"], 0),
        "duration_seconds": _seconds("duration_seconds", body["duration_seconds"], 1),
        "client_timestamp": parse_timestamp("client_timestamp", body["client_timestamp"]),
    }
    if fields["position_seconds"] > fields["duration_seconds"]:
        raise InvalidEvent("position_seconds", "must not exceed duration_seconds")
    return fields


@dataclass(frozen=True)
class ViewingEvent:
    event_id: str
    event_type: str
    user_id: str
    content_id: str
    position_seconds: float
    duration_seconds: float
    client_timestamp: str
    received_at: str

    @classmethod
    def from_record(cls, data: Any) -> ViewingEvent:
        """Parse a Kinesis record (or a message derived from one); extra keys are ignored."""
        if not isinstance(data, Mapping):
            raise InvalidEvent("record", "must be a JSON object")
        for field in RECORD_FIELDS:
            if field not in data:
                raise InvalidEvent(field, "is required")
        if data["event_type"] not in EVENT_TYPES:
            raise InvalidEvent("event_type", f"must be one of {', '.join(EVENT_TYPES)}")
        fields = validate_body({field: data[field] for field in BODY_FIELDS})
        return cls(
            event_type=data["event_type"],
            received_at=parse_timestamp("received_at", data["received_at"]),
            **fields,
        )

    @property
    def progress(self) -> float:
        return min(1.0, self.position_seconds / self.duration_seconds)

    @property
    def sort_key(self) -> str:
        """user_activity sort key of the event item."""
        return f"{self.client_timestamp}#{self.event_id}"

    def to_record(self) -> dict[str, Any]:
        return asdict(self)
