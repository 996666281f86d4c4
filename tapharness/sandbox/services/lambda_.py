"""Lambda: the sandbox's changes to moto's Lambda API (the module is ``lambda_``: ``lambda`` is a
keyword).

GetRuntimeManagementConfig (and its URL, which moto does not route), the DeadLetterConfig
and LoggingConfig moto accepts and drops, and under IAM (``patches.GUARD``) the checks Lambda
makes of the execution role when a function or an event source mapping is created or changed.
The functions themselves run in ``tapharness.sandbox.lambda_runner``, which installs its own
invoke hook.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from moto.awslambda import urls as lambda_urls
from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.models import LambdaFunction
from moto.awslambda.responses import LambdaResponse

from tapharness.sandbox import patches
from tapharness.sandbox.iam.catalog import Need
from tapharness.sandbox.iam.policy import Principal
from tapharness.sandbox.lambda_runner import INVOCATION
from tapharness.sandbox.patches import patch

RUNTIME_MANAGEMENT_PATH = r"{0}/(?P<api_version>[^/]+)/functions/(?P<function_name>[\w_:%-]+)/runtime-management-config/?$"


# --- Lambda --------------------------------------------------------------------------

@patch(LambdaResponse, "get_runtime_management_config")
def get_runtime_management_config(self: LambdaResponse) -> Any:
    """GetRuntimeManagementConfig: every function updates its runtime automatically."""
    name = self.path.rstrip("/").split("/")[-2]
    function = self.backend.get_function(name)
    return 200, {}, json.dumps({"UpdateRuntimeOn": "Auto", "FunctionArn": function.function_arn})


patch.url(lambda_urls, RUNTIME_MANAGEMENT_PATH, LambdaResponse.dispatch)


# --- moto behaviour fixes (model patches) ---------------------------------------------

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


@patch(LambdaFunction, "__init__")
def _lambda_init(self: LambdaFunction, account_id: str, spec: dict[str, Any], region: str,
                 version: str | int = 1) -> None:
    _LAMBDA_INIT(self, account_id, spec, region, version)
    self.dead_letter_config = None
    self.logging_config = None
    _apply_lambda_settings(self, spec)


@patch(LambdaFunction, "get_configuration")
def _lambda_configuration(self: LambdaFunction, on_create: bool = False) -> dict[str, Any]:
    """GetFunctionConfiguration with DeadLetterConfig and LoggingConfig (AWS always returns the latter)."""
    config = _LAMBDA_CONFIGURATION(self, on_create)
    if self.__dict__.get("dead_letter_config"):
        config["DeadLetterConfig"] = self.dead_letter_config
    config["LoggingConfig"] = {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{self.function_name}",
                               **(self.__dict__.get("logging_config") or {})}
    return config


@patch(LambdaFunction, "update_configuration")
def _lambda_update_configuration(self: LambdaFunction, config_updates: dict[str, Any]) -> dict[str, Any]:
    _apply_lambda_settings(self, config_updates)
    return _LAMBDA_UPDATE_CONFIGURATION(self, config_updates)


# --- The execution role, checked when a function or a mapping is created or changed ----------
# Lambda refuses CreateFunction, UpdateFunctionConfiguration, CreateEventSourceMapping and
# UpdateEventSourceMapping with InvalidParameterValueException when the role it is given cannot
# do what the configuration needs. What each needs is AWS's documented list; the messages are
# AWS's own (AWS does not document them; they are quoted from what its API answered in public
# issue threads), and the AWS provider retries on them while IAM changes propagate.

_CANNOT_ASSUME = "The role defined for the function cannot be assumed by Lambda."
# "ec2:CreateNetworkInterface, ec2:DescribeNetworkInterfaces, ... ec2:DeleteNetworkInterface ...
# allow them on all resources" (Lambda developer guide, configuration-vpc.html); the three Lambda
# uses to attach a function to its subnets are the ones its refusals name.
_ENI_ACTIONS = ("CreateNetworkInterface", "DescribeNetworkInterfaces", "DeleteNetworkInterface")
# To a queue "sqs:SendMessage", to a topic "sns:Publish" (invocation-async-retain-records.html and,
# for a mapping's on-failure destination, with-ddb.html / with-kinesis.html).
_SEND = {"sqs": ("sqs:SendMessage", "SendMessage on SQS"), "sns": ("sns:Publish", "Publish on SNS")}
# "Lambda needs the following permissions to manage messages in your Amazon SQS queue:
# sqs:ReceiveMessage, sqs:DeleteMessage, sqs:GetQueueAttributes" (with-sqs.html).
_SQS_SOURCE = ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")
# DynamoDB streams: "dynamodb:DescribeStream, dynamodb:GetRecords, dynamodb:GetShardIterator,
# dynamodb:ListStreams" (with-ddb.html); Kinesis: the three of services-kinesis-create.html's list
# that Lambda's refusal names as well. ListStreams has no resource type: it is asked of "*".
_STREAM_SOURCE = {"dynamodb": ("DescribeStream", "GetRecords", "GetShardIterator", "ListStreams"),
                  "kinesis": ("DescribeStream", "GetRecords", "GetShardIterator")}
Check = tuple[list[Need], str]


def _send_check(target_arn: str, who: str = "provided execution role") -> list[Check]:
    service = target_arn.split(":")[2] if target_arn.startswith("arn:") else ""
    if service not in _SEND:
        return []
    action, what = _SEND[service]
    return [([Need(action, target_arn)], f"The {who} does not have permissions to call {what}")]


def _function_checks(config: dict[str, Any]) -> list[Check]:
    """What the role must be allowed for this function configuration."""
    checks: list[Check] = []
    if (config.get("VpcConfig") or {}).get("SubnetIds"):
        checks += [([Need(f"ec2:{action}", "*")],
                    f"The provided execution role does not have permissions to call {action} on EC2")
                   for action in _ENI_ACTIONS]
    target = (config.get("DeadLetterConfig") or {}).get("TargetArn")
    return checks + (_send_check(target) if target else [])


def _source_checks(source_arn: str) -> list[Check]:
    """What the role must be allowed to read a mapping's source."""
    service = source_arn.split(":")[2] if source_arn.startswith("arn:") else ""
    if service == "sqs":
        return [([Need(f"sqs:{action}", source_arn)],
                 f"The function execution role does not have permissions to call {action} on SQS")
                for action in _SQS_SOURCE]
    if service in _STREAM_SOURCE:
        needs = [Need(f"{service}:{action}", "*" if action == "ListStreams" else source_arn)
                 for action in _STREAM_SOURCE[service]]
        message = (f"Cannot access stream {source_arn}. Please ensure the role can perform the GetRecords, "
                   "GetShardIterator, DescribeStream, and ListStreams Actions on your stream in IAM.")
        return [(needs, message)]
    return []


def _destination_checks(destination: dict[str, Any] | None) -> list[Check]:
    target = ((destination or {}).get("OnFailure") or {}).get("Destination")
    if target and target.startswith("arn:aws:s3:::"):
        # "For an S3 destination: s3:PutObject and s3:ListBucket" (kinesis-on-failure-destination.html).
        return [([Need("s3:PutObject", f"{target}/aws/lambda/*")],
                 "The provided execution role does not have permissions to call PutObject on S3"),
                ([Need("s3:ListBucket", target)],
                 "The provided execution role does not have permissions to call ListBucket on S3")]
    return _send_check(target) if target else []


def _check_role(role_arn: str, session: str, checks: list[Check], label: str, region: str) -> None:
    """Raise Lambda's InvalidParameterValueException when the role fails a check (IAM on only).

    Decided on the role's policies as a session of it would be, without issuing one: the
    function's own sessions start when it runs, after any later change to the role."""
    guard = patches.GUARD
    if guard is None:
        return
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    if not account or not guard.authorizer.authorize_service("lambda.amazonaws.com", "sts:AssumeRole", role_arn,
                                                             None, account, region).allowed:
        raise InvalidParameterValueException(_CANNOT_ASSUME)
    principal = Principal(f"arn:aws:sts::{account}:assumed-role/{role_arn.rsplit('/', 1)[-1]}/{session}", account,
                          role_arn=role_arn)
    for needs, message in checks:
        if not all(decision.allowed for decision in guard.authorizer.decide(principal, needs, label, region)):
            raise InvalidParameterValueException(message)


def _checked(original: Callable[[LambdaResponse], Any], check: Callable[[LambdaResponse], None]) -> Callable[..., Any]:
    def call(self: LambdaResponse) -> Any:
        check(self)
        return original(self)
    return call


def _check_new_function(self: LambdaResponse) -> None:
    body = self.json_body
    _check_role(body.get("Role", ""), body.get("FunctionName", "").rsplit(":", 1)[-1], _function_checks(body),
                "lambda.CreateFunction (execution role)", self.region)


def _check_function_update(self: LambdaResponse) -> None:
    body = self.json_body
    if not {"Role", "VpcConfig", "DeadLetterConfig"} & body.keys():
        return
    function = self.backend.get_function(unquote(self.path.rsplit("/", 2)[-2]), self._get_param("Qualifier", None))
    config = {"VpcConfig": function._vpc_config, "DeadLetterConfig": getattr(function, "dead_letter_config", None),
              **body}
    _check_role(body.get("Role") or function.role, function.function_name, _function_checks(config),
                "lambda.UpdateFunctionConfiguration (execution role)", self.region)


def _check_new_mapping(self: LambdaResponse) -> None:
    body = self.json_body
    function = self.backend.get_function(body.get("FunctionName", ""), None)
    checks = _source_checks(body.get("EventSourceArn", "")) + _destination_checks(body.get("DestinationConfig"))
    _check_role(function.role, function.function_name, checks, "lambda.CreateEventSourceMapping (execution role)",
                self.region)


def _check_mapping_update(self: LambdaResponse) -> None:
    body = self.json_body
    mapping = self.backend.get_event_source_mapping(self.path.split("/")[-1])
    if mapping is None:
        return
    function = self.backend.get_function(body.get("FunctionName") or mapping.function_arn, None)
    checks = _source_checks(mapping.event_source_arn) if "FunctionName" in body else []
    checks += _destination_checks(body.get("DestinationConfig"))
    if checks:  # a change of batch size or window asks nothing of the role
        _check_role(function.role, function.function_name, checks,
                    "lambda.UpdateEventSourceMapping (execution role)", self.region)


for _name, _check in (("create_function", _check_new_function),
                      ("update_function_configuration", _check_function_update),
                      ("create_event_source_mapping", _check_new_mapping),
                      ("update_event_source_mapping", _check_mapping_update)):
    patch.replace(LambdaResponse, _name, _checked(getattr(LambdaResponse, _name), _check))


# --- Invoke: synchronous or not, for reserved concurrency (``lambda_runner``) ---------------------

_INVOKE = LambdaResponse.invoke


@patch(LambdaResponse, "invoke")
def invoke(self: LambdaResponse) -> Any:
    """Invoke: a RequestResponse invocation over the function's reserved concurrency is refused with
    429 TooManyRequestsException; an Event one waits for a slot (Lambda queues and retries it)."""
    INVOCATION.sync = self.headers.get("X-Amz-Invocation-Type", "RequestResponse") == "RequestResponse"
    try:
        return _INVOKE(self)
    finally:
        INVOCATION.sync = False
