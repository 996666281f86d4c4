"""Image identification from the first bytes of a file (pure): format by magic bytes,
dimensions from the headers of PNG, GIF, WebP (VP8, VP8L, VP8X) and JPEG (SOFn)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_SIDE = 4096

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
JPEG_SOI = b"\xff\xd8\xff"
# SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_JPEG_SOF = {m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}


class Rejected(ValueError):
    """Not an acceptable image; `reason` is what content_catalog records."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Truncated(Exception):
    """The header needs more bytes than were read."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


def _need(data: bytes, length: int, complete: bool) -> None:
    if len(data) < length:
        if complete:
            raise Rejected("corrupt", "file ends inside the image header")
        raise Truncated


def _png(data: bytes, complete: bool) -> tuple[int, int]:
    _need(data, 24, complete)
    if data[12:16] != b"IHDR":
        raise Rejected("corrupt", "PNG without IHDR")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _gif(data: bytes, complete: bool) -> tuple[int, int]:
    _need(data, 10, complete)
    return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")


def _webp(data: bytes, complete: bool) -> tuple[int, int]:
    _need(data, 16, complete)
    chunk = data[12:16]
    if chunk == b"VP8 ":
        _need(data, 30, complete)
        if data[23:26] != b"\x9d\x01\x2a":
            raise Rejected("corrupt", "VP8 frame without start code")
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    if chunk == b"VP8L":
        _need(data, 25, complete)
        if data[20] != 0x2F:
            raise Rejected("corrupt", "VP8L without signature")
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        _need(data, 30, complete)
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise Rejected("corrupt", f"unknown WebP chunk {chunk!r}")


def _jpeg(data: bytes, complete: bool) -> tuple[int, int]:
    offset = 2
    while True:
        _need(data, offset + 2, complete)
        if data[offset] != 0xFF:
            raise Rejected("corrupt", f"no JPEG marker at byte {offset}")
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if marker in _JPEG_STANDALONE:
            offset += 2
            continue
        if marker in (0xD9, 0xDA):
            raise Rejected("corrupt", "JPEG without a frame header before the image data")
        _need(data, offset + 4, complete)
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        if length < 2:
            raise Rejected("corrupt", "JPEG segment with invalid length")
        if marker in _JPEG_SOF:
            _need(data, offset + 9, complete)
            height = int.from_bytes(data[offset + 5 : offset + 7], "big")
            width = int.from_bytes(data[offset + 7 : offset + 9], "big")
            return width, height
        offset += 2 + length


def probe(data: bytes, complete: bool) -> ImageInfo:
    """Identify the image in `data`, the start of the file (`complete` when it is all of it).

    Raises Truncated when more bytes are needed, Rejected when the file is not acceptable."""
    if not data:
        raise Rejected("empty")
    if data.startswith(PNG_SIGNATURE):
        fmt, (width, height) = "png", _png(data, complete)
    elif data.startswith(GIF_SIGNATURES):
        fmt, (width, height) = "gif", _gif(data, complete)
    elif data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        fmt, (width, height) = "webp", _webp(data, complete)
    elif data.startswith(JPEG_SOI):
        fmt, (width, height) = "jpeg", _jpeg(data, complete)
    elif not complete and len(data) < len(PNG_SIGNATURE):
        raise Truncated
    else:
        raise Rejected("not_an_image", "no PNG, JPEG, GIF or WebP signature")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise Rejected("bad_dimensions", f"{width}x{height} outside 1..{MAX_SIDE}")
    return ImageInfo(fmt, width, height)
