"""Deployed WebSocket APIs (API Gateway v2) served over real WebSocket connections; moto stores
them but serves no connection.

A stage's URL ``wss://<api_id>.execute-api.<region>.amazonaws.com/<stage>`` maps to
``ws://127.0.0.1:<gateway port>/apis/<api_id>/<stage>`` (``apigw.local_invoke_url``); a request
whose Host header is the API's name is served by path alone. The gateway hands this module every
``Upgrade: websocket`` request for a WebSocket API; frames are read and written with the
``websockets`` package's sans-I/O protocol (no framing of our own).

What a connection goes through, as API Gateway does it (Developer Guide, "WebSocket APIs"):

- **Routing table.** A stage with ``autoDeploy`` serves the API as it is now; any other stage the
  routes and integrations as they were at its deployment (``services.apigatewayv2`` keeps a copy
  per deployment): a route changed without a new deployment is not served, and a stage without a
  deployment takes no connection (403).
- **$connect** is invoked (its ``AWS_PROXY`` integration's function, as the Lambda service invokes
  it once the function's policy lets ``apigateway.amazonaws.com`` in for
  ``arn:aws:execute-api:<region>:<account>:<api>/<stage>/$connect``) with the handshake's headers
  and query string (``Host`` the API's name, ``X-Forwarded-*`` added); a route with ``AWS_IAM``
  authorization takes only a caller allowed ``execute-api:Invoke`` on that ARN. A non-2xx
  ``statusCode`` refuses the upgrade with that status, a function error with 500; the headers it
  answers (``Sec-WebSocket-Protocol``) go to the client with the 101; without a ``$connect`` route
  every connection is taken. Every integration is held to 29 s (then 504, or an "Endpoint request
  timed out" message).
- **Messages** are routed by the API's ``route_selection_expression`` (``$request.body.action``,
  ``${request.body.a}/${request.body.b}``): the route whose key equals the value, else ``$default``
  (a message that is not JSON goes to ``$default``); with neither, the client is sent
  ``{"message": "Forbidden", "connectionId", "requestId"}``. Each message is its own invocation
  (messages of one connection are not serialised, as on AWS). A route with a
  ``route_response_selection_expression`` and a route response is two-way: the integration's
  ``body`` is sent back. A function error sends ``{"message": "Internal server error", ...}``.
- **Limits** (Developer Guide, "Quotas for configuring and running a WebSocket API"): a frame over
  32 KB or a message over 128 KB closes the connection with 1009; a binary frame with 1003
  ("WebSocket APIs don't currently support binary frames in incoming message payloads"); 10 minutes
  without a data frame from the client (pings do not count: the stricter reading), or 2 hours
  connected, close it with 1001 (a test shortens both: ``POST /_sandbox/websockets {"idle_s",
  "max_s"}``); a close frame waits 10 s for the client's. A client that stops reading fails its
  connection once a write has waited 10 s.
- **$disconnect** is invoked once the connection is closed, by either side, with
  ``disconnectStatusCode`` and ``disconnectReason``.
- **@connections** (``POST|GET|DELETE /<stage>/@connections/<id>``, the API Gateway Management
  API): SigV4 signed for ``execute-api`` by a caller allowed ``execute-api:ManageConnections`` on
  ``arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/@connections/<id>``
  (else 403: ``AccessDeniedException`` with IAM's message); a connection that is not open (or not yet
  sent its handshake) answers 410 ``GoneException``;
  data over 128 KB 413 ``PayloadTooLargeException``; a post over 32 KB goes out in 32 KB frames.

CloudWatch (``AWS/ApiGateway``, dimensions ApiId and Stage): ConnectCount, MessageCount,
ClientError, IntegrationError, ExecutionError, IntegrationLatency.
Not emulated: Lambda authorizers, API keys, throttling, non-proxy integrations and their templates,
the new-connections-per-second quota, 429 for a client whose buffer is full. Connections are served
on the gateway's plain port only (the HTTPS port takes @connections calls, not upgrades).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import select
import socket
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from moto.apigatewayv2.models import Api, Integration, Route, apigatewayv2_backends
from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from tapharness.sandbox import metrics
from tapharness.sandbox.clients import Invoker
from tapharness.sandbox.web import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from tapharness.sandbox.iam.sessions import ServiceGuard

log = logging.getLogger("tapharness.sandbox.websocket")
# The protocol's own lines (a line per connection opened and closed) only when something is wrong.
_PROTOCOL_LOG = logging.getLogger("tapharness.sandbox.websocket.protocol")
_PROTOCOL_LOG.setLevel(logging.WARNING)

MAX_FRAME_BYTES = 32 * 1024
MAX_MESSAGE_BYTES = 128 * 1024
INTEGRATION_TIMEOUT_S = 29.0
WRITE_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 10.0  # how long a close frame waits for the client's (the websockets package's default)
# The 101's own headers, which $connect's answer cannot replace.
_HANDSHAKE_HEADERS = frozenset({"upgrade", "connection", "sec-websocket-accept", "sec-websocket-extensions",
                                "content-length", "transfer-encoding"})
_FUNCTION_IN_URI = re.compile(r"(?:/functions/)?(?P<arn>arn:[^:]+:lambda:[^/]+?)(?:/invocations)?$")
_SELECTION_VARIABLE = re.compile(r"\$\{request\.body\.([^}]+)\}|\$request\.body\.([A-Za-z0-9_.\-]+)")
_MANAGEMENT_PATH = re.compile(r"^/@connections/(?P<id>[^/]+)$")
_ROUTE_ONLY_KEYS = ("$connect", "$disconnect")


@dataclass(frozen=True)
class Limits:
    """AWS's idle timeout, longest connection and integration timeout; a test shortens them
    (``POST /_sandbox/websockets``)."""

    idle_s: float = 600.0
    max_s: float = 7200.0
    integration_s: float = INTEGRATION_TIMEOUT_S


@dataclass(frozen=True)
class WsTarget:
    api_id: str
    stage: str
    path: str


@dataclass(frozen=True)
class WsRoute:
    """A route as the stage serves it: its integration's function (None when it has no Lambda
    proxy integration) and whether it sends the integration's answer back."""

    key: str
    authorization_type: str
    function_arn: str | None
    two_way: bool


@dataclass
class _Connection:
    connection_id: str
    api_id: str
    stage: str
    domain: str
    sock: socket.socket
    protocol: ServerProtocol
    source_ip: str
    user_agent: str
    connected_at: float = field(default_factory=time.time)
    last_active: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def flush(self) -> None:
        """Write what the protocol has queued (the caller holds ``lock``); an empty chunk is the
        protocol's end of the connection, sent as TCP's."""
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)
            else:
                self.sock.shutdown(socket.SHUT_WR)


def selection_value(expression: str, body: str) -> str | None:
    """A route selection expression evaluated on a message; None when the message is not a JSON
    object or a variable's path is missing (API Gateway then picks ``$default``). Values are
    stringified as API Gateway does (a list shows as ``[a, b]``)."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    missing = False

    def resolve(match: re.Match[str]) -> str:
        nonlocal missing
        value: Any = document
        for part in (match.group(1) or match.group(2)).split("."):
            if not isinstance(value, dict) or part not in value:
                missing = True
                return ""
            value = value[part]
        if isinstance(value, list):
            return "[" + ", ".join(str(v) for v in value) + "]"
        return value if isinstance(value, str) else json.dumps(value)

    value = _SELECTION_VARIABLE.sub(resolve, expression)
    return None if missing else value


def choose_route(route_keys: set[str], expression: str, body: str) -> str | None:
    """The route key a message goes to: the evaluated expression's, else ``$default``, else None."""
    value = selection_value(expression, body)
    if value is not None and value in route_keys and value not in _ROUTE_ONLY_KEYS:
        return value
    return "$default" if "$default" in route_keys else None


def routing_table(routes: dict[str, Route], integrations: dict[str, Integration]) -> dict[str, WsRoute]:
    """The routes of an API (or of a deployment's copy of it) by key."""
    table: dict[str, WsRoute] = {}
    for route in routes.values():
        integration = integrations.get((route.target or "").removeprefix("integrations/"))
        function = None
        if integration is not None and integration.integration_type == "AWS_PROXY":
            found = _FUNCTION_IN_URI.search(integration.integration_uri or "")
            function = found["arn"] if found else None
        # Two-way needs both the selection expression and a route response: "API Gateway will not pass
        # the backend response through to the route response, unless you set up a route response"
        # (Developer Guide, "Set up a route response for a WebSocket API").
        table[route.route_key] = WsRoute(route.route_key, route.authorization_type or "NONE", function,
                                         bool(route.route_response_selection_expression and route.route_responses))
    return table


def new_connection_id() -> str:
    """An id shaped like API Gateway's (``L0SM9cOFvHcCIhw=``: ten random bytes, base64, drawn again
    while it holds a ``/`` or ``+``, which would not stay one segment of an @connections path)."""
    while True:
        candidate = base64.b64encode(os.urandom(10)).decode()
        if "/" not in candidate and "+" not in candidate:
            return candidate


class WebSocketDoor:
    """Serves API Gateway v2 WebSocket APIs from moto's configuration, invoking functions through Lambda."""

    def __init__(self, region: str, guard: ServiceGuard | None, account_id: str, invoker: Invoker,
                 limits: Limits | None = None) -> None:
        self.region = region
        self.guard = guard
        self.account_id = account_id
        self.invoker = invoker
        self.limits = limits or Limits()
        self.connections: dict[str, _Connection] = {}
        self._connections_lock = threading.Lock()
        # Messages are invoked apart from the connection's reading thread, so one slow integration
        # never holds the frames behind it (nor their pings); each invocation waits at most 29 s.
        self._messages = ThreadPoolExecutor(max_workers=32, thread_name_prefix="websocket-message")
        self._integrations = ThreadPoolExecutor(max_workers=64, thread_name_prefix="websocket-integration")
        self._closed = False

    def status(self) -> dict[str, Any]:
        """The limits and the open connections (``GET /_sandbox/websockets``)."""
        with self._connections_lock:
            open_now = [{"connectionId": c.connection_id, "apiId": c.api_id, "stage": c.stage,
                         "connectedAt": _iso(c.connected_at), "lastActiveAt": _iso(c.last_active)}
                        for c in self.connections.values()]
        return {"idle_s": self.limits.idle_s, "max_s": self.limits.max_s, "integration_s": self.limits.integration_s,
                "connections": open_now}

    def close(self) -> None:
        """The sandbox stops: every connection is told (1001) and closed, no $disconnect is invoked."""
        self._closed = True
        with self._connections_lock:
            open_now = list(self.connections.values())
        for connection in open_now:
            with connection.lock:
                try:
                    if connection.protocol.state is State.OPEN:
                        connection.protocol.send_close(1001, "Going away")
                    connection.flush()
                except OSError:
                    pass
            _shut(connection.sock)
        self._messages.shutdown(wait=False, cancel_futures=True)
        self._integrations.shutdown(wait=False, cancel_futures=True)

    # --- which API, which routes ---------------------------------------------------------------

    def _api(self, api_id: str) -> Api | None:
        return apigatewayv2_backends[self.account_id][self.region].apis.get(api_id)

    def route_for(self, host_api: str | None, path: str) -> WsTarget | None:
        """The WebSocket API and stage a request is for (by Host header or ``/apis/<id>``), with the
        rest of its path (``/`` for a connection, ``/@connections/<id>`` for the management API)."""
        segments = path.split("/")
        if host_api is not None:
            api_id, rest = host_api, segments[1:]
        elif len(segments) >= 4 and segments[1] == "apis" and segments[2] and segments[3]:
            api_id, rest = segments[2], segments[3:]
        else:
            return None
        api = self._api(api_id)
        if api is None or api.protocol_type != "WEBSOCKET" or not rest or not rest[0]:
            return None
        return WsTarget(api_id, rest[0], "/" + "/".join(rest[1:]))

    def routes(self, target: WsTarget) -> dict[str, WsRoute] | None:
        """The stage's routing table; None when the stage does not exist or has nothing deployed."""
        api = self._api(target.api_id)
        stage = api.stages.get(target.stage) if api else None
        if api is None or stage is None:
            return None
        if stage.auto_deploy:
            return routing_table(api.routes, api.integrations)
        snapshot = api.__dict__.get("_sandbox_snapshots", {}).get(stage.config.get("deploymentId"))
        return None if snapshot is None else routing_table(*snapshot)

    def _selection_expression(self, target: WsTarget) -> str:
        api = self._api(target.api_id)
        return api.route_selection_expression if api else "$request.body.action"

    def _metric(self, target: WsTarget, values: dict[str, float]) -> None:
        metrics.put(self.account_id, self.region, "AWS/ApiGateway", {"ApiId": target.api_id, "Stage": target.stage},
                    {name: (value, "Milliseconds" if name.endswith("Latency") else "Count")
                     for name, value in values.items()})

    def _source_arn(self, target: WsTarget, route_key: str) -> str:
        return f"arn:aws:execute-api:{self.region}:{self.account_id}:{target.api_id}/{target.stage}/{route_key}"

    def _allowed(self, request: HttpRequest, action: str, resource: str) -> bool:
        """A caller signed for ``execute-api`` and allowed ``action`` on ``resource``."""
        if self.guard is None:
            return True
        verdict = self.guard.execute_api_caller({k.lower(): v for k, v in request.headers}, request.query,
                                                action, resource, self.region)
        if verdict.denial:
            log.info("websocket: %s", verdict.denial)
        return verdict.allowed

    def _management_refusal(self, request: HttpRequest, resource: str) -> HttpResponse | None:
        """@connections takes callers signed for execute-api and allowed ``execute-api:ManageConnections``;
        refusals as API Gateway answers them to an SDK (AccessDenied with IAM's message for a caller
        no policy allows, as aws/aws-cdk#18410 shows one)."""
        if self.guard is None:
            return None
        verdict = self.guard.execute_api_caller({k.lower(): v for k, v in request.headers}, request.query,
                                                "execute-api:ManageConnections", resource, self.region)
        if verdict.outcome == "unsigned":
            return _error(403, "ForbiddenException", "Missing Authentication Token")
        if verdict.outcome == "unknown":
            return _error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        if verdict.outcome == "denied":
            log.info("websocket: %s", verdict.denial)
            return HttpResponse.json(403, {"Message": verdict.denial}, [("x-amzn-ErrorType", "AccessDeniedException")])
        return None

    def _invoke(self, target: WsTarget, route: WsRoute, event: dict[str, Any]) -> tuple[str, Any]:
        """(outcome, payload) of the route's function, invoked as API Gateway invokes it: ``ok``,
        ``error`` (a function error, or no function API Gateway may invoke) or ``timeout`` (no answer
        within the 29 s every WebSocket integration is held to; the function runs on)."""
        if route.function_arn is None:
            log.warning("websocket: route %s has no Lambda proxy integration", route.key)
            self._metric(target, {"ExecutionError": 1})
            return "error", None
        source_arn = self._source_arn(target, route.key)
        if self.guard is not None and not self.guard.may_deliver("apigateway.amazonaws.com", route.function_arn,
                                                                 source_arn, self.account_id):
            log.warning("websocket: %s may not invoke %s", source_arn, route.function_arn)
            self._metric(target, {"ExecutionError": 1})
            return "error", None
        started = time.monotonic()
        pending = self._integrations.submit(self.invoker.invoke, route.function_arn, event)
        try:
            outcome = pending.result(timeout=self.limits.integration_s)
        except FutureTimeout:
            self._metric(target, {"IntegrationLatency": self.limits.integration_s * 1000, "IntegrationError": 1})
            return "timeout", None
        self._metric(target, {"IntegrationLatency": (time.monotonic() - started) * 1000,
                              "IntegrationError": int(outcome.function_error)})
        return ("error" if outcome.function_error else "ok"), outcome.payload

    def _context(self, target: WsTarget, connection_id: str, domain: str, route_key: str, event_type: str,
                 connected_at: float, source_ip: str, user_agent: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        request_id = base64.b64encode(uuid.uuid4().bytes[:10]).decode()
        return {"routeKey": route_key, "eventType": event_type, "extendedRequestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"), "messageDirection": "IN",
                "stage": target.stage, "connectedAt": int(connected_at * 1000),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "identity": {"sourceIp": source_ip, "userAgent": user_agent}, "requestId": request_id,
                "domainName": domain, "connectionId": connection_id, "apiId": target.api_id}

    # --- a connection ----------------------------------------------------------------------------

    def upgrade(self, request: HttpRequest, target: WsTarget, sock: socket.socket) -> HttpResponse | None:
        """Serve one upgrade request: the answer to send when the connection is refused, or None once
        a connection was taken, served and closed. Frames are read from ``sock`` itself: a client
        sends none before the handshake's answer (RFC 6455, 4.1), so nothing waits in a buffer."""
        routes = self.routes(target)
        if routes is None or target.path != "/":
            return HttpResponse.json(403, {"message": "Forbidden"})
        # The gateway has parsed the HTTP request: one protocol object checks the handshake and
        # builds its answer, another (already open) reads and writes the frames that follow.
        handshake = ServerProtocol(logger=_PROTOCOL_LOG).accept(Request(request.path, Headers(request.headers)))
        protocol = ServerProtocol(state=State.OPEN, max_size=(MAX_MESSAGE_BYTES, MAX_FRAME_BYTES), logger=_PROTOCOL_LOG)
        if handshake.status_code != 101:
            self._metric(target, {"ClientError": 1})
            return HttpResponse(handshake.status_code, handshake.body, list(handshake.headers.raw_items()))
        # The API's own name, whatever name the client used locally: functions build the
        # @connections URL from it, and reach it as on AWS (the gateway's HTTPS port).
        domain = f"{target.api_id}.execute-api.{self.region}.amazonaws.com"
        connection = _Connection(new_connection_id(), target.api_id, target.stage, domain, sock, protocol,
                                 request.source_ip, request.header("User-Agent") or "")
        refusal, headers = self._connect(request, target, routes, connection)
        if refusal is not None:
            self._metric(target, {"ClientError": 1})
            return refusal
        for name, value in headers.items():  # what $connect answered (Sec-WebSocket-Protocol, say) goes to the client
            if name.lower() not in _HANDSHAKE_HEADERS:
                handshake.headers[name] = value
        self._metric(target, {"ConnectCount": 1})
        connection.last_active = time.time()  # the idle clock starts with the connection, not before $connect ran
        # Writes are bounded (a client that stops reading fails its connection, not its senders);
        # the reader waits with select, never with the socket's timeout.
        sock.settimeout(WRITE_TIMEOUT_S)
        try:
            with connection.lock:
                sock.sendall(handshake.serialize())
            with self._connections_lock:  # open for @connections once the client has the handshake
                self.connections[connection.connection_id] = connection
            self._serve(target, connection)
        except Exception:  # after the handshake the socket speaks WebSocket: never an HTTP answer
            log.exception("websocket: connection %s failed", connection.connection_id)
        finally:
            with self._connections_lock:
                self.connections.pop(connection.connection_id, None)
            _shut(sock)
            self._disconnect(target, connection)
        return None

    def _connect(self, request: HttpRequest, target: WsTarget, routes: dict[str, WsRoute],
                 connection: _Connection) -> tuple[HttpResponse | None, dict[str, str]]:
        """(the refusal, None when taken; the headers $connect answered)."""
        route = routes.get("$connect")
        if route is None:
            return None, {}
        if route.authorization_type == "AWS_IAM" and not self._allowed(
                request, "execute-api:Invoke", self._source_arn(target, "$connect")):
            return HttpResponse.json(403, {"message": "Forbidden"}), {}
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        forwarded = [("Host", connection.domain), ("X-Forwarded-For", connection.source_ip), ("X-Forwarded-Port", "443"),
                     ("X-Forwarded-Proto", "https")]
        for key, value in [(k, v) for k, v in request.headers if k.lower() != "host"] + forwarded:
            headers[key] = value
            multi_headers.setdefault(key, []).append(value)
        query: dict[str, str] = {}
        multi_query: dict[str, list[str]] = {}
        for key, value in parse_qsl(request.query, keep_blank_values=True):
            query[key] = value
            multi_query.setdefault(key, []).append(value)
        event: dict[str, Any] = {
            "headers": headers, "multiValueHeaders": multi_headers, "isBase64Encoded": False,
            "requestContext": self._context(target, connection.connection_id, connection.domain, "$connect", "CONNECT",
                                            connection.connected_at, connection.source_ip, connection.user_agent)}
        if query:
            event["queryStringParameters"], event["multiValueQueryStringParameters"] = query, multi_query
        outcome, payload = self._invoke(target, route, event)
        if outcome == "timeout":
            return HttpResponse.json(504, {"message": "Endpoint request timed out"}), {}
        if outcome != "ok":
            return HttpResponse.json(500, {"message": "Internal server error"}), {}
        status = payload.get("statusCode", 200) if isinstance(payload, dict) else 200
        if not isinstance(status, int) or not 200 <= status < 300:
            code = status if isinstance(status, int) and 400 <= status <= 599 else 500
            body = payload.get("body") if isinstance(payload, dict) else None
            return HttpResponse(code, (body if isinstance(body, str) else "").encode(), [("Content-Type", "text/plain")]), {}
        answered = payload.get("headers") if isinstance(payload, dict) else None
        return None, {str(k): str(v) for k, v in (answered or {}).items()}

    def _serve(self, target: WsTarget, connection: _Connection) -> None:
        """Read frames until the connection closes: messages go to their routes, the limits apply."""
        protocol = connection.protocol
        fragments: list[bytes] = []
        closing_since: float | None = None
        while True:
            now = time.time()
            if protocol.state is State.CLOSING:  # our close frame is out: the client has CLOSE_TIMEOUT_S to answer
                closing_since = closing_since or now
                deadline = closing_since + CLOSE_TIMEOUT_S
                if now >= deadline:
                    return
            else:
                deadline = min(connection.last_active + self.limits.idle_s, connection.connected_at + self.limits.max_s)
                if now >= deadline:
                    with connection.lock:
                        if protocol.state is State.OPEN:
                            protocol.send_close(1001, "Going away")
                        connection.flush()
                    continue
            if not _readable(connection.sock, deadline - now):
                continue
            try:
                data = connection.sock.recv(65536)
            except TimeoutError:  # a TLS record arrived in part: wait for the rest
                continue
            except OSError:
                return
            messages: list[str] = []
            with connection.lock:
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                for event in protocol.events_received():
                    if not isinstance(event, Frame) or event.opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                        continue  # pings are answered by the protocol and do not count as activity
                    connection.last_active = time.time()
                    if event.opcode is Opcode.BINARY:
                        protocol.fail(1003, "Binary frames are not supported")
                        break
                    fragments.append(event.data)
                    if event.fin:
                        messages.append(b"".join(fragments).decode("utf-8", "replace"))
                        fragments = []
                if protocol.close_sent is not None and protocol.close_sent.code == 1009:
                    self._metric(target, {"ClientError": 1})
                try:
                    connection.flush()
                except OSError:
                    return
            for message in messages:
                self._metric(target, {"MessageCount": 1})
                self._messages.submit(self._message, target, connection, message)
            if not data or protocol.state is State.CLOSED:
                return

    def _message(self, target: WsTarget, connection: _Connection, body: str) -> None:
        try:
            routes = self.routes(target) or {}
            key = choose_route(set(routes), self._selection_expression(target), body)
            context = self._context(target, connection.connection_id, connection.domain, key or "$default", "MESSAGE",
                                    connection.connected_at, connection.source_ip, connection.user_agent)
            error = {"connectionId": connection.connection_id, "requestId": context["requestId"]}
            reply: str | None = None
            if key is None:
                self._metric(target, {"ClientError": 1})
                reply = json.dumps({"message": "Forbidden", **error})
            else:
                outcome, payload = self._invoke(target, routes[key], {
                    "requestContext": {**context, "messageId": context["requestId"]}, "body": body,
                    "isBase64Encoded": False})
                if outcome == "timeout":
                    reply = json.dumps({"message": "Endpoint request timed out", **error})
                elif outcome != "ok":
                    reply = json.dumps({"message": "Internal server error", **error})
                elif routes[key].two_way:
                    reply = _route_response(payload)
            if reply is not None:
                self.send(connection, reply.encode())
        except Exception:  # a sandbox fault must not end the connection's thread pool silently
            log.exception("websocket: message on %s failed", connection.connection_id)

    def _disconnect(self, target: WsTarget, connection: _Connection) -> None:
        routes = self.routes(target) or {}
        route = routes.get("$disconnect")
        if route is None or self._closed:
            return
        close = connection.protocol.close_rcvd or connection.protocol.close_sent
        context = self._context(target, connection.connection_id, connection.domain, "$disconnect", "DISCONNECT",
                                connection.connected_at, connection.source_ip, connection.user_agent)
        context["disconnectStatusCode"] = close.code if close else 1006
        context["disconnectReason"] = close.reason if close else ""
        try:
            self._invoke(target, route, {"headers": {"Host": connection.domain}, "requestContext": context,
                                         "isBase64Encoded": False})
        except Exception:
            log.exception("websocket: $disconnect of %s failed", connection.connection_id)

    def send(self, connection: _Connection, data: bytes) -> bool:
        """Send one message (in 32 KB frames); False when the connection is no longer open. A write
        that cannot finish within ``WRITE_TIMEOUT_S`` (a client that stopped reading) fails the
        connection: half a frame on the wire would leave it unreadable."""
        text = _utf8(data)
        chunks = [data[i:i + MAX_FRAME_BYTES] for i in range(0, len(data), MAX_FRAME_BYTES)] or [b""]
        with connection.lock:
            if connection.protocol.state is not State.OPEN:
                return False
            try:
                for i, chunk in enumerate(chunks):
                    fin = i == len(chunks) - 1
                    if i:
                        connection.protocol.send_continuation(chunk, fin=fin)
                    elif text:
                        connection.protocol.send_text(chunk, fin=fin)
                    else:
                        connection.protocol.send_binary(chunk, fin=fin)
                connection.flush()
            except (OSError, InvalidState):
                _shut(connection.sock)
                return False
        return True

    # --- the management API ------------------------------------------------------------------

    def manage(self, request: HttpRequest, target: WsTarget) -> HttpResponse:
        """``@connections/<id>``: POST sends the body, GET describes the connection, DELETE closes it."""
        found = _MANAGEMENT_PATH.match(target.path)
        if found is None or request.method not in ("POST", "GET", "DELETE"):
            return _error(404, "NotFoundException", "Not Found")
        connection_id = found["id"]
        resource = (f"arn:aws:execute-api:{self.region}:{self.account_id}:{target.api_id}/{target.stage}/"
                    f"{request.method}/@connections/{connection_id}")
        refusal = self._management_refusal(request, resource)
        if refusal is not None:
            return refusal
        with self._connections_lock:
            connection = self.connections.get(connection_id)
        if connection is None or (connection.api_id, connection.stage) != (target.api_id, target.stage):
            return _error(410, "GoneException", None)
        if request.method == "GET":
            return HttpResponse.json(200, {
                "connectedAt": _iso(connection.connected_at), "lastActiveAt": _iso(connection.last_active),
                "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent}})
        if request.method == "DELETE":
            with connection.lock:
                if connection.protocol.state is State.OPEN:
                    connection.protocol.send_close(1000, "")
                try:
                    connection.flush()
                except OSError:
                    pass
            return HttpResponse(204)
        if len(request.body) > MAX_MESSAGE_BYTES:
            return _error(413, "PayloadTooLargeException", "Message too long")
        if not self.send(connection, request.body):
            return _error(410, "GoneException", None)
        return HttpResponse(200)


def _route_response(payload: Any) -> str | None:
    """What a two-way route sends back from a Lambda proxy integration: the response's ``body``
    (nothing without one)."""
    if isinstance(payload, dict) and "statusCode" in payload:
        body = payload.get("body")
        return body if isinstance(body, str) else None
    return payload if isinstance(payload, str) else json.dumps(payload)


def _readable(sock: socket.socket, timeout: float) -> bool:
    """Whether ``sock`` has bytes to read within ``timeout`` (TLS records already decrypted count)."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    try:
        return bool(select.select([sock], [], [], max(0.0, timeout))[0])
    except (OSError, ValueError):  # closed under us: the next read says so
        return True


def _shut(sock: socket.socket) -> None:
    """End the connection both ways (the reader's next read returns at once)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error(status: int, code: str, message: str | None) -> HttpResponse:
    return HttpResponse.json(status, {"message": message}, [("x-amzn-ErrorType", code)])
