"""Lambda: the sandbox's changes to moto's Lambda API (the module is ``lambda_``: ``lambda`` is a
keyword).

GetRuntimeManagementConfig (and its URL, which moto does not route), and the DeadLetterConfig
and LoggingConfig moto accepts and drops. The functions themselves run in
``tapharness.sandbox.lambda_runner``, which installs its own invoke hook.
"""

from __future__ import annotations

import json
from typing import Any

from moto.awslambda import urls as lambda_urls
from moto.awslambda.models import LambdaFunction
from moto.awslambda.responses import LambdaResponse

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
