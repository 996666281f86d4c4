"""CloudWatch alarm evaluation: the tables of "Configuring how CloudWatch alarms treat missing data"
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html),
row by row, and the statistics a period reduces to."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tapharness.sandbox.alarms import (
    ALARM,
    INSUFFICIENT,
    OK,
    AlarmEvaluator,
    evaluate_points,
    statistic,
)

from .helpers import unique

RETAIN = "retain"
CURRENT = "INSUFFICIENT_DATA-before"


def points(row: str) -> list[bool | None]:
    """'0 - X - X' (oldest first): 0 not breaching, X breaching, - missing."""
    return [{"0": False, "X": True, "-": None}[p] for p in row.split()]


# (data points, MISSING, IGNORE, BREACHING, NOT BREACHING), the page's first table: M = 3, N = 3.
THREE_OF_THREE = [
    ("0 - X - X", OK, OK, OK, OK),
    ("0 - - - -", OK, OK, OK, OK),
    ("- - - - -", INSUFFICIENT, RETAIN, ALARM, OK),
    ("0 X X - X", ALARM, ALARM, ALARM, ALARM),
    ("- - X - -", ALARM, RETAIN, ALARM, OK),
]
# The second table: M = 2, N = 3.
TWO_OF_THREE = [
    ("0 - X - X", ALARM, ALARM, ALARM, ALARM),
    ("0 0 X 0 X", ALARM, ALARM, ALARM, ALARM),
    ("0 - X - -", OK, OK, ALARM, OK),
    ("- - - - 0", OK, OK, ALARM, OK),
    ("- - - X -", ALARM, RETAIN, ALARM, OK),
]
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")


@pytest.mark.parametrize(("m", "row", "expected"), [
    (m, row, dict(zip(TREATMENTS, states, strict=True)))
    for m, table in ((3, THREE_OF_THREE), (2, TWO_OF_THREE)) for row, *states in table])
def test_the_documented_missing_data_tables(m, row, expected):
    decided = {t: evaluate_points(points(row), 3, m, t, CURRENT) for t in TREATMENTS}
    assert decided == {t: CURRENT if s == RETAIN else s for t, s in expected.items()}


@pytest.mark.parametrize("row", ["- - - - X", "- - - X -"])
def test_a_recent_breach_alone_does_not_alarm_before_m_periods(row):
    """"the first two scenarios ... - - - - X and - - - X - ... do not go into ALARM state" (M = N = 3)."""
    assert evaluate_points(points(row), 3, 3, "missing", OK) == OK


def test_with_enough_real_points_the_most_recent_n_decide_whatever_the_treatment():
    assert {evaluate_points(points("X X - 0 0 0"), 3, 1, t, OK) for t in TREATMENTS} == {OK}


@pytest.mark.parametrize(("name", "value"), [("Sum", 10.0), ("Average", 2.5), ("Minimum", 1.0), ("Maximum", 4.0),
                                             ("SampleCount", 4.0), ("p50", 2.0), ("p99", 4.0)])
def test_a_period_reduces_to_its_statistic(name, value):
    assert statistic([3.0, 1.0, 4.0, 2.0], name) == value


# --- in the sandbox: metrics, evaluation, actions --------------------------------------------------


def _topic_to_queue(aws: Any) -> tuple[str, str]:
    """A topic CloudWatch may publish to, delivering to a queue: (topic ARN, queue URL)."""
    topic = aws("sns").create_topic(Name=unique("alarms"))["TopicArn"]
    aws("sns").set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                                "Action": "sns:Publish", "Resource": topic}]}))
    url = aws("sqs").create_queue(QueueName=unique("alarm-inbox"))["QueueUrl"]
    queue = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": queue, "Condition": {"ArnEquals": {"aws:SourceArn": topic}}}]})})
    aws("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue, Attributes={"RawMessageDelivery": "true"})
    return topic, url


def _notifications(aws: Any, url: str) -> list[dict[str, Any]]:
    messages = aws("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_a_new_alarm_waits_in_insufficient_data_for_the_next_evaluation_cycle():
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        cloudwatch.put_metric_alarm(
            AlarmName="new", Namespace="Sandbox/Tests", MetricName="Errors", Statistic="Sum", Period=60,
            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="notBreaching")
        # How the sandbox's CloudWatch starts an alarm (moto alone starts it OK).
        cloudwatch.set_alarm_state(AlarmName="new", StateValue="INSUFFICIENT_DATA", StateReason="created")
        evaluator = AlarmEvaluator(lambda *_: {})

        def state() -> str:
            return str(cloudwatch.describe_alarms(AlarmNames=["new"])["MetricAlarms"][0]["StateValue"])

        now = time.time()
        evaluator.evaluate_all(now)  # a tick just after PutMetricAlarm
        assert state() == "INSUFFICIENT_DATA"
        evaluator.evaluate_all(now + 60)  # the next cycle
        assert state() == "OK"


def test_an_alarm_goes_ok_then_alarm_on_its_metric_and_tells_its_topic(aws, sandbox):
    topic, url = _topic_to_queue(aws)
    namespace, name = "Sandbox/Tests", unique("errors")
    aws("cloudwatch").put_metric_alarm(
        AlarmName=name, Namespace=namespace, MetricName="Errors", Statistic="Sum", Period=60, EvaluationPeriods=1,
        Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching",
        Dimensions=[{"Name": "Function", "Value": name}], AlarmActions=[topic], OKActions=[topic])
    assert aws("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"] == "INSUFFICIENT_DATA"
    sandbox.control("POST", "alarms")
    [ok] = _notifications(aws, url)
    assert (ok["AlarmName"], ok["OldStateValue"], ok["NewStateValue"]) == (name, "INSUFFICIENT_DATA", "OK")
    last_minute = datetime.fromtimestamp(sandbox.control("GET", "clock")["now"] - 60, UTC)
    aws("cloudwatch").put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "Errors", "Value": 2, "Timestamp": last_minute, "Dimensions": [{"Name": "Function", "Value": name}]},
        {"MetricName": "Errors", "Value": 5, "Timestamp": last_minute, "Dimensions": [{"Name": "Function", "Value": "other"}]}])
    sandbox.control("POST", "alarms")
    [alarm] = _notifications(aws, url)
    assert (alarm["OldStateValue"], alarm["NewStateValue"], alarm["Trigger"]["MetricName"]) == ("OK", "ALARM", "Errors")
    assert aws("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"] == "ALARM"
    [status] = [a for a in sandbox.control("GET", "alarms")["alarms"] if a["alarm"] == name]
    assert [(c["from"], c["to"]) for c in status["changes"]] == [("INSUFFICIENT_DATA", "OK"), ("OK", "ALARM")]
    assert status["metric_reported"] and status["values"][-1] == 2


def test_an_alarm_on_a_metric_nothing_reported_is_insufficient_data_and_says_so(aws, sandbox):
    name = unique("silent")
    aws("cloudwatch").put_metric_alarm(
        AlarmName=name, Namespace="AWS/SQS", MetricName="ApproximateAgeOfOldestMessage", Statistic="Maximum",
        Period=60, EvaluationPeriods=2, Threshold=300, ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": "QueueName", "Value": name}])
    sandbox.control("POST", "alarms")
    [status] = [a for a in sandbox.control("GET", "alarms")["alarms"] if a["alarm"] == name]
    assert (status["state"], status["metric_reported"]) == ("INSUFFICIENT_DATA", False)


def test_embedded_metric_format_log_events_become_metrics(aws):
    group, stream = f"/aws/lambda/{unique('emf')}", "2026/12/07/[$LATEST]abc"
    aws("logs").create_log_group(logGroupName=group)
    aws("logs").create_log_stream(logGroupName=group, logStreamName=stream)
    now_ms = int(time.time() * 1000)
    event = {"_aws": {"Timestamp": now_ms, "CloudWatchMetrics": [{
        "Namespace": "Sandbox/EMF", "Dimensions": [["service"]], "Metrics": [{"Name": "Bookings", "Unit": "Count"}]}]},
        "service": group, "Bookings": [1, 2]}
    aws("logs").put_log_events(logGroupName=group, logStreamName=stream,
                               logEvents=[{"timestamp": now_ms, "message": json.dumps(event)}])
    statistics = aws("cloudwatch").get_metric_statistics(
        Namespace="Sandbox/EMF", MetricName="Bookings", Dimensions=[{"Name": "service", "Value": group}],
        StartTime=datetime.fromtimestamp(now_ms / 1000 - 60, UTC), EndTime=datetime.fromtimestamp(now_ms / 1000 + 60, UTC),
        Period=120, Statistics=["Sum", "SampleCount"])["Datapoints"]
    assert [(d["Sum"], d["SampleCount"]) for d in statistics] == [(3.0, 2.0)]
