"""RDS: new instances with AWS's default CA, the Performance Insights settings moto drops,
ScalingConfigurationInfo only for serverless v1 clusters, and Neptune clusters (IAM database
authentication kept, Neptune's endpoint names, DescribeDBEngineVersions)."""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.rds.models import DBCluster, DBInstance, RDSBackend
from moto.rds.responses import RDSResponse

from tapharness.sandbox.patches import patch

_CREATE_DB_INSTANCE = RDSBackend.create_db_instance
RDS_DEFAULT_CA = "rds-ca-rsa2048-g1"


@patch(RDSBackend, "create_db_instance")
def _create_db_instance(self: RDSBackend, db_kwargs: dict[str, Any]) -> Any:
    """New instances get AWS's current default CA (moto says "rds-ca-default", which makes the
    provider modify and reboot every new instance, with a 30 s wait each)."""
    instance = _CREATE_DB_INSTANCE(self, db_kwargs)
    if not db_kwargs.get("ca_certificate_identifier"):
        instance.ca_certificate_identifier = RDS_DEFAULT_CA
    _set_performance_insights(instance, db_kwargs)
    return instance


_MODIFY_DB_INSTANCE = RDSBackend.modify_db_instance


def _set_performance_insights(instance: Any, db_kwargs: dict[str, Any]) -> None:
    """Keep the Performance Insights settings moto accepts but drops."""
    if db_kwargs.get("enable_performance_insights") is not None:
        instance.performance_insights_enabled = bool(db_kwargs["enable_performance_insights"])
    for key in ("performance_insights_kms_key_id", "performance_insights_retention_period"):
        if db_kwargs.get(key) is not None:
            setattr(instance, key, db_kwargs[key])


@patch(RDSBackend, "modify_db_instance")
def _modify_db_instance(self: RDSBackend, db_instance_identifier: str, db_kwargs: dict[str, Any]) -> Any:
    instance = _MODIFY_DB_INSTANCE(self, db_instance_identifier, db_kwargs)
    _set_performance_insights(instance, db_kwargs)
    return instance


def _scaling_configuration_info(self: DBCluster) -> dict[str, Any] | None:
    """Only serverless v1 clusters have ScalingConfigurationInfo (moto answers {} for every cluster,
    which the provider turns into a scaling_configuration block with defaults to change)."""
    if not self.scaling_configuration:
        return None
    return _SCALING_CONFIGURATION_INFO.fget(self)


_SCALING_CONFIGURATION_INFO = DBCluster.scaling_configuration_info


patch.replace(DBCluster, "scaling_configuration_info", property(_scaling_configuration_info))


# --- Neptune (the RDS API with Engine "neptune") --------------------------------------------
# moto refused IAM database authentication for a Neptune cluster at creation ("not supported by
# Multi-AZ DB clusters", its check for RDS Multi-AZ clusters) and dropped it on modification for
# every engine, so a plan asking for it never settled; its endpoints were RDS names.

_CREATE_DB_CLUSTER = RDSBackend.create_db_cluster
_MODIFY_DB_CLUSTER = RDSBackend.modify_db_cluster
_CLUSTER_ENDPOINT = DBCluster.endpoint
_CLUSTER_READER_ENDPOINT = DBCluster.reader_endpoint


@patch(RDSBackend, "create_db_cluster")
def _create_db_cluster(self: RDSBackend, kwargs: dict[str, Any]) -> DBCluster:
    """A Neptune cluster takes IAM database authentication, as Neptune does."""
    iam_auth = kwargs.get("enable_iam_database_authentication")
    if kwargs.get("engine") == "neptune" and iam_auth:
        kwargs = {**kwargs, "enable_iam_database_authentication": False}
    cluster = _CREATE_DB_CLUSTER(self, kwargs)
    if kwargs.get("engine") == "neptune" and iam_auth:
        cluster.iam_auth = True
    return cluster


@patch(RDSBackend, "modify_db_cluster")
def _modify_db_cluster(self: RDSBackend, kwargs: dict[str, Any]) -> DBCluster:
    """EnableIAMDatabaseAuthentication changes what DescribeDBClusters reports (moto answers a copy of
    the cluster it keeps, and renames it first when asked)."""
    iam_auth = kwargs.get("enable_iam_database_authentication")
    kept_as = kwargs.get("new_db_cluster_identifier") or kwargs["db_cluster_identifier"]
    answer = _MODIFY_DB_CLUSTER(self, kwargs)
    if iam_auth is not None:
        for cluster in (answer, self.clusters[kept_as]):
            cluster.iam_auth = bool(iam_auth)
    return answer


def _neptune_name(rds_name: str) -> str:
    """Neptune's endpoint names: ``<cluster>.cluster-<id>.<region>.neptune.amazonaws.com``."""
    return rds_name.removesuffix(".rds.amazonaws.com") + ".neptune.amazonaws.com"


def _cluster_endpoint(self: DBCluster) -> str:
    name = _CLUSTER_ENDPOINT.fget(self)
    return _neptune_name(name) if self.engine == "neptune" else name


def _cluster_reader_endpoint(self: DBCluster) -> str:
    name = _CLUSTER_READER_ENDPOINT.fget(self)
    return _neptune_name(name) if self.engine == "neptune" else name


_INSTANCE_ADDRESS = DBInstance.address


def _instance_address(self: DBInstance) -> str:
    name = _INSTANCE_ADDRESS.fget(self)
    return _neptune_name(name) if self.engine == "neptune" else name


patch.replace(DBCluster, "endpoint", property(_cluster_endpoint))
patch.replace(DBCluster, "reader_endpoint", property(_cluster_reader_endpoint))
patch.replace(DBInstance, "address", property(_instance_address))


@patch(RDSResponse, "describe_db_engine_versions")
def describe_db_engine_versions(self: RDSResponse) -> ActionResult:
    """DescribeDBEngineVersions for Neptune (moto: not implemented, an answer the SDK cannot parse): the
    version moto creates Neptune clusters with, and its parameter group family (``neptune1.3``);
    filtered by EngineVersion. Other engines list nothing here (docs/emulation-gaps.md)."""
    engine, version = self._get_param("Engine"), self._get_param("EngineVersion")
    default = DBCluster.default_engine_version("neptune")
    found = []
    if engine in (None, "neptune") and version in (None, default):
        major, minor = default.split(".")[:2]
        found.append({"Engine": "neptune", "EngineVersion": default, "DBParameterGroupFamily": f"neptune{major}.{minor}",
                      "DBEngineDescription": "Amazon Neptune", "DBEngineVersionDescription": f"Neptune {default}",
                      "Status": "available", "SupportsReadReplica": True, "SupportsLogExportsToCloudwatchLogs": True,
                      "ExportableLogTypes": ["audit", "slowquery"], "ValidUpgradeTarget": []})
    return ActionResult({"DBEngineVersions": found})
