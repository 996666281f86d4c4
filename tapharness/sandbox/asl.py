"""ValidateStateMachineDefinition, which moto 5.2.5 lacks and the AWS provider calls whenever a
plan knows a state machine's definition: the sandbox's shim and the offline plans' moto server
both install it (a light module, so plans need not import the sandbox)."""

from __future__ import annotations

import json

from moto.stepfunctions.responses import StepFunctionResponse


def validate_state_machine_definition(self: StepFunctionResponse) -> str:
    """ValidateStateMachineDefinition: parse the definition; report JSON errors as diagnostics."""
    try:
        definition = json.loads(self._get_param("definition"))
    except (TypeError, ValueError) as exc:
        diagnostic = {"severity": "ERROR", "code": "INVALID_JSON_DESCRIPTION", "message": str(exc)}
        return json.dumps({"result": "FAIL", "diagnostics": [diagnostic], "truncated": False})
    missing = [key for key in ("StartAt", "States") if key not in definition]
    if missing:
        diagnostic = {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED",
                      "message": f"missing required field(s): {', '.join(missing)}"}
        return json.dumps({"result": "FAIL", "diagnostics": [diagnostic], "truncated": False})
    return json.dumps({"result": "OK", "diagnostics": [], "truncated": False})


def install() -> None:
    StepFunctionResponse.validate_state_machine_definition = validate_state_machine_definition  # type: ignore[attr-defined]
