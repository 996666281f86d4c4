"""API requests and responses shared by every stack's front door: strict JSON bodies and
rejections that name the offending field."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


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


def body_bytes(body: str | None, is_base64: bool, max_bytes: int) -> bytes:
    if body is None or body == "":
        raise Rejected(400, "request body is required", "body")
    if is_base64:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise Rejected(400, "body is not valid base64", "body") from None
    else:
        raw = body.encode("utf-8")
    if len(raw) > max_bytes:
        raise Rejected(413, f"body exceeds {max_bytes} bytes", "body")
    return raw


# Deeper bodies are refused whatever the interpreter's recursion limit lets json parse (3.11 stops
# near 1,000 levels, 3.12 later): no request of ours nests more than a few levels.
MAX_JSON_DEPTH = 32


def _depth(value: Any) -> int:
    deepest, level = 0, [(value, 1)]
    while level:
        node, depth = level.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        level.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not a JSON value")


def parse_json(raw: bytes) -> Any:
    """Strict JSON (RFC 8259): no NaN or Infinity; too deep, too long a number or not UTF-8 is refused."""
    try:
        value = json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Rejected(400, "body is not valid JSON", "body") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise Rejected(400, f"body nests deeper than {MAX_JSON_DEPTH} levels", "body")
    return value


def response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }
