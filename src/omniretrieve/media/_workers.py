"""Decoding media in worker processes, under the same :class:`MediaPolicy` as the caller's loader.

Decoding JPEGs, PNGs, audio and video is CPU-bound Python/C work that threads share badly; a
:class:`DecodePool` runs it in ``spawn``-started processes (safe with threads, CUDA and every
platform). What crosses the process boundary is picklable and small:

* to a worker: a :class:`DecodeSpec` (the policy and the model's decoding facts), the part's kind,
  its source (bytes, a local path or a ``data:`` URI: URLs are fetched by the caller's loader,
  whose resolver and TLS context stay in the caller) and its name for messages;
* back: the decoded value (an RGB PIL image, float32 samples, uint8 frames) or a
  :class:`DecodeFailure`, which :meth:`DecodeFailure.error` turns back into the typed
  :class:`~omniretrieve.errors.MediaError` (the error classes take two arguments and do not pickle
  themselves).

A worker that dies (a decoder crash, the OOM killer) breaks the pool; :class:`DecodePool` then
starts a fresh one and the caller retries the items that were in flight once (see
:meth:`DecodePool.submit`), so one poisonous file fails alone. A pool that breaks before it ever
decoded anything cannot start at all, typically because the program's main module runs its work
at import (``spawn`` re-imports it: guard it with ``if __name__ == "__main__":``); it is then
marked :attr:`DecodePool.unusable` and the caller decodes in its own process instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import weakref
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from omniretrieve.errors import InvalidInputError, MediaDecodeError, MediaError
from omniretrieve.media._policy import MediaPolicy

logger = logging.getLogger(__name__)

DecodableSource = bytes | str | os.PathLike
"""A source a worker reads itself: encoded bytes, a local path, or a ``data:`` URI (never a URL)."""


@dataclass(frozen=True)
class DecodeSpec:
    """How one model wants its media decoded; sent to every worker with each task.

    Attributes:
        policy: The caller's media policy (paths, byte and pixel caps, durations).
        image_min_side: JPEG draft-decoding hint (see :meth:`MediaLoader.load_image`), or ``None``.
        audio_sampling_rate: The rate audio is resampled to.
        video_num_frames: Frames sampled per video.
        video_frame_size: ``(height, width)`` of video frames, or ``None`` for their own size.
        jpeg_passthrough: Send plain JPEG files back undecoded, checked from their header, as
            :class:`~omniretrieve.media._gpu_decode.EncodedJpeg` (the model decodes them on its
            CUDA device); other images are decoded here as usual.
    """

    policy: MediaPolicy
    image_min_side: int | None = None
    audio_sampling_rate: int = 16_000
    video_num_frames: int = 8
    video_frame_size: tuple[int, int] | None = None
    jpeg_passthrough: bool = False


@dataclass(frozen=True)
class DecodeFailure:
    """A worker's typed failure, carried back as data (the error classes do not pickle)."""

    cls: type[Exception]
    input: str
    reason: str

    def error(self) -> MediaError | InvalidInputError:
        """The error to report for the item."""
        if issubclass(self.cls, MediaError | InvalidInputError):
            return self.cls(self.input, self.reason)  # type: ignore[call-arg,no-any-return]
        return MediaDecodeError(self.input, self.reason)


_LOADERS: dict[MediaPolicy, Any] = {}


def decode(spec: DecodeSpec, kind: str, source: DecodableSource, name: str) -> Any:
    """Read and decode one media part (runs in a worker; also callable in-process).

    Returns:
        An RGB PIL image (``kind="image"``; an :class:`~omniretrieve.media._gpu_decode.EncodedJpeg`
        for a plain JPEG with ``spec.jpeg_passthrough``), mono float32 samples at
        ``spec.audio_sampling_rate`` (``"audio"``), uint8 frames ``(F, H, W, 3)`` (``"video"``), or a
        :class:`DecodeFailure`.
    """
    try:
        return _decode(spec, kind, source, name)
    except (MediaError, InvalidInputError) as exc:
        return DecodeFailure(type(exc), getattr(exc, "input", name), getattr(exc, "reason", str(exc)))
    except Exception as exc:  # a decoder bug must still cost only this item
        return DecodeFailure(MediaDecodeError, name, f"could not be loaded ({type(exc).__name__}: {exc})")


def _decode(spec: DecodeSpec, kind: str, source: DecodableSource, name: str) -> Any:
    from omniretrieve.media._audio import decode_audio, finish_audio
    from omniretrieve.media._image import decode_image
    from omniretrieve.media._loader import MediaLoader
    from omniretrieve.media._video import decode_video

    loader = _LOADERS.get(spec.policy)
    if loader is None:
        loader = _LOADERS[spec.policy] = MediaLoader(spec.policy)
    data = loader._read(source, kind, name)
    if kind == "image":
        if spec.jpeg_passthrough:
            from omniretrieve.media._gpu_decode import passthrough

            encoded = passthrough(data, spec.policy, name)
            if encoded is not None:
                return encoded
        return decode_image(data, spec.policy, name, spec.image_min_side)
    if kind == "audio":
        samples, rate = decode_audio(data, spec.policy, name)
        return finish_audio(samples, rate, spec.audio_sampling_rate, spec.policy, name)
    if kind == "video":
        return decode_video(data, spec.video_num_frames, spec.video_frame_size, spec.policy, name)
    raise InvalidInputError(name, f"no worker decoding for {kind!r}")


def worker_decodable(source: object) -> bool:
    """Whether a worker can read this source itself (bytes, a local path or a ``data:`` URI)."""
    from omniretrieve.media._read import classify_string

    if isinstance(source, bytes | os.PathLike):
        return True
    return isinstance(source, str) and classify_string(source) != "url"


def default_workers() -> int:
    """Worker processes by default: one per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class DecodePool:
    """A lazily started, ``spawn``-safe process pool for :func:`decode`, restarted when it breaks.

    Args:
        workers: How many processes.
    """

    def __init__(self, workers: int) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InvalidInputError(f"workers={workers!r}", "must be a positive int")
        self.workers = workers
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._finalizer: weakref.finalize | None = None
        self.restarts = 0
        self.worked = False
        """Whether any task ever came back (a pool that breaks before cannot start at all)."""
        self.unusable = False
        """Set by the caller when the pool broke before it ever worked: decode in-process instead."""

    def submit(self, spec: DecodeSpec, kind: str, source: DecodableSource, name: str) -> Future[Any]:
        """Start decoding one part; the future gives what :func:`decode` returns.

        Raises from ``result()``: :class:`~concurrent.futures.process.BrokenProcessPool` when a
        worker died; the pool is then restarted on the next submit.
        """
        with self._lock:
            executor = self._executor
            if executor is None or getattr(executor, "_broken", False):
                if executor is not None:
                    self.restarts += 1
                    executor.shutdown(wait=False, cancel_futures=True)
                executor = self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn")
                )
                if self._finalizer is not None:
                    self._finalizer.detach()
                self._finalizer = weakref.finalize(self, _shutdown, executor)
        future = executor.submit(decode, spec, kind, source, name)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.worked = True

    def give_up(self) -> None:
        """Mark the pool unusable (it broke before it ever worked) and stop it."""
        if not self.unusable:
            logger.warning(
                "media decoding processes could not start (does the main module run its work at import? "
                "guard it with `if __name__ == '__main__':`); decoding in this process instead"
            )
        self.unusable = True
        self.close()

    def close(self) -> None:
        """Stop the worker processes (idempotent; a later submit starts new ones)."""
        with self._lock:
            executor, self._executor = self._executor, None
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _shutdown(executor: ProcessPoolExecutor) -> None:
    executor.shutdown(wait=False, cancel_futures=True)


__all__ = [
    "BrokenProcessPool",
    "DecodeFailure",
    "DecodePool",
    "DecodeSpec",
    "decode",
    "default_workers",
    "worker_decodable",
]
