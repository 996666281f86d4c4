"""boto3 clients, created once per container with explicit timeouts and retries.

Endpoints come from boto3's own resolution (AWS_ENDPOINT_URL in the sandbox).
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

# (connect timeout s, read timeout s, max attempts). SageMaker gets one short attempt:
# the recommendations engine has a fallback ranking and must not stall the stream.
_POLICY: dict[str, tuple[float, float, int]] = {
    "sagemaker-runtime": (1.0, 2.0, 1),
}
_DEFAULT_POLICY = (2.0, 10.0, 4)


@functools.cache
def client(service: str, region: str | None = None) -> Any:
    """A client of `service` in `region` (None: the function's own region)."""
    connect_timeout, read_timeout, attempts = _POLICY.get(service, _DEFAULT_POLICY)
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": attempts},
        tcp_keepalive=True,
    )
    return boto3.client(service, region_name=region, config=config)


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError, or '' for anything else."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
