"""The sandbox's long-running process: moto plus everything that makes the stack run on it.

``Sandbox.start()``:
1. detaches moto's inline event-source-mapping delivery (see ``detach_inline_delivery``);
2. starts moto's server on 127.0.0.1 (a free port unless given) behind the IAM gate
   (``iam.gate``: requests signed by role sessions and users are authorised as AWS would);
3. configures moto (``MOTO_PORT`` for Step Functions' Lambda calls, AWS-managed IAM
   policies, Step Functions executing definitions) and installs its patches of moto (``patches``, ``services``), with IAM checks
   on service-to-service deliveries;
4. installs the Lambda runner (functions run in subprocess workers as their execution
   role, with the stack's Redis/Aurora endpoint names mapped to the local servers);
5. starts the pollers, the EventBridge scheduler, the TTL sweeper, the alarm evaluator and the gateway: one HTTP port serving the
   REST and HTTP APIs (``/apis/<api>/...``, see ``apigw``) and the control endpoints
   ``GET /_sandbox/health`` (with the garbage collector's pauses, ``gcpolicy``), ``GET /_sandbox/pollers``, ``GET /_sandbox/iam`` (the IAM report),
   ``GET /_sandbox/network`` (the paths the functions' connections took or were refused, ``network``),
   ``GET /_sandbox/requests`` (requests served, by service and operation),
   ``GET /_sandbox/retries`` (the SDK retries among them),
   ``GET /_sandbox/regions`` (the regions requests were signed for, the sandbox's own included),
   ``GET|POST /_sandbox/faults`` (crash or slow a function's next invocations, or those whose event
   contains a marker; answer requests with an
   AWS error such as throttling), ``GET|POST /_sandbox/partners/<name>`` (HTTPS stand-ins of a stack's partners, ``partner_api``),
   ``GET|POST /_sandbox/replication`` (global tables: ``{region, paused, delay_s}``, see
   ``globaltables``), ``GET|POST /_sandbox/clock`` (move the services' clock forward, ``clock``),
   ``GET|POST /_sandbox/services`` also starts the Neptune stand-in (``neptune``) once a stack has a
   Neptune cluster; ``GET|POST /_sandbox/websockets`` (open WebSocket connections; POST shortens the idle and
   connection-duration limits, ``{idle_s, max_s}``, ``websocket``), ``GET|POST /_sandbox/alarms`` (each metric alarm's state, values, changes and actions; POST
   evaluates now, ``alarms``), ``GET|POST /_sandbox/services``
   (POST: match Redis/PostgreSQL to the deployed stack), ``POST /_sandbox/rules/<name>/fire``.

With ``services_dir`` it first starts Redis and PostgreSQL (``backing.BackingServices``).

``python -m tapharness.sandbox serve ...`` runs one in the foreground until SIGTERM; ``up``
starts that as a detached process.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from moto.awslambda.models import LambdaBackend, LambdaFunction
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.config import default_user_config
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from tapharness.partner_api import PartnerApi
from tapharness.sandbox import (
    clock,
    globaltables,
    metrics,
    models,
    neptune,
    network,
    patches,
    snshttp,
)
from tapharness.sandbox.adapter import EndpointSpec
from tapharness.sandbox.alarms import AlarmEvaluator
from tapharness.sandbox.apigw import FrontDoor, HttpBackends, HttpRequest, HttpResponse
from tapharness.sandbox.backing import BackingServices
from tapharness.sandbox.clients import AwsClients
from tapharness.sandbox.endpoints import EndpointMap
from tapharness.sandbox.gcpolicy import YoungOnlyCollector
from tapharness.sandbox.iam import wire
from tapharness.sandbox.iam.authorizer import Authorizer
from tapharness.sandbox.iam.gate import IamGate
from tapharness.sandbox.iam.report import build_report
from tapharness.sandbox.iam.sessions import RoleSessions, ServiceGuard
from tapharness.sandbox.lambda_runner import NETWORK_LOG, LambdaRunner, LocalLambda
from tapharness.sandbox.pollers import POLLER_ERRORS, PollerManager, PollerSettings
from tapharness.sandbox.scheduler import Scheduler
from tapharness.sandbox.state import REGION, local_url
from tapharness.sandbox.ttl import TtlSweeper
from tapharness.sandbox.web import Outbound

log = logging.getLogger("tapharness.sandbox.server")
# Connections the gateway serves at once. A keep-alive connection, and a WebSocket connection,
# holds its thread while it is open, so this bounds the clients served side by side (more wait
# for a free thread, and with 128 clients against 64 threads they timed out); the threads mostly
# wait on sockets and function workers, not on the interpreter.
GATEWAY_WORKERS = 1024
_ORIGINAL_CREATE_ESM = LambdaBackend.create_event_source_mapping
_EXECUTE_API_HOST = re.compile(r"[a-z0-9]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com")
# The names functions reach the gateway's HTTPS port by (the worker's resolver matches the pattern).
EXECUTE_API_HOSTS = "*.execute-api.*.amazonaws.com"


def configure_moto(port: int) -> None:
    """Process-wide moto settings the sandbox relies on."""
    os.environ["MOTO_PORT"] = str(port)
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    default_user_config["stepfunctions"]["execute_state_machine"] = True


def _detached_create_event_source_mapping(self: LambdaBackend, spec: dict[str, Any]) -> Any:
    esm = _ORIGINAL_CREATE_ESM(self, spec)
    from moto.dynamodb.models import dynamodb_backends
    from moto.kinesis.models import kinesis_backends
    from moto.sqs.models import sqs_backends

    owners: list[dict[str, Any]] = [q.lambda_event_source_mappings
                                    for q in sqs_backends[self.account_id][self.region_name].queues.values()]
    owners += [t.lambda_event_source_mappings for t in dynamodb_backends[self.account_id][self.region_name].tables.values()]
    owners += [s.lambda_event_source_mappings for s in kinesis_backends[self.account_id][self.region_name].streams.values()]
    for mappings in owners:
        for key in [k for k, v in mappings.items() if v is esm]:
            del mappings[key]
    return esm


def detach_inline_delivery() -> None:
    """Stop moto delivering to mappings inside PutRecord/SendMessage/PutItem.

    moto registers a new mapping on its queue, table or stream and then invokes the function
    once per record inside the producing call (and for DynamoDB, drops the stream records it
    delivered; for Kinesis, keeps one mapping per stream). After this patch the mapping exists
    only in the Lambda API, where the sandbox's pollers read it; stream records stay readable.
    """
    LambdaBackend.create_event_source_mapping = _detached_create_event_source_mapping  # type: ignore[method-assign]


class _MotoHandler(MotoRequestHandler):
    """moto's request handler on connections kept open, as AWS's endpoints keep them.

    werkzeug's development server answers every request with ``Connection: close``: each AWS call
    of a function or poller paid a new connection and a new server thread (a tenth of the
    server's CPU under load). Here a request's body is read whole before the application runs, so
    the next request on the connection starts where this one ended whatever the application read,
    and every answer that has a body carries its length.
    """

    # Headers and body go out in separate writes: with Nagle's algorithm the second waits for
    # the client's delayed ACK of the first.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # werkzeug's line per request is formatted before its logger's level is asked

    def run_wsgi(self) -> None:
        # (http.server itself answers "Expect: 100-continue" on HTTP/1.1 connections.)
        environ = self.make_environ()
        chunks: list[bytes] = []
        answer: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [status, headers]
            return chunks.append

        try:
            if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's reader ends at the last chunk
                body = environ["wsgi.input"].read()
            else:
                body = self.rfile.read(int(environ.get("CONTENT_LENGTH") or 0))
        except (ValueError, OSError) as exc:  # a malformed length or chunk: where the next request starts is unknown
            log.warning("unreadable request body on %s %s: %s", self.command, self.path, exc)
            answer[:] = ["400 Bad Request", [("Content-Type", "text/plain")]]
            chunks.append(b"Bad Request")
            self.close_connection = True
        else:
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            try:
                result = self.server.app(environ, start_response)  # type: ignore[attr-defined]
                try:
                    chunks.extend(result)
                finally:
                    if hasattr(result, "close"):
                        result.close()
            except Exception:
                log.exception("moto failed on %s %s", self.command, self.path)
                answer[:] = ["500 Internal Server Error", [("Content-Type", "text/plain")]]
                chunks[:] = [b"Internal Server Error"]
                self.close_connection = True
        self._send(answer[0], answer[1], b"".join(chunks))

    def _send(self, status: str, headers: list[tuple[str, str]], payload: bytes) -> None:
        """The answer with its length (the application's for a HEAD, none for 1xx/204/304), no body
        where HTTP allows none."""
        code, _, reason = status.partition(" ")
        bodiless = self.command == "HEAD" or int(code) in (204, 304) or int(code) < 200
        self.send_response(int(code), reason)
        given_length = False
        for key, value in headers:
            lowered = key.lower()
            if lowered in ("connection", "transfer-encoding"):
                continue
            given_length = given_length or lowered == "content-length"
            self.send_header(key, value)
        if not given_length and not bodiless:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if not bodiless and payload:
            self.wfile.write(payload)
        self.wfile.flush()


class GatedMotoServer(ThreadedMotoServer):
    """moto's threaded server with the IAM gate in front of its WSGI application."""

    def __init__(self, authorizer: Authorizer, ip_address: str, port: int) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self.authorizer = authorizer

    def _server_entry(self) -> None:
        self.gate = IamGate(DomainDispatcherApplication(create_backend_app), self.authorizer, REGION)
        self._server = make_server(self._ip_address, self._port, self.gate, True, request_handler=_MotoHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


class _GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _GatewayServer

    def log_message(self, format: str, *args: Any) -> None:
        log.info("gateway %s %s", self.address_string(), format % args)

    def _request(self) -> HttpRequest:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        return HttpRequest(self.command, unquote(parts.path), parts.query, list(self.headers.items()), body,
                           self.client_address[0])

    def _reply(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for key, value in response.headers:
            if key.lower() not in ("content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _handle(self) -> None:
        if self.command == "GET" and (self.headers.get("Upgrade") or "").lower() == "websocket":
            self._upgrade()
            return
        request = self._request()
        if request.path.startswith("/_sandbox/"):
            try:
                response = self.server.sandbox.control(request)
            except Exception as exc:  # a fault of the sandbox's own is an answer, never a dropped connection
                log.exception("gateway: control %s %s failed", request.method, request.path)
                response = HttpResponse.json(500, {"error": f"{type(exc).__name__}: {exc}"})
        else:
            response = self.server.sandbox.front_door.handle(request)
        self._reply(response)

    def _upgrade(self) -> None:
        """A WebSocket connection: the thread serves it until it closes; a refusal is answered over HTTP."""
        parts = urlsplit(self.path)
        request = HttpRequest(self.command, unquote(parts.path), parts.query, list(self.headers.items()), b"",
                              self.client_address[0])
        self.close_connection = True
        if isinstance(self.connection, ssl.SSLSocket):  # one TLS object must not be read and written at once
            self._reply(HttpResponse.json(400, {"message": "the sandbox serves WebSocket connections on its plain port"}))
            return
        try:
            response = self.server.sandbox.front_door.upgrade(request, self.connection)
        except Exception:  # a sandbox fault refuses the upgrade as API Gateway's own errors do
            log.exception("gateway: WebSocket upgrade of %s failed", self.path)
            response = HttpResponse.json(500, {"message": "Internal server error"})
        if response is not None:
            self._reply(response)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _GatewayServer(ThreadingHTTPServer):
    """The gateway's HTTP server: connections are served by a bounded pool of threads
    (``GATEWAY_WORKERS``; a keep-alive connection holds one while it is open), not a new
    thread each."""

    daemon_threads = True
    # Connections waiting to be accepted: socketserver's default of 5 resets a burst of clients
    # (50 at once, say) that API Gateway would take.
    request_queue_size = 1024

    def __init__(self, port: int, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._pool = ThreadPoolExecutor(max_workers=GATEWAY_WORKERS, thread_name_prefix="gateway")
        super().__init__(("127.0.0.1", port), _GatewayHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._pool.submit(self.process_request_thread, request, client_address)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class _TlsGatewayServer(_GatewayServer):
    """The gateway over HTTPS for the names functions call it by on AWS: an API's
    ``<api>.execute-api.<region>.amazonaws.com`` (the @connections management API, say). Each name
    gets a certificate from the sandbox's CA when a client first asks for it (SNI)."""

    def __init__(self, port: int, sandbox: Sandbox, ca: Any) -> None:
        self.ca = ca
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._issuing = threading.Lock()
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(*ca.issue(["gateway.sandbox.test"]))
        self.tls.sni_callback = self._for_name
        super().__init__(port, sandbox)

    def _for_name(self, sock: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        if not name or not _EXECUTE_API_HOST.fullmatch(name):
            return
        with self._issuing:
            context = self._contexts.get(name)
            if context is None:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(*self.ca.issue([name]))
                self._contexts[name] = context
        sock.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the connection's own thread: a stalled client never blocks accept().
        request.settimeout(30)
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        wrapped.settimeout(None)
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()  # the server closes the plain socket it was given, which TLS took over


@dataclass
class Sandbox:
    """Everything the sandbox runs in-process, started and stopped together."""

    cache_dir: Path
    moto_port: int = 0
    gateway_port: int = 0
    region: str = REGION
    redis_port: int | None = None
    postgres_port: int | None = None
    worker_env: dict[str, str] = field(default_factory=dict)
    poller_settings: PollerSettings = field(default_factory=PollerSettings)
    run_pollers: bool = True
    run_scheduler: bool = True
    services_dir: Path | None = None

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.gc = YoungOnlyCollector()
        self.gc.start()
        self.backing: BackingServices | None = None
        if self.services_dir is not None:
            self.backing = BackingServices(self.services_dir)
            self.backing.start()
            self.worker_env = {**self.worker_env, **self.backing.worker_env}
            info = self.backing.info()
            self.redis_port, self.postgres_port = info["redis"]["port"], info["postgres"]["port"]
        self.authorizer = Authorizer()
        threading.Thread(target=wire.warm, name="iam-index", daemon=True).start()
        detach_inline_delivery()
        self.moto = GatedMotoServer(self.authorizer, "127.0.0.1", self.moto_port)
        self.moto.start()
        self.moto_port = self.moto.get_host_and_port()[1]
        configure_moto(self.moto_port)
        self.clients = AwsClients(self.endpoint_url, self.region)
        self.sessions = RoleSessions(self.clients, self.authorizer)
        self.guard = ServiceGuard(self.authorizer, self.sessions)
        patches.install(self.guard)
        self.replication = globaltables.start(DEFAULT_ACCOUNT_ID)
        self.partners: dict[str, PartnerApi] = {}
        self.partner_urls: dict[str, str] = {}
        self.neptune_gate: neptune.NeptuneGate | None = None
        self.endpoints = EndpointMap(self.clients, self.redis_port, self.postgres_port,
                                     redis_cluster_port=self.backing.info()["redis_cluster"]["port"] if self.backing else None)
        self.networks: dict[str, network.NetworkView] = {}
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        (self.cache_dir / NETWORK_LOG).unlink(missing_ok=True)  # the report is this run's
        self.runner = LambdaRunner(self.cache_dir, self.endpoint_url, self.endpoints, self.worker_env,
                                   credentials=self._function_credentials, may_write_logs=self._function_may_log,
                                   network=self._function_network)
        self.runner.install()
        lambda_service = LocalLambda(self.runner)
        self.pollers = PollerManager(self.clients, self.poller_settings, as_role=self._mapping_clients,
                                     invoker=lambda_service)
        self.scheduler = Scheduler(self.clients, self.guard)
        self.ttl = TtlSweeper()
        self.ttl.start()
        self.alarms = AlarmEvaluator(self._publish_alarm, float(os.environ.get("TAPSTACK_ALARM_TICK_S", "10")),
                                     metrics.Sampler())
        self.alarms.start()
        outbound = Outbound(lambda: self.endpoints(DEFAULT_ACCOUNT_ID, self.region),
                            str(self.backing.ca.bundle_file) if self.backing is not None else None)
        snshttp.DELIVERIES.send = outbound.post
        self.front_door = FrontDoor(self.clients, self.guard, invoker=lambda_service, backends=HttpBackends(outbound))
        self.gateway = _GatewayServer(self.gateway_port, self)
        self.gateway_port = self.gateway.server_address[1]
        threading.Thread(target=self.gateway.serve_forever, kwargs={"poll_interval": 0.1}, name="gateway",
                         daemon=True).start()
        self.tls_gateway: _TlsGatewayServer | None = None
        if self.backing is not None:
            self.tls_gateway = _TlsGatewayServer(0, self, self.backing.ca)
            self.endpoints.add(EXECUTE_API_HOSTS, f"127.0.0.1:{self.tls_gateway.server_address[1]}",
                               network.Target("internet", EXECUTE_API_HOSTS, 443))
            threading.Thread(target=self.tls_gateway.serve_forever, kwargs={"poll_interval": 0.1},
                             name="gateway-tls", daemon=True).start()
        if self.run_pollers:
            self.pollers.start()
        if self.run_scheduler:
            self.scheduler.start()

    def stop(self) -> None:
        for gateway in filter(None, (self.gateway, self.tls_gateway)):
            gateway.shutdown()
            gateway.server_close()
        self.front_door.websockets.close()
        snshttp.DELIVERIES.stop()
        if self.neptune_gate is not None:
            self.neptune_gate.stop()
        self.scheduler.stop()
        self.ttl.stop()
        self.alarms.stop()
        self.replication.stop()
        for partner in self.partners.values():
            partner.stop()
        self.pollers.stop()
        self.runner.uninstall()
        self.moto.stop()
        if self.backing is not None:
            self.backing.stop()
        models.ENDPOINTS.clear()
        self.gc.stop()

    # --- principals of the services the sandbox plays ---------------------------------

    def _function_credentials(self, fn: LambdaFunction) -> dict[str, str]:
        """Lambda runs a function as its execution role, in a session named after the function."""
        return self.sessions.credentials(fn.role, fn.function_name, "lambda.amazonaws.com").env()

    def _function_network(self, fn: LambdaFunction) -> dict[str, Any]:
        """The function's reachability verdicts, from its region's network as the stack built it."""
        view = self.networks.get(fn.region)
        if view is None:
            view = self.networks.setdefault(fn.region, network.NetworkView(
                AwsClients(self.endpoint_url, fn.region).client("ec2")))
        return view.verdicts(fn.vpc_config, self.endpoints.targets())

    def _publish_alarm(self, topic: str, alarm_arn: str, account: str, subject: str, body: str) -> dict[str, Any]:
        """An alarm action: CloudWatch publishes to the topic if its policy (and key policy) let it."""
        if topic.split(":")[2] != "sns":
            return {"error": f"the sandbox runs SNS alarm actions only, not {topic}"}
        if not self.guard.may_deliver("cloudwatch.amazonaws.com", topic, alarm_arn, account):
            return {"error": f"the policy of {topic} does not let cloudwatch.amazonaws.com publish for {alarm_arn}"}
        try:
            return {"messageId": self.clients.client("sns").publish(TopicArn=topic, Subject=subject[:100],
                                                                     Message=body)["MessageId"]}
        except POLLER_ERRORS as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _function_may_log(self, fn: LambdaFunction, stream: str) -> bool:
        """Lambda writes a function's logs with its role: no logs:PutLogEvents, no logs."""
        credentials = self.sessions.credentials(fn.role, fn.function_name, "lambda.amazonaws.com")
        principal = self.authorizer.principal_for_key(credentials.access_key_id)
        if principal is None:
            return True
        stream_arn = f"arn:aws:logs:{fn.region}:{fn.account_id}:log-group:{fn.logs_group_name}:log-stream:{stream}"
        return self.authorizer.allows(principal, ("logs:CreateLogStream", "logs:PutLogEvents"), stream_arn,
                                      "lambda.logs", fn.region)

    def _run_sql(self, sql: str) -> list[list[Any]]:
        """Rows of a query on the stack's database (the master user's), for the model endpoints."""
        if self.backing is None:
            raise models.ModelError("this sandbox runs no database")
        return self.backing.run_sql(sql)

    def _mapping_clients(self, role_arn: str, function_name: str) -> AwsClients:
        return self.sessions.clients_for(role_arn, function_name, "lambda.amazonaws.com")

    @property
    def endpoint_url(self) -> str:
        return local_url(self.moto_port)

    @property
    def gateway_url(self) -> str:
        return local_url(self.gateway_port)

    def control(self, request: HttpRequest) -> HttpResponse:
        """The ``/_sandbox/`` endpoints: health, pollers, backing services, firing a schedule."""
        parts = [p for p in request.path.split("/") if p][1:]
        if request.method == "GET" and parts == ["health"]:
            return HttpResponse.json(200, {"status": "ok", "endpoint_url": self.endpoint_url,
                                           "lambda_workers": self.runner.worker_count(),
                                           "max_environments": self.runner.max_environments, "gc": self.gc.snapshot()})
        if request.method == "GET" and parts == ["pollers"]:
            return HttpResponse.json(200, self.pollers.snapshot())
        if request.method == "GET" and parts == ["requests"]:
            return HttpResponse.json(200, dict(self.moto.gate.served))
        if request.method == "GET" and parts == ["retries"]:
            return HttpResponse.json(200, dict(self.moto.gate.retried))
        if request.method == "GET" and parts == ["regions"]:
            return HttpResponse.json(200, sorted(self.moto.gate.regions | {self.region}))
        if parts == ["faults"]:
            if request.method == "POST":
                try:
                    settings = json.loads(request.body or b"{}")
                    if "crash" in settings:
                        crash = settings["crash"]
                        self.runner.inject_crashes(str(crash["function"]), int(crash.get("count", 1)),
                                                   float(crash.get("after_s", 0.0)), str(crash.get("matching", "")))
                    if "delay" in settings:
                        delay = settings["delay"]
                        self.runner.inject_delays(str(delay["function"]), int(delay.get("count", 1)),
                                                  float(delay["seconds"]), str(delay.get("matching", "")))
                    if "error" in settings:
                        error = settings["error"]
                        self.moto.gate.inject(str(error["request"]), str(error["code"]), int(error.get("count", 1)),
                                              float(error.get("share", 1.0)))
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    return HttpResponse.json(400, {"error": "expected {crash: {function, count, after_s, matching}}, "
                                                            "{delay: {function, seconds, count, matching}} or "
                                                            f"{{error: {{request, code, count, share}}}}: {exc!r}"})
            return HttpResponse.json(200, {"crashed": dict(self.runner.crashed), "delayed": dict(self.runner.delayed),
                                           "injected": dict(self.moto.gate.injected)})
        if parts == ["websockets"]:
            doors = self.front_door.websockets
            if request.method == "POST":
                try:
                    doors.limits = replace(doors.limits, **{k: float(v) for k, v in json.loads(request.body or b"{}").items()})
                except (ValueError, TypeError) as exc:
                    return HttpResponse.json(400, {"error": f"expected {{idle_s, max_s, integration_s}}: {exc}"})
            return HttpResponse.json(200, doors.status())
        if parts == ["clock"]:
            if request.method == "POST":
                try:
                    clock.advance(float(json.loads(request.body or b"{}")["advance_s"]))
                except (ValueError, TypeError, KeyError) as exc:
                    return HttpResponse.json(400, {"error": f"expected {{advance_s: seconds >= 0}}: {exc}"})
            return HttpResponse.json(200, clock.status())
        if parts == ["alarms"]:
            if request.method == "POST":  # evaluate now, on the sandbox's clock, instead of at the next tick
                self.alarms.evaluate_all(force=True)
            return HttpResponse.json(200, {"alarms": self.alarms.status()})
        if parts[:1] == ["partners"]:
            return self._partner(request, parts[1:])
        if parts == ["replication"]:
            if request.method == "POST":
                try:
                    settings = json.loads(request.body or b"{}")
                    self.replication.control(settings.get("region"), settings.get("paused"), settings.get("delay_s"))
                except (ValueError, TypeError, AttributeError) as exc:
                    return HttpResponse.json(400, {"error": f"expected {{region, paused, delay_s}}: {exc}"})
            return HttpResponse.json(200, self.replication.status())
        if parts == ["models"]:
            if request.method == "POST":
                try:
                    for name, raw in json.loads(request.body or b"{}").items():
                        models.ENDPOINTS.register(name, models.ModelEndpoint(EndpointSpec.from_yaml(raw), self._run_sql))
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    return HttpResponse.json(400, {"error": f"expected {{endpoint name: model endpoint spec}}: {exc!r}"})
            return HttpResponse.json(200, models.ENDPOINTS.status())
        if request.method == "GET" and parts == ["network"]:
            return HttpResponse.json(200, network.report(self.cache_dir / NETWORK_LOG))
        if request.method == "GET" and parts == ["iam"]:
            return HttpResponse.json(200, build_report(self.authorizer))
        if parts == ["services"] and self.backing is not None:
            if request.method == "POST":
                configured = self.backing.configure(self.clients)
                return HttpResponse.json(200, {**configured, "neptune": self._configure_neptune()})
            return HttpResponse.json(200, {**self.backing.info(), "neptune": self._neptune_info()})
        if request.method == "POST" and len(parts) == 3 and parts[0] == "rules" and parts[2] == "fire":
            try:
                return HttpResponse.json(200, {"fired": self.scheduler.fire(parts[1])})
            except POLLER_ERRORS as exc:  # the caller gets the reason instead of a dropped connection
                return HttpResponse.json(400, {"error": f"{type(exc).__name__}: {exc}"})
        return HttpResponse.json(404, {"error": f"no control endpoint {request.method} {request.path}"})


    def _partner(self, request: HttpRequest, parts: list[str]) -> HttpResponse:
        """``GET /_sandbox/partners`` (name -> URL); ``POST /_sandbox/partners/<name>`` starts the stand-in
        (if needed) and sets its behaviour; ``GET /_sandbox/partners/<name>`` what it received (and its calls and connections)."""
        if not parts:
            return HttpResponse.json(200, dict(self.partner_urls))
        name = parts[0]
        if request.method == "POST":
            try:
                behaviour = json.loads(request.body or b"{}")
                if name not in self.partners:
                    self._start_partner(name)
                self.partners[name].behave(**behaviour)
            except (ValueError, TypeError) as exc:
                return HttpResponse.json(400, {"error": f"expected {{failure_rate, fail_next, status, latency_s, confirms}}: {exc}"})
        partner = self.partners.get(name)
        if partner is None:
            return HttpResponse.json(404, {"error": f"no partner API {name!r}"})
        return HttpResponse.json(200, {"url": self.partner_urls[name], "calls": partner.calls,
                                       "connections": partner.connections, "received": [
            {"path": r.path, "headers": r.headers, "body": r.body} for r in partner.received]})

    def _start_partner(self, name: str) -> None:
        """A partner's stand-in. With the sandbox's CA (backing services) it is what the stack would
        be given on AWS, an HTTPS host on the internet (``https://<name>.partner.sandbox.test``,
        RFC 6761's reserved name): workers resolve the name to the stand-in, verify its certificate,
        and reach it only by a path to the internet (``network``)."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
            raise ValueError(f"a partner's name is a DNS label, not {name!r}")
        if self.backing is None:
            self.partners[name] = PartnerApi(confirm=self._confirm_subscription).start()
            self.partner_urls[name] = self.partners[name].url
            return
        host = f"{name}.partner.sandbox.test"
        self.partners[name] = PartnerApi(tls=self.backing.ca.issue([host]), confirm=self._confirm_subscription).start()
        port = self.partners[name].url.rsplit(":", 1)[1]
        self.endpoints.add(host, f"127.0.0.1:{port}", network.Target("internet", host, 443))
        self.partner_urls[name] = f"https://{host}"


    def _configure_neptune(self) -> dict[str, Any] | None:
        """The stack's Neptune clusters served: the Gremlin Server and the gate started the first time
        one is seen, and the gate told every cluster's names (``neptune``)."""
        assert self.backing is not None

        def read_clusters() -> dict[str, neptune.GraphCluster]:
            return neptune.neptune_clusters(self.clients.client("rds"), DEFAULT_ACCOUNT_ID)

        if self.neptune_gate is None:
            if not read_clusters():
                return self._neptune_info()
            gremlin = self.backing.start_gremlin()
            self.neptune_gate = neptune.NeptuneGate(gremlin.port, self.guard, self.backing.ca.issue, read_clusters)
            self.endpoints.serve_neptune(self.neptune_gate.port)
        self.neptune_gate.refresh()
        return self._neptune_info()

    def _neptune_info(self) -> dict[str, Any] | None:
        if self.neptune_gate is None or self.backing is None or self.backing.gremlin is None:
            return None
        return {"gate_port": self.neptune_gate.port, "gremlin_port": self.backing.gremlin.port,
                "endpoints": sorted(self.neptune_gate.clusters), "refused": self.neptune_gate.refused}

    def _confirm_subscription(self, subscribe_url: str) -> None:
        """What GET ``SubscribeURL`` does on AWS, for a stand-in that confirms an SNS subscription:
        ConfirmSubscription with the URL's topic and token."""
        parts = urlsplit(subscribe_url)
        query = dict(parse_qsl(parts.query))
        host = (parts.hostname or "").split(".")  # sns.<region>.amazonaws.com
        region = host[1] if len(host) > 2 and host[0] == "sns" else self.region
        try:
            AwsClients(self.endpoint_url, region).client("sns").confirm_subscription(
                TopicArn=query.get("TopicArn", ""), Token=query.get("Token", ""))
        except POLLER_ERRORS as exc:
            log.warning("partner: confirming %s failed: %s", subscribe_url, exc)


def serve(sandbox: Sandbox, ready_file: Path | None = None) -> None:
    """Run until SIGTERM/SIGINT; ``ready_file`` gets the ports as JSON once everything listens."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sandbox.start()
    if ready_file:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"moto_port": sandbox.moto_port, "gateway_port": sandbox.gateway_port,
                                   "redis_port": sandbox.redis_port, "postgres_port": sandbox.postgres_port,
                                   "pid": os.getpid()}))
        tmp.replace(ready_file)
    log.info("sandbox serving: moto %s, gateway %s", sandbox.endpoint_url, sandbox.gateway_url)
    stop.wait()
    sandbox.stop()
