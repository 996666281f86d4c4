"""Neptune: through the RDS API, IAM database authentication kept as Neptune keeps it, Neptune's
endpoint names, its engine versions, its endpoints never taken for PostgreSQL's; behind them, a
Gremlin Server reached over TLS only by callers IAM lets connect."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from gremlin_python.driver.aiohttp.transport import AiohttpTransport
from gremlin_python.driver.driver_remote_connection import DriverRemoteConnection
from gremlin_python.process.anonymous_traversal import traversal
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tapharness.sandbox import _bootstrap
from tapharness.sandbox.clients import AwsClients
from tapharness.sandbox.endpoints import postgres_targets

from .helpers import role_credentials, unique


def test_a_neptune_cluster_is_created_with_iam_database_authentication(aws: Callable[[str], Any]) -> None:
    name = unique("graph")[:40]
    created = aws("neptune").create_db_cluster(DBClusterIdentifier=name, Engine="neptune", StorageEncrypted=True,
                                               EnableIAMDatabaseAuthentication=True)["DBCluster"]
    assert created["IAMDatabaseAuthenticationEnabled"] is True
    described = aws("neptune").describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]
    assert described["IAMDatabaseAuthenticationEnabled"] is True and described["Port"] == 8182


def test_turning_iam_database_authentication_on_later_is_kept(aws: Callable[[str], Any]) -> None:
    name = unique("graph")[:40]
    aws("neptune").create_db_cluster(DBClusterIdentifier=name, Engine="neptune", StorageEncrypted=True)
    aws("neptune").modify_db_cluster(DBClusterIdentifier=name, EnableIAMDatabaseAuthentication=True,
                                     ApplyImmediately=True)
    assert aws("neptune").describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0][
        "IAMDatabaseAuthenticationEnabled"] is True


def test_neptune_endpoints_are_neptune_names(aws: Callable[[str], Any]) -> None:
    name = unique("graph")[:40]
    cluster = aws("neptune").create_db_cluster(DBClusterIdentifier=name, Engine="neptune")["DBCluster"]
    assert cluster["Endpoint"].startswith(f"{name.lower()}.cluster-")
    assert cluster["Endpoint"].endswith(".us-east-1.neptune.amazonaws.com")
    assert cluster["ReaderEndpoint"].endswith(".us-east-1.neptune.amazonaws.com") and ".cluster-ro-" in cluster["ReaderEndpoint"]


def test_neptunes_engine_versions_are_listed_with_their_parameter_family(aws: Callable[[str], Any]) -> None:
    versions = aws("neptune").describe_db_engine_versions(Engine="neptune")["DBEngineVersions"]
    assert [(v["EngineVersion"], v["DBParameterGroupFamily"]) for v in versions] == [("1.3.2.1", "neptune1.3")]
    assert aws("neptune").describe_db_engine_versions(Engine="neptune", EngineVersion="9.9.9.9")["DBEngineVersions"] == []


def test_a_neptune_cluster_is_not_taken_for_a_postgresql_one(aws: Callable[[str], Any]) -> None:
    graph = unique("graph")[:40]
    relational = unique("aurora")[:40]
    aws("neptune").create_db_cluster(DBClusterIdentifier=graph, Engine="neptune")
    aws("rds").create_db_cluster(DBClusterIdentifier=relational, Engine="aurora-postgresql", MasterUsername="tapadmin",
                                 MasterUserPassword="not-a-real-one-1")
    names = set(postgres_targets(AwsClients(aws("rds").meta.endpoint_url, "us-east-1").client("rds")))
    assert any(name.startswith(f"{relational.lower()}.cluster-") for name in names)
    assert not any(name.startswith(f"{graph.lower()}.") for name in names)


# --- the graph behind the endpoints ---------------------------------------------------------

@dataclass
class Graph:
    endpoint: str
    resource_id: str
    ca_bundle: str


@pytest.fixture(scope="module")
def graph(aws: Callable[[str], Any], sandbox: Any) -> Iterator[Graph]:
    """A Neptune cluster with IAM authentication, served by the sandbox's gate; its endpoint name
    resolves to the gate in this process as it does in a function worker."""
    cluster = aws("neptune").create_db_cluster(DBClusterIdentifier=unique("players")[:40], Engine="neptune",
                                               StorageEncrypted=True, EnableIAMDatabaseAuthentication=True)["DBCluster"]
    served = sandbox.control("POST", "services")
    original = socket.getaddrinfo
    _bootstrap.install_host_map({cluster["Endpoint"]: f"127.0.0.1:{served['neptune']['gate_port']}"})
    yield Graph(cluster["Endpoint"], cluster["DbClusterResourceId"], served["ca_bundle"])
    socket.getaddrinfo = original


def signed_headers(graph: Graph, keys: dict[str, str]) -> dict[str, str]:
    """The WebSocket handshake's SigV4 headers for neptune-db, as Neptune's IAM clients sign it."""
    request = AWSRequest(method="GET", url=f"https://{graph.endpoint}:8182/gremlin")
    SigV4Auth(Credentials(keys["AccessKeyId"], keys["SecretAccessKey"], keys["SessionToken"]), "neptune-db",
              "us-east-1").add_auth(request)
    return {k: v for k, v in request.headers.items() if k.lower() != "host"}


def connector(aws: Callable[[str], Any], graph: Graph) -> dict[str, str]:
    return role_credentials(aws, [{"Effect": "Allow", "Action": "neptune-db:connect",
                              "Resource": f"arn:aws:neptune-db:us-east-1:123456789012:{graph.resource_id}/*"}])


def test_a_caller_allowed_to_connect_runs_gremlin_on_the_graph_over_tls(aws: Callable[[str], Any], graph: Graph) -> None:
    remote = DriverRemoteConnection(
        f"wss://{graph.endpoint}:8182/gremlin", "g", headers=signed_headers(graph, connector(aws, graph)),
        transport_factory=lambda: AiohttpTransport(ssl_options=ssl.create_default_context(cafile=graph.ca_bundle)))
    try:
        g = traversal().with_remote(remote)
        g.add_v("player").property("player_id", "p-42").iterate()
        assert g.V().has("player", "player_id", "p-42").count().next() == 1
    finally:
        remote.close()


def handshake_status(graph: Graph, headers: dict[str, str]) -> int:
    """The status the gate answers a WebSocket handshake with (101 when it lets it through)."""
    sock = socket.create_connection((graph.endpoint, 8182), timeout=30)
    context = ssl.create_default_context(cafile=graph.ca_bundle)
    try:
        with connect(f"wss://{graph.endpoint}:8182/gremlin", sock=sock, ssl=context, additional_headers=headers,
                     open_timeout=30):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def test_an_unsigned_handshake_is_refused_before_the_graph(graph: Graph) -> None:
    assert handshake_status(graph, {}) == 403


def test_a_caller_no_policy_allows_to_connect_is_refused(aws: Callable[[str], Any], graph: Graph) -> None:
    stranger = role_credentials(aws, [{"Effect": "Allow", "Action": "neptune-db:ReadDataViaQuery", "Resource": "*"}])
    assert handshake_status(graph, signed_headers(graph, stranger)) == 403
    assert handshake_status(graph, signed_headers(graph, connector(aws, graph))) == 101


def test_authentication_turned_on_by_a_later_change_is_enforced_at_once(aws: Callable[[str], Any], sandbox: Any,
                                                                        graph: Graph) -> None:
    cluster = aws("neptune").create_db_cluster(DBClusterIdentifier=unique("open")[:40], Engine="neptune")["DBCluster"]
    gate = sandbox.control("GET", "services")["neptune"]["gate_port"]
    original = socket.getaddrinfo
    _bootstrap.install_host_map({cluster["Endpoint"]: f"127.0.0.1:{gate}"})
    try:
        opened = Graph(cluster["Endpoint"], cluster["DbClusterResourceId"], graph.ca_bundle)
        assert handshake_status(opened, {}) == 101  # no IAM authentication: anyone connects
        aws("neptune").modify_db_cluster(DBClusterIdentifier=cluster["DBClusterIdentifier"],
                                         EnableIAMDatabaseAuthentication=True, ApplyImmediately=True)
        assert handshake_status(opened, {}) == 403
    finally:
        socket.getaddrinfo = original


def test_a_property_added_twice_keeps_both_values_as_neptunes_set_cardinality_does(
        aws: Callable[[str], Any], graph: Graph) -> None:
    remote = DriverRemoteConnection(
        f"wss://{graph.endpoint}:8182/gremlin", "g", headers=signed_headers(graph, connector(aws, graph)),
        transport_factory=lambda: AiohttpTransport(ssl_options=ssl.create_default_context(cafile=graph.ca_bundle)))
    try:
        g = traversal().with_remote(remote)
        g.add_v("player").property("player_id", "p-set").property("badge", "gold").iterate()
        g.V().has("player", "player_id", "p-set").property("badge", "silver").iterate()
        assert sorted(g.V().has("player", "player_id", "p-set").values("badge").to_list()) == ["gold", "silver"]
    finally:
        remote.close()


def test_a_neptune_instances_endpoint_is_a_neptune_name(aws: Callable[[str], Any]) -> None:
    cluster = unique("graph")[:40]
    aws("neptune").create_db_cluster(DBClusterIdentifier=cluster, Engine="neptune")
    instance = aws("neptune").create_db_instance(DBInstanceIdentifier=unique("node")[:40], DBInstanceClass="db.r6g.large",
                                                Engine="neptune", DBClusterIdentifier=cluster)["DBInstance"]
    described = aws("neptune").describe_db_instances(DBInstanceIdentifier=instance["DBInstanceIdentifier"])
    assert described["DBInstances"][0]["Endpoint"]["Address"].endswith(".us-east-1.neptune.amazonaws.com")
