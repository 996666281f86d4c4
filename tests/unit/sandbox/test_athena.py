"""The sandbox's Athena: a CTAS runs (DuckDB over the sandbox's S3), reads only the partitions its
predicates select, writes Parquet partitions and registers them, and fails as Athena fails."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest
from botocore.exceptions import ClientError

from .helpers import unique

COLUMNS = [{"Name": "event_id", "Type": "string"}, {"Name": "content_id", "Type": "string"},
           {"Name": "position_seconds", "Type": "double"}, {"Name": "received_at", "Type": "string"}]


def lines(*rows: dict[str, Any]) -> bytes:
    return b"\n".join(json.dumps(row).encode() for row in rows) + b"\n"


@pytest.fixture
def lake(aws: Any) -> dict[str, Any]:
    """A bucket with raw JSON lines on two days under year=/month=/day=, a Glue table over them with
    partition projection, and a workgroup."""
    bucket, database, workgroup = unique("lake"), unique("db").replace("-", "_"), unique("wg")
    aws("s3").create_bucket(Bucket=bucket)
    day_one = lines({"event_id": "e1", "content_id": "c1", "position_seconds": 10, "received_at": "2026-12-01T10:00:00Z"},
                    {"event_id": "e1", "content_id": "c1", "position_seconds": 10, "received_at": "2026-12-01T10:00:05Z"},
                    {"event_id": "e2", "content_id": "c2", "position_seconds": 20, "received_at": "2026-12-01T11:00:00Z"})
    day_two = lines({"event_id": "e3", "content_id": "c1", "position_seconds": 30, "received_at": "2026-12-02T09:00:00Z"})
    aws("s3").put_object(Bucket=bucket, Key="raw/year=2026/month=12/day=01/a.json", Body=day_one)
    aws("s3").put_object(Bucket=bucket, Key="raw/year=2026/month=12/day=02/a.json", Body=day_two)
    aws("glue").create_database(DatabaseInput={"Name": database})
    aws("glue").create_table(DatabaseName=database, TableInput={
        "Name": "raw", "TableType": "EXTERNAL_TABLE",
        "PartitionKeys": [{"Name": k, "Type": "string"} for k in ("year", "month", "day")],
        "Parameters": {"projection.enabled": "true",
                       "projection.year.type": "integer", "projection.year.range": "2024,2099", "projection.year.digits": "4",
                       "projection.month.type": "integer", "projection.month.range": "1,12", "projection.month.digits": "2",
                       "projection.day.type": "integer", "projection.day.range": "1,31", "projection.day.digits": "2",
                       "storage.location.template": f"s3://{bucket}/raw/year=${{year}}/month=${{month}}/day=${{day}}/"},
        "StorageDescriptor": {"Location": f"s3://{bucket}/raw/", "Columns": COLUMNS,
                              "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"}}})
    aws("athena").create_work_group(Name=workgroup, Configuration={
        "ResultConfiguration": {"OutputLocation": f"s3://{bucket}/results/"}})
    return {"bucket": bucket, "database": database, "workgroup": workgroup, "day_one_bytes": len(day_one)}


def ctas(lake: dict[str, Any], table: str = "archive_1201", day: str = "01") -> str:
    return f"""CREATE TABLE "{lake['database']}"."{table}"
WITH (format = 'PARQUET', write_compression = 'SNAPPY', external_location = 's3://{lake['bucket']}/archive/{table}/',
      partitioned_by = ARRAY['content_id'])
AS SELECT event_id, position_seconds, received_at, content_id
FROM (SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY received_at) AS copy
      FROM "{lake['database']}"."raw" WHERE year = '2026' AND month = '12' AND day = '{day}')
WHERE copy = 1"""


def run(aws: Any, lake: dict[str, Any], query: str, token: str | None = None) -> dict[str, Any]:
    extra = {"ClientRequestToken": token} if token else {}
    query_id = aws("athena").start_query_execution(QueryString=query, WorkGroup=lake["workgroup"], **extra)[
        "QueryExecutionId"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        execution = aws("athena").get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        if execution["Status"]["State"] not in ("QUEUED", "RUNNING"):
            return execution
        time.sleep(0.1)
    raise AssertionError(f"query {query_id} still running after 30 s")


def archived_rows(aws: Any, bucket: str, prefix: str) -> list[tuple[Any, ...]]:
    rows = []
    for obj in aws("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        partition = obj["Key"][len(prefix):].split("/")[0]
        with tempfile.TemporaryDirectory() as work, duckdb.connect() as con:
            path = Path(work) / "part.parquet"
            path.write_bytes(aws("s3").get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            rows += [(*row, partition) for row in con.execute(
                "SELECT event_id, position_seconds FROM read_parquet(?)", [str(path)]).fetchall()]
    return sorted(rows)


def test_ctas_archives_one_day_deduplicated_into_parquet_partitions(aws: Any, lake: dict[str, Any]) -> None:
    execution = run(aws, lake, ctas(lake))
    assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
    assert archived_rows(aws, lake["bucket"], "archive/archive_1201/") == [
        ("e1", 10.0, "content_id=c1"), ("e2", 20.0, "content_id=c2")]


def test_ctas_scans_only_the_partition_its_predicates_select(aws: Any, lake: dict[str, Any]) -> None:
    execution = run(aws, lake, ctas(lake))
    assert execution["Statistics"]["DataScannedInBytes"] == lake["day_one_bytes"]


def test_ctas_registers_the_table_and_its_partitions_in_glue(aws: Any, lake: dict[str, Any]) -> None:
    run(aws, lake, ctas(lake))
    table = aws("glue").get_table(DatabaseName=lake["database"], Name="archive_1201")["Table"]
    partitions = aws("glue").get_partitions(DatabaseName=lake["database"], TableName="archive_1201")["Partitions"]
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == ["event_id", "position_seconds", "received_at"]
    assert sorted(p["Values"] for p in partitions) == [["c1"], ["c2"]]


def test_a_second_ctas_of_the_same_table_fails_as_on_athena(aws: Any, lake: dict[str, Any]) -> None:
    run(aws, lake, ctas(lake))
    again = run(aws, lake, ctas(lake))
    assert again["Status"]["State"] == "FAILED"
    assert "already exists" in again["Status"]["StateChangeReason"]


def test_a_repeated_request_token_gets_the_first_execution(aws: Any, lake: dict[str, Any]) -> None:
    token = str(uuid.uuid4())
    first = run(aws, lake, ctas(lake), token)
    second = run(aws, lake, ctas(lake), token)
    assert (second["QueryExecutionId"], second["Status"]["State"]) == (first["QueryExecutionId"], "SUCCEEDED")


def test_a_query_over_the_bytes_scanned_cutoff_fails(aws: Any, lake: dict[str, Any]) -> None:
    padding = {"event_id": "pad", "content_id": "c9", "position_seconds": 0, "received_at": "x" * 1000}
    aws("s3").put_object(Bucket=lake["bucket"], Key="raw/year=2026/month=12/day=01/big.json",
                         Body=lines(*[padding] * 10_000))
    aws("athena").update_work_group(WorkGroup=lake["workgroup"],
                                    ConfigurationUpdates={"BytesScannedCutoffPerQuery": 10_000_000})
    execution = run(aws, lake, ctas(lake))
    assert execution["Status"]["State"] == "FAILED"
    assert "bytes scanned limit" in execution["Status"]["StateChangeReason"]


def test_a_day_without_objects_archives_nothing_and_succeeds(aws: Any, lake: dict[str, Any]) -> None:
    execution = run(aws, lake, ctas(lake, "archive_1203", "03"))
    assert (execution["Status"]["State"], execution["Statistics"]["DataScannedInBytes"]) == ("SUCCEEDED", 0)
    assert archived_rows(aws, lake["bucket"], "archive/archive_1203/") == []


def test_a_statement_the_sandbox_does_not_run_fails_instead_of_pretending(aws: Any, lake: dict[str, Any]) -> None:
    execution = run(aws, lake, f"INSERT INTO \"{lake['database']}\".\"raw\" VALUES ('e9', 'c9', 1, 'x', '2026', '12', '01')")
    assert execution["Status"]["State"] == "FAILED"
    assert "NOT_SUPPORTED" in execution["Status"]["StateChangeReason"]


def test_a_ctas_over_objects_under_a_customer_key_needs_the_callers_kms_decrypt(aws: Any, sandbox: Any,
                                                                                lake: dict[str, Any]) -> None:
    """Athena reads S3 with the caller's credentials (a forward access session, aws:CalledVia athena),
    and S3 asks the caller for kms:Decrypt on the object's key."""
    from .test_iam_enforcement import as_role, trust

    key = aws("kms").create_key()["KeyMetadata"]["Arn"]
    aws("s3").put_object(Bucket=lake["bucket"], Key="raw/year=2026/month=12/day=02/a.json",
                         Body=lines({"event_id": "e3", "content_id": "c1", "position_seconds": 30,
                                     "received_at": "2026-12-02T09:00:00Z"}),
                         ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    everything = {"Effect": "Allow", "Action": ["athena:*", "glue:*", "s3:*"], "Resource": "*"}

    def ctas_as(*statements: dict[str, Any]) -> dict[str, Any]:
        name = unique("analyst")
        role_arn = aws("iam").create_role(RoleName=name, AssumeRolePolicyDocument=trust("lambda.amazonaws.com"))[
            "Role"]["Arn"]
        aws("iam").put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [everything, *statements]}))
        athena = as_role(aws, sandbox, role_arn, "athena")
        query_id = athena.start_query_execution(QueryString=ctas(lake, unique("archive").replace("-", "_"), "02"),
                                                WorkGroup=lake["workgroup"])["QueryExecutionId"]
        deadline = time.monotonic() + 30
        while (execution := athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"])[
                "Status"]["State"] in ("QUEUED", "RUNNING"):
            assert time.monotonic() < deadline, "the query did not end"
            time.sleep(0.1)
        return execution

    refused = ctas_as()
    assert refused["Status"]["State"] == "FAILED"
    assert "Permission denied on S3 path" in refused["Status"]["StateChangeReason"]
    through_athena = {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key,
                      "Condition": {"ForAnyValue:StringEquals": {"aws:CalledVia": ["athena.amazonaws.com"]}}}
    assert ctas_as(through_athena)["Status"]["State"] == "SUCCEEDED"


# --- SELECT -----------------------------------------------------------------------------------

def results(aws: Any, query_id: str, **page: Any) -> dict[str, Any]:
    return aws("athena").get_query_results(QueryExecutionId=query_id, **page)


def values(answer: dict[str, Any]) -> list[list[str | None]]:
    return [[cell.get("VarCharValue") for cell in row["Data"]] for row in answer["ResultSet"]["Rows"]]


def test_a_select_returns_its_rows_after_a_header_row_reading_only_its_partitions(
        aws: Any, lake: dict[str, Any]) -> None:
    execution = run(aws, lake, f"""SELECT content_id, count(DISTINCT event_id) AS views, max(position_seconds) AS furthest
FROM "{lake['database']}"."raw" WHERE year = '2026' AND month = '12' AND day = '01'
GROUP BY content_id ORDER BY content_id""")
    assert execution["Status"]["State"] == "SUCCEEDED"
    assert execution["Statistics"]["DataScannedInBytes"] == lake["day_one_bytes"]
    answer = results(aws, execution["QueryExecutionId"])
    assert values(answer) == [["content_id", "views", "furthest"], ["c1", "1", "10.0"], ["c2", "1", "20.0"]]
    assert [(c["Name"], c["Type"]) for c in answer["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]] == [
        ("content_id", "varchar"), ("views", "bigint"), ("furthest", "double")]


def test_a_selects_results_are_written_to_the_workgroups_location_as_athena_writes_them(
        aws: Any, lake: dict[str, Any]) -> None:
    execution = run(aws, lake, f"SELECT event_id, content_id FROM {lake['database']}.raw WHERE day = '02'")
    location = execution["ResultConfiguration"]["OutputLocation"]
    assert location == f"s3://{lake['bucket']}/results/{execution['QueryExecutionId']}.csv"
    body = aws("s3").get_object(Bucket=lake["bucket"], Key=location.split("/", 3)[3])["Body"].read().decode()
    assert body == '"event_id","content_id"\n"e3","c1"\n'


def test_a_select_names_tables_of_its_context_database_and_its_own_with_queries(aws: Any, lake: dict[str, Any]) -> None:
    query_id = aws("athena").start_query_execution(
        QueryString="WITH latest AS (SELECT event_id, max(received_at) AS at FROM raw GROUP BY event_id) "
                    "SELECT count(*) AS events FROM latest",
        WorkGroup=lake["workgroup"], QueryExecutionContext={"Database": lake["database"]})["QueryExecutionId"]
    deadline = time.monotonic() + 30
    while aws("athena").get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]["State"] in (
            "QUEUED", "RUNNING"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert values(results(aws, query_id)) == [["events"], ["3"]]


def test_results_come_a_page_at_a_time(aws: Any, lake: dict[str, Any]) -> None:
    execution = run(aws, lake, f"SELECT event_id FROM {lake['database']}.raw ORDER BY received_at")
    first = results(aws, execution["QueryExecutionId"], MaxResults=2)
    rest = results(aws, execution["QueryExecutionId"], MaxResults=2, NextToken=first["NextToken"])
    last = results(aws, execution["QueryExecutionId"], MaxResults=2, NextToken=rest["NextToken"])
    assert values(first) + values(rest) + values(last) == [["event_id"], ["e1"], ["e1"], ["e2"], ["e3"]]
    assert "NextToken" not in last


def test_a_query_without_a_result_location_is_refused_by_start_query_execution(aws: Any, lake: dict[str, Any]) -> None:
    bare = unique("bare")
    aws("athena").create_work_group(Name=bare, Configuration={})
    with pytest.raises(ClientError) as refused:
        aws("athena").start_query_execution(QueryString=f"SELECT 1 AS one FROM {lake['database']}.raw", WorkGroup=bare)
    assert refused.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "No output location provided" in refused.value.response["Error"]["Message"]


def test_an_or_of_partitions_reads_both_and_returns_every_row(aws: Any, lake: dict[str, Any]) -> None:
    execution = run(aws, lake, f"SELECT event_id FROM {lake['database']}.raw WHERE day = '01' OR day = '02' "
                               "ORDER BY event_id, received_at")
    assert values(results(aws, execution["QueryExecutionId"]))[1:] == [["e1"], ["e1"], ["e2"], ["e3"]]


def test_from_inside_a_function_or_a_literal_is_not_a_table(aws: Any, lake: dict[str, Any]) -> None:
    execution = run(aws, lake, f"SELECT 'taken from here' AS note, substring(event_id FROM 2) AS n "
                               f"FROM {lake['database']}.raw WHERE day = '02'")
    assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"].get("StateChangeReason")
    assert values(results(aws, execution["QueryExecutionId"]))[1:] == [["taken from here", "3"]]


def test_more_than_a_thousand_results_a_page_is_an_invalid_request(aws: Any, lake: dict[str, Any]) -> None:
    execution = run(aws, lake, f"SELECT event_id FROM {lake['database']}.raw")
    with pytest.raises(ClientError) as refused:
        results(aws, execution["QueryExecutionId"], MaxResults=1001)
    assert refused.value.response["Error"]["Code"] == "InvalidRequestException"
