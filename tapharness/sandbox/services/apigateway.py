"""API Gateway (REST): UpdateMethod's JSON-patch operations, which moto lacks. The deployed APIs
are served by the front door ``tapharness.sandbox.apigw``."""

from __future__ import annotations

import json
from typing import Any

from moto.apigateway.responses import APIGatewayResponse

from tapharness.sandbox.patches import patch

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


@patch(APIGatewayResponse, "update_method")
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
