"""The HTTP requests and responses the sandbox's front doors exchange, and their path templates."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HttpRequest:
    method: str
    path: str
    query: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    source_ip: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
        return cls(status, json.dumps(payload).encode(), [("Content-Type", "application/json"), *(headers or [])])


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def match_resource(template: str, path: str) -> dict[str, str] | None:
    """Path parameters when a resource or route template (``/a/{id}/{proxy+}``) matches the path."""
    parts, segments = _segments(template), _segments(path)
    params: dict[str, str] = {}
    for i, part in enumerate(parts):
        if part.startswith("{") and part.endswith("+}"):
            if i >= len(segments):
                return None
            params[part[1:-2]] = "/".join(segments[i:])
            return params
        if i >= len(segments):
            return None
        if part.startswith("{") and part.endswith("}"):
            params[part[1:-1]] = segments[i]
        elif part != segments[i]:
            return None
    return params if len(parts) == len(segments) else None


def path_specificity(template: str) -> tuple[int, int]:
    """Rank of a path template: no greedy ``{proxy+}`` before greedy, then more literal segments."""
    parts = _segments(template)
    literal = sum(1 for p in parts if not p.startswith("{"))
    greedy = sum(1 for p in parts if p.endswith("+}"))
    return (-greedy, literal)
