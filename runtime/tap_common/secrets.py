"""Secrets Manager values fetched once per container (on first use) and cached."""

from __future__ import annotations

import functools
import json
from typing import Any

from tap_common import aws


@functools.cache
def secret_json(secret_id: str) -> dict[str, Any]:
    response = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)
    value = json.loads(response["SecretString"])
    if not isinstance(value, dict):
        raise TypeError(f"secret {secret_id} is not a JSON object")
    return value
