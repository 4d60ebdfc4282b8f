"""Reading the bytes of a local path or a ``data:`` URI under a :class:`MediaPolicy`."""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from collections.abc import Iterator
from urllib.parse import unquote_to_bytes

from omniretrieve.errors import (
    MediaDecodeError,
    MediaNotFoundError,
    MediaTooLargeError,
    PathNotAllowedError,
)
from omniretrieve.media._policy import MediaPolicy

# ``scheme://...`` is a URL. A few schemes are URLs without the slashes too (``file:/etc/passwd``),
# so they are refused as URLs rather than looked up as odd relative paths. A one-letter scheme is a
# Windows drive (``C:\\x``), not a URL.
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")
_BARE_SCHEMES = frozenset(
    {"file", "ftp", "ftps", "sftp", "gopher", "dict", "ldap", "ldaps", "smb", "tftp", "jar", "netdoc"}
)


def classify_string(source: str) -> str:
    """``"data"`` for a data URI, ``"url"`` for anything URL-shaped, else ``"path"``."""
    head = source[:16].lower()
    if head.startswith("data:"):
        return "data"
    if _URL_RE.match(source):
        return "url"
    scheme, sep, _ = source.partition(":")
    if sep and scheme.lower() in _BARE_SCHEMES:
        return "url"
    return "path"


def check_size(size: int, policy: MediaPolicy, name: str, what: str) -> None:
    if size > policy.max_bytes:
        raise MediaTooLargeError(
            name, f"{what} is {size} bytes, over the cap of {policy.max_bytes} (MediaPolicy.max_bytes)"
        )


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _resolved(path: str | os.PathLike[str], name: str) -> str:
    """``path`` with ``..`` and every symlink resolved.

    Raises:
        MediaNotFoundError: not a usable path (empty, a NUL byte, undecodable, unresolvable).
    """
    try:
        text = os.fsdecode(os.fspath(path))
    except (TypeError, UnicodeError) as exc:
        raise MediaNotFoundError(name, f"not a usable path: {exc}") from exc
    if not text:
        raise MediaNotFoundError(name, "the path is empty")
    if "\x00" in text:
        raise MediaNotFoundError(name, "the path contains a NUL byte")
    try:
        return os.path.realpath(text)
    except (OSError, ValueError) as exc:
        raise MediaNotFoundError(name, f"cannot resolve the path: {exc}") from exc


def read_path(path: str | os.PathLike[str], policy: MediaPolicy, name: str) -> bytes:
    """Read a regular file, inside the allowed roots, at most ``policy.max_bytes`` of it.

    The path is resolved (``..`` and every symlink) before the roots are checked, and the resolved
    path is what gets opened, with ``O_NOFOLLOW`` and ``O_NONBLOCK`` so a symlink or FIFO swapped
    in meanwhile neither escapes nor hangs; the opened file is checked again with ``fstat``.
    """
    real = _resolved(path, name)
    roots = policy.resolved_roots()
    if roots is not None and not any(_inside(real, root) for root in roots):
        where = f"the allowed roots {list(roots)}" if roots else "any allowed root (allowed_roots is empty)"
        raise PathNotAllowedError(
            name,
            f"resolves to {real!r}, outside {where}; move the file inside a root or widen "
            "MediaPolicy.allowed_roots",
        )
    try:
        st = os.stat(real)
    except FileNotFoundError as exc:
        raise MediaNotFoundError(name, "no such file") from exc
    except OSError as exc:
        raise MediaNotFoundError(name, f"cannot access the file: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise MediaNotFoundError(name, f"is {_file_kind(st.st_mode)}; only regular files are read")
    check_size(st.st_size, policy, name, "the file")
    flags = os.O_RDONLY
    for extra in ("O_NOFOLLOW", "O_NONBLOCK", "O_CLOEXEC", "O_BINARY"):
        flags |= getattr(os, extra, 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise MediaNotFoundError(name, f"cannot open the file: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):  # replaced between the checks above and open()
            raise MediaNotFoundError(name, f"is {_file_kind(st.st_mode)}; only regular files are read")
        check_size(st.st_size, policy, name, "the file")
        try:
            data = handle.read(policy.max_bytes + 1)
        except OSError as exc:
            raise MediaNotFoundError(name, f"cannot read the file: {exc.strerror or exc}") from exc
    check_size(len(data), policy, name, "the file")
    return data


_B64_JUNK = re.compile(rb"[\s]+")


_DATA_CHUNK = 1 << 14
"""Characters of a data URI's payload decoded at a time: memory stays near the output's size."""


def read_data_uri(uri: str, policy: MediaPolicy, name: str) -> bytes:
    """Decode a ``data:[<type>][;base64],<payload>`` URI locally (RFC 2397), capped.

    The payload is decoded in chunks into one growing buffer, so memory stays within a small
    multiple of ``policy.max_bytes`` whatever the encoding (percent escapes, base64, whitespace).
    """
    comma = uri.find(",", 5)  # no slicing of the payload: it may be large
    if comma < 0:
        raise MediaDecodeError(name, "malformed data URI: no ',' between the media type and the data")
    is_base64 = uri[5:comma].strip().lower().endswith(";base64")
    size = len(uri) - comma - 1
    # The longest legitimate payload: base64 (4/3) with every character percent-escaped (x3),
    # plus room for line breaks. Anything longer cannot decode to at most max_bytes.
    limit = 4 * policy.max_bytes + 4096
    if size > limit:
        raise MediaTooLargeError(
            name,
            f"the data URI is {size} characters, over the cap of {policy.max_bytes} bytes "
            "(MediaPolicy.max_bytes)",
        )
    decoded = _Base64Sink(policy, name) if is_base64 else _ByteSink(policy, name)
    for chunk in _unquoted_chunks(uri, comma + 1, name):
        decoded.feed(chunk)
    data = decoded.finish()
    check_size(len(data), policy, name, "the data URI's payload")
    return data


def _unquoted_chunks(payload: str, start: int, name: str) -> Iterator[bytes]:
    """Percent-decode ``payload[start:]`` a chunk at a time, never splitting a ``%XX`` escape."""
    n = len(payload)
    while start < n:
        end = min(start + _DATA_CHUNK, n)
        if end < n:
            pct = payload.rfind("%", max(start, end - 2), end)
            if pct > start:
                end = pct
        try:
            yield unquote_to_bytes(payload[start:end])
        except (UnicodeError, ValueError) as exc:
            raise MediaDecodeError(name, f"malformed data URI: {exc}") from exc
        start = end


class _ByteSink:
    """Collects decoded bytes, refusing as soon as they pass the cap."""

    def __init__(self, policy: MediaPolicy, name: str) -> None:
        self.policy = policy
        self.name = name
        self.out = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.out += chunk
        check_size(len(self.out), self.policy, self.name, "the data URI's payload")

    def finish(self) -> bytes:
        return bytes(self.out)


class _Base64Sink(_ByteSink):
    """Decodes base64 in whole 4-character groups as they arrive; whitespace is dropped."""

    def __init__(self, policy: MediaPolicy, name: str) -> None:
        super().__init__(policy, name)
        self.pending = b""

    def feed(self, chunk: bytes) -> None:
        text = self.pending + _B64_JUNK.sub(b"", chunk)
        whole = len(text) - len(text) % 4
        self.pending = text[whole:]
        if whole:
            super().feed(self._decode(text[:whole]))

    def finish(self) -> bytes:
        if self.pending:
            super().feed(self._decode(self.pending + b"=" * (-len(self.pending) % 4)))
            self.pending = b""
        return super().finish()

    def _decode(self, text: bytes) -> bytes:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MediaDecodeError(self.name, f"malformed data URI: invalid base64 ({exc})") from exc
