"""Each modality end to end, through a tiny model of the family that reads it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from models_fixtures import (  # noqa: F401
    tiny_clap,
    tiny_clap_path,
    tiny_clip,
    tiny_clip_path,
    tiny_xclip,
    tiny_xclip_path,
)
from PIL import Image as PILImage

from omniretrieve.embedding import SentenceTransformerEmbedder
from omniretrieve.errors import UnsupportedModalityError
from omniretrieve.types import Audio, Image, Video


def _unit(v: Any) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _check(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.shape == (n, dim) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def _tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _frames(n: int, height: int = 36, width: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# text + image (CLIP)
# ---------------------------------------------------------------------------------------------


def test_images_from_every_source_embed_like_the_decoded_image(
    tiny_clip: SentenceTransformerEmbedder,  # noqa: F811
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    image = PILImage.fromarray(pixels)
    png = tmp_path / "a.png"
    image.save(png)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    items = [Image(image), Image(png), Image(str(png)), Image(buffer.getvalue()), Image(pixels), image]
    vectors = tiny_clip.embed(items)
    _check(vectors, len(items), 32)
    for row in vectors[1:]:
        np.testing.assert_allclose(row, vectors[0], atol=1e-5)
    np.testing.assert_allclose(vectors[0], _unit(tiny_clip.model.encode_document([image]))[0], atol=1e-5)
    yy, xx = np.mgrid[0:60, 0:80]
    smooth = PILImage.fromarray(np.stack([xx * 3, yy * 4, (xx + yy) * 2], axis=-1).astype(np.uint8))
    jpeg = tmp_path / "a.jpg"
    smooth.save(jpeg, quality=95)
    jpeg_vector, smooth_vector = tiny_clip.embed([Image(jpeg), smooth])
    assert float(jpeg_vector @ smooth_vector) > 0.99  # lossy, but the same picture


def test_jpeg_draft_decoding_is_close_to_a_full_decode(tiny_clip_path: Path, tmp_path: Path) -> None:  # noqa: F811
    from omniretrieve.media import MediaLoader

    yy, xx = np.mgrid[0:480, 0:640]
    photo = PILImage.fromarray(
        np.stack([xx % 256, yy % 256, (xx // 3 + yy // 2) % 256], axis=-1).astype(np.uint8)
    )
    path = tmp_path / "photo.jpg"
    photo.save(path, quality=92)
    draft = SentenceTransformerEmbedder(tiny_clip_path, device="cpu")
    exact = SentenceTransformerEmbedder(draft.model, draft_images=False)
    assert draft.image_min_side == 32 and exact.image_min_side is None
    fast, full = draft.embed([Image(path)])[0], exact.embed([Image(path)])[0]
    assert not np.array_equal(fast, full)  # the draft did happen
    assert float(fast @ full) > 0.99
    decoded = MediaLoader().load_image(Image(path))
    np.testing.assert_allclose(full, _unit(draft.model.encode_document([decoded]))[0], atol=1e-5)
    # PNGs and in-memory images are never drafted.
    np.testing.assert_array_equal(draft.embed([photo])[0], exact.embed([photo])[0])


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ({"shortest_edge": 224}, 224),
        ({"height": 384, "width": 256}, 384),
        ({"longest_edge": 512}, None),
        ({"shortest_edge": 224, "longest_edge": 1333}, None),
        (336, 336),
        (None, None),
    ],
)
def test_draft_size_comes_from_the_image_processor(size: Any, expected: int | None) -> None:
    from types import SimpleNamespace

    from omniretrieve.models import processor_min_side

    assert processor_min_side(SimpleNamespace(size=size, do_resize=True)) == expected
    assert processor_min_side(SimpleNamespace(size=size, do_resize=False)) is None


def test_text_to_image_search_ranks_with_the_same_vectors(tiny_clip: SentenceTransformerEmbedder) -> None:  # noqa: F811
    images = [Image(PILImage.new("RGB", (32, 32), c)) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    docs = tiny_clip.embed(images)
    query = tiny_clip.embed_query("a red square")
    scores = docs @ query
    assert scores.shape == (3,) and np.all(np.abs(scores) <= 1.0 + 1e-6)


# ---------------------------------------------------------------------------------------------
# text + audio (CLAP)
# ---------------------------------------------------------------------------------------------


def test_audio_arrays_at_any_rate_are_resampled_to_the_models(tiny_clap: SentenceTransformerEmbedder) -> None:  # noqa: F811
    assert tiny_clap.modalities == frozenset({"text", "audio"})
    assert tiny_clap.audio_sampling_rate == 16_000
    native = _tone(440, 1.0, 16_000)
    items = [
        Audio(native, sampling_rate=16_000),
        Audio(_tone(440, 1.0, 8_000), sampling_rate=8_000),
        Audio(_tone(440, 1.0, 44_100), sampling_rate=44_100),
        {"audio": {"array": _tone(440, 1.0, 22_050), "sampling_rate": 22_050}},
        Audio(np.stack([native, native], axis=1), sampling_rate=16_000),  # stereo (N, 2)
        Audio(_tone(1500, 1.0, 16_000), sampling_rate=16_000),
        "a beep",
    ]
    vectors = tiny_clap.embed(items)
    _check(vectors, len(items), 32)
    reference = _unit(
        tiny_clap.model.encode_document([{"audio": {"array": native, "sampling_rate": 16_000}}])
    )[0]
    np.testing.assert_allclose(vectors[0], reference, atol=1e-5)
    np.testing.assert_allclose(vectors[4], vectors[0], atol=1e-5)  # channels averaged
    for i in (1, 2, 3):
        assert float(vectors[i] @ vectors[0]) > 0.98, i  # the same tone after resampling
    for i, item in enumerate(items):
        np.testing.assert_allclose(vectors[i], tiny_clap.embed([item])[0], atol=1e-5, err_msg=str(i))


def test_audio_files_decode_and_resample(tiny_clap: SentenceTransformerEmbedder, tmp_path: Path) -> None:  # noqa: F811
    import soundfile

    tone = _tone(440, 1.0, 22_050)
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, tone, 22_050, subtype="FLOAT")
    flac = tmp_path / "tone.flac"
    soundfile.write(flac, tone, 22_050)
    vectors = tiny_clap.embed([Audio(wav), Audio(str(flac)), Audio(tone, sampling_rate=22_050)])
    _check(vectors, 3, 32)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-5)
    assert float(vectors[1] @ vectors[2]) > 0.99  # 16-bit FLAC quantisation


def test_long_audio_is_cropped_deterministically(tiny_clap: SentenceTransformerEmbedder) -> None:  # noqa: F811
    rng = np.random.default_rng(3)
    long_clip = rng.standard_normal(16_000 * 5).astype(np.float32) * 0.1  # 5 s, the window is 2 s
    first = tiny_clap.embed([Audio(long_clip, sampling_rate=16_000)])[0]
    for _ in range(3):
        np.testing.assert_array_equal(tiny_clap.embed([Audio(long_clip, sampling_rate=16_000)])[0], first)
    start = tiny_clap.embed([Audio(long_clip[: 16_000 * 2], sampling_rate=16_000)])[0]
    np.testing.assert_allclose(first, start, atol=1e-5)


def test_images_on_an_audio_model_are_unsupported(tiny_clap: SentenceTransformerEmbedder) -> None:  # noqa: F811
    results = tiny_clap.embed_each([Image(PILImage.new("RGB", (8, 8))), "words"])
    assert isinstance(results[0].error, UnsupportedModalityError) and results[1].ok


# ---------------------------------------------------------------------------------------------
# text + video (X-CLIP)
# ---------------------------------------------------------------------------------------------


def _write_mp4(path: Path, frames: np.ndarray, fps: int = 8) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_frames_embed_with_the_models_frame_count(tiny_xclip: SentenceTransformerEmbedder) -> None:  # noqa: F811
    assert tiny_xclip.modalities == frozenset({"text", "video"})
    assert tiny_xclip.video_num_frames == 4
    four = _frames(4, seed=1)
    eight = np.repeat(four, 2, axis=0)  # 8 frames; sampling 4 evenly gives back the 4 originals
    other = _frames(4, seed=2)
    vectors = tiny_xclip.embed([Video(four), Video(eight), Video(other), "a video of noise"])
    _check(vectors, 4, 32)
    reference = _unit(tiny_xclip.model.encode_document([{"video": four}]))[0]
    np.testing.assert_allclose(vectors[0], reference, atol=1e-5)
    np.testing.assert_allclose(vectors[1], vectors[0], atol=1e-5)
    assert not np.allclose(vectors[2], vectors[0], atol=1e-4)
    query = tiny_xclip.embed_query("a video of noise")
    assert query.shape == (32,) and np.isfinite(query).all()


def test_video_files_decode_with_pyav(tiny_xclip: SentenceTransformerEmbedder, tmp_path: Path) -> None:  # noqa: F811
    frames = np.zeros((12, 48, 64, 3), dtype=np.uint8)
    for i in range(12):  # a bright bar sweeping right: distinct, compressible frames
        frames[i, :, i * 5 : i * 5 + 8] = 255
    path = tmp_path / "clip.mp4"
    _write_mp4(path, frames)
    vectors = tiny_xclip.embed([Video(path), Video(str(path)), Video(path.read_bytes())])
    _check(vectors, 3, 32)
    np.testing.assert_allclose(vectors[1], vectors[0], atol=1e-6)
    np.testing.assert_allclose(vectors[2], vectors[0], atol=1e-6)
    decoded = tiny_xclip.media.load_video(Video(path), num_frames=4)
    assert decoded.shape == (4, 48, 64, 3) and decoded.dtype == np.uint8
    np.testing.assert_allclose(
        vectors[0], _unit(tiny_xclip.model.encode_document([{"video": decoded}]))[0], atol=1e-5
    )


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((0, 8, 8, 3), np.uint8)])
def test_malformed_frames_fail_alone(tiny_xclip: SentenceTransformerEmbedder, bad: np.ndarray) -> None:  # noqa: F811
    from omniretrieve.errors import OmniretrieveError

    results = tiny_xclip.embed_each([Video(bad), Video(_frames(4))])
    assert isinstance(results[0].error, OmniretrieveError) and results[1].ok
