"""Alarms that can fire on their own metric's cadence, judged by the sandbox's CloudWatch evaluator
(CloudWatch's rules: tapharness/sandbox/alarms.py) over the plan's alarm settings."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from tapharness.plan import PlanSummary
from tapharness.sandbox.alarms import (
    ALARM,
    breaching,
    evaluate_points,
    period_values,
    treat_missing,
)

pytestmark = pytest.mark.plan

# What overbooking_resolver publishes, once per reconciliation run.
PER_RUN = ("unresolved_overbooking", "replica_drift")


def every_s(expression: str) -> int:
    found = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours)\)", expression)
    assert found, expression
    return int(found.group(1)) * (3600 if found.group(2).startswith("hour") else 60)


def alarm_of(plan: PlanSummary, key: str) -> Any:
    values = plan.values[f'aws_cloudwatch_metric_alarm.this["{key}"]']
    return SimpleNamespace(
        namespace=values["namespace"], metric_name=values["metric_name"], unit=values.get("unit"),
        dimensions=[SimpleNamespace(name=k, value=v) for k, v in (values.get("dimensions") or {}).items()],
        statistic=values["statistic"], extended_statistic=values.get("extended_statistic"),
        period=int(values["period"]), evaluation_periods=int(values["evaluation_periods"]),
        datapoints_to_alarm=int(values["datapoints_to_alarm"]), threshold=float(values["threshold"]),
        comparison_operator=values["comparison_operator"], treat_missing_data=values["treat_missing_data"])


@pytest.mark.parametrize("key", PER_RUN)
def test_one_run_reporting_the_condition_raises_the_alarm_before_the_next_run(plan: PlanSummary, key: str) -> None:
    alarm = alarm_of(plan, key)
    run_every = every_s(plan.variables["reconciliation_schedule_expression"])
    ran_at = 1_800_000_000.0 + 1
    datum = SimpleNamespace(namespace=alarm.namespace, name=alarm.metric_name, dimensions=alarm.dimensions,
                            unit="Count", timestamp=ran_at, value=alarm.threshold)
    states = []
    state = "OK"
    for minute in range(1, run_every // 60 + 1):  # CloudWatch evaluates each minute until the next run
        values = period_values([datum], alarm, ran_at - 1 + 60 * minute)
        points = [None if v is None else breaching(v, alarm.comparison_operator, alarm.threshold) for v in values]
        state = evaluate_points(points, alarm.evaluation_periods, alarm.datapoints_to_alarm, treat_missing(alarm), state)
        states.append(state)
    assert ALARM in states, f"{key} (period {alarm.period} s, {alarm.datapoints_to_alarm} of " \
                            f"{alarm.evaluation_periods}) never fires on one datapoint per {run_every} s: {states}"
