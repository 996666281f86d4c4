"""Turn an API Gateway proxy request into a ViewingEvent or a rejection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tap_common.events import (
    InvalidEvent,
    ViewingEvent,
    format_timestamp,
    validate_body,
)
from tap_common.http import Rejected, body_bytes, parse_json

MAX_BODY_BYTES = 8 * 1024
# How far ahead of the API's clock a client's clock may run (contract.md, "API").
FUTURE_TOLERANCE = timedelta(minutes=5)
ROUTES = {"/watch": "watch", "/pause": "pause", "/complete": "complete"}


def event_type_for(resource: str | None) -> str:
    try:
        return ROUTES[(resource or "").rstrip("/") or "/"]
    except KeyError:
        raise Rejected(404, f"unknown route {resource!r}", "path") from None


def parse_request(
    resource: str | None, body: str | None, is_base64: bool, now: datetime | None = None
) -> ViewingEvent:
    event_type = event_type_for(resource)
    payload = parse_json(body_bytes(body, is_base64, MAX_BODY_BYTES))
    try:
        fields = validate_body(payload)
    except InvalidEvent as exc:
        raise Rejected(400, exc.message, exc.field) from None
    received = now or datetime.now(UTC)
    if datetime.fromisoformat(fields["client_timestamp"]) > received + FUTURE_TOLERANCE:
        raise Rejected(400, f"is more than {FUTURE_TOLERANCE.seconds // 60} minutes in the future",
                       "client_timestamp")
    return ViewingEvent(event_type=event_type, received_at=format_timestamp(received), **fields)
