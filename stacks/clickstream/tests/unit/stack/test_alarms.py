"""Alarms: every function's errors and throttles are watched, and every alarm tells someone."""

from __future__ import annotations

import pytest

from tapharness.plan import PlanSummary

pytestmark = pytest.mark.plan


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_an_alarm_on_its(plan: PlanSummary, metric: str) -> None:
    functions = {v["function_name"] for v in plan.of_type("aws_lambda_function").values()}
    watched = {v["dimensions"]["FunctionName"] for v in plan.of_type("aws_cloudwatch_metric_alarm").values()
               if v["namespace"] == "AWS/Lambda" and v["metric_name"] == metric}
    assert watched == functions


def test_every_alarm_notifies_the_alarm_topic_on_alarm_and_on_recovery(plan: PlanSummary) -> None:
    alarms = plan.of_type("aws_cloudwatch_metric_alarm")
    assert alarms
    for address in alarms:
        assert plan.targets(address, "alarm_actions") == {"aws_sns_topic.alarms"}, address
        assert plan.targets(address, "ok_actions") == {"aws_sns_topic.alarms"}, address


def test_the_alarm_topic_is_encrypted_and_lets_only_cloudwatch_of_this_account_publish(plan: PlanSummary) -> None:
    topic = plan.values["aws_sns_topic.alarms"]
    assert plan.targets("aws_sns_topic.alarms", "kms_master_key_id") == {"aws_kms_key.this"}
    [statement] = plan.data["data.aws_iam_policy_document.alarms_topic"]["statement"]
    assert statement["actions"] == ["sns:Publish"]
    assert statement["principals"] == [{"type": "Service", "identifiers": ["cloudwatch.amazonaws.com"]}]
    assert [c["variable"] for c in statement["condition"]] == ["aws:SourceAccount"]
    assert "data.aws_iam_policy_document.alarms_topic" in plan.refs("aws_sns_topic_policy.alarms", "policy")
    assert topic["name"] == f"{plan.variables['project_name']}-{plan.variables['environment']}-alarms"
