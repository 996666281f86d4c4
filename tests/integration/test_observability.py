"""Flow 8: the CloudWatch alarms and log groups the stack outputs exist."""

from __future__ import annotations

import pytest

from tapharness.deployed import Target

pytestmark = pytest.mark.integration


def test_every_alarm_in_the_outputs_exists(target: Target) -> None:
    names = sorted(target.output("alarm_names").values())
    found: set[str] = set()
    for page in target.client("cloudwatch").get_paginator("describe_alarms").paginate(AlarmNames=names):
        found.update(alarm["AlarmName"] for alarm in page["MetricAlarms"])
    assert names and set(names) <= found, f"alarms missing: {sorted(set(names) - found)}"


def test_every_log_group_in_the_outputs_exists(target: Target) -> None:
    logs = target.client("logs")
    missing = []
    for name in sorted(target.output("log_group_names").values()):
        groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        if name not in {g["logGroupName"] for g in groups}:
            missing.append(name)
    assert not missing, f"log groups missing: {missing}"
