"""Wiring: every arrow of the data flow is where the spec puts it."""

from __future__ import annotations

import json

import pytest

from tapharness.plan import PlanSummary

pytestmark = pytest.mark.plan

BOOKING = 'aws_lambda_function.this["booking_handler"]'


def test_the_api_routes_book_and_availability_to_booking_handler_with_payload_2(plan: PlanSummary) -> None:
    routes = {v["route_key"] for v in plan.of_type("aws_apigatewayv2_route").values()}
    assert routes == {"POST /book", "GET /availability/{property_id}"}
    integration = plan.values["aws_apigatewayv2_integration.booking_handler"]
    assert integration["payload_format_version"] == "2.0" and integration["integration_type"] == "AWS_PROXY"
    assert plan.targets("aws_apigatewayv2_integration.booking_handler", "integration_uri") == {BOOKING}
    assert plan.values["aws_apigatewayv2_api.this"]["protocol_type"] == "HTTP"


def test_the_api_throttle_is_the_rate_limit_variable(plan: PlanSummary) -> None:
    settings = plan.values["aws_apigatewayv2_stage.default"]["default_route_settings"][0]
    assert settings["throttling_rate_limit"] == plan.variables["booking_api_rate_limit_rps"]
    assert settings["throttling_burst_limit"] == plan.variables["booking_api_burst_limit"]


def test_the_inventory_streams_new_and_old_images_and_expires_holds(plan: PlanSummary) -> None:
    table = plan.values["aws_dynamodb_table.inventory"]
    assert table["stream_enabled"] and table["stream_view_type"] == "NEW_AND_OLD_IMAGES"
    assert table["ttl"] == [{"attribute_name": "expires_at", "enabled": True}]
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert sorted(r["region_name"] for r in table["replica"]) == sorted(plan.variables["dynamodb_replica_regions"])


def test_the_stream_feeds_cache_updater_inventory_items_only_and_parks_failures(plan: PlanSummary) -> None:
    address = 'aws_lambda_event_source_mapping.inventory_stream["cache_updater"]'
    mapping = plan.values[address]
    assert plan.targets(address, "function_name") == {'aws_lambda_function.this["cache_updater"]'}
    assert plan.targets(address, "event_source_arn") == {"aws_dynamodb_table.inventory"}
    assert json.loads(mapping["filter_criteria"][0]["filter"][0]["pattern"]) == {
        "dynamodb": {"Keys": {"sk": {"S": ["INVENTORY"]}}}}
    assert mapping["maximum_batching_window_in_seconds"] == 0  # SLA: cache < 1 s
    assert mapping["bisect_batch_on_function_error"] and mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert plan.targets(address, "destination_config") == {'aws_sqs_queue.failures["stream_failures"]'}


CHECKER = 'aws_lambda_function.this["reconciliation_checker"]'


def test_the_stream_also_feeds_the_checker_itself_so_what_is_rechecked_never_depends_on_cache_updater(
        plan: PlanSummary) -> None:
    address = 'aws_lambda_event_source_mapping.inventory_stream["reconciliation_checker"]'
    mapping = plan.values[address]
    assert plan.targets(address, "function_name") == {CHECKER}
    assert plan.targets(address, "event_source_arn") == {"aws_dynamodb_table.inventory"}
    assert json.loads(mapping["filter_criteria"][0]["filter"][0]["pattern"]) == {
        "dynamodb": {"Keys": {"sk": {"S": ["INVENTORY"]}}}}
    assert mapping["bisect_batch_on_function_error"] and mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert plan.targets(address, "destination_config") == {'aws_sqs_queue.failures["stream_failures"]'}
    # DynamoDB Streams serves two consumers per shard without throttling: cache_updater and the checker.
    consumers = [v for v in plan.of_type("aws_lambda_event_source_mapping").values()
                 if "starting_position" in v and v.get("starting_position")]
    assert len(consumers) == 2


def test_the_recheck_queue_feeds_the_checker_and_parks_what_keeps_failing(plan: PlanSummary) -> None:
    address = "aws_lambda_event_source_mapping.recheck"
    assert plan.targets(address, "function_name") == {CHECKER}
    assert plan.targets(address, "event_source_arn") == {"aws_sqs_queue.recheck"}
    assert plan.values[address]["function_response_types"] == ["ReportBatchItemFailures"]
    assert plan.targets("aws_sqs_queue.recheck", "redrive_policy") == {"aws_sqs_queue.recheck_dlq"}
    checker = plan.values[CHECKER]
    timeout, visibility = checker["timeout"], plan.values["aws_sqs_queue.recheck"]["visibility_timeout_seconds"]
    assert visibility >= 6 * timeout, f"visibility {visibility} s under six times the checker's {timeout} s"


def test_a_changed_night_is_first_compared_within_the_5_second_conflict_sla(plan: PlanSummary) -> None:
    first_look = (plan.values["aws_sqs_queue.recheck"]["delay_seconds"]
                  + plan.values['aws_lambda_event_source_mapping.inventory_stream["reconciliation_checker"]']
                  ["maximum_batching_window_in_seconds"]
                  + plan.values["aws_lambda_event_source_mapping.recheck"]["maximum_batching_window_in_seconds"])
    assert first_look < 5, f"{first_look} s of delays and batching windows before the first comparison"


def test_each_pms_integration_has_a_filtered_queue_with_its_own_dlq(plan: PlanSummary) -> None:
    integrations = set(plan.variables["pms_integrations"])
    subscriptions = plan.of_type("aws_sns_topic_subscription")
    assert {json.loads(v["filter_policy"])["pms_id"][0] for v in subscriptions.values()} == integrations
    for pms in integrations:
        subscription = f'aws_sns_topic_subscription.pms["{pms}"]'
        assert plan.values[subscription]["raw_message_delivery"]
        assert plan.targets(subscription, "endpoint") == {f'aws_sqs_queue.pms["{pms}"]'}
        assert plan.targets(subscription, "topic_arn") == {'aws_sns_topic.this["inventory_updates"]'}
        assert plan.targets(f'aws_sqs_queue.pms["{pms}"]', "redrive_policy") == {f'aws_sqs_queue.pms_dlq["{pms}"]'}
        assert plan.values[f'aws_sqs_queue.pms["{pms}"]']["visibility_timeout_seconds"] == \
            plan.variables["pms_queue_visibility_timeout_seconds"]


def test_each_pms_queue_feeds_pms_sync_worker_at_the_integrations_concurrency(plan: PlanSummary) -> None:
    for pms, spec in plan.variables["pms_integrations"].items():
        address = f'aws_lambda_event_source_mapping.pms["{pms}"]'
        assert plan.targets(address, "function_name") == {'aws_lambda_function.this["pms_sync_worker"]'}
        assert plan.targets(address, "event_source_arn") == {f'aws_sqs_queue.pms["{pms}"]'}
        assert plan.values[address]["scaling_config"] == [{"maximum_concurrency": spec["max_concurrency"]}]
        assert plan.values[address]["function_response_types"] == ["ReportBatchItemFailures"]


def test_the_schedule_starts_the_reconciliation_state_machine(plan: PlanSummary) -> None:
    assert plan.values["aws_cloudwatch_event_rule.reconciliation"]["schedule_expression"] == \
        plan.variables["reconciliation_schedule_expression"]
    target = "aws_cloudwatch_event_target.reconciliation"
    assert plan.targets(target, "arn") == {"aws_sfn_state_machine.reconciliation"}
    assert plan.targets(target, "role_arn") == {'aws_iam_role.service["events"]'}
    assert plan.targets(target, "dead_letter_config") == {'aws_sqs_queue.failures["async_failures"]'}


def test_reconciliation_runs_the_checker_then_the_resolver(plan: PlanSummary) -> None:
    tasks = {t for t in plan.targets("aws_sfn_state_machine.reconciliation", "definition")
             if t.startswith("aws_lambda_function.")}
    assert tasks == {'aws_lambda_function.this["reconciliation_checker"]',
                     'aws_lambda_function.this["overbooking_resolver"]'}


def test_the_spec_outputs_are_all_there(plan: PlanSummary) -> None:
    required = {"api_invoke_url", "dynamodb_table_name", "sns_topic_arn", "pms_queue_urls", "pms_dlq_urls",
                "state_machine_arn", "redis_primary_endpoint", "aurora_reader_endpoint"}
    declared = set(plan.raw["configuration"]["root_module"]["outputs"])
    assert required <= declared, required - declared


def test_alarms_guard_every_sla_the_spec_names(plan: PlanSummary) -> None:
    alarms = {v["metric_name"] for v in plan.of_type("aws_cloudwatch_metric_alarm").values()}
    assert {"ReplicationLatency", "ApproximateAgeOfOldestMessage", "ApproximateNumberOfMessagesVisible",
            "CircuitOpen", "UnresolvedOverbooking", "HotRecheckLag"} <= alarms
    latency = [v for v in plan.of_type("aws_cloudwatch_metric_alarm").values() if v["metric_name"] == "ReplicationLatency"]
    assert sorted(v["dimensions"]["ReceivingRegion"] for v in latency) == sorted(plan.variables["dynamodb_replica_regions"])
    assert {v["threshold"] for v in latency} == {plan.variables["replication_lag_alarm_ms"]}
