"""Rekognition DetectLabels: the image read with the caller's permissions, AWS's errors, labels
from the image's content (its dominant colours)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from .helpers import unique

ACCOUNT = "123456789012"


def picture(colour: tuple[int, int, int], accent: tuple[int, int, int] | None = None, fmt: str = "PNG") -> bytes:
    """A 100x100 image of one colour, a quarter of it ``accent`` when given."""
    image = Image.new("RGB", (100, 100), colour)
    if accent is not None:
        image.paste(accent, (0, 0, 50, 50))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def bucket(aws: Callable[[str], Any]) -> str:
    name = unique("photos").lower().replace("_", "-")
    aws("s3").create_bucket(Bucket=name)
    return name


def labels_of(aws: Callable[[str], Any], bucket: str, key: str, **options: Any) -> dict[str, Any]:
    return aws("rekognition").detect_labels(Image={"S3Object": {"Bucket": bucket, "Name": key}}, **options)


def refusal(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as refused:
        call()
    return str(refused.value.response["Error"]["Code"])


def test_a_photo_is_labelled_by_its_dominant_colours_in_awss_answer_shape(
        aws: Callable[[str], Any], bucket: str) -> None:
    aws("s3").put_object(Bucket=bucket, Key="brown.png", Body=picture((140, 70, 20), accent=(250, 250, 250)))
    answer = labels_of(aws, bucket, "brown.png", MinConfidence=10)
    assert [(label["Name"], round(label["Confidence"])) for label in answer["Labels"]] == [("Brown", 75), ("White", 25)]
    assert set(answer["Labels"][0]) == {"Name", "Confidence", "Instances", "Parents", "Aliases", "Categories"}
    assert answer["ImageProperties"]["DominantColors"][0]["CSSColor"] == "Brown"


def test_min_confidence_and_max_labels_bound_the_answer(aws: Callable[[str], Any], bucket: str) -> None:
    aws("s3").put_object(Bucket=bucket, Key="mixed.jpg", Body=picture((140, 70, 20), (250, 250, 250), fmt="JPEG"))
    assert [label["Name"] for label in labels_of(aws, bucket, "mixed.jpg")["Labels"]] == ["Brown"]  # default 55 %
    assert len(labels_of(aws, bucket, "mixed.jpg", MinConfidence=0, MaxLabels=1)["Labels"]) == 1


def test_image_bytes_are_labelled_as_an_s3_object_is(aws: Callable[[str], Any]) -> None:
    answer = aws("rekognition").detect_labels(Image={"Bytes": picture((30, 60, 200))})
    assert [label["Name"] for label in answer["Labels"]] == ["Blue"]


@pytest.mark.parametrize("body", [b"not an image at all", picture((0, 0, 0), fmt="GIF")], ids=["text", "gif"])
def test_what_is_not_a_jpeg_or_png_is_an_invalid_image_format(aws: Callable[[str], Any], bucket: str,
                                                               body: bytes) -> None:
    aws("s3").put_object(Bucket=bucket, Key="odd", Body=body)
    assert refusal(lambda: labels_of(aws, bucket, "odd")) == "InvalidImageFormatException"


def test_a_missing_object_is_an_invalid_s3_object(aws: Callable[[str], Any], bucket: str) -> None:
    assert refusal(lambda: labels_of(aws, bucket, "never-uploaded.png")) == "InvalidS3ObjectException"


def test_image_bytes_over_5_mb_are_too_large(aws: Callable[[str], Any]) -> None:
    assert refusal(lambda: aws("rekognition").detect_labels(
        Image={"Bytes": b"\x89PNG" + b"0" * (5 * 1024 * 1024)})) == "ImageTooLargeException"


def test_an_out_of_range_min_confidence_is_an_invalid_parameter(aws: Callable[[str], Any], bucket: str) -> None:
    aws("s3").put_object(Bucket=bucket, Key="fine.png", Body=picture((0, 0, 0)))
    assert refusal(lambda: labels_of(aws, bucket, "fine.png", MinConfidence=101)) == "InvalidParameterException"


# --- the caller's permissions ----------------------------------------------------------------

def role_client(aws: Callable[[str], Any], sandbox: Any, statements: list[dict[str, Any]]) -> Any:
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]})
    arn = aws("iam").create_role(RoleName=unique("labeller"), AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    aws("iam").put_role_policy(RoleName=arn.split("/")[-1], PolicyName="p",
                               PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    keys = aws("sts").assume_role(RoleArn=arn, RoleSessionName="labeller")["Credentials"]
    return boto3.client("rekognition", endpoint_url=sandbox.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=keys["AccessKeyId"], aws_secret_access_key=keys["SecretAccessKey"],
                        aws_session_token=keys["SessionToken"], config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def encrypted_photo(aws: Callable[[str], Any], bucket: str) -> tuple[str, str]:
    """(object key, KMS key ARN) of a photo stored with SSE-KMS."""
    key_arn = aws("kms").create_key()["KeyMetadata"]["Arn"]
    aws("s3").put_object(Bucket=bucket, Key="sealed.png", Body=picture((34, 139, 34)),
                         ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)
    return "sealed.png", key_arn


DETECT = {"Effect": "Allow", "Action": "rekognition:DetectLabels", "Resource": "*"}


def test_a_caller_that_may_not_read_the_object_gets_invalid_s3_object(
        aws: Callable[[str], Any], sandbox: Any, bucket: str, encrypted_photo: tuple[str, str]) -> None:
    client = role_client(aws, sandbox, [DETECT])
    assert refusal(lambda: client.detect_labels(
        Image={"S3Object": {"Bucket": bucket, "Name": encrypted_photo[0]}})) == "InvalidS3ObjectException"


def test_reading_an_sse_kms_object_needs_decrypt_on_its_key_too(
        aws: Callable[[str], Any], sandbox: Any, bucket: str, encrypted_photo: tuple[str, str]) -> None:
    key, key_arn = encrypted_photo
    read = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    without_key = role_client(aws, sandbox, [DETECT, read])
    assert refusal(lambda: without_key.detect_labels(
        Image={"S3Object": {"Bucket": bucket, "Name": key}})) == "InvalidS3ObjectException"
    with_key = role_client(aws, sandbox, [DETECT, read, {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn}])
    answer = with_key.detect_labels(Image={"S3Object": {"Bucket": bucket, "Name": key}})
    assert [label["Name"] for label in answer["Labels"]] == ["Green"]


def test_an_object_in_a_bucket_of_another_region_is_an_invalid_s3_object(aws: Callable[[str], Any]) -> None:
    elsewhere = unique("photos-west").lower().replace("_", "-")
    aws("s3").create_bucket(Bucket=elsewhere, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    aws("s3").put_object(Bucket=elsewhere, Key="photo.png", Body=picture((140, 70, 20)))
    assert refusal(lambda: labels_of(aws, elsewhere, "photo.png")) == "InvalidS3ObjectException"
