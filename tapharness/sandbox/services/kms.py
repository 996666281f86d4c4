"""KMS: key rotation with its RotationPeriodInDays, which moto drops."""

from __future__ import annotations

import json

from moto.kms.responses import KmsResponse

from tapharness.sandbox.patches import patch

# KMS: EnableKeyRotation's RotationPeriodInDays is dropped; GetKeyRotationStatus never reports it.
_ENABLE_KEY_ROTATION = KmsResponse.enable_key_rotation
_GET_KEY_ROTATION_STATUS = KmsResponse.get_key_rotation_status


@patch(KmsResponse, "enable_key_rotation")
def enable_key_rotation(self: KmsResponse) -> str:
    """EnableKeyRotation that keeps RotationPeriodInDays (default 365)."""
    response = _ENABLE_KEY_ROTATION(self)
    key = self.kms_backend.describe_key(self._get_param("KeyId"))
    key.rotation_period_in_days = int(self._get_param("RotationPeriodInDays") or 365)
    return response


@patch(KmsResponse, "get_key_rotation_status")
def get_key_rotation_status(self: KmsResponse) -> str:
    """GetKeyRotationStatus with KeyId and, while rotation is on, RotationPeriodInDays."""
    status = json.loads(_GET_KEY_ROTATION_STATUS(self))
    key = self.kms_backend.describe_key(self._get_param("KeyId"))
    status["KeyId"] = key.id
    if status.get("KeyRotationEnabled"):
        status["RotationPeriodInDays"] = key.__dict__.get("rotation_period_in_days", 365)
    return json.dumps(status)
