"""Provider calls moto 5.2.5 lacks, added as methods of moto's response classes.

moto dispatches an API action to the response-class method named after it (snake case), so
each shim is one small function installed under that name; moto serializes what it returns
(an ``ActionResult`` for query-protocol services, a JSON string for the JSON and REST ones).
``MODEL_PATCHES`` fix moto behaviour the provider trips over (SQS RedriveAllowPolicy, a
SetQueueAttributes that wipes the queue policy, tags of ElastiCache parameter groups,
replication group members missing from DescribeCacheClusters, deletions that never finish,
RDS instances' default CA, executions started without a name, S3 bucket policies whose conditions moto ignores (now judged by the
IAM evaluator), S3 event keys with "/" encoded).
A shim's state lives on the moto backend it belongs to (per account and region), so a moto
reset clears it. ``SHIMS`` lists them; ``install()`` is idempotent.

Found by running the AWS provider's apply, plan and destroy of lib/tap_stack.tf against moto.
"""

from __future__ import annotations

import base64
import calendar
import inspect
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, unquote

from moto import backends as moto_backends
from moto.apigateway.responses import APIGatewayResponse
from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
from moto.athena.responses import AthenaResponse
from moto.awslambda import urls as lambda_urls
from moto.awslambda.models import LambdaFunction
from moto.awslambda.responses import LambdaResponse
from moto.core import responses as core_responses
from moto.core.base_backend import BackendDict
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, BaseResponse, EmptyResult
from moto.core.utils import camelcase_to_underscores, method_names_from_class, unix_time
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.ec2.models.security_groups import SecurityGroupRule
from moto.elasticache.models import CacheCluster, ElastiCacheBackend
from moto.elasticache.responses import ElastiCacheResponse
from moto.kinesis.models import Record, Shard
from moto.kinesis.responses import KinesisResponse
from moto.kms.responses import KmsResponse
from moto.logs import models as logs_models
from moto.logs.exceptions import LogsClientError
from moto.logs.responses import LogsResponse
from moto.rds.models import DBCluster, RDSBackend
from moto.s3 import notifications as s3_notifications
from moto.s3.models import FakeBucket
from moto.s3.responses import S3Response
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse
from moto.sns.models import Subscription
from moto.sns.responses import SNSResponse
from moto.sqs.models import Queue, SQSBackend
from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
    lambda_eval_utils,
)
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse

from tapharness.sandbox import athena, clock, globaltables, insights, models
from tapharness.sandbox.asl import validate_state_machine_definition
from tapharness.sandbox.iam import wire

if TYPE_CHECKING:
    from tapharness.sandbox.iam.sessions import ServiceGuard

RUNTIME_MANAGEMENT_PATH = r"{0}/(?P<api_version>[^/]+)/functions/(?P<function_name>[\w_:%-]+)/runtime-management-config/?$"


def _store(backend: Any, name: str) -> dict[str, Any]:
    """A shim's own table on a moto backend instance."""
    return backend.__dict__.setdefault(f"_sandbox_{name}", {})


def _json_error(code: str, message: str, status: int = 400) -> tuple[int, dict[str, str], str]:
    return status, {"status": str(status), "x-amzn-ErrorType": code}, json.dumps({"__type": code, "message": message})


# --- Athena ---------------------------------------------------------------------------

_START_QUERY = AthenaResponse.start_query_execution
_GET_QUERY = AthenaResponse.get_query_execution
_MOTO_RUNS = re.compile(r"^\s*(CREATE|DROP)\s+(DATABASE|SCHEMA)\b", re.IGNORECASE)


def _caller_allows(self: BaseResponse) -> athena.Allows:
    """Whether the principal that signed this request may do an action (IAM off: everything)."""
    signed = wire.signature({k.lower(): v for k, v in self.headers.items()}, "")
    principal = _GUARD.authorizer.principal_for_key(signed.access_key) if _GUARD and signed else None
    if principal is None:
        return lambda action, resource: True
    return lambda action, resource: _GUARD.authorizer.allows(  # type: ignore[union-attr]
        principal, (action,), resource, "athena.ctas", self.region)


def start_query_execution(self: AthenaResponse) -> Any:
    """Run the statement (tapharness.sandbox.athena); a token seen before gets its first execution."""
    token = self._get_param("ClientRequestToken")
    known = athena.ENGINE.known_token(token)
    if known is not None:
        return json.dumps({"QueryExecutionId": known})
    answer = _START_QUERY(self)
    if not isinstance(answer, str):
        return answer
    query = self._get_param("QueryString") or ""
    if _MOTO_RUNS.match(query):
        return answer
    execution_id = json.loads(answer)["QueryExecutionId"]
    workgroup = self.athena_backend.work_groups.get(self._get_param("WorkGroup") or "primary")
    cutoff = workgroup.configuration.get("BytesScannedCutoffPerQuery") if workgroup else None
    athena.ENGINE.start(execution_id, token, query,
                        (self._get_param("QueryExecutionContext") or {}).get("Database"), self.current_account,
                        self.region, int(cutoff) if cutoff else None, _caller_allows(self))
    return answer


def get_query_execution(self: AthenaResponse) -> str:
    """moto's answer with the state, reason, times and bytes of the run."""
    answer = json.loads(_GET_QUERY(self))
    execution = answer["QueryExecution"]
    run = athena.ENGINE.runs.get(execution["QueryExecutionId"])
    if run is not None:
        status = {"State": run.state, "SubmissionDateTime": run.submitted}
        if run.reason:
            status["StateChangeReason"] = run.reason
        if run.completed is not None:
            status["CompletionDateTime"] = run.completed
        execution["Status"] = status
        execution["Statistics"]["DataScannedInBytes"] = run.scanned_bytes
        elapsed = int(((run.completed or time.time()) - run.submitted) * 1000)
        execution["Statistics"]["TotalExecutionTimeInMillis"] = elapsed
        execution["Statistics"]["EngineExecutionTimeInMillis"] = elapsed
    return json.dumps(answer)


# --- SageMaker runtime ---------------------------------------------------------------

def invoke_endpoint(self: SageMakerRuntimeResponse) -> tuple[int, dict[str, str], Any]:
    """An endpoint of sandbox.yaml answers from its model (tapharness.sandbox.models); any other
    name is not found, where moto would answer every name with a canned body."""
    name = unquote(self.path.split("/")[2])
    endpoint = models.ENDPOINTS.get(name)
    if endpoint is None:
        return _json_error("ValidationError", f"Endpoint {name} of account {self.current_account} not found.")
    body = self.body if isinstance(self.body, bytes) else str(self.body or "").encode()
    try:
        answer = endpoint.invoke(body)
    except models.ModelError as exc:
        return _json_error("ModelError", f"Received client error (400) from primary with message \"{exc}\".", 424)
    return 200, {"Content-Type": "application/json", "x-Amzn-Invoked-Production-Variant": "AllTraffic"}, answer


# --- Step Functions ------------------------------------------------------------------


def list_state_machine_versions(self: StepFunctionResponse) -> str:
    """ListStateMachineVersions: the versions moto keeps for the state machine."""
    machine = self.stepfunction_backend.describe_state_machine(self._get_param("stateMachineArn"))
    versions = [
        {"stateMachineVersionArn": version.arn, "creationDate": unix_time(version.creation_date)}
        for version in machine.versions.values()
    ]
    return json.dumps({"stateMachineVersions": versions})


# --- DynamoDB ------------------------------------------------------------------------


def _insights_key(self: DynamoHandler) -> tuple[str, str]:
    table = self.body["TableName"]
    self.dynamodb_backend.get_table(table)
    return table, self.body.get("IndexName") or ""


def _insights(table: str, index: str, status: str) -> dict[str, Any]:
    description: dict[str, Any] = {"TableName": table, "ContributorInsightsStatus": status}
    if index:
        description["IndexName"] = index
    return description


def update_contributor_insights(self: DynamoHandler) -> ActionResult:
    """UpdateContributorInsights: ENABLE/DISABLE take effect at once (ENABLED/DISABLED)."""
    table, index = _insights_key(self)
    status = "ENABLED" if self.body["ContributorInsightsAction"] == "ENABLE" else "DISABLED"
    _store(self.dynamodb_backend, "contributor_insights")[(table, index)] = status
    return ActionResult(_insights(table, index, status))


def describe_contributor_insights(self: DynamoHandler) -> ActionResult:
    """DescribeContributorInsights of a table or index (DISABLED until enabled)."""
    table, index = _insights_key(self)
    status = _store(self.dynamodb_backend, "contributor_insights").get((table, index), "DISABLED")
    return ActionResult({**_insights(table, index, status), "ContributorInsightsRuleList": []})


def list_contributor_insights(self: DynamoHandler) -> ActionResult:
    """ListContributorInsights (optionally for one table)."""
    wanted = self.body.get("TableName")
    summaries = [
        {**_insights(table, index, status)}
        for (table, index), status in _store(self.dynamodb_backend, "contributor_insights").items()
        if not wanted or table == wanted
    ]
    return ActionResult({"ContributorInsightsSummaries": summaries})


# --- CloudWatch Logs -----------------------------------------------------------------


def put_query_definition(self: LogsResponse) -> str:
    """PutQueryDefinition: create, or update when queryDefinitionId is given."""
    definitions = _store(self.logs_backend, "query_definitions")
    definition_id = self._get_param("queryDefinitionId") or str(uuid.uuid4())
    definitions[definition_id] = {
        "queryDefinitionId": definition_id,
        "name": self._get_param("name"),
        "queryString": self._get_param("queryString"),
        "logGroupNames": self._get_param("logGroupNames") or [],
        "lastModified": int(unix_time() * 1000),
    }
    return json.dumps({"queryDefinitionId": definition_id})


def describe_query_definitions(self: LogsResponse) -> str:
    """DescribeQueryDefinitions, filtered by name prefix."""
    prefix = self._get_param("queryDefinitionNamePrefix") or ""
    definitions = _store(self.logs_backend, "query_definitions").values()
    return json.dumps({"queryDefinitions": [d for d in definitions if d["name"].startswith(prefix)]})


def delete_query_definition(self: LogsResponse) -> Any:
    """DeleteQueryDefinition; an unknown id is ResourceNotFoundException, as in AWS."""
    definitions = _store(self.logs_backend, "query_definitions")
    if definitions.pop(self._get_param("queryDefinitionId"), None) is None:
        return _json_error("ResourceNotFoundException", "The specified query definition does not exist.")
    return json.dumps({"success": True})


# --- ElastiCache ---------------------------------------------------------------------


def delete_cache_subnet_group(self: ElastiCacheResponse) -> ActionResult:
    """DeleteCacheSubnetGroup: remove it from moto's table of subnet groups."""
    self.elasticache_backend.cache_subnet_groups.pop(self._get_param("CacheSubnetGroupName"), None)
    return EmptyResult()


def _parameter_group_arn(self: ElastiCacheResponse, name: str) -> str:
    return f"arn:aws:elasticache:{self.region}:{self.current_account}:parametergroup:{name}"


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
    _store(self.elasticache_backend, "parameter_groups")[name] = group
    self.elasticache_backend.tagging_service.tag_resource(group["ARN"], self._get_param("Tags") or [])
    return ActionResult({"CacheParameterGroup": {k: v for k, v in group.items() if k != "Parameters"}})


class CacheParameterGroupNotFound(ServiceException):
    code = "CacheParameterGroupNotFound"


def _parameter_group(self: ElastiCacheResponse) -> dict[str, Any]:
    name = self._get_param("CacheParameterGroupName")
    group = _store(self.elasticache_backend, "parameter_groups").get(name)
    if group is None:
        raise CacheParameterGroupNotFound(f"CacheParameterGroup {name} not found.")
    return group


def describe_cache_parameter_groups(self: ElastiCacheResponse) -> ActionResult:
    """DescribeCacheParameterGroups (one by name, or all)."""
    if self._get_param("CacheParameterGroupName"):
        selected = [_parameter_group(self)]
    else:
        selected = list(_store(self.elasticache_backend, "parameter_groups").values())
    return ActionResult({"CacheParameterGroups": [
        {k: v for k, v in group.items() if k != "Parameters"} for group in selected]})


def modify_cache_parameter_group(self: ElastiCacheResponse) -> ActionResult:
    """ModifyCacheParameterGroup: record the parameter values."""
    group = _parameter_group(self)
    for item in self._get_param("ParameterNameValues") or []:
        group["Parameters"][item["ParameterName"]] = item["ParameterValue"]
    return ActionResult({"CacheParameterGroupName": group["CacheParameterGroupName"]})


def reset_cache_parameter_group(self: ElastiCacheResponse) -> ActionResult:
    """ResetCacheParameterGroup: forget the named (or all) parameter values."""
    group = _parameter_group(self)
    names = [item["ParameterName"] for item in self._get_param("ParameterNameValues") or []]
    if self._get_param("ResetAllParameters") in (True, "true") or not names:
        group["Parameters"].clear()
    for parameter in names:
        group["Parameters"].pop(parameter, None)
    return ActionResult({"CacheParameterGroupName": group["CacheParameterGroupName"]})


def describe_cache_parameters(self: ElastiCacheResponse) -> ActionResult:
    """DescribeCacheParameters: the user-set parameters (Source=user), which is what the provider reads."""
    group = _parameter_group(self)
    parameters = [
        {"ParameterName": key, "ParameterValue": value, "Source": "user", "DataType": "string",
         "IsModifiable": True, "ChangeType": "immediate"}
        for key, value in sorted(group["Parameters"].items())
    ]
    return ActionResult({"Parameters": parameters})


def delete_cache_parameter_group(self: ElastiCacheResponse) -> ActionResult:
    """DeleteCacheParameterGroup."""
    group = _parameter_group(self)
    del _store(self.elasticache_backend, "parameter_groups")[group["CacheParameterGroupName"]]
    return EmptyResult()


# --- Athena --------------------------------------------------------------------------


def athena_list_tags_for_resource(self: AthenaResponse) -> Any:
    """ListTagsForResource: an existing workgroup without tags has an empty tag list, not an error."""
    arn = self._get_param("ResourceARN")
    tags = self.athena_backend.list_tags_for_resource(arn)
    if tags is None:
        name = arn.rsplit("/", 1)[-1]
        if ":workgroup/" in arn and name in self.athena_backend.work_groups:
            return json.dumps({"Tags": []})
        return self.error(f"Athena Resource, {arn} Does Not Exist", 400)
    return json.dumps(tags)


def _merge_configuration(configuration: dict[str, Any], updates: dict[str, Any]) -> None:
    """Apply WorkGroupConfigurationUpdates to a WorkGroupConfiguration in place."""
    result_updates = updates.get("ResultConfigurationUpdates") or {}
    result = configuration.setdefault("ResultConfiguration", {})
    for field in ("OutputLocation", "EncryptionConfiguration", "ExpectedBucketOwner", "AclConfiguration"):
        if field in result_updates:
            result[field] = result_updates[field]
        if result_updates.get(f"Remove{field}"):
            result.pop(field, None)
    for key, value in updates.items():
        if key in ("ResultConfigurationUpdates", "RemoveBytesScannedCutoffPerQuery",
                   "RemoveCustomerContentEncryptionConfiguration"):
            continue
        configuration[key] = value
    if updates.get("RemoveBytesScannedCutoffPerQuery"):
        configuration.pop("BytesScannedCutoffPerQuery", None)
    if updates.get("RemoveCustomerContentEncryptionConfiguration"):
        configuration.pop("CustomerContentEncryptionConfiguration", None)


def update_work_group(self: AthenaResponse) -> Any:
    """UpdateWorkGroup: description, state and configuration updates."""
    name = self._get_param("WorkGroup")
    group = self.athena_backend.work_groups.get(name)
    if group is None:
        return self.error(f"WorkGroup {name} does not exist", 400)
    if self._get_param("Description") is not None:
        group.description = self._get_param("Description")
    if self._get_param("State"):
        group.state = self._get_param("State")
    _merge_configuration(group.configuration, self._get_param("ConfigurationUpdates") or {})
    return json.dumps({})


# --- API Gateway ---------------------------------------------------------------------


def _unescape_pointer(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _apply_method_patch(method: Any, operation: dict[str, Any]) -> None:
    op, path, value = operation["op"], operation["path"], operation.get("value")
    scalar = {
        "/authorizationType": "authorization_type", "/authorizerId": "authorizer_id",
        "/operationName": "operation_name", "/requestValidatorId": "request_validator_id",
    }
    if path in scalar:
        setattr(method, scalar[path], None if op == "remove" else value)
    elif path == "/apiKeyRequired":
        method.api_key_required = op != "remove" and str(value).lower() == "true"
    elif path.startswith(("/requestModels/", "/requestParameters/")):
        attribute = "request_models" if path.startswith("/requestModels/") else "request_parameters"
        key = _unescape_pointer(path.split("/", 2)[2])
        mapping = dict(getattr(method, attribute) or {})
        if op == "remove":
            mapping.pop(key, None)
        elif attribute == "request_parameters":
            mapping[key] = str(value).lower() == "true"
        else:
            mapping[key] = value
        setattr(method, attribute, mapping)
    elif path.startswith("/authorizationScopes"):
        scopes = list(method.authorization_scopes or [])
        if op == "remove":
            scopes = [s for s in scopes if s != value]
        else:
            scopes.append(value)
        method.authorization_scopes = scopes
    else:
        raise ValueError(f"unsupported patch path {path}")


def update_method(self: APIGatewayResponse) -> Any:
    """UpdateMethod: JSON-patch operations on the method's settable fields."""
    parts = self.path.split("/")
    method = self.backend.get_method(parts[2], parts[4], parts[6])
    for operation in self._get_param("patchOperations") or []:
        try:
            _apply_method_patch(method, operation)
        except ValueError as exc:
            return 400, {}, json.dumps({"message": str(exc)})
    return 200, {}, json.dumps(method.to_json())


# --- Lambda --------------------------------------------------------------------------


def get_runtime_management_config(self: LambdaResponse) -> Any:
    """GetRuntimeManagementConfig: every function updates its runtime automatically."""
    name = self.path.rstrip("/").split("/")[-2]
    function = self.backend.get_function(name)
    return 200, {}, json.dumps({"UpdateRuntimeOn": "Auto", "FunctionArn": function.function_arn})


# --- SNS -----------------------------------------------------------------------------


def get_data_protection_policy(self: SNSResponse) -> ActionResult:
    """GetDataProtectionPolicy: topics have none (the provider reads it on every refresh)."""
    self.backend.get_topic(self._get_param("ResourceArn"))
    return ActionResult({})


# --- Application Auto Scaling ------------------------------------------------------------


_REGISTER_SCALABLE_TARGET = ApplicationAutoScalingResponse.register_scalable_target


def register_scalable_target(self: ApplicationAutoScalingResponse) -> str:
    """RegisterScalableTarget, keeping the Tags moto drops (the provider reads them back)."""
    result = _REGISTER_SCALABLE_TARGET(self)
    tags = self._get_param("Tags")
    if tags:
        _store(self.applicationautoscaling_backend, "tags").setdefault(json.loads(result)["ScalableTargetARN"], {}).update(tags)
    return result


def list_tags_for_resource(self: ApplicationAutoScalingResponse) -> str:
    return json.dumps({"Tags": _store(self.applicationautoscaling_backend, "tags").get(self._get_param("ResourceARN"), {})})


def tag_resource(self: ApplicationAutoScalingResponse) -> str:
    _store(self.applicationautoscaling_backend, "tags").setdefault(self._get_param("ResourceARN"), {}).update(
        self._get_param("Tags") or {})
    return "{}"


def untag_resource(self: ApplicationAutoScalingResponse) -> str:
    tags = _store(self.applicationautoscaling_backend, "tags").get(self._get_param("ResourceARN"), {})
    for key in self._get_param("TagKeys") or []:
        tags.pop(key, None)
    return "{}"


# --- moto behaviour fixes (model patches) ---------------------------------------------

_QUEUE_ATTRIBUTES = Queue.attributes
_QUEUE_SET_ATTRIBUTES = Queue._set_attributes
_GET_QUEUE_ATTRIBUTES = SQSBackend.get_queue_attributes


def _queue_attributes(self: Queue) -> dict[str, Any]:
    """Queue attributes with RedriveAllowPolicy, and RedrivePolicy as compact JSON (as AWS returns it)."""
    result = _QUEUE_ATTRIBUTES.fget(self)
    if isinstance(result.get("RedrivePolicy"), str):
        result["RedrivePolicy"] = json.dumps(json.loads(result["RedrivePolicy"]), separators=(",", ":"))
    if self.__dict__.get("redrive_allow_policy"):
        result["RedriveAllowPolicy"] = self.redrive_allow_policy
    return result


def _queue_set_attributes(self: Queue, attributes: dict[str, Any], now: float | None = None) -> None:
    """moto resets Policy on every SetQueueAttributes; keep it unless the call sets it."""
    policy = self.__dict__.get("_policy_json")
    _QUEUE_SET_ATTRIBUTES(self, attributes, now)
    if "Policy" not in attributes and policy is not None:
        self._policy_json = policy


def _get_queue_attributes(self: SQSBackend, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
    """GetQueueAttributes that also knows RedriveAllowPolicy (which moto stores but never returns)."""
    others = [name for name in attribute_names if name != "RedriveAllowPolicy"]
    result = _GET_QUEUE_ATTRIBUTES(self, queue_name, others) if others else {}
    if "RedriveAllowPolicy" in attribute_names or "All" in attribute_names:
        allow = self.get_queue(queue_name).__dict__.get("redrive_allow_policy")
        if allow:
            result["RedriveAllowPolicy"] = allow
    return result


_ELASTICACHE_LIST_TAGS = ElastiCacheBackend.list_tags_for_resource


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
    return cluster


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


def _delete_cache_cluster(self: ElastiCacheBackend, cache_cluster_id: str) -> Any:
    """DeleteCacheCluster that finishes: moto leaves the cluster 'deleting' forever."""
    cluster = _DELETE_CACHE_CLUSTER(self, cache_cluster_id)
    del self.cache_clusters[cache_cluster_id]
    return cluster


_CREATE_DB_INSTANCE = RDSBackend.create_db_instance
RDS_DEFAULT_CA = "rds-ca-rsa2048-g1"


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


# Lambda: DeadLetterConfig and LoggingConfig are accepted and dropped by moto.
_LAMBDA_INIT = LambdaFunction.__init__
_LAMBDA_CONFIGURATION = LambdaFunction.get_configuration
_LAMBDA_UPDATE_CONFIGURATION = LambdaFunction.update_configuration


def _apply_lambda_settings(function: LambdaFunction, spec: dict[str, Any]) -> None:
    if "DeadLetterConfig" in spec:
        function.dead_letter_config = spec["DeadLetterConfig"] or None
    if "LoggingConfig" in spec:
        function.logging_config = spec["LoggingConfig"] or None
        if (function.logging_config or {}).get("LogGroup"):
            function.logs_group_name = function.logging_config["LogGroup"]


def _lambda_init(self: LambdaFunction, account_id: str, spec: dict[str, Any], region: str,
                 version: str | int = 1) -> None:
    _LAMBDA_INIT(self, account_id, spec, region, version)
    self.dead_letter_config = None
    self.logging_config = None
    _apply_lambda_settings(self, spec)


def _lambda_configuration(self: LambdaFunction, on_create: bool = False) -> dict[str, Any]:
    """GetFunctionConfiguration with DeadLetterConfig and LoggingConfig (AWS always returns the latter)."""
    config = _LAMBDA_CONFIGURATION(self, on_create)
    if self.__dict__.get("dead_letter_config"):
        config["DeadLetterConfig"] = self.dead_letter_config
    config["LoggingConfig"] = {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{self.function_name}",
                               **(self.__dict__.get("logging_config") or {})}
    return config


def _lambda_update_configuration(self: LambdaFunction, config_updates: dict[str, Any]) -> dict[str, Any]:
    _apply_lambda_settings(self, config_updates)
    return _LAMBDA_UPDATE_CONFIGURATION(self, config_updates)


# KMS: EnableKeyRotation's RotationPeriodInDays is dropped; GetKeyRotationStatus never reports it.
_ENABLE_KEY_ROTATION = KmsResponse.enable_key_rotation
_GET_KEY_ROTATION_STATUS = KmsResponse.get_key_rotation_status


def enable_key_rotation(self: KmsResponse) -> str:
    """EnableKeyRotation that keeps RotationPeriodInDays (default 365)."""
    response = _ENABLE_KEY_ROTATION(self)
    key = self.kms_backend.describe_key(self._get_param("KeyId"))
    key.rotation_period_in_days = int(self._get_param("RotationPeriodInDays") or 365)
    return response


def get_key_rotation_status(self: KmsResponse) -> str:
    """GetKeyRotationStatus with KeyId and, while rotation is on, RotationPeriodInDays."""
    status = json.loads(_GET_KEY_ROTATION_STATUS(self))
    key = self.kms_backend.describe_key(self._get_param("KeyId"))
    status["KeyId"] = key.id
    if status.get("KeyRotationEnabled"):
        status["RotationPeriodInDays"] = key.__dict__.get("rotation_period_in_days", 365)
    return json.dumps(status)


# SNS: attributes moto stores on the topic but leaves out of GetTopicAttributes.
_GET_TOPIC_ATTRIBUTES = SNSResponse.get_topic_attributes
EXTRA_TOPIC_ATTRIBUTES = ("TracingConfig", "SignatureVersion", "ArchivePolicy")


def get_topic_attributes(self: SNSResponse) -> ActionResult:
    """GetTopicAttributes including TracingConfig, SignatureVersion and ArchivePolicy when set."""
    response = _GET_TOPIC_ATTRIBUTES(self)
    topic = self.backend.get_topic(self._get_param("TopicArn"))
    attributes = response.result["Attributes"]
    for name in EXTRA_TOPIC_ATTRIBUTES:
        value = topic.__dict__.get(camelcase_to_underscores(name))
        if value:
            attributes[name] = value
    return response


# Kinesis: CreateStream's Tags are dropped.
_CREATE_STREAM = KinesisResponse.create_stream


def create_stream(self: KinesisResponse) -> ActionResult:
    """CreateStream that keeps its Tags."""
    response = _CREATE_STREAM(self)
    tags = self._get_param("Tags")
    if tags:
        self.kinesis_backend.add_tags_to_stream(None, self._get_param("StreamName"), tags)
    return response


# S3: bucket Intelligent-Tiering configurations (?intelligent-tiering) are not implemented by moto.
_BUCKET_RESPONSE = S3Response._bucket_response
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>\s*")
_S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


def _bucket_response(self: S3Response, request: Any, full_url: str) -> Any:
    """Bucket requests, with PUT/GET/DELETE/LIST of Intelligent-Tiering configurations kept as sent."""
    querystring = self._get_querystring(request, full_url)
    if "intelligent-tiering" not in querystring:
        return _BUCKET_RESPONSE(self, request, full_url)
    bucket = self.backend.get_bucket(self.parse_bucket_name_from_url(request, full_url))
    configurations = bucket.__dict__.setdefault("_sandbox_intelligent_tiering", {})
    config_id = (querystring.get("id") or [None])[0]
    if request.method == "PUT":
        configurations[config_id] = _XML_DECLARATION.sub("", request.data.decode())
        return 200, {}, ""
    if request.method == "DELETE":
        configurations.pop(config_id, None)
        return 204, {}, ""
    if config_id is not None:
        if config_id not in configurations:
            return 404, {}, ("<Error><Code>NoSuchConfiguration</Code>"
                             "<Message>The specified configuration does not exist.</Message></Error>")
        return 200, {}, configurations[config_id]
    body = "".join(re.sub(r"<IntelligentTieringConfiguration[^>]*>", "<IntelligentTieringConfiguration>", c)
                   for c in configurations.values())
    return 200, {}, (f'<ListBucketIntelligentTieringConfigurationsOutput xmlns="{_S3_NAMESPACE}">'
                     f"<IsTruncated>false</IsTruncated>{body}</ListBucketIntelligentTieringConfigurationsOutput>")


# EC2: a rule that references a security group loses its description.
def _security_group_rule_description(self: SecurityGroupRule) -> str | None:
    return self.ip_range.get("Description") or self.source_group.get("Description")


# S3 event notifications: moto encodes the key with quote_plus, "/" included; AWS keeps "/".
# moto also leaves out the object's versionId (AWS sends it for a versioning-enabled bucket,
# and a reader of that version needs s3:GetObjectVersion) and the sequencer.
_GET_S3_EVENT = s3_notifications._get_s3_event


def _s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, list[dict[str, Any]]]:
    event = _GET_S3_EVENT(event_name, bucket, key, notification_id)
    for record in event["Records"]:
        obj = record["s3"]["object"]
        obj["key"] = quote_plus(key.name, safe="/")
        if bucket.is_versioned and getattr(key, "version_id", None):
            obj["versionId"] = key.version_id
        obj["sequencer"] = f"{int(unix_time() * 1_000_000):016X}"
    return event


def _bucket_permission(self: FakeBucket, action: str, resource: str) -> Any:
    """moto's own bucket-policy check (it runs for every object request, whoever signs it),
    made by the sandbox's IAM evaluator: DENIED on an explicit ``Deny`` that applies, or on a
    policy AWS would have refused (an undefined condition operator); otherwise NEUTRAL, and
    the IAM gate decides the caller's own permissions. moto's check applied a statement
    whatever its condition said, so a TLS-only ``Deny`` denied every object call.
    """
    from moto.iam.access_control import PermissionResult

    from tapharness.sandbox.iam.authorizer import request_context
    from tapharness.sandbox.iam.policy import (
        AuthzRequest,
        PolicySource,
        Principal,
        evaluate,
    )

    if self.policy is None:
        return PermissionResult.NEUTRAL
    document = self.policy.decode() if isinstance(self.policy, bytes) else self.policy
    caller = Principal(f"arn:aws:iam::{self.account_id}:root", self.account_id)
    context = request_context(caller, self.region_name)
    decision = evaluate(AuthzRequest(caller, action, resource, context), (),
                        PolicySource(f"bucket policy of {self.name}", document))
    if decision.reason.startswith(("explicit deny", "policy error")):
        return PermissionResult.DENIED
    return PermissionResult.NEUTRAL


# --- Speed: what a profile of the sandbox under load showed ----------------------------
# moto's server resolves the service of every request by listing moto's package directory,
# under a lock that every request takes: the list never changes while the process runs.
_MOTO_MODULES = tuple(moto_backends.list_of_moto_modules())


def _list_of_moto_modules() -> tuple[str, ...]:
    return _MOTO_MODULES


# DynamoDB TransactWriteItems: moto deep-copies every table a transaction touches, once per
# item, to roll back on failure (a third of the sandbox's CPU under load, growing with the
# table), and a rollback swaps the table object under the stream readers. As in DynamoDB,
# every condition is checked first against the state before the transaction, and then either
# all writes apply or none does; a lock makes the check and the writes one step.
_TRANSACTION_LOCK = threading.Lock()


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    targets: set[tuple[str, str]] = set()
    operations = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise MockValidationException("Unsupported transaction operation")
        table = self.get_table(op["TableName"])
        if op_type == "Put":
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        target = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if target in targets:
            raise MultipleTransactionsException()
        targets.add(target)
        if op_type == "Update":
            UpdateExpressionParser.make(op["UpdateExpression"])  # a malformed expression fails before any write
        operations.append((op_type, op, key))
    with _TRANSACTION_LOCK:
        errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
        for _, op, key in operations:
            condition = op.get("ConditionExpression")
            current = self.get_item(op["TableName"], key)
            if condition is not None and not get_filter_expression(
                    condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")).expr(current):
                old = (current.to_json()["Attributes"]
                       if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else None)
                errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
            else:
                errors.append((None, None, None))
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)
        for op_type, op, key in operations:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(op["TableName"], op["Item"], expression_attribute_names=names,
                              expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(op["TableName"], key, expression_attribute_names=names,
                                 expression_attribute_values=values)
            elif op_type == "Update":
                self.update_item(op["TableName"], key, update_expression=op["UpdateExpression"],
                                 expression_attribute_names=names, expression_attribute_values=values)


# DynamoDB Query on a table's own key: moto sorts every item of the table and then keeps
# those of the partition (two thirds of the sandbox's CPU once the table holds thousands of
# items). The query is the same on the one partition it asks for.
_TABLE_QUERY = Table.query


class _Partition:
    """A table seen through one partition key: ``all_items`` holds only that partition's."""

    def __init__(self, table: Table, hash_key: Any) -> None:
        self._table = table
        self._hash_key = hash_key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def all_items(self) -> list[Any]:
        partition = self._table.items.get(self._hash_key)
        if partition is None:
            return []
        return list(partition.values()) if self._table.range_key_attr else [partition]


_QUERY_SIGNATURE = inspect.signature(_TABLE_QUERY)


def _table_query(self: Table, *args: Any, **kwargs: Any) -> Any:
    arguments = _QUERY_SIGNATURE.bind(self, *args, **kwargs).arguments
    if arguments.get("index_name") or arguments["hash_key"] is None:
        return _TABLE_QUERY(self, *args, **kwargs)
    return _TABLE_QUERY(_Partition(self, arguments["hash_key"]), *args, **kwargs)  # type: ignore[arg-type]


# SQS ReceiveMessage: for each message moto builds every attribute of the queue (counting its
# messages) to read the retention period, so a receive costs the square of the queue's depth.
def _within_retention(self: SQSBackend, queue_name: str, message: Any) -> bool:
    period = int(self.queues[queue_name].message_retention_period)
    return period + message.sent_timestamp / 1000 > clock.now()


# Kinesis: moto finds a shard's last sequence number by listing every record's key, on every
# PutRecord and every LATEST iterator, and reads GetRecords by scanning the shard from its first
# record, so both cost the shard's length. Its sequence numbers are consecutive integers, so the
# last one is the newest key and a read starts right after the iterator's. PutRecord, which moto
# marks "not safe for concurrency", takes a lock: two concurrent puts could get the same number
# and the second would overwrite the first record.
_SHARD_LOCK = threading.Lock()


def _shard_max_sequence(self: Shard) -> int:
    return next(reversed(self.records), 0)


def _shard_min_sequence(self: Shard) -> int:
    return next(iter(self.records), 0)


def _shard_put_record(self: Shard, partition_key: str, data: str, explicit_hash_key: str) -> str:
    with _SHARD_LOCK:
        sequence = _shard_max_sequence(self) + 1
        self.records[sequence] = Record(partition_key, data, sequence, explicit_hash_key)
    return str(sequence)


def _shard_get_records(self: Shard, last_sequence_id: str, limit: int | None) -> tuple[list[Record], int, int]:
    last = int(last_sequence_id)
    newest = _shard_max_sequence(self)
    results: list[Record] = []
    sequence = max(last + 1, _shard_min_sequence(self))
    while sequence <= newest and (limit is None or len(results) < limit):
        record = self.records.get(sequence)
        if record is not None:
            results.append(record)
            last = sequence
        sequence += 1
    behind = self.records[newest].created_at - results[-1].created_at if results else 0.0
    return results, last, int(behind * 1000)


# Every look-up of a backend (``dynamodb_backends[account]``, several per request) takes moto's
# global backend lock and scans its list of every backend dictionary, comparing each in Python,
# to register one that is registered already: under load the requests queue on that lock (a
# third of the sandbox's samples). An account that is present was registered when it was added.
_CREATE_ACCOUNT_BACKEND = BackendDict._create_account_specific_backend


def _account_backend(self: BackendDict[Any], account_id: str) -> None:
    if account_id not in self:
        _CREATE_ACCOUNT_BACKEND(self, account_id)


# Every request: moto lists the handler class's methods with inspect.getmembers to find the
# action's method. The classes do not change once the shims are installed.
_METHOD_NAMES: dict[type, frozenset[str]] = {}


def _method_names(clazz: type) -> frozenset[str]:
    names = _METHOD_NAMES.get(clazz)
    if names is None:
        names = _METHOD_NAMES[clazz] = frozenset(method_names_from_class(clazz))
    return names


# DynamoDB answers with items (GetItem, Query, BatchGetItem, ...) went through moto's
# model-driven serializer, attribute value by attribute value (a fifth of the sandbox's CPU under
# load). Those results are already in the wire's JSON shape; only binary values need base64, as
# the serializer gives them, and absent members (None) are left out. A result holding anything
# else (the datetimes of DescribeTable) keeps moto's serializer.
_DYNAMO_EXECUTE = DynamoResult.execute_result
_DYNAMO_HEADERS = {"Content-Type": "application/x-amz-json-1.0"}


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _blob(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


def _dynamo_result(self: DynamoResult, context: Any) -> Any:
    try:
        body = json.dumps(_without_none(self.result), default=_blob)
    except TypeError:
        return _DYNAMO_EXECUTE(self, context)
    return 200, dict(_DYNAMO_HEADERS), body


# DynamoDB Streams GetRecords: the same serializer, over every record's keys and images (an
# eighth of the sandbox's CPU under load, for the recommendations mapping alone). The records
# are in the wire's shape but for ApproximateCreationDateTime, a datetime the JSON protocol
# sends as epoch seconds (with milliseconds), as moto's serializer does.
class _StreamRecords(ActionResult):
    def execute_result(self, context: Any) -> Any:
        result = dict(self.result)  # type: ignore[call-overload]
        result["Records"] = [_stream_record(r) for r in result["Records"]]
        return 200, dict(_DYNAMO_HEADERS), json.dumps(_without_none(result), default=_blob)


def _epoch(value: datetime) -> int | float:
    seconds = calendar.timegm(value.timetuple())
    return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds


def _stream_record(record: dict[str, Any]) -> dict[str, Any]:
    created = record["dynamodb"].get("ApproximateCreationDateTime")
    if not isinstance(created, datetime):
        return record
    return {**record, "dynamodb": {**record["dynamodb"], "ApproximateCreationDateTime": _epoch(created)}}


def streams_get_records(self: DynamoDBStreamsHandler) -> ActionResult:
    limit = self._get_param("Limit")
    return _StreamRecords(self.backend.get_records(self._get_param("ShardIterator"), 1000 if limit is None else limit))


# --- Service-to-service calls under IAM ---------------------------------------------------
# moto delivers S3 notifications and SNS subscriptions inline, and Step Functions calls its
# Lambda tasks with a fixed dummy key. Under IAM, AWS checks each of these: the target's
# resource policy (function permission, queue policy, and the queue's key policy for an
# encrypted queue) for the service principal with aws:SourceArn/aws:SourceAccount, and the
# state machine's role for its tasks. ``install(guard=...)`` (an ``iam.sessions.ServiceGuard``)
# turns these checks on.

_GUARD: ServiceGuard | None = None
_SUBSCRIPTION_PUBLISH = Subscription.publish


def _subscription_publish(self: Subscription, message: str, message_id: str, *args: Any, **kwargs: Any) -> None:
    """SNS delivery: dropped (as AWS drops it after its retries) when the target's policy refuses."""
    if _GUARD is not None and self.protocol in ("sqs", "lambda") and not _GUARD.may_deliver(
            "sns.amazonaws.com", self.endpoint, self.topic.arn, self.account_id):
        return
    _SUBSCRIPTION_PUBLISH(self, message, message_id, *args, **kwargs)


_S3_SEND_EVENT = s3_notifications.send_event


def _s3_send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
    """S3 event notifications, each target first checked for s3.amazonaws.com and the bucket."""
    config = bucket.notification_configuration
    if _GUARD is None or config is None:
        _S3_SEND_EVENT(account_id, event_name, bucket, key)
        return
    senders: list[tuple[list[Any], Callable[[str, Any, str, str], None]]] = [
        (config.cloud_function, s3_notifications._invoke_awslambda),
        (config.queue, lambda account, body, arn, region: s3_notifications._send_sqs_message(
            account, body, arn.split(":")[-1], region)),
        (config.topic, s3_notifications._send_sns_message),
    ]
    for notifications, send in senders:
        for notification in notifications:
            if notification.matches(event_name, key.name) and _GUARD.may_deliver(
                    "s3.amazonaws.com", notification.arn, bucket.arn, account_id):
                body = s3_notifications._get_s3_event(event_name, bucket, key, notification.id)
                send(account_id, body, notification.arn, notification.arn.split(":")[3])
    if config.event_bridge is not None:
        s3_notifications._send_event_bridge_message(account_id, bucket, event_name, key)


_TASK_ROLE = threading.local()
_BOTO_CLIENT_FOR = lambda_eval_utils.boto_client_for
_EXECUTE_INTEGRATION = lambda_eval_utils.execute_lambda_function_integration
_EXEC_LAMBDA = lambda_eval_utils.exec_lambda_function


def _task_client(region: str, service: str, state_credentials: Any = None) -> Any:
    """Step Functions' client for a task: signed as the state machine's role when IAM is on."""
    role = getattr(_TASK_ROLE, "current", None)
    if _GUARD is None or role is None:
        return _BOTO_CLIENT_FOR(region, service, state_credentials)
    role_arn, machine_arn = role
    return _GUARD.sessions.clients_for(role_arn, machine_arn.split(":")[-1], "states.amazonaws.com",
                                       machine_arn).client(service)


def _as_machine_role(original: Callable[..., Any]) -> Callable[..., Any]:
    def run(env: Any, *args: Any, **kwargs: Any) -> Any:
        context = env.states.context_object.context_object_data
        _TASK_ROLE.current = (context["Execution"]["RoleArn"], context["StateMachine"]["Id"])
        try:
            return original(env, *args, **kwargs)
        finally:
            _TASK_ROLE.current = None
    return run


_SFN_START_EXECUTION = StepFunctionsParserBackend.start_execution


def _start_execution(self: StepFunctionsParserBackend, state_machine_arn: str, name: str | None = None,
                     *args: Any, **kwargs: Any) -> Any:
    """StartExecution without a name gets a UUID, as on AWS (moto names every such execution "None",
    so the second one fails with ExecutionAlreadyExists)."""
    return _SFN_START_EXECUTION(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)


# --- CloudWatch Logs Insights: queries run by the sandbox's engine (moto's only lists events) ---

def _insights_query(log_groups: list[Any], query: str, start_time: int, end_time: int) -> list[dict[str, Any]]:
    """moto's ``logs_query.execute_query``, answered by ``insights``: StartQuery with a query the
    engine cannot run fails with MalformedQueryException, as AWS answers a malformed one."""
    records = (insights.LogRecord(event.timestamp, event.message, group.name, stream.log_stream_name, group.account_id)
               for group in log_groups for stream in group.streams.values() for event in stream.events
               if (not start_time or event.timestamp >= start_time * 1000)
               and (not end_time or event.timestamp <= end_time * 1000))
    try:
        return insights.run(query, records)
    except insights.MalformedQuery as exc:
        raise LogsClientError("MalformedQueryException", str(exc)) from None


MODEL_PATCHES: dict[tuple[Any, str], Any] = {
    (logs_models, "execute_query"): _insights_query,
    (moto_backends, "list_of_moto_modules"): _list_of_moto_modules,
    (DynamoDBBackend, "transact_write_items"): _transact_write_items,
    (Table, "query"): _table_query,
    (SQSBackend, "is_message_valid_based_on_retention_period"): _within_retention,
    (BackendDict, "_create_account_specific_backend"): _account_backend,
    (core_responses, "method_names_from_class"): _method_names,
    (DynamoResult, "execute_result"): _dynamo_result,
    (StreamShard, "add"): globaltables.stream_add,
    (Table, "describe"): globaltables.describe,
    (Shard, "get_max_sequence_number"): _shard_max_sequence,
    (Shard, "get_min_sequence_number"): _shard_min_sequence,
    (Shard, "put_record"): _shard_put_record,
    (Shard, "get_records"): _shard_get_records,
    (Subscription, "publish"): _subscription_publish,
    (s3_notifications, "send_event"): _s3_send_event,
    (lambda_eval_utils, "boto_client_for"): _task_client,
    (StepFunctionsParserBackend, "start_execution"): _start_execution,
    (lambda_eval_utils, "execute_lambda_function_integration"): _as_machine_role(_EXECUTE_INTEGRATION),
    (lambda_eval_utils, "exec_lambda_function"): _as_machine_role(_EXEC_LAMBDA),
    (s3_notifications, "_get_s3_event"): _s3_event,
    (SecurityGroupRule, "description"): property(_security_group_rule_description),
    (LambdaFunction, "__init__"): _lambda_init,
    (LambdaFunction, "get_configuration"): _lambda_configuration,
    (LambdaFunction, "update_configuration"): _lambda_update_configuration,
    (S3Response, "_bucket_response"): _bucket_response,
    (FakeBucket, "get_permission"): _bucket_permission,
    (RDSBackend, "create_db_instance"): _create_db_instance,
    (RDSBackend, "modify_db_instance"): _modify_db_instance,
    (DBCluster, "scaling_configuration_info"): property(_scaling_configuration_info),
    (ElastiCacheBackend, "create_replication_group"): _create_replication_group,
    (ElastiCacheBackend, "delete_replication_group"): _delete_replication_group,
    (ElastiCacheBackend, "delete_cache_cluster"): _delete_cache_cluster,
    (ElastiCacheBackend, "list_tags_for_resource"): _elasticache_list_tags,
    (Queue, "attributes"): property(_queue_attributes),
    (Queue, "_set_attributes"): _queue_set_attributes,
    (SQSBackend, "get_queue_attributes"): _get_queue_attributes,
}


ShimMethod = Callable[..., Any]
SHIMS: dict[tuple[type[BaseResponse], str], ShimMethod] = {
    (StepFunctionResponse, "validate_state_machine_definition"): validate_state_machine_definition,
    (StepFunctionResponse, "list_state_machine_versions"): list_state_machine_versions,
    (DynamoHandler, "update_contributor_insights"): update_contributor_insights,
    (DynamoHandler, "describe_contributor_insights"): describe_contributor_insights,
    (DynamoHandler, "list_contributor_insights"): list_contributor_insights,
    (LogsResponse, "put_query_definition"): put_query_definition,
    (LogsResponse, "describe_query_definitions"): describe_query_definitions,
    (LogsResponse, "delete_query_definition"): delete_query_definition,
    (ElastiCacheResponse, "delete_cache_subnet_group"): delete_cache_subnet_group,
    (ElastiCacheResponse, "create_cache_parameter_group"): create_cache_parameter_group,
    (ElastiCacheResponse, "describe_cache_parameter_groups"): describe_cache_parameter_groups,
    (ElastiCacheResponse, "modify_cache_parameter_group"): modify_cache_parameter_group,
    (ElastiCacheResponse, "reset_cache_parameter_group"): reset_cache_parameter_group,
    (ElastiCacheResponse, "describe_cache_parameters"): describe_cache_parameters,
    (ElastiCacheResponse, "delete_cache_parameter_group"): delete_cache_parameter_group,
    (AthenaResponse, "list_tags_for_resource"): athena_list_tags_for_resource,
    (AthenaResponse, "update_work_group"): update_work_group,
    (APIGatewayResponse, "update_method"): update_method,
    (LambdaResponse, "get_runtime_management_config"): get_runtime_management_config,
    (SNSResponse, "get_data_protection_policy"): get_data_protection_policy,
    (ApplicationAutoScalingResponse, "register_scalable_target"): register_scalable_target,
    (ApplicationAutoScalingResponse, "list_tags_for_resource"): list_tags_for_resource,
    (ApplicationAutoScalingResponse, "tag_resource"): tag_resource,
    (ApplicationAutoScalingResponse, "untag_resource"): untag_resource,
    (SNSResponse, "get_topic_attributes"): get_topic_attributes,
    (KmsResponse, "enable_key_rotation"): enable_key_rotation,
    (KmsResponse, "get_key_rotation_status"): get_key_rotation_status,
    (KinesisResponse, "create_stream"): create_stream,
    (DynamoDBStreamsHandler, "get_records"): streams_get_records,
    (DynamoHandler, "update_table"): globaltables.update_table,
    (SageMakerRuntimeResponse, "invoke_endpoint"): invoke_endpoint,
    (AthenaResponse, "start_query_execution"): start_query_execution,
    (AthenaResponse, "get_query_execution"): get_query_execution,
}


def install(guard: ServiceGuard | None = None) -> None:
    """Add every shim to moto (process-wide; call before the server builds its apps).

    ``guard`` turns on IAM for service-to-service calls (see ``ServiceGuard``); None leaves
    them unchecked."""
    global _GUARD
    _GUARD = guard
    for (response_class, name), function in SHIMS.items():
        setattr(response_class, name, function)
    for (model, name), replacement in MODEL_PATCHES.items():
        setattr(model, name, replacement)
    lambda_urls.url_paths.setdefault(RUNTIME_MANAGEMENT_PATH, LambdaResponse.dispatch)
