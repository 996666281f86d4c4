"""Application Auto Scaling: the Tags of scalable targets, which moto drops (kept on the backend)."""

from __future__ import annotations

import json

from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse

from tapharness.sandbox.patches import patch, store

# --- Application Auto Scaling ------------------------------------------------------------

_REGISTER_SCALABLE_TARGET = ApplicationAutoScalingResponse.register_scalable_target


@patch(ApplicationAutoScalingResponse, "register_scalable_target")
def register_scalable_target(self: ApplicationAutoScalingResponse) -> str:
    """RegisterScalableTarget, keeping the Tags moto drops (the provider reads them back)."""
    result = _REGISTER_SCALABLE_TARGET(self)
    tags = self._get_param("Tags")
    if tags:
        store(self.applicationautoscaling_backend, "tags").setdefault(json.loads(result)["ScalableTargetARN"], {}).update(tags)
    return result


@patch(ApplicationAutoScalingResponse, "list_tags_for_resource")
def list_tags_for_resource(self: ApplicationAutoScalingResponse) -> str:
    return json.dumps({"Tags": store(self.applicationautoscaling_backend, "tags").get(self._get_param("ResourceARN"), {})})


@patch(ApplicationAutoScalingResponse, "tag_resource")
def tag_resource(self: ApplicationAutoScalingResponse) -> str:
    store(self.applicationautoscaling_backend, "tags").setdefault(self._get_param("ResourceARN"), {}).update(
        self._get_param("Tags") or {})
    return "{}"


@patch(ApplicationAutoScalingResponse, "untag_resource")
def untag_resource(self: ApplicationAutoScalingResponse) -> str:
    tags = store(self.applicationautoscaling_backend, "tags").get(self._get_param("ResourceARN"), {})
    for key in self._get_param("TagKeys") or []:
        tags.pop(key, None)
    return "{}"
