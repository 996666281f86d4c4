"""Flow 6: an upload to ``s3://<thumbnails>/uploads/<content_id>/<file>`` → thumbnail_validator →
content_catalog thumbnail fields: a valid image is recorded with its size, anything else is
rejected with a reason."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tapharness.deployed import Target
from tapharness.retry import wait_for

from .flows import HOP_TIMEOUT_S, delete_item, get_item, new_id, png, put_item

pytestmark = pytest.mark.integration


@pytest.fixture
def catalog_content(target: Target) -> Iterator[str]:
    content = new_id("content")
    put_item(target, "catalog", {"content_id": content, "title": "integration test title", "genre": "test"})
    yield content
    delete_item(target, "catalog", {"content_id": content})


def upload(target: Target, key: str, body: bytes, content_type: str) -> None:
    target.client("s3").put_object(Bucket=target.output("s3_bucket_names", "thumbnails"), Key=key, Body=body,
                                   ContentType=content_type)


def checked(target: Target, content_id: str) -> dict[str, Any]:
    return wait_for(f"a thumbnail_status on catalog item {content_id}",
                    lambda: get_item(target, "catalog", {"content_id": content_id}), HOP_TIMEOUT_S,
                    ready=lambda item: item is not None and "thumbnail_status" in item)


def test_png_upload_is_recorded_valid_with_its_size(
        target: Target, catalog_content: str, latency: Callable[..., float]) -> None:
    key = f"uploads/{catalog_content}/poster.png"
    started = time.monotonic()
    upload(target, key, png(32, 18), "image/png")
    item = checked(target, catalog_content)
    latency("S3 upload → content_catalog thumbnail", started)
    fields = {k: item.get(k) for k in ("thumbnail_status", "thumbnail_key", "thumbnail_width", "thumbnail_height",
                                       "thumbnail_reason", "title")}
    assert fields == {"thumbnail_status": "valid", "thumbnail_key": key, "thumbnail_width": 32,
                      "thumbnail_height": 18, "thumbnail_reason": None, "title": "integration test title"}


def test_non_image_upload_is_rejected_with_a_reason(target: Target, catalog_content: str) -> None:
    key = f"uploads/{catalog_content}/poster.png"
    upload(target, key, b"this is plain text, not an image\n", "image/png")
    item = checked(target, catalog_content)
    assert (item["thumbnail_status"], item.get("thumbnail_key")) == ("rejected", key), f"catalog item: {item}"
    assert item.get("thumbnail_reason"), f"no thumbnail_reason recorded: {item}"
    assert "thumbnail_width" not in item and "thumbnail_height" not in item, f"catalog item: {item}"
