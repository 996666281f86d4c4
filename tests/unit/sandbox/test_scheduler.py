"""EventBridge schedules: expression parsing, due rules firing, on-demand firing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tapharness.sandbox.clients import AwsClients
from tapharness.sandbox.scheduler import Scheduler, next_fire

from .helpers import unique

NOW = datetime(2026, 11, 23, 6, 30, 15, tzinfo=UTC)  # a Monday
PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


def test_rate_in_minutes_is_due_that_many_minutes_later():
    assert next_fire("rate(5 minutes)", NOW) == NOW + timedelta(minutes=5)


def test_rate_of_one_day_uses_the_singular_unit():
    assert next_fire("rate(1 day)", NOW) == NOW + timedelta(days=1)


def test_nightly_cron_fires_at_the_next_matching_minute():
    assert next_fire("cron(0 3 * * ? *)", NOW) == datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def test_cron_later_the_same_day():
    assert next_fire("cron(45 6 * * ? *)", NOW) == datetime(2026, 11, 23, 6, 45, tzinfo=UTC)


def test_cron_step_in_minutes():
    assert next_fire("cron(0/20 * * * ? *)", NOW) == datetime(2026, 11, 23, 6, 40, tzinfo=UTC)


def test_cron_day_of_week_names_use_aws_numbering():
    assert next_fire("cron(0 12 ? * SAT *)", NOW) == datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_cron_day_of_week_number_one_is_sunday():
    assert next_fire("cron(0 12 ? * 1 *)", NOW) == datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_unsupported_expression_is_an_error():
    with pytest.raises(ValueError, match="unsupported schedule expression"):
        next_fire("at(2026-11-23T06:00:00)", NOW)


@pytest.fixture
def scheduled_machine(aws, role_arn):
    """A rule on a schedule whose target is a Pass state machine with a fixed input."""
    machine = aws("stepfunctions").create_state_machine(name=unique("machine"), definition=PASS_MACHINE,
                                                        roleArn=role_arn)["stateMachineArn"]
    rule = unique("rule")
    aws("events").put_rule(Name=rule, ScheduleExpression="rate(1 minute)", State="ENABLED")
    aws("events").put_targets(Rule=rule, Targets=[{"Id": "machine", "Arn": machine, "RoleArn": role_arn,
                                                   "Input": json.dumps({"run_date": "2026-11-23"})}])
    yield rule, machine
    aws("events").remove_targets(Rule=rule, Ids=["machine"])
    aws("events").delete_rule(Name=rule)


def test_fire_starts_an_execution_of_the_target_with_its_input(aws, sandbox, scheduled_machine):
    rule, machine = scheduled_machine
    fired = Scheduler(AwsClients(sandbox.endpoint_url, "us-east-1")).fire(rule)
    execution = aws("stepfunctions").describe_execution(executionArn=fired[0]["executionArn"])
    assert execution["stateMachineArn"] == machine
    assert json.loads(execution["input"]) == {"run_date": "2026-11-23"}


def test_check_fires_a_rule_once_it_is_due(sandbox, scheduled_machine):
    rule, _ = scheduled_machine
    scheduler = Scheduler(AwsClients(sandbox.endpoint_url, "us-east-1"))
    first = scheduler.check(NOW)
    later = scheduler.check(NOW + timedelta(minutes=1, seconds=1))
    assert [f["rule"] for f in first] == []
    assert rule in [f["rule"] for f in later]


def test_control_endpoint_fires_a_rule_on_demand(sandbox, scheduled_machine):
    import urllib.request

    rule, _ = scheduled_machine
    request = urllib.request.Request(f"{sandbox.gateway_url}/_sandbox/rules/{rule}/fire", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        fired = json.loads(response.read())["fired"]
    assert fired[0]["executionArn"].startswith("arn:aws:states:")


@pytest.fixture
def dead_letters(aws):
    """(queue URL, queue ARN) of a queue to dead-letter into."""
    url = aws("sqs").create_queue(QueueName=unique("dlq"))["QueueUrl"]
    arn = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    yield url, arn
    aws("sqs").delete_queue(QueueUrl=url)


def _retarget(aws, rule: str, target_arn: str, role_arn: str, **settings) -> None:
    aws("events").put_targets(Rule=rule, Targets=[{"Id": "machine", "Arn": target_arn, "RoleArn": role_arn,
                                                   "Input": json.dumps({"run_date": "2026-11-23"}), **settings}])


def _dead_lettered(aws, url: str) -> list[dict]:
    return aws("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                      WaitTimeSeconds=1).get("Messages", [])


def test_a_throttled_delivery_is_retried_as_its_policy_says_then_dead_lettered_with_the_reason(
        aws, sandbox, role_arn, scheduled_machine, dead_letters):
    rule, machine = scheduled_machine
    url, queue = dead_letters
    _retarget(aws, rule, machine, role_arn, RetryPolicy={"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 60},
              DeadLetterConfig={"Arn": queue})
    sandbox.control("POST", "faults", {"error": {"request": "states StartExecution", "code": "ThrottlingException",
                                                 "count": 100}})
    try:
        [delivery] = Scheduler(AwsClients(sandbox.endpoint_url, "us-east-1")).fire(rule)
    finally:
        sandbox.control("POST", "faults", {"error": {"request": "states StartExecution", "code": "ThrottlingException",
                                                     "count": 0}})
    assert (delivery["retries"], delivery["dead_letter"]) == (2, queue), delivery
    [message] = _dead_lettered(aws, url)
    assert json.loads(message["Body"]) == {"run_date": "2026-11-23"}
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "ThrottlingException" and attributes["RETRY_ATTEMPTS"] == "2"
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
    assert attributes["TARGET_ARN"] == machine and attributes["RULE_ARN"].endswith(f":rule/{rule}")


def test_a_delivery_no_retry_can_mend_goes_to_the_dead_letter_queue_at_once(aws, sandbox, role_arn,
                                                                            scheduled_machine, dead_letters):
    rule, machine = scheduled_machine
    url, queue = dead_letters
    gone = machine.replace(machine.rsplit(":", 1)[1], unique("deleted-machine"))
    _retarget(aws, rule, gone, role_arn, DeadLetterConfig={"Arn": queue})
    [delivery] = Scheduler(AwsClients(sandbox.endpoint_url, "us-east-1")).fire(rule)
    assert (delivery["retries"], delivery["dead_letter"]) == (0, queue), delivery
    [message] = _dead_lettered(aws, url)
    assert message["MessageAttributes"]["ERROR_CODE"]["StringValue"] == "StateMachineDoesNotExist"
    assert "EXHAUSTED_RETRY_CONDITION" not in message["MessageAttributes"]


def test_an_undeliverable_event_without_a_dead_letter_queue_is_dropped(aws, sandbox, role_arn, scheduled_machine):
    rule, machine = scheduled_machine
    _retarget(aws, rule, machine.replace(machine.rsplit(":", 1)[1], unique("deleted-machine")), role_arn)
    [delivery] = Scheduler(AwsClients(sandbox.endpoint_url, "us-east-1")).fire(rule)
    assert delivery["dropped"] is True and "StateMachineDoesNotExist" in delivery["error"], delivery
