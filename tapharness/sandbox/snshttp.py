"""SNS deliveries to HTTP/S endpoints, as Amazon SNS makes them (moto 5.2.5 confirmed such a
subscription at once and posted inside Publish, without message attributes or SNS's headers, so an
unreachable endpoint made Publish itself fail).

- **Confirmation** ("Step 1: Make sure your endpoint is ready to process Amazon SNS messages",
  SNS Developer Guide): a new HTTP/S subscription is ``PendingConfirmation`` and its endpoint is sent
  a ``SubscriptionConfirmation`` (``Token``, ``SubscribeURL``); nothing is delivered to it until
  ConfirmSubscription with that token (what GET ``SubscribeURL`` does). A stand-in partner of the
  sandbox confirms as a partner that auto-confirms does (``tapharness.partner_api``).
- **Notifications** are posted after Publish has answered, on worker threads: the JSON body (``Type``,
  ``MessageId``, ``TopicArn``, ``Subject``, ``Message``, ``Timestamp``, signature fields,
  ``UnsubscribeURL``, ``MessageAttributes`` as ``{Type, Value}``) or, with ``RawMessageDelivery``, the
  message alone; headers ``x-amz-sns-message-type``, ``-message-id``, ``-topic-arn``,
  ``-subscription-arn`` (and ``x-amz-sns-rawdelivery``), ``Content-Type: text/plain; charset=UTF-8``
  unless the delivery policy's ``requestPolicy.headerContentType`` says otherwise, SNS's User-Agent.
- **Retries**: a 2xx-4xx answer ends a delivery (SNS does not retry a 4xx); a 5xx, a connection
  that fails or no answer within 15 s is retried by the delivery policy (the subscription's, else the
  topic's ``http.defaultHealthyRetryPolicy``, else AWS's default: 3 retries 20 s apart; "Amazon SNS
  message delivery retries"): immediate retries, then ``numMinDelayRetries`` at ``minDelayTarget``,
  the backoff phase from ``minDelayTarget`` to ``maxDelayTarget`` by ``backoffFunction``, then
  ``numMaxDelayRetries`` at ``maxDelayTarget``. Jitter is not applied. What a policy exhausts is
  dropped and counted (``NumberOfNotificationsFailed``); HTTP/S subscriptions have no dead-letter
  queue here.
- Filter policies are moto's (it matches MessageAttributes and MessageBody scopes as AWS does).
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tapharness.sandbox import metrics

log = logging.getLogger("tapharness.sandbox.snshttp")

TIMEOUT_S = 15.0
USER_AGENT = "Amazon Simple Notification Service Agent"
DEFAULT_POLICY = {"minDelayTarget": 20, "maxDelayTarget": 20, "numRetries": 3, "numMaxDelayRetries": 0,
                  "numNoDelayRetries": 0, "numMinDelayRetries": 0, "backoffFunction": "linear"}

# (url, headers, body, timeout) -> the endpoint's status, None when it could not be reached in time
Sender = Callable[[str, dict[str, str], bytes, float], "int | None"]


def retry_delays(policy: dict[str, Any]) -> list[float]:
    """The delay before each retry of a delivery policy's ``healthyRetryPolicy``, in order."""
    merged = {**DEFAULT_POLICY, **{k: v for k, v in policy.items() if v is not None}}
    total = int(merged["numRetries"])
    low, high = float(merged["minDelayTarget"]), float(merged["maxDelayTarget"])
    immediate = min(int(merged["numNoDelayRetries"]), total)
    at_min = min(int(merged["numMinDelayRetries"]), total - immediate)
    at_max = min(int(merged["numMaxDelayRetries"]), total - immediate - at_min)
    backoff = total - immediate - at_min - at_max
    delays = [0.0] * immediate + [low] * at_min
    for i in range(1, backoff + 1):
        share = i / backoff
        shape = {"linear": share, "arithmetic": share ** 2, "geometric": share ** 3,
                 "exponential": (2 ** (share * 10) - 1) / 1023}.get(str(merged["backoffFunction"]), share)
        delays.append(low + (high - low) * shape)
    return delays + [high] * at_max


def delivery_policy(subscription_policy: str | None, topic_policy: str | None) -> dict[str, Any]:
    """The effective HTTP/S delivery policy, part by part: the subscription's retry and request
    policies where it sets them (unless the topic's ``disableSubscriptionOverrides``), else the
    topic's ``http`` defaults, else AWS's."""
    subscription, topic = _document(subscription_policy), _document(topic_policy).get("http") or {}
    overridable = not topic.get("disableSubscriptionOverrides")
    retry = (subscription.get("healthyRetryPolicy") if overridable else None) or topic.get("defaultHealthyRetryPolicy")
    request = (subscription.get("requestPolicy") if overridable else None) or topic.get("defaultRequestPolicy")
    return {"retry": retry if isinstance(retry, dict) else {}, "request": request if isinstance(request, dict) else {}}


def _document(raw: str | None) -> dict[str, Any]:
    try:
        document = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def policy_problem(retry: dict[str, Any]) -> str | None:
    """Why SNS would refuse a ``healthyRetryPolicy`` ("Creating an HTTP/S delivery policy": delays
    of 1 to 3,600 s, minimum not above maximum, at most 100 retries, phases within the total, and the
    whole policy's retry time 3,600 s at most); None when it is valid."""
    merged = {**DEFAULT_POLICY, **{k: v for k, v in retry.items() if v is not None}}
    try:
        low, high, total = int(merged["minDelayTarget"]), int(merged["maxDelayTarget"]), int(merged["numRetries"])
        phases = [int(merged[k]) for k in ("numNoDelayRetries", "numMinDelayRetries", "numMaxDelayRetries")]
    except (TypeError, ValueError):
        return "delay targets and retry counts must be whole numbers"
    if not 1 <= low <= high <= 3600:
        return "minDelayTarget and maxDelayTarget must be between 1 and 3600, the minimum not above the maximum"
    if not 0 <= total <= 100 or any(n < 0 for n in phases) or sum(phases) > total:
        return "numRetries must be between 0 and 100 and hold the immediate, minimum and maximum delay phases"
    if str(merged["backoffFunction"]) not in ("linear", "arithmetic", "geometric", "exponential"):
        return f"backoffFunction {merged['backoffFunction']!r} is not linear, arithmetic, geometric or exponential"
    if sum(retry_delays(retry)) > 3600:
        return "the policy's total retry time must not exceed 3600 seconds"
    return None


@dataclass(order=True)
class _Attempt:
    due: float
    order: int
    delivery: Delivery = field(compare=False)


@dataclass
class Delivery:
    """One message for one endpoint, with its remaining retries."""

    url: str
    headers: dict[str, str]
    body: bytes
    topic_arn: str
    account: str
    region: str
    delays: list[float]
    counted: bool = True  # a notification (counted in the topic's metrics), not a confirmation
    attempts: int = 0


class HttpDeliveries:
    """Posts deliveries on a pool of threads, retrying them on a timer heap."""

    def __init__(self, send: Sender | None = None, workers: int = 16) -> None:
        self.send: Sender | None = send
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sns-http")
        self._due: list[_Attempt] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self.delivered = 0
        self.failed = 0
        self._timer: threading.Thread | None = None

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def submit(self, delivery: Delivery, delay: float = 0.0) -> None:
        with self._wake:
            if self._timer is None:  # started by the first delivery, not on import
                self._timer = threading.Thread(target=self._run_timer, name="sns-http-timer", daemon=True)
                self._timer.start()
            heapq.heappush(self._due, _Attempt(time.monotonic() + delay, next(self._order), delivery))
            self._wake.notify()

    def _run_timer(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._due or self._due[0].due > time.monotonic()):
                    self._wake.wait(timeout=(self._due[0].due - time.monotonic()) if self._due else None)
                if self._stopped:
                    return
                attempt = heapq.heappop(self._due)
            self._pool.submit(self._attempt, attempt.delivery)

    def _attempt(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        status: int | None = None
        if self.send is not None:
            try:
                status = self.send(delivery.url, delivery.headers, delivery.body, TIMEOUT_S)
            except Exception:  # a sandbox fault counts as an endpoint that did not answer
                log.exception("sns http: posting to %s failed", delivery.url)
        if status is not None and 200 <= status < 500:
            self._count(delivery, delivered=True)
            return
        if delivery.delays:
            self.submit(delivery, delivery.delays.pop(0))
            return
        log.warning("sns http: %s gave up after %d attempts (last status %s)", delivery.url, delivery.attempts, status)
        self._count(delivery, delivered=False)

    def _count(self, delivery: Delivery, delivered: bool) -> None:
        if not delivery.counted:
            return
        if delivered:
            self.delivered += 1
        else:
            self.failed += 1
        name = delivery.topic_arn.rsplit(":", 1)[-1]
        metrics.put(delivery.account, delivery.region, "AWS/SNS", {"TopicName": name},
                    {"NumberOfNotificationsDelivered" if delivered else "NumberOfNotificationsFailed": (1, "Count")})


def new_token() -> str:
    """A confirmation token (AWS's are long hex strings)."""
    return secrets.token_hex(64)


DELIVERIES = HttpDeliveries()
