"""The AWS/* metrics AWS's services publish, published by the sandbox from what really happened.

Each service's own metrics, with the dimensions AWS gives them (the services' "CloudWatch
metrics" pages), so a stack's alarms see their conditions:

- AWS/Lambda, by FunctionName: Invocations, Errors, Duration (ms) per invocation; IteratorAge (ms)
  per stream batch an event source mapping hands over (the age of its last record);
- AWS/SQS, by QueueName, sampled every minute: ApproximateNumberOfMessagesVisible,
  ApproximateNumberOfMessagesNotVisible, ApproximateAgeOfOldestMessage (s, on the sandbox's clock);
- AWS/States, by StateMachineArn, per execution that ended: ExecutionsSucceeded, ExecutionsFailed,
  ExecutionsTimedOut, ExecutionsAborted, ExecutionTime (ms);
- AWS/ApiGateway: REST APIs by ApiName and Stage (Count, 4XXError, 5XXError, Latency), HTTP APIs by
  ApiId and Stage (Count, 4xx, 5xx, Latency);
- AWS/ApplicationELB, by LoadBalancer (``app/<name>/<id>``): RequestCount, TargetResponseTime (s),
  HTTPCode_Target_2XX..5XX_Count, HTTPCode_ELB_5XX_Count;
- throttling the sandbox injects (``/_sandbox/faults``): AWS/DynamoDB WriteThrottleEvents or
  ReadThrottleEvents by TableName, AWS/Kinesis WriteProvisionedThroughputExceeded or
  ReadProvisionedThroughputExceeded by StreamName.

Metrics of what the sandbox does not run (Aurora's DBLoad, ElastiCache's memory, capacity
consumed) are not published: an alarm on them stays INSUFFICIENT_DATA and ``/_sandbox/alarms``
says its metric was never reported.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends

from tapharness.sandbox import clock

log = logging.getLogger("tapharness.sandbox.metrics")
_lock = threading.Lock()


Values = dict[str, tuple[float, str]]  # metric name -> (value, unit)


def put(account: str, region: str, namespace: str, dimensions: dict[str, str], values: Values) -> None:
    """The data points one event makes, as the service publishes them: stamped when received, on the
    sandbox's clock (``services.cloudwatch``)."""
    dims = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    data = [{"MetricName": name, "Value": float(value), "Unit": unit, "Dimensions": dims}
            for name, (value, unit) in values.items()]
    try:
        with _lock:
            cloudwatch_backends[account][region].put_metric_data(namespace, data)
    except Exception:  # a metric the sandbox cannot record never fails the request that made it
        log.exception("metrics %s %s not recorded", namespace, sorted(values))


def lambda_invocation(account: str, region: str, function_name: str, errored: bool, duration_ms: float) -> None:
    put(account, region, "AWS/Lambda", {"FunctionName": function_name},
        {"Invocations": (1, "Count"), "Errors": (1 if errored else 0, "Count"), "Duration": (duration_ms, "Milliseconds")})


def iterator_age(function_arn: str, age_ms: float) -> None:
    _, _, _, region, account, _, name, *_ = function_arn.split(":")
    put(account, region, "AWS/Lambda", {"FunctionName": name}, {"IteratorAge": (max(0.0, age_ms), "Milliseconds")})


def api_request(account: str, region: str, dimensions: dict[str, str], status: int, latency_ms: float,
                http_api: bool) -> None:
    four, five = ("4xx", "5xx") if http_api else ("4XXError", "5XXError")
    put(account, region, "AWS/ApiGateway", dimensions,
        {"Count": (1, "Count"), four: (1 if 400 <= status < 500 else 0, "Count"), five: (1 if status >= 500 else 0, "Count"),
         "Latency": (latency_ms, "Milliseconds")})


def alb_request(account: str, region: str, load_balancer_arn: str, status: int, target_seconds: float | None) -> None:
    """A request through a load balancer: the target's answer (``target_seconds`` its time), or the
    balancer's own when no target answered (None)."""
    values: Values = {"RequestCount": (1, "Count")}
    if target_seconds is not None:
        values |= {"TargetResponseTime": (target_seconds, "Seconds"), f"HTTPCode_Target_{status // 100}XX_Count": (1, "Count")}
    elif status >= 500:
        values["HTTPCode_ELB_5XX_Count"] = (1, "Count")
    put(account, region, "AWS/ApplicationELB", {"LoadBalancer": load_balancer_arn.split(":loadbalancer/", 1)[-1]}, values)


# The throttling errors a request can be answered with, and the metric each counts in.
_THROTTLES = {
    ("dynamodb", "read"): ("AWS/DynamoDB", "ReadThrottleEvents", "TableName"),
    ("dynamodb", "write"): ("AWS/DynamoDB", "WriteThrottleEvents", "TableName"),
    ("kinesis", "read"): ("AWS/Kinesis", "ReadProvisionedThroughputExceeded", "StreamName"),
    ("kinesis", "write"): ("AWS/Kinesis", "WriteProvisionedThroughputExceeded", "StreamName"),
}
_READS = ("Get", "Query", "Scan", "BatchGet", "TransactGet", "GetRecords", "GetShardIterator")
_THROTTLE_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                             "RequestLimitExceeded", "LimitExceededException"})


def throttled(account: str, region: str, service: str, operation: str, code: str, params: dict[str, Any]) -> None:
    """A request answered with a throttling error: the table's or stream's throttle metric."""
    if code not in _THROTTLE_CODES:
        return
    kind = "read" if operation.startswith(_READS) else "write"
    found = _THROTTLES.get((service, kind))
    if found is None:
        return
    namespace, name, dimension = found
    names = ([params["TableName"]] if params.get("TableName") else list(params.get("RequestItems") or {}))
    if params.get("TransactItems"):  # a transaction throttles each table it writes
        names = sorted({action["TableName"] for entry in params["TransactItems"] for action in entry.values()
                        if isinstance(action, dict) and action.get("TableName")})
    if service == "kinesis":
        stream = params.get("StreamName") or str(params.get("StreamARN", "")).rsplit("/", 1)[-1]
        names = [stream] if stream else []
    for resource in names:
        put(account, region, namespace, {dimension: str(resource)}, {name: (1, "Count")})


class Sampler:
    """What the services sample on their own: queue depths and ages each minute, executions as they end."""

    def __init__(self) -> None:
        self._ended: set[str] = set()
        self._sampled_minute = -1

    def __call__(self, force: bool = False) -> None:
        from moto.sqs.models import sqs_backends
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        now = clock.now()
        if force or int(now // 60) != self._sampled_minute:  # SQS publishes its queue metrics once a minute
            self._sampled_minute = int(now // 60)
            for account, regions in list(sqs_backends.items()):
                for region, backend in list(regions.items()):
                    for queue in list(backend.queues.values()):
                        self._queue(account, region, queue, now)
        for account, regions in list(stepfunctions_parser_backends.items()):
            for region, backend in list(regions.items()):
                for execution in backend._get_executions():
                    self._execution(account, region, execution)

    @staticmethod
    def _queue(account: str, region: str, queue: Any, now: float) -> None:
        messages = list(queue._messages)
        visible = [m for m in messages if m.visible]
        oldest = min((m.sent_timestamp for m in messages), default=None)
        put(account, region, "AWS/SQS", {"QueueName": queue.name}, {
            "ApproximateNumberOfMessagesVisible": (len(visible), "Count"),
            "ApproximateNumberOfMessagesNotVisible": (len(messages) - len(visible), "Count"),
            "ApproximateAgeOfOldestMessage": (0 if oldest is None else max(0.0, now - oldest / 1000), "Seconds")})

    def _execution(self, account: str, region: str, execution: Any) -> None:
        status = str(getattr(execution.status, "value", execution.status))
        if status == "RUNNING" or execution.exec_arn in self._ended:
            return
        self._ended.add(execution.exec_arn)
        values: Values = {}
        name = {"SUCCEEDED": "ExecutionsSucceeded", "FAILED": "ExecutionsFailed", "TIMED_OUT": "ExecutionsTimedOut",
                "ABORTED": "ExecutionsAborted"}.get(status)
        if name:
            values[name] = (1, "Count")
        start, stop = getattr(execution, "start_date", None), getattr(execution, "stop_date", None)
        if start is not None and stop is not None:
            values["ExecutionTime"] = (_seconds(stop, start) * 1000, "Milliseconds")
        if values:
            put(account, region, "AWS/States", {"StateMachineArn": execution.state_machine_arn}, values)


def _seconds(stop: Any, start: Any) -> float:
    if isinstance(stop, datetime) and isinstance(start, datetime):
        return (stop - start).total_seconds()
    return float(stop) - float(start)
