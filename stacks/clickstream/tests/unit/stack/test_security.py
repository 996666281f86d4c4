"""Security: least-privilege IAM without wildcard actions, encryption at rest with the stack's key."""

from __future__ import annotations

import pytest

from tapharness.plan import PlanSummary

pytestmark = pytest.mark.plan

WILDCARD_RESOURCE_SIDS = {"ManageVpcNetworkInterfaces", "WriteXRayTraces", "FindLogGroups", "ListStreams"}


def _statements(plan: PlanSummary) -> list[tuple[str, dict]]:
    return [(address, statement) for address, values in plan.data.items()
            if address.startswith("data.aws_iam_policy_document.")
            for statement in values.get("statement") or []]


def test_no_allow_statement_grants_a_wildcard_action(plan: PlanSummary) -> None:
    offending = [f"{a} {s.get('sid')}: {x}" for a, s in _statements(plan) if s["effect"] == "Allow"
                 for x in s["actions"] if "*" in x]
    assert not offending, offending


def test_wildcard_resources_only_where_aws_offers_no_resource_arn(plan: PlanSummary) -> None:
    offending = [f"{a} {s.get('sid')}" for a, s in _statements(plan)
                 if s["effect"] == "Allow" and "*" in (s.get("resources") or [])
                 and a != "data.aws_iam_policy_document.kms" and s.get("sid") not in WILDCARD_RESOURCE_SIDS]
    assert not offending, offending


def test_stream_queue_table_and_functions_use_the_stacks_key(plan: PlanSummary) -> None:
    for address, attribute in (("aws_kinesis_stream.events", "kms_key_id"),
                               ("aws_sqs_queue.stream_failures", "kms_master_key_id")):
        assert plan.unknown[address].get(attribute) is True, f"{address}.{attribute}"
    assert plan.values["aws_kinesis_stream.events"]["encryption_type"] == "KMS"
    assert plan.unknown["aws_dynamodb_table.behaviour"]["server_side_encryption"][0]["kms_key_arn"] is True
    for address in plan.of_type("aws_lambda_function"):
        assert plan.unknown[address]["kms_key_arn"] is True, address


def test_the_log_bucket_is_private_and_encrypted(plan: PlanSummary) -> None:
    block = plan.values["aws_s3_bucket_public_access_block.alb_logs"]
    assert all(block[k] for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                                  "restrict_public_buckets"))
    rule = plan.values["aws_s3_bucket_server_side_encryption_configuration.alb_logs"]["rule"][0]
    assert rule["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "AES256"


def test_every_function_traces_and_logs_json(plan: PlanSummary) -> None:
    for address, values in plan.of_type("aws_lambda_function").items():
        assert values["tracing_config"] == [{"mode": "Active"}], address
        assert values["logging_config"][0]["log_format"] == "JSON", address


def test_the_kms_key_rotates(plan: PlanSummary) -> None:
    assert plan.values["aws_kms_key.this"]["enable_key_rotation"] is True
