"""SNS HTTP/S subscriptions: confirmation first, then notifications posted after Publish with SNS's
body, headers and message attributes, filter policies, raw delivery and the delivery retry policy."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from moto import mock_aws
from moto.sns.models import sns_backends

from tapharness.sandbox.services import sns as sns_shims
from tapharness.sandbox.snshttp import delivery_policy, retry_delays
from tapharness.sandbox.web import Outbound

from .helpers import unique


def test_the_default_http_policy_is_three_retries_twenty_seconds_apart() -> None:
    assert retry_delays({}) == [20.0, 20.0, 20.0]


def test_a_policy_runs_its_phases_in_order() -> None:
    delays = retry_delays({"numRetries": 6, "numNoDelayRetries": 1, "numMinDelayRetries": 1, "numMaxDelayRetries": 1,
                           "minDelayTarget": 2, "maxDelayTarget": 8, "backoffFunction": "linear"})
    assert delays == [0.0, 2.0, 4.0, 6.0, 8.0, 8.0]


def test_a_subscriptions_policy_wins_over_its_topics() -> None:
    topic = json.dumps({"http": {"defaultHealthyRetryPolicy": {"numRetries": 9}}})
    assert delivery_policy(None, topic)["retry"] == {"numRetries": 9}
    assert delivery_policy(json.dumps({"healthyRetryPolicy": {"numRetries": 1}}), topic)["retry"] == {"numRetries": 1}


# --- through the sandbox ----------------------------------------------------------------------

class Endpoint:
    """A partner stand-in subscribed to a new topic over HTTPS."""

    def __init__(self, aws: Callable[[str], Any], sandbox: Any, confirms: bool = True,
                 attributes: dict[str, str] | None = None) -> None:
        self.sandbox, self.sns = sandbox, aws("sns")
        self.name = unique("notify").lower().replace("_", "-")
        self.url = sandbox.control("POST", f"partners/{self.name}", {"confirms": confirms})["url"]
        self.topic = self.sns.create_topic(Name=unique("events"))["TopicArn"]
        self.subscription = self.sns.subscribe(TopicArn=self.topic, Protocol="https", Endpoint=f"{self.url}/sns",
                                               Attributes=attributes or {}, ReturnSubscriptionArn=True)["SubscriptionArn"]

    def received(self) -> list[dict[str, Any]]:
        return self.sandbox.control("GET", f"partners/{self.name}")["received"]

    def calls(self) -> int:
        return int(self.sandbox.control("GET", f"partners/{self.name}")["calls"])

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in self.received() if predicate(r)]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"{what} never reached {self.name}; it received {self.received()}")

    def notification(self, message: str) -> dict[str, Any]:
        return self.wait_for(lambda r: isinstance(r["body"], dict) and r["body"].get("Message") == message,
                             f"the notification {message!r}")

    def confirmed(self) -> bool:
        attributes = self.sns.get_subscription_attributes(SubscriptionArn=self.subscription)["Attributes"]
        return attributes["PendingConfirmation"] == "false"

    def ready(self) -> None:
        """Wait until the stand-in has confirmed the subscription."""
        deadline = time.monotonic() + 30
        while not self.confirmed():
            assert time.monotonic() < deadline, f"{self.name} never confirmed; it received {self.received()}"
            time.sleep(0.1)


def test_an_endpoint_is_asked_to_confirm_and_a_partner_that_confirms_is_subscribed(
        aws: Callable[[str], Any], sandbox: Any) -> None:
    endpoint = Endpoint(aws, sandbox)
    asked = endpoint.wait_for(lambda r: r["headers"].get("x-amz-sns-message-type") == "SubscriptionConfirmation",
                              "the SubscriptionConfirmation")
    assert asked["body"]["TopicArn"] == endpoint.topic and asked["body"]["Token"]
    assert asked["body"]["SubscribeURL"].startswith("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription")
    endpoint.ready()


def test_nothing_is_delivered_before_confirmation_and_everything_after(aws: Callable[[str], Any], sandbox: Any) -> None:
    endpoint = Endpoint(aws, sandbox, confirms=False)
    asked = endpoint.wait_for(lambda r: r["headers"].get("x-amz-sns-message-type") == "SubscriptionConfirmation",
                              "the SubscriptionConfirmation")
    assert not endpoint.confirmed()
    endpoint.sns.publish(TopicArn=endpoint.topic, Message="before")
    endpoint.sns.confirm_subscription(TopicArn=endpoint.topic, Token=asked["body"]["Token"])
    endpoint.sns.publish(TopicArn=endpoint.topic, Message="after", Subject="Order 7",
                         MessageAttributes={"order_stage": {"DataType": "String", "StringValue": "assigned"}})
    after = endpoint.notification("after")
    assert after["headers"]["x-amz-sns-message-type"] == "Notification"
    assert after["headers"]["x-amz-sns-subscription-arn"] == endpoint.subscription
    assert after["headers"]["User-Agent"] == "Amazon Simple Notification Service Agent"
    assert after["body"]["Subject"] == "Order 7" and after["body"]["TopicArn"] == endpoint.topic
    assert after["body"]["MessageAttributes"] == {"order_stage": {"Type": "String", "Value": "assigned"}}
    assert not any(isinstance(r["body"], dict) and r["body"].get("Message") == "before" for r in endpoint.received())


def test_an_invalid_token_confirms_nothing(aws: Callable[[str], Any], sandbox: Any) -> None:
    endpoint = Endpoint(aws, sandbox, confirms=False)
    with pytest.raises(endpoint.sns.exceptions.InvalidParameterException):
        endpoint.sns.confirm_subscription(TopicArn=endpoint.topic, Token="0" * 128)
    assert not endpoint.confirmed()


def test_a_filter_policy_keeps_other_stages_away(aws: Callable[[str], Any], sandbox: Any) -> None:
    endpoint = Endpoint(aws, sandbox, attributes={"FilterPolicy": json.dumps({"order_stage": ["placed"]})})
    endpoint.ready()
    for message, stage in (("assigned one", "assigned"), ("placed one", "placed")):
        endpoint.sns.publish(TopicArn=endpoint.topic, Message=message,
                             MessageAttributes={"order_stage": {"DataType": "String", "StringValue": stage}})
    endpoint.notification("placed one")
    assert not any(isinstance(r["body"], dict) and r["body"].get("Message") == "assigned one"
                   for r in endpoint.received())


def test_raw_delivery_posts_the_message_alone(aws: Callable[[str], Any], sandbox: Any) -> None:
    endpoint = Endpoint(aws, sandbox, attributes={"RawMessageDelivery": "true"})
    endpoint.ready()
    endpoint.sns.publish(TopicArn=endpoint.topic, Message=json.dumps({"order_id": "o-9"}))
    raw = endpoint.wait_for(lambda r: r["body"] == {"order_id": "o-9"}, "the raw message")
    assert raw["headers"]["x-amz-sns-rawdelivery"] == "true"


FAST_RETRIES = json.dumps({"healthyRetryPolicy": {"numRetries": 3, "minDelayTarget": 1, "maxDelayTarget": 1}})


def test_a_5xx_is_retried_by_the_delivery_policy_until_it_is_taken(aws: Callable[[str], Any], sandbox: Any) -> None:
    endpoint = Endpoint(aws, sandbox, attributes={"DeliveryPolicy": FAST_RETRIES})
    endpoint.ready()
    sandbox.control("POST", f"partners/{endpoint.name}", {"fail_next": 2, "status": 503})
    before = endpoint.calls()
    endpoint.sns.publish(TopicArn=endpoint.topic, Message="persistent")
    endpoint.notification("persistent")
    assert endpoint.calls() - before == 3  # two 503s, then taken


def test_a_4xx_is_not_retried(aws: Callable[[str], Any], sandbox: Any) -> None:
    endpoint = Endpoint(aws, sandbox, attributes={"DeliveryPolicy": FAST_RETRIES})
    endpoint.ready()
    sandbox.control("POST", f"partners/{endpoint.name}", {"fail_next": 1, "status": 400})
    before = endpoint.calls()
    endpoint.sns.publish(TopicArn=endpoint.topic, Message="refused")
    deadline = time.monotonic() + 30
    while endpoint.calls() == before:  # the 400 is answered before the next message is published
        assert time.monotonic() < deadline
        time.sleep(0.05)
    endpoint.sns.publish(TopicArn=endpoint.topic, Message="next")
    endpoint.notification("next")
    time.sleep(2.5)  # longer than the policy's 1 s retry delay
    assert endpoint.calls() - before == 2
    assert not any(isinstance(r["body"], dict) and r["body"].get("Message") == "refused" for r in endpoint.received())


def test_publish_answers_at_once_whatever_the_endpoint(aws: Callable[[str], Any]) -> None:
    sns = aws("sns")
    topic = sns.create_topic(Name=unique("lonely"))["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="https", Endpoint="https://nobody.partner.sandbox.test/sns")
    started = time.monotonic()
    assert sns.publish(TopicArn=topic, Message="into the void")["MessageId"]
    assert time.monotonic() - started < 5


def test_a_pending_subscription_is_pending_confirmation_until_its_endpoint_confirms(
        aws: Callable[[str], Any], sandbox: Any) -> None:
    sns = aws("sns")
    name = unique("slow").lower().replace("_", "-")
    url = sandbox.control("POST", f"partners/{name}", {"confirms": False})["url"]
    topic = sns.create_topic(Name=unique("pending"))["TopicArn"]
    assert sns.subscribe(TopicArn=topic, Protocol="https", Endpoint=f"{url}/sns")["SubscriptionArn"] == \
        "pending confirmation"
    (listed,) = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert listed["SubscriptionArn"] == "PendingConfirmation"


def test_a_notification_is_signed_over_its_subject_too() -> None:
    with mock_aws():
        sns = sns_backends["123456789012"]["us-east-1"]
        topic = sns.create_topic("signed")
        subscription = sns.subscribe(topic.arn, "https://receiver.partner.sandbox.test/sns", "https")
        body = sns_shims._signed(subscription, {"Type": "Notification", "MessageId": "m-1", "TopicArn": topic.arn,
                                                "Message": "signed", "Subject": "Order 8"},
                                 ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"))
        text = "".join(f"{name}\n{body[name]}\n" for name in ("Message", "MessageId", "Subject", "Timestamp",
                                                               "TopicArn", "Type"))
        subscription.private_key().public_key().verify(base64.b64decode(body["Signature"]), text.encode(),
                                                       padding.PKCS1v15(), hashes.SHA256())
        without_subject = text.replace("Subject\nOrder 8\n", "")
        with pytest.raises(InvalidSignature):
            subscription.private_key().public_key().verify(base64.b64decode(body["Signature"]),
                                                           without_subject.encode(), padding.PKCS1v15(), hashes.SHA256())


def test_the_sandbox_never_posts_to_a_name_it_does_not_serve() -> None:
    outbound = Outbound(hosts=dict)
    with pytest.raises(ConnectionRefusedError):
        outbound.connection("https", "hooks.example.com", 443, 1.0)
    assert outbound.post("https://hooks.example.com/sns", {}, b"{}", 1.0) is None


@pytest.mark.parametrize("retry", [{"minDelayTarget": 30, "maxDelayTarget": 10},
                                   {"numRetries": 101},
                                   {"numRetries": 50, "minDelayTarget": 100, "maxDelayTarget": 100}],
                         ids=["minimum above maximum", "over 100 retries", "over an hour of retries"])
def test_a_delivery_policy_sns_would_refuse_is_refused(aws: Callable[[str], Any], retry: dict[str, int]) -> None:
    sns = aws("sns")
    topic = sns.create_topic(Name=unique("policy"))["TopicArn"]
    with pytest.raises(sns.exceptions.InvalidParameterException):
        sns.subscribe(TopicArn=topic, Protocol="https", Endpoint="https://nobody.partner.sandbox.test/sns",
                      Attributes={"DeliveryPolicy": json.dumps({"healthyRetryPolicy": retry})})
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []  # nothing was subscribed


def test_a_topic_that_disables_overrides_keeps_its_own_retries() -> None:
    topic = json.dumps({"http": {"defaultHealthyRetryPolicy": {"numRetries": 2}, "disableSubscriptionOverrides": True}})
    subscription = json.dumps({"healthyRetryPolicy": {"numRetries": 9}})
    assert delivery_policy(subscription, topic)["retry"] == {"numRetries": 2}
    assert delivery_policy(json.dumps({"requestPolicy": {"headerContentType": "application/json"}}), json.dumps(
        {"http": {"defaultHealthyRetryPolicy": {"numRetries": 4}}}))["retry"] == {"numRetries": 4}
