"""Neptune through the RDS API: IAM database authentication kept as Neptune keeps it, Neptune's
endpoint names, its engine versions, and its endpoints never taken for PostgreSQL's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tapharness.sandbox.clients import AwsClients
from tapharness.sandbox.endpoints import postgres_targets

from .helpers import unique


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
