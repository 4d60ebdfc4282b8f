"""Decoding and normalising images to fully loaded 8-bit RGB PIL images."""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from omniretrieve.errors import MediaDecodeError, MediaError, MediaTooLargeError, require
from omniretrieve.media._policy import MediaPolicy

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

logger = logging.getLogger("omniretrieve.media")

IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "ICO", "AVIF")
"""Pillow formats the loader decodes, told apart by their content, never by the file extension.
Formats that run external programs (EPS) or whose signatures are too weak to sniff (TGA) are left out."""

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
_PLAIN_MODES = frozenset({"1", "L", "RGBX", "YCbCr", "HSV", "CMYK"})


def _pil() -> Any:
    return require("PIL.Image", extra=None, purpose="Loading images", package="pillow")


def check_pixels(width: int, height: int, policy: MediaPolicy, name: str, what: str = "the image") -> None:
    if width <= 0 or height <= 0:
        raise MediaDecodeError(name, f"{what} has no pixels ({width}x{height})")
    if width * height > policy.max_image_pixels:
        raise MediaTooLargeError(
            name,
            f"{what} is {width}x{height} = {width * height} pixels, over the cap of "
            f"{policy.max_image_pixels} (MediaPolicy.max_image_pixels)",
        )


def _formats() -> tuple[str, ...]:
    image = _pil()
    image.init()
    return tuple(fmt for fmt in IMAGE_FORMATS if fmt in image.OPEN)


def decode_image(data: bytes, policy: MediaPolicy, name: str, min_side: int | None = None) -> PILImage:
    """Decode encoded image bytes: size checked from the header, then fully decoded, then RGB.

    ``min_side``: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (DCT scaling, much faster) as
    long as both sides stay at least this long.
    """
    image = _pil()
    if not data:
        raise MediaDecodeError(name, "the image is empty (0 bytes)")
    try:
        opened = image.open(io.BytesIO(data), formats=_formats())
    except (image.DecompressionBombError, image.DecompressionBombWarning) as exc:
        raise MediaTooLargeError(name, f"decompression bomb refused: {exc}") from exc
    except image.UnidentifiedImageError as exc:
        raise MediaDecodeError(
            name, f"not an image in a supported format ({', '.join(IMAGE_FORMATS)})"
        ) from exc
    except Exception as exc:
        raise MediaDecodeError(name, f"cannot read the image header: {type(exc).__name__}: {exc}") from exc
    try:
        check_pixels(opened.width, opened.height, policy, name)
        if min_side and opened.format == "JPEG":
            opened.draft(None, (min_side, min_side))
        return _finish(opened, policy, name)
    finally:
        opened.close()


def normalize_pil(img: PILImage, policy: MediaPolicy, name: str) -> PILImage:
    """Normalise a caller's PIL image (never modified): pixel cap, EXIF orientation, 8-bit RGB."""
    check_pixels(img.width, img.height, policy, name)
    return _finish(img, policy, name)


def _finish(img: PILImage, policy: MediaPolicy, name: str) -> PILImage:
    image = _pil()
    try:
        img.load()  # decode everything now: a truncated file fails here, not in the model
        img = _exif_transpose(img, name)
        return _to_rgb(crop_aspect(img, policy.max_aspect_ratio), name)
    except MediaError:
        raise
    except (image.DecompressionBombError, image.DecompressionBombWarning, MemoryError) as exc:
        raise MediaTooLargeError(name, f"the image is too large to decode: {exc}") from exc
    except Exception as exc:
        raise MediaDecodeError(name, f"cannot decode the image: {type(exc).__name__}: {exc}") from exc


def crop_aspect(img: PILImage, max_ratio: float) -> PILImage:
    """``img`` cropped to its centre where its long side exceeds ``max_ratio`` times its short side."""
    width, height = img.size
    if width >= height and width > max_ratio * height:
        keep = max(1, int(max_ratio * height))
        left = (width - keep) // 2
        return img.crop((left, 0, left + keep, height))
    if height > width and height > max_ratio * width:
        keep = max(1, int(max_ratio * width))
        top = (height - keep) // 2
        return img.crop((0, top, width, top + keep))
    return img


def _exif_transpose(img: PILImage, name: str) -> PILImage:
    from PIL import ImageOps

    try:
        orientation = img.getexif().get(0x0112, 1)  # ExifTags.Base.Orientation
    except Exception as exc:  # unreadable EXIF: keep the pixels as stored
        logger.debug("%s: ignoring unreadable EXIF data: %s", name, exc)
        return img
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        transposed = ImageOps.exif_transpose(img)
        if transposed is not None:
            return transposed
    return img


def _on_white(img: PILImage) -> PILImage:
    image = _pil()
    rgba = img.convert("RGBA")
    background = image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return image.alpha_composite(background, rgba).convert("RGB")


def scale_16bit(values: np.ndarray) -> np.ndarray:
    """Scale 0..65535 to 0..255 by value (65535 -> 255, 32768 -> 128), not by clipping."""
    return np.rint(values.astype(np.float32) * np.float32(255.0 / 65535.0)).astype(np.uint8)


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, np.uint8)
    return np.rint((values.astype(np.float64) - low) * (255.0 / (high - low))).astype(np.uint8)


def _to_rgb(img: PILImage, name: str) -> PILImage:
    """Any Pillow mode to a new 8-bit RGB image (the input image is never returned itself)."""
    image = _pil()
    mode = img.mode
    if mode == "RGB":
        return img.copy()
    if mode in _PLAIN_MODES:
        return img.convert("RGB")
    if mode == "P":
        if "transparency" in img.info:
            return _on_white(img)
        return img.convert("RGB")
    if mode in _ALPHA_MODES:
        return _on_white(img if mode != "La" else img.convert("LA"))
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(img)
        if values.min() >= 0 and values.max() <= 65535:
            gray = scale_16bit(values)
        else:  # 32-bit integers beyond the 16-bit range: stretch the range actually used
            gray = _stretch(values)
        return image.fromarray(gray).convert("RGB")
    if mode == "F":
        values = np.asarray(img, dtype=np.float32)
        return image.fromarray(float_to_uint8(values, name, strict=False)).convert("RGB")
    try:
        return img.convert("RGB")
    except Exception as exc:
        raise MediaDecodeError(name, f"cannot convert image mode {mode!r} to RGB: {exc}") from exc


def float_to_uint8(values: np.ndarray, name: str, *, strict: bool) -> np.ndarray:
    """Float pixels to uint8: [0, 1] is scaled by 255.

    With ``strict`` (arrays from the caller) anything outside [0, 1] is an error; otherwise (Pillow
    ``F`` images) values in [0, 255] are taken as 8-bit levels and any other range is stretched.
    """
    if not np.isfinite(values).all():
        raise MediaDecodeError(name, "the image has NaN or infinite pixel values")
    if values.size == 0:
        raise MediaDecodeError(name, "the image has no pixels")
    low, high = float(values.min()), float(values.max())
    if low >= 0.0 and high <= 1.0:
        return np.rint(values * 255.0).astype(np.uint8)
    if strict:
        raise MediaDecodeError(
            name, f"float image arrays must hold values in [0, 1]; this one spans [{low:g}, {high:g}]"
        )
    if low >= 0.0 and high <= 255.0:
        return np.rint(values).astype(np.uint8)
    return _stretch(values)


def image_from_array(array: np.ndarray, policy: MediaPolicy, name: str) -> PILImage:
    """An ``(H, W)`` / ``(H, W, 1|3|4)`` (or channel-first) uint8, uint16, int or float array."""
    image = _pil()
    values = np.asarray(array)
    if values.ndim == 3 and values.shape[0] in (1, 3, 4) and values.shape[-1] not in (1, 3, 4):
        values = np.moveaxis(values, 0, -1)  # (C, H, W), e.g. from a tensor
    if values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.ndim not in (2, 3) or (values.ndim == 3 and values.shape[-1] not in (3, 4)):
        raise MediaDecodeError(name, "an image array must be (H, W) or (H, W, C) with C in 1, 3, 4")
    check_pixels(values.shape[1], values.shape[0], policy, name)
    values = pixels_to_uint8(values, name)
    img = image.fromarray(np.ascontiguousarray(values))
    return _to_rgb(crop_aspect(img, policy.max_aspect_ratio), name)


def pixels_to_uint8(values: np.ndarray, name: str) -> np.ndarray:
    """Pixel values of any accepted dtype to uint8 (shared with video frame arrays)."""
    kind = values.dtype.kind
    if values.dtype == np.uint8:
        return values
    if kind == "u" and values.dtype.itemsize == 1:
        return values.astype(np.uint8)
    if kind == "b":
        return values.astype(np.uint8) * np.uint8(255)
    if kind == "u" and values.dtype.itemsize == 2:  # uint16, either byte order
        return scale_16bit(values)
    if kind in "iu":
        if values.size and (values.min() < 0 or values.max() > 255):
            raise MediaDecodeError(
                name, f"integer pixel values must lie in [0, 255] (or use uint16); got dtype {values.dtype}"
            )
        return values.astype(np.uint8)
    if kind == "f":
        return float_to_uint8(values, name, strict=True)
    raise MediaDecodeError(name, f"pixel arrays of dtype {values.dtype} are not supported")
