"""S3 ObjectCreated on the thumbnails bucket (`uploads/<content_id>/<file>`) →
content_catalog thumbnail fields.

The object size comes from the event (rejected above MAX_THUMBNAIL_BYTES without a
read); the header is read with a ranged GET of the first 64 KiB, and only a JPEG whose
frame header lies further in costs a second GET. Records that hit an AWS error make the
invocation fail so S3's asynchronous retries redeliver the event.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from imagecheck import ImageInfo, Rejected, Truncated, probe
from tap_common import aws, config, dynamo
from tap_common.logs import logger as make_logger

logger = make_logger()

HEAD_BYTES = 64 * 1024
_UPLOAD_KEY = re.compile(r"uploads/([A-Za-z0-9_-]{1,64})/[^/]+")


def content_id_of(key: str) -> str | None:
    match = _UPLOAD_KEY.fullmatch(key)
    return match.group(1) if match else None


def _read(bucket: str, key: str, version: str | None, last_byte: int) -> bytes:
    request: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes=0-{last_byte}"}
    if version:
        request["VersionId"] = version
    return aws.client("s3").get_object(**request)["Body"].read()


def inspect(bucket: str, key: str, version: str | None, size: int) -> ImageInfo | str:
    """The image found in the object, or the reason it is rejected."""
    limit = config.integer("MAX_THUMBNAIL_BYTES", 5242880)
    if size == 0:
        return "empty"
    if size > limit:
        return "too_large"
    head = _read(bucket, key, version, min(size, HEAD_BYTES) - 1)
    try:
        try:
            return probe(head, complete=len(head) >= size)
        except Truncated:
            return probe(_read(bucket, key, version, size - 1), complete=True)
    except Rejected as rejection:
        return rejection.reason


def _update_catalog(content_id: str, key: str, outcome: ImageInfo | str) -> None:
    if isinstance(outcome, ImageInfo):
        update = "SET thumbnail_key = :k, thumbnail_status = :s, thumbnail_width = :w, thumbnail_height = :h REMOVE thumbnail_reason"
        values = {":k": key, ":s": "valid", ":w": outcome.width, ":h": outcome.height}
    else:
        update = "SET thumbnail_key = :k, thumbnail_status = :s, thumbnail_reason = :r REMOVE thumbnail_width, thumbnail_height"
        values = {":k": key, ":s": "rejected", ":r": outcome}
    aws.client("dynamodb").update_item(
        TableName=config.require("CATALOG_TABLE"),
        Key=dynamo.serialize({"content_id": content_id}),
        UpdateExpression=update,
        ExpressionAttributeValues=dynamo.serialize(values),
    )


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    expected_bucket = config.require("THUMBNAILS_BUCKET")
    results: dict[str, str] = {}
    errors = 0
    for record in S3Event(event).records:
        bucket, obj = record.s3.bucket.name, record.s3.get_object
        key = unquote_plus(obj.key)  # S3 events URL-encode keys ('my thumb.png' → 'my+thumb.png')
        content_id = content_id_of(key)
        if bucket != expected_bucket or content_id is None:
            logger.warning("object outside uploads/<content_id>/ ignored", extra={"bucket": bucket, "key": key})
            results[key] = "ignored"
            continue
        try:
            size = obj.get("size")
            if size is None:
                size = aws.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"]
            outcome = inspect(bucket, key, obj.version_id, int(size))
            _update_catalog(content_id, key, outcome)
        except (ClientError, BotoCoreError) as exc:
            if aws.error_code(exc) in ("NoSuchKey", "NoSuchVersion", "404"):
                logger.warning("object deleted before validation", extra={"key": key})
                results[key] = "gone"
                continue
            logger.exception("thumbnail not processed", extra={"key": key})
            errors += 1
            continue
        results[key] = "valid" if isinstance(outcome, ImageInfo) else f"rejected:{outcome}"
        logger.info("thumbnail checked", extra={"key": key, "content_id": content_id, "result": results[key]})
    if errors:
        raise RuntimeError(f"{errors} thumbnail record(s) failed; S3 will retry the event")
    return {"results": results}
