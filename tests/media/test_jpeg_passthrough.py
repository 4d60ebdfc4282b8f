"""JPEG files handed on undecoded for the GPU (media/_gpu_decode.py, DecodeSpec.jpeg_passthrough).

Only the header is read (Pillow, no pixels), and only plain files pass: the policy's pixel cap
still raises; rotated, grayscale, non-JPEG and extreme-aspect files are decoded on the CPU as
always. The GPU decode itself needs CUDA and torchvision (benchmarks/ingest_gpu.py).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from omniretrieve.errors import MediaTooLargeError
from omniretrieve.media import MediaPolicy
from omniretrieve.media._gpu_decode import EncodedJpeg, gpu_jpeg_available, passthrough
from omniretrieve.media._workers import DecodeFailure, DecodeSpec, decode

POLICY = MediaPolicy()


def _encoded(size: tuple[int, int] = (64, 48), mode: str = "RGB", fmt: str = "JPEG", **save: object) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = PILImage.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)  # type: ignore[arg-type]
    return buffer.getvalue()


def _rotated() -> bytes:
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    return _encoded(exif=exif.tobytes())


def test_a_plain_jpeg_passes_with_its_header_size() -> None:
    data = _encoded((64, 48))
    encoded = passthrough(data, POLICY, "photo.jpg")
    assert encoded == EncodedJpeg(data, 64, 48, "photo.jpg")


@pytest.mark.parametrize(
    "data",
    [
        _encoded(fmt="PNG"),
        _encoded(mode="L"),
        _encoded(mode="CMYK"),
        _rotated(),
        _encoded((400, 20)),  # beyond the policy's aspect ratio: the CPU path crops it
        b"\xff\xd8\xff truncated header",
    ],
    ids=["png", "grayscale", "cmyk", "exif-rotated", "extreme-aspect", "broken"],
)
def test_other_files_are_decoded_on_the_cpu(data: bytes) -> None:
    assert passthrough(data, POLICY, "x.jpg") is None


def test_the_pixel_cap_still_holds() -> None:
    with pytest.raises(MediaTooLargeError, match="max_image_pixels"):
        passthrough(_encoded((64, 48)), MediaPolicy(max_image_pixels=1000), "big.jpg")


def test_workers_send_plain_jpegs_undecoded_only_when_asked(tmp_path: Path) -> None:
    photo, rotated = tmp_path / "photo.jpg", tmp_path / "rotated.jpg"
    photo.write_bytes(_encoded((64, 48)))
    rotated.write_bytes(_rotated())
    asked = DecodeSpec(POLICY, jpeg_passthrough=True)
    assert isinstance(decode(asked, "image", str(photo), "photo.jpg"), EncodedJpeg)
    upright = decode(asked, "image", str(rotated), "rotated.jpg")
    assert isinstance(upright, PILImage.Image) and upright.size == (48, 64)  # turned on the CPU
    assert isinstance(decode(DecodeSpec(POLICY), "image", str(photo), "photo.jpg"), PILImage.Image)
    capped = decode(
        DecodeSpec(MediaPolicy(max_image_pixels=100), jpeg_passthrough=True), "image", str(photo), "p"
    )
    assert isinstance(capped, DecodeFailure) and capped.cls is MediaTooLargeError


def test_no_gpu_decoding_without_cuda() -> None:
    import torch

    assert not gpu_jpeg_available(torch.device("cpu"))
