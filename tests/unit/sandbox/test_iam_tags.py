"""Tags in the IAM request context: the resource's own (aws:ResourceTag/*) where the authorization
reference says the resource type takes them, and the request's (aws:RequestTag/*, aws:TagKeys)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tapharness.sandbox.iam.authorizer import resource_tags
from tapharness.sandbox.iam.catalog import needs, resource_tagged

from .test_iam_catalog import wire

REGION = "us-east-1"
TAGS = {"team": "video"}


@pytest.fixture(scope="module")
def aws() -> Iterator[Callable[[str], Any]]:
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


def _function(aws: Callable[[str], Any], role: str) -> str:
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("h.py", "def h(e, c):\n    return 1\n")
    return aws("lambda").create_function(FunctionName="tagged", Runtime="python3.12", Role=role, Handler="h.h",
                                         Code={"ZipFile": code.getvalue()}, Tags=TAGS)["FunctionArn"]


def _tagged_resources(aws: Callable[[str], Any]) -> dict[str, str]:
    """One resource of each service the sandbox reads tags for, each tagged team=video: service -> ARN."""
    queue = aws("sqs").create_queue(QueueName="tagged", tags=TAGS)["QueueUrl"]
    aws("kinesis").create_stream(StreamName="tagged", ShardCount=1)
    aws("kinesis").add_tags_to_stream(StreamName="tagged", Tags=TAGS)
    aws("s3").create_bucket(Bucket="tagged-bucket")
    aws("s3").put_bucket_tagging(Bucket="tagged-bucket", Tagging={"TagSet": [{"Key": "team", "Value": "video"}]})
    role = aws("iam").create_role(RoleName="tagged", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    pairs = [{"Key": "team", "Value": "video"}]
    return {
        "sqs": aws("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"],
        "sns": aws("sns").create_topic(Name="tagged", Tags=pairs)["TopicArn"],
        "dynamodb": aws("dynamodb").create_table(
            TableName="tagged", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
            Tags=pairs)["TableDescription"]["TableArn"] + "/index/by_user",
        "kinesis": aws("kinesis").describe_stream(StreamName="tagged")["StreamDescription"]["StreamARN"],
        "kms": aws("kms").create_key(Tags=[{"TagKey": "team", "TagValue": "video"}])["KeyMetadata"]["Arn"],
        "secretsmanager": aws("secretsmanager").create_secret(Name="tagged", SecretString="x", Tags=pairs)["ARN"],
        "states": aws("stepfunctions").create_state_machine(
            name="tagged", roleArn=role, tags=[{"key": "team", "value": "video"}],
            definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}))["stateMachineArn"],
        "s3": "arn:aws:s3:::tagged-bucket",
        "lambda": _function(aws, role),
    }


def test_the_tags_of_each_services_resources_are_read(aws):
    assert {service: resource_tags(arn) for service, arn in _tagged_resources(aws).items()} == {
        service: TAGS for service in ("sqs", "sns", "dynamodb", "kinesis", "kms", "secretsmanager", "states", "s3",
                                      "lambda")}


def test_a_resource_that_does_not_exist_has_no_tags(aws):
    assert resource_tags("arn:aws:sqs:us-east-1:123456789012:nowhere") == {}


@pytest.mark.parametrize(("action", "resource", "tagged"), [
    ("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:jobs", True),
    ("dynamodb:Query", "arn:aws:dynamodb:us-east-1:123456789012:table/t/index/i", True),
    ("dynamodb:GetRecords", "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026", False),
    ("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:123456789012:function:f", True),
    ("s3:GetObject", "arn:aws:s3:::bucket/key", True),  # S3's ABAC: the bucket's tags
    ("kinesis:PutRecord", "arn:aws:kinesis:us-east-1:123456789012:stream/s", True),
])
def test_resource_tags_apply_where_the_authorization_reference_lists_them(action, resource, tagged):
    assert resource_tagged(action, resource) is tagged


def test_tags_passed_in_a_request_are_request_tags_and_tag_keys():
    [need] = needs(wire("sns", "create_topic", Name="t", Tags=[{"Key": "Team", "Value": "video"}]), "123456789012")
    assert need.context["aws:requesttag/team"] == ["video"]
    assert need.context["aws:tagkeys"] == ["Team"]


def test_an_action_that_takes_no_tags_carries_none():
    [need] = needs(wire("sns", "publish", TopicArn="arn:aws:sns:us-east-1:123456789012:t", Message="m"), "123456789012")
    assert not any(key.startswith(("aws:requesttag/", "aws:tagkeys")) for key in need.context)
