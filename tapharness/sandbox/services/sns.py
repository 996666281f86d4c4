"""SNS: GetDataProtectionPolicy, the topic attributes moto leaves out of GetTopicAttributes, under
IAM (``patches.GUARD``) deliveries checked against the target's policy, and HTTP/S subscriptions
confirmed and delivered as SNS does (``tapharness.sandbox.snshttp``)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from moto.core.responses import ActionResult
from moto.core.utils import camelcase_to_underscores
from moto.sns.exceptions import SNSInvalidParameter, SNSNotFoundError
from moto.sns.models import SNSBackend, Subscription
from moto.sns.responses import SNSResponse

from tapharness.sandbox import patches, snshttp
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
    if self.protocol in ("http", "https"):
        _http_publish(self, message, message_id, *args, **kwargs)
        return
    if patches.GUARD is not None and self.protocol in ("sqs", "lambda") and not patches.GUARD.may_deliver(
            "sns.amazonaws.com", self.endpoint, self.topic.arn, self.account_id):
        return
    _SUBSCRIPTION_PUBLISH(self, message, message_id, *args, **kwargs)


# --- HTTP/S subscriptions (``tapharness.sandbox.snshttp``) -------------------------------

_SUBSCRIBE = SNSBackend.subscribe
_SET_SUBSCRIPTION_ATTRIBUTES = SNSBackend.set_subscription_attributes


@patch(SNSBackend, "set_subscription_attributes")
def set_subscription_attributes(self: SNSBackend, arn: str, name: str, value: Any) -> None:
    """A DeliveryPolicy SNS would refuse is refused (moto took any)."""
    if name == "DeliveryPolicy" and value:
        try:
            document = json.loads(value)
        except ValueError:
            raise SNSInvalidParameter("Invalid parameter: Attributes Reason: DeliveryPolicy: not JSON") from None
        retry = document.get("healthyRetryPolicy") if isinstance(document, dict) else None
        problem = snshttp.policy_problem(retry) if isinstance(retry, dict) else None
        if problem:
            raise SNSInvalidParameter(f"Invalid parameter: Attributes Reason: DeliveryPolicy: {problem}")
    _SET_SUBSCRIPTION_ATTRIBUTES(self, arn, name, value)


@patch(SNSBackend, "subscribe")
def subscribe(self: SNSBackend, topic_arn: str, endpoint: str, protocol: str) -> Subscription:
    """A new HTTP/S subscription waits for its endpoint's confirmation, which SNS asks for at once."""
    known = self._find_subscription(topic_arn, endpoint, protocol)
    subscription = _SUBSCRIBE(self, topic_arn, endpoint, protocol)
    if known is None and protocol in ("http", "https"):
        subscription.attributes["PendingConfirmation"] = "true"
        subscription.attributes["ConfirmationWasAuthenticated"] = "false"
        subscription.__dict__["_sandbox_token"] = token = snshttp.new_token()
        snshttp.DELIVERIES.submit(_confirmation(subscription, token))
    return subscription


def _confirmation(subscription: Subscription, token: str) -> snshttp.Delivery:
    topic = subscription.topic
    region = topic.arn.split(":")[3]
    message = (f"You have chosen to subscribe to the topic {topic.arn}.\n"
               "To confirm the subscription, visit the SubscribeURL included in this message.")
    subscribe_url = (f"https://sns.{region}.amazonaws.com/?Action=ConfirmSubscription&TopicArn={quote(topic.arn)}"
                     f"&Token={token}")
    message_id = str(uuid.uuid4())
    body = _signed(subscription, {"Type": "SubscriptionConfirmation", "MessageId": message_id, "Token": token,
                                  "TopicArn": topic.arn, "Message": message, "SubscribeURL": subscribe_url},
                   ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"))
    headers = {"x-amz-sns-message-type": "SubscriptionConfirmation", "x-amz-sns-message-id": message_id,
               "x-amz-sns-topic-arn": topic.arn, "Content-Type": "text/plain; charset=UTF-8",
               "User-Agent": snshttp.USER_AGENT}
    policy = snshttp.delivery_policy(subscription.attributes.get("DeliveryPolicy"), topic.delivery_policy)
    return snshttp.Delivery(subscription.endpoint, headers, json.dumps(body).encode(), topic.arn,
                            subscription.account_id, region, snshttp.retry_delays(policy["retry"]), counted=False)


def _signed(subscription: Subscription, fields: dict[str, Any], signed_fields: tuple[str, ...]) -> dict[str, Any]:
    """``fields`` with a timestamp and a signature over ``signed_fields`` present (in AWS's order:
    "Verifying the signatures of Amazon SNS messages") by the subscription's key, whose certificate
    moto serves at ``SigningCertURL`` (SignatureVersion 2, SHA256; one certificate per subscription)."""
    certificate_url = subscription.__dict__.get("_sandbox_signing_cert_url")
    if certificate_url is None:  # moto makes and keeps a certificate per call: once per subscription here
        certificate_url = subscription.get_post_data("", fields["MessageId"], None)["SigningCertURL"]
        subscription.__dict__["_sandbox_signing_cert_url"] = certificate_url
    fields = {**fields, "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
    text = "".join(f"{name}\n{fields[name]}\n" for name in signed_fields if name in fields)
    signature = subscription.private_key().sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    return {**fields, "SignatureVersion": "2", "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": certificate_url}


_SUBSCRIBE_RESPONSE = SNSResponse.subscribe
_LIST_SUBSCRIPTIONS = SNSResponse.list_subscriptions
_LIST_SUBSCRIPTIONS_BY_TOPIC = SNSResponse.list_subscriptions_by_topic


def _pending(subscription: Any) -> bool:
    return getattr(subscription, "attributes", {}).get("PendingConfirmation") == "true"


@patch(SNSResponse, "subscribe")
def subscribe_response(self: SNSResponse) -> ActionResult:
    """Subscribe answers "pending confirmation" for a subscription that awaits its endpoint's
    confirmation, unless ReturnSubscriptionArn is true (SNS API Reference, Subscribe)."""
    topic, endpoint, protocol = self._get_param("TopicArn"), self._get_param("Endpoint"), self._get_param("Protocol")
    existed = topic in self.backend.topics and self.backend._find_subscription(topic, endpoint, protocol) is not None
    try:
        answer = _SUBSCRIBE_RESPONSE(self)
    except SNSInvalidParameter:  # an attribute SNS refuses: the subscription is not made (moto kept it)
        made = None if existed else self.backend._find_subscription(topic, endpoint, protocol)
        if made is not None:
            del self.backend.subscriptions[made.arn]
        raise
    arn = answer.result["SubscriptionArn"]  # type: ignore[index]
    subscription = self.backend.subscriptions.get(arn)
    if subscription is not None and _pending(subscription) and str(
            self._get_param("ReturnSubscriptionArn")).lower() != "true":
        return ActionResult({"SubscriptionArn": "pending confirmation"})
    return answer


def _listed(answer: ActionResult) -> ActionResult:
    """A pending subscription is listed with SubscriptionArn "PendingConfirmation", as SNS lists it."""
    result = dict(answer.result)  # type: ignore[call-overload]
    result["Subscriptions"] = [
        {"SubscriptionArn": "PendingConfirmation" if _pending(s) else s.arn, "Owner": s.owner,
         "Protocol": s.protocol, "Endpoint": s.endpoint, "TopicArn": s.topic_arn}
        for s in result["Subscriptions"]]
    return ActionResult(result)


@patch(SNSResponse, "list_subscriptions")
def list_subscriptions(self: SNSResponse) -> ActionResult:
    return _listed(_LIST_SUBSCRIPTIONS(self))


@patch(SNSResponse, "list_subscriptions_by_topic")
def list_subscriptions_by_topic(self: SNSResponse) -> ActionResult:
    return _listed(_LIST_SUBSCRIPTIONS_BY_TOPIC(self))


@patch(SNSResponse, "confirm_subscription")
def confirm_subscription(self: SNSResponse) -> ActionResult:
    """ConfirmSubscription: the pending subscription whose token this is becomes confirmed."""
    topic_arn, token = self._get_param("TopicArn"), self._get_param("Token")
    if topic_arn not in self.backend.topics:
        raise SNSNotFoundError("Topic does not exist")
    for subscription in self.backend.subscriptions.values():
        if subscription.topic_arn == topic_arn and subscription.__dict__.get("_sandbox_token") == token:
            subscription.confirmed = True
            subscription.attributes["PendingConfirmation"] = "false"
            return ActionResult({"SubscriptionArn": subscription.arn})
    raise SNSInvalidParameter("Invalid token")


def _http_publish(self: Subscription, message: str, message_id: str, subject: str | None = None,
                  message_attributes: dict[str, Any] | None = None, group_id: str | None = None,
                  deduplication_id: str | None = None, message_structure: str | None = None) -> None:
    """An HTTP/S notification, posted after Publish answers (``snshttp``); none before confirmation."""
    if self.attributes.get("PendingConfirmation") == "true":
        return
    if self._filter_policy_matcher is not None and not self._filter_policy_matcher.matches(message_attributes, message):
        return
    if message_structure == "json":
        message = self._parse_message_structure(message, self.protocol)
    topic = self.topic
    region = topic.arn.split(":")[3]
    policy = snshttp.delivery_policy(self.attributes.get("DeliveryPolicy"), topic.delivery_policy)
    headers = {"x-amz-sns-message-type": "Notification", "x-amz-sns-message-id": message_id,
               "x-amz-sns-topic-arn": topic.arn, "x-amz-sns-subscription-arn": self.arn,
               "Content-Type": str(policy["request"].get("headerContentType") or "text/plain; charset=UTF-8"),
               "User-Agent": snshttp.USER_AGENT}
    if str(self.attributes.get("RawMessageDelivery")).lower() == "true":
        headers["x-amz-sns-rawdelivery"] = "true"
        body = message.encode()
    else:
        fields: dict[str, Any] = {"Type": "Notification", "MessageId": message_id, "TopicArn": topic.arn,
                                  "Message": message}
        if subject:
            fields["Subject"] = subject
        post = _signed(self, fields, ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"))
        post["UnsubscribeURL"] = (f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe"
                                  f"&SubscriptionArn={quote(self.arn)}")
        if message_attributes:
            post["MessageAttributes"] = message_attributes
        body = json.dumps(post).encode()
    snshttp.DELIVERIES.submit(snshttp.Delivery(self.endpoint, headers, body, topic.arn, self.account_id, region,
                                               snshttp.retry_delays(policy["retry"])))
