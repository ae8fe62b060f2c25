"""Image facts without decoding pixels: size and encoding from the file header.

Formats without image sizes (labels.txt, CMU JSON) would otherwise decode every image on load; reading the
JPEG SOF or PNG IHDR header is a thousand times cheaper. OpenCV is the fallback for anything else.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np

_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_format(data: bytes) -> str | None:
    """'jpeg', 'png', or None, from the magic bytes."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF_MARKERS and i + 9 <= n:
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return (w, h)
        i += 2 + length
    return None


def image_size_from_bytes(data: bytes) -> tuple[int, int] | None:
    """(width, height) of an encoded image, or None when it cannot be read."""
    fmt = image_format(data)
    if fmt == "png" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return (int(w), int(h))
    if fmt == "jpeg":
        size = _jpeg_size(data)
        if size is not None:
            return size
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if img is None:
        return None
    return (int(img.shape[1]), int(img.shape[0]))


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) of an image file, or None when it is missing or unreadable."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return None
    fmt = image_format(head)
    if fmt == "png" and len(head) >= 24:
        return image_size_from_bytes(head)
    if fmt == "jpeg":
        size = _jpeg_size(head)
        if size is not None:
            return size
    try:
        return image_size_from_bytes(p.read_bytes())
    except OSError:
        return None


def encode_image(image: np.ndarray, ext: str = ".png", quality: int = 95) -> bytes:
    """Encode a BGR (OpenCV) image to PNG or JPEG bytes."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode an image of shape {image.shape} as {ext}")
    return buf.tobytes()


def decode_image(data: bytes) -> np.ndarray | None:
    """Decode encoded bytes to a BGR uint8 image (None when not an image)."""
    if not data:
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
