"""Neptune's data plane in the sandbox: a Gremlin Server (TinkerGraph) behind a gate that does what
Neptune does before a query runs.

The stack's Neptune endpoint names (``<cluster>.cluster-<id>.<region>.neptune.amazonaws.com``,
its reader and instance names) resolve in function workers to the gate (``EndpointMap``), which:

- speaks TLS only, with a certificate from the sandbox's CA for those names (Neptune requires
  TLS: "Neptune ... only allows connections using TLS", Neptune User Guide, "Encrypting connections");
- with IAM database authentication on the cluster, takes a WebSocket handshake only when it is
  SigV4-signed for ``neptune-db`` by a caller whose identity policies allow ``neptune-db:connect``
  on ``arn:aws:neptune-db:<region>:<account>:<cluster resource id>/*`` ("Using IAM database
  authentication in Neptune"); anything else gets 403 with Neptune's JSON error
  (``AccessDeniedException``) and never reaches the graph;
- then passes the connection through, both ways, to the Gremlin Server.

Not emulated: the data-access actions (``neptune-db:ReadDataViaQuery``, ``WriteDataViaQuery``,
``DeleteDataViaQuery``; a connected caller may run any query), openCypher and SPARQL, the HTTP
Gremlin endpoint, Neptune's query limits and transactions semantics beyond TinkerGraph's. One graph
serves every cluster of the sandbox.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from socketserver import BaseRequestHandler, ThreadingTCPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tapharness.sandbox import network

if TYPE_CHECKING:
    from tapharness.sandbox.iam.sessions import ServiceGuard

log = logging.getLogger("tapharness.sandbox.neptune")

MAX_HEAD_BYTES = 16 * 1024


@dataclass(frozen=True)
class GraphCluster:
    """What the gate needs to know of a cluster its names lead to."""

    resource_id: str
    iam_auth: bool
    region: str
    account: str


def neptune_clusters(rds: Any, account: str) -> dict[str, GraphCluster]:
    """Every endpoint name of every Neptune cluster (and its instances), with the cluster behind it."""
    found: dict[str, GraphCluster] = {}
    region = rds.meta.region_name
    for cluster in rds.describe_db_clusters()["DBClusters"]:
        if cluster.get("Engine") != "neptune":
            continue
        graph = GraphCluster(cluster["DbClusterResourceId"], bool(cluster.get("IAMDatabaseAuthenticationEnabled")),
                             region, account)
        for name in filter(None, [cluster.get("Endpoint"), cluster.get("ReaderEndpoint")]):
            found[name] = graph
    for instance in rds.describe_db_instances()["DBInstances"]:
        owner = next((g for n, g in found.items() if instance.get("DBClusterIdentifier") and
                      n.startswith(f"{instance['DBClusterIdentifier'].lower()}.")), None)
        address = (instance.get("Endpoint") or {}).get("Address")
        if instance.get("Engine") == "neptune" and owner is not None and address:
            found[address] = owner
    return found


class _Handler(BaseRequestHandler):
    server: NeptuneGate

    def handle(self) -> None:
        self.server.serve(self.request)


class NeptuneGate(ThreadingTCPServer):
    """TLS and IAM in front of the Gremlin Server (see the module's docstring)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream_port: int, guard: ServiceGuard | None, issue: Any,
                 read_clusters: Callable[[], dict[str, GraphCluster]]) -> None:
        """``issue(names) -> (certificate file, key file)``: the sandbox CA's; ``read_clusters()``: the
        Neptune clusters as the RDS API describes them now (``neptune_clusters``)."""
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream_port = upstream_port
        self.guard = guard
        self.issue = issue
        self.read_clusters = read_clusters
        self.clusters: dict[str, GraphCluster] = {}
        self.tls: ssl.SSLContext | None = None
        self.refused = 0
        self._generation: int | None = None
        self._reading = threading.Lock()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="neptune-gate",
                         daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def refresh(self) -> None:
        """The clusters as they are now, read again after any change the sandbox served to RDS or the
        network (a later apply turning IAM authentication on, a cluster added or deleted), with a
        certificate for all their names."""
        if self._generation == network.generation() and self.tls is not None:
            return
        # With a view in hand, a connection does not wait for another's read; without one, it does.
        if not self._reading.acquire(blocking=self.tls is None):
            return
        try:
            generation = network.generation()
            try:
                clusters = self.read_clusters()
            except Exception:  # the RDS API failed (an injected fault, say): keep the view, try again next time
                log.exception("neptune gate: reading the clusters failed")
                return
            self._generation = generation
            if clusters and (set(clusters) != set(self.clusters) or self.tls is None):
                cert, key = self.issue(sorted(clusters))
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(cert, key)
                self.tls = context
            self.clusters = clusters
        finally:
            self._reading.release()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def serve(self, raw: socket.socket) -> None:
        self.refresh()
        if self.tls is None:
            return
        raw.settimeout(30)
        try:
            client = self.tls.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            head = _read_head(client)
            if head is None:
                return
            refusal = self._refusal(head)
            if refusal is not None:
                self.refused += 1
                client.sendall(refusal)
                return
            client.settimeout(None)
            with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10) as upstream:
                upstream.settimeout(None)
                upstream.sendall(head)
                _pipe(client, upstream)
        except OSError as exc:
            log.debug("neptune gate: connection ended: %s", exc)
        finally:
            client.close()

    def _refusal(self, head: bytes) -> bytes | None:
        """Neptune's 403 for a handshake IAM does not let through; None to pass it on."""
        request_line, _, rest = head.decode("latin-1").partition("\r\n")
        headers = {}
        for line in rest.split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        host = headers.get("host", "").rsplit(":", 1)[0].lower()
        cluster = self.clusters.get(host)
        if cluster is None:
            log.info("neptune gate: refused %s: no Neptune cluster answers to it", host or "a request without Host")
            return _forbidden(f"no Neptune cluster answers to {host or 'this request'}")
        if not cluster.iam_auth or self.guard is None:
            return None
        target = request_line.split(" ")[1] if request_line.count(" ") >= 2 else "/"
        resource = f"arn:aws:neptune-db:{cluster.region}:{cluster.account}:{cluster.resource_id}/*"
        verdict = self.guard.signed_caller(headers, urlsplit(target).query, "neptune-db", "neptune-db:connect",
                                           resource, cluster.region)
        if verdict.allowed:
            return None
        log.info("neptune gate: %s refused: %s", host, verdict.denial or verdict.outcome)
        return _forbidden({"unsigned": "Missing Authentication Token",
                           "unknown": "The security token included in the request is invalid."}.get(
                               verdict.outcome, verdict.denial))


def _read_head(sock: socket.socket) -> bytes | None:
    """The HTTP request head (through its blank line); None when the client sends none."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > MAX_HEAD_BYTES:
            return None
        data += chunk
    return data


def _pipe(client: ssl.SSLSocket, upstream: socket.socket) -> None:
    """Copy both ways until either side ends, on one thread: one TLS object must never be read and
    written at once (OpenSSL's rule), so reads and writes of ``client`` take turns."""
    while True:
        ready = [client] if client.pending() else select.select([client, upstream], [], [])[0]
        for source in ready:
            target = upstream if source is client else client
            chunk = source.recv(65536)
            if not chunk:
                return
            target.sendall(chunk)


def _forbidden(message: str) -> bytes:
    body = json.dumps({"requestId": str(uuid.uuid4()), "code": "AccessDeniedException",
                       "detailedMessage": message}).encode()
    return (b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


CONFIG_DIR = Path(__file__).resolve().parents[2] / "tools" / "gremlin-server"
