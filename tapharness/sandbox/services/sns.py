"""SNS: GetDataProtectionPolicy, the topic attributes moto leaves out of GetTopicAttributes, and
under IAM (``patches.GUARD``) deliveries checked against the target's policy."""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import camelcase_to_underscores
from moto.sns.models import Subscription
from moto.sns.responses import SNSResponse

from tapharness.sandbox import patches
from tapharness.sandbox.patches import patch

# --- SNS -----------------------------------------------------------------------------

@patch(SNSResponse, "get_data_protection_policy")
def get_data_protection_policy(self: SNSResponse) -> ActionResult:
    """GetDataProtectionPolicy: topics have none (the provider reads it on every refresh)."""
    self.backend.get_topic(self._get_param("ResourceArn"))
    return ActionResult({})


# SNS: attributes moto stores on the topic but leaves out of GetTopicAttributes.
_GET_TOPIC_ATTRIBUTES = SNSResponse.get_topic_attributes
EXTRA_TOPIC_ATTRIBUTES = ("TracingConfig", "SignatureVersion", "ArchivePolicy")


@patch(SNSResponse, "get_topic_attributes")
def get_topic_attributes(self: SNSResponse) -> ActionResult:
    """GetTopicAttributes including TracingConfig, SignatureVersion and ArchivePolicy when set."""
    response = _GET_TOPIC_ATTRIBUTES(self)
    topic = self.backend.get_topic(self._get_param("TopicArn"))
    attributes = response.result["Attributes"]
    for name in EXTRA_TOPIC_ATTRIBUTES:
        value = topic.__dict__.get(camelcase_to_underscores(name))
        if value:
            attributes[name] = value
    return response


# --- Service-to-service calls under IAM (see ``patches.GUARD``) -------------------------
# moto delivers SNS subscriptions inline; AWS checks the target's resource policy (function
# permission, queue policy, and the queue's key policy for an encrypted queue) for
# sns.amazonaws.com with aws:SourceArn/aws:SourceAccount.


_SUBSCRIPTION_PUBLISH = Subscription.publish


@patch(Subscription, "publish")
def _subscription_publish(self: Subscription, message: str, message_id: str, *args: Any, **kwargs: Any) -> None:
    """SNS delivery: dropped (as AWS drops it after its retries) when the target's policy refuses."""
    if patches.GUARD is not None and self.protocol in ("sqs", "lambda") and not patches.GUARD.may_deliver(
            "sns.amazonaws.com", self.endpoint, self.topic.arn, self.account_id):
        return
    _SUBSCRIPTION_PUBLISH(self, message, message_id, *args, **kwargs)
