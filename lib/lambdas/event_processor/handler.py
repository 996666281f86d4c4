"""API Gateway (REST, proxy v1) → Kinesis: validate a viewing event and write one record
partitioned by user_id. The record carries event_id, so a retried request is
de-duplicated downstream."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from tap_common import aws, config, http
from tap_common.logs import logger as make_logger
from validation import Rejected, parse_request

logger = make_logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = APIGatewayProxyEvent(event)
    try:
        viewing = parse_request(request.resource or request.path, request.body, request.is_base64_encoded)
    except Rejected as rejection:
        logger.info("request rejected", extra={"status": rejection.status, "field": rejection.field})
        return http.response(rejection.status, rejection.body())

    record = viewing.to_record()
    try:
        aws.client("kinesis").put_record(
            StreamName=config.require("STREAM_NAME"),
            Data=json.dumps(record, separators=(",", ":")).encode("utf-8"),
            PartitionKey=viewing.user_id,
        )
    except (ClientError, BotoCoreError):
        logger.exception("kinesis put_record failed", extra={"event_id": viewing.event_id})
        return http.response(500, {"error": "internal"})
    # The fields the stack's Logs Insights queries read (top content, a viewer's timeline).
    logger.info("event accepted", extra={
        "event_id": viewing.event_id, "event_type": viewing.event_type, "user_id": viewing.user_id,
        "content_id": viewing.content_id, "position_seconds": viewing.position_seconds,
        "duration_seconds": viewing.duration_seconds,
    })
    return http.response(202, {"event_id": viewing.event_id, "status": "accepted"})
