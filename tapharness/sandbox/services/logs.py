"""CloudWatch Logs: query definitions (kept on the backend), Logs Insights queries run by the
sandbox's engine (``tapharness.sandbox.insights``) where moto's StartQuery only lists events,
embedded-metric-format events turned into metrics, and under IAM (``patches.GUARD``) a log group's
KMS key checked as CloudWatch Logs checks it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from moto.core.utils import unix_time
from moto.logs import models as logs_models
from moto.logs.exceptions import LogsClientError
from moto.logs.responses import LogsResponse

from tapharness.sandbox import insights, patches
from tapharness.sandbox.iam.authorizer import key_arn
from tapharness.sandbox.patches import json_error, patch, store

# --- CloudWatch Logs -----------------------------------------------------------------

@patch(LogsResponse, "put_query_definition")
def put_query_definition(self: LogsResponse) -> str:
    """PutQueryDefinition: create, or update when queryDefinitionId is given."""
    definitions = store(self.logs_backend, "query_definitions")
    definition_id = self._get_param("queryDefinitionId") or str(uuid.uuid4())
    definitions[definition_id] = {
        "queryDefinitionId": definition_id,
        "name": self._get_param("name"),
        "queryString": self._get_param("queryString"),
        "logGroupNames": self._get_param("logGroupNames") or [],
        "lastModified": int(unix_time() * 1000),
    }
    return json.dumps({"queryDefinitionId": definition_id})


@patch(LogsResponse, "describe_query_definitions")
def describe_query_definitions(self: LogsResponse) -> str:
    """DescribeQueryDefinitions, filtered by name prefix."""
    prefix = self._get_param("queryDefinitionNamePrefix") or ""
    definitions = store(self.logs_backend, "query_definitions").values()
    return json.dumps({"queryDefinitions": [d for d in definitions if d["name"].startswith(prefix)]})


@patch(LogsResponse, "delete_query_definition")
def delete_query_definition(self: LogsResponse) -> Any:
    """DeleteQueryDefinition; an unknown id is ResourceNotFoundException, as in AWS."""
    definitions = store(self.logs_backend, "query_definitions")
    if definitions.pop(self._get_param("queryDefinitionId"), None) is None:
        return json_error("ResourceNotFoundException", "The specified query definition does not exist.")
    return json.dumps({"success": True})


# --- CloudWatch Logs Insights: queries run by the sandbox's engine (moto's only lists events) ---

@patch(logs_models, "execute_query")
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


# --- A log group's key (under IAM) -----------------------------------------------------------
# CloudWatch Logs uses a log group's key as the service principal logs.<region>.amazonaws.com,
# with the log group's ARN as the encryption context ("kms:EncryptionContext:aws:logs:arn"), so
# the key policy must allow it (CloudWatch Logs user guide, encrypt-log-data-kms.html). A key that
# does not is refused when the group is created, with the message AWS answers (moto has no AssociateKmsKey).

_CREATE_LOG_GROUP = LogsResponse.create_log_group
_KEY_USES = ("kms:GenerateDataKey", "kms:Decrypt")


def _check_log_group_key(self: LogsResponse, group: str, key: str | None) -> None:
    if patches.GUARD is None or not key:
        return
    account, region = self.current_account, self.region
    group_arn = f"arn:aws:logs:{region}:{account}:log-group:{group}"
    arn = key_arn(key, region, account)
    if arn is None:
        return
    context = {"kms:encryptioncontext:aws:logs:arn": [group_arn]}
    if not all(patches.GUARD.authorizer.authorize_service(f"logs.{region}.amazonaws.com", action, arn, None, account,
                                                          region, context).allowed for action in _KEY_USES):
        raise LogsClientError("AccessDeniedException", "The specified KMS key does not exist or is not allowed to "
                              f"be used with Arn '{group_arn}'")


@patch(LogsResponse, "create_log_group")
def create_log_group(self: LogsResponse) -> str:
    """CreateLogGroup, its kmsKeyId first checked for the service."""
    _check_log_group_key(self, self._get_param("logGroupName"), self._get_param("kmsKeyId"))
    return _CREATE_LOG_GROUP(self)


# --- Embedded metric format -------------------------------------------------------------------
# "CloudWatch automatically extracts the custom metrics" from log events in the embedded metric
# format: a JSON event whose "_aws" member lists CloudWatchMetrics directives (Namespace,
# Dimensions: sets of member names, Metrics: names and units), the values being the event's
# members of those names (a value may be a list) (CloudWatch user guide, "Specification: Embedded
# metric format"). Lambda's log events are such events when a function prints them (Powertools
# Metrics does), so alarms on a function's own metrics see them, as on AWS.

_PUT_LOG_EVENTS = logs_models.LogsBackend.put_log_events


def emf_metrics(message: str) -> list[tuple[str, dict[str, Any]]]:
    """The (namespace, PutMetricData datum) pairs an embedded-metric-format log event carries."""
    start = message.find("{")
    if start < 0 or '"_aws"' not in message:
        return []
    try:
        event = json.loads(message[start:])
        directives = event["_aws"]["CloudWatchMetrics"]
        # moto keeps metric timestamps as naive UTC datetimes
        timestamp = datetime.fromtimestamp(float(event["_aws"]["Timestamp"]) / 1000, UTC).replace(tzinfo=None)
    except (ValueError, KeyError, TypeError):
        return []
    found = []
    for directive in directives if isinstance(directives, list) else []:
        for dimension_set in directive.get("Dimensions") or [[]]:
            dimensions = [{"Name": name, "Value": str(event[name])} for name in dimension_set if name in event]
            for metric in directive.get("Metrics") or []:
                values = event.get(metric.get("Name"))
                for value in values if isinstance(values, list) else [values]:
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        found.append((str(directive.get("Namespace")), {
                            "MetricName": metric["Name"], "Value": float(value), "Dimensions": dimensions,
                            "Timestamp": timestamp, "Unit": metric.get("Unit")}))
    return found


@patch(logs_models.LogsBackend, "put_log_events")
def put_log_events(self: logs_models.LogsBackend, log_group_name: str, log_stream_name: str,
                   log_events: list[dict[str, Any]]) -> Any:
    """PutLogEvents, and the metrics of its embedded-metric-format events put to CloudWatch."""
    from moto.cloudwatch.models import cloudwatch_backends

    answer = _PUT_LOG_EVENTS(self, log_group_name, log_stream_name, log_events)
    metrics = [pair for event in log_events for pair in emf_metrics(str(event.get("message", "")))]
    if metrics:
        cloudwatch = cloudwatch_backends[self.account_id][self.region_name]
        for namespace, datum in metrics:
            cloudwatch.put_metric_data(namespace, [datum])
    return answer
