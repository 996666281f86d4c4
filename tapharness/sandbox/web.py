"""The HTTP requests and responses the sandbox's front doors exchange, and their path templates."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tapharness.sandbox._bootstrap import lookup


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


class Outbound:
    """Connections the sandbox itself opens to the names a stack gives it (an HTTP_PROXY backend, an
    SNS subscription's endpoint): ``hosts()`` maps a name the sandbox serves (a partner's stand-in)
    to its local ``address:port``; HTTPS is verified against ``ca_file`` under the name."""

    def __init__(self, hosts: Callable[[], dict[str, str]] | None = None, ca_file: str | None = None) -> None:
        self.hosts = hosts or dict
        self.ca_file = ca_file

    def connection(self, scheme: str, host: str, port: int | None, timeout: float) -> http.client.HTTPConnection:
        """A connection to ``host`` as the sandbox reaches it. A name the sandbox does not serve is
        unreachable (``OSError`` on connect): the sandbox never calls the internet on a stack's behalf,
        so a stack's real webhook or backend URL gets nothing; loopback addresses are reached as given."""
        mapped = lookup(self.hosts(), host)
        if mapped is None and host not in ("127.0.0.1", "localhost"):
            raise ConnectionRefusedError(f"{host} is not a name the sandbox serves (it calls nothing outside itself)")
        address, local_port = (mapped.rsplit(":", 1)[0], int(mapped.rsplit(":", 1)[1])) if mapped else (host, port)
        if scheme == "http":
            return http.client.HTTPConnection(address, local_port or 80, timeout=timeout)
        context = ssl.create_default_context(cafile=self.ca_file)
        return _NamedHttpsConnection(host, address, local_port or 443, context, timeout)

    def post(self, url: str, headers: dict[str, str], body: bytes, timeout: float) -> int | None:
        """POST ``body``; the answer's status, None when the endpoint could not be reached in time."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        try:
            connection = self.connection(parts.scheme, parts.hostname, parts.port, timeout)
        except OSError:
            return None
        try:
            connection.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body=body,
                               headers=headers)
            answer = connection.getresponse()
            answer.read()
            return answer.status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()


class _NamedHttpsConnection(http.client.HTTPSConnection):
    """HTTPS to ``address`` (the sandbox's stand-in) verified, and introduced by SNI, as ``name``."""

    def __init__(self, name: str, address: str, port: int, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(name, port, timeout=timeout, context=context)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
