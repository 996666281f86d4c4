"""SageMaker runtime: InvokeEndpoint answered by the endpoints of sandbox.yaml
(``tapharness.sandbox.models``, a real model trained on the stack's data)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from tapharness.sandbox import models
from tapharness.sandbox.patches import json_error, patch

# --- SageMaker runtime ---------------------------------------------------------------

@patch(SageMakerRuntimeResponse, "invoke_endpoint")
def invoke_endpoint(self: SageMakerRuntimeResponse) -> tuple[int, dict[str, str], Any]:
    """An endpoint of sandbox.yaml answers from its model (tapharness.sandbox.models); any other
    name is not found, where moto would answer every name with a canned body."""
    name = unquote(self.path.split("/")[2])
    endpoint = models.ENDPOINTS.get(name)
    if endpoint is None:
        return json_error("ValidationError", f"Endpoint {name} of account {self.current_account} not found.")
    body = self.body if isinstance(self.body, bytes) else str(self.body or "").encode()
    try:
        answer = endpoint.invoke(body)
    except models.ModelError as exc:
        return json_error("ModelError", f"Received client error (400) from primary with message \"{exc}\".", 424)
    return 200, {"Content-Type": "application/json", "x-Amzn-Invoked-Production-Variant": "AllTraffic"}, answer
