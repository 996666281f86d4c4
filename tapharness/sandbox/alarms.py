"""CloudWatch metric alarms evaluated as CloudWatch evaluates them, over the metrics the sandbox holds.

The rules are CloudWatch's ("Alarm evaluation", alarm-evaluation.html; "Configuring how CloudWatch
alarms treat missing data", alarms-and-missing-data.html):

- an alarm with a period of a minute or more is evaluated every minute, one of 10, 20 or 30 s
  every 10 s, each time over its last Evaluation Periods (N) periods ending then ("at the end of
  minute 6 ... minutes 2 to 6"); each period's data points reduce to one value by the alarm's
  statistic (Sum, Average, Minimum, Maximum, SampleCount, pNN), and a period without data is
  missing;
- CloudWatch retrieves more periods than N, the evaluation range (N + 2 here, as in the page's
  example: "CloudWatch retrieves the 5 most recent data points" for N = 3). With N real data
  points in range, the most recent N decide, whatever TreatMissingData says; with fewer, the
  real ones are all used and the rest filled per TreatMissingData (breaching, notBreaching; for
  missing and ignore nothing is filled); with none, missing → INSUFFICIENT_DATA, ignore → the
  state is kept, breaching → ALARM, notBreaching → OK;
- M of them breaching (Datapoints to Alarm, default N) → ALARM, else OK; and "the alarm goes into
  ALARM state ... when the oldest available breaching datapoint ... is at least as old as the value
  of Datapoints to Alarm, and all other more recent data points are breaching or missing" (with
  ignore the state is then kept). ``evaluate_points`` reproduces both tables of that page
  (tests/unit/sandbox/test_alarms.py);
- AWS/DynamoDB metrics default to ignoring missing data;
- actions run on state changes only: the topics of AlarmActions, OKActions or
  InsufficientDataActions get the alarm's JSON message, if their policy (and key policy) let
  cloudwatch.amazonaws.com publish for the alarm.

The metrics are those the sandbox holds: PutMetricData's, embedded metric format log lines (which
CloudWatch Logs turns into metrics), and the AWS/* metrics the services publish
(``tapharness.sandbox.metrics``, sampled before each evaluation). An alarm on a metric nothing has
reported is listed as such by ``/_sandbox/alarms`` rather than silently OK.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tapharness.sandbox import clock

log = logging.getLogger("tapharness.sandbox.alarms")
OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
EXTRA_PERIODS = 2  # the evaluation range beyond the N evaluation periods

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}


def breaching(value: float, comparison: str, threshold: float) -> bool:
    return _COMPARE[comparison](value, threshold)


def statistic(values: Sequence[float], name: str) -> float:
    """One period's value: Sum, Average, Minimum, Maximum, SampleCount or a percentile (pNN, nearest rank)."""
    if name == "Sum":
        return math.fsum(values)
    if name == "Average":
        return math.fsum(values) / len(values)
    if name == "Minimum":
        return min(values)
    if name == "Maximum":
        return max(values)
    if name == "SampleCount":
        return float(len(values))
    if name.startswith("p"):
        ordered = sorted(values)
        rank = max(1, math.ceil(float(name[1:]) / 100 * len(ordered)))
        return ordered[rank - 1]
    raise ValueError(f"statistic {name!r} is not one the sandbox computes")


def evaluate_points(points: Sequence[bool | None], evaluation_periods: int, datapoints_to_alarm: int,
                    treat_missing: str, current: str) -> str:
    """The alarm's state from the evaluation range's data points (oldest first; True breaching,
    False not, None missing)."""
    real = [p for p in points if p is not None]
    if not real:
        return {"missing": INSUFFICIENT, "ignore": current, "breaching": ALARM, "notBreaching": OK}[treat_missing]
    if len(real) >= evaluation_periods:
        return ALARM if sum(real[-evaluation_periods:]) >= datapoints_to_alarm else OK
    fill = {"breaching": True, "notBreaching": False}.get(treat_missing)
    window = real + ([fill] * (evaluation_periods - len(real)) if fill is not None else [])
    if sum(window) >= datapoints_to_alarm:
        return ALARM
    if fill is None and all(real):
        oldest_age = len(points) - next(i for i, p in enumerate(points) if p is not None)
        if oldest_age >= datapoints_to_alarm:
            return current if treat_missing == "ignore" else ALARM
    return OK


@dataclass
class Evaluation:
    """What the evaluator last decided for an alarm, and every state change it made."""

    alarm: str
    state: str
    evaluated_at: str = ""
    values: list[float | None] = field(default_factory=list)
    reported: bool = False
    changes: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)


def _matches(datum: Any, alarm: Any) -> bool:
    if datum.namespace != alarm.namespace or datum.name != alarm.metric_name:
        return False
    if alarm.unit and datum.unit and datum.unit != alarm.unit:
        return False
    return {(d.name, d.value) for d in datum.dimensions} == {(d.name, d.value) for d in alarm.dimensions}


def _epoch(timestamp: Any) -> float:
    if isinstance(timestamp, datetime):
        return (timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)).timestamp()
    if isinstance(timestamp, str):
        return datetime.fromisoformat(timestamp).timestamp()
    return float(timestamp)


def period_values(data: Sequence[Any], alarm: Any, end: float) -> list[float | None]:
    """The evaluation range's values, oldest first: one per period ending at ``end``, None where missing."""
    periods = alarm.evaluation_periods + EXTRA_PERIODS
    start = end - periods * alarm.period
    buckets: list[list[float]] = [[] for _ in range(periods)]
    aggregated: list[list[Any]] = [[] for _ in range(periods)]
    for datum in data:
        at = _epoch(datum.timestamp)
        if not (start <= at < end) or not _matches(datum, alarm):
            continue
        index = int((at - start) // alarm.period)
        if hasattr(datum, "value"):
            buckets[index].append(float(datum.value))
        else:
            aggregated[index].append(datum)
    name = alarm.extended_statistic or alarm.statistic
    values: list[float | None] = []
    for singles, sets in zip(buckets, aggregated, strict=True):
        if sets and name in ("Sum", "SampleCount", "Average", "Minimum", "Maximum"):
            total = math.fsum(singles) + math.fsum(s.sum_stat for s in sets)
            count = len(singles) + sum(s.sample_count for s in sets)
            values.append({"Sum": total, "SampleCount": count, "Average": total / count if count else None,
                           "Minimum": min([*singles, *(s.min_stat for s in sets)]),
                           "Maximum": max([*singles, *(s.max_stat for s in sets)])}[name])
        else:
            values.append(statistic(singles, name) if singles else None)
    return values


def treat_missing(alarm: Any) -> str:
    if alarm.treat_missing_data:
        return str(alarm.treat_missing_data)
    return "ignore" if alarm.namespace == "AWS/DynamoDB" else "missing"


def message(alarm: Any, account: str, old: str, new: str, reason: str, at: datetime) -> dict[str, Any]:
    """The JSON an alarm publishes to its topics on a state change."""
    return {
        "AlarmName": alarm.name, "AlarmDescription": alarm.description, "AWSAccountId": account,
        "NewStateValue": new, "NewStateReason": reason,
        "StateChangeTime": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000",
        "Region": alarm.region_name, "AlarmArn": alarm.alarm_arn, "OldStateValue": old,
        "Trigger": {"MetricName": alarm.metric_name, "Namespace": alarm.namespace,
                    "StatisticType": "ExtendedStatistic" if alarm.extended_statistic else "Statistic",
                    "Statistic": (alarm.extended_statistic or alarm.statistic or "").upper(),
                    "Unit": alarm.unit, "Dimensions": [{"value": d.value, "name": d.name} for d in alarm.dimensions],
                    "Period": alarm.period, "EvaluationPeriods": alarm.evaluation_periods,
                    "DatapointsToAlarm": alarm.datapoints_to_alarm or alarm.evaluation_periods,
                    "ComparisonOperator": alarm.comparison_operator, "Threshold": alarm.threshold,
                    "TreatMissingData": treat_missing(alarm), "EvaluateLowSampleCountPercentile": ""},
    }


Publish = Callable[[str, str, str, str, str], dict[str, Any]]  # (topic, alarm ARN, account, subject, body) -> outcome


class AlarmEvaluator(threading.Thread):
    """Evaluates every metric alarm of every account and region on CloudWatch's schedule."""

    def __init__(self, publish: Publish, tick_s: float = 10.0, sample: Callable[[bool], None] | None = None) -> None:
        super().__init__(name="cloudwatch-alarms", daemon=True)
        self.publish = publish
        self.sample = sample  # the metrics the services sample (queue depths, ended executions), before each tick
        self.tick_s = tick_s
        self.evaluations: dict[str, Evaluation] = {}
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.tick_s):
            try:
                self.evaluate_all()
            except Exception:  # the sandbox keeps running; the next tick evaluates again
                log.exception("alarm evaluation failed")

    def stop(self) -> None:
        self._stop_event.set()

    def evaluate_all(self, now: float | None = None, force: bool = False) -> None:
        """Evaluate every alarm that is due (``force``: every alarm) at ``now`` (the sandbox's clock)."""
        from moto.cloudwatch.models import cloudwatch_backends

        now = clock.now() if now is None else now
        if self.sample is not None:
            self.sample(force)
        for account, regions in list(cloudwatch_backends.items()):
            for backend in list(regions.values()):
                alarms = [a for a in list(backend.alarms.values()) if a.metric_name and not a.metric_data_queries]
                if not alarms:
                    continue
                by_metric: dict[tuple[str, str], list[Any]] = {}
                for datum in list(backend.get_all_metrics()):
                    by_metric.setdefault((datum.namespace, datum.name), []).append(datum)
                for alarm in alarms:
                    self._evaluate(alarm, by_metric.get((alarm.namespace, alarm.metric_name), []), account, now,
                                   force)

    def _evaluate(self, alarm: Any, data: Sequence[Any], account: str, now: float, force: bool) -> None:
        step = 10 if alarm.period < 60 else 60
        end = math.floor(now / step) * step
        if not force and alarm.alarm_arn not in self._last:
            # A new alarm waits in INSUFFICIENT_DATA for the next evaluation cycle, as CloudWatch's do:
            # a tick landing just after PutMetricAlarm does not decide it at once.
            self._last[alarm.alarm_arn] = end
            return
        if self._last.get(alarm.alarm_arn, -1.0) >= end and not force:
            return
        self._last[alarm.alarm_arn] = end
        values = period_values(data, alarm, end)
        points = [None if v is None else breaching(v, alarm.comparison_operator, float(alarm.threshold))
                  for v in values]
        old = alarm.state_value
        new = evaluate_points(points, alarm.evaluation_periods, alarm.datapoints_to_alarm or alarm.evaluation_periods,
                              treat_missing(alarm), old)
        at = datetime.fromtimestamp(end, UTC)
        with self._lock:
            record = self.evaluations.setdefault(alarm.alarm_arn, Evaluation(alarm.name, old))
            record.state, record.evaluated_at, record.values = new, at.isoformat(), values
            record.reported = record.reported or any(_matches(d, alarm) for d in data)
        if new == old:
            return
        shown = [f"{v:g}" for v in values if v is not None][-alarm.evaluation_periods:]
        reason = (f"Threshold Crossed: {len(shown)} datapoint(s) [{', '.join(shown)}] in the last "
                  f"{alarm.evaluation_periods} period(s) of {alarm.period} s against {alarm.comparison_operator} "
                  f"{alarm.threshold} ({treat_missing(alarm)} data)")
        alarm.update_state(reason, json.dumps({"values": values}), new)
        body = json.dumps(message(alarm, account, old, new, reason, at))
        topics = {ALARM: alarm.alarm_actions, OK: alarm.ok_actions, INSUFFICIENT: alarm.insufficient_data_actions}[new]
        outcomes = [{"topic": topic, **self.publish(topic, alarm.alarm_arn, account,
                                                    f'{new}: "{alarm.name}" in {alarm.region_name}', body)}
                    for topic in (topics if alarm.actions_enabled else [])]
        with self._lock:
            record.changes.append({"at": at.isoformat(), "from": old, "to": new, "reason": reason})
            record.actions += outcomes

    def status(self) -> list[dict[str, Any]]:
        """Per alarm: its state, the last evaluation's values, its changes and actions, whether its metric was reported."""
        with self._lock:
            return [{"alarm": e.alarm, "arn": arn, "state": e.state, "evaluated_at": e.evaluated_at,
                     "values": e.values, "metric_reported": e.reported, "changes": list(e.changes),
                     "actions": list(e.actions)} for arn, e in sorted(self.evaluations.items())]
