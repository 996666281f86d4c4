"""Event source mapping delivery with Lambda's semantics: Kinesis, DynamoDB streams, SQS."""

from __future__ import annotations

import base64
import functools
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tapharness.sandbox.clients import InvokeOutcome
from tapharness.sandbox.pollers import failed_item_ids

from .helpers import Recorder, unique, wait_until

# Functions started and waited on for seconds: handed out first (conftest.py).
pytestmark = pytest.mark.slow

KINESIS_HANDLER = Recorder.HANDLER_HELPER + """
import base64
def lambda_handler(event, context):
    items = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in event["Records"]]
    record({"ids": [i["id"] for i in items], "state": event.get("state"),
            "final": event.get("isFinalInvokeForWindow"), "window": event.get("window")})
    mode = os.environ.get("MODE")
    if mode == "raise" and any(i.get("poison") for i in items):
        raise RuntimeError("poison record")
    if mode == "partial":
        return {"batchItemFailures": [{"itemIdentifier": r["kinesis"]["sequenceNumber"]}
                                      for r, i in zip(event["Records"], items) if i.get("poison")]}
    if mode == "tumbling":
        return {"state": {"count": (event.get("state") or {}).get("count", 0) + len(items)}}
    return {}
"""

DYNAMODB_HANDLER = Recorder.HANDLER_HELPER + """
def lambda_handler(event, context):
    record({"ids": [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]],
            "events": [r["eventName"] for r in event["Records"]],
            "images": [r["dynamodb"].get("NewImage") for r in event["Records"]]})
    return {}
"""

SQS_HANDLER = Recorder.HANDLER_HELPER + """
def lambda_handler(event, context):
    bodies = [json.loads(r["body"]) for r in event["Records"]]
    record({"ids": [b["id"] for b in bodies]})
    mode = os.environ.get("MODE")
    if mode == "raise":
        raise RuntimeError("failing the whole batch")
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]}
                                  for r, b in zip(event["Records"], bodies) if b.get("poison")]}
"""


@pytest.fixture
def mapping(aws: Callable[[str], Any]) -> Iterator[Callable[..., str]]:
    """mapping(function_arn, source_arn, **settings) -> UUID; every mapping is deleted afterwards."""
    created: list[str] = []

    def create(function_arn: str, source_arn: str, **settings: Any) -> str:
        if source_arn.split(":")[2] != "sqs":
            settings.setdefault("StartingPosition", "TRIM_HORIZON")
        esm = aws("lambda").create_event_source_mapping(EventSourceArn=source_arn, FunctionName=function_arn,
                                                        **settings)
        created.append(esm["UUID"])
        return esm["UUID"]

    yield create
    for esm_uuid in created:
        aws("lambda").delete_event_source_mapping(UUID=esm_uuid)


def kinesis_stream(aws: Callable[[str], Any], records: list[dict[str, Any]]) -> str:
    name = unique("stream")
    aws("kinesis").create_stream(StreamName=name, ShardCount=1)
    for item in records:
        aws("kinesis").put_record(StreamName=name, Data=json.dumps(item).encode(), PartitionKey="user-1")
    return aws("kinesis").describe_stream(StreamName=name)["StreamDescription"]["StreamARN"]


def sqs_queue(aws: Callable[[str], Any], **attributes: str) -> tuple[str, str]:
    url = aws("sqs").create_queue(QueueName=unique("queue"), Attributes=attributes)["QueueUrl"]
    arn = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def mapping_reads(sandbox: Any, esm_uuid: str) -> int:
    """The reads the mapping's shard pollers made so far (``/_sandbox/pollers``)."""
    return sum(p["reads"] for p in sandbox.control("GET", "pollers") if p["uuid"] == esm_uuid)


def ids_of(seen: list[dict[str, Any]]) -> list[list[Any]]:
    return [entry["ids"] for entry in seen]


def test_kinesis_batches_respect_batch_size(aws, make_function, mapping, recorder):
    stream = kinesis_stream(aws, [{"id": i} for i in range(5)])
    mapping(make_function(KINESIS_HANDLER, env=recorder.env), stream, BatchSize=2)
    seen = recorder.wait_for(lambda s: sum(len(e["ids"]) for e in s) >= 5)
    assert ids_of(seen) == [[0, 1], [2, 3], [4]]


def test_batching_window_gathers_records_put_one_by_one_into_one_invocation(aws, make_function, mapping, recorder):
    stream = kinesis_stream(aws, [])
    mapping(make_function(KINESIS_HANDLER, env=recorder.env), stream, BatchSize=10,
            MaximumBatchingWindowInSeconds=2)
    for i in range(3):
        aws("kinesis").put_record(StreamARN=stream, Data=json.dumps({"id": i}).encode(), PartitionKey="user-1")
    seen = recorder.wait_for(lambda s: sum(len(e["ids"]) for e in s) >= 3)
    assert ids_of(seen) == [[0, 1, 2]]


def test_an_idle_shard_is_read_at_lambdas_base_rate_and_still_delivers_the_next_put(
        aws, sandbox, make_function, mapping, recorder):
    stream = kinesis_stream(aws, [])
    uuid = mapping(make_function(KINESIS_HANDLER, env=recorder.env), stream, BatchSize=10)

    reads = functools.partial(mapping_reads, sandbox, uuid)
    wait_until(lambda: reads() > 0, timeout=20, what="the mapping's first read")
    before = reads()
    time.sleep(3)
    idle_reads = reads() - before
    assert idle_reads <= 4, f"{idle_reads} reads of an idle shard in 3 s: Lambda's base rate is once per second"
    aws("kinesis").put_record(StreamARN=stream, Data=json.dumps({"id": 7}).encode(), PartitionKey="user-1")
    assert ids_of(recorder.wait_for(lambda s: len(s) >= 1)) == [[7]]


def test_a_shard_written_continuously_is_read_at_the_base_rate_and_its_records_gathered(
        aws, sandbox, make_function, mapping, recorder):
    stream = kinesis_stream(aws, [])
    uuid = mapping(make_function(KINESIS_HANDLER, env=recorder.env), stream, BatchSize=100)

    reads = functools.partial(mapping_reads, sandbox, uuid)
    wait_until(lambda: reads() > 0, timeout=20, what="the mapping's first read")
    before, started = reads(), time.monotonic()
    for i in range(30):  # about 3 s of puts, ten a second
        aws("kinesis").put_record(StreamARN=stream, Data=json.dumps({"id": i}).encode(), PartitionKey="user-1")
        time.sleep(0.1)
    busy_reads, seconds = reads() - before, time.monotonic() - started
    seen = recorder.wait_for(lambda s: sum(len(e["ids"]) for e in s) >= 30)
    assert sorted(i for ids in ids_of(seen) for i in ids) == list(range(30))
    bound = int(seconds) + 3  # once a second, plus the read a first put wakes and the one under way
    assert busy_reads <= bound, (f"{busy_reads} reads in {seconds:.1f} s of a shard that caught up after each: Lambda "
                                 "reads at the base rate of once per second (and a shard serves five reads a second)")
    assert len(seen) <= bound, f"30 records a put at a time in {len(seen)} invocations: each read's records go as one"


def test_two_mappings_on_one_stream_each_receive_every_record(aws, make_function, mapping, recorder):
    other = Recorder(aws("sqs"), aws("sqs").create_queue(QueueName=unique("record"))["QueueUrl"])
    stream = kinesis_stream(aws, [{"id": i} for i in range(3)])
    mapping(make_function(KINESIS_HANDLER, env=recorder.env), stream, BatchSize=10)
    mapping(make_function(KINESIS_HANDLER, env=other.env), stream, BatchSize=10)
    first = recorder.wait_for(lambda s: sum(len(e["ids"]) for e in s) >= 3)
    second = other.wait_for(lambda s: sum(len(e["ids"]) for e in s) >= 3)
    assert ids_of(first) == ids_of(second) == [[0, 1, 2]]


def test_kinesis_filter_criteria_delivers_only_matching_records(aws, make_function, mapping, recorder):
    records = [{"id": 0, "type": "watch"}, {"id": 1, "type": "complete"}, {"id": 2, "type": "pause"},
               {"id": 3, "type": "complete"}]
    stream = kinesis_stream(aws, records)
    pattern = json.dumps({"data": {"type": ["complete"]}})
    mapping(make_function(KINESIS_HANDLER, env=recorder.env), stream, BatchSize=10,
            FilterCriteria={"Filters": [{"Pattern": pattern}]})
    seen = recorder.wait_for(lambda s: sum(len(e["ids"]) for e in s) >= 2)
    assert ids_of(seen) == [[1, 3]]


def test_partial_batch_failure_retries_from_the_lowest_failed_record(aws, make_function, mapping, recorder):
    stream = kinesis_stream(aws, [{"id": 0}, {"id": 1, "poison": True}, {"id": 2}, {"id": 3}])
    mapping(make_function(KINESIS_HANDLER, env={**recorder.env, "MODE": "partial"}), stream, BatchSize=10,
            MaximumRetryAttempts=1, FunctionResponseTypes=["ReportBatchItemFailures"])
    seen = recorder.wait_for(lambda s: len(s) >= 2)
    assert ids_of(seen)[:2] == [[0, 1, 2, 3], [1, 2, 3]]


def test_bisect_on_error_isolates_the_poison_record(aws, make_function, mapping, recorder):
    stream = kinesis_stream(aws, [{"id": 0}, {"id": 1}, {"id": 2, "poison": True}, {"id": 3}])
    mapping(make_function(KINESIS_HANDLER, env={**recorder.env, "MODE": "raise"}), stream, BatchSize=10,
            BisectBatchOnFunctionError=True, MaximumRetryAttempts=0)
    seen = recorder.wait_for(lambda s: len(s) >= 5)
    assert ids_of(seen) == [[0, 1, 2, 3], [0, 1], [2, 3], [2], [3]]


def test_exhausted_retries_send_lambda_failure_record_to_on_failure_queue(aws, make_function, mapping, recorder):
    stream = kinesis_stream(aws, [{"id": 0}, {"id": 1, "poison": True}, {"id": 2}])
    failures_url, failures_arn = sqs_queue(aws)
    function = make_function(KINESIS_HANDLER, env={**recorder.env, "MODE": "raise"})
    mapping(function, stream, BatchSize=10, BisectBatchOnFunctionError=True, MaximumRetryAttempts=0,
            DestinationConfig={"OnFailure": {"Destination": failures_arn}})
    failures = Recorder(aws("sqs"), failures_url).wait_for(lambda s: len(s) >= 1, what="failure record")
    record = failures[0]
    iterator = aws("kinesis").get_shard_iterator(StreamARN=stream, ShardId="shardId-000000000000",
                                                 ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    sequence = aws("kinesis").get_records(ShardIterator=iterator, StreamARN=stream)["Records"][1]["SequenceNumber"]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["functionArn"] == function
    assert record["KinesisBatchInfo"]["startSequenceNumber"] == sequence
    assert record["KinesisBatchInfo"]["batchSize"] == 1
    assert record["KinesisBatchInfo"]["streamArn"] == stream


def test_tumbling_window_carries_state_and_ends_with_a_final_invocation(aws, make_function, mapping, recorder):
    stream = kinesis_stream(aws, [{"id": i} for i in range(3)])
    mapping(make_function(KINESIS_HANDLER, env={**recorder.env, "MODE": "tumbling"}), stream, BatchSize=1,
            TumblingWindowInSeconds=2)
    seen = recorder.wait_for(
        lambda s: sum((e["state"] or {}).get("count", 0) for e in s if e["final"]) >= 3, timeout=15)
    finals = [e for e in seen if e["final"]]
    assert all(e["ids"] == [] for e in finals)
    assert sum(e["state"]["count"] for e in finals) == 3
    assert seen[0]["state"] == {} and seen[0]["window"]["start"] < seen[0]["window"]["end"]


def stream_table(aws) -> tuple[str, str]:
    """A table with a NEW_AND_OLD_IMAGES stream: (table name, stream ARN)."""
    table = unique("table")
    description = aws("dynamodb").create_table(
        TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    return table, description["TableDescription"]["LatestStreamArn"]


def test_dynamodb_stream_delivers_new_images_in_batches(aws, make_function, mapping, recorder):
    table, stream_arn = stream_table(aws)
    for key in ("a", "b", "c"):
        aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": key}, "n": {"N": "1"}})
    mapping(make_function(DYNAMODB_HANDLER, env=recorder.env), stream_arn,
            BatchSize=2)
    seen = recorder.wait_for(lambda s: sum(len(e["ids"]) for e in s) >= 3)
    assert ids_of(seen) == [["a", "b"], ["c"]]
    assert seen[0]["events"] == ["INSERT", "INSERT"]
    assert seen[0]["images"][0] == {"pk": {"S": "a"}, "n": {"N": "1"}}


def test_dynamodb_stream_keeps_delivering_after_a_cancelled_transaction(aws, make_function, mapping, recorder):
    table, stream_arn = stream_table(aws)
    mapping(make_function(DYNAMODB_HANDLER, env=recorder.env), stream_arn,
            BatchSize=10)
    aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": "before"}})
    recorder.wait_for(lambda s: ["before"] in ids_of(s))
    with pytest.raises(ClientError, match="TransactionCanceled"):
        aws("dynamodb").transact_write_items(TransactItems=[{"Put": {
            "TableName": table, "Item": {"pk": {"S": "before"}}, "ConditionExpression": "attribute_not_exists(pk)"}}])
    aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": "after"}})
    seen = recorder.wait_for(lambda s: ["after"] in ids_of(s))
    assert ids_of(seen) == [["before"], ["after"]]


def test_sqs_partial_failure_redelivers_only_the_failed_message(aws, make_function, mapping, recorder):
    url, arn = sqs_queue(aws, VisibilityTimeout="1")
    for item in ({"id": 0}, {"id": 1, "poison": True}, {"id": 2}):
        aws("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(item))
    mapping(make_function(SQS_HANDLER, env=recorder.env), arn, BatchSize=10,
            FunctionResponseTypes=["ReportBatchItemFailures"])
    seen = recorder.wait_for(lambda s: len(s) >= 2)
    assert sorted(seen[0]["ids"]) == [0, 1, 2]
    assert seen[1]["ids"] == [1]


def test_sqs_failing_message_moves_to_the_dlq_after_max_receive_count(aws, make_function, mapping, recorder):
    dlq_url, dlq_arn = sqs_queue(aws)
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    url, arn = sqs_queue(aws, VisibilityTimeout="1", RedrivePolicy=redrive)
    aws("sqs").send_message(QueueUrl=url, MessageBody=json.dumps({"id": "doomed"}))
    mapping(make_function(SQS_HANDLER, env={**recorder.env, "MODE": "raise"}), arn, BatchSize=10)
    dead = Recorder(aws("sqs"), dlq_url).wait_for(lambda s: len(s) >= 1, timeout=20, what="message in the DLQ")
    assert dead == [{"id": "doomed"}]


def test_sqs_messages_that_match_no_filter_are_deleted_undelivered(aws, make_function, mapping, recorder):
    url, arn = sqs_queue(aws)
    for item in ({"id": 0, "kind": "skip"}, {"id": 1, "kind": "keep"}):
        aws("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(item))
    mapping(make_function(SQS_HANDLER, env=recorder.env), arn, BatchSize=10,
            FilterCriteria={"Filters": [{"Pattern": json.dumps({"body": {"kind": ["keep"]}})}]})
    seen = recorder.wait_for(lambda s: len(s) >= 1)

    def drained() -> bool:
        counts = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return counts == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}

    wait_until(drained, what="the queue to be empty")
    assert ids_of(seen) == [[1]]


def test_batch_item_failure_unknown_to_the_batch_fails_the_whole_batch():
    outcome = InvokeOutcome(False, {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}, 200)
    assert failed_item_ids(outcome, ["1", "2"]) is None


def test_empty_batch_item_failures_means_success():
    assert failed_item_ids(InvokeOutcome(False, {"batchItemFailures": []}, 200), ["1"]) == []


TTL_HANDLER = Recorder.HANDLER_HELPER + """
def lambda_handler(event, context):
    record({"removed": [[r["dynamodb"]["Keys"]["pk"]["S"], r.get("userIdentity")] for r in event["Records"]
                        if r["eventName"] == "REMOVE"]})
    return {}
"""


def test_a_ttl_deletion_reaches_the_function_as_the_services(aws, make_function, mapping, recorder):
    """The Lambda guide's filter for TTL deletions matches userIdentity {"type": "Service",
    "principalId": "dynamodb.amazonaws.com"} in the function's event."""
    table, stream_arn = stream_table(aws)
    aws("dynamodb").update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True,
                                                                                  "AttributeName": "expires"})
    mapping(make_function(TTL_HANDLER, env=recorder.env), stream_arn, BatchSize=10)
    aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": "old"}, "expires": {"N": str(int(time.time()) - 60)}})
    seen = recorder.wait_for(lambda s: any(e["removed"] for e in s))
    assert [r for e in seen for r in e["removed"]] == [
        ["old", {"type": "Service", "principalId": "dynamodb.amazonaws.com"}]]


def _given_up(aws: Callable[[str], Any], bucket: str, esm_uuid: str) -> list[dict[str, Any]]:
    """The failure records an S3 on-failure destination holds for a mapping."""
    def listed() -> list[str]:
        return [o["Key"] for o in aws("s3").list_objects_v2(Bucket=bucket, Prefix=f"aws/lambda/{esm_uuid}/")
                .get("Contents", [])]
    keys = wait_until(listed, what="a failure record in the bucket")
    return [json.loads(aws("s3").get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys]


def test_an_s3_on_failure_destination_keeps_the_given_up_records_with_their_data(aws, make_function, mapping,
                                                                                 recorder):
    stream = kinesis_stream(aws, [{"id": 0}, {"id": 1, "poison": True}, {"id": 2}])
    bucket = unique("given-up")
    aws("s3").create_bucket(Bucket=bucket)
    function = make_function(KINESIS_HANDLER, env={**recorder.env, "MODE": "raise"})
    esm_uuid = mapping(function, stream, BatchSize=10, BisectBatchOnFunctionError=True, MaximumRetryAttempts=0,
                       DestinationConfig={"OnFailure": {"Destination": f"arn:aws:s3:::{bucket}"}})
    [record] = _given_up(aws, bucket, esm_uuid)
    key = aws("s3").list_objects_v2(Bucket=bucket)["Contents"][0]["Key"]
    assert re.fullmatch(rf"aws/lambda/{esm_uuid}/shardId-000000000000/\d{{4}}/\d{{2}}/\d{{2}}/"
                        r"\d{4}-\d{2}-\d{2}T\d{2}\.\d{2}\.\d{2}-[0-9a-f-]{36}", key), key
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    payload = json.loads(record["payload"])
    assert [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in payload["Records"]] == [
        {"id": 1, "poison": True}]


def test_records_a_throttled_function_cannot_take_within_their_maximum_age_are_given_up(aws, make_function,
                                                                                        mapping, recorder, sandbox):
    stream = kinesis_stream(aws, [{"id": 5}])
    bucket = unique("given-up")
    aws("s3").create_bucket(Bucket=bucket)
    function = make_function(KINESIS_HANDLER, env=recorder.env)
    aws("lambda").put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=0)
    esm_uuid = mapping(function, stream, BatchSize=10, MaximumRetryAttempts=-1, MaximumRecordAgeInSeconds=60,
                       DestinationConfig={"OnFailure": {"Destination": f"arn:aws:s3:::{bucket}"}})
    time.sleep(1)  # throttled meanwhile: the batch waits, no retry is used up
    sandbox.control("POST", "clock", {"advance_s": 61})  # the record is now older than the mapping allows
    [record] = _given_up(aws, bucket, esm_uuid)
    assert record["requestContext"]["condition"] == "RecordAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert [json.loads(base64.b64decode(r["kinesis"]["data"]))["id"]
            for r in json.loads(record["payload"])["Records"]] == [5]
    aws("lambda").delete_function_concurrency(FunctionName=function)
    assert recorder.wait_for(lambda s: True, timeout=1.0) == []


def test_an_sqs_mapping_to_a_throttled_function_keeps_the_message_until_it_may_run(aws, make_function, mapping,
                                                                                 recorder):
    """A batch Lambda's reserved concurrency refuses goes back to the queue when its visibility
    timeout ends, and is delivered once the function may run."""
    url, arn = sqs_queue(aws, VisibilityTimeout="1")
    function = make_function(SQS_HANDLER, env=recorder.env)
    aws("lambda").put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=0)
    aws("sqs").send_message(QueueUrl=url, MessageBody=json.dumps({"id": 7}))
    mapping(function, arn, BatchSize=10)
    time.sleep(3)
    assert recorder.wait_for(lambda s: True, timeout=0.1) == []
    aws("lambda").delete_function_concurrency(FunctionName=function)
    assert ids_of(recorder.wait_for(lambda s: bool(s))) == [[7]]
