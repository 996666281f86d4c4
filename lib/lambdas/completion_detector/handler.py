"""Kinesis consumer (second consumer of the viewing stream): publish each 'complete'
event to the watched-complete FIFO topic with PublishBatch (10 entries per call).

Unparseable records and entries SNS reports as failed are returned in
`batchItemFailures`; other event types are acknowledged without a call.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from completion import completion_ratio, publish_entry
from tap_common import aws, batch, config
from tap_common.events import ViewingEvent
from tap_common.logs import logger as make_logger

logger = make_logger()

PUBLISH_BATCH_LIMIT = 10


def _publish(topic_arn: str, entries: dict[str, ViewingEvent]) -> list[str]:
    """Publish entries keyed by sequence number; returns the sequence numbers that failed."""
    failed: list[str] = []
    ids = list(entries)
    for chunk in batch.chunks(ids, PUBLISH_BATCH_LIMIT):
        request = [publish_entry(str(index), entries[seq]) for index, seq in enumerate(chunk)]
        try:
            response = aws.client("sns").publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=request)
        except (ClientError, BotoCoreError):
            logger.exception("publish_batch failed", extra={"entries": len(chunk)})
            failed.extend(chunk)
            continue
        refused = {chunk[int(failure["Id"])]: failure.get("Code") for failure in response.get("Failed", [])}
        for seq, code in refused.items():
            logger.error("entry not published", extra={"sequence_number": seq, "code": code})
        failed.extend(refused)
        for seq in chunk:
            if seq not in refused:  # one line per completion: the completion-funnel query counts them
                completed = entries[seq]
                logger.info("completion published", extra={
                    "event_id": completed.event_id, "user_id": completed.user_id,
                    "content_id": completed.content_id, "completion_ratio": completion_ratio(completed)})
    return failed


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failed: list[str] = []
    completes: dict[str, ViewingEvent] = {}
    for record in KinesisStreamEvent(event).records:
        seq = record.kinesis.sequence_number
        try:
            viewing = ViewingEvent.from_record(record.kinesis.data_as_json())
        except ValueError as exc:
            logger.warning("poison record", extra={"sequence_number": seq, "reason": str(exc)})
            failed.append(seq)
            continue
        if viewing.event_type == "complete":
            completes[seq] = viewing
    if completes:
        failed.extend(_publish(config.require("COMPLETE_TOPIC_ARN"), completes))
    logger.info("batch processed", extra={"published": len(completes), "failed": len(failed)})
    return batch.response(failed)
