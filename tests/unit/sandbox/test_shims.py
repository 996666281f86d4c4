"""Each shim: a provider call moto 5.2.5 lacks answers as AWS does."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from .helpers import Recorder, unique, zip_sources

PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


def test_validate_state_machine_definition_accepts_a_valid_definition(aws):
    result = aws("stepfunctions").validate_state_machine_definition(definition=PASS_MACHINE, type="STANDARD")
    assert result["result"] == "OK"


def test_validate_state_machine_definition_reports_broken_json(aws):
    result = aws("stepfunctions").validate_state_machine_definition(definition="{", type="STANDARD")
    assert result["result"] == "FAIL"


def test_list_state_machine_versions_of_an_unversioned_machine_is_empty(aws, role_arn):
    arn = aws("stepfunctions").create_state_machine(name=unique("sm"), definition=PASS_MACHINE,
                                                    roleArn=role_arn)["stateMachineArn"]
    assert aws("stepfunctions").list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"] == []


def test_executions_started_without_a_name_get_distinct_names(aws, role_arn):
    sfn = aws("stepfunctions")
    arn = sfn.create_state_machine(name=unique("sm"), definition=PASS_MACHINE, roleArn=role_arn)["stateMachineArn"]
    first = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    second = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    assert first != second and not first.endswith(":None")


def _choose(variable_test: dict) -> str:
    return json.dumps({"StartAt": "Choose", "States": {
        "Choose": {"Type": "Choice", "Choices": [{"Variable": "$.tier", **variable_test, "Next": "Gold"}],
                   "Default": "Other"},
        "Gold": {"Type": "Pass", "Result": {"branch": "gold"}, "End": True},
        "Other": {"Type": "Pass", "Result": {"branch": "other"}, "End": True}}})


def _run_to_end(aws, definition: str, role_arn: str, execution_input: dict) -> dict:
    sfn = aws("stepfunctions")
    arn = sfn.create_state_machine(name=unique("sm"), definition=definition, roleArn=role_arn)["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name=unique("run"),
                                    input=json.dumps(execution_input))["executionArn"]
    deadline = time.monotonic() + 30
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not end"
        time.sleep(0.05)
    return described


def test_a_choice_on_a_path_the_input_lacks_fails_the_execution_with_states_runtime(aws, role_arn):
    described = _run_to_end(aws, _choose({"StringEquals": "gold"}), role_arn, {"user": "u1"})
    assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")
    assert described["cause"].startswith("An error occurred while executing the state 'Choose'")
    assert described["cause"].endswith(
        "Invalid path '$.tier': The choice state's condition path references an invalid value.")


def test_a_choice_on_a_present_path_takes_its_branch(aws, role_arn):
    described = _run_to_end(aws, _choose({"StringEquals": "gold"}), role_arn, {"tier": "gold"})
    assert (described["status"], json.loads(described["output"])) == ("SUCCEEDED", {"branch": "gold"})


def test_is_present_on_a_missing_path_is_false_not_an_error(aws, role_arn):
    described = _run_to_end(aws, _choose({"IsPresent": True}), role_arn, {"user": "u1"})
    assert (described["status"], json.loads(described["output"])) == ("SUCCEEDED", {"branch": "other"})


def test_query_definition_round_trip(aws):
    logs = aws("logs")
    name = unique("viewing-patterns")
    definition_id = logs.put_query_definition(name=name, queryString="fields @message", logGroupNames=["/g"])[
        "queryDefinitionId"]
    found = logs.describe_query_definitions(queryDefinitionNamePrefix=name)["queryDefinitions"]
    logs.delete_query_definition(queryDefinitionId=definition_id)
    assert [(d["queryDefinitionId"], d["queryString"]) for d in found] == [(definition_id, "fields @message")]
    assert logs.describe_query_definitions(queryDefinitionNamePrefix=name)["queryDefinitions"] == []


def test_delete_unknown_query_definition_is_resource_not_found(aws):
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        aws("logs").delete_query_definition(queryDefinitionId="nope")


def test_delete_cache_subnet_group_removes_it(aws):
    ec2, elasticache = aws("ec2"), aws("elasticache")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    name = unique("subnets")
    elasticache.create_cache_subnet_group(CacheSubnetGroupName=name, CacheSubnetGroupDescription="d",
                                          SubnetIds=[subnet])
    elasticache.delete_cache_subnet_group(CacheSubnetGroupName=name)
    names = [g["CacheSubnetGroupName"] for g in elasticache.describe_cache_subnet_groups()["CacheSubnetGroups"]]
    assert name not in names


def test_cache_parameter_group_keeps_modified_parameters(aws):
    elasticache = aws("elasticache")
    name = unique("params")
    elasticache.create_cache_parameter_group(CacheParameterGroupName=name, CacheParameterGroupFamily="redis7",
                                             Description="d")
    elasticache.modify_cache_parameter_group(CacheParameterGroupName=name, ParameterNameValues=[
        {"ParameterName": "maxmemory-policy", "ParameterValue": "allkeys-lru"}])
    parameters = elasticache.describe_cache_parameters(CacheParameterGroupName=name, Source="user")["Parameters"]
    group = elasticache.describe_cache_parameter_groups(CacheParameterGroupName=name)["CacheParameterGroups"][0]
    assert [(p["ParameterName"], p["ParameterValue"]) for p in parameters] == [("maxmemory-policy", "allkeys-lru")]
    assert group["CacheParameterGroupFamily"] == "redis7"


def test_cache_parameter_group_tags_are_listed(aws):
    elasticache = aws("elasticache")
    group = elasticache.create_cache_parameter_group(
        CacheParameterGroupName=unique("params"), CacheParameterGroupFamily="redis7", Description="d",
        Tags=[{"Key": "env", "Value": "dev"}])["CacheParameterGroup"]
    assert elasticache.list_tags_for_resource(ResourceName=group["ARN"])["TagList"] == [{"Key": "env", "Value": "dev"}]


def test_deleted_cache_parameter_group_is_not_found(aws):
    elasticache = aws("elasticache")
    name = unique("params")
    elasticache.create_cache_parameter_group(CacheParameterGroupName=name, CacheParameterGroupFamily="redis7",
                                             Description="d")
    elasticache.delete_cache_parameter_group(CacheParameterGroupName=name)
    with pytest.raises(ClientError, match="CacheParameterGroupNotFound"):
        elasticache.describe_cache_parameter_groups(CacheParameterGroupName=name)


def test_athena_tags_of_an_untagged_workgroup_are_empty(aws):
    name = unique("wg")
    aws("athena").create_work_group(Name=name, Configuration={})
    arn = f"arn:aws:athena:us-east-1:123456789012:workgroup/{name}"
    assert aws("athena").list_tags_for_resource(ResourceARN=arn)["Tags"] == []


def test_athena_update_work_group_changes_output_location(aws):
    name = unique("wg")
    aws("athena").create_work_group(Name=name, Configuration={
        "ResultConfiguration": {"OutputLocation": "s3://old/"}})
    aws("athena").update_work_group(WorkGroup=name, Description="new", ConfigurationUpdates={
        "ResultConfigurationUpdates": {"OutputLocation": "s3://new/"}, "EnforceWorkGroupConfiguration": True})
    group = aws("athena").get_work_group(WorkGroup=name)["WorkGroup"]
    assert group["Configuration"]["ResultConfiguration"]["OutputLocation"] == "s3://new/"
    assert group["Configuration"]["EnforceWorkGroupConfiguration"] is True
    assert group["Description"] == "new"


def test_update_method_applies_patch_operations(aws):
    gateway = aws("apigateway")
    api = gateway.create_rest_api(name=unique("api"))["id"]
    root = gateway.get_resources(restApiId=api)["items"][0]["id"]
    gateway.put_method(restApiId=api, resourceId=root, httpMethod="POST", authorizationType="NONE")
    updated = gateway.update_method(restApiId=api, resourceId=root, httpMethod="POST", patchOperations=[
        {"op": "replace", "path": "/requestValidatorId", "value": "v1"},
        {"op": "add", "path": "/requestModels/application~1json", "value": "ViewingEvent"}])
    assert updated["requestValidatorId"] == "v1"
    assert gateway.get_method(restApiId=api, resourceId=root, httpMethod="POST")["requestModels"] == {
        "application/json": "ViewingEvent"}


def test_get_runtime_management_config_is_auto(aws, role_arn):
    name = unique("fn")
    aws("lambda").create_function(FunctionName=name, Runtime="python3.12", Role=role_arn, Handler="h.h",
                                  Code={"ZipFile": zip_sources({"h.py": "def h(e, c):\n    return 1\n"})})
    config = aws("lambda").get_runtime_management_config(FunctionName=name)
    assert config["UpdateRuntimeOn"] == "Auto"


def test_get_data_protection_policy_of_a_topic_is_empty(aws):
    topic = aws("sns").create_topic(Name=unique("topic"))["TopicArn"]
    assert aws("sns").get_data_protection_policy(ResourceArn=topic).get("DataProtectionPolicy", "") == ""


def _table(aws) -> str:
    name = unique("table")
    aws("dynamodb").create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                 BillingMode="PAY_PER_REQUEST")
    return name


def test_contributor_insights_enabled_on_a_table_is_described_enabled(aws):
    table = _table(aws)
    aws("dynamodb").update_contributor_insights(TableName=table, ContributorInsightsAction="ENABLE")
    described = aws("dynamodb").describe_contributor_insights(TableName=table)
    assert described["ContributorInsightsStatus"] == "ENABLED"


def test_contributor_insights_of_an_untouched_table_are_disabled(aws):
    described = aws("dynamodb").describe_contributor_insights(TableName=_table(aws))
    assert described["ContributorInsightsStatus"] == "DISABLED"


def test_contributor_insights_are_listed_per_table(aws):
    table = _table(aws)
    aws("dynamodb").update_contributor_insights(TableName=table, ContributorInsightsAction="ENABLE")
    summaries = aws("dynamodb").list_contributor_insights(TableName=table)["ContributorInsightsSummaries"]
    assert [(s["TableName"], s["ContributorInsightsStatus"]) for s in summaries] == [(table, "ENABLED")]


def test_redrive_allow_policy_is_returned_after_it_is_set(aws):
    url = aws("sqs").create_queue(QueueName=unique("dlq"))["QueueUrl"]
    policy = json.dumps({"redrivePermission": "denyAll"})
    aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"RedriveAllowPolicy": policy})
    attributes = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["RedriveAllowPolicy"] == policy


def test_setting_another_queue_attribute_keeps_the_queue_policy(aws):
    url = aws("sqs").create_queue(QueueName=unique("q"))["QueueUrl"]
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": "*"}]})
    aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5"})
    attributes = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]
    assert json.loads(attributes["Policy"]) == json.loads(policy)


def _replication_group(aws) -> dict:
    return aws("elasticache").create_replication_group(
        ReplicationGroupId=unique("rg")[:20], ReplicationGroupDescription="d", Engine="redis",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=1)["ReplicationGroup"]


def test_replication_group_members_are_described_as_cache_clusters(aws):
    group = _replication_group(aws)
    member = group["MemberClusters"][0]
    clusters = aws("elasticache").describe_cache_clusters(CacheClusterId=member)["CacheClusters"]
    assert clusters[0]["ReplicationGroupId"] == group["ReplicationGroupId"]


def test_replication_group_has_as_many_members_as_num_cache_clusters(aws):
    group = aws("elasticache").create_replication_group(
        ReplicationGroupId=unique("rg")[:20], ReplicationGroupDescription="d", Engine="redis",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=3)["ReplicationGroup"]
    assert len(group["MemberClusters"]) == 3
    described = aws("elasticache").describe_replication_groups(ReplicationGroupId=group["ReplicationGroupId"])
    assert len(described["ReplicationGroups"][0]["MemberClusters"]) == 3


def test_deleted_replication_group_is_gone_with_its_members(aws):
    group = _replication_group(aws)
    aws("elasticache").delete_replication_group(ReplicationGroupId=group["ReplicationGroupId"])
    with pytest.raises(ClientError, match="ReplicationGroupNotFound"):
        aws("elasticache").describe_replication_groups(ReplicationGroupId=group["ReplicationGroupId"])
    with pytest.raises(ClientError, match="CacheClusterNotFound"):
        aws("elasticache").describe_cache_clusters(CacheClusterId=group["MemberClusters"][0])


def test_new_db_instance_has_the_current_aws_default_ca(aws):
    cluster = unique("db")
    aws("rds").create_db_cluster(DBClusterIdentifier=cluster, Engine="aurora-postgresql", MasterUsername="admin",
                                 MasterUserPassword="secret-password")
    instance = aws("rds").create_db_instance(DBInstanceIdentifier=f"{cluster}-1", DBClusterIdentifier=cluster,
                                             Engine="aurora-postgresql", DBInstanceClass="db.serverless")
    assert instance["DBInstance"]["CACertificateIdentifier"] == "rds-ca-rsa2048-g1"


def test_tls_only_bucket_policy_allows_object_calls_to_the_sandbox(aws):
    bucket = unique("bucket")
    aws("s3").create_bucket(Bucket=bucket)
    aws("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    aws("s3").put_object(Bucket=bucket, Key="k", Body=b"v")
    assert aws("s3").get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_unconditional_bucket_deny_still_denies(aws):
    bucket = unique("bucket")
    aws("s3").create_bucket(Bucket=bucket)
    aws("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    with pytest.raises(ClientError, match="403"):
        aws("s3").put_object(Bucket=bucket, Key="k", Body=b"v")


def _deny_put(aws, bucket: str, condition: dict) -> None:
    aws("s3").create_bucket(Bucket=bucket)
    aws("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": condition}]}))


def test_bucket_deny_on_a_header_the_request_lacks_denies(aws):
    bucket = unique("bucket")
    _deny_put(aws, bucket, {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}})
    with pytest.raises(ClientError, match="403"):
        aws("s3").put_object(Bucket=bucket, Key="plain", Body=b"v")


def test_bucket_policy_with_an_undefined_operator_denies(aws):
    bucket = unique("bucket")
    _deny_put(aws, bucket, {"StringMaybeEquals": {"aws:SourceVpce": "vpce-1"}})
    with pytest.raises(ClientError, match="403"):
        aws("s3").put_object(Bucket=bucket, Key="k", Body=b"v")


def _table(aws) -> str:
    name = unique("table")
    aws("dynamodb").create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                 KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    return name


def _put(table: str, pk: str, condition: str | None = None) -> dict:
    put = {"TableName": table, "Item": {"pk": {"S": pk}, "n": {"N": "1"}}}
    if condition:
        put["ConditionExpression"] = condition
    return {"Put": put}


def test_cancelled_transaction_writes_nothing_and_names_each_reason(aws):
    table = _table(aws)
    aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": "taken"}})
    with pytest.raises(ClientError) as error:
        aws("dynamodb").transact_write_items(TransactItems=[
            _put(table, "fresh"), _put(table, "taken", "attribute_not_exists(pk)")])
    reasons = [r["Code"] for r in error.value.response["CancellationReasons"]]
    assert (error.value.response["Error"]["Code"], reasons) == ("TransactionCanceledException",
                                                                ["None", "ConditionalCheckFailed"])
    assert "Item" not in aws("dynamodb").get_item(TableName=table, Key={"pk": {"S": "fresh"}})


def test_transaction_applies_every_write_when_all_conditions_hold(aws):
    table = _table(aws)
    aws("dynamodb").transact_write_items(TransactItems=[
        _put(table, "a", "attribute_not_exists(pk)"), _put(table, "b"),
        {"Update": {"TableName": table, "Key": {"pk": {"S": "c"}}, "UpdateExpression": "SET n = :n",
                    "ExpressionAttributeValues": {":n": {"N": "3"}}}}])
    items = aws("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    assert sorted((i["pk"]["S"], i["n"]["N"]) for i in items) == [("a", "1"), ("b", "1"), ("c", "3")]


# Racing calls meet only when the machine lets them overlap: tried round after round, up to this many.
RACE_ROUNDS = 40


def _at_once(calls: list) -> list:
    """Run the calls in threads released together; each one's result or ClientError."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        try:
            return call()
        except ClientError as error:
            return error

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def _increment(table: str, pk: str, other: str) -> dict:
    return {"TransactItems": [
        {"Update": {"TableName": table, "Key": {"pk": {"S": pk}}, "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        {"Put": {"TableName": table, "Item": {"pk": {"S": other}}}}]}


def test_transactions_racing_for_one_item_are_cancelled_with_transaction_conflict(aws):
    """DynamoDB: "An item within a TransactWriteItems request is part of another ongoing
    TransactWriteItems request" is a conflict; the loser's reasons name the item, nothing of it is written."""
    table, outcomes, conflicts = _table(aws), [], []
    for round_ in range(RACE_ROUNDS):  # rounds until two met: on a loaded machine one may end before the next starts
        requests = [_increment(table, "counter", f"{round_}-{i}") for i in range(8)]
        outcomes += _at_once([lambda r=r: aws("dynamodb").transact_write_items(**r) for r in requests])
        conflicts = [o for o in outcomes if isinstance(o, ClientError)]
        if conflicts:
            break
    assert conflicts, f"no transaction met another on the shared item in {RACE_ROUNDS} rounds"
    assert {tuple(r["Code"] for r in c.response["CancellationReasons"]) for c in conflicts} == {
        ("TransactionConflict", "None")}
    committed = len(outcomes) - len(conflicts)
    counter = aws("dynamodb").get_item(TableName=table, Key={"pk": {"S": "counter"}}, ConsistentRead=True)["Item"]
    assert int(counter["n"]["N"]) == committed
    assert aws("dynamodb").scan(TableName=table, Select="COUNT")["Count"] == committed + 1


def test_a_single_write_to_an_item_a_transaction_holds_is_a_transaction_conflict(aws):
    """DynamoDB: "A PutItem, UpdateItem, or DeleteItem request for an item conflicts with an ongoing
    TransactWriteItems request that includes the same item"; the transaction itself goes through."""
    table, refused = _table(aws), []
    for _ in range(RACE_ROUNDS):  # rounds until a put met the transaction's hold
        writes = [lambda: aws("dynamodb").transact_write_items(**_increment(table, "held", unique("other")))]
        writes += [lambda: aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": "held"}})] * 6
        outcomes = _at_once(writes)
        assert not isinstance(outcomes[0], ClientError), outcomes[0]
        refused += [o.response["Error"]["Code"] for o in outcomes[1:] if isinstance(o, ClientError)]
        if refused:
            break
    assert refused, f"no put met the transaction's hold in {RACE_ROUNDS} rounds"
    assert set(refused) == {"TransactionConflictException"}


def test_a_repeated_client_token_succeeds_without_writing_again(aws):
    table = _table(aws)
    request = {**_increment(table, "counter", "other"), "ClientRequestToken": unique("token")}
    aws("dynamodb").transact_write_items(**request)
    aws("dynamodb").transact_write_items(**request)
    counter = aws("dynamodb").get_item(TableName=table, Key={"pk": {"S": "counter"}})["Item"]
    assert counter["n"]["N"] == "1"
    with pytest.raises(ClientError, match="IdempotentParameterMismatchException"):
        aws("dynamodb").transact_write_items(**{**_increment(table, "counter", "elsewhere"),
                                                "ClientRequestToken": request["ClientRequestToken"]})


def test_a_client_token_whose_transaction_still_runs_is_answered_transaction_in_progress(aws, sandbox):
    # botocore retries TransactionInProgressException on its own ("still_processing"): a client that does not
    table, busy = _table(aws), []
    once = boto3.client("dynamodb", endpoint_url=sandbox.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"total_max_attempts": 1}))
    for round_ in range(RACE_ROUNDS):  # rounds until a repeat met the first still running
        request = {**_increment(table, f"counter-{round_}", f"other-{round_}"), "ClientRequestToken": unique("token")}
        outcomes = _at_once([lambda r=request: once.transact_write_items(**r)] * 4)
        counter = aws("dynamodb").get_item(TableName=table, Key={"pk": {"S": f"counter-{round_}"}},
                                           ConsistentRead=True)["Item"]
        assert counter["n"]["N"] == "1", f"one token, {counter['n']['N']} increments"
        busy = [o for o in outcomes if isinstance(o, ClientError)]
        if busy:
            break
    assert busy, f"no repeat met its token's transaction still running in {RACE_ROUNDS} rounds"
    assert {o.response["Error"]["Code"] for o in busy} == {"TransactionInProgressException"}


def test_transaction_with_a_malformed_update_writes_nothing(aws):
    table = _table(aws)
    with pytest.raises(ClientError, match="ValidationException"):
        aws("dynamodb").transact_write_items(TransactItems=[
            _put(table, "a"), {"Update": {"TableName": table, "Key": {"pk": {"S": "c"}},
                                          "UpdateExpression": "SET = oops"}}])
    assert aws("dynamodb").scan(TableName=table)["Items"] == []


def test_query_on_the_table_key_reads_only_its_partition_in_key_order(aws):
    table = unique("table")
    aws("dynamodb").create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                                 KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                            {"AttributeName": "sk", "KeyType": "RANGE"}],
                                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                       {"AttributeName": "sk", "AttributeType": "S"}])
    for pk in ("u1", "u2"):
        for sk in ("2026-03", "2026-01", "SUMMARY", "2026-02"):
            aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk}})
    newest_first = aws("dynamodb").query(
        TableName=table, KeyConditionExpression="pk = :p AND sk < :s", ScanIndexForward=False, Limit=2,
        ExpressionAttributeValues={":p": {"S": "u1"}, ":s": {"S": "SUMMARY"}})
    assert [i["sk"]["S"] for i in newest_first["Items"]] == ["2026-03", "2026-02"]
    assert newest_first["LastEvaluatedKey"] == {"pk": {"S": "u1"}, "sk": {"S": "2026-02"}}
    everything = aws("dynamodb").query(TableName=table, KeyConditionExpression="pk = :p",
                                       ExpressionAttributeValues={":p": {"S": "u2"}})
    assert [i["sk"]["S"] for i in everything["Items"]] == ["2026-01", "2026-02", "2026-03", "SUMMARY"]
    assert aws("dynamodb").query(TableName=table, KeyConditionExpression="pk = :p",
                                 ExpressionAttributeValues={":p": {"S": "nobody"}})["Items"] == []


ITEM = {"pk": {"S": "a"}, "blob": {"B": b"\x00\x01\xff"}, "n": {"N": "1.5"}, "nested": {"M": {
    "list": {"L": [{"NULL": True}, {"BOOL": False}, {"SS": ["x", "y"]}]}, "nums": {"NS": ["1", "2"]}}},
    "blobs": {"BS": [b"x", b"yz"]}}


@pytest.mark.parametrize("operation", ["get_item", "query", "batch_get_item", "scan"])
def test_item_answers_are_what_moto_serializer_gives(aws, moto_endpoint, operation):
    # The sandbox serializes item answers itself (faster); moto's own server is the reference.
    plain = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing")
    table = unique("table")
    answers = []
    for dynamodb in (aws("dynamodb"), plain):
        dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        dynamodb.put_item(TableName=table, Item=ITEM)
        if operation == "get_item":
            answer = dynamodb.get_item(TableName=table, Key={"pk": {"S": "a"}})
        elif operation == "query":
            answer = dynamodb.query(TableName=table, KeyConditionExpression="pk = :p",
                                    ExpressionAttributeValues={":p": {"S": "a"}})
        elif operation == "batch_get_item":
            answer = dynamodb.batch_get_item(RequestItems={table: {"Keys": [{"pk": {"S": "a"}}]}})
        else:
            answer = dynamodb.scan(TableName=table)
        metadata = answer.pop("ResponseMetadata")
        answers.append((answer, metadata["HTTPStatusCode"], metadata["HTTPHeaders"]["content-type"]))
    assert answers[0] == answers[1]
    answer = answers[0][0]
    assert ITEM in (answer.get("Items") or answer.get("Responses", {}).get(table) or [answer.get("Item")])


def test_describe_table_keeps_moto_serializer_for_its_datetimes(aws):
    table = unique("table")
    aws("dynamodb").create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                                 KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    created = aws("dynamodb").describe_table(TableName=table)["Table"]["CreationDateTime"]
    assert created.year >= 2026


def test_stream_records_carry_keys_images_and_creation_time(aws, sandbox):
    from datetime import UTC, datetime, timedelta

    table = unique("table")
    stream_arn = aws("dynamodb").create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    first = {"pk": {"S": "a"}, "n": {"N": "1"}, "m": {"M": {"l": {"L": [{"S": "x"}, {"NULL": True}]}}}}
    second = {**first, "n": {"N": "2"}}
    aws("dynamodb").put_item(TableName=table, Item=first)
    aws("dynamodb").put_item(TableName=table, Item=second)
    streams = aws("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    page = streams.get_records(ShardIterator=iterator)
    insert, modify = page["Records"]
    assert (insert["eventName"], modify["eventName"]) == ("INSERT", "MODIFY")
    assert insert["dynamodb"]["Keys"] == {"pk": {"S": "a"}}
    assert (insert["dynamodb"]["NewImage"], modify["dynamodb"]["OldImage"], modify["dynamodb"]["NewImage"]) == (
        first, first, second)
    # Created on the sandbox's clock, which another test may have moved on.
    now = datetime.now(UTC) + timedelta(seconds=sandbox.control("GET", "clock")["offset_s"])
    assert abs(modify["dynamodb"]["ApproximateCreationDateTime"] - now) < timedelta(minutes=1)
    assert streams.get_records(ShardIterator=page["NextShardIterator"])["Records"] == []


def _stream(aws) -> str:
    name = unique("stream")
    aws("kinesis").create_stream(StreamName=name, ShardCount=1)
    return aws("kinesis").describe_stream(StreamName=name)["StreamDescription"]["StreamARN"]


def _shard_iterator(aws, arn: str, kind: str, after: str | None = None) -> str:
    kwargs = {"StartingSequenceNumber": after} if after else {}
    return aws("kinesis").get_shard_iterator(StreamARN=arn, ShardId="shardId-000000000000",
                                             ShardIteratorType=kind, **kwargs)["ShardIterator"]


def test_kinesis_reads_resume_after_the_iterator_in_order_and_honour_the_limit(aws):
    arn = _stream(aws)
    sequences = [aws("kinesis").put_record(StreamARN=arn, PartitionKey="p", Data=f"r{i}".encode())["SequenceNumber"]
                 for i in range(7)]
    first = aws("kinesis").get_records(StreamARN=arn, ShardIterator=_shard_iterator(aws, arn, "TRIM_HORIZON"), Limit=3)
    assert [r["Data"] for r in first["Records"]] == [b"r0", b"r1", b"r2"]
    rest = aws("kinesis").get_records(StreamARN=arn, ShardIterator=first["NextShardIterator"])
    assert [r["Data"] for r in rest["Records"]] == [b"r3", b"r4", b"r5", b"r6"]
    after = aws("kinesis").get_records(StreamARN=arn, ShardIterator=_shard_iterator(aws, arn, "AFTER_SEQUENCE_NUMBER", sequences[4]))
    assert [r["SequenceNumber"] for r in after["Records"]] == sequences[5:]
    latest = _shard_iterator(aws, arn, "LATEST")
    assert aws("kinesis").get_records(StreamARN=arn, ShardIterator=latest)["Records"] == []
    aws("kinesis").put_record(StreamARN=arn, PartitionKey="p", Data=b"new")
    assert [r["Data"] for r in aws("kinesis").get_records(StreamARN=arn, ShardIterator=latest)["Records"]] == [b"new"]


def test_concurrent_kinesis_puts_each_get_their_own_sequence_number(aws):
    from concurrent.futures import ThreadPoolExecutor

    arn = _stream(aws)
    with ThreadPoolExecutor(8) as pool:
        sequences = list(pool.map(lambda i: aws("kinesis").put_record(
            StreamARN=arn, PartitionKey="p", Data=str(i).encode())["SequenceNumber"], range(200)))
    assert len(set(sequences)) == 200
    iterator, read = _shard_iterator(aws, arn, "TRIM_HORIZON"), []
    while len(read) < 200:
        page = aws("kinesis").get_records(StreamARN=arn, ShardIterator=iterator, Limit=1000)
        read += page["Records"]
        iterator = page["NextShardIterator"]
        if not page["Records"]:
            break
    assert sorted(int(r["Data"]) for r in read) == list(range(200))


def test_message_past_the_retention_period_is_not_received(aws, sandbox):
    url = aws("sqs").create_queue(QueueName=unique("retained"), Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    aws("sqs").send_message(QueueUrl=url, MessageBody="kept")
    assert [m["Body"] for m in aws("sqs").receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]] == ["kept"]
    sandbox.control("POST", "clock", {"advance_s": 61})
    assert "Messages" not in aws("sqs").receive_message(QueueUrl=url)


def test_the_sandbox_clock_only_moves_forward(sandbox):
    before = sandbox.control("GET", "clock")["offset_s"]
    with pytest.raises(urllib.error.HTTPError) as refused:
        sandbox.control("POST", "clock", {"advance_s": -5})
    assert refused.value.code == 400
    assert sandbox.control("GET", "clock")["offset_s"] == before


def test_lambda_keeps_dead_letter_and_logging_config(aws, role_arn):
    name = unique("fn")
    aws("lambda").create_function(
        FunctionName=name, Runtime="python3.12", Role=role_arn, Handler="h.h",
        Code={"ZipFile": zip_sources({"h.py": "def h(e, c):\n    return 1\n"})},
        DeadLetterConfig={"TargetArn": "arn:aws:sqs:us-east-1:123456789012:dlq"},
        LoggingConfig={"LogFormat": "JSON", "LogGroup": f"/custom/{name}"})
    config = aws("lambda").get_function_configuration(FunctionName=name)
    assert config["DeadLetterConfig"] == {"TargetArn": "arn:aws:sqs:us-east-1:123456789012:dlq"}
    assert config["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": f"/custom/{name}"}


def test_function_logs_go_to_the_logging_config_log_group(aws, make_function):
    arn = make_function("def lambda_handler(event, context):\n    print('custom group')\n")
    group = f"/custom/{arn.split(':')[-1]}"
    aws("lambda").update_function_configuration(FunctionName=arn, LoggingConfig={"LogGroup": group})
    aws("lambda").invoke(FunctionName=arn, Payload=b"{}")
    messages = [e["message"] for e in aws("logs").filter_log_events(logGroupName=group)["events"]]
    assert "custom group" in messages


def test_key_rotation_period_is_reported(aws):
    key = aws("kms").create_key()["KeyMetadata"]["KeyId"]
    aws("kms").enable_key_rotation(KeyId=key, RotationPeriodInDays=180)
    status = aws("kms").get_key_rotation_status(KeyId=key)
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 180)


def test_topic_tracing_config_is_returned(aws):
    topic = aws("sns").create_topic(Name=unique("topic"), Attributes={"TracingConfig": "Active"})["TopicArn"]
    assert aws("sns").get_topic_attributes(TopicArn=topic)["Attributes"]["TracingConfig"] == "Active"


def test_stream_tags_given_at_creation_are_kept(aws):
    name = unique("stream")
    aws("kinesis").create_stream(StreamName=name, ShardCount=1, Tags={"env": "dev"})
    assert aws("kinesis").list_tags_for_stream(StreamName=name)["Tags"] == [{"Key": "env", "Value": "dev"}]


def test_intelligent_tiering_configuration_round_trip(aws):
    bucket = unique("bucket")
    aws("s3").create_bucket(Bucket=bucket)
    config = {"Id": "archive", "Status": "Enabled", "Filter": {"Prefix": "viewing/"},
              "Tierings": [{"Days": 90, "AccessTier": "ARCHIVE_ACCESS"}]}
    aws("s3").put_bucket_intelligent_tiering_configuration(Bucket=bucket, Id="archive",
                                                           IntelligentTieringConfiguration=config)
    got = aws("s3").get_bucket_intelligent_tiering_configuration(Bucket=bucket, Id="archive")
    listed = aws("s3").list_bucket_intelligent_tiering_configurations(Bucket=bucket)
    assert got["IntelligentTieringConfiguration"] == config
    assert [c["Id"] for c in listed["IntelligentTieringConfigurationList"]] == ["archive"]


def test_deleted_intelligent_tiering_configuration_is_not_found(aws):
    bucket = unique("bucket")
    aws("s3").create_bucket(Bucket=bucket)
    config = {"Id": "a", "Status": "Enabled", "Tierings": [{"Days": 90, "AccessTier": "ARCHIVE_ACCESS"}]}
    aws("s3").put_bucket_intelligent_tiering_configuration(Bucket=bucket, Id="a", IntelligentTieringConfiguration=config)
    aws("s3").delete_bucket_intelligent_tiering_configuration(Bucket=bucket, Id="a")
    with pytest.raises(ClientError, match="NoSuchConfiguration"):
        aws("s3").get_bucket_intelligent_tiering_configuration(Bucket=bucket, Id="a")


def test_provisioned_cluster_has_no_serverless_v1_scaling_info(aws):
    cluster = aws("rds").create_db_cluster(
        DBClusterIdentifier=unique("db"), Engine="aurora-postgresql", MasterUsername="admin",
        MasterUserPassword="secret-password", EngineMode="provisioned",
        ServerlessV2ScalingConfiguration={"MinCapacity": 0.5, "MaxCapacity": 2})["DBCluster"]
    assert "ScalingConfigurationInfo" not in cluster


def test_db_instance_keeps_performance_insights_settings(aws):
    cluster = unique("db")
    aws("rds").create_db_cluster(DBClusterIdentifier=cluster, Engine="aurora-postgresql", MasterUsername="admin",
                                 MasterUserPassword="secret-password")
    instance = aws("rds").create_db_instance(
        DBInstanceIdentifier=f"{cluster}-1", DBClusterIdentifier=cluster, Engine="aurora-postgresql",
        DBInstanceClass="db.serverless", EnablePerformanceInsights=True, PerformanceInsightsRetentionPeriod=7,
        PerformanceInsightsKMSKeyId="arn:aws:kms:us-east-1:123456789012:key/k")["DBInstance"]
    assert (instance["PerformanceInsightsEnabled"], instance["PerformanceInsightsRetentionPeriod"]) == (True, 7)


def test_replication_group_member_reports_encryption_and_security_groups(aws):
    group = aws("elasticache").create_replication_group(
        ReplicationGroupId=unique("rg")[:20], ReplicationGroupDescription="d", Engine="redis",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=1, AtRestEncryptionEnabled=True,
        SecurityGroupIds=["sg-12345678"])["ReplicationGroup"]
    member = aws("elasticache").describe_cache_clusters(CacheClusterId=group["MemberClusters"][0])["CacheClusters"][0]
    assert member["AtRestEncryptionEnabled"] is True
    assert member["SecurityGroups"] == [{"SecurityGroupId": "sg-12345678", "Status": "active"}]


def test_redrive_policy_is_returned_as_compact_json(aws):
    dlq = aws("sqs").create_queue(QueueName=unique("dlq"))["QueueUrl"]
    dlq_arn = aws("sqs").get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}, separators=(",", ":"))
    url = aws("sqs").create_queue(QueueName=unique("q"), Attributes={"RedrivePolicy": policy})["QueueUrl"]
    assert aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["RedrivePolicy"] == policy


def test_rule_referencing_a_security_group_keeps_its_description(aws):
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    source = ec2.create_security_group(GroupName=unique("a"), Description="a", VpcId=vpc)["GroupId"]
    target = ec2.create_security_group(GroupName=unique("b"), Description="b", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=target, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
        "UserIdGroupPairs": [{"GroupId": source, "Description": "PostgreSQL from Lambda"}]}])
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [target]}])
    assert [r.get("Description") for r in rules["SecurityGroupRules"] if not r["IsEgress"]] == ["PostgreSQL from Lambda"]


def _bucket_notifying_a_recorder(aws, make_function, recorder, versioned: bool = False) -> str:
    """A bucket whose object-created events reach a function that records their ``s3.object``."""
    bucket = unique("bucket")
    aws("s3").create_bucket(Bucket=bucket)
    if versioned:
        aws("s3").put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    source = Recorder.HANDLER_HELPER + (
        "def lambda_handler(event, context):\n"
        "    record(event['Records'][0]['s3']['object'])\n")
    function = make_function(source, env=recorder.env)
    aws("lambda").add_permission(FunctionName=function, StatementId="s3", Action="lambda:InvokeFunction",
                                 Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{bucket}")
    aws("s3").put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{"LambdaFunctionArn": function, "Events": ["s3:ObjectCreated:*"]}]})
    return bucket


def test_s3_event_of_a_versioned_bucket_names_the_object_version(aws, make_function, recorder):
    bucket = _bucket_notifying_a_recorder(aws, make_function, recorder, versioned=True)
    version = aws("s3").put_object(Bucket=bucket, Key="uploads/c-1/a.png", Body=b"x")["VersionId"]
    [obj] = recorder.wait_for(lambda seen: len(seen) >= 1)
    assert obj["versionId"] == version
    assert obj["sequencer"]


def test_s3_event_key_keeps_slashes_and_encodes_spaces(aws, make_function, recorder):
    bucket = _bucket_notifying_a_recorder(aws, make_function, recorder)
    aws("s3").put_object(Bucket=bucket, Key="uploads/c-1/my thumb.png", Body=b"x")
    assert [obj["key"] for obj in recorder.wait_for(lambda seen: len(seen) >= 1)] == ["uploads/c-1/my+thumb.png"]


def _log_group_with(aws, *messages: dict) -> tuple[str, int]:
    logs = aws("logs")
    group = unique("/insights/")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now_ms = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName="s",
                        logEvents=[{"timestamp": now_ms, "message": json.dumps(m)} for m in messages])
    return group, now_ms // 1000


def test_logs_insights_query_filters_and_aggregates(aws):
    group, now_s = _log_group_with(aws, {"level": "ERROR", "service": "a"}, {"level": "INFO", "service": "a"},
                                   {"level": "ERROR", "service": "b"})
    logs = aws("logs")
    query_id = logs.start_query(logGroupNames=[group], startTime=now_s - 60, endTime=now_s + 60,
                                queryString='filter level = "ERROR" | stats count(*) as errors by service '
                                            "| sort service asc")["queryId"]
    result = logs.get_query_results(queryId=query_id)
    assert result["status"] == "Complete"
    assert result["results"] == [[{"field": "service", "value": "a"}, {"field": "errors", "value": "1"}],
                                 [{"field": "service", "value": "b"}, {"field": "errors", "value": "1"}]]


def test_logs_insights_query_it_cannot_run_is_malformed(aws):
    group, now_s = _log_group_with(aws, {"level": "INFO"})
    with pytest.raises(ClientError) as caught:
        aws("logs").start_query(logGroupNames=[group], startTime=now_s - 60, endTime=now_s + 60,
                                queryString='parse @message "* *" as a, b')
    assert caught.value.response["Error"]["Code"] == "MalformedQueryException"


def test_scalable_target_tags_are_kept_and_listed(aws):
    autoscaling = aws("application-autoscaling")
    table = unique("scaled")
    aws("dynamodb").create_table(TableName=table, BillingMode="PROVISIONED",
                                 ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
                                 KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                                 AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
    arn = autoscaling.register_scalable_target(
        ServiceNamespace="dynamodb", ResourceId=f"table/{table}", ScalableDimension="dynamodb:table:ReadCapacityUnits",
        MinCapacity=1, MaxCapacity=5, Tags={"Owner": "data"})["ScalableTargetARN"]
    autoscaling.tag_resource(ResourceARN=arn, Tags={"Env": "dev"})
    autoscaling.untag_resource(ResourceARN=arn, TagKeys=["Owner"])
    assert autoscaling.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"Env": "dev"}
