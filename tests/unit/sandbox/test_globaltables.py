"""Global tables: replicas created by UpdateTable, asynchronous replication both ways, the lag metric."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from .helpers import unique


def _client(sandbox: Any, region: str) -> Any:
    return boto3.client("dynamodb", region_name=region, endpoint_url=sandbox.endpoint_url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _control(sandbox: Any, **settings: Any) -> dict[str, Any]:
    request = urllib.request.Request(f"{sandbox.gateway_url}/_sandbox/replication", method="POST",
                                     data=json.dumps(settings).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture
def table(sandbox: Any, aws: Callable[[str], Any]) -> Iterator[str]:
    name = unique("global")
    primary = _client(sandbox, "us-east-1")
    primary.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    primary.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": "eu-west-1"}}])
    _control(sandbox, delay_s=0.2)
    yield name
    _control(sandbox, region="eu-west-1", paused=False, delay_s=0.5)


def test_a_replica_is_listed_active_in_both_regions(sandbox: Any, table: str) -> None:
    primary = _client(sandbox, "us-east-1").describe_table(TableName=table)["Table"]
    replica = _client(sandbox, "eu-west-1").describe_table(TableName=table)["Table"]
    assert primary["Replicas"] == [{"RegionName": "eu-west-1", "ReplicaStatus": "ACTIVE"}]
    assert replica["Replicas"] == [{"RegionName": "us-east-1", "ReplicaStatus": "ACTIVE"}]
    assert replica["KeySchema"] == primary["KeySchema"]


def test_a_write_reaches_the_replica_asynchronously(sandbox: Any, table: str) -> None:
    _client(sandbox, "us-east-1").put_item(TableName=table, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    replica = _client(sandbox, "eu-west-1")
    found = _eventually(lambda: replica.get_item(TableName=table, Key={"pk": {"S": "a"}}).get("Item"))
    assert found == {"pk": {"S": "a"}, "n": {"N": "1"}}


def test_a_write_in_the_replica_region_reaches_the_primary_and_deletes_replicate(sandbox: Any, table: str) -> None:
    _client(sandbox, "eu-west-1").put_item(TableName=table, Item={"pk": {"S": "b"}})
    primary = _client(sandbox, "us-east-1")
    assert _eventually(lambda: primary.get_item(TableName=table, Key={"pk": {"S": "b"}}).get("Item"))
    primary.delete_item(TableName=table, Key={"pk": {"S": "b"}})
    replica = _client(sandbox, "eu-west-1")
    assert _eventually(lambda: "Item" not in replica.get_item(TableName=table, Key={"pk": {"S": "b"}}))


def test_a_paused_region_falls_behind_and_catches_up_when_resumed(sandbox: Any, table: str) -> None:
    _control(sandbox, region="eu-west-1", paused=True)
    _client(sandbox, "us-east-1").put_item(TableName=table, Item={"pk": {"S": "c"}})
    replica = _client(sandbox, "eu-west-1")
    time.sleep(0.6)
    assert "Item" not in replica.get_item(TableName=table, Key={"pk": {"S": "c"}})
    _control(sandbox, region="eu-west-1", paused=False)
    assert _eventually(lambda: replica.get_item(TableName=table, Key={"pk": {"S": "c"}}).get("Item"))


def test_conflicting_writes_made_apart_converge_on_the_last_writer_in_every_region(sandbox: Any, table: str) -> None:
    primary, replica = _client(sandbox, "us-east-1"), _client(sandbox, "eu-west-1")
    _control(sandbox, region="eu-west-1", paused=True)  # us-east-1's write waits; eu-west-1's flows at once
    primary.put_item(TableName=table, Item={"pk": {"S": "conflict"}, "winner": {"S": "us-east-1 (earlier)"}})
    time.sleep(0.05)
    replica.put_item(TableName=table, Item={"pk": {"S": "conflict"}, "winner": {"S": "eu-west-1 (later)"}})
    assert _eventually(lambda: primary.get_item(TableName=table, Key={"pk": {"S": "conflict"}})["Item"]["winner"]["S"]
                       == "eu-west-1 (later)")
    _control(sandbox, region="eu-west-1", paused=False)  # the older write arrives last, and loses
    assert _eventually(lambda: _control(sandbox)["held"] == 0 and _control(sandbox)["pending"] == 0)
    time.sleep(0.5)
    for client in (primary, replica):
        assert client.get_item(TableName=table, Key={"pk": {"S": "conflict"}})["Item"]["winner"]["S"] == "eu-west-1 (later)"


def test_a_delete_is_a_write_that_wins_or_loses_by_its_time_too(sandbox: Any, table: str) -> None:
    primary, replica = _client(sandbox, "us-east-1"), _client(sandbox, "eu-west-1")
    primary.put_item(TableName=table, Item={"pk": {"S": "gone"}})
    assert _eventually(lambda: replica.get_item(TableName=table, Key={"pk": {"S": "gone"}}).get("Item"))
    _control(sandbox, region="eu-west-1", paused=True)
    primary.put_item(TableName=table, Item={"pk": {"S": "gone"}, "note": {"S": "updated first"}})
    time.sleep(0.05)
    replica.delete_item(TableName=table, Key={"pk": {"S": "gone"}})  # the last write: a delete
    _control(sandbox, region="eu-west-1", paused=False)
    assert _eventually(lambda: "Item" not in primary.get_item(TableName=table, Key={"pk": {"S": "gone"}}))
    time.sleep(0.5)
    assert "Item" not in replica.get_item(TableName=table, Key={"pk": {"S": "gone"}})


def test_replication_latency_is_published_for_the_receiving_region(sandbox: Any, table: str) -> None:
    _client(sandbox, "us-east-1").put_item(TableName=table, Item={"pk": {"S": "d"}})
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=sandbox.endpoint_url,
                              aws_access_key_id="testing", aws_secret_access_key="testing")

    def metric() -> list[dict[str, Any]]:
        return cloudwatch.list_metrics(Namespace="AWS/DynamoDB", MetricName="ReplicationLatency",
                                       Dimensions=[{"Name": "TableName", "Value": table}])["Metrics"]

    [found] = _eventually(metric)
    assert {"Name": "ReceivingRegion", "Value": "eu-west-1"} in found["Dimensions"]


def test_replication_latency_is_stamped_on_the_sandboxs_clock(sandbox: Any, table: str) -> None:
    sandbox.control("POST", "clock", {"advance_s": 600})  # an alarm looking ten minutes on sees this write
    now = datetime.fromtimestamp(sandbox.control("GET", "clock")["now"], UTC)
    _client(sandbox, "us-east-1").put_item(TableName=table, Item={"pk": {"S": "e"}})
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=sandbox.endpoint_url,
                              aws_access_key_id="testing", aws_secret_access_key="testing")

    def this_hour() -> list[dict[str, Any]]:
        return cloudwatch.get_metric_statistics(
            Namespace="AWS/DynamoDB", MetricName="ReplicationLatency", Statistics=["SampleCount"], Period=60,
            StartTime=now - timedelta(minutes=1), EndTime=now + timedelta(minutes=5),
            Dimensions=[{"Name": "TableName", "Value": table}, {"Name": "ReceivingRegion", "Value": "eu-west-1"}],
        )["Datapoints"]

    assert _eventually(this_hour), "no ReplicationLatency datapoint at the sandbox's time"


def test_deleting_the_replica_drops_it_from_the_table(sandbox: Any, table: str) -> None:
    primary = _client(sandbox, "us-east-1")
    primary.update_table(TableName=table, ReplicaUpdates=[{"Delete": {"RegionName": "eu-west-1"}}])
    assert "Replicas" not in primary.describe_table(TableName=table)["Table"]
    with pytest.raises(primary.exceptions.ResourceNotFoundException):
        _client(sandbox, "eu-west-1").describe_table(TableName=table)


def _encrypted_table(sandbox: Any, replica: dict[str, Any]) -> str:
    name = unique("keyed")
    _client(sandbox, "us-east-1").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        SSESpecification={"Enabled": True, "SSEType": "KMS"})
    _client(sandbox, "us-east-1").update_table(TableName=name, ReplicaUpdates=[
        {"Create": {"RegionName": "eu-west-1", **replica}}])
    return name


def test_a_replica_of_a_table_under_the_aws_managed_key_uses_its_own_regions_key(sandbox: Any) -> None:
    name = _encrypted_table(sandbox, {})
    key = _client(sandbox, "eu-west-1").describe_table(TableName=name)["Table"]["SSEDescription"]["KMSMasterKeyArn"]
    kms = boto3.client("kms", region_name="eu-west-1", endpoint_url=sandbox.endpoint_url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    aliases = [a["AliasName"] for a in kms.list_aliases(KeyId=key.rsplit("/", 1)[-1])["Aliases"]]
    assert key.split(":")[3] == "eu-west-1" and aliases == ["alias/aws/dynamodb"], (key, aliases)


def test_a_replica_created_with_a_key_of_its_region_is_encrypted_with_it(sandbox: Any) -> None:
    kms = boto3.client("kms", region_name="eu-west-1", endpoint_url=sandbox.endpoint_url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    name = _encrypted_table(sandbox, {"KMSMasterKeyId": key})
    described = _client(sandbox, "eu-west-1").describe_table(TableName=name)["Table"]["SSEDescription"]
    assert described["KMSMasterKeyArn"].rsplit("/", 1)[-1] == key.rsplit("/", 1)[-1]
