"""Security: encryption at rest and in transit, least-privilege IAM, nothing reachable but the API."""

from __future__ import annotations

import pytest

from tapharness.plan import PlanSummary

pytestmark = pytest.mark.plan

# Allow statements that must name "*" as resource, because AWS has no resource-level permission.
WILDCARD_RESOURCE_SIDS = {
    "ManageVpcNetworkInterfaces",  # Lambda's ENI calls in the VPC
    "WriteXRayTraces",  # X-Ray segments have no ARN
    "FindLogGroups",  # logs:DescribeLogGroups lists across the account
    "DeliverExecutionLogs",  # Step Functions' vended-log delivery calls
    "PutBookingMetrics",  # cloudwatch:PutMetricData, scoped by a namespace condition instead
    "ListTableStreams",  # dynamodb:ListStreams has no resource type
}
KEY_POLICIES = ("data.aws_iam_policy_document.kms_",)  # in a key policy "*" is the key itself


def _statements(plan: PlanSummary) -> list[tuple[str, dict]]:
    return [(address, statement) for address, values in plan.data.items()
            if address.startswith("data.aws_iam_policy_document.")
            for statement in values.get("statement") or []]


def test_no_allow_statement_grants_a_wildcard_action(plan: PlanSummary) -> None:
    offending = [f"{address} {s.get('sid')}: {a}" for address, s in _statements(plan) if s["effect"] == "Allow"
                 for a in s["actions"] if "*" in a]
    assert not offending, offending


def test_wildcard_resources_only_where_aws_offers_no_resource_arn(plan: PlanSummary) -> None:
    offending = [f"{address} {s.get('sid')}" for address, s in _statements(plan)
                 if s["effect"] == "Allow" and "*" in (s.get("resources") or [])
                 and not address.startswith(KEY_POLICIES) and s.get("sid") not in WILDCARD_RESOURCE_SIDS]
    assert not offending, offending


def test_booking_takes_only_iam_signed_requests_and_availability_answers_anyone(plan: PlanSummary) -> None:
    authorization = {v["route_key"]: v["authorization_type"] for v in plan.of_type("aws_apigatewayv2_route").values()}
    assert authorization == {"POST /book": "AWS_IAM", "GET /availability/{property_id}": "NONE"}


def test_the_booking_client_role_may_only_invoke_the_api(plan: PlanSummary) -> None:
    (statement,) = plan.data["data.aws_iam_policy_document.booking_client"]["statement"]
    assert statement["effect"] == "Allow" and statement["actions"] == ["execute-api:Invoke"]
    # the route's ARN, known after apply (None here), never "*"; the flows prove which route it is
    assert len(statement["resources"]) == 1 and "*" not in statement["resources"], statement["resources"]
    assert "aws_apigatewayv2_api.this.execution_arn" in plan.refs("data.aws_iam_policy_document.booking_client",
                                                                  "statement")


def test_only_principals_of_the_stacks_account_may_become_a_booking_client_by_default(plan: PlanSummary) -> None:
    (statement,) = plan.data["data.aws_iam_policy_document.booking_client_assume"]["statement"]
    (principals,) = statement["principals"]
    assert statement["actions"] == ["sts:AssumeRole"] and principals["type"] == "AWS"
    account = plan.data["data.aws_caller_identity.current"]["account_id"]
    assert principals["identifiers"] == [f"arn:aws:iam::{account}:root"]


def test_metric_writes_are_confined_to_the_stacks_namespace(plan: PlanSummary) -> None:
    metric_statements = [s for _, s in _statements(plan) if s.get("sid") == "PutBookingMetrics"]
    assert metric_statements
    for statement in metric_statements:
        (condition,) = statement["condition"]
        assert condition["variable"] == "cloudwatch:namespace"
        assert condition["values"] == [plan.outputs["metrics_namespace"]]


def test_step_functions_may_invoke_only_the_two_reconciliation_functions(plan: PlanSummary) -> None:
    statements = [s for a, s in _statements(plan) if a == 'data.aws_iam_policy_document.service["states"]'
                  and "lambda:InvokeFunction" in (s.get("actions") or [])]
    assert len(statements) == 1
    resources = statements[0]["resources"]  # the two function ARNs, known after apply (None here), never "*"
    assert len(resources) == 2 and "*" not in resources, resources


def test_the_data_key_admits_the_log_delivery_of_the_state_machine_it_encrypts(plan: PlanSummary) -> None:
    # "you must allow delivery.logs.amazonaws.com to do kms:Decrypt action from your AWS KMS key policy"
    # (Step Functions, data at rest encryption: a state machine under a customer key that logs).
    machine = plan.values["aws_sfn_state_machine.reconciliation"]
    assert machine["encryption_configuration"][0]["type"] == "CUSTOMER_MANAGED_KMS_KEY"
    assert "local.data_key" in plan.refs("aws_sfn_state_machine.reconciliation", "encryption_configuration")
    assert machine["logging_configuration"][0]["level"] != "OFF"
    admitted = [s for s in plan.data["data.aws_iam_policy_document.kms_data"]["statement"]
                if s["effect"] == "Allow" and "kms:Decrypt" in s["actions"]
                for p in s.get("principals") or [] if p["type"] == "Service"
                and "delivery.logs.amazonaws.com" in p["identifiers"]]
    assert admitted, "the data key's policy does not let delivery.logs.amazonaws.com decrypt"


def test_every_function_runs_in_the_private_subnets_with_active_tracing(plan: PlanSummary) -> None:
    for address, values in plan.of_type("aws_lambda_function").items():
        assert values["tracing_config"] == [{"mode": "Active"}], address
        assert plan.unknown[address]["vpc_config"][0]["subnet_ids"], f"{address} is not in the VPC"
        assert len(plan.refs(address, "vpc_config")) > 0 and any("aws_subnet.private" in r
                                                                 for r in plan.refs(address, "vpc_config")), address


def test_no_function_environment_holds_a_secret(plan: PlanSummary) -> None:
    for address, names in plan.outputs["lambda_environment_variable_names"].items():
        suspicious = {n for n in names if {"PASSWORD", "TOKEN", "KEY", "SECRET"} & set(n.split("_"))
                      and not n.endswith(("_ARN", "_ARNS"))}
        assert not suspicious, f"{address}: {suspicious} look like secrets; pass the secret's ARN instead"


def test_queues_topics_and_secrets_use_the_data_key(plan: PlanSummary) -> None:
    for rtype, attribute in (("aws_sqs_queue", "kms_master_key_id"), ("aws_sns_topic", "kms_master_key_id"),
                             ("aws_secretsmanager_secret", "kms_key_id")):
        for address in plan.of_type(rtype):
            assert plan.unknown[address].get(attribute) is True, f"{address}.{attribute} is not the data key"


def test_aurora_and_redis_encrypt_at_rest_and_in_transit(plan: PlanSummary) -> None:
    cluster = plan.values["aws_rds_cluster.aurora"]
    assert cluster["storage_encrypted"] and cluster["iam_database_authentication_enabled"]
    redis = plan.values["aws_elasticache_replication_group.cache"]
    assert redis["at_rest_encryption_enabled"] and redis["transit_encryption_enabled"]
    assert plan.unknown["aws_elasticache_replication_group.cache"].get("kms_key_id") is True


def test_inventory_and_its_replicas_are_encrypted_and_recoverable(plan: PlanSummary) -> None:
    table = plan.values["aws_dynamodb_table.inventory"]
    assert table["server_side_encryption"][0]["enabled"]
    assert table["point_in_time_recovery"][0]["enabled"]
    assert table["replica"] and all(r["point_in_time_recovery"] for r in table["replica"])


def test_no_security_group_admits_traffic_from_an_address_range(plan: PlanSummary) -> None:
    rules = plan.of_type("aws_vpc_security_group_ingress_rule")
    assert rules
    assert {a for a, v in rules.items() if v.get("cidr_ipv4") or v.get("cidr_ipv6")} == set()


def test_nothing_in_the_vpc_gets_a_public_address(plan: PlanSummary) -> None:
    assert {a for a, v in plan.of_type("aws_subnet").items() if v["map_public_ip_on_launch"]} == set()
    instances = plan.of_type("aws_rds_cluster_instance")
    assert instances and not any(v["publicly_accessible"] for v in instances.values())


def test_every_queue_refuses_plain_http(plan: PlanSummary) -> None:
    queues = set(plan.of_type("aws_sqs_queue"))
    policies = {address for address, s in _statements(plan) if address.startswith("data.aws_iam_policy_document.sqs[")
                and s["effect"] == "Deny" and s["condition"][0]["variable"] == "aws:SecureTransport"}
    assert len(policies) == len(queues), (policies, queues)
