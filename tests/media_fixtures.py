"""Hostile and good media for tests, a loopback HTTP server, a test resolver, connect guards.

Reusable by any test (``tests/`` is on ``sys.path``)::

    from media_fixtures import LoopbackServer, hostile_corpus, good_items

    with LoopbackServer() as server:            # or import the ``loopback_server`` fixture
        for case in hostile_corpus(tmp_path, server):
            loader = case.loader()           # a GuardedMediaLoader with the case's policy/resolver
            ...                              # case.expected: the MediaError subclass, or None = loads

Nothing here opens a socket to anything but 127.0.0.1: the server binds loopback, the resolver is
a fixed table, and :class:`GuardedMediaLoader` raises :class:`ConnectForbidden` (a BaseException,
so no ``except Exception`` in the code under test can swallow it) for any other connection.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from omniretrieve import errors
from omniretrieve.media import MediaLoader, MediaPolicy
from omniretrieve.types import Audio, Image, Video

LOOPBACK = frozenset({"127.0.0.1", "::1"})

# ---------------------------------------------------------------------------------------------
# Guards: no connection may leave loopback
# ---------------------------------------------------------------------------------------------


class ConnectForbidden(BaseException):
    """A connection was attempted that the test forbids (raised past any ``except Exception``)."""


class GuardedMediaLoader(MediaLoader):
    """A :class:`MediaLoader` whose connect step only reaches loopback ports it was given.

    Any other connection attempt is recorded in :attr:`connects` and raises
    :class:`ConnectForbidden`, so a refusal that should happen before any socket is proven to.
    """

    def __init__(
        self,
        policy: MediaPolicy | None = None,
        *,
        resolver: Callable[[str, int], Sequence[str]] | None = None,
        allowed_ports: Sequence[int] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(policy, resolver=resolver or StaticResolver({}), **kwargs)
        self.allowed_ports = frozenset(allowed_ports)
        self.connects: list[tuple[str, int]] = []

    def _connect(self, ip: str, port: int, timeout: float) -> socket.socket:
        self.connects.append((ip, port))
        if ip not in LOOPBACK or port not in self.allowed_ports:
            raise ConnectForbidden(f"the loader tried to connect to {ip}:{port}")
        return super()._connect(ip, port, timeout)


@contextlib.contextmanager
def no_remote_connections() -> Iterator[None]:
    """Within the block, any socket connect to a non-loopback address raises ConnectForbidden."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def check(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in LOOPBACK and host != "localhost":
            raise ConnectForbidden(f"a test tried to connect to {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return original_connect_ex(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        socket.socket.connect = original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]


class StaticResolver:
    """A resolver from a fixed table; unknown names fail like DNS does. Records every lookup."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = {host.lower(): list(ips) for host, ips in table.items()}
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        try:
            return list(self.table[host.lower()])
        except KeyError:
            raise socket.gaierror(socket.EAI_NONAME, f"test resolver: unknown host {host!r}") from None


# ---------------------------------------------------------------------------------------------
# A real HTTP server on loopback
# ---------------------------------------------------------------------------------------------

Route = Callable[[BaseHTTPRequestHandler], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # clients hang up on purpose
        pass


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (port 0) with programmable routes; a context manager.

    Routes: :meth:`add_bytes`, :meth:`add_redirect`, :meth:`add_drip` (an endless slow response),
    :meth:`add_silent` (accepts, never answers), :meth:`add_oversize`, :meth:`add_status`.
    ``hits`` counts requests per path; ``requests`` keeps (path, headers) of each. Every handler
    ends when the server stops, and at the latest after ``max_handler_seconds``.
    """

    def __init__(self, max_handler_seconds: float = 30.0) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.max_handler_seconds = max_handler_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def __enter__(self) -> LoopbackServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                with owner._lock:
                    owner.hits[path] += 1
                    owner.requests.append((self.path, dict(self.headers.items())))
                route = owner.routes.get(path)
                try:
                    if route is None:
                        self.send_error(404)
                    else:
                        route(self)
                except (BrokenPipeError, ConnectionResetError, TimeoutError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """The URL of ``path`` on this server, optionally under another host name."""
        return f"http://{host}:{self.port}{path}"

    def _until_stopped(self, seconds: float) -> bool:
        """Wait ``seconds``; False once the server is stopping or the handler ran too long."""
        return not self._stop.wait(seconds)

    # -- routes -------------------------------------------------------------------------------

    def add_bytes(self, path: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        self.routes[path] = route
        return self.url(path)

    def add_redirect(self, path: str, location: str, status: int = 302) -> str:
        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(status)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()

        self.routes[path] = route
        return self.url(path)

    def add_status(self, path: str, status: int) -> str:
        def route(h: BaseHTTPRequestHandler) -> None:
            body = f"status {status}".encode()
            h.send_response(status)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        self.routes[path] = route
        return self.url(path)

    def add_drip(self, path: str, interval: float = 0.2, *, in_headers: bool = False) -> str:
        """Send one byte every ``interval`` seconds forever (until the server stops).

        ``in_headers``: drip an endless header line instead of the body.
        """

        def route(h: BaseHTTPRequestHandler) -> None:
            started = time.monotonic()
            if in_headers:
                h.wfile.write(b"HTTP/1.0 200 OK\r\nX-Drip: ")
            else:
                h.send_response(200)
                h.send_header("Content-Type", "image/png")
                h.end_headers()
            h.wfile.flush()
            while self._until_stopped(interval) and time.monotonic() - started < self.max_handler_seconds:
                h.wfile.write(b"x")
                h.wfile.flush()

        self.routes[path] = route
        return self.url(path)

    def add_silent(self, path: str) -> str:
        """Accept the request and never answer."""

        def route(h: BaseHTTPRequestHandler) -> None:
            started = time.monotonic()
            while self._until_stopped(0.05) and time.monotonic() - started < self.max_handler_seconds:
                pass

        self.routes[path] = route
        return self.url(path)

    def add_oversize(self, path: str, size: int, *, content_length: bool = True) -> str:
        """A body of ``size`` bytes, with or without a Content-Length header (then close-delimited)."""

        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            if content_length:
                h.send_header("Content-Length", str(size))
            h.end_headers()
            chunk = b"\x00" * 65536
            sent = 0
            while sent < size and not self._stop.is_set():
                h.wfile.write(chunk[: size - sent])
                sent += min(len(chunk), size - sent)

        self.routes[path] = route
        return self.url(path)

    def add_truncated(self, path: str, body: bytes, declared: int) -> str:
        """Declare ``declared`` bytes in Content-Length, send ``body`` (shorter) and close."""

        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Length", str(declared))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()
            h.close_connection = True

        self.routes[path] = route
        return self.url(path)


@pytest.fixture
def loopback_server() -> Iterator[LoopbackServer]:
    """A started :class:`LoopbackServer`, stopped after the test (import this name to use it)."""
    with LoopbackServer() as server:
        yield server


# ---------------------------------------------------------------------------------------------
# Media generators (all small and fast)
# ---------------------------------------------------------------------------------------------


def encode_image(img: PILImage.Image, fmt: str = "PNG", **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def rgb_png(width: int = 16, height: int = 12, color: tuple[int, int, int] = (200, 30, 40)) -> bytes:
    return encode_image(PILImage.new("RGB", (width, height), color))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (8-bit RGB) with a token of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def bomb_png(width: int = 8000, height: int = 6000) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` zeros: a few KB on disk, tens of MB decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png16_gray(values: np.ndarray) -> bytes:
    """A 16-bit grayscale PNG holding exactly ``values`` (uint16)."""
    return encode_image(PILImage.fromarray(np.asarray(values, dtype=np.uint16)))


def png16_rgb(values: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (written by hand: Pillow cannot write one) of ``values`` (H, W, 3)."""
    values = np.asarray(values, dtype=np.uint16)
    height, width = values.shape[:2]
    raw = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def noisy_image(width: int = 64, height: int = 48, seed: int = 0) -> PILImage.Image:
    rng = np.random.default_rng(seed)
    return PILImage.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: max(1, int(len(data) * keep))]


def cmyk_jpeg(cmyk: tuple[int, int, int, int] = (0, 255, 255, 0)) -> bytes:
    return encode_image(PILImage.new("CMYK", (8, 8), cmyk), "JPEG", quality=95)


def palette_transparent_png() -> bytes:
    """8x4 palette image: left half index 0 (fully transparent red), right half index 1 (green)."""
    img = PILImage.new("P", (8, 4), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    img.paste(1, (4, 0, 8, 4))
    return encode_image(img, transparency=0)


def animated_gif(colors: Sequence[tuple[int, int, int]] = ((255, 0, 0), (0, 255, 0), (0, 0, 255))) -> bytes:
    frames = [PILImage.new("RGB", (8, 8), c) for c in colors]
    return encode_image(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def exif_rotated_jpeg(orientation: int = 6) -> bytes:
    """40x20 stored (left half red, right half blue) with an EXIF Orientation tag."""
    img = PILImage.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    return encode_image(img, "JPEG", exif=exif.tobytes(), quality=95)


def wav_bytes(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, samples, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def sine(seconds: float, rate: int, freq: float = 220.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def corrupt_wav() -> bytes:
    """A RIFF/WAVE header with a format chunk but no data chunk."""
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"junk" + b"\x00" * 40
    return b"RIFF" + struct.pack("<I", len(body)) + body


def video_bytes(
    fmt: str = "mp4",
    frames: int = 10,
    width: int = 32,
    height: int = 24,
    rate: int = 10,
    codec: str = "mpeg4",
) -> bytes:
    """A small video whose frame ``i`` is solid gray level ``i * 20`` (capped at 240)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"qscale": "1"} if codec == "mpeg4" else {}
        for i in range(frames):
            level = min(i * 20, 240)
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), level, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def frame_levels(frames: np.ndarray) -> list[int]:
    """The mean gray level of each frame (to tell which source frame was sampled)."""
    return [round(float(f.mean())) for f in frames]


# ---------------------------------------------------------------------------------------------
# The hostile corpus
# ---------------------------------------------------------------------------------------------


@dataclass
class HostileCase:
    """One hostile (or tricky-but-valid) media input and what loading it must do.

    Attributes:
        name: a short id.
        item: the media item.
        expected: the exact MediaError subclass loading must raise, or ``None``: it must load.
        policy: the policy to load it under.
        resolver: the resolver (a :class:`StaticResolver`) for URL cases.
        allowed_ports: loopback ports the loader may connect to (empty: no connection at all).
        load_kwargs: options for ``MediaLoader.load`` (sampling_rate, num_frames).
        check: for cases that must load, a check of the output (raises AssertionError).
        max_seconds: the case must finish within this many seconds.
    """

    name: str
    item: Image | Audio | Video
    expected: type[errors.MediaError] | None
    policy: MediaPolicy = field(default_factory=MediaPolicy)
    resolver: StaticResolver | None = None
    allowed_ports: tuple[int, ...] = ()
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    check: Callable[[Any], None] | None = None
    max_seconds: float = 5.0

    def loader(self) -> GuardedMediaLoader:
        return GuardedMediaLoader(self.policy, resolver=self.resolver, allowed_ports=self.allowed_ports)

    def load(self, loader: MediaLoader | None = None) -> Any:
        return (loader or self.loader()).load(self.item, **self.load_kwargs)


AUDIO_KW: dict[str, Any] = {"sampling_rate": 16_000}
VIDEO_KW: dict[str, Any] = {"num_frames": 4}


def _check_rgb(size: tuple[int, int]) -> Callable[[Any], None]:
    def check(img: Any) -> None:
        assert img.mode == "RGB" and img.size == size, (img.mode, img.size)

    return check


def _check_pixel(xy: tuple[int, int], rgb: tuple[int, int, int], tol: int = 6) -> Callable[[Any], None]:
    def check(img: Any) -> None:
        assert img.mode == "RGB"
        got = np.asarray(img)[xy[1], xy[0]].astype(int)
        assert np.abs(got - np.array(rgb)).max() <= tol, (got, rgb)

    return check


def _check_audio(length: int) -> Callable[[Any], None]:
    def check(samples: Any) -> None:
        assert isinstance(samples, np.ndarray) and samples.ndim == 1 and samples.dtype == np.float32
        assert abs(samples.shape[0] - length) <= 2, (samples.shape, length)

    return check


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def hostile_corpus(tmp_path: Path, server: LoopbackServer | None = None) -> list[HostileCase]:
    """The hostile corpus: files under ``tmp_path``, and with ``server`` its HTTP routes too.

    Without a server the cases that need one (redirects, slow drip, oversize bodies, status codes,
    a good URL) are left out; all others never open a socket.
    """
    base = tmp_path / "hostile"
    base.mkdir(parents=True, exist_ok=True)
    cases: list[HostileCase] = []

    def add(name: str, item: Any, expected: type[errors.MediaError] | None, **kw: Any) -> None:
        cases.append(HostileCase(name, item, expected, **kw))

    # -- images ------------------------------------------------------------------------------
    png = rgb_png(16, 12)
    jpeg = encode_image(noisy_image(), "JPEG", quality=90)
    add(
        "truncated_png",
        Image(_write(base / "trunc.png", truncated(encode_image(noisy_image())))),
        errors.MediaDecodeError,
    )
    add("truncated_jpeg", Image(_write(base / "trunc.jpg", truncated(jpeg))), errors.MediaDecodeError)
    add("decompression_bomb", Image(_write(base / "bomb.png", bomb_png())), errors.MediaTooLargeError)
    add(
        "huge_dimensions_header",
        Image(_write(base / "huge.png", png_header_only(100_000, 100_000))),
        errors.MediaTooLargeError,
    )
    add("zero_bytes", Image(_write(base / "empty.png", b"")), errors.MediaDecodeError)
    add(
        "text_as_png",
        Image(_write(base / "notes.png", b"just some text, not an image\n" * 4)),
        errors.MediaDecodeError,
    )
    add("png_named_jpg", Image(_write(base / "really_png.jpg", png)), None, check=_check_rgb((16, 12)))
    add(
        "png_16bit",
        Image(_write(base / "gray16.png", png16_gray(np.array([[65535, 32768], [0, 257]])))),
        None,
        check=_check_pixel((1, 0), (128, 128, 128), tol=0),
    )
    add(
        "cmyk_jpeg",
        Image(_write(base / "cmyk.jpg", cmyk_jpeg())),
        None,
        check=_check_pixel((4, 4), (255, 0, 0)),
    )
    add(
        "palette_transparency",
        Image(_write(base / "palette.png", palette_transparent_png())),
        None,
        check=_check_pixel((0, 0), (255, 255, 255), tol=0),
    )
    add(
        "animated_gif",
        Image(_write(base / "anim.gif", animated_gif())),
        None,
        check=_check_pixel((4, 4), (255, 0, 0)),
    )
    add("random_bytes", Image(np.random.default_rng(1).bytes(4096)), errors.MediaDecodeError)
    add("elf_bytes_as_image", Image(b"\x7fELF\x02\x01\x01" + b"\x00" * 200), errors.MediaDecodeError)
    add(
        "eps_needs_ghostscript",
        Image(
            _write(
                base / "vector.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"
            )
        ),
        errors.MediaDecodeError,
    )
    add("nan_image_array", Image(np.full((4, 4, 3), np.nan, np.float32)), errors.MediaDecodeError)

    # -- audio -------------------------------------------------------------------------------
    stereo = np.stack([sine(0.5, 16_000), np.zeros(8000, np.float32)], axis=1)
    add(
        "stereo_wav",
        Audio(_write(base / "stereo.wav", wav_bytes(stereo, 16_000))),
        None,
        load_kwargs=AUDIO_KW,
        check=_check_audio(8000),
    )
    add(
        "wrong_rate_wav",
        Audio(_write(base / "8k.wav", wav_bytes(sine(0.5, 8000), 8000))),
        None,
        load_kwargs=AUDIO_KW,
        check=_check_audio(8000),
    )
    add(
        "corrupt_wav",
        Audio(_write(base / "corrupt.wav", corrupt_wav())),
        errors.MediaDecodeError,
        load_kwargs=AUDIO_KW,
    )
    nan_wav = wav_bytes(np.full(100, np.nan, np.float32), 16_000, subtype="FLOAT")
    add("nan_wav", Audio(_write(base / "nan.wav", nan_wav)), errors.MediaDecodeError, load_kwargs=AUDIO_KW)
    add(
        "empty_audio_array",
        Audio(np.zeros(0, np.float32), sampling_rate=16_000),
        errors.MediaDecodeError,
        load_kwargs=AUDIO_KW,
    )
    add(
        "audio_array_without_rate",
        Audio(np.zeros(100, np.float32)),
        errors.MediaDecodeError,
        load_kwargs=AUDIO_KW,
    )
    add(
        "too_long_audio",
        Audio(np.zeros(601 * 100, np.float32), sampling_rate=100),
        errors.MediaTooLargeError,
        load_kwargs=AUDIO_KW,
    )
    add(
        "text_as_wav",
        Audio(_write(base / "text.wav", b"RIFF? no, just text\n" * 10)),
        errors.MediaDecodeError,
        load_kwargs=AUDIO_KW,
    )

    # -- video -------------------------------------------------------------------------------
    mp4 = video_bytes("mp4", frames=20)
    mkv = video_bytes("matroska", frames=20)
    add(
        "random_bytes_mp4",
        Video(_write(base / "random.mp4", np.random.default_rng(2).bytes(8192))),
        errors.MediaDecodeError,
        load_kwargs=VIDEO_KW,
    )
    add(
        "truncated_mp4",
        Video(_write(base / "trunc.mp4", truncated(mp4))),
        errors.MediaDecodeError,
        load_kwargs=VIDEO_KW,
    )
    add(
        "truncated_mkv",
        Video(_write(base / "trunc.mkv", truncated(mkv))),
        errors.MediaDecodeError,
        load_kwargs=VIDEO_KW,
    )
    playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    add(
        "hls_playlist_as_mp4",
        Video(_write(base / "playlist.mp4", playlist)),
        errors.MediaDecodeError,
        load_kwargs=VIDEO_KW,
    )
    add(
        "empty_frame_array",
        Video(np.zeros((0, 8, 8, 3), np.uint8)),
        errors.MediaDecodeError,
        load_kwargs=VIDEO_KW,
    )

    # -- paths -------------------------------------------------------------------------------
    root = base / "root"
    outside = base / "outside"
    _write(root / "inside.png", png)
    secret = _write(outside / "secret.png", png)
    jail = MediaPolicy(allowed_roots=(root,))
    add("inside_root", Image(root / "inside.png"), None, policy=jail, check=_check_rgb((16, 12)))
    add("dotdot_escape", Image(f"{root}/../outside/secret.png"), errors.PathNotAllowedError, policy=jail)
    link = root / "link.png"
    if not link.exists():
        link.symlink_to(secret)
    add("symlink_escape", Image(link), errors.PathNotAllowedError, policy=jail)
    add("absolute_outside_root", Image(str(secret)), errors.PathNotAllowedError, policy=jail)
    add("directory", Image(root), errors.MediaNotFoundError)
    if hasattr(os, "mkfifo"):
        fifo = base / "pipe.png"
        if not fifo.exists():
            os.mkfifo(fifo)
        add("fifo", Image(fifo), errors.MediaNotFoundError, max_seconds=2.0)
    if os.path.exists("/dev/zero"):
        add("dev_zero", Image("/dev/zero"), errors.MediaNotFoundError, max_seconds=2.0)
    add("missing_file", Image(base / "missing.png"), errors.MediaNotFoundError)
    add(
        "file_over_byte_cap",
        Image(_write(base / "big.png", png)),
        errors.MediaTooLargeError,
        policy=MediaPolicy(max_bytes=64),
    )
    add(
        "data_uri_over_cap",
        Image("data:image/png;base64," + "A" * 400),
        errors.MediaTooLargeError,
        policy=MediaPolicy(max_bytes=64),
    )
    add("data_uri_bad_base64", Image("data:image/png;base64,!!!notbase64!!!"), errors.MediaDecodeError)

    # -- URLs refused before any socket ------------------------------------------------------
    urls = MediaPolicy(allow_urls=True)
    resolver = StaticResolver(
        {
            "media.example.test": ["127.0.0.1"],
            "intranet.example.test": ["10.1.2.3"],
            "mixed.example.test": ["93.184.216.34", "10.0.0.1"],
            "mapped.example.test": ["::ffff:127.0.0.1"],
        }
    )
    add("file_scheme", Image("file:///etc/passwd"), errors.URLNotAllowedError, policy=urls)
    add("ftp_scheme", Image("ftp://ftp.example.test/a.png"), errors.URLNotAllowedError, policy=urls)
    add(
        "urls_disabled",
        Image("http://media.example.test/a.png"),
        errors.URLNotAllowedError,
        resolver=resolver,
    )
    add(
        "url_credentials",
        Image("http://user:pw@media.example.test/a.png"),
        errors.URLNotAllowedError,
        policy=urls,
        resolver=resolver,
    )
    for label, url in [
        ("loopback_v4", "http://127.0.0.1/a.png"),
        ("private_10", "http://10.0.0.1/a.png"),
        ("metadata_link_local", "http://169.254.169.254/latest/meta-data/"),
        ("loopback_v6", "http://[::1]/a.png"),
        ("mapped_v6_loopback", "http://[::ffff:127.0.0.1]/a.png"),
        ("unspecified", "http://0.0.0.0/a.png"),
        ("multicast", "http://224.0.0.1/a.png"),
        ("cgnat_shared", "http://100.64.0.1/a.png"),
        ("nat64_loopback", "http://[64:ff9b::7f00:1]/a.png"),
        ("hostname_to_private", "http://intranet.example.test/a.png"),
        ("hostname_some_private", "http://mixed.example.test/a.png"),
        ("hostname_to_mapped_loopback", "http://mapped.example.test/a.png"),
        ("hostname_to_loopback", "http://media.example.test/a.png"),
    ]:
        add(label, Image(url), errors.AddressNotAllowedError, policy=urls, resolver=resolver)
    add(
        "unresolvable_host",
        Image("http://nowhere.example.test/a.png"),
        errors.MediaFetchError,
        policy=urls,
        resolver=resolver,
    )

    # -- URLs against the loopback server ----------------------------------------------------
    if server is not None:
        port = server.port
        public = "media.example.test"
        trusted = MediaPolicy(allow_urls=True, allowed_hosts=(public,), read_timeout=2.0)
        loop = MediaPolicy(allow_urls=True, allow_private_addresses=True, read_timeout=2.0)
        server.add_bytes("/good.png", png, "image/png")
        server.add_redirect("/to-loopback", server.url("/good.png"))
        server.add_redirect("/to-file", "file:///etc/passwd")
        server.add_redirect("/to-intranet", f"http://intranet.example.test:{port}/good.png")
        server.add_redirect("/loop", "/loop")
        server.add_drip("/drip", 0.2)
        server.add_drip("/drip-headers", 0.2, in_headers=True)
        server.add_silent("/silent")
        server.add_oversize("/big-cl", 4 * 2**20, content_length=True)
        server.add_oversize("/big-stream", 4 * 2**20, content_length=False)
        server.add_status("/missing", 404)
        server.add_status("/broken", 500)
        server.add_bytes("/text.png", b"<html>not an image</html>", "image/png")
        srv = {"resolver": resolver, "allowed_ports": (port,)}
        add(
            "good_url_trusted_host",
            Image(server.url("/good.png", public)),
            None,
            policy=trusted,
            check=_check_rgb((16, 12)),
            **srv,
        )
        add(
            "good_url_loopback_allowed",
            Image(server.url("/good.png")),
            None,
            policy=loop,
            check=_check_rgb((16, 12)),
            **srv,
        )
        add(
            "redirect_to_loopback",
            Image(server.url("/to-loopback", public)),
            errors.AddressNotAllowedError,
            policy=trusted,
            **srv,
        )
        add(
            "redirect_to_private_name",
            Image(server.url("/to-intranet", public)),
            errors.AddressNotAllowedError,
            policy=trusted,
            **srv,
        )
        add(
            "redirect_to_file_scheme",
            Image(server.url("/to-file", public)),
            errors.URLNotAllowedError,
            policy=trusted,
            **srv,
        )
        add("redirect_loop", Image(server.url("/loop")), errors.TooManyRedirectsError, policy=loop, **srv)
        slow = MediaPolicy(allow_urls=True, allow_private_addresses=True, read_timeout=1.0)
        add(
            "slow_drip_body",
            Image(server.url("/drip")),
            errors.MediaTimeoutError,
            policy=slow,
            max_seconds=3.0,
            **srv,
        )
        add(
            "slow_drip_headers",
            Image(server.url("/drip-headers")),
            errors.MediaTimeoutError,
            policy=slow,
            max_seconds=3.0,
            **srv,
        )
        add(
            "silent_server",
            Image(server.url("/silent")),
            errors.MediaTimeoutError,
            policy=slow,
            max_seconds=3.0,
            **srv,
        )
        capped = MediaPolicy(
            allow_urls=True, allow_private_addresses=True, max_bytes=256 * 1024, read_timeout=5.0
        )
        add(
            "oversize_content_length",
            Image(server.url("/big-cl")),
            errors.MediaTooLargeError,
            policy=capped,
            **srv,
        )
        add(
            "oversize_stream",
            Image(server.url("/big-stream")),
            errors.MediaTooLargeError,
            policy=capped,
            **srv,
        )
        add("http_404", Image(server.url("/missing")), errors.MediaFetchError, policy=loop, **srv)
        add("http_500", Image(server.url("/broken")), errors.MediaFetchError, policy=loop, **srv)
        add("url_not_an_image", Image(server.url("/text.png")), errors.MediaDecodeError, policy=loop, **srv)
    return cases


def good_items(tmp_path: Path) -> list[Image | Audio | Video]:
    """Items that load under the default policy (one or more per source kind and modality)."""
    base = tmp_path / "good"
    base.mkdir(parents=True, exist_ok=True)
    png = rgb_png(16, 12, (10, 200, 30))
    return [
        Image(_write(base / "a.png", png)),
        Image(png),
        Image(noisy_image()),
        Image(np.zeros((8, 8, 3), np.uint8)),
        Image("data:image/png;base64," + base64.b64encode(png).decode()),
        Audio(_write(base / "a.wav", wav_bytes(sine(0.25, 16_000), 16_000))),
        Audio(sine(0.25, 8000), sampling_rate=8000),
        Video(_write(base / "a.mp4", video_bytes("mp4", frames=8))),
        Video(np.zeros((5, 8, 8, 3), np.uint8)),
    ]
