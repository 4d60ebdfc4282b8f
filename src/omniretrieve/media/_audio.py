"""Decoding audio to mono float32 at a requested sampling rate."""

from __future__ import annotations

import io
import numbers
from typing import Any

import numpy as np

from omniretrieve.errors import MediaDecodeError, MediaError, MediaTooLargeError, require
from omniretrieve.media._policy import MediaPolicy

MAX_SAMPLING_RATE = 1_000_000
MAX_CHANNELS = 64
_BLOCK = 65536


def valid_rate(rate: object) -> int | None:
    """``rate`` as an int if it is a whole number in [1, 1_000_000], else ``None``."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        return None
    value = float(rate)
    if not value.is_integer() or not 1 <= value <= MAX_SAMPLING_RATE:
        return None
    return int(value)


def _check_duration(frames: int, rate: int, policy: MediaPolicy, name: str) -> None:
    seconds = frames / rate
    if seconds > policy.max_audio_seconds:
        raise MediaTooLargeError(
            name,
            f"the audio lasts {seconds:.1f} s, over the cap of {policy.max_audio_seconds:g} s "
            "(MediaPolicy.max_audio_seconds)",
        )


def decode_audio(data: bytes, policy: MediaPolicy, name: str) -> tuple[np.ndarray, int]:
    """Decode encoded audio bytes (wav, flac, ogg, mp3, ...) to ``(mono float32, rate)``.

    Reads block by block, so a header that lies about the length cannot make us allocate more
    than the duration cap allows.
    """
    sf: Any = require("soundfile", extra="audio", purpose="Decoding audio")
    if not data:
        raise MediaDecodeError(name, "the audio is empty (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            rate = valid_rate(handle.samplerate)
            if rate is None:
                raise MediaDecodeError(
                    name, f"the audio declares an invalid sampling rate {handle.samplerate}"
                )
            channels = int(handle.channels)
            if not 1 <= channels <= MAX_CHANNELS:
                raise MediaDecodeError(
                    name, f"the audio declares {channels} channels (at most {MAX_CHANNELS})"
                )
            limit = int(policy.max_audio_seconds * rate)
            declared = int(handle.frames) if handle.seekable() else 0
            if 0 < declared and declared > limit:
                _check_duration(declared, rate, policy, name)
            blocks: list[np.ndarray] = []
            total = 0
            while True:
                block = handle.read(frames=min(_BLOCK, limit + 1 - total), dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                blocks.append(block.mean(axis=1, dtype=np.float32))
                total += block.shape[0]
                if total > limit:
                    _check_duration(total, rate, policy, name)
    except MediaError:
        raise
    except MemoryError as exc:
        raise MediaTooLargeError(name, f"the audio is too large to decode: {exc}") from exc
    except Exception as exc:
        raise MediaDecodeError(name, f"not readable audio: {type(exc).__name__}: {exc}") from exc
    if not blocks:
        raise MediaDecodeError(name, "the audio has no samples")
    return np.concatenate(blocks), rate


def audio_from_array(values: np.ndarray, rate: int, policy: MediaPolicy, name: str) -> np.ndarray:
    """Samples ``(N,)``, ``(N, C)`` or ``(C, N)`` (channels: the small axis) to mono float32.

    Integer samples are scaled to [-1, 1] by their type's full range (int16 / 32768; unsigned
    types are centred first, as in 8-bit WAV).
    """
    array = np.asarray(values)
    if array.dtype.kind not in "fiu":
        raise MediaDecodeError(name, f"audio samples must be numbers; got dtype {array.dtype}")
    if array.ndim > 2:
        array = np.squeeze(array)  # (1, 1, N) from a batch, say
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.size == 0:
        raise MediaDecodeError(name, "the audio has no samples")
    if array.ndim == 0 or array.ndim > 2:
        raise MediaDecodeError(name, f"audio arrays must be (N,), (N, C) or (C, N); got shape {array.shape}")
    channel_axis = None
    if array.ndim == 2:
        channel_axis = 0 if array.shape[0] <= array.shape[1] else 1
        if array.shape[channel_axis] > MAX_CHANNELS:
            raise MediaDecodeError(
                name, f"cannot tell the channel axis of shape {array.shape} (at most {MAX_CHANNELS} channels)"
            )
    frames = array.shape[1 - channel_axis] if channel_axis is not None else array.shape[0]
    _check_duration(frames, rate, policy, name)
    if array.dtype.kind == "f":
        samples = array.astype(np.float32, copy=False)
    else:
        scale = 2.0 ** (8 * array.dtype.itemsize - 1)
        offset = scale if array.dtype.kind == "u" else 0.0
        samples = ((array.astype(np.float64) - offset) / scale).astype(np.float32)
    if channel_axis is not None:
        samples = samples.mean(axis=channel_axis, dtype=np.float32)
    return samples


def finish_audio(
    samples: np.ndarray, rate: int, sampling_rate: int, policy: MediaPolicy, name: str
) -> np.ndarray:
    """Check (finite, non-empty, within the cap) and resample mono samples to ``sampling_rate``."""
    if samples.size == 0:
        raise MediaDecodeError(name, "the audio has no samples")
    if not np.isfinite(samples).all():
        raise MediaDecodeError(name, "the audio has NaN or infinite samples")
    _check_duration(samples.shape[0], rate, policy, name)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if rate != sampling_rate:
        soxr: Any = require("soxr", extra="audio", purpose="Resampling audio")
        try:
            samples = soxr.resample(samples, rate, sampling_rate)
        except Exception as exc:
            raise MediaDecodeError(
                name, f"cannot resample from {rate} Hz to {sampling_rate} Hz: {exc}"
            ) from exc
        samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        if samples.size == 0:
            raise MediaDecodeError(
                name, f"the audio is too short to resample from {rate} Hz to {sampling_rate} Hz"
            )
    return samples
