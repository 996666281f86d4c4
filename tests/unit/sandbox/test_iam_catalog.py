"""API calls, as boto3 puts them on the wire, read back into the IAM actions and ARNs they need."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from tapharness.sandbox.iam.authorizer import kms_on_behalf
from tapharness.sandbox.iam.catalog import UnmappedCall, action_for, needs
from tapharness.sandbox.iam.wire import ApiCall, decode, signature

ACCOUNT = "123456789012"
ARN = f"arn:aws:%s:us-east-1:{ACCOUNT}:%s"


class _Captured(Exception):
    def __init__(self, call: ApiCall) -> None:
        self.call = call


def wire(service: str, operation: str, **params: Any) -> ApiCall:
    """The ApiCall ``decode`` reads from the request boto3 would send for ``operation``."""
    client = boto3.client(service, endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                          aws_access_key_id="ASIAEXAMPLE", aws_secret_access_key="secret",
                          config=Config(retries={"max_attempts": 0}))

    def capture(request: Any, **_: Any) -> None:
        parts = urlsplit(request.url)
        headers = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode() \
            if not hasattr(request.body, "read") else request.body.read()
        signed = signature(headers, parts.query)
        assert signed is not None
        raise _Captured(decode(request.method, parts.path, parts.query, headers, body, signed))

    client.meta.events.register("before-send", capture)
    with pytest.raises(_Captured) as captured:
        getattr(client, operation)(**params)
    return captured.value.call


def pairs(call: ApiCall) -> list[tuple[str, str]]:
    return [(n.action, n.resource) for n in needs(call, ACCOUNT)]


def test_transact_write_items_is_authorised_per_item_action_and_table():
    call = wire("dynamodb", "transact_write_items", TransactItems=[
        {"Put": {"TableName": "activity", "Item": {"pk": {"S": "a"}}}},
        {"Update": {"TableName": "activity", "Key": {"pk": {"S": "s"}}, "UpdateExpression": "SET n = :n",
                    "ExpressionAttributeValues": {":n": {"N": "1"}}}},
        {"ConditionCheck": {"TableName": "ledger", "Key": {"pk": {"S": "l"}}, "ConditionExpression": "attribute_exists(pk)"}},
    ])
    assert pairs(call) == [("dynamodb:PutItem", ARN % ("dynamodb", "table/activity")),
                           ("dynamodb:UpdateItem", ARN % ("dynamodb", "table/activity")),
                           ("dynamodb:ConditionCheckItem", ARN % ("dynamodb", "table/ledger"))]


def test_batch_get_item_needs_batch_get_item_on_every_table():
    call = wire("dynamodb", "batch_get_item", RequestItems={
        "activity": {"Keys": [{"pk": {"S": "a"}}]}, "recommendations": {"Keys": [{"pk": {"S": "b"}}]}})
    assert pairs(call) == [("dynamodb:BatchGetItem", ARN % ("dynamodb", "table/activity")),
                           ("dynamodb:BatchGetItem", ARN % ("dynamodb", "table/recommendations"))]


def test_query_on_an_index_is_authorised_on_the_index():
    call = wire("dynamodb", "query", TableName="activity", IndexName="by_content",
                KeyConditionExpression="c = :c", ExpressionAttributeValues={":c": {"S": "x"}})
    assert pairs(call) == [("dynamodb:Query", ARN % ("dynamodb", "table/activity/index/by_content"))]


def test_stream_get_records_is_a_dynamodb_action_on_the_stream_of_the_iterator():
    stream = ARN % ("dynamodb", "table/activity/stream/2026-12-01T00:00:00.000")
    call = wire("dynamodbstreams", "get_records", ShardIterator=f"{stream}|1|abc")
    assert pairs(call) == [("dynamodb:GetRecords", stream)]


def test_kinesis_put_record_by_stream_name():
    call = wire("kinesis", "put_record", StreamName="activity", Data=b"{}", PartitionKey="u1")
    assert pairs(call) == [("kinesis:PutRecord", ARN % ("kinesis", "stream/activity"))]


def test_kinesis_get_records_finds_the_stream_in_moto_s_iterator():
    iterator = base64.b64encode(b"activity:shardId-000000000000:0").decode()
    assert pairs(wire("kinesis", "get_records", ShardIterator=iterator)) == [
        ("kinesis:GetRecords", ARN % ("kinesis", "stream/activity"))]


def test_publish_batch_is_authorised_as_publish():
    topic = ARN % ("sns", "done.fifo")
    call = wire("sns", "publish_batch", TopicArn=topic, PublishBatchRequestEntries=[
        {"Id": "1", "Message": "m", "MessageGroupId": "g"}])
    assert pairs(call) == [("sns:Publish", topic)]


def test_send_message_batch_is_send_message_on_the_queue_of_the_url():
    call = wire("sqs", "send_message_batch", QueueUrl=f"http://127.0.0.1:9/{ACCOUNT}/jobs",
                Entries=[{"Id": "1", "MessageBody": "m"}])
    assert pairs(call) == [("sqs:SendMessage", ARN % ("sqs", "jobs"))]


def test_get_object_of_a_version_needs_get_object_version():
    call = wire("s3", "get_object", Bucket="thumbs", Key="uploads/c-1/a.png", VersionId="v1")
    assert pairs(call) == [("s3:GetObjectVersion", "arn:aws:s3:::thumbs/uploads/c-1/a.png")]


def test_get_object_without_a_version_needs_get_object():
    assert pairs(wire("s3", "get_object", Bucket="thumbs", Key="a.png")) == [
        ("s3:GetObject", "arn:aws:s3:::thumbs/a.png")]


def test_head_object_is_authorised_as_get_object():
    assert pairs(wire("s3", "head_object", Bucket="thumbs", Key="a.png")) == [
        ("s3:GetObject", "arn:aws:s3:::thumbs/a.png")]


def test_list_objects_v2_is_list_bucket_with_the_prefix_as_condition_key():
    call = wire("s3", "list_objects_v2", Bucket="archive", Prefix="raw/")
    [need] = needs(call, ACCOUNT)
    assert (need.action, need.resource) == ("s3:ListBucket", "arn:aws:s3:::archive")
    assert need.context["s3:prefix"] == ["raw/"]


def test_put_object_with_a_canned_acl_also_needs_put_object_acl():
    call = wire("s3", "put_object", Bucket="archive", Key="raw/1.json", Body=b"{}", ACL="private")
    assert [a for a, _ in pairs(call)] == ["s3:PutObject", "s3:PutObjectAcl"]


def test_lambda_invoke_is_invoke_function_on_the_function():
    call = wire("lambda", "invoke", FunctionName="recommendations", Payload=b"{}")
    assert pairs(call) == [("lambda:InvokeFunction", ARN % ("lambda", "function:recommendations"))]


def test_sagemaker_runtime_invoke_endpoint():
    call = wire("sagemaker-runtime", "invoke_endpoint", EndpointName="ranker", Body=b"{}",
                ContentType="application/json")
    assert pairs(call) == [("sagemaker:InvokeEndpoint", ARN % ("sagemaker", "endpoint/ranker"))]


def test_secret_read_by_arn_uses_the_arn():
    secret = ARN % ("secretsmanager", "secret:redis-AbCdEf")
    assert pairs(wire("secretsmanager", "get_secret_value", SecretId=secret)) == [
        ("secretsmanager:GetSecretValue", secret)]


def test_start_execution_is_authorised_on_the_state_machine():
    machine = ARN % ("states", "stateMachine:expiration")
    assert pairs(wire("stepfunctions", "start_execution", stateMachineArn=machine)) == [
        ("states:StartExecution", machine)]


def test_an_action_without_resource_types_is_authorised_on_star():
    assert pairs(wire("sqs", "list_queues")) == [("sqs:ListQueues", "*")]


def test_an_operation_the_reference_does_not_know_is_unmapped():
    with pytest.raises(UnmappedCall, match="not an action"):
        action_for("dynamodb", "FlyToTheMoon")


def test_an_arn_in_a_message_body_does_not_decide_which_queue_is_authorised():
    call = wire("sqs", "send_message", QueueUrl=f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/orders",
                MessageBody=ARN % ("sqs", "payments"))
    assert pairs(call) == [("sqs:SendMessage", ARN % ("sqs", "orders"))]


def test_invoke_of_an_unqualified_arn_with_a_qualifier_is_authorised_on_the_qualified_function():
    function = ARN % ("lambda", "function:recommendations")
    call = wire("lambda", "invoke", FunctionName=function, Qualifier="live", Payload=b"{}")
    assert pairs(call) == [("lambda:InvokeFunction", f"{function}:live")]


def test_get_object_attributes_needs_get_object_and_get_object_attributes():
    call = wire("s3", "get_object_attributes", Bucket="archive", Key="raw/1.json", ObjectAttributes=["ETag"])
    assert pairs(call) == [("s3:GetObject", "arn:aws:s3:::archive/raw/1.json"),
                           ("s3:GetObjectAttributes", "arn:aws:s3:::archive/raw/1.json")]


def test_batch_get_secret_value_needs_get_secret_value_on_each_secret():
    first, second = ARN % ("secretsmanager", "secret:a-AbCdEf"), ARN % ("secretsmanager", "secret:b-GhIjKl")
    call = wire("secretsmanager", "batch_get_secret_value", SecretIdList=[first, second])
    assert pairs(call) == [("secretsmanager:BatchGetSecretValue", "*"),
                           ("secretsmanager:GetSecretValue", first), ("secretsmanager:GetSecretValue", second)]


def test_a_secret_read_by_name_is_authorised_on_its_full_arn():
    with mock_aws():
        arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="redis", SecretString="{}")["ARN"]
        assert pairs(wire("secretsmanager", "get_secret_value", SecretId="redis")) == [
            ("secretsmanager:GetSecretValue", arn)]


def kms_pairs(call: ApiCall) -> list[tuple[str, str]]:
    return [(n.action, n.resource) for n in kms_on_behalf(call, needs(call, ACCOUNT), ACCOUNT)]


def test_sending_to_a_queue_under_a_customer_key_needs_generate_data_key_and_decrypt():
    with mock_aws():
        key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
        url = boto3.client("sqs", region_name="us-east-1").create_queue(
            QueueName="orders", Attributes={"KmsMasterKeyId": key})["QueueUrl"]
        assert kms_pairs(wire("sqs", "send_message", QueueUrl=url, MessageBody="{}")) == [
            ("kms:GenerateDataKey", key), ("kms:Decrypt", key)]


def test_a_multipart_part_into_a_kms_bucket_needs_decrypt_and_its_start_generate_data_key():
    with mock_aws():
        key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lake")
        s3.put_bucket_encryption(Bucket="lake", ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]})
        assert kms_pairs(wire("s3", "create_multipart_upload", Bucket="lake", Key="big")) == [
            ("kms:GenerateDataKey", key)]
        assert kms_pairs(wire("s3", "upload_part", Bucket="lake", Key="big", UploadId="u", PartNumber=1,
                              Body=b"x")) == [("kms:Decrypt", key)]
