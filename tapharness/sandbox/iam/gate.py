"""The WSGI middleware in front of moto that enforces IAM for role sessions and users.

A request signed with a key that moto issued (STS AssumeRole, IAM CreateAccessKey) is
decoded (``wire``), turned into the (action, resource) pairs it needs (``catalog``) and
decided (``authorizer``); one denial answers the request with the service's own
AccessDenied error, in its protocol's shape, and moto never sees it. Requests signed with any
other key (the harness: deploys, tests, the demo) pass through as administrator; an unsigned
request (which moto serves as S3) is anonymous, as on AWS: allowed only by a resource policy
granting ``*``.
"""

from __future__ import annotations

import io
import json
import logging
import random
import re
import threading
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from moto.core import DEFAULT_ACCOUNT_ID

from tapharness.sandbox import activity, metrics, network
from tapharness.sandbox.iam.authorizer import Authorizer, describe_denial
from tapharness.sandbox.iam.catalog import iam_prefix
from tapharness.sandbox.iam.wire import (
    ApiCall,
    Signature,
    decode,
    service_model,
    signature,
)

log = logging.getLogger("tapharness.sandbox.gate")
_RETRY_ATTEMPT = re.compile(r"attempt=(\d+)")
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# The error code each service gives an unauthorised call (the default is AccessDeniedException).
_DENIED_CODE = {"s3": "AccessDenied", "sqs": "AccessDenied", "sns": "AuthorizationError", "sts": "AccessDenied",
                "iam": "AccessDenied", "ec2": "UnauthorizedOperation"}


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


def _read_body(environ: dict[str, Any]) -> bytes:
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    body = stream.read(int(length)) if length else (stream.read() if environ.get("wsgi.input_terminated") else b"")
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _changes_network(signed: Signature | None, environ: dict[str, Any]) -> bool:
    """A call that may move a path (EC2, ElastiCache and RDS speak the query protocol: the body's
    Action names the operation); after it the functions' paths are judged anew."""
    if signed is None or signed.signer not in network.NETWORK_SERVICES:
        return False
    action = parse_qs(_read_body(environ).decode(errors="replace")).get("Action", [""])[0]
    return not action.startswith(("Describe", "Get", "List"))


def denied_response(call: ApiCall, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) of the service's AccessDenied answer."""
    return error_response(call, _DENIED_CODE.get(iam_prefix(call), "AccessDeniedException"), message)


def error_response(call: ApiCall, code: str, message: str, status: str = "") -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) of an error answer in the service's protocol; ``status``
    overrides the protocol's usual one (400 for the JSON protocols, 403 otherwise)."""
    request_id = str(uuid.uuid4())
    protocol = service_model(call.service).protocol if call.service else "json"
    base = [("x-amzn-RequestId", request_id)]
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message, "Message": message}).encode()
        return status or "400 Bad Request", [*base, ("Content-Type", "application/x-amz-json-1.0"),
                                   ("x-amzn-query-error", f"{code};Sender")], body
    if protocol == "rest-json":
        body = json.dumps({"message": message, "Message": message, "Type": "User"}).encode()
        return status or "403 Forbidden", [*base, ("Content-Type", "application/json"), ("x-amzn-ErrorType", code)], body
    if protocol == "rest-xml":
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{escape(message)}"
                f"</Message><RequestId>{request_id}</RequestId></Error>").encode()
        return status or "403 Forbidden", [*base, ("Content-Type", "application/xml")], body
    body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>").encode()
    return status or "403 Forbidden", [*base, ("Content-Type", "text/xml")], body


def _request_label(signed: Signature | None, headers: dict[str, str], method: str) -> str:
    """``service operation`` where the request names it in a header (the JSON protocols), else
    ``service method``: enough to see which calls a load makes, without decoding every request."""
    target = headers.get("x-amz-target", "")
    return f"{signed.signer if signed else 'unsigned'} {target.rpartition('.')[2] or method}"


# moto's own control API (its config, seeded results): not AWS, served to anyone as moto serves it.
_MOTO_API = "/moto-api"
ANSWERS_KEPT = 256
ANSWER_LIMIT_BYTES = 64 * 1024


class IamGate:
    """WSGI middleware: authorise, then hand the request to moto (or answer AccessDenied).

    It also counts the requests it passes (``served``, by service and operation) and the SDK
    retries among them (``retried``: ``amz-sdk-request: attempt=N`` with N > 1, also logged), and
    keeps the regions they were signed for (``regions``: where a stack may have left resources).
    A retry of a change that succeeded (its answer lost on the way back, as happens to a loaded
    local server) gets that first answer again, as AWS answers a retry carrying the SDK's
    idempotency token, instead of failing as a duplicate."""

    def __init__(self, app: WsgiApp, authorizer: Authorizer, region: str = "us-east-1") -> None:
        self.app = app
        self.authorizer = authorizer
        self.region = region
        self.served: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()
        self.regions: set[str] = set()
        self._served_lock = threading.Lock()
        # Failure injection (``/_sandbox/faults``): label -> [answers left, error code, share of requests].
        self.faults: dict[str, list[Any]] = {}
        self.injected: Counter[str] = Counter()
        self._random = random.Random(0)
        # Answers to changes, by SDK invocation id, for a retry of a request that took effect.
        self._answers: OrderedDict[str, tuple[str, list[tuple[str, str]], bytes | None]] = OrderedDict()

    def inject(self, label: str, code: str, count: int, share: float = 1.0) -> None:
        """The next ``count`` requests labelled ``label`` (``service Operation``), each with
        probability ``share``, are answered with the error ``code`` instead of reaching moto."""
        with self._served_lock:
            self.faults[label] = [count, code, share]

    def _fault(self, label: str) -> str | None:
        with self._served_lock:
            fault = self.faults.get(label)
            if not fault or fault[0] <= 0 or self._random.random() >= fault[2]:
                return None
            fault[0] -= 1
            self.injected[label] += 1
            return str(fault[1])

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = _headers(environ)
        query = environ.get("QUERY_STRING", "")
        signed = signature(headers, query)
        label = _request_label(signed, headers, environ["REQUEST_METHOD"])
        found = _RETRY_ATTEMPT.search(headers.get("amz-sdk-request", ""))
        attempt = int(found.group(1)) if found else 1
        retry = attempt > 1
        with self._served_lock:
            self.served[label] += 1
            if retry:
                self.retried[label] += 1
            if signed is not None:
                self.regions.add(signed.region)
        invocation = headers.get("amz-sdk-invocation-id", "")
        if retry:
            log.warning("SDK retry: %s attempt %d (invocation %s)", label, attempt, invocation or "?")
            with self._served_lock:
                answered = self._answers.get(invocation)
            if answered is not None and answered[2] is not None:
                # The first attempt took effect and its answer was lost on the way back: the SDK's
                # idempotency token (or the caller's) makes AWS answer a retry with the same result.
                status, response_headers, replayed = answered
                start_response(status, response_headers)
                return [replayed]
        fault = self._fault(label)
        if fault is not None and signed is not None:
            call = decode(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"), query, headers,
                          _read_body(environ), signed)
            metrics.throttled(DEFAULT_ACCOUNT_ID, call.region, call.service, call.operation, fault, call.params)
            status, response_headers, payload = error_response(call, fault, "injected by the sandbox", "400 Bad Request")
            start_response(status, [*response_headers, ("Content-Length", str(len(payload)))])
            return [payload]
        if invocation and environ["REQUEST_METHOD"] in ("POST", "PUT", "DELETE"):
            start_response = self._remembering(invocation, start_response)
        if signed is None and environ.get("PATH_INFO", "/").startswith(_MOTO_API):
            return self.app(environ, start_response)
        principal = self.authorizer.principal_for_key(signed.access_key) if signed else None
        if signed is not None and principal is None:
            return self._serve(signed, headers, environ, start_response, invocation)
        body = _read_body(environ)
        if signed is None:
            # moto serves every unsigned request as S3; AWS as an anonymous one.
            call = decode(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"), query, headers, body,
                          Signature("", self.region, "s3"))
            verdicts = self.authorizer.authorize_anonymous(call)
        else:
            call = decode(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"), query, headers, body, signed)
            verdicts = self.authorizer.authorize(principal, call)
        for verdict in verdicts:
            if not verdict.decision.allowed:
                message = describe_denial(principal, verdict) if principal else "Access Denied"
                status, response_headers, payload = denied_response(call, message)
                start_response(status, [*response_headers, ("Content-Length", str(len(payload)))])
                return [payload]
        return self._serve(signed, headers, environ, start_response, invocation)

    def _serve(self, signed: Signature | None, headers: dict[str, str], environ: dict[str, Any],
               start_response: Callable[..., Any], invocation: str) -> Iterable[bytes]:
        """moto answers; then whoever waits for what the call changed is told (network, pollers)."""
        changes_network = _changes_network(signed, environ)
        answered = self._answer(invocation, self.app(environ, start_response))
        if changes_network:
            network.changed()
        if signed is not None:
            activity.served(signed.signer, environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"),
                            headers.get("x-amz-target", ""))
        return answered

    def _remembering(self, invocation: str, start_response: Callable[..., Any]) -> Callable[..., Any]:
        def remember(status: str, response_headers: list[tuple[str, str]], *args: Any) -> Any:
            if status.startswith("2"):
                with self._served_lock:
                    self._answers[invocation] = (status, list(response_headers), None)
                    while len(self._answers) > ANSWERS_KEPT:
                        self._answers.popitem(last=False)
            return start_response(status, response_headers, *args)
        return remember

    def _answer(self, invocation: str, body: Iterable[bytes]) -> Iterable[bytes]:
        """Keep a successful change's answer (small ones, the last 256) for a retry of it."""
        with self._served_lock:
            pending = self._answers.get(invocation) if invocation else None
        if pending is None:
            return body
        payload = b"".join(body)
        with self._served_lock:
            if len(payload) <= ANSWER_LIMIT_BYTES:
                self._answers[invocation] = (pending[0], pending[1], payload)
                self._answers.move_to_end(invocation)
                while len(self._answers) > ANSWERS_KEPT:
                    self._answers.popitem(last=False)
            else:
                self._answers.pop(invocation, None)
        return [payload]
