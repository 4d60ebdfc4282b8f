"""Unit behaviour of omniretrieve.media: normalisation checked on values, sources, policy, from_path."""

from __future__ import annotations

import base64
import io
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote_from_bytes

import numpy as np
import pytest
from media_fixtures import (
    GuardedMediaLoader,
    StaticResolver,
    animated_gif,
    cmyk_jpeg,
    encode_image,
    exif_rotated_jpeg,
    frame_levels,
    no_remote_connections,
    noisy_image,
    palette_transparent_png,
    png16_gray,
    png16_rgb,
    png_header_only,
    rgb_png,
    sine,
    truncated,
    video_bytes,
    wav_bytes,
)
from PIL import Image as PILImage
from PIL import ImageFile

from omniretrieve import errors
from omniretrieve.media import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    TEXT_EXTENSIONS,
    VIDEO_EXTENSIONS,
    MediaLoader,
    MediaPolicy,
    address_refusal,
    from_path,
)
from omniretrieve.media._video import uniform_indices
from omniretrieve.types import Audio, Image, Text, Video


@pytest.fixture(autouse=True)
def _only_loopback() -> Iterator[None]:
    with no_remote_connections():
        yield


@pytest.fixture
def loader() -> MediaLoader:
    return MediaLoader()


def pixels(img: PILImage.Image) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


# -- images -------------------------------------------------------------------------------------


def test_16bit_gray_png_is_scaled_not_clipped(loader: MediaLoader) -> None:
    data = png16_gray(np.array([[65535, 32768], [0, 257]]))
    got = pixels(loader.load_image(Image(data)))
    assert got[..., 0].tolist() == [[255, 128], [0, 1]]
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()


def test_16bit_rgb_png_keeps_the_scale(loader: MediaLoader) -> None:
    values = np.zeros((2, 2, 3), np.uint16)
    values[0, 0] = [65535, 32768, 0]
    got = pixels(loader.load_image(Image(png16_rgb(values))))
    assert got[0, 0].tolist() == [255, 128, 0]


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_16bit_pil_modes_are_scaled(loader: MediaLoader, mode: str) -> None:
    values = np.array([[65535, 32768, 0, 514]], np.uint16)
    if mode == "I":
        img = PILImage.fromarray(values.astype(np.int32))
    else:
        img = PILImage.fromarray(values.astype(">u2" if mode == "I;16B" else np.uint16))
    assert img.mode == mode
    assert pixels(loader.load_image(img))[0, :, 0].tolist() == [255, 128, 0, 2]


def test_float_mode_image(loader: MediaLoader) -> None:
    unit = PILImage.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert unit.mode == "F"
    assert pixels(loader.load_image(unit))[0, :, 0].tolist() == [0, 128, 255]
    levels = PILImage.fromarray(np.array([[0.0, 100.0, 200.0]], np.float32))
    assert pixels(loader.load_image(levels))[0, :, 0].tolist() == [0, 100, 200]
    wide = PILImage.fromarray(np.array([[-1.0, 0.0, 3.0]], np.float32))
    assert pixels(loader.load_image(wide))[0, :, 0].tolist() == [0, 64, 255]


def test_palette_transparency_is_white(loader: MediaLoader) -> None:
    got = pixels(loader.load_image(Image(palette_transparent_png())))
    assert got[0, 0].tolist() == [255, 255, 255]  # transparent red -> white
    assert got[0, 7].tolist() == [0, 255, 0]


def test_alpha_modes_are_composited_on_white(loader: MediaLoader) -> None:
    rgba = PILImage.new("RGBA", (2, 1), (255, 0, 0, 0))
    rgba.putpixel((1, 0), (255, 0, 0, 128))
    got = pixels(loader.load_image(rgba))
    assert got[0, 0].tolist() == [255, 255, 255]
    assert got[0, 1, 0] == 255 and abs(got[0, 1, 1] - 127) <= 1 and abs(got[0, 1, 2] - 127) <= 1
    la = PILImage.new("LA", (1, 1), (0, 0))
    assert pixels(loader.load_image(la))[0, 0].tolist() == [255, 255, 255]
    pa = PILImage.new("PA", (1, 1), (0, 0))
    assert pixels(loader.load_image(pa))[0, 0].tolist() == [255, 255, 255]


def test_cmyk_becomes_rgb(loader: MediaLoader) -> None:
    got = pixels(loader.load_image(Image(cmyk_jpeg((0, 255, 255, 0)))))
    assert np.abs(got[4, 4] - [255, 0, 0]).max() <= 6
    in_memory = PILImage.new("CMYK", (1, 1), (255, 0, 255, 0))
    assert pixels(loader.load_image(in_memory))[0, 0].tolist() == [0, 255, 0]


def test_exif_orientation_is_applied(loader: MediaLoader) -> None:
    data = exif_rotated_jpeg(6)  # stored 40x20, left red / right blue; displayed rotated 90 degrees
    img = loader.load_image(Image(data))
    assert img.size == (20, 40)
    got = pixels(img)
    assert got[3, 10, 0] > 200 and got[3, 10, 2] < 50  # top: red
    assert got[-4, 10, 2] > 200 and got[-4, 10, 0] < 50  # bottom: blue


def test_exif_orientation_is_applied_to_pil_images_without_touching_them(loader: MediaLoader) -> None:
    original = PILImage.open(io.BytesIO(exif_rotated_jpeg(6)))
    img = loader.load_image(original)
    assert img.size == (20, 40)
    assert original.size == (40, 20)
    assert original.getexif().get(0x0112) == 6


def test_animated_image_gives_its_first_frame(loader: MediaLoader) -> None:
    got = pixels(loader.load_image(Image(animated_gif(((255, 0, 0), (0, 255, 0))))))
    assert np.abs(got[4, 4] - [255, 0, 0]).max() <= 6


def test_content_not_extension_decides(loader: MediaLoader, tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(rgb_png(6, 5, (1, 2, 3)))
    got = pixels(loader.load_image(Image(path)))
    assert got.shape == (5, 6, 3) and got[0, 0].tolist() == [1, 2, 3]


def test_truncated_image_fails_up_front(loader: MediaLoader) -> None:
    data = truncated(encode_image(noisy_image(), "PNG"), 0.6)
    with pytest.raises(errors.MediaDecodeError):
        loader.load_image(Image(data))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_result_is_a_new_loaded_image(loader: MediaLoader) -> None:
    source = PILImage.new("RGB", (3, 3), (9, 9, 9))
    out = loader.load_image(source)
    assert out is not source
    out.putpixel((0, 0), (1, 1, 1))
    assert source.getpixel((0, 0)) == (9, 9, 9)
    decoded = loader.load_image(Image(rgb_png()))
    assert type(decoded) is PILImage.Image  # detached from any file


def test_min_side_decodes_jpeg_at_reduced_scale(loader: MediaLoader) -> None:
    jpeg = encode_image(noisy_image(400, 300), "JPEG")
    assert loader.load_image(Image(jpeg)).size == (400, 300)
    assert loader.load_image(Image(jpeg), min_side=100).size == (200, 150)
    assert loader.load_image(Image(jpeg), min_side=224).size == (400, 300)
    assert loader.load(Image(jpeg), min_side=30).size == (50, 38)
    assert loader.load_image(Image(rgb_png(400, 300)), min_side=100).size == (400, 300)
    with pytest.raises(errors.InvalidInputError):
        loader.load_image(Image(jpeg), min_side=0)


def test_pixel_cap_is_the_policy_not_pillow() -> None:
    small_cap = MediaLoader(MediaPolicy(max_image_pixels=100))
    with pytest.raises(errors.MediaTooLargeError):
        small_cap.load_image(Image(rgb_png(16, 12)))
    with pytest.raises(errors.MediaTooLargeError):
        small_cap.load_image(PILImage.new("RGB", (11, 10)))
    with pytest.raises(errors.MediaTooLargeError):
        small_cap.load_image(np.zeros((10, 11), np.uint8))
    assert small_cap.load_image(PILImage.new("RGB", (10, 10))).size == (10, 10)


@pytest.mark.parametrize("action", ["error", "ignore"])
def test_bomb_in_pillow_warning_range_is_refused(
    loader: MediaLoader, action: Literal["error", "ignore"]
) -> None:
    data = png_header_only(10_000, 10_000)  # over Pillow's warning limit, under its error limit
    with warnings.catch_warnings():
        warnings.simplefilter(action)
        with pytest.raises(errors.MediaTooLargeError):
            loader.load_image(Image(data))


def test_image_arrays(loader: MediaLoader) -> None:
    gray = loader.load_image(np.array([[0, 128, 255]], np.uint8))
    assert pixels(gray)[0, :, 0].tolist() == [0, 128, 255]
    floats = loader.load_image(Image(np.full((2, 2, 3), 0.5, np.float32)))
    assert pixels(floats)[0, 0].tolist() == [128, 128, 128]
    chw = np.zeros((3, 4, 5), np.uint8)
    chw[0] = 255
    img = loader.load_image(Image(chw))
    assert img.size == (5, 4) and pixels(img)[0, 0].tolist() == [255, 0, 0]
    wide = loader.load_image(Image(np.array([[65535, 32768]], np.uint16)))
    assert pixels(wide)[0, :, 0].tolist() == [255, 128]
    wide_be = loader.load_image(Image(np.array([[65535, 32768]], ">u2")))
    assert pixels(wide_be)[0, :, 0].tolist() == [255, 128]
    rgba = np.zeros((1, 1, 4), np.uint8)
    assert pixels(loader.load_image(Image(rgba)))[0, 0].tolist() == [255, 255, 255]
    assert pixels(loader.load_image(Image(np.ones((1, 1), bool))))[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize(
    "array",
    [
        np.full((2, 2), 1.5, np.float32),
        np.full((2, 2), -0.1, np.float64),
        np.full((2, 2), np.inf, np.float32),
        np.full((2, 2), 300, np.int64),
        np.zeros((2, 2, 2), np.uint8),
        np.zeros((2, 2, 3, 3), np.uint8),
        np.zeros((0, 4), np.uint8),
        np.zeros((2, 2), np.complex64),
    ],
)
def test_bad_image_arrays(loader: MediaLoader, array: np.ndarray) -> None:
    with pytest.raises(errors.MediaDecodeError):
        loader.load_image(Image(array))


# -- audio --------------------------------------------------------------------------------------


def test_audio_channels_are_averaged_either_layout(loader: MediaLoader) -> None:
    left = np.full(1000, 0.5, np.float32)
    right = np.zeros(1000, np.float32)
    frames_first = np.stack([left, right], axis=1)  # (N, C)
    channels_first = np.stack([left, right], axis=0)  # (C, N)
    for array in (frames_first, channels_first):
        out = loader.load_audio(Audio(array, sampling_rate=16_000), sampling_rate=16_000)
        assert out.shape == (1000,) and out.dtype == np.float32
        assert np.allclose(out, 0.25)


def test_audio_integers_are_scaled(loader: MediaLoader) -> None:
    out = loader.load_audio(
        Audio(np.array([16384, -32768, 0], np.int16), sampling_rate=8000), sampling_rate=8000
    )
    assert out.tolist() == [0.5, -1.0, 0.0]
    out = loader.load_audio(Audio(np.array([128, 0, 192], np.uint8), sampling_rate=8000), sampling_rate=8000)
    assert out.tolist() == [0.0, -1.0, 0.5]
    out = loader.load_audio(Audio(np.array([2**30], np.int32), sampling_rate=8000), sampling_rate=8000)
    assert out.tolist() == [0.5]
    big_endian = np.array([16384, -16384], ">i2")
    out = loader.load_audio(Audio(big_endian, sampling_rate=8000), sampling_rate=8000)
    assert out.tolist() == [0.5, -0.5]


def test_audio_is_resampled(loader: MediaLoader) -> None:
    rate, freq = 8000, 440.0
    out = loader.load_audio(Audio(sine(1.0, rate, freq), sampling_rate=rate), sampling_rate=16_000)
    assert out.shape == (16_000,) and out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out))
    peak_hz = np.argmax(spectrum) * 16_000 / out.shape[0]
    assert abs(peak_hz - freq) < 2


def test_audio_file_stereo_and_rate(loader: MediaLoader, tmp_path: Path) -> None:
    stereo = np.stack([sine(0.5, 8000), -sine(0.5, 8000)], axis=1)  # cancels out when averaged
    path = tmp_path / "s.wav"
    path.write_bytes(wav_bytes(stereo, 8000))
    out = loader.load_audio(Audio(path), sampling_rate=16_000)
    assert out.ndim == 1 and out.shape[0] == 8000 and out.dtype == np.float32
    assert np.abs(out).max() < 1e-3
    mono = np.stack([sine(0.5, 8000), sine(0.5, 8000)], axis=1)
    out = loader.load_audio(Audio(wav_bytes(mono, 8000)), sampling_rate=8000)
    assert np.allclose(out, sine(0.5, 8000), atol=1e-3)


def test_audio_flac_bytes(loader: MediaLoader) -> None:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, sine(0.25, 16_000), 16_000, format="FLAC")
    out = loader.load_audio(Audio(buf.getvalue()), sampling_rate=16_000)
    assert out.shape == (4000,)


def test_audio_source_rate_and_shapes(loader: MediaLoader) -> None:
    out = loader.load_audio(np.zeros((1, 800), np.float32), sampling_rate=16_000, source_rate=8000)
    assert out.shape == (1600,)
    out = loader.load_audio(Audio(np.zeros((1, 1, 400), np.float32), sampling_rate=8000), sampling_rate=8000)
    assert out.shape == (400,)


@pytest.mark.parametrize(
    "samples",
    [
        np.array([0.0, np.nan, 0.0], np.float32),
        np.array([0.0, np.inf], np.float64),
        np.zeros((0,), np.float32),
        np.zeros((100, 100), np.float32),  # no plausible channel axis
        np.array(["a", "b"]),
        np.zeros((2, 2, 2), np.float32),
    ],
)
def test_bad_audio_arrays(loader: MediaLoader, samples: np.ndarray) -> None:
    with pytest.raises(errors.MediaDecodeError):
        loader.load_audio(Audio(samples, sampling_rate=8000), sampling_rate=8000)


def test_audio_caps_and_parameters() -> None:
    short = MediaLoader(MediaPolicy(max_audio_seconds=1.0))
    with pytest.raises(errors.MediaTooLargeError):
        short.load_audio(Audio(np.zeros(16_001, np.float32), sampling_rate=16_000), sampling_rate=16_000)
    with pytest.raises(errors.MediaTooLargeError):
        short.load_audio(Audio(wav_bytes(np.zeros(24_000, np.float32), 16_000)), sampling_rate=16_000)
    assert short.load_audio(
        Audio(np.zeros(16_000, np.float32), sampling_rate=16_000), sampling_rate=16_000
    ).shape == (16_000,)
    for bad in (0, -1, 1.5, "16000", True):
        with pytest.raises(errors.InvalidInputError):
            short.load_audio(Audio(np.zeros(10, np.float32), sampling_rate=8000), sampling_rate=bad)  # type: ignore[arg-type]
    with pytest.raises(errors.MediaDecodeError):
        short.load_audio(Audio(np.zeros(10, np.float32), sampling_rate=0), sampling_rate=8000)


def test_missing_audio_extra_is_named(monkeypatch: pytest.MonkeyPatch, loader: MediaLoader) -> None:
    monkeypatch.setitem(sys.modules, "soxr", None)
    with pytest.raises(errors.MissingDependencyError) as info:
        loader.load_audio(Audio(np.zeros(100, np.float32), sampling_rate=8000), sampling_rate=16_000)
    assert info.value.extra == "audio"


# -- video --------------------------------------------------------------------------------------


def test_uniform_indices() -> None:
    assert uniform_indices(10, 5).tolist() == [1, 3, 5, 7, 9]
    assert uniform_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    assert uniform_indices(1, 3).tolist() == [0, 0, 0]
    assert uniform_indices(100, 1).tolist() == [50]


@pytest.mark.parametrize("container", ["mp4", "matroska", "avi"])
def test_video_frames_are_sampled_uniformly(loader: MediaLoader, container: str, tmp_path: Path) -> None:
    path = tmp_path / "clip.bin"
    path.write_bytes(video_bytes(container, frames=10))  # frame i has gray level 20 * i
    out = loader.load_video(Video(path), num_frames=5)
    assert out.dtype == np.uint8 and out.shape == (5, 24, 32, 3)
    expected = [20, 60, 100, 140, 180]  # frames 1, 3, 5, 7, 9
    assert all(abs(g - e) <= 6 for g, e in zip(frame_levels(out), expected, strict=True)), frame_levels(out)


def test_short_video_repeats_frames_and_resizes(loader: MediaLoader) -> None:
    out = loader.load_video(Video(video_bytes("mp4", frames=3)), num_frames=6, size=(16, 20))
    assert out.shape == (6, 16, 20, 3)
    levels = frame_levels(out)
    assert all(abs(g - e) <= 6 for g, e in zip(levels, [0, 0, 20, 20, 40, 40], strict=True)), levels


def test_video_frame_arrays(loader: MediaLoader) -> None:
    frames = np.stack([np.full((4, 6, 3), 10 * i, np.uint8) for i in range(8)])
    out = loader.load_video(Video(frames), num_frames=4)
    assert out.shape == (4, 4, 6, 3) and frame_levels(out) == [10, 30, 50, 70]
    out = loader.load_video(Video(frames), num_frames=2, size=(2, 3))
    assert out.shape == (2, 2, 3, 3)
    gray = loader.load_video(Video(np.zeros((3, 4, 4), np.uint8)), num_frames=3)
    assert gray.shape == (3, 4, 4, 3)
    floats = loader.load_video(Video(np.full((2, 2, 2, 3), 1.0, np.float32)), num_frames=1)
    assert floats.tolist() == np.full((1, 2, 2, 3), 255, np.uint8).tolist()
    clear = loader.load_video(Video(np.zeros((1, 2, 2, 4), np.uint8)), num_frames=1)
    assert (clear == 255).all()


def test_video_caps_and_parameters(loader: MediaLoader) -> None:
    data = video_bytes("mp4", frames=20)
    with pytest.raises(errors.MediaTooLargeError):
        MediaLoader(MediaPolicy(max_video_frames=10)).load_video(Video(data), num_frames=2)
    with pytest.raises(errors.MediaTooLargeError):
        MediaLoader(MediaPolicy(max_video_seconds=1.0)).load_video(Video(data), num_frames=2)
    with pytest.raises(errors.MediaTooLargeError):
        MediaLoader(MediaPolicy(max_image_pixels=100)).load_video(Video(data), num_frames=2)
    with pytest.raises(errors.MediaTooLargeError):
        MediaLoader(MediaPolicy(max_video_frames=3)).load_video(
            Video(np.zeros((4, 2, 2, 3), np.uint8)), num_frames=2
        )
    for bad in (0, -1, 2.0, True):
        with pytest.raises(errors.InvalidInputError):
            loader.load_video(Video(data), num_frames=bad)  # type: ignore[arg-type]
    for size in ((0, 4), (4,), (4, 4.0)):
        with pytest.raises(errors.InvalidInputError):
            loader.load_video(Video(data), num_frames=2, size=size)  # type: ignore[arg-type]


# -- bytes, data URIs, paths, policy ----------------------------------------------------------


def test_data_uris(loader: MediaLoader) -> None:
    png = rgb_png(3, 2)
    b64 = base64.b64encode(png).decode()
    assert loader.read_bytes("data:image/png;base64," + b64) == png
    assert loader.read_bytes("DATA:image/png;BASE64," + b64.rstrip("=")) == png  # no padding
    assert loader.read_bytes("data:;base64," + b64[:20] + "\n" + b64[20:]) == png
    assert loader.read_bytes("data:application/octet-stream," + quote_from_bytes(png)) == png
    assert loader.read_bytes("data:,hello%20world") == b"hello world"
    assert loader.load_image(Image("data:image/png;base64," + b64)).size == (3, 2)
    with pytest.raises(errors.MediaDecodeError):
        loader.read_bytes("data:image/png;base64")
    with pytest.raises(errors.MediaTooLargeError):
        MediaLoader(MediaPolicy(max_bytes=10)).read_bytes("data:," + "x" * 11)


def test_bytes_cap(loader: MediaLoader) -> None:
    assert loader.read_bytes(bytearray(b"abc")) == b"abc"
    with pytest.raises(errors.MediaTooLargeError):
        MediaLoader(MediaPolicy(max_bytes=2)).read_bytes(b"abc")
    with pytest.raises(errors.MediaDecodeError):
        loader.read_bytes(12345)  # type: ignore[arg-type]


@pytest.fixture
def jail(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "in.txt").write_bytes(b"inside")
    (outside / "out.txt").write_bytes(b"outside")
    return root, outside


def test_allowed_roots(jail: tuple[Path, Path]) -> None:
    root, outside = jail
    loader = MediaLoader(MediaPolicy(allowed_roots=(root,)))
    assert loader.read_bytes(root / "sub" / "in.txt") == b"inside"
    assert loader.read_bytes(str(root / "sub" / ".." / "sub" / "in.txt")) == b"inside"  # .. that stays inside
    (root / "inner_link.txt").symlink_to(root / "sub" / "in.txt")
    assert loader.read_bytes(root / "inner_link.txt") == b"inside"
    with pytest.raises(errors.PathNotAllowedError):
        loader.read_bytes(str(root / ".." / "outside" / "out.txt"))
    (root / "escape.txt").symlink_to(outside / "out.txt")
    with pytest.raises(errors.PathNotAllowedError):
        loader.read_bytes(root / "escape.txt")
    (root / "dirlink").symlink_to(outside)
    with pytest.raises(errors.PathNotAllowedError):
        loader.read_bytes(root / "dirlink" / "out.txt")
    # A sibling whose name starts like the root is not inside it.
    sibling = root.parent / (root.name + "2")
    sibling.mkdir()
    (sibling / "x.txt").write_bytes(b"x")
    with pytest.raises(errors.PathNotAllowedError):
        loader.read_bytes(sibling / "x.txt")
    # Refused before existence is revealed.
    with pytest.raises(errors.PathNotAllowedError):
        loader.read_bytes(outside / "missing.txt")


def test_allowed_roots_given_bare_and_empty(jail: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = jail
    policy = MediaPolicy(allowed_roots=str(root))  # type: ignore[arg-type]
    assert policy.allowed_roots == (str(root),)
    monkeypatch.chdir(root)
    assert MediaLoader(policy).read_bytes("sub/in.txt") == b"inside"  # relative to the cwd
    with pytest.raises(errors.PathNotAllowedError):
        MediaLoader(MediaPolicy(allowed_roots=())).read_bytes(root / "sub" / "in.txt")


def test_special_files_are_refused_without_opening(tmp_path: Path, loader: MediaLoader) -> None:
    with pytest.raises(errors.MediaNotFoundError, match="directory"):
        loader.read_bytes(tmp_path)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        with pytest.raises(errors.MediaNotFoundError, match="FIFO"):
            loader.read_bytes(fifo)  # would block forever if opened for reading
    with pytest.raises(errors.MediaNotFoundError):
        loader.read_bytes(tmp_path / "nope.png")
    with pytest.raises(errors.MediaNotFoundError):
        loader.read_bytes("bad\x00path.png")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "gone")
    with pytest.raises(errors.MediaNotFoundError):
        loader.read_bytes(dangling)


def test_url_shaped_strings_and_paths(tmp_path: Path, loader: MediaLoader) -> None:
    resolver = StaticResolver({})
    guarded = GuardedMediaLoader(resolver=resolver)
    with pytest.raises(errors.URLNotAllowedError):
        guarded.read_bytes("http://media.example.test/a.png")
    with pytest.raises(errors.URLNotAllowedError):
        guarded.read_bytes("HTTPS://media.example.test/a.png")
    with pytest.raises(errors.URLNotAllowedError):
        guarded.read_bytes("file:/etc/passwd")
    assert resolver.calls == [] and guarded.connects == []
    # A PathLike is always a path, however it is spelled.
    odd = tmp_path / "http:"
    odd.mkdir()
    (odd / "x.png").write_bytes(b"png?")
    assert loader.read_bytes(Path(odd / "x.png")) == b"png?"


def test_policy_validation_and_hosts() -> None:
    assert MediaPolicy(allowed_hosts=("Media.Example.TEST.",)).allowed_hosts == ("media.example.test",)
    assert MediaPolicy(allowed_hosts="a.test").allowed_hosts == ("a.test",)  # type: ignore[arg-type]
    assert MediaPolicy(allowed_hosts=("Bücher.Example",)).host_is_trusted("xn--bcher-kva.example")
    assert not MediaPolicy(allowed_hosts=("a.test",)).host_is_trusted("b.a.test")
    assert MediaPolicy().user_agent.startswith("omniretrieve/")
    bad: list[tuple[str, Any]] = [
        ("max_bytes", 0),
        ("max_bytes", 1.5),
        ("max_image_pixels", -1),
        ("read_timeout", 0),
        ("connect_timeout", -1.0),
        ("max_redirects", -1),
        ("max_audio_seconds", float("nan")),
        ("max_video_frames", True),
    ]
    for field, value in bad:
        with pytest.raises(errors.InvalidInputError):
            MediaPolicy(**{field: value})


@pytest.mark.parametrize(
    ("ip", "refused"),
    [
        ("8.8.8.8", False),
        ("93.184.216.34", False),
        ("2606:4700::1111", False),
        ("::ffff:8.8.8.8", False),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("10.1.2.3", True),
        ("172.31.0.1", True),
        ("192.168.0.1", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("0.0.0.0", True),
        ("224.0.0.251", True),
        ("240.0.0.1", True),
        ("255.255.255.255", True),
        ("::1", True),
        ("::", True),
        ("fe80::1", True),
        ("fd12:3456::1", True),
        ("ff02::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:169.254.169.254", True),
        ("64:ff9b::a00:1", True),
        ("2002:a00:1::1", True),
        ("2001:db8::1", True),
    ],
)
def test_address_refusal(ip: str, refused: bool) -> None:
    assert (address_refusal(ip) is not None) is refused


# -- from_path and dispatch ---------------------------------------------------------------------


def test_from_path_by_extension(tmp_path: Path) -> None:
    assert isinstance(from_path("a.PNG"), Image)
    assert isinstance(from_path(tmp_path / "b.wav"), Audio)
    assert isinstance(from_path("c.mkv"), Video)
    item = from_path("http://media.example.test/x.png")
    assert isinstance(item, Image) and isinstance(item.source, Path)  # a path, never a URL
    notes = tmp_path / "notes.md"
    notes.write_bytes("\ufeff# Title\nbody ü".encode())
    text = from_path(notes)
    assert isinstance(text, Text) and text.text == "# Title\nbody ü"
    with pytest.raises(errors.MediaDecodeError, match="xyz"):
        from_path(tmp_path / "thing.xyz")
    with pytest.raises(errors.MediaDecodeError, match="(none)"):
        from_path(tmp_path / "Makefile")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9")
    with pytest.raises(errors.MediaDecodeError):
        from_path(latin)
    with pytest.raises(errors.PathNotAllowedError):
        from_path(notes, policy=MediaPolicy(allowed_roots=(tmp_path / "elsewhere",)))
    assert not (IMAGE_EXTENSIONS & AUDIO_EXTENSIONS) and not (VIDEO_EXTENSIONS & TEXT_EXTENSIONS)
    assert not (IMAGE_EXTENSIONS & VIDEO_EXTENSIONS) and not (AUDIO_EXTENSIONS & VIDEO_EXTENSIONS)


def test_from_path_items_load(tmp_path: Path, loader: MediaLoader) -> None:
    (tmp_path / "p.png").write_bytes(rgb_png(2, 2))
    (tmp_path / "a.wav").write_bytes(wav_bytes(np.zeros(800, np.float32), 8000))
    (tmp_path / "v.mp4").write_bytes(video_bytes("mp4", frames=4))
    assert loader.load(from_path(tmp_path / "p.png")).size == (2, 2)  # type: ignore[arg-type]
    assert loader.load(from_path(tmp_path / "a.wav"), sampling_rate=8000).shape == (800,)  # type: ignore[arg-type]
    assert loader.load(from_path(tmp_path / "v.mp4"), num_frames=2).shape == (2, 24, 32, 3)  # type: ignore[arg-type]


def test_load_dispatch_rejects_non_media(loader: MediaLoader) -> None:
    with pytest.raises(errors.InvalidInputError):
        loader.load(Text("a cat"))  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidInputError):
        loader.load(Image(rgb_png()), sampling_rate=16_000)
