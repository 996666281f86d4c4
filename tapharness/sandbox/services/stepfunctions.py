"""Step Functions: the sandbox's changes to moto's Step Functions.

ValidateStateMachineDefinition (``tapharness.sandbox.asl``, shared with the offline plans, which
install it with ``asl.install()``), ListStateMachineVersions, StartExecution without a name, and
under IAM (``patches.GUARD``) the state machine's Lambda tasks called as its role.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

from moto.core.utils import unix_time
from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
    lambda_eval_utils,
)
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse

from tapharness.sandbox import patches
from tapharness.sandbox.asl import validate_state_machine_definition
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
# moto calls Step Functions' Lambda tasks with a fixed dummy key; AWS calls them as the state
# machine's role.


_TASK_ROLE = threading.local()
_BOTO_CLIENT_FOR = lambda_eval_utils.boto_client_for
_EXECUTE_INTEGRATION = lambda_eval_utils.execute_lambda_function_integration
_EXEC_LAMBDA = lambda_eval_utils.exec_lambda_function


@patch(lambda_eval_utils, "boto_client_for")
def _task_client(region: str, service: str, state_credentials: Any = None) -> Any:
    """Step Functions' client for a task: signed as the state machine's role when IAM is on."""
    role = getattr(_TASK_ROLE, "current", None)
    if patches.GUARD is None or role is None:
        return _BOTO_CLIENT_FOR(region, service, state_credentials)
    role_arn, machine_arn = role
    return patches.GUARD.sessions.clients_for(role_arn, machine_arn.split(":")[-1], "states.amazonaws.com",
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


patch.replace(lambda_eval_utils, "execute_lambda_function_integration", _as_machine_role(_EXECUTE_INTEGRATION))
patch.replace(lambda_eval_utils, "exec_lambda_function", _as_machine_role(_EXEC_LAMBDA))


_SFN_START_EXECUTION = StepFunctionsParserBackend.start_execution


@patch(StepFunctionsParserBackend, "start_execution")
def _start_execution(self: StepFunctionsParserBackend, state_machine_arn: str, name: str | None = None,
                     *args: Any, **kwargs: Any) -> Any:
    """StartExecution without a name gets a UUID, as on AWS (moto names every such execution "None",
    so the second one fails with ExecutionAlreadyExists)."""
    return _SFN_START_EXECUTION(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)
