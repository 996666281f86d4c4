"""Every edge of the flow exists in the plan: who triggers whom, with which settings.

Values known at plan time are asserted directly; edges whose ARNs are only known after
apply are asserted on the configuration's references, resolved to resource instances.
"""

from __future__ import annotations

import json

import pytest

from tapharness.plan import PlanSummary

pytestmark = pytest.mark.plan

ROUTES = ("watch", "pause", "complete")
MAPPINGS = {  # event source mapping → (consumer function, kind of source)
    "activity_stream": ("activity_consumer", "kinesis"),
    "completion_stream": ("completion_detector", "kinesis"),
    "activity_table_stream": ("recommendations", "dynamodb"),
    "analytics_queue": ("analytics_consumer", "sqs"),
    "achievements_queue": ("achievements_consumer", "sqs"),
}
EXPIRATION_TASKS = ("expiration_find", "expiration_mark", "expiration_purge", "expiration_archive")


def _known_after_apply(unknown: object, *path: str | int) -> bool:
    for step in path:
        if unknown is True:
            return True
        if isinstance(unknown, dict):
            unknown = unknown.get(step, False)
        elif isinstance(unknown, list) and isinstance(step, int) and step < len(unknown):
            unknown = unknown[step]
        else:
            return False
    return unknown is True


def _one(values: dict, block: str) -> dict:
    [item] = values[block]
    return item


@pytest.mark.parametrize("route", ROUTES)
def test_api_route_posts_validated_json_to_the_event_processor(plan: PlanSummary, route: str) -> None:
    resource = plan.values[f'aws_api_gateway_resource.route["{route}"]']
    method = plan.values[f'aws_api_gateway_method.route["{route}"]']
    integration = f'aws_api_gateway_integration.route["{route}"]'
    assert resource["path_part"] == route
    assert method["http_method"] == "POST"
    assert method["request_models"] == {"application/json": "ViewingEvent"}
    assert plan.targets(f'aws_api_gateway_method.route["{route}"]', "request_validator_id") == {
        "aws_api_gateway_request_validator.body_and_params"}
    assert plan.values[integration]["type"] == "AWS_PROXY"
    assert plan.targets(integration, "uri") == {'aws_lambda_function.this["event_processor"]'}


def test_request_validator_checks_body_and_parameters(plan: PlanSummary) -> None:
    validator = plan.values["aws_api_gateway_request_validator.body_and_params"]
    assert validator["validate_request_body"] and validator["validate_request_parameters"]


def test_viewing_event_model_requires_every_field_and_nothing_else(plan: PlanSummary) -> None:
    schema = json.loads(plan.values['aws_api_gateway_model.this["ViewingEvent"]']["schema"])
    assert set(schema["required"]) == {"event_id", "user_id", "content_id", "position_seconds",
                                       "duration_seconds", "client_timestamp"}
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("route", ROUTES)
def test_api_gateway_may_invoke_the_event_processor_only_from_its_route(plan: PlanSummary, route: str) -> None:
    permission = f'aws_lambda_permission.api["{route}"]'
    assert plan.values[permission]["principal"] == "apigateway.amazonaws.com"
    assert plan.targets(permission, "function_name") == {'aws_lambda_function.this["event_processor"]'}
    assert "aws_api_gateway_rest_api.this" in plan.targets(permission, "source_arn")


@pytest.mark.parametrize("mapping", sorted(MAPPINGS))
def test_event_source_mapping_feeds_its_consumer(plan: PlanSummary, mapping: str) -> None:
    function, _ = MAPPINGS[mapping]
    values = plan.values[f'aws_lambda_event_source_mapping.this["{mapping}"]']
    consumer = plan.values[f'aws_lambda_function.this["{function}"]']
    assert values["function_name"] == consumer["function_name"]
    assert values["function_response_types"] == ["ReportBatchItemFailures"]


def test_both_kinesis_consumers_read_the_one_activity_stream(plan: PlanSummary) -> None:
    kinesis = [m for m, (_, kind) in MAPPINGS.items() if kind == "kinesis"]
    for mapping in kinesis:
        values = plan.values[f'aws_lambda_event_source_mapping.this["{mapping}"]']
        assert values["starting_position"] in {"TRIM_HORIZON", "LATEST"}, mapping
        assert values["parallelization_factor"] >= 1, mapping
    assert len(plan.of_type("aws_kinesis_stream")) == 1


def test_activity_consumer_aggregates_over_a_tumbling_window(plan: PlanSummary) -> None:
    values = plan.values['aws_lambda_event_source_mapping.this["activity_stream"]']
    assert 0 < values["tumbling_window_in_seconds"] <= 900


def test_completion_detector_only_receives_complete_events(plan: PlanSummary) -> None:
    values = plan.values['aws_lambda_event_source_mapping.this["completion_stream"]']
    patterns = [json.loads(f["pattern"]) for f in _one(values, "filter_criteria")["filter"]]
    assert patterns == [{"data": {"event_type": ["complete"]}}]


@pytest.mark.parametrize("mapping", ["activity_stream", "completion_stream", "activity_table_stream"])
def test_stream_mapping_bisects_retries_and_sends_discarded_batches_to_a_queue(plan: PlanSummary,
                                                                              mapping: str) -> None:
    address = f'aws_lambda_event_source_mapping.this["{mapping}"]'
    values = plan.values[address]
    assert values["bisect_batch_on_function_error"] is True
    assert 0 <= values["maximum_retry_attempts"] <= 10
    assert values["maximum_record_age_in_seconds"] > 0
    # The destination is the stream_failures queue, whose ARN exists only after apply.
    assert _known_after_apply(plan.unknown[address], "destination_config", 0, "on_failure", 0, "destination_arn")


def test_recommendations_fire_on_summary_changes_of_user_activity(plan: PlanSummary) -> None:
    values = plan.values['aws_lambda_event_source_mapping.this["activity_table_stream"]']
    [pattern] = [json.loads(f["pattern"]) for f in _one(values, "filter_criteria")["filter"]]
    assert pattern["eventName"] == ["INSERT", "MODIFY"]
    assert values["batch_size"] >= 1
    table = plan.values['aws_dynamodb_table.this["activity"]']
    assert table["stream_enabled"] and table["stream_view_type"] == "NEW_AND_OLD_IMAGES"


@pytest.mark.parametrize("queue", ["analytics", "achievements"])
def test_watched_complete_fans_out_to_the_queue_with_its_filter(plan: PlanSummary, queue: str) -> None:
    subscription = f'aws_sns_topic_subscription.queue["{queue}"]'
    values = plan.values[subscription]
    assert plan.targets(subscription, "topic_arn") == {'aws_sns_topic.this["complete"]'}
    assert plan.targets(subscription, "endpoint") == {f'aws_sqs_queue.consumer["{queue}"]'}
    assert values["protocol"] == "sqs" and values["raw_message_delivery"] is True
    assert json.loads(values["filter_policy"])["event_type"] == ["complete"]


def test_only_full_completions_reach_the_achievements_queue(plan: PlanSummary) -> None:
    achievements = json.loads(plan.values['aws_sns_topic_subscription.queue["achievements"]']["filter_policy"])
    analytics = json.loads(plan.values['aws_sns_topic_subscription.queue["analytics"]']["filter_policy"])
    assert achievements["completion_ratio"] == [{"numeric": [">=", 0.9]}]
    assert "completion_ratio" not in analytics


def test_watched_complete_is_fifo_because_the_achievements_queue_deduplicates_by_content(
        plan: PlanSummary) -> None:
    topic = plan.values['aws_sns_topic.this["complete"]']
    achievements = plan.values['aws_sqs_queue.consumer["achievements"]']
    assert topic["fifo_topic"] and topic["name"].endswith(".fifo")
    assert achievements["fifo_queue"] and achievements["content_based_deduplication"]


@pytest.mark.parametrize("queue", ["analytics", "achievements"])
def test_consumer_queue_long_polls_and_redrives_to_its_dead_letter_queue(plan: PlanSummary, queue: str) -> None:
    address = f'aws_sqs_queue.consumer["{queue}"]'
    assert plan.values[address]["receive_wait_time_seconds"] == 20
    assert plan.unknown[address].get("redrive_policy") is True or plan.values[address].get("redrive_policy")
    assert "aws_sqs_queue.dead_letter" in plan.refs(address, "redrive_policy")
    dlq = plan.values[f'aws_sqs_queue.dead_letter["{queue}_dlq"]']
    assert dlq["fifo_queue"] == plan.values[address]["fifo_queue"]


def test_nightly_rule_starts_the_expiration_state_machine(plan: PlanSummary) -> None:
    rule = plan.values["aws_cloudwatch_event_rule.expiration"]
    target = "aws_cloudwatch_event_target.expiration"
    assert rule["schedule_expression"] == plan.variables["expiration_schedule_expression"]
    assert plan.targets(target, "arn") == {"aws_sfn_state_machine.expiration"}
    assert plan.targets(target, "rule") == {"aws_cloudwatch_event_rule.expiration"}
    assert plan.targets(target, "role_arn") == {'aws_iam_role.service["events"]'}


def _task_functions(states: dict) -> set[str]:
    found = set()
    for state in states.values():
        if state["Type"] == "Task":
            parameters = state["Parameters"]
            found.add(parameters["FunctionName"].rsplit(":", 1)[-1])
        for branch in state.get("Branches", []):
            found |= _task_functions(branch["States"])
    return found


def test_state_machine_runs_the_four_expiration_tasks(plan: PlanSummary) -> None:
    definition = json.loads(plan.values["aws_sfn_state_machine.expiration"]["definition"])
    functions = {plan.values[f'aws_lambda_function.this["{t}"]']["function_name"] for t in EXPIRATION_TASKS}
    assert _task_functions(definition["States"]) == functions


def test_the_refresh_schedule_invokes_the_cache_refresh_function(plan: PlanSummary) -> None:
    rule = plan.values["aws_cloudwatch_event_rule.cache_refresh"]
    target = "aws_cloudwatch_event_target.cache_refresh"
    assert rule["schedule_expression"] == plan.variables["cache_refresh_schedule_expression"]
    assert plan.targets(target, "arn") == {'aws_lambda_function.this["cache_refresh"]'}
    assert plan.targets(target, "dead_letter_config") == {'aws_sqs_queue.dead_letter["async_failures"]'}
    permission = plan.values["aws_lambda_permission.cache_refresh"]
    assert permission["principal"] == "events.amazonaws.com"
    assert plan.targets("aws_lambda_permission.cache_refresh", "source_arn") == {"aws_cloudwatch_event_rule.cache_refresh"}


def test_the_cache_refresh_reads_aurora_and_writes_redis(plan: PlanSummary) -> None:
    names = set(plan.outputs["lambda_environment_variable_names"]["cache_refresh"])
    assert {"DB_SECRET_ARN", "DB_HOST", "REDIS_AUTH_SECRET_ARN", "REDIS_HOST", "CACHE_TTL_SECONDS"} <= names


def test_raw_events_are_partitioned_by_day_with_projection_over_the_landing_layout(plan: PlanSummary) -> None:
    table = plan.values["aws_glue_catalog_table.raw_viewing_events"]
    assert [k["name"] for k in table["partition_keys"]] == ["year", "month", "day"]
    parameters = table["parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["storage.location.template"].endswith("/raw/year=${year}/month=${month}/day=${day}/")
    assert {parameters[f"projection.{k}.digits"] for k in ("month", "day")} == {"2"}


def test_expiration_pages_are_bounded_and_the_archive_is_awaited(plan: PlanSummary) -> None:
    definition = json.loads(plan.values["aws_sfn_state_machine.expiration"]["definition"])
    branches = definition["States"]["ExpireAndArchive"]["Branches"]
    expiry, archive = ({state for state in b["States"]} for b in branches)
    assert {"ExpirePage", "MorePages", "FindNextPage"} <= expiry
    assert archive == {"ArchiveViews", "WaitForArchive", "CheckArchive", "ArchiveState", "ArchiveFailed", "ArchiveDone"}
    choices = branches[1]["States"]["ArchiveState"]["Choices"]
    assert {c["StringEquals"]: c["Next"] for c in choices} == {
        "SUCCEEDED": "ArchiveDone", "FAILED": "ArchiveFailed", "CANCELLED": "ArchiveFailed"}


def test_thumbnail_uploads_trigger_the_validator(plan: PlanSummary) -> None:
    notification = "aws_s3_bucket_notification.thumbnails"
    [hook] = plan.values[notification]["lambda_function"]
    assert hook["events"] == ["s3:ObjectCreated:*"] and hook["filter_prefix"] == "uploads/"
    assert plan.targets(notification, "bucket") == {'aws_s3_bucket.this["thumbnails"]'}
    assert plan.values["aws_lambda_permission.thumbnails"]["principal"] == "s3.amazonaws.com"
