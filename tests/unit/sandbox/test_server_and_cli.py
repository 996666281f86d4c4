"""The sandbox process's wiring (inline delivery detached, control endpoints) and the CLI's pieces."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from tapharness import stacks
from tapharness.sandbox.cli import _write_outputs, tfvars_region
from tapharness.sandbox.deploy import (
    StackDeployment,
    empty_buckets,
    remaining_resources,
)
from tapharness.sandbox.state import SandboxPaths, SandboxState

from .helpers import unique, zip_sources

ACCOUNT, REGION = "123456789012", "us-east-1"


def _function(aws, role_arn) -> str:
    return aws("lambda").create_function(
        FunctionName=unique("fn"), Runtime="python3.12", Role=role_arn, Handler="h.h",
        Code={"ZipFile": zip_sources({"h.py": "def h(e, c):\n    return {}\n"})})["FunctionArn"]


def _until_pollers_read(box, mapping_uuid: str, reading: bool, timeout: float = 10.0) -> None:
    """Until the sandbox runs a poller for the mapping (``reading``) or none any more. The pollers
    follow the mappings at each reconcile, not inside the Lambda API's calls, and a stopped poller's
    receive in flight ends first: meanwhile a deleted mapping may still deliver, as one in AWS's
    Deleting state may."""
    deadline = time.monotonic() + timeout
    while any(p["uuid"] == mapping_uuid for p in box.control("GET", "pollers")) != reading:
        assert time.monotonic() < deadline, f"the pollers of mapping {mapping_uuid}: never {reading=}"
        time.sleep(0.05)


def test_a_deleted_sqs_mapping_delivers_nothing(sandbox, aws, role_arn):
    # moto itself keeps delivering inline to a deleted mapping, inside SendMessage.
    url = aws("sqs").create_queue(QueueName=unique("queue"))["QueueUrl"]
    arn = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    esm = aws("lambda").create_event_source_mapping(EventSourceArn=arn, FunctionName=_function(aws, role_arn))
    _until_pollers_read(sandbox, esm["UUID"], reading=True)  # a reconcile under way has seen the mapping
    aws("lambda").delete_event_source_mapping(UUID=esm["UUID"])
    _until_pollers_read(sandbox, esm["UUID"], reading=False)
    aws("sqs").send_message(QueueUrl=url, MessageBody="kept")
    time.sleep(0.5)
    received = aws("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
    assert [m["Body"] for m in received] == ["kept"]


def test_two_kinesis_mappings_on_one_stream_are_both_kept(aws, role_arn):
    name = unique("stream")
    aws("kinesis").create_stream(StreamName=name, ShardCount=1)
    arn = aws("kinesis").describe_stream(StreamName=name)["StreamDescription"]["StreamARN"]
    uuids = [aws("lambda").create_event_source_mapping(EventSourceArn=arn, FunctionName=_function(aws, role_arn),
                                                       StartingPosition="LATEST")["UUID"] for _ in range(2)]
    listed = aws("lambda").list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"]
    for esm_uuid in uuids:
        aws("lambda").delete_event_source_mapping(UUID=esm_uuid)
    assert sorted(m["UUID"] for m in listed) == sorted(uuids)


def test_health_endpoint_reports_the_moto_endpoint(sandbox):
    with urllib.request.urlopen(f"{sandbox.gateway_url}/_sandbox/health", timeout=10) as response:
        health = json.loads(response.read())
    assert health["status"] == "ok"
    assert health["endpoint_url"] == sandbox.endpoint_url


def test_requests_endpoint_counts_the_calls_served_by_service_and_operation(aws, sandbox):
    def served() -> dict[str, int]:
        with urllib.request.urlopen(f"{sandbox.gateway_url}/_sandbox/requests", timeout=10) as response:
            return json.loads(response.read())

    before = served().get("dynamodb ListTables", 0)
    for _ in range(3):
        aws("dynamodb").list_tables()
    assert served()["dynamodb ListTables"] == before + 3


def test_one_connection_serves_call_after_call_as_aws_endpoints_keep_it_open(sandbox):
    host, port = urlsplit(sandbox.endpoint_url).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    unsigned = json.dumps({"Padding": "x" * 5000}).encode()  # refused before its body is looked at
    list_tables = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.ListTables",
                   "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261202/us-east-1/dynamodb/aws4_request, "
                                    "SignedHeaders=host, Signature=0"}
    answers = []
    for body, headers in [(b"{}", list_tables), (unsigned, {"Content-Type": "application/x-amz-json-1.0"}),
                          (iter([b"{", b"}"]), list_tables), (b"{}", list_tables)]:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        answers.append((response.status, response.getheader("Connection")))
    sock = connection.sock
    assert sock is not None, "the server closed the connection"
    assert [status for status, _ in answers] == [200, 400, 200, 200], answers
    assert all(header != "close" for _, header in answers), answers


def test_an_sdk_retry_is_counted_as_one(sandbox):
    def retried() -> dict[str, int]:
        with urllib.request.urlopen(f"{sandbox.gateway_url}/_sandbox/retries", timeout=10) as response:
            return json.loads(response.read())

    before = retried().get("dynamodb ListTables", 0)
    retry = urllib.request.Request(sandbox.endpoint_url, data=b"{}", method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261202/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host, Signature=0",
        "amz-sdk-invocation-id": "retried-once", "amz-sdk-request": "attempt=2; max=3"})
    with urllib.request.urlopen(retry, timeout=10) as response:
        assert response.status == 200
    assert retried()["dynamodb ListTables"] == before + 1


def test_remaining_resources_names_what_is_still_there(aws):
    name = unique("leftover")
    aws("sqs").create_queue(QueueName=name)
    assert any(line.startswith("sqs queue:") and name in line for line in remaining_resources(aws))


def test_a_table_left_in_another_region_is_found_where_requests_went(aws, sandbox):
    name = unique("replica")

    def client(service: str, region: str | None = None):
        return boto3.client(service, endpoint_url=sandbox.endpoint_url, region_name=region or "us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    client("dynamodb", "eu-west-1").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    with urllib.request.urlopen(f"{sandbox.gateway_url}/_sandbox/regions", timeout=10) as response:
        regions = json.loads(response.read())
    assert "eu-west-1" in regions
    others = [r for r in regions if r != "us-east-1"]
    assert f"dynamodb table (eu-west-1): {name}" in remaining_resources(client, others)


def test_aws_managed_keys_are_not_reported_as_left_behind(aws):
    managed = aws("kms").describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["KeyId"]
    assert not any(managed in line for line in remaining_resources(aws))


def test_customer_key_in_use_is_reported_as_left_behind(aws):
    key = aws("kms").create_key(Description="stack key")["KeyMetadata"]["KeyId"]
    assert any(key in line for line in remaining_resources(aws))


def test_empty_buckets_removes_every_object_version(aws):
    bucket = unique("bucket")
    aws("s3").create_bucket(Bucket=bucket)
    aws("s3").put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    aws("s3").put_object(Bucket=bucket, Key="k", Body=b"1")
    aws("s3").put_object(Bucket=bucket, Key="k", Body=b"2")
    aws("s3").delete_object(Bucket=bucket, Key="k")
    empty_buckets(aws)
    aws("s3").delete_bucket(Bucket=bucket)
    assert bucket not in [b["Name"] for b in aws("s3").list_buckets()["Buckets"]]


@pytest.mark.parametrize(("declared", "passed"), [({"deletion_protection", "env"}, True), ({"region"}, False)],
                         ids=["a stack declaring it", "a stack without it"])
def test_sandbox_turns_deletion_protection_off_only_where_the_stack_declares_it(tmp_path, declared, passed):
    # What the stack declares is what `tofu graph` lists (test_foreign_stack deploys a stack without it).
    deployment = StackDeployment(SandboxPaths(tmp_path), "dev", "http://127.0.0.1:1", {"greeting": "hi"})
    deployment.__dict__["declared"] = frozenset(declared)
    assert ("-var=deletion_protection=false" in deployment.var_args) is passed
    assert "-var=greeting=hi" in deployment.var_args


def test_region_comes_from_the_environment_tfvars():
    assert tfvars_region("dev", stacks.resolve()) == "us-east-1"


def test_an_invoke_url_in_any_output_is_mapped_and_nothing_else_is(tmp_path):
    paths = SandboxPaths(tmp_path)
    paths.base.mkdir(parents=True, exist_ok=True)
    state = SandboxState(env="dev", region=REGION, moto_port=4566, gateway_port=4567)
    stack = "https://xyz789.execute-api.us-east-1.amazonaws.com/prod"
    outputs = {"booking_routes": {"value": [f"{stack}/book", "not a url"], "type": ["list", "string"],
                                  "sensitive": False},
               "booking_api": {"value": stack, "type": "string", "sensitive": False}}
    api_url = _write_outputs(paths, state, outputs, {})
    written = json.loads(paths.outputs_file.read_text())
    assert written["booking_routes"]["value"] == ["http://127.0.0.1:4567/apis/xyz789/prod/book", "not a url"]
    assert api_url == written["booking_api"]["value"] == "http://127.0.0.1:4567/apis/xyz789/prod"


def test_a_stack_without_an_api_has_no_api_url(tmp_path):
    paths = SandboxPaths(tmp_path)
    paths.base.mkdir(parents=True, exist_ok=True)
    state = SandboxState(env="dev", region=REGION, moto_port=4566, gateway_port=4567)
    assert _write_outputs(paths, state, {"vpc_id": {"value": "vpc-1", "type": "string", "sensitive": False}}, {}) is None
    assert json.loads(paths.outputs_file.read_text())["sandbox"]["value"]["api_url"] is None


def test_outputs_file_maps_api_urls_to_the_gateway_and_adds_the_sandbox_entry(tmp_path):
    paths = SandboxPaths(tmp_path)
    paths.base.mkdir(parents=True, exist_ok=True)
    state = SandboxState(env="dev", region=REGION, moto_port=4566, gateway_port=4567)
    stack = "https://abc123.execute-api.us-east-1.amazonaws.com/v1"
    outputs = {"api_invoke_url": {"value": stack, "type": "string", "sensitive": False},
               "api_endpoints": {"value": {"watch": f"{stack}/watch"}, "type": ["map", "string"], "sensitive": False},
               "vpc_id": {"value": "vpc-1", "type": "string", "sensitive": False}}
    api_url = _write_outputs(paths, state, outputs, {"redis": {"port": 1}, "postgres": {"port": 2}})
    written = json.loads(paths.outputs_file.read_text())
    assert api_url == "http://127.0.0.1:4567/apis/abc123/v1"
    assert written["api_endpoints"]["value"]["watch"] == "http://127.0.0.1:4567/apis/abc123/v1/watch"
    assert written["vpc_id"]["value"] == "vpc-1"
    assert written["sandbox"]["value"]["endpoint_url"] == "http://127.0.0.1:4566"
    assert written["sandbox"]["value"]["stack_api_invoke_url"] == stack


def test_injected_errors_answer_in_the_services_protocol(sandbox, aws):
    table = f"faults-{uuid.uuid4().hex[:8]}"
    aws("dynamodb").create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                                 KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                                 AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
    request = urllib.request.Request(f"{sandbox.gateway_url}/_sandbox/faults", method="POST", data=json.dumps(
        {"error": {"request": "dynamodb PutItem", "code": "ProvisionedThroughputExceededException", "count": 1}}).encode())
    urllib.request.urlopen(request, timeout=10).read()
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=sandbox.endpoint_url,
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    with pytest.raises(client.exceptions.ProvisionedThroughputExceededException):
        client.put_item(TableName=table, Item={"k": {"S": "a"}})
    client.put_item(TableName=table, Item={"k": {"S": "a"}})  # the fault was for one request


def test_a_stack_with_an_s3_backend_keeps_its_state_in_the_sandboxs_s3(tmp_path, sandbox):
    stack = stacks.resolve("clickstream")
    deployment = StackDeployment(SandboxPaths(tmp_path), "dev", sandbox.endpoint_url, stack=stack)
    backend = deployment.state_backend()
    assert backend is not None and backend["key"] == "clickstream/dev/terraform.tfstate"
    deployment.prepare()
    override = (deployment.dir / "zz_sandbox_override.tf").read_text()
    assert f'bucket                      = "{backend["bucket"]}"' in override
    assert f's3 = "{sandbox.endpoint_url}"' in override


def test_a_stack_without_a_backend_file_keeps_local_state(tmp_path):
    deployment = StackDeployment(SandboxPaths(tmp_path), "dev", "http://127.0.0.1:1", stack=stacks.resolve())
    assert deployment.state_backend() is None


def test_a_retried_change_that_took_effect_gets_its_first_answer(sandbox, aws):
    table = f"retries-{uuid.uuid4().hex[:8]}"
    aws("dynamodb").create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                                 KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                                 AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
    invocation = str(uuid.uuid4())
    body = json.dumps({"TableName": table, "Item": {"k": {"S": "a"}},
                       "ConditionExpression": "attribute_not_exists(k)"}).encode()

    def attempt(number: int) -> int:
        request = urllib.request.Request(sandbox.endpoint_url, data=body, method="POST", headers={
            "X-Amz-Target": "DynamoDB_20120810.PutItem", "Content-Type": "application/x-amz-json-1.0",
            "amz-sdk-invocation-id": invocation, "amz-sdk-request": f"attempt={number}; max=3",
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261202/us-east-1/dynamodb/aws4_request, "
                             "SignedHeaders=host, Signature=0"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert attempt(1) == 200
    assert attempt(2) == 200  # not ConditionalCheckFailedException: the first put took effect
    invocation = str(uuid.uuid4())
    assert attempt(1) == 400  # a new invocation is a new request


def test_down_stops_the_sandbox_even_when_it_cannot_list_what_is_left(tmp_path, monkeypatch):
    """A sandbox whose leftover check failed (a moto answer the SDK could not read) kept its server
    running after `down`; the processes stop whatever the check says."""
    from botocore.exceptions import ClientError

    from tapharness.sandbox import cli

    stopped: list[str] = []
    state = type("State", (), {"server_pid": 1, "applied": True, "endpoint_url": "http://127.0.0.1:9", "tofu_vars": {},
                               "stack_dir": None, "region": "us-east-1"})()
    deployment = type("Deployment", (), {"state_backend": lambda self: None, "destroy": lambda self: None,
                                         "remove_state_bucket": lambda self: False})()
    monkeypatch.setattr(cli.SandboxState, "load", staticmethod(lambda paths: state))
    monkeypatch.setattr(cli, "pid_alive", lambda pid: True)
    monkeypatch.setattr(cli, "StackDeployment", lambda *args: deployment)
    monkeypatch.setattr(cli, "empty_buckets", lambda clients, keep: 0)
    monkeypatch.setattr(cli, "control", lambda state, method, path: ["us-east-1"])

    def unreadable(*args):
        raise ClientError({"Error": {"Code": "404", "Message": "Not yet implemented"}}, "ListWorkGroups")

    monkeypatch.setattr(cli, "remaining_resources", unreadable)
    monkeypatch.setattr(cli, "_stop_everything", lambda paths, state, say: stopped.append("stopped") or [])
    monkeypatch.setenv("TAPSTACK_SANDBOX_DIR", str(tmp_path))
    assert cli.main(["down"]) == 1
    assert stopped == ["stopped"]
