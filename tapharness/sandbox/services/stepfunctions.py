"""Step Functions: the sandbox's changes to moto's Step Functions.

ValidateStateMachineDefinition (``tapharness.sandbox.asl``, shared with the offline plans, which
install it with ``asl.install()``), ListStateMachineVersions, StartExecution without a name, and
under IAM (``patches.GUARD``): every task (Lambda, SQS, SNS, DynamoDB, EventBridge, Step
Functions, aws-sdk, ...) called as the state machine's role, or as the task's own
``Credentials.RoleArn``; and a state machine under a customer managed key starts only if its role
may use the key, as AWS's "Data at rest encryption in Step Functions" requires; a Choice on a
path the input lacks fails with States.Runtime, as on AWS.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

from moto.core.exceptions import AWSError
from moto.core.utils import unix_time
from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.choice.comparison.comparison_operator_type import (
    ComparisonOperatorType,
)
from moto.stepfunctions.parser.asl.component.state.choice.comparison.comparison_variable import (
    ComparisonVariable,
)
from moto.stepfunctions.parser.asl.component.state.choice.comparison.variable import (
    NoSuchVariable,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
    lambda_eval_utils,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_factory,  # noqa: F401  imports every service integration, each binding boto_client_for
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
    StateTaskService,
)
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils import boto_client
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse

from tapharness.sandbox import patches
from tapharness.sandbox.asl import validate_state_machine_definition
from tapharness.sandbox.iam.authorizer import key_arn
from tapharness.sandbox.iam.catalog import Need
from tapharness.sandbox.iam.sessions import AssumeRoleRefused
from tapharness.sandbox.patches import patch

# --- Step Functions ------------------------------------------------------------------

patch.replace(StepFunctionResponse, "validate_state_machine_definition", validate_state_machine_definition)


@patch(StepFunctionResponse, "list_state_machine_versions")
def list_state_machine_versions(self: StepFunctionResponse) -> str:
    """ListStateMachineVersions: the versions moto keeps for the state machine."""
    machine = self.stepfunction_backend.describe_state_machine(self._get_param("stateMachineArn"))
    versions = [
        {"stateMachineVersionArn": version.arn, "creationDate": unix_time(version.creation_date)}
        for version in machine.versions.values()
    ]
    return json.dumps({"stateMachineVersions": versions})


# --- Service-to-service calls under IAM (see ``patches.GUARD``) -------------------------
# moto calls every task with a fixed dummy key; AWS calls them as the state machine's role (or the
# task's Credentials.RoleArn), in a session of the service states.amazonaws.com.


_TASK_ROLE = threading.local()
_BOTO_CLIENT_FOR = boto_client.boto_client_for
_EXECUTE_INTEGRATION = lambda_eval_utils.execute_lambda_function_integration
_EXEC_LAMBDA = lambda_eval_utils.exec_lambda_function
_EVAL_SERVICE_EXECUTION = StateTaskService._eval_execution


def _task_client(region: str, service: str, state_credentials: Any = None) -> Any:
    """Step Functions' client for a task: signed as the task's role when IAM is on."""
    running = getattr(_TASK_ROLE, "current", None)
    if patches.GUARD is None or running is None:
        return _BOTO_CLIENT_FOR(region, service, state_credentials)
    execution_role, machine_arn = running
    role_arn = getattr(state_credentials, "role_arn", None) or execution_role
    return patches.GUARD.sessions.clients_for(role_arn, machine_arn.split(":")[-1], "states.amazonaws.com",
                                              machine_arn).client(service)


# Each integration module imported the function by name: replace it wherever it was bound.
for _module in [m for name, m in sys.modules.items() if name.startswith("moto.stepfunctions.parser")]:
    if getattr(_module, "boto_client_for", None) is _BOTO_CLIENT_FOR:
        patch.replace(_module, "boto_client_for", _task_client)


def _machine_role(env: Any) -> tuple[str, str]:
    context = env.states.context_object.context_object_data
    return context["Execution"]["RoleArn"], context["StateMachine"]["Id"]


def _as_machine_role(original: Callable[..., Any], env_at: int = 0) -> Callable[..., Any]:
    """``original`` with its tasks' clients signed as the execution's role (its ``env`` is argument ``env_at``)."""
    def run(*args: Any, **kwargs: Any) -> Any:
        _TASK_ROLE.current = _machine_role(kwargs["env"] if "env" in kwargs else args[env_at])
        try:
            return original(*args, **kwargs)
        finally:
            _TASK_ROLE.current = None
    return run


patch.replace(lambda_eval_utils, "execute_lambda_function_integration", _as_machine_role(_EXECUTE_INTEGRATION))
patch.replace(lambda_eval_utils, "exec_lambda_function", _as_machine_role(_EXEC_LAMBDA))
patch.replace(StateTaskService, "_eval_execution", _as_machine_role(_EVAL_SERVICE_EXECUTION, env_at=1))


# --- Starting an execution ----------------------------------------------------------------


class KmsAccessDeniedException(AWSError):
    TYPE = "KmsAccessDeniedException"
    STATUS = 400


def _customer_key(machine: Any) -> str | None:
    config = getattr(machine, "encryptionConfiguration", None) or {}
    return config.get("kmsKeyId") if config.get("type") == "CUSTOMER_MANAGED_KMS_KEY" else None


def _check_machine_key(machine: Any) -> None:
    """"To successfully start an execution for Standard workflows and Asynchronous Express workflows
    with customer managed keys, your execution role requires kms:Decrypt and kms:GenerateDataKey"
    (https://docs.aws.amazon.com/step-functions/latest/dg/encryption-at-rest.html), with the state
    machine's ARN as encryption context; the caller of StartExecution needs no KMS permission. With
    CloudWatch Logs on, the role also needs kms:GenerateDataKey with the logs' SourceArn context,
    and the key policy must let delivery.logs.amazonaws.com kms:Decrypt (the same page): a log
    delivery refused is recorded in the IAM report, the execution still runs."""
    guard = patches.GUARD
    key = _customer_key(machine)
    if guard is None or key is None:
        return
    _, _, _, region, account, _ = machine.arn.split(":", 5)
    arn = key_arn(key, region, account)
    if arn is None:
        return
    context = {"kms:encryptioncontext:aws:states:statemachinearn": [machine.arn]}
    needs = [Need("kms:Decrypt", arn, context), Need("kms:GenerateDataKey", arn, context)]
    logging = machine.loggingConfiguration or {}
    if logging.get("level", "OFF") != "OFF":
        needs.append(Need("kms:GenerateDataKey", arn,
                          {"kms:encryptioncontext:sourcearn": [f"arn:aws:logs:{region}:{account}:*"]}))
        guard.authorizer.authorize_service("delivery.logs.amazonaws.com", "kms:Decrypt", arn, None, account,
                                           region)
    try:
        credentials = guard.sessions.credentials(machine.roleArn, machine.name, "states.amazonaws.com", machine.arn)
    except AssumeRoleRefused:
        return  # its tasks fail as they would on AWS, each refused the role
    denial = guard.role_denial(credentials, needs, "states.StartExecution", region)
    if denial:
        raise KmsAccessDeniedException(f"The state machine's execution role cannot use its key: {denial}")


_SFN_START_EXECUTION = StepFunctionsParserBackend.start_execution


@patch(StepFunctionsParserBackend, "start_execution")
def _start_execution(self: StepFunctionsParserBackend, state_machine_arn: str, name: str | None = None,
                     *args: Any, **kwargs: Any) -> Any:
    """StartExecution without a name gets a UUID, as on AWS (moto names every such execution "None",
    so the second one fails with ExecutionAlreadyExists); a customer managed key is checked first."""
    _check_machine_key(self.describe_state_machine(state_machine_arn))
    return _SFN_START_EXECUTION(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)


# --- ASL runtime errors moto forgives -----------------------------------------------------

_INVALID_CHOICE_PATH = "Invalid path '{path}': The choice state's condition path references an invalid value."


@patch(ComparisonVariable, "_eval_body")
def _compare_variable(self: ComparisonVariable, env: Environment) -> None:
    """A Choice rule whose ``Variable`` path is not in the input fails the execution with
    States.Runtime ("A States.Runtime error isn't retriable, and will always cause the execution to
    fail": concepts-error-handling.html), unless the rule asks ``IsPresent``; moto's interpreter
    compares a placeholder instead and takes the Default branch."""
    self.variable.eval(env)
    if (isinstance(env.stack[-1], NoSuchVariable)
            and self.comparison_function.operator_type != ComparisonOperatorType.IsPresent):
        env.stack.pop()
        cause = _INVALID_CHOICE_PATH.format(path=self.variable.string_sampler.literal_value)
        raise FailureEventException(FailureEvent(
            env=env, error_name=StatesErrorName(typ=StatesErrorNameType.StatesRuntime),
            event_type=HistoryEventType.ExecutionFailed,
            event_details=EventDetails(executionFailedEventDetails=ExecutionFailedEventDetails(
                error=StatesErrorNameType.StatesRuntime.to_name(),
                cause=f"An error occurred while executing the state '{env.next_state_name}' "
                      f"(entered at the event id #{env.event_history_context.source_event_id}). {cause}"))))
    self.comparison_function.eval(env)
