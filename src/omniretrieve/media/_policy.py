"""The media policy (what may be read, and how much) and the address rules for URLs."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Union

from omniretrieve.errors import InvalidInputError


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - stdlib since 3.8
        return "0"
    try:
        return version("omniretrieve")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


USER_AGENT = f"omniretrieve/{_version()}"

RootLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class MediaPolicy:
    """What the media loader may read, from where, and how much.

    The defaults are safe for untrusted input: no URLs, any local path, 64 MiB per input,
    40 megapixels per image, 10 minutes of audio or video.

    Attributes:
        allow_urls: fetch ``http://`` and ``https://`` URLs (no other scheme, ever).
        allow_private_addresses: let URLs reach loopback, private, link-local, multicast,
            reserved and unspecified addresses. Leave it off unless every URL is trusted.
        allowed_hosts: host names (exact, case-insensitive) whose addresses are trusted even when
            private, e.g. ``("media.internal",)`` for an in-house media server. A redirect to any
            other host is checked as usual.
        allowed_roots: ``None`` lets any path be read; otherwise a path must resolve (following
            ``..`` and symlinks) inside one of these directories. ``()`` forbids all paths.
        max_bytes: cap on the bytes of any input: file, URL body, data URI or ``bytes``.
        max_image_pixels: cap on width x height of an image (and of a video frame), checked from
            the header before decoding, independent of Pillow's global ``MAX_IMAGE_PIXELS``.
        max_aspect_ratio: an image longer than this many times its width (or wider than this
            many times its height) is cropped to its centre at this ratio. Image processors scale
            the short side up to the model's size, so a 1 x 200,000 strip would otherwise become
            hundreds of megapixels; CLIP-style processors keep only the centre square anyway, so
            their embedding is unchanged by the crop.
        max_audio_seconds: cap on the duration of an audio input.
        max_video_seconds: cap on the duration of a video input.
        max_video_frames: cap on the number of frames of a video input.
        connect_timeout: seconds to wait for a TCP connection.
        read_timeout: seconds to wait for any read, and also the deadline for a whole response
            (TLS handshake, headers and body), so a server that drips bytes forever is cut off.
        max_redirects: redirects followed per URL; each hop is checked like the first.
        user_agent: the ``User-Agent`` header sent with every request.

    Example::

        policy = MediaPolicy(allow_urls=True, allowed_roots=("/data/media",), max_bytes=16 * 2**20)
        loader = MediaLoader(policy)
    """

    allow_urls: bool = False
    allow_private_addresses: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_roots: tuple[RootLike, ...] | None = None
    max_bytes: int = 64 * 2**20
    max_image_pixels: int = 40_000_000
    max_aspect_ratio: float = 10.0
    max_audio_seconds: float = 600.0
    max_video_seconds: float = 600.0
    max_video_frames: int = 36_000
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    max_redirects: int = 5
    user_agent: str = field(default=USER_AGENT)

    def __post_init__(self) -> None:
        # A single root or host given bare is a common slip: a str is iterable, char by char.
        roots = self.allowed_roots
        if isinstance(roots, (str, os.PathLike)):
            roots = (roots,)
        if roots is not None:
            object.__setattr__(self, "allowed_roots", tuple(roots))
        hosts = (self.allowed_hosts,) if isinstance(self.allowed_hosts, str) else self.allowed_hosts
        object.__setattr__(self, "allowed_hosts", tuple(normalize_host(h) for h in hosts))
        for name in ("max_bytes", "max_image_pixels", "max_video_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidInputError(f"MediaPolicy.{name}={value!r}", "must be a positive int")
        for name in ("max_audio_seconds", "max_video_seconds", "connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidInputError(f"MediaPolicy.{name}={value!r}", "must be a positive number")
        ratio = self.max_aspect_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 1.0 <= ratio < float("inf"):
            raise InvalidInputError(f"MediaPolicy.max_aspect_ratio={ratio!r}", "must be a finite number >= 1")
        if (
            isinstance(self.max_redirects, bool)
            or not isinstance(self.max_redirects, int)
            or self.max_redirects < 0
        ):
            raise InvalidInputError(
                f"MediaPolicy.max_redirects={self.max_redirects!r}", "must be an int >= 0"
            )

    def resolved_roots(self) -> tuple[str, ...] | None:
        """The allowed roots as absolute, symlink-free paths (``None``: any path is allowed)."""
        if self.allowed_roots is None:
            return None
        return tuple(os.path.realpath(os.fspath(root)) for root in self.allowed_roots)

    def host_is_trusted(self, host: str) -> bool:
        """Whether ``host``'s addresses may be private (``allow_private_addresses`` or listed)."""
        return self.allow_private_addresses or normalize_host(host) in self.allowed_hosts


def normalize_host(host: str) -> str:
    """Lower-case, IDNA-encode and drop a trailing dot: ``Bücher.Example.`` -> ``xn--bcher-kva.example``."""
    host = host.strip().rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve a host name with the system resolver; the default resolver of :class:`MediaLoader`."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")

_CHECKS = (
    ("is_unspecified", "an unspecified"),
    ("is_loopback", "a loopback"),
    ("is_link_local", "a link-local"),
    ("is_multicast", "a multicast"),
    ("is_private", "a private"),
    ("is_reserved", "a reserved"),
)


def address_refusal(ip: str) -> str | None:
    """Why a URL may not reach ``ip`` under the default policy, or ``None`` if it is public.

    Refused: loopback, private, link-local, multicast, reserved, unspecified and any other
    non-global address, in IPv4 and IPv6, including IPv4 addresses carried inside IPv6
    (``::ffff:127.0.0.1``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo).

    Raises:
        ValueError: ``ip`` is not an IP address.
    """
    return _refusal(ipaddress.ip_address(ip))


def _refusal(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            inner = _refusal(addr.ipv4_mapped)
            return f"IPv4-mapped {addr.ipv4_mapped}: {inner}" if inner else None
        if addr in _NAT64:
            v4 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
            inner = _refusal(v4)
            return f"NAT64 for {v4}: {inner}" if inner else None
        if addr in _NAT64_LOCAL:
            return "a local-use NAT64 address"
        embedded = addr.sixtofour or (addr.teredo[1] if addr.teredo else None)
        if embedded is not None:
            inner = _refusal(embedded)
            if inner:
                return f"tunnels to {embedded}: {inner}"
    for attribute, label in _CHECKS:
        if getattr(addr, attribute):
            return f"{label} address"
    if not addr.is_global:
        return "not a globally routable address"
    return None


def vet_addresses(addresses: Sequence[str]) -> tuple[list[str], str | None]:
    """Parse resolved addresses; return them normalised and the first refusal (``"ip (why)"``).

    Raises:
        ValueError: an address is not an IP address.
    """
    out: list[str] = []
    refusal: str | None = None
    for raw in addresses:
        addr = ipaddress.ip_address(str(raw))
        text = str(addr)
        out.append(text)
        why = _refusal(addr)
        if why and refusal is None:
            refusal = f"{text} ({why})"
    return out, refusal
