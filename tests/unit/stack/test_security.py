"""Security: customer-managed encryption everywhere, least-privilege IAM, nothing public but the API."""

from __future__ import annotations

import pytest

from tapharness.plan import PlanSummary

pytestmark = pytest.mark.plan

# Allow statements that must name "*" as resource, each because AWS offers no
# resource-level permission for its actions.
WILDCARD_RESOURCE_SIDS = {
    "ManageVpcNetworkInterfaces",  # Lambda's ENI calls in the VPC
    "WriteXRayTraces",  # X-Ray segments have no ARN
    "FindLogGroups",  # logs:DescribeLogGroups lists across the account
    "DeliverExecutionLogs",  # Step Functions' logs:*LogDelivery calls take no resource
    "ListTableStreams",  # dynamodb:ListStreams has no resource type
}
# In a key policy, resource "*" means "this key": the policy is attached to one key.
KEY_POLICIES = ("data.aws_iam_policy_document.kms_",)

def _statements(plan: PlanSummary) -> list[tuple[str, dict]]:
    return [(address, statement) for address, values in plan.data.items()
            if address.startswith("data.aws_iam_policy_document.")
            for statement in values.get("statement") or []]


def _unknown_or_set(plan: PlanSummary, address: str, *path: str | int) -> bool:
    """True when the attribute holds a value computed at apply, i.e. a key ARN, not an AWS default."""
    value, unknown = plan.values[address], plan.unknown[address]
    for step in path:
        if unknown is True:
            return True
        value = value[step] if isinstance(value, (dict, list)) and _has(value, step) else None
        unknown = unknown[step] if isinstance(unknown, (dict, list)) and _has(unknown, step) else False
    return unknown is True or (isinstance(value, str) and ":key/" in value)


def _has(container: dict | list, step: str | int) -> bool:
    return step in container if isinstance(container, dict) else isinstance(step, int) and step < len(container)


def test_every_kms_key_rotates(plan: PlanSummary) -> None:
    keys = plan.of_type("aws_kms_key")
    assert keys
    assert {a for a, v in keys.items() if not v["enable_key_rotation"]} == set()


@pytest.mark.parametrize(("rtype", "path"), [
    ("aws_dynamodb_table", ("server_side_encryption", 0, "kms_key_arn")),
    ("aws_kinesis_stream", ("kms_key_id",)),
    ("aws_sqs_queue", ("kms_master_key_id",)),
    ("aws_sns_topic", ("kms_master_key_id",)),
    ("aws_secretsmanager_secret", ("kms_key_id",)),
    ("aws_cloudwatch_log_group", ("kms_key_id",)),
    ("aws_rds_cluster", ("kms_key_id",)),
    ("aws_rds_cluster_instance", ("performance_insights_kms_key_id",)),
    ("aws_elasticache_replication_group", ("kms_key_id",)),
    ("aws_lambda_function", ("kms_key_arn",)),
    ("aws_s3_bucket_server_side_encryption_configuration",
     ("rule", 0, "apply_server_side_encryption_by_default", 0, "kms_master_key_id")),
    ("aws_athena_workgroup", ("configuration", 0, "result_configuration", 0, "encryption_configuration", 0,
                              "kms_key_arn")),
])
def test_data_store_is_encrypted_with_a_customer_managed_key(plan: PlanSummary, rtype: str, path: tuple) -> None:
    resources = plan.of_type(rtype)
    assert resources, f"no {rtype} in the plan"
    plain = [a for a in resources if not _unknown_or_set(plan, a, *path)]
    assert not plain, f"{rtype} without a customer-managed key at {'.'.join(map(str, path))}: {plain}"


def test_storage_and_transit_encryption_flags_are_on(plan: PlanSummary) -> None:
    redis = plan.values["aws_elasticache_replication_group.cache"]
    assert redis["at_rest_encryption_enabled"] in (True, "true") and redis["transit_encryption_enabled"]
    assert plan.values["aws_rds_cluster.aurora"]["storage_encrypted"]
    assert plan.values["aws_kinesis_stream.activity"]["encryption_type"] == "KMS"
    for address, table in plan.of_type("aws_dynamodb_table").items():
        assert table["server_side_encryption"][0]["enabled"], address
        assert table["point_in_time_recovery"][0]["enabled"], address


def test_no_iam_statement_grants_wildcard_actions(plan: PlanSummary) -> None:
    statements = _statements(plan)
    assert statements
    wild = [(a, s["sid"], action) for a, s in statements for action in s.get("actions") or []
            if s.get("effect", "Allow") == "Allow" and (action == "*" or action.endswith(":*"))]
    assert not wild, f"wildcard actions: {wild}"
    assert not [(a, s["sid"]) for a, s in statements if s.get("not_actions")], "NotAction statements"


def test_wildcard_resources_only_where_aws_forces_them(plan: PlanSummary) -> None:
    statements = _statements(plan)
    assert statements
    wild = [(a, s["sid"]) for a, s in statements
            if s.get("effect", "Allow") == "Allow" and "*" in (s.get("resources") or [])
            and s["sid"] not in WILDCARD_RESOURCE_SIDS and not a.startswith(KEY_POLICIES)]
    assert not wild, f"Allow statements on resource '*' outside the documented exceptions: {wild}"


def test_every_function_has_its_own_role(plan: PlanSummary) -> None:
    functions = plan.of_type("aws_lambda_function")
    assert functions
    roles = {tuple(sorted(plan.targets(a, "role"))) for a in functions}
    assert len(roles) == len(functions) == len(plan.of_type("aws_iam_role")) - len(
        [a for a in plan.types if a.startswith("aws_iam_role.service")])


def test_buckets_block_every_kind_of_public_access(plan: PlanSummary) -> None:
    blocks = plan.of_type("aws_s3_bucket_public_access_block")
    assert blocks
    assert len(blocks) == len(plan.of_type("aws_s3_bucket"))
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    assert [a for a, v in blocks.items() if not all(v[f] for f in flags)] == []


@pytest.mark.parametrize("bucket", ["archive", "thumbnails", "athena_results"])
def test_bucket_refuses_requests_without_tls(plan: PlanSummary, bucket: str) -> None:
    document = plan.data[f'data.aws_iam_policy_document.s3_tls_only["{bucket}"]']
    [deny] = [s for s in document["statement"] if s["effect"] == "Deny"]
    [condition] = deny["condition"]
    assert (condition["test"], condition["variable"], condition["values"]) == ("Bool", "aws:SecureTransport",
                                                                             ["false"])
    assert f'aws_s3_bucket_policy.this["{bucket}"]' in plan.types


def test_nothing_but_the_api_is_reachable_from_outside(plan: PlanSummary) -> None:
    open_rules = [a for a, v in plan.of_type("aws_vpc_security_group_ingress_rule").items()
                  if v.get("cidr_ipv4") == "0.0.0.0/0" or v.get("cidr_ipv6") == "::/0"]
    assert not open_rules, f"ingress open to the internet: {open_rules}"
    assert not plan.values["aws_rds_cluster_instance.aurora"]["publicly_accessible"]
    # A default security group declared without rule blocks has all its rules removed.
    assert not {"ingress", "egress"} & set(plan.references["aws_default_security_group.this"])
    api = plan.values["aws_api_gateway_rest_api.this"]
    assert api["endpoint_configuration"][0]["types"] == ["REGIONAL"]


def test_every_function_runs_in_the_private_subnets(plan: PlanSummary) -> None:
    functions = plan.of_type("aws_lambda_function")
    assert functions
    for address in functions:
        assert plan.targets(address, "vpc_config") >= {'aws_security_group.this["lambda"]'}, address
        assert "aws_subnet.private" in plan.refs(address, "vpc_config"), address


def test_redis_and_aurora_live_in_private_subnets_behind_their_groups(plan: PlanSummary) -> None:
    assert "aws_subnet.private" in plan.refs("aws_elasticache_subnet_group.redis", "subnet_ids")
    assert "aws_subnet.private" in plan.refs("aws_db_subnet_group.aurora", "subnet_ids")
    ingress = plan.of_type("aws_vpc_security_group_ingress_rule")
    for store, port in (("redis", 6379), ("aurora", 5432)):
        rules = [a for a in ingress if a.startswith(f'aws_vpc_security_group_ingress_rule.this["{store}_')]
        assert [a for a in rules if not a.endswith(f'["{store}_from_lambda"]')] == []
        [rule] = rules
        assert ingress[rule]["from_port"] == ingress[rule]["to_port"] == port
        assert ingress[rule].get("cidr_ipv4") is None and plan.unknown[rule]["referenced_security_group_id"]


SECRET_ATTRIBUTES = (".secret_string", ".master_password", ".auth_token", ".password", "random_password")


def test_no_output_carries_a_secret_value(plan: PlanSummary) -> None:
    outputs = plan.raw["configuration"]["root_module"]["outputs"]
    assert outputs
    exposed = {name: refs for name, out in outputs.items() if not out.get("sensitive")
               for refs in [[r for r in out["expression"].get("references", []) if r.endswith(SECRET_ATTRIBUTES)]]
               if refs}
    assert not exposed, f"outputs built from secret values: {exposed}"


@pytest.mark.parametrize("queue", ["analytics", "achievements"])
def test_consumer_queue_accepts_messages_only_from_the_watched_complete_topic(plan: PlanSummary,
                                                                            queue: str) -> None:
    document = plan.data[f'data.aws_iam_policy_document.sqs["{queue}"]']
    [allow] = [s for s in document["statement"] if s["effect"] == "Allow"]
    assert allow["actions"] == ["sqs:SendMessage"]
    assert allow["principals"] == [{"type": "Service", "identifiers": ["sns.amazonaws.com"]}]
    [condition] = allow["condition"]
    assert (condition["test"], condition["variable"]) == ("ArnEquals", "aws:SourceArn")
