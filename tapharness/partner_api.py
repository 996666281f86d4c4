"""A stand-in for a partner's HTTP API (a hotel's property management system, say): it answers
POST requests with JSON, records what it received, and fails or stalls as a test tells it to.

    with PartnerApi() as api:
        api.behave(failure_rate=1.0)          # every call answers 503
        api.behave(fail_next=2, status=500)   # the next two calls answer 500, then 200 again
        api.behave(latency_s=0.5)             # every answer waits half a second
        api.received                           # [Received(path, headers, body), ...] of the 2xx calls
        api.connections                        # connections opened (HTTP/1.1: kept between calls)
"""

from __future__ import annotations

import json
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 would reset a burst of concurrent calls
    tls: ssl.SSLContext | None = None

    connections = 0
    _counting = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._counting:
            self.connections += 1
        # The TLS handshake runs in the request's own thread: a stalled client never blocks accept().
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any


class PartnerApi:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed: int = 0,
                 tls: tuple[Path, Path] | None = None, confirm: Callable[[str], None] | None = None) -> None:
        """``tls``: (certificate, key) files to serve HTTPS with instead of HTTP. ``confirm``: how the
        stand-in visits an SNS ``SubscribeURL``: given, it confirms each SubscriptionConfirmation it
        is sent, as a partner that auto-confirms does."""
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.received: list[Received] = []
        self.calls = 0
        self._failure_rate = 0.0
        self._fail_next = 0
        self._status = 503
        self._latency_s = 0.0
        self._confirm = confirm
        self._confirms = True
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept open between calls, as a real API's are
            # Headers and body go out in two writes: with Nagle's algorithm on a kept connection the
            # body waits for the client's delayed ACK of the headers (40 ms a call).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status = api._answer(self.path, dict(self.headers), raw)
                if status == 200 and self.headers.get("x-amz-sns-message-type") == "SubscriptionConfirmation" \
                        and api._confirm is not None and api._confirms:
                    url = json.loads(raw).get("SubscribeURL", "")
                    threading.Thread(target=api._confirm, args=(url,), name="partner-confirm", daemon=True).start()
                body = json.dumps({"status": "ok" if status < 300 else "error"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                return

        self._server = _Server((host, port), Handler)
        if tls is not None:
            self._server.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._server.tls.load_cert_chain(*tls)
        self._thread = threading.Thread(target=self._server.serve_forever, name="partner-api", daemon=True)

    @property
    def connections(self) -> int:
        """Connections clients opened (calls over a kept connection do not count again)."""
        return self._server.connections

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{'https' if self._server.tls else 'http'}://{host}:{port}"

    def behave(self, *, failure_rate: float = 0.0, fail_next: int = 0, status: int = 503,
               latency_s: float = 0.0, confirms: bool = True) -> None:
        """Replace the behaviour: `failure_rate` of calls (and the next `fail_next`) answer `status`;
        `confirms`: whether SNS subscription confirmations are confirmed."""
        with self._lock:
            self._failure_rate, self._fail_next, self._status, self._latency_s = failure_rate, fail_next, status, latency_s
            self._confirms = confirms

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> int:
        with self._lock:
            self.calls += 1
            latency = self._latency_s
            failing = self._fail_next > 0 or self._random.random() < self._failure_rate
            if self._fail_next > 0:
                self._fail_next -= 1
            status = self._status if failing else 200
        if latency:
            time.sleep(latency)
        if status == 200:
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                return 400
            with self._lock:
                self.received.append(Received(path, headers, body))
        return status

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()
