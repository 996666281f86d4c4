"""IAM enforced on every call of a small stack of its own: each principal the sandbox plays, each way."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from .conftest import REGION
from .helpers import unique, wait_until, zip_sources

ACCOUNT = "123456789012"
PUTTER = """
import json, os, boto3
kinesis = boto3.client("kinesis")
def lambda_handler(event, context):
    try:
        kinesis.put_record(StreamName=os.environ["STREAM"], Data=b"{}", PartitionKey="u1")
    except Exception as exc:
        return {"statusCode": 500, "body": json.dumps({"error": str(exc)})}
    return {"statusCode": 202, "body": "{}"}
"""
WRITE_LOGS = {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}
RECORDER = """
import json, os, boto3
sqs = boto3.client("sqs")
def lambda_handler(event, context):
    sqs.send_message(QueueUrl=os.environ["OUT"], MessageBody=json.dumps(event))
    return {}
"""


def trust(*services: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": list(services)}, "Action": "sts:AssumeRole"}]})


@pytest.fixture
def role(aws: Callable[[str], Any]) -> Callable[..., str]:
    """role(statement, ..., services=("lambda.amazonaws.com",)) -> a new role's ARN."""

    def make(*statements: dict[str, Any], services: tuple[str, ...] = ("lambda.amazonaws.com",)) -> str:
        name = unique("role")
        arn = aws("iam").create_role(RoleName=name, AssumeRolePolicyDocument=trust(*services))["Role"]["Arn"]
        if statements:
            aws("iam").put_role_policy(RoleName=name, PolicyName="least-privilege", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": list(statements)}))
        return arn

    return make


def function(aws: Callable[[str], Any], role_arn: str, source: str, env: dict[str, str]) -> str:
    return aws("lambda").create_function(
        FunctionName=unique("fn"), Runtime="python3.12", Role=role_arn, Handler="handler.lambda_handler",
        Code={"ZipFile": zip_sources({"handler.py": source})}, Timeout=30,
        Environment={"Variables": env})["FunctionArn"]


def invoke(aws: Callable[[str], Any], arn: str) -> dict[str, Any]:
    return json.loads(aws("lambda").invoke(FunctionName=arn, Payload=b"{}")["Payload"].read())


def stream(aws: Callable[[str], Any]) -> tuple[str, str]:
    name = unique("stream")
    aws("kinesis").create_stream(StreamName=name, ShardCount=1)
    return name, aws("kinesis").describe_stream(StreamName=name)["StreamDescription"]["StreamARN"]


def denials(sandbox: Any, principal_part: str) -> list[dict[str, Any]]:
    return [d for p in sandbox.control("GET", "iam")["principals"] if principal_part in p["principal"]
            for d in p["denied"]]


def as_role(aws: Callable[[str], Any], sandbox: Any, role_arn: str, service: str) -> Any:
    """A client of ``service`` signing as a session of the role."""
    issued = aws("sts").assume_role(RoleArn=role_arn, RoleSessionName="probe")["Credentials"]
    return boto3.client(service, endpoint_url=sandbox.endpoint_url, region_name=REGION,
                        aws_access_key_id=issued["AccessKeyId"], aws_secret_access_key=issued["SecretAccessKey"],
                        aws_session_token=issued["SessionToken"])


def records_in(aws: Callable[[str], Any], stream_name: str) -> int:
    shard = aws("kinesis").list_shards(StreamName=stream_name)["Shards"][0]["ShardId"]
    iterator = aws("kinesis").get_shard_iterator(StreamName=stream_name, ShardId=shard,
                                                 ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return len(aws("kinesis").get_records(ShardIterator=iterator)["Records"])


def test_function_runs_as_its_execution_role_session(aws, sandbox, role):
    role_arn = role({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"})
    queue = aws("sqs").create_queue(QueueName=unique("out"))["QueueUrl"]
    source = ("import boto3, json, os\n"
              "def lambda_handler(event, context):\n"
              "    return boto3.client('sts').get_caller_identity()['Arn']\n")
    arn = function(aws, role_arn, source, {"OUT": queue})
    assert invoke(aws, arn) == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_arn.split('/')[-1]}/{arn.split(':')[-1]}"


def test_call_the_role_does_not_allow_gets_aws_access_denied_and_writes_nothing(aws, sandbox, role):
    name, stream_arn = stream(aws)
    role_arn = role({"Effect": "Allow", "Action": "kinesis:DescribeStream", "Resource": stream_arn}, WRITE_LOGS)
    arn = function(aws, role_arn, PUTTER, {"STREAM": name})
    body = json.loads(invoke(aws, arn)["body"])
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_arn.split('/')[-1]}/{arn.split(':')[-1]}"
    assert body["error"] == (
        "An error occurred (AccessDeniedException) when calling the PutRecord operation: "
        f"User: {session} is not authorized to perform: kinesis:PutRecord on resource: {stream_arn} "
        "because no identity-based policy allows the kinesis:PutRecord action")
    assert records_in(aws, name) == 0
    assert [(d["action"], d["resource"]) for d in denials(sandbox, role_arn)] == [("kinesis:PutRecord", stream_arn)]


def test_call_the_role_allows_goes_through_and_is_reported_as_used(aws, sandbox, role):
    name, stream_arn = stream(aws)
    role_arn = role({"Effect": "Allow", "Action": ["kinesis:PutRecord", "kinesis:PutRecords"], "Resource": stream_arn},
                    WRITE_LOGS)
    arn = function(aws, role_arn, PUTTER, {"STREAM": name})
    assert invoke(aws, arn)["statusCode"] == 202
    assert records_in(aws, name) == 1
    [entry] = [p for p in sandbox.control("GET", "iam")["principals"] if p["principal"] == role_arn]
    assert entry["denied"] == []
    assert {(u["action"], u["resource"]) for u in entry["used"]} >= {("kinesis:PutRecord", stream_arn)}
    assert [u["action"] for u in entry["unused"]] == ["kinesis:PutRecords"]


def test_kms_encrypted_stream_also_needs_the_key(aws, sandbox, role):
    name, stream_arn = stream(aws)
    key = aws("kms").create_key()["KeyMetadata"]["Arn"]
    aws("kinesis").start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId=key)
    role_arn = role({"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": stream_arn})
    arn = function(aws, role_arn, PUTTER, {"STREAM": name})
    assert "kms:GenerateDataKey" in json.loads(invoke(aws, arn)["body"])["error"]
    assert records_in(aws, name) == 0


def refusal(call: Callable[[], Any]) -> str:
    """The InvalidParameterValueException message Lambda answers ``call`` with."""
    with pytest.raises(ClientError) as refused:
        call()
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    return refused.value.response["Error"]["Message"]


def create(aws: Callable[[str], Any], role_arn: str, **config: Any) -> str:
    return aws("lambda").create_function(
        FunctionName=unique("fn"), Runtime="python3.12", Role=role_arn, Handler="handler.lambda_handler",
        Code={"ZipFile": zip_sources({"handler.py": "def lambda_handler(e, c):\n    return 1\n"})},
        **config)["FunctionArn"]


ENI = {"Effect": "Allow", "Action": ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                                      "ec2:DeleteNetworkInterface"], "Resource": "*"}
VPC = {"VpcConfig": {"SubnetIds": ["subnet-0a1b2c3d"], "SecurityGroupIds": ["sg-0a1b2c3d"]}}


def queue_arn_of(aws: Callable[[str], Any], url: str) -> str:
    return aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def test_create_function_refuses_a_role_lambda_cannot_assume(aws, sandbox, role):
    message = refusal(lambda: create(aws, role(services=("states.amazonaws.com",))))
    assert message == "The role defined for the function cannot be assumed by Lambda."


def test_a_trust_policy_changed_after_creation_makes_the_invocation_fail(aws, sandbox, role):
    role_arn = role()
    arn = create(aws, role_arn)
    aws("iam").update_assume_role_policy(RoleName=role_arn.split("/")[-1],
                                         PolicyDocument=trust("states.amazonaws.com"))
    response = aws("lambda").invoke(FunctionName=arn, Payload=b"{}")
    assert response.get("FunctionError")
    assert "cannot be assumed by Lambda" in json.loads(response["Payload"].read())["errorMessage"]


def test_a_function_in_a_vpc_needs_its_role_to_manage_network_interfaces(aws, sandbox, role):
    without = role(WRITE_LOGS)
    assert refusal(lambda: create(aws, without, **VPC)) == (
        "The provided execution role does not have permissions to call CreateNetworkInterface on EC2")
    assert [d["action"] for d in denials(sandbox, without)] == ["ec2:CreateNetworkInterface"]
    partial = role({**ENI, "Action": ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces"]})
    assert "call DeleteNetworkInterface on EC2" in refusal(lambda: create(aws, partial, **VPC))
    assert create(aws, role(ENI), **VPC)


def test_eni_permissions_on_named_subnets_only_do_not_count(aws, sandbox, role):
    """Lambda's guide: allow them "on all resources ("Resource": "*")"."""
    named = role({**ENI, "Resource": f"arn:aws:ec2:us-east-1:{ACCOUNT}:subnet/subnet-0a1b2c3d"})
    assert "CreateNetworkInterface" in refusal(lambda: create(aws, named, **VPC))


def test_a_dead_letter_queue_needs_send_message_on_it(aws, sandbox, role):
    dlq = queue_arn_of(aws, aws("sqs").create_queue(QueueName=unique("dlq"))["QueueUrl"])
    config = {"DeadLetterConfig": {"TargetArn": dlq}}
    elsewhere = role({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": f"{dlq}-other"})
    assert refusal(lambda: create(aws, elsewhere, **config)) == (
        "The provided execution role does not have permissions to call SendMessage on SQS")
    assert create(aws, role({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": dlq}), **config)


def test_a_dead_letter_topic_needs_publish_on_it(aws, sandbox, role):
    topic = aws("sns").create_topic(Name=unique("dlt"))["TopicArn"]
    assert refusal(lambda: create(aws, role(), DeadLetterConfig={"TargetArn": topic})) == (
        "The provided execution role does not have permissions to call Publish on SNS")


def test_a_configuration_update_is_checked_like_a_creation(aws, sandbox, role):
    arn = create(aws, role())
    dlq = queue_arn_of(aws, aws("sqs").create_queue(QueueName=unique("dlq"))["QueueUrl"])
    assert "call SendMessage on SQS" in refusal(lambda: aws("lambda").update_function_configuration(
        FunctionName=arn, DeadLetterConfig={"TargetArn": dlq}))
    assert "call CreateNetworkInterface on EC2" in refusal(lambda: aws("lambda").update_function_configuration(
        FunctionName=arn, **VPC))
    aws("lambda").update_function_configuration(FunctionName=arn, Timeout=30)  # touches nothing the role needs


def test_a_stream_mapping_is_refused_when_the_role_cannot_read_the_stream(aws, sandbox, role):
    _, stream_arn = stream(aws)
    arn = create(aws, role({"Effect": "Allow", "Action": ["kinesis:DescribeStream", "kinesis:GetShardIterator"],
                            "Resource": stream_arn}))
    assert refusal(lambda: aws("lambda").create_event_source_mapping(
        FunctionName=arn, EventSourceArn=stream_arn, StartingPosition="TRIM_HORIZON")) == (
        f"Cannot access stream {stream_arn}. Please ensure the role can perform the GetRecords, GetShardIterator, "
        "DescribeStream, and ListStreams Actions on your stream in IAM.")
    assert aws("lambda").list_event_source_mappings(FunctionName=arn)["EventSourceMappings"] == []


def test_a_dynamodb_stream_mapping_needs_list_streams_on_every_resource(aws, sandbox, role):
    table = unique("table")
    stream_arn = aws("dynamodb").create_table(
        TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})["TableDescription"]["LatestStreamArn"]
    reads = {"Effect": "Allow", "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                                            "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
             "Resource": stream_arn}
    arn = create(aws, role(reads))
    assert refusal(lambda: aws("lambda").create_event_source_mapping(
        FunctionName=arn, EventSourceArn=stream_arn, StartingPosition="LATEST")).startswith(f"Cannot access stream {stream_arn}.")
    arn = create(aws, role(reads, {"Effect": "Allow", "Action": "dynamodb:ListStreams", "Resource": "*"}))
    assert aws("lambda").create_event_source_mapping(FunctionName=arn, EventSourceArn=stream_arn,
                                                     StartingPosition="LATEST")["UUID"]


def test_an_sqs_mapping_needs_receive_delete_and_get_attributes(aws, sandbox, role):
    queue = queue_arn_of(aws, aws("sqs").create_queue(QueueName=unique("in"))["QueueUrl"])
    arn = create(aws, role({"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:GetQueueAttributes"],
                            "Resource": queue}))
    assert refusal(lambda: aws("lambda").create_event_source_mapping(FunctionName=arn, EventSourceArn=queue)) == (
        "The function execution role does not have permissions to call DeleteMessage on SQS")


def test_an_on_failure_destination_needs_send_message_when_the_mapping_is_made_or_changed(aws, sandbox, role):
    _, stream_arn = stream(aws)
    target = queue_arn_of(aws, aws("sqs").create_queue(QueueName=unique("failed"))["QueueUrl"])
    reads = {"Effect": "Allow", "Action": ["kinesis:DescribeStream", "kinesis:GetRecords",
                                            "kinesis:GetShardIterator"], "Resource": stream_arn}
    arn = create(aws, role(reads))
    destination = {"OnFailure": {"Destination": target}}
    assert refusal(lambda: aws("lambda").create_event_source_mapping(
        FunctionName=arn, EventSourceArn=stream_arn, StartingPosition="LATEST", DestinationConfig=destination)) == (
        "The provided execution role does not have permissions to call SendMessage on SQS")
    mapping = aws("lambda").create_event_source_mapping(FunctionName=arn, EventSourceArn=stream_arn,
                                                        StartingPosition="LATEST")["UUID"]
    assert "call SendMessage on SQS" in refusal(lambda: aws("lambda").update_event_source_mapping(
        UUID=mapping, DestinationConfig=destination))


def test_an_s3_on_failure_destination_needs_put_object_and_list_bucket(aws, sandbox, role):
    _, stream_arn = stream(aws)
    bucket = unique("given-up")
    aws("s3").create_bucket(Bucket=bucket)
    reads = {"Effect": "Allow", "Action": ["kinesis:DescribeStream", "kinesis:GetRecords",
                                            "kinesis:GetShardIterator"], "Resource": stream_arn}
    destination = {"OnFailure": {"Destination": f"arn:aws:s3:::{bucket}"}}
    put_only = role(reads, {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"})
    assert refusal(lambda: aws("lambda").create_event_source_mapping(
        FunctionName=create(aws, put_only), EventSourceArn=stream_arn, StartingPosition="LATEST",
        DestinationConfig=destination)) == "The provided execution role does not have permissions to call ListBucket on S3"
    both = role(reads, {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
                {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"})
    made = aws("lambda").create_event_source_mapping(FunctionName=create(aws, both), EventSourceArn=stream_arn,
                                                     StartingPosition="LATEST", DestinationConfig=destination)
    assert made["DestinationConfig"] == destination
    aws("lambda").delete_event_source_mapping(UUID=made["UUID"])


def test_event_source_mapping_reads_its_stream_as_the_function_role(aws, sandbox, role):
    """A permission taken away after the mapping was made: the mapping's own reads are refused."""
    name, stream_arn = stream(aws)
    out = aws("sqs").create_queue(QueueName=unique("out"))
    out_arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:{out['QueueUrl'].rsplit('/', 1)[-1]}"
    role_arn = role({"Effect": "Allow", "Action": ["kinesis:DescribeStream", "kinesis:ListShards",
                                                    "kinesis:GetShardIterator", "kinesis:GetRecords"],
                     "Resource": stream_arn},
                    {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": out_arn})
    arn = function(aws, role_arn, RECORDER, {"OUT": out["QueueUrl"]})
    aws("lambda").create_event_source_mapping(FunctionName=arn, EventSourceArn=stream_arn,
                                              StartingPosition="TRIM_HORIZON", BatchSize=10)
    aws("iam").put_role_policy(RoleName=role_arn.split("/")[-1], PolicyName="deny-reads", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "kinesis:GetRecords", "Resource": "*"}]}))
    aws("kinesis").put_record(StreamName=name, Data=b"{}", PartitionKey="u1")
    found = wait_until(lambda: [d for d in denials(sandbox, role_arn) if d["action"] == "kinesis:GetRecords"
                                and "explicit deny" in d["reason"]], what="the mapping's GetRecords denial")
    assert found[0]["resource"] == stream_arn
    assert aws("sqs").receive_message(QueueUrl=out["QueueUrl"], WaitTimeSeconds=1).get("Messages") is None


def test_a_mapping_whose_role_cannot_list_shards_does_not_hold_up_the_others(aws, sandbox, role):
    _, blocked_arn = stream(aws)
    no_list = role({"Effect": "Allow", "Action": ["kinesis:DescribeStream", "kinesis:GetRecords",
                                                   "kinesis:GetShardIterator"], "Resource": blocked_arn})
    aws("lambda").create_event_source_mapping(FunctionName=create(aws, no_list), EventSourceArn=blocked_arn,
                                              StartingPosition="LATEST")
    wait_until(lambda: [d for d in denials(sandbox, no_list) if d["action"] == "kinesis:ListShards"],
               what="the blocked mapping's ListShards denial")
    name, stream_arn = stream(aws)
    out = aws("sqs").create_queue(QueueName=unique("out"))["QueueUrl"]
    reader = role({"Effect": "Allow", "Action": ["kinesis:DescribeStream", "kinesis:ListShards",
                                                  "kinesis:GetShardIterator", "kinesis:GetRecords"],
                   "Resource": stream_arn},
                  {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn_of(aws, out)})
    aws("lambda").create_event_source_mapping(FunctionName=function(aws, reader, RECORDER, {"OUT": out}),
                                              EventSourceArn=stream_arn, StartingPosition="TRIM_HORIZON")
    aws("kinesis").put_record(StreamName=name, Data=b"{}", PartitionKey="u1")
    assert wait_until(lambda: aws("sqs").receive_message(QueueUrl=out, WaitTimeSeconds=1).get("Messages"),
                      what="the other mapping's delivery")


def test_api_gateway_needs_the_function_permission(aws, sandbox, role):
    arn = function(aws, role(), "def lambda_handler(e, c):\n    return {'statusCode': 200, 'body': 'ok'}\n", {})
    gateway = aws("apigateway")
    api_id = gateway.create_rest_api(name=unique("api"))["id"]
    root = gateway.get_resources(restApiId=api_id)["items"][0]["id"]
    gateway.put_method(restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE")
    gateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="AWS_PROXY",
                            integrationHttpMethod="POST",
                            uri=f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations")
    gateway.create_deployment(restApiId=api_id, stageName="dev")
    url = f"{sandbox.gateway_url}/restapis/{api_id}/dev/"

    def status() -> int:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert status() == 500
    aws("lambda").add_permission(FunctionName=arn, StatementId="api", Action="lambda:InvokeFunction",
                                 Principal="apigateway.amazonaws.com",
                                 SourceArn=f"arn:aws:execute-api:us-east-1:{ACCOUNT}:{api_id}/*/GET/")
    assert status() == 200


def test_sns_delivers_to_a_queue_only_when_its_policy_lets_the_topic_in(aws, sandbox):
    topic = aws("sns").create_topic(Name=unique("topic"))["TopicArn"]
    url = aws("sqs").create_queue(QueueName=unique("fanout"))["QueueUrl"]
    queue_arn = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    aws("sns").publish(TopicArn=topic, Message="refused")
    assert aws("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None
    aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic}}}]})})
    aws("sns").publish(TopicArn=topic, Message="delivered")
    [message] = aws("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert json.loads(message["Body"])["Message"] == "delivered"


def test_state_machine_tasks_run_as_the_state_machine_role(aws, sandbox, role):
    target = function(aws, role(), "def lambda_handler(e, c):\n    return {'ok': True}\n", {})
    definition = json.dumps({"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": target, "Payload": {}}, "End": True}}})

    def run(role_arn: str) -> str:
        machine = aws("stepfunctions").create_state_machine(name=unique("machine"), definition=definition,
                                                            roleArn=role_arn)["stateMachineArn"]
        execution = aws("stepfunctions").start_execution(stateMachineArn=machine, name=unique("run"))["executionArn"]

        def finished() -> str | None:
            status = aws("stepfunctions").describe_execution(executionArn=execution)["status"]
            return None if status == "RUNNING" else status

        return wait_until(finished, what="execution end")

    assert run(role(services=("states.amazonaws.com",))) == "FAILED"
    allowed = role({"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": target},
                   services=("states.amazonaws.com",))
    assert run(allowed) == "SUCCEEDED"


def end_of(aws: Callable[[str], Any], execution: str) -> dict[str, Any]:
    """describe_execution's answer once the execution has ended."""
    def finished() -> dict[str, Any] | None:
        described = aws("stepfunctions").describe_execution(executionArn=execution)
        return None if described["status"] == "RUNNING" else described

    return wait_until(finished, what="execution end")


def run_machine(aws: Callable[[str], Any], definition: dict[str, Any], role_arn: str, **create: Any) -> dict[str, Any]:
    """Create a state machine, start it, wait for its end: describe_execution's answer."""
    machine = aws("stepfunctions").create_state_machine(name=unique("machine"), definition=json.dumps(definition),
                                                        roleArn=role_arn, **create)["stateMachineArn"]
    return end_of(aws, aws("stepfunctions").start_execution(stateMachineArn=machine)["executionArn"])


def send_task(queue_url: str) -> dict[str, Any]:
    return {"StartAt": "Send", "States": {"Send": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
        "Parameters": {"QueueUrl": queue_url, "MessageBody": "from the machine"}, "End": True}}}


def test_an_sqs_task_runs_as_the_state_machine_role_and_fails_without_its_permission(aws, sandbox, role):
    url = aws("sqs").create_queue(QueueName=unique("out"))["QueueUrl"]
    queue_arn = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    machine_role = role(services=("states.amazonaws.com",))
    assert run_machine(aws, send_task(url), machine_role)["status"] == "FAILED"
    assert aws("sqs").receive_message(QueueUrl=url).get("Messages", []) == []
    assert ("sqs:SendMessage", queue_arn) in [(d["action"], d["resource"]) for d in denials(sandbox, machine_role)]


def test_an_sqs_task_the_role_allows_sends_its_message(aws, sandbox, role):
    url = aws("sqs").create_queue(QueueName=unique("out"))["QueueUrl"]
    queue_arn = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    machine_role = role({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn},
                        services=("states.amazonaws.com",))
    assert run_machine(aws, send_task(url), machine_role)["status"] == "SUCCEEDED"
    [message] = aws("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert message["Body"] == "from the machine"


PASS_MACHINE = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}


def test_a_state_machine_under_a_customer_key_does_not_start_when_its_role_cannot_use_the_key(aws, sandbox, role):
    key = aws("kms").create_key()["KeyMetadata"]["Arn"]
    machine = aws("stepfunctions").create_state_machine(
        name=unique("machine"), definition=json.dumps(PASS_MACHINE), roleArn=role(services=("states.amazonaws.com",)),
        encryptionConfiguration={"type": "CUSTOMER_MANAGED_KMS_KEY", "kmsKeyId": key})["stateMachineArn"]
    with pytest.raises(ClientError) as refused:
        aws("stepfunctions").start_execution(stateMachineArn=machine)
    assert refused.value.response["Error"]["Code"] == "KmsAccessDeniedException"
    assert f"kms:Decrypt on resource: {key}" in refused.value.response["Error"]["Message"]
    assert aws("stepfunctions").list_executions(stateMachineArn=machine)["executions"] == []


def test_a_role_with_decrypt_and_generate_data_key_for_its_machine_runs_it(aws, sandbox, role):
    key = aws("kms").create_key()["KeyMetadata"]["Arn"]
    name = unique("machine")
    machine_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
    machine_role = role({"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key,
                         "Condition": {"StringEquals": {"kms:EncryptionContext:aws:states:stateMachineArn": machine_arn}}},
                        services=("states.amazonaws.com",))
    aws("stepfunctions").create_state_machine(
        name=name, definition=json.dumps(PASS_MACHINE), roleArn=machine_role,
        encryptionConfiguration={"type": "CUSTOMER_MANAGED_KMS_KEY", "kmsKeyId": key})
    execution = aws("stepfunctions").start_execution(stateMachineArn=machine_arn)["executionArn"]
    assert end_of(aws, execution)["status"] == "SUCCEEDED"


def test_logging_a_customer_keyed_machine_needs_the_key_policy_to_admit_log_delivery(aws, sandbox, role):
    key = aws("kms").create_key()["KeyMetadata"]["Arn"]  # the default key policy: the account's IAM only
    group = unique("/sfn/")
    aws("logs").create_log_group(logGroupName=group)
    [group_arn] = [g["arn"] for g in aws("logs").describe_log_groups(logGroupNamePrefix=group)["logGroups"]]
    machine_role = role({"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key},
                        services=("states.amazonaws.com",))
    described = run_machine(aws, PASS_MACHINE, machine_role,
                            encryptionConfiguration={"type": "CUSTOMER_MANAGED_KMS_KEY", "kmsKeyId": key},
                            loggingConfiguration={"level": "ALL", "destinations": [
                                {"cloudWatchLogsLogGroup": {"logGroupArn": group_arn}}]})
    assert described["status"] == "SUCCEEDED"
    assert ("kms:Decrypt", key) in [(d["action"], d["resource"]) for d in denials(sandbox, "delivery.logs.amazonaws.com")]


def test_schedule_target_needs_a_role_events_may_assume(aws, sandbox, role):
    machine = aws("stepfunctions").create_state_machine(
        name=unique("machine"), roleArn=role(services=("states.amazonaws.com",)),
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
    rule = unique("rule")
    aws("events").put_rule(Name=rule, ScheduleExpression="rate(1 day)", State="ENABLED")
    starter = role({"Effect": "Allow", "Action": "states:StartExecution", "Resource": machine},
                   services=("lambda.amazonaws.com",))
    aws("events").put_targets(Rule=rule, Targets=[{"Id": "m", "Arn": machine, "RoleArn": starter}])
    [result] = sandbox.control("POST", f"rules/{rule}/fire")["fired"]
    assert "cannot assume" in result["error"]
    assert aws("stepfunctions").list_executions(stateMachineArn=machine)["executions"] == []


def test_harness_calls_stay_administrator_and_unrecorded(aws, sandbox):
    name = unique("admin")
    aws("sqs").create_queue(QueueName=name)
    time.sleep(0.1)
    assert name not in json.dumps(sandbox.control("GET", "iam"))


def test_denied_json_call_parses_as_the_service_s_own_error(aws, sandbox, role):
    name, _ = stream(aws)
    role_arn = role()
    kinesis = as_role(aws, sandbox, role_arn, "kinesis")
    with pytest.raises(ClientError) as error:
        kinesis.describe_stream(StreamName=name)
    assert error.value.response["Error"]["Code"] == "AccessDeniedException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_query_execution_is_authorised_against_the_workgroup_it_ran_in(aws, sandbox, role):
    mine, other = unique("analytics"), unique("reporting")
    results = unique("results").lower()
    aws("s3").create_bucket(Bucket=results)
    for workgroup in (mine, other):  # Athena refuses a query with nowhere to write its result
        aws("athena").create_work_group(Name=workgroup, Configuration={
            "ResultConfiguration": {"OutputLocation": f"s3://{results}/{workgroup}/"}})
    queries = {wg: aws("athena").start_query_execution(QueryString="SELECT 1", WorkGroup=wg)["QueryExecutionId"]
               for wg in (mine, other)}
    role_arn = role({"Effect": "Allow", "Action": "athena:GetQueryExecution",
                     "Resource": f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/{mine}"})
    athena = as_role(aws, sandbox, role_arn, "athena")
    assert athena.get_query_execution(QueryExecutionId=queries[mine])["QueryExecution"]["WorkGroup"] == mine
    with pytest.raises(ClientError) as refused:
        athena.get_query_execution(QueryExecutionId=queries[other])
    assert f"workgroup/{other}" in refused.value.response["Error"]["Message"]


def cmk_table(aws: Callable[[str], Any], key: str | None) -> tuple[str, str]:
    """A table encrypted with ``key`` (None: DynamoDB's AWS managed key); its name and ARN."""
    name = unique("table")
    sse = {"Enabled": True, "SSEType": "KMS", **({"KMSMasterKeyId": key} if key else {})}
    table = aws("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], SSESpecification=sse)
    return name, table["TableDescription"]["TableArn"]


def query(client: Any, table: str) -> Any:
    return client.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "a"}})


def test_reading_a_table_under_a_customer_managed_key_needs_kms_decrypt(aws, sandbox, role):
    key = aws("kms").create_key()["KeyMetadata"]["Arn"]
    table, table_arn = cmk_table(aws, key)
    reader = as_role(aws, sandbox, role({"Effect": "Allow", "Action": "dynamodb:Query", "Resource": table_arn}),
                     "dynamodb")
    with pytest.raises(ClientError) as denied:
        query(reader, table)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert f"kms:Decrypt on resource: {key}" in denied.value.response["Error"]["Message"]


def test_kms_decrypt_through_dynamodb_for_the_table_lets_the_read_through(aws, sandbox, role):
    key = aws("kms").create_key()["KeyMetadata"]["Arn"]
    table, table_arn = cmk_table(aws, key)
    reader = as_role(aws, sandbox, role(
        {"Effect": "Allow", "Action": "dynamodb:Query", "Resource": table_arn},
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key, "Condition": {
            "StringEquals": {"kms:ViaService": f"dynamodb.{REGION}.amazonaws.com",
                             "kms:EncryptionContext:aws:dynamodb:tableName": table}}}), "dynamodb")
    assert query(reader, table)["Items"] == []


def test_kms_decrypt_scoped_to_another_tables_encryption_context_is_not_enough(aws, sandbox, role):
    key = aws("kms").create_key()["KeyMetadata"]["Arn"]
    table, table_arn = cmk_table(aws, key)
    writer = as_role(aws, sandbox, role(
        {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": table_arn},
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key,
         "Condition": {"StringEquals": {"kms:EncryptionContext:aws:dynamodb:tableName": "another-table"}}}),
        "dynamodb")
    with pytest.raises(ClientError, match="kms:Decrypt"):
        writer.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": {"pk": {"S": "a"}}}}])
    assert aws("dynamodb").scan(TableName=table)["Count"] == 0


def test_a_table_under_dynamodbs_aws_managed_key_needs_no_kms_permission(aws, sandbox, role):
    table, table_arn = cmk_table(aws, None)
    reader = as_role(aws, sandbox, role({"Effect": "Allow", "Action": "dynamodb:Query", "Resource": table_arn}),
                     "dynamodb")
    assert query(reader, table)["Items"] == []


def test_a_condition_on_the_roles_tag_sees_the_tag(aws, sandbox, role):
    table = unique("tagged")
    aws("dynamodb").create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                 BillingMode="PAY_PER_REQUEST")
    team_only = {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*",
                 "Condition": {"StringEquals": {"aws:PrincipalTag/team": "video"}}}
    untagged, tagged = role(team_only), role(team_only)
    aws("iam").tag_role(RoleName=tagged.split("/")[-1], Tags=[{"Key": "team", "Value": "video"}])
    item = {"TableName": table, "Item": {"pk": {"S": "a"}}}
    as_role(aws, sandbox, tagged, "dynamodb").put_item(**item)
    with pytest.raises(ClientError, match="AccessDeniedException"):
        as_role(aws, sandbox, untagged, "dynamodb").put_item(**item)


def test_leading_keys_confine_a_role_to_its_own_partition(aws, sandbox, role):
    """The DynamoDB guide's fine-grained access example: ForAllValues:StringEquals on dynamodb:LeadingKeys."""
    table = unique("per-user")
    arn = aws("dynamodb").create_table(
        TableName=table, KeySchema=[{"AttributeName": "user", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "user", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST")["TableDescription"]["TableArn"]
    for user in ("alice", "bob"):
        aws("dynamodb").put_item(TableName=table, Item={"user": {"S": user}})
    alice = as_role(aws, sandbox, role({"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Query"],
                                        "Resource": arn, "Condition": {"ForAllValues:StringEquals": {
                                            "dynamodb:LeadingKeys": ["alice"]}}}), "dynamodb")
    assert alice.get_item(TableName=table, Key={"user": {"S": "alice"}})["Item"]
    with pytest.raises(ClientError, match="AccessDeniedException"):
        alice.get_item(TableName=table, Key={"user": {"S": "bob"}})
    with pytest.raises(ClientError, match="AccessDeniedException"):
        alice.query(TableName=table, KeyConditionExpression="#u = :u", ExpressionAttributeNames={"#u": "user"},
                    ExpressionAttributeValues={":u": {"S": "bob"}})


def test_a_log_group_key_must_admit_cloudwatch_logs_for_that_group(aws, sandbox):
    group = f"/app/{unique('group')}"
    group_arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}"
    account_only = aws("kms").create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError) as refused:
        aws("logs").create_log_group(logGroupName=group, kmsKeyId=account_only)
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert refused.value.response["Error"]["Message"] == (
        f"The specified KMS key does not exist or is not allowed to be used with Arn '{group_arn}'")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"Service": f"logs.{REGION}.amazonaws.com"},
         "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*", "kms:Describe*"], "Resource": "*",
         "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/app/*"}}}]}
    admitting = aws("kms").create_key(Policy=json.dumps(policy))["KeyMetadata"]["Arn"]
    aws("logs").create_log_group(logGroupName=group, kmsKeyId=admitting)
    assert aws("logs").describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["kmsKeyId"] == admitting
    with pytest.raises(ClientError, match="not allowed to be used"):
        aws("logs").create_log_group(logGroupName=f"/other/{unique('group')}", kmsKeyId=admitting)


def test_a_tables_resource_policy_takes_part_in_the_decision(aws, sandbox, role):
    table = unique("guarded")
    arn = aws("dynamodb").create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                       BillingMode="PAY_PER_REQUEST")["TableDescription"]["TableArn"]
    writer, granted = role({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": arn}), role()
    aws("dynamodb").put_resource_policy(ResourceArn=arn, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": {"AWS": writer}, "Action": "dynamodb:PutItem", "Resource": arn},
        {"Effect": "Allow", "Principal": {"AWS": granted}, "Action": "dynamodb:PutItem", "Resource": arn}]}))
    item = {"TableName": table, "Item": {"pk": {"S": "a"}}}
    with pytest.raises(ClientError, match="explicit deny in dynamodb resource policy"):
        as_role(aws, sandbox, writer, "dynamodb").put_item(**item)
    as_role(aws, sandbox, granted, "dynamodb").put_item(**item)  # no identity policy: the table's grant suffices


def test_a_streams_resource_policy_takes_part_in_the_decision(aws, sandbox, role):
    name, arn = stream(aws)
    producer = role({"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": arn})
    aws("kinesis").put_resource_policy(ResourceARN=arn, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": {"AWS": producer}, "Action": "kinesis:PutRecord", "Resource": arn}]}))
    with pytest.raises(ClientError, match="explicit deny in kinesis resource policy"):
        as_role(aws, sandbox, producer, "kinesis").put_record(StreamName=name, Data=b"{}", PartitionKey="u1")


def test_a_deny_on_a_resource_tag_fires_on_the_tagged_queue_only(aws, sandbox, role):
    prod = aws("sqs").create_queue(QueueName=unique("prod"), tags={"env": "prod"})["QueueUrl"]
    dev = aws("sqs").create_queue(QueueName=unique("dev"))["QueueUrl"]
    sender = as_role(aws, sandbox, role(
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"},
        {"Effect": "Deny", "Action": "sqs:SendMessage", "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}}}), "sqs")
    sender.send_message(QueueUrl=dev, MessageBody="ok")
    with pytest.raises(ClientError, match="AccessDenied"):
        sender.send_message(QueueUrl=prod, MessageBody="refused")


def test_a_condition_on_request_tags_sees_the_tags_passed(aws, sandbox, role):
    creator = as_role(aws, sandbox, role({"Effect": "Allow", "Action": "sns:CreateTopic", "Resource": "*",
                                          "Condition": {"StringEquals": {"aws:RequestTag/team": "video"}}}), "sns")
    creator.create_topic(Name=unique("tagged"), Tags=[{"Key": "team", "Value": "video"}])
    with pytest.raises(ClientError, match="AuthorizationError"):
        creator.create_topic(Name=unique("untagged"))


def test_an_unsigned_request_is_anonymous_and_served_only_what_a_policy_grants_everyone(aws, sandbox):
    private, public = unique("private"), unique("public")
    for bucket in (private, public):
        aws("s3").create_bucket(Bucket=bucket)
        aws("s3").put_object(Bucket=bucket, Key="clip.txt", Body=b"frames")
    aws("s3").put_bucket_policy(Bucket=public, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{public}/*"}]}))

    def fetch(bucket: str) -> int:
        try:
            with urllib.request.urlopen(f"{sandbox.endpoint_url}/{bucket}/clip.txt", timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert (fetch(private), fetch(public)) == (403, 200)
    assert [(d["action"], d["resource"]) for d in denials(sandbox, "anonymous")] == [
        ("s3:GetObject", f"arn:aws:s3:::{private}/clip.txt")]
