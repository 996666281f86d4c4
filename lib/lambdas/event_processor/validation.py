"""Turn an API Gateway proxy request into a ViewingEvent or a rejection."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tap_common.events import (
    InvalidEvent,
    ViewingEvent,
    format_timestamp,
    validate_body,
)

MAX_BODY_BYTES = 8 * 1024
# How far ahead of the API's clock a client's clock may run (contract.md, "API").
FUTURE_TOLERANCE = timedelta(minutes=5)
ROUTES = {"/watch": "watch", "/pause": "pause", "/complete": "complete"}


class Rejected(Exception):
    """The request is refused with `status` and a JSON body naming the offending field."""

    def __init__(self, status: int, error: str, field: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.field = field

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error}
        if self.field is not None:
            body["field"] = self.field
        return body


def event_type_for(resource: str | None) -> str:
    try:
        return ROUTES[(resource or "").rstrip("/") or "/"]
    except KeyError:
        raise Rejected(404, f"unknown route {resource!r}", "path") from None


def body_bytes(body: str | None, is_base64: bool) -> bytes:
    if body is None or body == "":
        raise Rejected(400, "request body is required", "body")
    if is_base64:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise Rejected(400, "body is not valid base64", "body") from None
    else:
        raw = body.encode("utf-8")
    if len(raw) > MAX_BODY_BYTES:
        raise Rejected(413, f"body exceeds {MAX_BODY_BYTES} bytes", "body")
    return raw


def parse_request(
    resource: str | None, body: str | None, is_base64: bool, now: datetime | None = None
) -> ViewingEvent:
    event_type = event_type_for(resource)
    payload = parse_json(body_bytes(body, is_base64))
    try:
        fields = validate_body(payload)
    except InvalidEvent as exc:
        raise Rejected(400, exc.message, exc.field) from None
    received = now or datetime.now(UTC)
    if datetime.fromisoformat(fields["client_timestamp"]) > received + FUTURE_TOLERANCE:
        raise Rejected(400, f"is more than {FUTURE_TOLERANCE.seconds // 60} minutes in the future",
                       "client_timestamp")
    return ViewingEvent(event_type=event_type, received_at=format_timestamp(received), **fields)


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not a JSON value")


def parse_json(raw: bytes) -> Any:
    """Strict JSON (RFC 8259): no NaN or Infinity; too deep, too long a number or not UTF-8 is refused."""
    try:
        return json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Rejected(400, "body is not valid JSON", "body") from None
