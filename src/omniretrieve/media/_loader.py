"""The :class:`MediaLoader`: the one place that reads files and URLs, and :func:`from_path`."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omniretrieve.errors import InvalidInputError, MediaDecodeError
from omniretrieve.media._audio import audio_from_array, decode_audio, finish_audio, valid_rate
from omniretrieve.media._http import default_connect, fetch_url
from omniretrieve.media._image import decode_image, image_from_array, normalize_pil
from omniretrieve.media._policy import MediaPolicy, system_resolver
from omniretrieve.media._read import check_size, classify_string, read_data_uri, read_path
from omniretrieve.media._video import decode_video, video_from_array
from omniretrieve.types import (
    Audio,
    AudioSource,
    Image,
    ImageSource,
    Text,
    Video,
    VideoSource,
    describe,
    is_pil_image,
)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

MAX_NUM_FRAMES = 10_000
MAX_FRAME_SIDE = 16_384


def _as_array(value: object, name: str) -> np.ndarray | None:
    """The value as an array if it is one (or array-like, e.g. a CPU tensor), else ``None``."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (str, bytes, bytearray, memoryview, os.PathLike)) or not hasattr(value, "__array__"):
        return None
    try:
        return np.asarray(value)
    except Exception as exc:
        raise MediaDecodeError(name, f"cannot convert {type(value).__name__} to an array: {exc}") from exc


class MediaLoader:
    """Loads images, audio and video under a :class:`MediaPolicy`; nothing else reads media.

    Sources: local paths (``str`` or ``os.PathLike``), ``http(s)`` URLs (only with
    ``MediaPolicy(allow_urls=True)``), ``data:`` URIs, encoded ``bytes``, arrays and PIL images.
    Every failure raises a :class:`~omniretrieve.errors.MediaError` subclass naming the input.

    Args:
        policy: what may be read and how much; the safe default refuses URLs.
        resolver: ``resolver(host, port) -> [ip, ...]`` used once per URL hop; defaults to the
            system resolver. The addresses it returns are vetted, then connected to directly.
        ssl_context: TLS context for ``https`` (default: the system's, with certificate checks),
            e.g. one that trusts a private CA.

    Example::

        loader = MediaLoader(MediaPolicy(allow_urls=True, allowed_roots=("/data",)))
        image = loader.load_image(Image("/data/cat.jpg"))                  # RGB PIL image
        audio = loader.load_audio(Audio("/data/a.flac"), sampling_rate=16_000)  # float32 (N,)
        video = loader.load_video(Video("/data/v.mp4"), num_frames=8)      # uint8 (8, H, W, 3)
    """

    def __init__(
        self,
        policy: MediaPolicy | None = None,
        *,
        resolver: Callable[[str, int], Sequence[str]] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy: MediaPolicy = policy if policy is not None else MediaPolicy()
        self.resolver: Callable[[str, int], Sequence[str]] = resolver or system_resolver
        self.ssl_context = ssl_context

    def __repr__(self) -> str:
        return f"MediaLoader({self.policy!r})"

    def _connect(self, ip: str, port: int, timeout: float) -> socket.socket:
        """Open the TCP connection for a URL hop to an already vetted IP (tests patch this)."""
        return default_connect(ip, port, timeout)

    # -- bytes ------------------------------------------------------------------------------

    def read_bytes(
        self, source: str | os.PathLike[str] | bytes | bytearray | memoryview, *, kind: str = "media"
    ) -> bytes:
        """The raw bytes of a path, URL, data URI or bytes, under the policy and its byte cap.

        Raises:
            PathNotAllowedError, URLNotAllowedError, AddressNotAllowedError: refused by the policy.
            MediaNotFoundError: no such file, or not a regular file (directory, FIFO, device).
            MediaFetchError, TooManyRedirectsError, MediaTimeoutError: the URL failed.
            MediaTooLargeError: over ``policy.max_bytes``.
            MediaDecodeError: a malformed data URI, or a source of no readable type.
        """
        return self._read(source, kind, describe(source))

    def _read(self, source: object, kind: str, name: str) -> bytes:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            check_size(len(data), self.policy, name, f"the {kind}")
            return data
        if isinstance(source, str):
            form = classify_string(source)
            if form == "data":
                return read_data_uri(source, self.policy, name)
            if form == "url":
                return fetch_url(
                    source,
                    policy=self.policy,
                    resolve=self.resolver,
                    connect=self._connect,
                    ssl_context=self.ssl_context,
                    name=name,
                )
            return read_path(source, self.policy, name)
        if isinstance(source, os.PathLike):
            return read_path(source, self.policy, name)
        raise MediaDecodeError(
            name, f"cannot read {kind} from a {type(source).__name__}; pass a path, URL, data URI or bytes"
        )

    # -- images -----------------------------------------------------------------------------

    def load_image(self, source: ImageSource | Image, *, min_side: int | None = None) -> PILImage:
        """A new, fully decoded 8-bit RGB PIL image.

        The format is told from the content (the extension is ignored). The pixel cap is checked
        from the header before decoding; EXIF orientation is applied; transparency is composited
        on white; 16-bit and float images are scaled to 8 bits; animated images give their first
        frame. Arrays may be ``(H, W)`` / ``(H, W, C)`` uint8, uint16, or float in [0, 1].

        ``min_side`` is a speed hint for callers that downscale anyway (a model's image size): a
        JPEG may then be decoded at 1/2, 1/4 or 1/8 scale, never below ``min_side`` on either side.
        Other inputs are unaffected.

        Raises:
            MediaError: a subclass saying why (see :meth:`read_bytes`); MediaTooLargeError for a
                decompression bomb, MediaDecodeError for anything that is not a whole image.
        """
        name = describe(source)
        src = source.source if isinstance(source, Image) else source
        if is_pil_image(src):
            return normalize_pil(src, self.policy, name)  # type: ignore[arg-type]
        array = _as_array(src, name)
        if array is not None:
            return image_from_array(array, self.policy, name)
        if min_side is not None and (
            isinstance(min_side, bool) or not isinstance(min_side, int) or min_side < 1
        ):
            raise InvalidInputError(f"min_side={min_side!r}", "must be a positive int or None")
        return decode_image(self._read(src, "image", name), self.policy, name, min_side)

    # -- audio ------------------------------------------------------------------------------

    def load_audio(
        self, source: AudioSource | Audio, *, sampling_rate: int, source_rate: int | None = None
    ) -> np.ndarray:
        """Mono float32 samples ``(N,)`` at ``sampling_rate``.

        Encoded audio is decoded with soundfile at its own rate. Arrays ``(N,)``, ``(N, C)`` or
        ``(C, N)`` need a rate: ``Audio(array, sampling_rate=...)`` or ``source_rate``. Channels are
        averaged; integer samples are scaled to [-1, 1]; then soxr resamples.

        Raises:
            InvalidInputError: ``sampling_rate`` is not a whole number in [1, 1_000_000].
            MediaError: a subclass saying why (NaN/Inf or empty: MediaDecodeError; longer than
                ``policy.max_audio_seconds``: MediaTooLargeError).
        """
        target = valid_rate(sampling_rate)
        if target is None:
            raise InvalidInputError(
                f"sampling_rate={sampling_rate!r}", "must be a whole number of Hz in [1, 1000000]"
            )
        name = describe(source)
        if isinstance(source, Audio):
            src: object = source.source
            rate = source.sampling_rate if source.sampling_rate is not None else source_rate
        else:
            src, rate = source, source_rate
        array = _as_array(src, name)
        if array is not None:
            if rate is None:
                raise MediaDecodeError(
                    name, "raw audio samples need their sampling rate: Audio(array, sampling_rate=...)"
                )
            checked = valid_rate(rate)
            if checked is None:
                raise MediaDecodeError(
                    name, f"invalid sampling rate {rate!r}: a whole number of Hz in [1, 1000000]"
                )
            samples = audio_from_array(array, checked, self.policy, name)
        else:
            samples, checked = decode_audio(self._read(src, "audio", name), self.policy, name)
        return finish_audio(samples, checked, target, self.policy, name)

    # -- video ------------------------------------------------------------------------------

    def load_video(
        self, source: VideoSource | Video, *, num_frames: int, size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """Exactly ``num_frames`` RGB frames, uint8 ``(num_frames, H, W, 3)``, sampled uniformly.

        Frame ``i`` is taken from the centre of the ``i``-th of ``num_frames`` equal segments of the
        clip (a short clip repeats frames). ``size`` is ``(height, width)``, like the output's axes.
        Encoded video is decoded with PyAV from memory, the container chosen from the bytes'
        signature; arrays ``(F, H, W, C)`` are resampled the same way.

        Raises:
            InvalidInputError: ``num_frames`` or ``size`` out of range.
            MediaError: a subclass saying why (unreadable or truncated: MediaDecodeError; over a
                cap of the policy: MediaTooLargeError).
        """
        if (
            isinstance(num_frames, bool)
            or not isinstance(num_frames, int)
            or not 1 <= num_frames <= MAX_NUM_FRAMES
        ):
            raise InvalidInputError(f"num_frames={num_frames!r}", f"must be an int in [1, {MAX_NUM_FRAMES}]")
        if size is not None:
            if (
                len(size) != 2
                or any(isinstance(s, bool) or not isinstance(s, int) for s in size)
                or not all(1 <= s <= MAX_FRAME_SIDE for s in size)
            ):
                raise InvalidInputError(
                    f"size={size!r}", f"must be (height, width), ints in [1, {MAX_FRAME_SIDE}]"
                )
            size = (int(size[0]), int(size[1]))
        name = describe(source)
        src = source.source if isinstance(source, Video) else source
        array = _as_array(src, name)
        if array is not None:
            return video_from_array(array, num_frames, size, self.policy, name)
        return decode_video(self._read(src, "video", name), num_frames, size, self.policy, name)

    # -- any --------------------------------------------------------------------------------

    def load(self, item: Image | Audio | Video, **kwargs: Any) -> Any:
        """Load any media item, dispatching on its type.

        ``Image`` goes to :meth:`load_image` (``min_side=``), ``Audio`` to :meth:`load_audio` (``sampling_rate=``),
        ``Video`` to :meth:`load_video` (``num_frames=``, ``size=``).
        """
        if isinstance(item, Image):
            unknown = set(kwargs) - {"min_side"}
            if unknown:
                raise InvalidInputError(
                    describe(item), f"load_image takes only min_side; got {sorted(unknown)}"
                )
            return self.load_image(item, **kwargs)
        if isinstance(item, Audio):
            return self.load_audio(item, **kwargs)
        if isinstance(item, Video):
            return self.load_video(item, **kwargs)
        raise InvalidInputError(describe(item), "only Image, Audio and Video items are loaded as media")


IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
     ".pbm", ".pnm", ".ico", ".avif"}
)  # fmt: skip
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".snd",
     ".caf", ".w64", ".rf64"}
)  # fmt: skip
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".m2ts", ".flv", ".ogv",
     ".wmv", ".asf", ".3gp"}
)  # fmt: skip
TEXT_EXTENSIONS: frozenset[str] = frozenset({".txt", ".text", ".md", ".markdown", ".rst"})


def from_path(
    path: str | os.PathLike[str], *, policy: MediaPolicy | None = None
) -> Text | Image | Audio | Video:
    """An item for a local file, its modality told by the extension (case-insensitive).

    Media files give ``Image`` / ``Audio`` / ``Video`` wrapping a :class:`pathlib.Path` (so the
    value is always read as a path, never as a URL); nothing is read until the item is loaded.
    Text files (``.txt``, ``.md``, ...) are read now, under ``policy``, as UTF-8, and give a ``Text``.

    Raises:
        MediaDecodeError: an unknown extension, or a text file that is not UTF-8.
        MediaError: reading a text file failed (see :meth:`MediaLoader.read_bytes`).
    """
    location = Path(os.fspath(path))
    suffix = location.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return Image(location)
    if suffix in AUDIO_EXTENSIONS:
        return Audio(location)
    if suffix in VIDEO_EXTENSIONS:
        return Video(location)
    name = describe(location)
    if suffix in TEXT_EXTENSIONS:
        data = MediaLoader(policy)._read(location, "text", name)
        try:
            return Text(data.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise MediaDecodeError(name, f"the text file is not valid UTF-8: {exc}") from exc
    raise MediaDecodeError(
        name,
        f"unsupported file extension {suffix or '(none)'!r}: images {sorted(IMAGE_EXTENSIONS)}, audio "
        f"{sorted(AUDIO_EXTENSIONS)}, video {sorted(VIDEO_EXTENSIONS)}, text {sorted(TEXT_EXTENSIONS)}; "
        "or wrap the path in Image(...), Audio(...) or Video(...) yourself",
    )
