"""Memory and integrity bounds of media loading (issue 14, classes 3 and 7).

Memory is measured in a fresh subprocess, so one test's allocations never hide another's: Python
allocations with ``tracemalloc`` (data URIs are decoded by Python code), the whole process with the
kernel's high-water mark (images are decoded and resized by Pillow and the model's processor in C).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import numpy as np
import pytest
from media_fixtures import GuardedMediaLoader, LoopbackServer, sine, wav_bytes

from omniretrieve import errors
from omniretrieve.media import MediaLoader, MediaPolicy
from omniretrieve.media._image import crop_aspect

CAP = 256 * 1024  # the policy's byte cap in the memory tests


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


def _run(script: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


_DATA_URI_SCRIPT = """
import base64, json, tracemalloc, urllib.parse
from omniretrieve.errors import MediaTooLargeError
from omniretrieve.media import MediaLoader, MediaPolicy
cap, factor, encoding = {cap}, {factor}, {encoding!r}
raw = bytes(range(256)) * (cap * factor // 256 - (1 if factor == 1 else 0))
if encoding == "base64":
    uri = "data:application/octet-stream;base64," + base64.b64encode(raw).decode()
else:
    uri = "data:application/octet-stream," + urllib.parse.quote_from_bytes(raw, safe="")
del raw
loader = MediaLoader(MediaPolicy(max_bytes=cap))
loader.read_bytes("data:;base64,QUJD")  # warm up: lazy imports are not the input's cost
loader.read_bytes("data:,%41%42")
tracemalloc.start()
try:
    out = loader.read_bytes(uri)
    outcome = len(out)
    del out
except MediaTooLargeError:
    outcome = -1
_, peak = tracemalloc.get_traced_memory()
print(json.dumps({{"peak": peak, "outcome": outcome, "chars": len(uri)}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["base64", "percent"])
@pytest.mark.parametrize("factor", [1, 10, 100])
def test_data_uri_memory_stays_within_a_small_multiple_of_the_cap(encoding: str, factor: int) -> None:
    got = _run(_DATA_URI_SCRIPT.format(cap=CAP, factor=factor, encoding=encoding))
    if factor == 1:
        assert got["outcome"] == CAP - 256  # decoded whole, byte for byte in length
    else:
        assert got["outcome"] == -1  # refused as too large
    assert got["peak"] < 20 * CAP, got


def test_data_uri_decodes_across_chunk_boundaries() -> None:
    payload = bytes(range(256)) * 1200  # > 16 Ki characters once escaped: several chunks
    import base64
    import urllib.parse

    loader = MediaLoader()
    percent = "data:," + urllib.parse.quote_from_bytes(payload, safe="")
    assert loader.read_bytes(percent) == payload
    b64 = base64.encodebytes(payload).decode()  # with line breaks every 76 characters
    assert loader.read_bytes("data:;base64," + b64) == payload
    assert loader.read_bytes("data:;base64," + urllib.parse.quote(b64, safe="")) == payload
    with pytest.raises(errors.MediaDecodeError, match="invalid base64"):
        loader.read_bytes("data:;base64," + b64[:100] + "!!" + b64[100:])


def test_truncated_download_is_an_error_not_a_shorter_clip(server: LoopbackServer) -> None:
    clip = wav_bytes(sine(1.0, 16000), 16000)
    url = server.add_truncated("/half.wav", clip[: len(clip) // 2], declared=len(clip))
    loader = GuardedMediaLoader(
        MediaPolicy(allow_urls=True, allow_private_addresses=True), allowed_ports=(server.port,)
    )
    with pytest.raises(errors.MediaFetchError, match=r"declared \d+ bytes but sent \d+"):
        loader.read_bytes(url)
    with pytest.raises(errors.MediaFetchError, match="truncated"):
        loader.load_audio(url, sampling_rate=16000)
    whole = server.add_bytes("/whole.wav", clip)
    assert loader.read_bytes(whole) == clip


def test_crop_aspect_keeps_the_centre_and_leaves_ordinary_images_alone() -> None:
    from PIL import Image as PILImage

    strip = np.zeros((1, 1000, 3), np.uint8)
    strip[0, 495:505] = 255  # a white mark in the middle
    cropped = crop_aspect(PILImage.fromarray(strip), 10.0)
    assert cropped.size == (10, 1)
    assert np.asarray(cropped).min() == 255
    tall = crop_aspect(PILImage.fromarray(np.zeros((500, 20, 3), np.uint8)), 10.0)
    assert tall.size == (20, 200)
    photo = PILImage.fromarray(np.zeros((480, 640, 3), np.uint8))
    assert crop_aspect(photo, 10.0) is photo
    with pytest.raises(errors.InvalidInputError, match="max_aspect_ratio"):
        MediaPolicy(max_aspect_ratio=0.5)


_ASPECT_SCRIPT = """
import io, json, resource
import numpy as np
from PIL import Image as PILImage
import omniretrieve
from omniretrieve import Image
embedder = omniretrieve.load_embedder("demo")
def png(w, h):
    buf = io.BytesIO()
    PILImage.fromarray(np.full((h, w, 3), 128, np.uint8)).save(buf, "PNG")
    return buf.getvalue()
warm = embedder.embed_each([Image(png(64, 48))])
assert warm[0].vector is not None
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
data = png({width}, {height})
result = embedder.embed_each([Image(data)])[0]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"extra_kib": after - before, "ok": result.vector is not None, "bytes": len(data)}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize(("width", "height"), [(2_000, 1), (20_000, 1), (200_000, 1), (1, 200_000)])
def test_extreme_aspect_ratio_images_embed_in_bounded_memory(width: int, height: int) -> None:
    got = _run(_ASPECT_SCRIPT.format(width=width, height=height))
    assert got["ok"]
    # Before the crop, 1 x 200,000 reached 2.5 GiB (the processor upsized the short side).
    assert got["extra_kib"] < 64 * 1024, got


def test_crop_leaves_a_clip_style_embedding_unchanged() -> None:
    """CLIP's processor keeps only the centre square: cropping a 30:1 strip to 10:1 changes nothing."""
    import omniretrieve
    from omniretrieve import Image

    embedder = omniretrieve.load_embedder("demo")
    rng = np.random.default_rng(0)
    strip = rng.integers(0, 256, size=(8, 240, 3), dtype=np.uint8)
    ours = embedder.embed_each([Image(strip)])[0].vector
    from PIL import Image as PILImage

    direct = embedder.model.encode([PILImage.fromarray(strip)], normalize_embeddings=True)[0]  # type: ignore[attr-defined]
    assert ours is not None
    assert float(np.dot(ours, direct)) > 0.999
