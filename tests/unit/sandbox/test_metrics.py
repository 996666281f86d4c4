"""The AWS/* metrics the sandbox publishes from what happened, as the services publish them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from .helpers import unique


def statistic(aws: Any, sandbox: Any, namespace: str, name: str, dimensions: dict[str, str],
              stat: str) -> float | None:
    """The statistic over the last ten minutes of the sandbox's clock (another test may have moved it
    on: the services stamp their metrics on it)."""
    now = datetime.fromtimestamp(sandbox.control("GET", "clock")["now"], UTC)
    points = aws("cloudwatch").get_metric_statistics(
        Namespace=namespace, MetricName=name, Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        StartTime=now - timedelta(minutes=10), EndTime=now + timedelta(minutes=1), Period=3600,
        Statistics=[stat])["Datapoints"]
    return points[0][stat] if points else None


def test_each_invocation_counts_in_the_functions_invocations_errors_and_duration(aws, sandbox, make_function):
    arn = make_function("def lambda_handler(event, context):\n"
                        "    if event.get('fail'):\n        raise RuntimeError('boom')\n    return 1\n")
    aws("lambda").invoke(FunctionName=arn, Payload=b"{}")
    aws("lambda").invoke(FunctionName=arn, Payload=b'{"fail": true}')
    dims = {"FunctionName": arn.split(":")[-1]}
    assert statistic(aws, sandbox, "AWS/Lambda", "Invocations", dims, "Sum") == 2
    assert statistic(aws, sandbox, "AWS/Lambda", "Errors", dims, "Sum") == 1
    assert statistic(aws, sandbox, "AWS/Lambda", "Duration", dims, "Maximum") > 0


def test_a_queues_depth_and_oldest_age_are_sampled(aws, sandbox):
    url = aws("sqs").create_queue(QueueName=unique("depth"))["QueueUrl"]
    for i in range(3):
        aws("sqs").send_message(QueueUrl=url, MessageBody=str(i))
    time.sleep(1.1)
    sandbox.control("POST", "alarms")  # samples the services' metrics now
    dims = {"QueueName": url.rsplit("/", 1)[-1]}
    assert statistic(aws, sandbox, "AWS/SQS", "ApproximateNumberOfMessagesVisible", dims, "Maximum") == 3
    assert statistic(aws, sandbox, "AWS/SQS", "ApproximateAgeOfOldestMessage", dims, "Maximum") >= 1


def on_demand_table(aws: Any, prefix: str) -> str:
    table = unique(prefix)
    aws("dynamodb").create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                 BillingMode="PAY_PER_REQUEST")
    return table


def test_an_injected_throttle_counts_in_the_tables_write_throttle_events(aws, sandbox):
    table = on_demand_table(aws, "throttled")
    sandbox.control("POST", "faults", {"error": {"request": "dynamodb BatchWriteItem",
                                                 "code": "ProvisionedThroughputExceededException", "count": 1}})
    aws("dynamodb").batch_write_item(RequestItems={table: [{"PutRequest": {"Item": {"pk": {"S": "a"}}}}]})
    assert sandbox.control("GET", "faults")["injected"]["dynamodb BatchWriteItem"] >= 1  # the SDK retried past it
    assert statistic(aws, sandbox, "AWS/DynamoDB", "WriteThrottleEvents", {"TableName": table}, "Sum") == 1


def test_an_injected_throttle_of_a_transaction_counts_in_its_tables_write_throttle_events(aws, sandbox):
    table = on_demand_table(aws, "throttled-tx")
    sandbox.control("POST", "faults", {"error": {"request": "dynamodb TransactWriteItems",
                                                 "code": "ProvisionedThroughputExceededException", "count": 1}})
    aws("dynamodb").transact_write_items(TransactItems=[
        {"Put": {"TableName": table, "Item": {"pk": {"S": "a"}}}},
        {"Update": {"TableName": table, "Key": {"pk": {"S": "b"}}, "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}}])
    assert statistic(aws, sandbox, "AWS/DynamoDB", "WriteThrottleEvents", {"TableName": table}, "Sum") == 1
