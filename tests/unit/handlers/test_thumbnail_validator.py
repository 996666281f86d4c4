"""thumbnail_validator: header parsing per format (pure, hypothesis) and the catalog
update against moto S3/DynamoDB."""

from __future__ import annotations

import struct
from typing import Any

import boto3
import pytest
import tap_common.aws
from hypothesis import given
from hypothesis import strategies as st
from tap_common import dynamo

from .conftest import REGION, TABLES, load_package, relaxed
from .factories import s3_event

mod = load_package("thumbnail_validator", "handler", "imagecheck")
ic = mod.imagecheck


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00"
    return ic.PNG_SIGNATURE + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\x00" * 4 + b"IDAT" * 8


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00" * 20


def webp_vp8(width: int, height: int) -> bytes:
    frame = b"\x00\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    return b"RIFF" + struct.pack("<I", 30) + b"WEBP" + b"VP8 " + struct.pack("<I", len(frame)) + frame + b"\x00" * 8


def webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    return b"RIFF" + struct.pack("<I", 30) + b"WEBP" + b"VP8L" + struct.pack("<I", 5) + b"\x2f" + struct.pack("<I", bits) + b"\x00" * 8


def webp_vp8x(width: int, height: int) -> bytes:
    body = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 30) + b"WEBP" + b"VP8X" + struct.pack("<I", 10) + body + b"\x00" * 8


def jpeg(width: int, height: int, app_bytes: int = 16, app_segments: int = 1) -> bytes:
    app0 = (b"\xff\xe0" + struct.pack(">H", app_bytes + 2) + b"\x00" * app_bytes) * app_segments
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof + b"\xff\xda" + b"\x00" * 32 + b"\xff\xd9"


@pytest.mark.parametrize(
    ("data", "fmt"),
    [(png(640, 360), "png"), (gif(640, 360), "gif"), (webp_vp8(640, 360), "webp"),
     (webp_vp8l(640, 360), "webp"), (webp_vp8x(640, 360), "webp"), (jpeg(640, 360), "jpeg")],
)
def test_dimensions_are_read_from_the_header(data: bytes, fmt: str) -> None:
    assert ic.probe(data, complete=True) == ic.ImageInfo(fmt, 640, 360)


@pytest.mark.parametrize("data", [b"hello world, not an image", b"%PDF-1.7\n" + b"\x00" * 40, b"\x00" * 64])
def test_other_files_are_not_images(data: bytes) -> None:
    with pytest.raises(ic.Rejected) as caught:
        ic.probe(data, complete=True)
    assert caught.value.reason == "not_an_image"


def test_empty_file_is_rejected() -> None:
    with pytest.raises(ic.Rejected) as caught:
        ic.probe(b"", complete=True)
    assert caught.value.reason == "empty"


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (4097, 10), (10, 4097)])
def test_dimensions_outside_1_to_4096_are_rejected(width: int, height: int) -> None:
    with pytest.raises(ic.Rejected) as caught:
        ic.probe(png(width, height), complete=True)
    assert caught.value.reason == "bad_dimensions"


def test_4096_pixels_per_side_is_accepted() -> None:
    assert ic.probe(gif(4096, 4096), complete=True).width == 4096


def test_header_cut_short_in_a_complete_file_is_corrupt() -> None:
    with pytest.raises(ic.Rejected) as caught:
        ic.probe(png(10, 10)[:20], complete=True)
    assert caught.value.reason == "corrupt"


def test_header_cut_short_in_a_partial_read_asks_for_more() -> None:
    with pytest.raises(ic.Truncated):
        ic.probe(jpeg(10, 10, app_bytes=5000)[:1000], complete=False)


def test_jpeg_without_frame_header_is_corrupt() -> None:
    with pytest.raises(ic.Rejected) as caught:
        ic.probe(b"\xff\xd8\xff\xda" + b"\x00" * 20, complete=True)
    assert caught.value.reason == "corrupt"


@relaxed
@given(st.binary(max_size=64), st.booleans())
def test_arbitrary_bytes_give_an_image_a_rejection_or_a_request_for_more(data: bytes, complete: bool) -> None:
    try:
        result = ic.probe(data, complete)
    except (ic.Rejected, ic.Truncated):
        return
    assert 1 <= result.width <= ic.MAX_SIDE and 1 <= result.height <= ic.MAX_SIDE


@relaxed
@given(st.sampled_from([png, gif, webp_vp8x, jpeg]), st.integers(1, 4096), st.integers(1, 4096))
def test_every_valid_size_round_trips(make: Any, width: int, height: int) -> None:
    info = ic.probe(make(width, height), complete=True)
    assert (info.width, info.height) == (width, height)


def test_content_id_comes_from_the_upload_key() -> None:
    assert [mod.handler.content_id_of(k) for k in ("uploads/c-1/a.png", "uploads/a.png", "other/c-1/a.png")] == ["c-1", None, None]


BUCKET = "tap-test-thumbnails"


@pytest.fixture
def bucket(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    monkeypatch.setenv("THUMBNAILS_BUCKET", BUCKET)
    monkeypatch.setenv("MAX_THUMBNAIL_BYTES", "5242880")
    return s3


def upload(s3: Any, key: str, data: bytes, context: Any, *, size: int | None = -1) -> dict[str, Any]:
    version = s3.put_object(Bucket=BUCKET, Key=key, Body=data)["VersionId"]
    event_size = len(data) if size == -1 else size
    return mod.handler.lambda_handler(s3_event(BUCKET, key, event_size, version), context)


def catalog(content_id: str) -> dict[str, Any] | None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    item = ddb.get_item(TableName=TABLES["CATALOG_TABLE"], Key={"content_id": {"S": content_id}}).get("Item")
    return dynamo.deserialize(item) if item else None


def test_valid_thumbnail_is_recorded_with_its_dimensions(bucket: Any, context: Any) -> None:
    upload(bucket, "uploads/c1/poster.png", png(320, 180), context)
    item = catalog("c1")
    assert (item["thumbnail_status"], item["thumbnail_key"], item["thumbnail_width"], item["thumbnail_height"]) == (
        "valid", "uploads/c1/poster.png", 320, 180,
    )


def test_url_encoded_key_in_the_event_is_decoded(bucket: Any, context: Any) -> None:
    key = "uploads/c1/my poster+1.png"
    version = bucket.put_object(Bucket=BUCKET, Key=key, Body=png(64, 64))["VersionId"]
    encoded = "uploads/c1/my+poster%2B1.png"
    mod.handler.lambda_handler(s3_event(BUCKET, encoded, len(png(64, 64)), version), context)
    item = catalog("c1")
    assert (item["thumbnail_status"], item["thumbnail_key"]) == ("valid", key)


def test_non_image_is_rejected_with_its_reason(bucket: Any, context: Any) -> None:
    upload(bucket, "uploads/c1/notes.txt", b"just text", context)
    item = catalog("c1")
    assert (item["thumbnail_status"], item["thumbnail_reason"]) == ("rejected", "not_an_image")


def test_oversize_upload_is_rejected_without_reading_it(bucket: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_THUMBNAIL_BYTES", "100")
    client = tap_common.aws.client("s3")
    reads = []
    original = client.get_object
    monkeypatch.setattr(client, "get_object", lambda **kw: reads.append(kw) or original(**kw))
    upload(bucket, "uploads/c1/big.png", png(10, 10) + b"\x00" * 200, context)
    assert (catalog("c1")["thumbnail_reason"], reads) == ("too_large", [])


def test_jpeg_with_a_large_metadata_segment_is_read_in_two_ranges(bucket: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client = tap_common.aws.client("s3")
    ranges = []
    original = client.get_object
    monkeypatch.setattr(client, "get_object", lambda **kw: ranges.append(kw["Range"]) or original(**kw))
    data = jpeg(800, 600, app_bytes=60000, app_segments=2)
    upload(bucket, "uploads/c1/photo.jpg", data, context)
    assert catalog("c1")["thumbnail_width"] == 800
    assert ranges == ["bytes=0-65535", f"bytes=0-{len(data) - 1}"]


def test_rejection_after_a_valid_thumbnail_clears_its_dimensions(bucket: Any, context: Any) -> None:
    upload(bucket, "uploads/c1/a.png", png(10, 10), context)
    upload(bucket, "uploads/c1/b.png", b"\x89PNG broken", context)
    item = catalog("c1")
    assert (item["thumbnail_status"], "thumbnail_width" in item) == ("rejected", False)


def test_valid_thumbnail_after_a_rejection_clears_the_reason(bucket: Any, context: Any) -> None:
    upload(bucket, "uploads/c1/a.txt", b"text", context)
    upload(bucket, "uploads/c1/b.gif", gif(5, 5), context)
    assert "thumbnail_reason" not in catalog("c1")


def test_object_outside_uploads_is_ignored(bucket: Any, context: Any) -> None:
    result = upload(bucket, "misc/c1/a.png", png(10, 10), context)
    assert (result["results"], catalog("c1")) == ({"misc/c1/a.png": "ignored"}, None)


def test_object_deleted_before_validation_is_skipped(bucket: Any, context: Any) -> None:
    result = mod.handler.lambda_handler(s3_event(BUCKET, "uploads/c1/gone.png", 100), context)
    assert (result["results"], catalog("c1")) == ({"uploads/c1/gone.png": "gone"}, None)


def test_size_missing_from_the_event_is_looked_up(bucket: Any, context: Any) -> None:
    upload(bucket, "uploads/c1/a.png", png(12, 34), context, size=None)
    assert catalog("c1")["thumbnail_height"] == 34


def test_aws_error_fails_the_invocation_for_retry(bucket: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_TABLE", "missing-table")
    with pytest.raises(RuntimeError, match="S3 will retry"):
        upload(bucket, "uploads/c1/a.png", png(10, 10), context)
