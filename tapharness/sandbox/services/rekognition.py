"""Rekognition DetectLabels from the image itself (moto 5.2.5 answered one canned label, "Mobile
Phone" at 99.94 %, for any bytes or a missing object).

As the Rekognition API reference describes DetectLabels:

- the image is ``Image.Bytes`` (at most 5 MB) or ``Image.S3Object`` (at most 15 MB), read with the
  caller's own permissions, as a forward access session: ``s3:GetObject`` on the object and, for an
  SSE-KMS object, ``kms:Decrypt`` on its key. An object the caller cannot read or that does not exist
  is ``InvalidS3ObjectException``; more than the limit is ``ImageTooLargeException``;
- only JPEG and PNG are images to it: anything else (or bytes Pillow cannot decode) is
  ``InvalidImageFormatException``;
- ``MaxLabels`` (>= 0) and ``MinConfidence`` (0-100, default 55) bound the answer
  (``InvalidParameterException`` otherwise).

The labels are not a recognition model's: they name the image's dominant colours ("Brown" at the
share of its pixels closest to brown, say), deterministically from its content, with AWS's answer
shape (Name, Confidence, Instances, Parents, Aliases, Categories) and ImageProperties' quality and
dominant colours. A stack may rely on the answer's shape and errors, never on what an object is
(docs/emulation-gaps.md).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.rekognition.responses import RekognitionResponse
from moto.s3.exceptions import S3ClientError
from moto.s3.models import s3_backends
from PIL import Image, ImageStat, UnidentifiedImageError

from tapharness.sandbox import patches
from tapharness.sandbox.patches import patch

MAX_BYTES = 5 * 1024 * 1024
MAX_S3_BYTES = 15 * 1024 * 1024
_FORMATS = frozenset({"JPEG", "PNG"})
# Named colours (CSS names Rekognition's dominant colours use), by RGB.
_COLOURS = {
    "Black": (0, 0, 0), "White": (255, 255, 255), "Gray": (128, 128, 128), "Silver": (192, 192, 192),
    "Red": (220, 20, 60), "Brown": (139, 69, 19), "Orange": (255, 140, 0), "Yellow": (255, 215, 0),
    "Green": (34, 139, 34), "Blue": (30, 60, 200), "Purple": (128, 0, 128), "Pink": (255, 105, 180),
    "Beige": (222, 202, 160),
}


class RekognitionError(JsonRESTError):
    code = 400


def _refuse(code: str, message: str) -> RekognitionError:
    return RekognitionError(code, message)


def _caller_may_read(self: RekognitionResponse, bucket: str, key: str, version: str | None) -> bool:
    """s3:GetObject (and the object's key's kms:Decrypt) for the principal that signed the call, through Rekognition."""
    allows = patches.caller_allows(self, "rekognition", "rekognition.DetectLabels")
    return allows("s3:GetObjectVersion" if version else "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}")


def _image_bytes(self: RekognitionResponse, image: dict[str, Any]) -> bytes:
    if "Bytes" in image:
        try:
            raw = base64.b64decode(image["Bytes"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise _refuse("InvalidImageFormatException", "Request has invalid image format") from None
        if len(raw) > MAX_BYTES:
            raise _refuse("ImageTooLargeException", "Image size is too large.")
        return raw
    s3_object = image.get("S3Object") or {}
    bucket, key, version = s3_object.get("Bucket"), s3_object.get("Name"), s3_object.get("Version")
    unreadable = _refuse("InvalidS3ObjectException",
                         "Unable to get object metadata from S3. Check object key, region and/or access permissions.")
    if not bucket or not key:
        raise _refuse("InvalidParameterException", "Request has invalid parameters")
    if not _caller_may_read(self, bucket, key, version):
        raise unreadable
    try:
        found = s3_backends[self.current_account]["global"].get_object(bucket, key, version_id=version)
    except S3ClientError:  # moto's missing bucket, key or version: all one answer to the caller
        raise unreadable from None
    if found is None:
        raise unreadable
    bucket_region = getattr(s3_backends[self.current_account]["global"].get_bucket(bucket), "region_name", self.region)
    if bucket_region != self.region:  # "The region for the S3 bucket ... must match the region you use for Rekognition"
        raise unreadable
    if found.size > MAX_S3_BYTES:
        raise _refuse("ImageTooLargeException", "Image size is too large.")
    return bytes(found.value)


def _name(rgb: tuple[int, ...]) -> str:
    return min(_COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(_COLOURS[n], rgb, strict=False)))


def describe(raw: bytes, max_labels: int | None, min_confidence: float) -> dict[str, Any]:
    """DetectLabels' answer for an image: its dominant colours as labels (share of pixels as
    confidence), its quality and dominant colours as ImageProperties."""
    try:
        with Image.open(io.BytesIO(raw)) as opened:
            if opened.format not in _FORMATS:
                raise _refuse("InvalidImageFormatException", "Request has invalid image format")
            image = opened.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise _refuse("InvalidImageFormatException", "Request has invalid image format") from None
    small = image.copy()
    small.thumbnail((64, 64))
    shares: dict[str, float] = {}
    pixels = list(small.getdata())
    for pixel in pixels:
        name = _name(pixel)
        shares[name] = shares.get(name, 0.0) + 1 / len(pixels)
    ranked = sorted(shares.items(), key=lambda item: (-item[1], item[0]))
    labels = [{"Name": name, "Confidence": round(share * 100, 3), "Instances": [], "Parents": [], "Aliases": [],
               "Categories": [{"Name": "Colors and Visual Composition"}]}
              for name, share in ranked if share * 100 >= min_confidence]
    brightness = ImageStat.Stat(image.convert("L")).mean[0] / 255 * 100
    sharpness = min(100.0, ImageStat.Stat(image.convert("L")).stddev[0] / 128 * 100)
    return {
        "Labels": labels[:max_labels] if max_labels is not None else labels,
        "ImageProperties": {
            "Quality": {"Brightness": round(brightness, 3), "Sharpness": round(sharpness, 3),
                        "Contrast": round(sharpness, 3)},
            "DominantColors": [{"CSSColor": name, "SimplifiedColor": name.lower(), "PixelPercent": round(share * 100, 3)}
                               for name, share in ranked[:5]],
        },
        "LabelModelVersion": "3.0",
    }


@patch(RekognitionResponse, "detect_labels")
def detect_labels(self: RekognitionResponse) -> Any:
    params = json.loads(self.body or "{}")
    max_labels = params.get("MaxLabels")
    min_confidence = params.get("MinConfidence", 55)
    if (max_labels is not None and (not isinstance(max_labels, int) or max_labels < 0)) or not (
            isinstance(min_confidence, (int, float)) and 0 <= min_confidence <= 100):
        raise _refuse("InvalidParameterException", "Request has invalid parameters")
    raw = _image_bytes(self, params.get("Image") or {})
    return 200, {}, json.dumps(describe(raw, max_labels, float(min_confidence)))
