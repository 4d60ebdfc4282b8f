"""JPEG files decoded on the GPU (nvJPEG through ``torchvision.io.decode_jpeg(device="cuda")``).

Used only when the embedder's tensor image path is on, its device is CUDA and torchvision is
importable (see :mod:`omniretrieve.embedding._device_images`). Measured only on a CUDA machine
(``benchmarks/ingest_gpu.py``, ``benchmarks/results/ingest.json``, entry ``gpu``); on a machine
without CUDA none of this runs.

The policy holds as on the CPU path. The worker that reads a file (under the caller's
:class:`~omniretrieve.media.MediaPolicy`: paths, byte cap) opens its header with Pillow, without
decoding pixels (:func:`passthrough`): the pixel cap is checked there, with the same error; only a
plain case is handed on undecoded, as :class:`EncodedJpeg` (a 3-channel JPEG, EXIF orientation
absent or 1, aspect ratio within the policy's cap); any other file (another format, grayscale or
CMYK, a rotated photo, an extreme aspect ratio) is decoded on the CPU as always. Where nvJPEG fails
on a file (a truncated or unusual JPEG), that file is decoded on the CPU, which raises the typed
:class:`~omniretrieve.errors.MediaDecodeError` if it is broken.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omniretrieve.media._image import check_pixels, decode_image
from omniretrieve.media._policy import MediaPolicy

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

ORIENTATION_TAG = 0x0112
"""The EXIF orientation tag: a value other than 1 means the pixels must be turned (CPU path)."""


@dataclass(frozen=True)
class EncodedJpeg:
    """A JPEG file's bytes, checked from its header, to be decoded on the model's device.

    Attributes:
        data: The encoded bytes.
        width: Its width in pixels (from the header).
        height: Its height in pixels.
        name: The input's name, for error messages.
    """

    data: bytes
    width: int
    height: int
    name: str


def passthrough(data: bytes, policy: MediaPolicy, name: str) -> EncodedJpeg | None:
    """The file as an :class:`EncodedJpeg` when the GPU may decode it, else ``None`` (decode on the CPU).

    Raises:
        MediaTooLargeError: the header shows more pixels than ``policy.max_image_pixels`` (as the
            CPU decode would).
    """
    from PIL import Image as PILImage

    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        opened = PILImage.open(io.BytesIO(data), formats=("JPEG",))
    except Exception:  # not a JPEG Pillow reads: the CPU path gives the typed error
        return None
    with opened:
        check_pixels(opened.width, opened.height, policy, name)
        width, height = opened.size
        if opened.mode != "RGB" or max(width, height) > policy.max_aspect_ratio * min(width, height):
            return None
        try:
            orientation = opened.getexif().get(ORIENTATION_TAG, 1)
        except Exception:  # unreadable EXIF: let the CPU path decide
            return None
        if orientation not in (None, 1):
            return None
    return EncodedJpeg(data, width, height, name)


def gpu_jpeg_available(device: Any) -> bool:
    """Whether JPEGs can be decoded on ``device``: a CUDA device and an importable torchvision."""
    if getattr(device, "type", None) != "cuda":
        return False
    try:
        import torchvision.io  # noqa: F401
    except Exception:  # not installed, or built for another torch
        return False
    return True


def decode_on_device(jpegs: list[EncodedJpeg], device: torch.device, policy: MediaPolicy) -> list[Any]:
    """The JPEGs decoded on ``device``: uint8 ``(3, H, W)`` tensors there, in order.

    One batched nvJPEG call; when it fails, each file alone; a file nvJPEG cannot decode is decoded
    on the CPU instead (an RGB PIL image in its place).

    Raises:
        MediaDecodeError: a file that neither nvJPEG nor Pillow can decode (the first such).
    """
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    encoded = [torch.frombuffer(bytearray(j.data), dtype=torch.uint8) for j in jpegs]
    try:
        decoded = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
        return [_checked(t, j) for t, j in zip(decoded, jpegs, strict=True)]
    except Exception as exc:
        logger.debug("a batch of %d JPEGs failed on %s (%r); decoding one by one", len(jpegs), device, exc)
    out: list[Any] = []
    for data, jpeg in zip(encoded, jpegs, strict=True):
        try:
            out.append(_checked(decode_jpeg(data, mode=ImageReadMode.RGB, device=device), jpeg))
        except Exception:
            out.append(decode_image(jpeg.data, policy, jpeg.name))
    return out


def _checked(tensor: Any, jpeg: EncodedJpeg) -> Any:
    if tuple(tensor.shape) != (3, jpeg.height, jpeg.width):
        raise ValueError(
            f"{jpeg.name}: decoded to {tuple(tensor.shape)}, the header says {jpeg.width}x{jpeg.height}"
        )
    return tensor


__all__ = ["EncodedJpeg", "decode_on_device", "gpu_jpeg_available", "passthrough"]
