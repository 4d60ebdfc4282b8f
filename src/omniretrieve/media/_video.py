"""Decoding video to a fixed number of uniformly sampled uint8 RGB frames with PyAV."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np

from omniretrieve.errors import MediaDecodeError, MediaError, MediaTooLargeError, require
from omniretrieve.media._image import check_pixels, pixels_to_uint8
from omniretrieve.media._policy import MediaPolicy

VIDEO_CONTAINERS: tuple[str, ...] = ("mov", "matroska", "avi", "mpegts", "mpeg", "flv", "ogg", "asf", "gif")
"""FFmpeg demuxers the loader uses, chosen from the bytes' own signature. FFmpeg is never left
to probe: probing could pick demuxers that open other files or the network (HLS, SDP, concat)."""

_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
_DURATION_TAG = re.compile(r"^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


def sniff_container(data: bytes) -> str | None:
    """The FFmpeg demuxer for these bytes from their signature, or ``None`` if unknown."""
    if len(data) >= 8 and data[4:8] in _MP4_BOXES:
        return "mov"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    if len(data) > 376 and data[0] == data[188] == data[376] == 0x47:
        return "mpegts"
    if data.startswith(b"\x00\x00\x01\xba"):
        return "mpeg"
    if data.startswith(b"FLV\x01"):
        return "flv"
    if data.startswith(b"OggS"):
        return "ogg"
    if data.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def uniform_indices(total: int, count: int) -> np.ndarray:
    """``count`` indices spread uniformly over ``range(total)``.

    Index ``i`` is the centre of the ``i``-th of ``count`` equal segments; a clip shorter than
    ``count`` repeats frames.
    """
    positions = (np.arange(count, dtype=np.float64) + 0.5) * (total / count)
    return np.minimum(positions.astype(np.int64), total - 1)


def _declared_seconds(stream: Any) -> float | None:
    """The video stream's own declared duration (mp4: stream.duration; mkv: a DURATION tag)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    match = _DURATION_TAG.match(str(stream.metadata.get("DURATION", "")).strip())
    if match:
        hours, minutes, seconds = match.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return None


def _check_seconds(seconds: float, policy: MediaPolicy, name: str) -> None:
    if seconds > policy.max_video_seconds:
        raise MediaTooLargeError(
            name,
            f"the video lasts {seconds:.1f} s, over the cap of {policy.max_video_seconds:g} s "
            "(MediaPolicy.max_video_seconds)",
        )


def _check_frames(frames: int, policy: MediaPolicy, name: str) -> None:
    if frames > policy.max_video_frames:
        raise MediaTooLargeError(
            name, f"the video has more than {policy.max_video_frames} frames (MediaPolicy.max_video_frames)"
        )


def _survey(av: Any, data: bytes, fmt: str, policy: MediaPolicy, name: str) -> int:
    """Pass 1, demuxing only (no decoding): check the caps and count the video packets."""
    with av.open(io.BytesIO(data), mode="r", format=fmt) as container:
        if not container.streams.video:
            raise MediaDecodeError(name, "no video stream found")
        stream = container.streams.video[0]
        context = stream.codec_context
        if context.width and context.height:
            check_pixels(context.width, context.height, policy, name, "a video frame")
        declared = _declared_seconds(stream)
        if declared is None and container.duration:
            declared = container.duration / 1_000_000
        if declared is not None:
            _check_seconds(declared, policy, name)
        _check_frames(int(stream.frames or 0), policy, name)
        packets = 0
        start: float | None = None
        end = 0.0
        for packet in container.demux(stream):
            if not packet.size:
                continue
            packets += 1
            _check_frames(packets, policy, name)
            if packet.pts is not None and packet.time_base is not None:
                at = float(packet.pts * packet.time_base)
                start = at if start is None else min(start, at)
                end = max(end, at + float((packet.duration or 0) * packet.time_base))
        covered = end - (start or 0.0)
        _check_seconds(covered, policy, name)
        if stream.frames and packets < stream.frames:
            raise MediaDecodeError(
                name, f"truncated video: the index lists {stream.frames} frames, only {packets} could be read"
            )
        own = _declared_seconds(stream)
        if own and covered < 0.8 * own:
            raise MediaDecodeError(
                name, f"truncated video: it declares {own:.2f} s, its frames cover only {covered:.2f} s"
            )
    return packets


def _to_array(frame: Any, size: tuple[int, int] | None) -> np.ndarray:
    if size is not None:
        frame = frame.reformat(width=size[1], height=size[0], format="rgb24")
        return np.asarray(frame.to_ndarray(), dtype=np.uint8)
    return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)


def _decode_frames(
    av: Any,
    data: bytes,
    fmt: str,
    num_frames: int,
    size: tuple[int, int] | None,
    policy: MediaPolicy,
    name: str,
) -> np.ndarray:
    """Decode the uniformly sampled frames; the last decoded frame stands in for frames past the end."""
    total = _survey(av, data, fmt, policy, name)
    if total == 0:
        raise MediaDecodeError(name, "the video has no frames")
    targets = uniform_indices(total, num_frames)
    wanted = set(targets.tolist())
    last_wanted = int(targets[-1])
    picked: dict[int, np.ndarray] = {}
    last: Any = None
    with av.open(io.BytesIO(data), mode="r", format=fmt) as container:
        stream = container.streams.video[0]
        for index, frame in enumerate(container.decode(stream)):
            check_pixels(frame.width, frame.height, policy, name, "a video frame")
            last = frame
            if index in wanted:
                picked[index] = _to_array(frame, size)
            if index >= last_wanted:
                break
    if last is None:
        raise MediaDecodeError(name, "no frame of the video could be decoded")
    if len(picked) < len(wanted):  # decoding ended before the last packets: repeat the last frame
        tail = _to_array(last, size)
        for target in wanted - picked.keys():
            picked[target] = tail
    return np.stack([picked[int(t)] for t in targets])


def decode_video(
    data: bytes, num_frames: int, size: tuple[int, int] | None, policy: MediaPolicy, name: str
) -> np.ndarray:
    """Decode encoded video bytes to ``(num_frames, H, W, 3)`` uint8, frames sampled uniformly."""
    av: Any = require("av", extra="video", purpose="Decoding video")
    if not data:
        raise MediaDecodeError(name, "the video is empty (0 bytes)")
    fmt = sniff_container(data)
    if fmt is None:
        raise MediaDecodeError(
            name,
            "not a video in a supported container (mp4/mov, mkv/webm, avi, mpeg-ts/ps, flv, ogg, asf, gif)",
        )
    try:
        frames = _decode_frames(av, data, fmt, num_frames, size, policy, name)
    except MediaError:
        raise
    except MemoryError as exc:
        raise MediaTooLargeError(name, f"the video is too large to decode: {exc}") from exc
    except Exception as exc:
        raise MediaDecodeError(name, f"not a readable video: {type(exc).__name__}: {exc}") from exc
    return frames


def video_from_array(
    array: np.ndarray, num_frames: int, size: tuple[int, int] | None, policy: MediaPolicy, name: str
) -> np.ndarray:
    """Resample a frame array uniformly to ``num_frames`` frames, optionally resized.

    Accepts ``(F, H, W, C)`` with C in 1, 3, 4, channel-first ``(F, C, H, W)``, or gray ``(F, H, W)``.
    """
    values = np.asarray(array)
    if values.ndim == 4 and values.shape[1] in (1, 3, 4) and values.shape[-1] not in (1, 3, 4):
        values = np.moveaxis(values, 1, -1)
    if values.ndim == 3:
        values = values[..., None]
    if values.ndim != 4 or values.shape[-1] not in (1, 3, 4):
        raise MediaDecodeError(name, "a video array must be (frames, H, W, C) with C in 1, 3, 4")
    if values.shape[0] == 0:
        raise MediaDecodeError(name, "the video has no frames")
    _check_frames(values.shape[0], policy, name)
    check_pixels(values.shape[2], values.shape[1], policy, name, "a video frame")
    chosen = pixels_to_uint8(values[uniform_indices(values.shape[0], num_frames)], name)
    if chosen.shape[-1] == 1:
        chosen = np.repeat(chosen, 3, axis=-1)
    elif chosen.shape[-1] == 4:  # composite on white, like images
        alpha = chosen[..., 3:].astype(np.float32) / 255.0
        blended = chosen[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        chosen = np.rint(blended).astype(np.uint8)
    if size is not None and chosen.shape[1:3] != tuple(size):
        image: Any = require("PIL.Image", extra=None, purpose="Resizing video frames", package="pillow")
        chosen = np.stack(
            [
                np.asarray(image.fromarray(f).resize((size[1], size[0]), image.Resampling.BILINEAR))
                for f in chosen
            ]
        )
    return np.ascontiguousarray(chosen)
