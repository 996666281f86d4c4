"""Wiring: the stream feeds the processor without silent loss; the ALB serves the insights."""

from __future__ import annotations

import pytest

from tapharness.plan import PlanSummary

pytestmark = pytest.mark.plan

MAPPING = "aws_lambda_event_source_mapping.events"


def test_the_stream_feeds_stream_processor_from_the_oldest_retained_record(plan: PlanSummary) -> None:
    assert plan.targets(MAPPING, "function_name") == {'aws_lambda_function.this["stream_processor"]'}
    assert plan.targets(MAPPING, "event_source_arn") == {"aws_kinesis_stream.events"}
    assert plan.values[MAPPING]["starting_position"] == "TRIM_HORIZON"
    assert plan.values[MAPPING]["batch_size"] == plan.variables["batch_size"]


def test_failures_are_bisected_and_retried_until_the_records_maximum_age(plan: PlanSummary) -> None:
    mapping = plan.values[MAPPING]
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["bisect_batch_on_function_error"] is True
    # Poison is parked by the function itself, so what fails here is transient: retry (-1: until
    # the record's maximum age) rather than give up after a count a long outage exhausts.
    assert mapping["maximum_retry_attempts"] == -1


def test_given_up_records_are_kept_with_their_data_in_the_given_up_bucket(plan: PlanSummary) -> None:
    # An SQS or SNS destination gets only the shard and sequence range; an S3 destination gets "the
    # entire invocation record along with the metadata" (kinesis-on-failure-destination.html).
    assert plan.targets(MAPPING, "destination_config") == {"aws_s3_bucket.given_up"}


def test_records_are_given_up_while_the_stream_still_holds_them_twice_over(plan: PlanSummary) -> None:
    retention_s = plan.values["aws_kinesis_stream.events"]["retention_period"] * 3600
    age = plan.values[MAPPING]["maximum_record_age_in_seconds"]
    assert 60 <= age <= retention_s / 2, f"maximum record age {age} s against a retention of {retention_s} s"


def test_the_given_up_bucket_is_private_encrypted_with_the_stack_key_and_versioned(plan: PlanSummary) -> None:
    assert plan.values["aws_s3_bucket_public_access_block.given_up"]["restrict_public_buckets"] is True
    assert all(plan.values["aws_s3_bucket_public_access_block.given_up"][k] for k in (
        "block_public_acls", "block_public_policy", "ignore_public_acls"))
    [rule] = plan.values["aws_s3_bucket_server_side_encryption_configuration.given_up"]["rule"]
    assert rule["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms"
    assert plan.targets("aws_s3_bucket_server_side_encryption_configuration.given_up", "rule") >= {"aws_kms_key.this"}
    assert plan.values["aws_s3_bucket_versioning.given_up"]["versioning_configuration"][0]["status"] == "Enabled"


def test_the_processor_may_only_put_and_list_in_s3(plan: PlanSummary) -> None:
    """What Lambda needs for an S3 destination (the bucket, and its aws/lambda/ prefix, are bound by
    the configuration; the integration suite's given-up flow proves the role reaches them)."""
    statements = plan.data['data.aws_iam_policy_document.lambda["stream_processor"]']["statement"]
    s3 = sorted(a for s in statements for a in s["actions"] if a.startswith("s3:"))
    assert s3 == ["s3:ListBucket", "s3:PutObject"]


def test_the_table_scales_reads_and_writes_by_target_tracking(plan: PlanSummary) -> None:
    targets = plan.of_type("aws_appautoscaling_target")
    assert {v["scalable_dimension"] for v in targets.values()} == {"dynamodb:table:ReadCapacityUnits",
                                                                   "dynamodb:table:WriteCapacityUnits"}
    assert all(v["resource_id"] == f"table/{plan.outputs['dynamodb_table_name']}" for v in targets.values())
    policies = plan.of_type("aws_appautoscaling_policy")
    assert len(policies) == 2
    for policy in policies.values():
        config = policy["target_tracking_scaling_policy_configuration"][0]
        assert policy["policy_type"] == "TargetTrackingScaling"
        assert config["target_value"] == plan.variables["autoscaling_target_utilization"]


def test_the_table_keeps_point_in_time_recovery(plan: PlanSummary) -> None:
    table = plan.values["aws_dynamodb_table.behaviour"]
    assert table["point_in_time_recovery"][0]["enabled"] is True
    assert table["billing_mode"] == "PROVISIONED"


def test_listener_rules_forward_the_insight_paths_to_the_lambda_target_in_priority_order(plan: PlanSummary) -> None:
    rules = sorted(plan.of_type("aws_lb_listener_rule").items(), key=lambda item: item[1]["priority"])
    paths = [rule["condition"][0]["path_pattern"][0]["values"] if rule["condition"][0].get("path_pattern")
             else rule["condition"][1]["path_pattern"][0]["values"] for _, rule in rules]
    assert paths == [["/users/*"], ["/pages/*"], ["/health"]]
    for address, rule in rules:
        assert rule["action"][0]["type"] == "forward"
        assert plan.targets(address, "action") == {"aws_lb_target_group.insights"}
    listener = plan.values["aws_lb_listener.http"]
    assert listener["default_action"][0]["type"] == "fixed-response"
    assert listener["default_action"][0]["fixed_response"][0]["status_code"] == "404"


def test_the_target_group_invokes_insights_api_with_multi_value_headers(plan: PlanSummary) -> None:
    group = plan.values["aws_lb_target_group.insights"]
    assert group["target_type"] == "lambda" and group["lambda_multi_value_headers_enabled"] is True
    assert plan.targets("aws_lb_target_group_attachment.insights", "target_id") == {
        'aws_lambda_function.this["insights_api"]'}
    permission = plan.values["aws_lambda_permission.alb"]
    assert permission["principal"] == "elasticloadbalancing.amazonaws.com"
    assert plan.targets("aws_lambda_permission.alb", "source_arn") == {"aws_lb_target_group.insights"}


def test_every_key_resource_has_an_output(plan: PlanSummary) -> None:
    declared = set(plan.raw["configuration"]["root_module"]["outputs"])
    assert {"vpc_id", "private_subnet_ids", "nat_gateway_ids", "kinesis_stream_arn", "dynamodb_table_arn",
            "alb_arn", "alb_dns_name", "target_group_arn", "stream_failures_queue_url", "given_up_bucket",
            "lambda_function_arns"} <= declared
