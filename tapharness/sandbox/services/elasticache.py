"""ElastiCache: the sandbox's changes to moto's.

Cache parameter groups (kept on the backend, with their tags) and DeleteCacheSubnetGroup; and
moto behaviour fixes: replication group members listed as cache clusters, the AuthToken kept
(the sandbox sets it on the real Redis, ``tapharness.sandbox.backing``), deletions that finish.
"""

from __future__ import annotations

import inspect
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, EmptyResult
from moto.elasticache.models import CacheCluster, ElastiCacheBackend
from moto.elasticache.responses import ElastiCacheResponse

from tapharness.sandbox.patches import patch, store

# --- ElastiCache ---------------------------------------------------------------------

@patch(ElastiCacheResponse, "delete_cache_subnet_group")
def delete_cache_subnet_group(self: ElastiCacheResponse) -> ActionResult:
    """DeleteCacheSubnetGroup: remove it from moto's table of subnet groups."""
    self.elasticache_backend.cache_subnet_groups.pop(self._get_param("CacheSubnetGroupName"), None)
    return EmptyResult()


def _parameter_group_arn(self: ElastiCacheResponse, name: str) -> str:
    return f"arn:aws:elasticache:{self.region}:{self.current_account}:parametergroup:{name}"


@patch(ElastiCacheResponse, "create_cache_parameter_group")
def create_cache_parameter_group(self: ElastiCacheResponse) -> ActionResult:
    """CreateCacheParameterGroup: kept on the backend with its (user-set) parameters."""
    name = self._get_param("CacheParameterGroupName")
    group = {
        "CacheParameterGroupName": name,
        "CacheParameterGroupFamily": self._get_param("CacheParameterGroupFamily"),
        "Description": self._get_param("Description"),
        "IsGlobal": False,
        "ARN": _parameter_group_arn(self, name),
        "Parameters": {},
    }
    store(self.elasticache_backend, "parameter_groups")[name] = group
    self.elasticache_backend.tagging_service.tag_resource(group["ARN"], self._get_param("Tags") or [])
    return ActionResult({"CacheParameterGroup": {k: v for k, v in group.items() if k != "Parameters"}})


class CacheParameterGroupNotFound(ServiceException):
    code = "CacheParameterGroupNotFound"


def _parameter_group(self: ElastiCacheResponse) -> dict[str, Any]:
    name = self._get_param("CacheParameterGroupName")
    group = store(self.elasticache_backend, "parameter_groups").get(name)
    if group is None:
        raise CacheParameterGroupNotFound(f"CacheParameterGroup {name} not found.")
    return group


@patch(ElastiCacheResponse, "describe_cache_parameter_groups")
def describe_cache_parameter_groups(self: ElastiCacheResponse) -> ActionResult:
    """DescribeCacheParameterGroups (one by name, or all)."""
    if self._get_param("CacheParameterGroupName"):
        selected = [_parameter_group(self)]
    else:
        selected = list(store(self.elasticache_backend, "parameter_groups").values())
    return ActionResult({"CacheParameterGroups": [
        {k: v for k, v in group.items() if k != "Parameters"} for group in selected]})


@patch(ElastiCacheResponse, "modify_cache_parameter_group")
def modify_cache_parameter_group(self: ElastiCacheResponse) -> ActionResult:
    """ModifyCacheParameterGroup: record the parameter values."""
    group = _parameter_group(self)
    for item in self._get_param("ParameterNameValues") or []:
        group["Parameters"][item["ParameterName"]] = item["ParameterValue"]
    return ActionResult({"CacheParameterGroupName": group["CacheParameterGroupName"]})


@patch(ElastiCacheResponse, "reset_cache_parameter_group")
def reset_cache_parameter_group(self: ElastiCacheResponse) -> ActionResult:
    """ResetCacheParameterGroup: forget the named (or all) parameter values."""
    group = _parameter_group(self)
    names = [item["ParameterName"] for item in self._get_param("ParameterNameValues") or []]
    if self._get_param("ResetAllParameters") in (True, "true") or not names:
        group["Parameters"].clear()
    for parameter in names:
        group["Parameters"].pop(parameter, None)
    return ActionResult({"CacheParameterGroupName": group["CacheParameterGroupName"]})


@patch(ElastiCacheResponse, "describe_cache_parameters")
def describe_cache_parameters(self: ElastiCacheResponse) -> ActionResult:
    """DescribeCacheParameters: the user-set parameters (Source=user), which is what the provider reads."""
    group = _parameter_group(self)
    parameters = [
        {"ParameterName": key, "ParameterValue": value, "Source": "user", "DataType": "string",
         "IsModifiable": True, "ChangeType": "immediate"}
        for key, value in sorted(group["Parameters"].items())
    ]
    return ActionResult({"Parameters": parameters})


@patch(ElastiCacheResponse, "delete_cache_parameter_group")
def delete_cache_parameter_group(self: ElastiCacheResponse) -> ActionResult:
    """DeleteCacheParameterGroup."""
    group = _parameter_group(self)
    del store(self.elasticache_backend, "parameter_groups")[group["CacheParameterGroupName"]]
    return EmptyResult()


# --- moto behaviour fixes (model patches) ---------------------------------------------

_ELASTICACHE_LIST_TAGS = ElastiCacheBackend.list_tags_for_resource


@patch(ElastiCacheBackend, "list_tags_for_resource")
def _elasticache_list_tags(self: ElastiCacheBackend, arn: str) -> dict[str, list[dict[str, str]]]:
    """ListTagsForResource that also accepts the ARNs of (shimmed) parameter groups."""
    if ":parametergroup:" in arn:
        return self.tagging_service.list_tags_for_resource(arn)
    return _ELASTICACHE_LIST_TAGS(self, arn)


_CREATE_REPLICATION_GROUP = ElastiCacheBackend.create_replication_group
_DELETE_REPLICATION_GROUP = ElastiCacheBackend.delete_replication_group
_DELETE_CACHE_CLUSTER = ElastiCacheBackend.delete_cache_cluster


def _member_cluster(self: ElastiCacheBackend, group: Any, cluster_id: str) -> CacheCluster:
    """A cache cluster as AWS lists it for a replication group member, from the group's settings."""
    names = [n for n in inspect.signature(CacheCluster.__init__).parameters if n != "self"]
    settings = {name: getattr(group, name, None) for name in names}
    settings.update(account_id=self.account_id, region_name=self.region_name, cache_cluster_id=cluster_id,
                    replication_group_id=group.replication_group_id, num_cache_nodes=1, tags=None,
                    log_delivery_configurations=[])
    cluster = CacheCluster(**settings)
    # The provider reads these from the first member cluster.
    cluster.at_rest_encryption_enabled = group.at_rest_encryption_enabled
    cluster.auth_token_enabled = group.auth_token_enabled
    cluster.security_groups = [{"SecurityGroupId": sg, "Status": "active"} for sg in group.security_group_ids or []]
    if getattr(group, "cache_parameter_group_name", None):  # AWS lists it; cluster mode can be read from it
        cluster.cache_parameter_group = {"CacheParameterGroupName": group.cache_parameter_group_name,
                                         "ParameterApplyStatus": "in-sync", "CacheNodeIdsToReboot": []}
    return cluster


@patch(ElastiCacheBackend, "create_replication_group")
def _create_replication_group(self: ElastiCacheBackend, *args: Any, **kwargs: Any) -> Any:
    """CreateReplicationGroup whose member clusters also exist as cache clusters (as in AWS), with
    as many members as NumCacheClusters asks (moto makes one unless ReplicasPerNodeGroup is set),
    and its AuthToken kept (AWS never returns it; the sandbox sets it on the real Redis)."""
    if kwargs.get("num_cache_clusters") and not kwargs.get("replicas_per_node_group"):
        kwargs["replicas_per_node_group"] = int(kwargs["num_cache_clusters"]) - 1
    group = _CREATE_REPLICATION_GROUP(self, *args, **kwargs)
    group.auth_token = kwargs.get("auth_token")  # moto keeps only "enabled"; the sandbox's Redis needs it
    for cluster_id in group.member_clusters:
        self.cache_clusters.setdefault(cluster_id, _member_cluster(self, group, cluster_id))
    return group


@patch(ElastiCacheBackend, "delete_replication_group")
def _delete_replication_group(self: ElastiCacheBackend, replication_group_id: str,
                              retain_primary_cluster: bool | None) -> Any:
    """DeleteReplicationGroup that finishes: moto leaves the group 'deleting' forever."""
    members = list(self.replication_groups[replication_group_id].member_clusters) \
        if replication_group_id in self.replication_groups else []
    group = _DELETE_REPLICATION_GROUP(self, replication_group_id, retain_primary_cluster)
    del self.replication_groups[replication_group_id]
    for cluster_id in members:
        self.cache_clusters.pop(cluster_id, None)
    return group


@patch(ElastiCacheBackend, "delete_cache_cluster")
def _delete_cache_cluster(self: ElastiCacheBackend, cache_cluster_id: str) -> Any:
    """DeleteCacheCluster that finishes: moto leaves the cluster 'deleting' forever."""
    cluster = _DELETE_CACHE_CLUSTER(self, cache_cluster_id)
    del self.cache_clusters[cache_cluster_id]
    return cluster
