"""Athena: the sandbox's changes to moto's Athena API.

Queries run in ``tapharness.sandbox.athena`` (the DuckDB engine over the sandbox's S3, which
stays its own module); these shims start them there and report their state, times, bytes and a
SELECT's rows (GetQueryResults),
with the caller's permissions (``patches.GUARD``) for what a CTAS reads and writes (and the KMS
permissions S3 checks for encrypted objects), as a forward access session. Also the
workgroup calls the provider makes: ListTagsForResource of an untagged workgroup, UpdateWorkGroup.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from moto.athena.responses import AthenaResponse
from moto.core.responses import BaseResponse

from tapharness.sandbox import athena, patches
from tapharness.sandbox.patches import patch

# --- Athena ---------------------------------------------------------------------------

_START_QUERY = AthenaResponse.start_query_execution
_GET_QUERY = AthenaResponse.get_query_execution
_GET_RESULTS = AthenaResponse.get_query_results
_MOTO_RUNS = re.compile(r"^\s*(CREATE|DROP)\s+(DATABASE|SCHEMA)\b", re.IGNORECASE)


def _caller_allows(self: BaseResponse) -> athena.Allows:
    """Athena reads and writes S3 and Glue with the caller's own credentials (``patches.caller_allows``)."""
    return patches.caller_allows(self, "athena", "athena.ctas")


@patch(AthenaResponse, "start_query_execution")
def start_query_execution(self: AthenaResponse) -> Any:
    """Run the statement (tapharness.sandbox.athena); a token seen before gets its first execution."""
    token = self._get_param("ClientRequestToken")
    known = athena.ENGINE.known_token(token)
    if known is not None:
        return json.dumps({"QueryExecutionId": known})
    query = self._get_param("QueryString") or ""
    workgroup = self.athena_backend.work_groups.get(self._get_param("WorkGroup") or "primary")
    configuration = workgroup.configuration if workgroup else {}
    # The request's result location, unless the workgroup enforces its own (Athena, "Specifying a query result location").
    given = (self._get_param("ResultConfiguration") or {}).get("OutputLocation")
    default = (configuration.get("ResultConfiguration") or {}).get("OutputLocation")
    output = default if configuration.get("EnforceWorkGroupConfiguration") and default else (given or default)
    if output is None and not _MOTO_RUNS.match(query):  # refused by StartQueryExecution itself, as Athena does
        return json.dumps({"__type": "InvalidRequestException", "Message": (
            "No output location provided. An output location is required either through the Workgroup result "
            "configuration setting or as an API input.")}), {"status": 400}
    answer = _START_QUERY(self)
    if not isinstance(answer, str):
        return answer
    if _MOTO_RUNS.match(query):
        return answer
    execution_id = json.loads(answer)["QueryExecutionId"]
    cutoff = configuration.get("BytesScannedCutoffPerQuery")
    athena.ENGINE.start(execution_id, token, query,
                        (self._get_param("QueryExecutionContext") or {}).get("Database"), self.current_account,
                        self.region, int(cutoff) if cutoff else None, _caller_allows(self), output)
    return answer


@patch(AthenaResponse, "get_query_execution")
def get_query_execution(self: AthenaResponse) -> str:
    """moto's answer with the state, reason, times and bytes of the run."""
    answer = json.loads(_GET_QUERY(self))
    execution = answer["QueryExecution"]
    run = athena.ENGINE.runs.get(execution["QueryExecutionId"])
    if run is not None:
        status = {"State": run.state, "SubmissionDateTime": run.submitted}
        if run.reason:
            status["StateChangeReason"] = run.reason
        if run.completed is not None:
            status["CompletionDateTime"] = run.completed
        execution["Status"] = status
        execution["Statistics"]["DataScannedInBytes"] = run.scanned_bytes
        elapsed = int(((run.completed or time.time()) - run.submitted) * 1000)
        execution["Statistics"]["TotalExecutionTimeInMillis"] = elapsed
        execution["Statistics"]["EngineExecutionTimeInMillis"] = elapsed
        if run.output_location:
            execution["ResultConfiguration"] = {**(execution.get("ResultConfiguration") or {}),
                                                "OutputLocation": run.output_location}
    return json.dumps(answer)


@patch(AthenaResponse, "get_query_results")
def get_query_results(self: AthenaResponse) -> Any:
    """The rows of a SELECT the engine ran, a page at a time (MaxResults up to 1,000, NextToken): the
    header row first, as Athena gives it; a query not finished is InvalidRequestException."""
    execution_id = self._get_param("QueryExecutionId")
    run = athena.ENGINE.runs.get(execution_id)
    if run is None:
        return _GET_RESULTS(self)
    if run.state != "SUCCEEDED":
        message = (f"Query did not finish successfully. Final query state: {run.state}"
                   if run.state in ("FAILED", "CANCELLED") else f"Query has not yet finished. Current state: {run.state}")
        return json.dumps({"__type": "InvalidRequestException", "Message": message}), {"status": 400}
    invalid = {"__type": "InvalidRequestException"}
    limit = int(self._get_param("MaxResults") or 1000)
    if not 1 <= limit <= 1000:
        return json.dumps({**invalid, "Message": f"MaxResults must be between 1 and 1000, not {limit}"}), {"status": 400}
    token = str(self._get_param("NextToken") or "0")
    if not token.isdigit():
        return json.dumps({**invalid, "Message": "The NextToken provided is not valid"}), {"status": 400}
    start = int(token)
    bucket, key = athena._s3_location(run.output_location or "s3://-/")
    if not _caller_allows(self)("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}"):  # Athena reads the result as the caller
        return json.dumps({"__type": "AccessDeniedException",
                                    "Message": f"Access denied when reading the query result at {run.output_location}"}), {"status": 400}
    table = [[name for name, _ in run.columns], *run.rows] if run.columns else []
    page = table[start:start + limit]
    answer: dict[str, Any] = {
        "UpdateCount": 0,
        "ResultSet": {
            "Rows": [{"Data": [{} if value is None else {"VarCharValue": value} for value in row]} for row in page],
            "ResultSetMetadata": {"ColumnInfo": [
                {"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": name, "Label": name, "Type": kind,
                 "Precision": 0, "Scale": 0, "Nullable": "UNKNOWN", "CaseSensitive": kind == "varchar"}
                for name, kind in run.columns]},
        },
    }
    if start + limit < len(table):
        answer["NextToken"] = str(start + limit)
    return json.dumps(answer), {"status": 200}


@patch(AthenaResponse, "list_tags_for_resource")
def athena_list_tags_for_resource(self: AthenaResponse) -> Any:
    """ListTagsForResource: an existing workgroup without tags has an empty tag list, not an error."""
    arn = self._get_param("ResourceARN")
    tags = self.athena_backend.list_tags_for_resource(arn)
    if tags is None:
        name = arn.rsplit("/", 1)[-1]
        if ":workgroup/" in arn and name in self.athena_backend.work_groups:
            return json.dumps({"Tags": []})
        return self.error(f"Athena Resource, {arn} Does Not Exist", 400)
    return json.dumps(tags)


def _merge_configuration(configuration: dict[str, Any], updates: dict[str, Any]) -> None:
    """Apply WorkGroupConfigurationUpdates to a WorkGroupConfiguration in place."""
    result_updates = updates.get("ResultConfigurationUpdates") or {}
    result = configuration.setdefault("ResultConfiguration", {})
    for field in ("OutputLocation", "EncryptionConfiguration", "ExpectedBucketOwner", "AclConfiguration"):
        if field in result_updates:
            result[field] = result_updates[field]
        if result_updates.get(f"Remove{field}"):
            result.pop(field, None)
    for key, value in updates.items():
        if key in ("ResultConfigurationUpdates", "RemoveBytesScannedCutoffPerQuery",
                   "RemoveCustomerContentEncryptionConfiguration"):
            continue
        configuration[key] = value
    if updates.get("RemoveBytesScannedCutoffPerQuery"):
        configuration.pop("BytesScannedCutoffPerQuery", None)
    if updates.get("RemoveCustomerContentEncryptionConfiguration"):
        configuration.pop("CustomerContentEncryptionConfiguration", None)


@patch(AthenaResponse, "update_work_group")
def update_work_group(self: AthenaResponse) -> Any:
    """UpdateWorkGroup: description, state and configuration updates."""
    name = self._get_param("WorkGroup")
    group = self.athena_backend.work_groups.get(name)
    if group is None:
        return self.error(f"WorkGroup {name} does not exist", 400)
    if self._get_param("Description") is not None:
        group.description = self._get_param("Description")
    if self._get_param("State"):
        group.state = self._get_param("State")
    _merge_configuration(group.configuration, self._get_param("ConfigurationUpdates") or {})
    return json.dumps({})
