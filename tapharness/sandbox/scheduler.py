"""EventBridge schedules for the sandbox: moto stores scheduled rules but never fires them.

``Scheduler`` lists the enabled rules with a ``ScheduleExpression`` every second, works out
when each is next due (``rate(...)`` from when the ticker first saw the rule, ``cron(...)`` on
UTC wall-clock minutes) and, when due, delivers to the rule's targets: Step Functions
(StartExecution with the target's ``Input``, or the scheduled event when it has none), Lambda
(asynchronous Invoke), SQS (SendMessage) and SNS (Publish), under the target's retry policy and
into its dead-letter queue when that is spent (``_deliver_or_dead_letter``). ``fire(rule_name)``
does the same on demand (CLI ``fire``, control endpoint ``POST /_sandbox/rules/<name>/fire``).

Cron fields: minutes, hours, day-of-month, month, day-of-week (1-7 = SUN-SAT, or names),
year; with ``*``, ``?``, lists, ranges and ``/`` steps (``L``, ``W`` and ``#`` are not supported).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from tapharness.sandbox.clients import AwsClients
from tapharness.sandbox.pollers import POLLER_ERRORS

if TYPE_CHECKING:
    from tapharness.sandbox.iam.sessions import ServiceGuard

log = logging.getLogger("tapharness.sandbox.scheduler")

_MONTHS = {name: i for i, name in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
_DAYS = {name: i for i, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# Errors a later attempt may not meet: throttling (a service's 5xx is retried too).
RETRIABLE_CODES = frozenset({"ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
                             "RequestLimitExceeded", "ServiceUnavailable", "ServiceUnavailableException",
                             "InternalFailure", "InternalServerError"})
RETRY_BASE_DELAY_S = 0.2
RETRY_MAX_DELAY_S = 1.0


def _parse_field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int] | None:
    """The values one cron field allows; None for ``*``/``?`` (any)."""
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _value(first, names), _value(last, names)
        else:
            start = _value(part, names)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high):
            raise ValueError(f"cron value {part!r} outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, names: dict[str, int] | None) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ValueError(f"unsupported cron value {text!r}")
    return int(text)


@dataclass(frozen=True)
class Cron:
    """A parsed AWS cron expression."""

    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    days_of_month: frozenset[int] | None
    months: frozenset[int] | None
    days_of_week: frozenset[int] | None
    years: frozenset[int] | None

    @classmethod
    def parse(cls, body: str) -> Cron:
        fields = body.split()
        if len(fields) != 6:
            raise ValueError(f"cron needs 6 fields, got {len(fields)}: {body!r}")
        return cls(
            minutes=_parse_field(fields[0], 0, 59), hours=_parse_field(fields[1], 0, 23),
            days_of_month=_parse_field(fields[2], 1, 31), months=_parse_field(fields[3], 1, 12, _MONTHS),
            days_of_week=_parse_field(fields[4], 1, 7, _DAYS), years=_parse_field(fields[5], 1970, 2199),
        )

    @staticmethod
    def _allows(allowed: frozenset[int] | None, value: int) -> bool:
        return allowed is None or value in allowed

    def _day_matches(self, day: datetime) -> bool:
        aws_weekday = (day.weekday() + 1) % 7 + 1
        return (self._allows(self.years, day.year) and self._allows(self.months, day.month)
                and self._allows(self.days_of_month, day.day) and self._allows(self.days_of_week, aws_weekday))

    def next_after(self, moment: datetime) -> datetime:
        """The first matching minute strictly after ``moment`` (UTC)."""
        start = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        hours = sorted(self.hours) if self.hours is not None else range(24)
        minutes = sorted(self.minutes) if self.minutes is not None else range(60)
        day = start.replace(hour=0, minute=0)
        for _ in range(366 * 5):
            if self._day_matches(day):
                for hour in hours:
                    for minute in minutes:
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        raise ValueError("cron expression never fires in the next five years")


def next_fire(expression: str, after: datetime) -> datetime:
    """When a ``rate(...)`` or ``cron(...)`` schedule is next due after ``after``."""
    expression = expression.strip()
    rate = _RATE.match(expression)
    if rate:
        unit = rate.group(2).rstrip("s")
        return after + timedelta(seconds=int(rate.group(1)) * _UNIT_SECONDS[unit])
    if expression.startswith("cron(") and expression.endswith(")"):
        return Cron.parse(expression[5:-1]).next_after(after)
    raise ValueError(f"unsupported schedule expression {expression!r}")


class DeliveryFailed(Exception):
    """A target delivery that failed: its error code and message, and whether a retry may mend it."""

    def __init__(self, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


class Scheduler(threading.Thread):
    """Fires scheduled EventBridge rules when they are due, and on demand."""

    def __init__(self, clients: AwsClients, guard: ServiceGuard | None = None, account_id: str = "123456789012",
                 tick: float = 1.0) -> None:
        super().__init__(name="scheduler", daemon=True)
        self.clients = clients
        self.guard = guard
        self.account_id = account_id
        self.tick = tick
        self.due: dict[str, datetime] = {}
        self.fired: list[dict[str, Any]] = []
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def _scheduled_rules(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = self.clients.client("events").list_rules(**kwargs)
            rules += [r for r in page["Rules"] if r.get("ScheduleExpression") and r.get("State") == "ENABLED"]
            if not page.get("NextToken"):
                return rules
            kwargs["NextToken"] = page["NextToken"]

    def _scheduled_event(self, rule: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": self.account_id, "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.clients.region, "resources": [rule["Arn"]], "detail": {},
        }

    def fire(self, rule_name: str) -> list[dict[str, Any]]:
        """Deliver to every target of the rule now; returns what was started or sent, per target."""
        events = self.clients.client("events")
        rule = events.describe_rule(Name=rule_name)
        results = []
        for target in events.list_targets_by_rule(Rule=rule_name)["Targets"]:
            payload = target.get("Input") or json.dumps(self._scheduled_event(rule))
            results.append({"rule": rule_name, "target": target["Id"], "arn": target["Arn"],
                            **self._deliver_or_dead_letter(target, rule, payload)})
        self.fired += results
        return results

    def _deliver_or_dead_letter(self, target: dict[str, Any], rule: dict[str, Any], payload: str) -> dict[str, Any]:
        """One target's delivery under its retry policy, as EventBridge: a retriable failure
        (throttling, the service's own error) is retried with exponential backoff up to the
        policy's attempts and event age (185 and 24 hours by default); a failure no retry mends
        (permissions, a missing target) is not ("Using dead-letter queues to process undelivered
        events in EventBridge"). What is not delivered goes to the target's dead-letter queue, or
        is dropped. The sandbox's backoff starts at ``RETRY_BASE_DELAY_S`` and doubles up to
        ``RETRY_MAX_DELAY_S``."""
        policy = target.get("RetryPolicy") or {}
        retries_left = int(policy.get("MaximumRetryAttempts", 185))
        max_age_s = float(policy.get("MaximumEventAgeInSeconds", 86400))
        started, delay, retries = time.monotonic(), RETRY_BASE_DELAY_S, 0
        while True:
            try:
                return self._deliver(target, rule, payload)
            except DeliveryFailed as failure:
                exhausted = "MaximumRetryAttempts" if retries_left <= 0 else "MaximumEventAgeInSeconds"
                if failure.retryable and retries_left > 0 and time.monotonic() - started + delay <= max_age_s:
                    retries_left, retries = retries_left - 1, retries + 1
                    if self._stop_event.wait(delay):  # the sandbox stops: the event is neither delivered nor given up
                        return {"error": f"{failure} (the sandbox stopped while retrying)", "retries": retries}
                    delay = min(delay * 2, RETRY_MAX_DELAY_S)
                    continue
                log.warning("rule %s: %s not delivered after %d retries: %s", rule["Name"], target["Arn"], retries,
                            failure)
                return {"error": str(failure), "retries": retries,
                        **self._dead_letter(target, rule, payload, failure,
                                            exhausted if failure.retryable else "", retries)}

    def _dead_letter(self, target: dict[str, Any], rule: dict[str, Any], payload: str, failure: DeliveryFailed,
                     exhausted: str, retries: int) -> dict[str, Any]:
        """The event to the target's dead-letter queue with EventBridge's attributes, if it has one
        whose policy lets events.amazonaws.com send for this rule; else it is dropped."""
        queue = (target.get("DeadLetterConfig") or {}).get("Arn")
        if not queue:
            return {"dropped": True}
        if self.guard is not None and not self.guard.may_deliver("events.amazonaws.com", queue, rule["Arn"],
                                                                 self.account_id):
            log.warning("rule %s: the policy of %s does not let events.amazonaws.com in; event dropped",
                        rule["Name"], queue)
            return {"dropped": True}
        attributes = {"RULE_ARN": rule["Arn"], "TARGET_ARN": target["Arn"], "ERROR_CODE": failure.code,
                      "ERROR_MESSAGE": failure.message[:1000], "RETRY_ATTEMPTS": str(retries)}
        if exhausted:
            attributes["EXHAUSTED_RETRY_CONDITION"] = exhausted
        try:
            sent = self.clients.client("sqs").send_message(
                QueueUrl=self.clients.queue_url(queue), MessageBody=payload,
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()})
        except (ClientError, BotoCoreError) as exc:
            log.warning("rule %s: the dead-letter queue %s refused the event (%s); dropped", rule["Name"], queue, exc)
            return {"dropped": True}
        return {"dead_letter": queue, "messageId": sent["MessageId"]}

    def _deliver(self, target: dict[str, Any], rule: dict[str, Any], payload: str) -> dict[str, Any]:
        """Start or send to one target, as EventBridge: a Step Functions target as the target's
        ``RoleArn``; a function, queue or topic if its resource policy lets events.amazonaws.com in.
        DeliveryFailed when it fails."""
        arn, rule_name = target["Arn"], rule["Name"]
        service = arn.split(":")[2]
        clients = self.clients
        if self.guard is not None:
            if service == "states":
                if not target.get("RoleArn"):
                    raise DeliveryFailed("NO_PERMISSIONS", "a Step Functions target needs a RoleArn")
                try:
                    clients = self.guard.sessions.clients_for(target["RoleArn"], f"events-{rule_name}"[:64],
                                                              "events.amazonaws.com", rule["Arn"])
                except PermissionError as exc:
                    raise DeliveryFailed("NO_PERMISSIONS", str(exc)) from None
            elif not self.guard.may_deliver("events.amazonaws.com", arn, rule["Arn"], self.account_id):
                raise DeliveryFailed("NO_PERMISSIONS", f"the resource policy of {arn} does not allow "
                                                       f"events.amazonaws.com for {rule['Arn']}")
        try:
            if service == "states":
                name = f"{rule_name[:40]}-{uuid.uuid4().hex[:20]}"
                execution = clients.client("stepfunctions").start_execution(
                    stateMachineArn=arn, name=name, input=payload)
                return {"executionArn": execution["executionArn"]}
            if service == "lambda":
                response = clients.client("lambda").invoke(FunctionName=arn, InvocationType="Event",
                                                           Payload=payload.encode())
                return {"statusCode": response["StatusCode"]}
            if service == "sqs":
                return {"messageId": clients.client("sqs").send_message(QueueUrl=clients.queue_url(arn),
                                                                        MessageBody=payload)["MessageId"]}
            if service == "sns":
                return {"messageId": clients.client("sns").publish(TopicArn=arn, Message=payload)["MessageId"]}
        except ClientError as exc:
            error = exc.response["Error"]
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
            raise DeliveryFailed(str(error.get("Code")), str(error.get("Message")),
                                 status >= 500 or error.get("Code") in RETRIABLE_CODES) from None
        except BotoCoreError as exc:  # the service did not answer (a connection or read timeout): retried
            raise DeliveryFailed(type(exc).__name__, str(exc), retryable=True) from None
        raise ValueError(f"unsupported schedule target {arn}")

    def check(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """One tick: fire the rules that are due at ``now``; returns what was fired."""
        now = now or datetime.now(UTC)
        fired: list[dict[str, Any]] = []
        rules = {r["Name"]: r for r in self._scheduled_rules()}
        for name in [n for n in self.due if n not in rules]:
            del self.due[name]
        for name, rule in rules.items():
            if name not in self.due:
                self.due[name] = next_fire(rule["ScheduleExpression"], now)
                continue
            if now >= self.due[name]:
                self.due[name] = next_fire(rule["ScheduleExpression"], now)
                fired += self.fire(name)
        return fired

    def run(self) -> None:
        while not self._stop_event.wait(self.tick):
            try:
                self.check()
            except POLLER_ERRORS as exc:  # a failed tick is logged; the ticker goes on
                log.warning("schedule tick failed: %s", exc)
