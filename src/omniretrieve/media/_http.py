"""Fetching an ``http(s)`` URL under a :class:`MediaPolicy`, with ``http.client`` only.

Every hop (the URL and each redirect) is parsed, its host resolved once, and every resolved
address vetted before any socket is opened. The connection goes to the vetted address itself, so a
second DNS answer (DNS rebinding) never matters; the ``Host`` header and TLS server name carry the
original host. A response has a total deadline (``read_timeout``) and a byte cap enforced while
streaming.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from omniretrieve.errors import (
    AddressNotAllowedError,
    MediaFetchError,
    MediaTimeoutError,
    MediaTooLargeError,
    TooManyRedirectsError,
    URLNotAllowedError,
)
from omniretrieve.media._policy import MediaPolicy, normalize_host, vet_addresses

logger = logging.getLogger("omniretrieve.media")

Resolver = Callable[[str, int], Sequence[str]]
Connector = Callable[[str, int, float], socket.socket]

MAX_URL_LENGTH = 8192
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")
_SAFE_PATH = "/:@!$&'()*+,;=?%~-._"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Target:
    """One parsed, policy-checked URL: where to connect and what to ask for."""

    url: str
    scheme: str
    host: str  # lower-case ASCII (IDNA) host, brackets stripped for IPv6
    port: int
    path: str  # request target: path and query, percent-encoded ASCII
    is_ip: bool


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_url(url: str, name: str) -> Target:
    """Parse and check a URL's form: http/https, a host, no credentials, sane characters.

    Raises:
        URLNotAllowedError: anything else.
    """
    if len(url) > MAX_URL_LENGTH:
        raise URLNotAllowedError(name, f"the URL is {len(url)} characters long (at most {MAX_URL_LENGTH})")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url):
        raise URLNotAllowedError(name, "the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise URLNotAllowedError(name, f"malformed URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise URLNotAllowedError(
            name,
            f"the scheme {scheme + ':' if scheme else '(none)'} is not allowed; only http and https URLs are fetched",
        )
    if parts.username is not None or parts.password is not None:
        raise URLNotAllowedError(name, "URLs with credentials (user:password@host) are not fetched")
    host, is_ip = _checked_host(parts.hostname or "", name)
    if port is None:
        port = 443 if scheme == "https" else 80
    if port == 0:
        raise URLNotAllowedError(name, "the URL's port 0 is not valid")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    path = quote(path, safe=_SAFE_PATH)
    return Target(url=url, scheme=scheme, host=host, port=port, path=path, is_ip=is_ip)


def _checked_host(host: str, name: str) -> tuple[str, bool]:
    """A URL's host in canonical form (an IP address, or an IDNA-encoded, normalised name) and whether it is an IP.

    Raises:
        URLNotAllowedError: no host, or not a valid host name.
    """
    if not host:
        raise URLNotAllowedError(name, "the URL has no host")
    if _is_ip(host):
        return str(ipaddress.ip_address(host)), True
    try:
        canonical = normalize_host(host.encode("idna").decode("ascii"))
    except UnicodeError as exc:
        raise URLNotAllowedError(name, f"the host {host!r} is not a valid host name") from exc
    if not canonical or not set(canonical) <= _HOST_CHARS:
        raise URLNotAllowedError(name, f"the host {canonical!r} is not a valid host name")
    return canonical, False


def resolve_and_vet(target: Target, policy: MediaPolicy, resolve: Resolver, name: str) -> list[str]:
    """Resolve a hop's host once and vet every address; return the addresses to connect to.

    Raises:
        AddressNotAllowedError: an address is not public and the host is not trusted.
        MediaFetchError: the host does not resolve.
    """
    if target.is_ip:
        answers: Sequence[str] = [target.host]
    else:
        try:
            answers = list(resolve(target.host, target.port))
        except Exception as exc:  # the resolver is pluggable: any failure means "no address"
            raise MediaFetchError(
                name, f"cannot resolve the host {target.host!r} of {target.url}: {exc}"
            ) from exc
        if not answers:
            raise MediaFetchError(name, f"the host {target.host!r} of {target.url} resolved to no address")
    try:
        addresses, refusal = vet_addresses(answers)
    except ValueError as exc:
        raise MediaFetchError(name, f"the host {target.host!r} resolved to a non-address: {exc}") from exc
    if refusal is not None and not policy.host_is_trusted(target.host):
        raise AddressNotAllowedError(
            name,
            f"{target.url}: the host {target.host!r} resolves to {refusal}; URLs may only reach public "
            "addresses (set MediaPolicy.allowed_hosts or allow_private_addresses to trust it)",
        )
    return addresses


class _DeadlineExceeded(TimeoutError):
    """The whole-response deadline passed."""


class _DeadlineSocket:
    """What ``http.client`` sees as its socket: every read and write is deadline-bounded.

    Like a real socket, closing it while a file made by :meth:`makefile` is still open (the
    response) defers closing the descriptor until that file is closed too.
    """

    def __init__(self, sock: socket.socket, deadline: float, read_timeout: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._read_timeout = read_timeout
        self._files = 0
        self._closed = False

    def arm(self) -> None:
        """Set the socket timeout to the smaller of the per-read timeout and what is left."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise _DeadlineExceeded("the response took longer than the read deadline")
        self._sock.settimeout(min(self._read_timeout, remaining))

    def recv_into(self, buffer: Any) -> int:
        self.arm()
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        self._files += 1
        return io.BufferedReader(_DeadlineReader(self), _CHUNK)

    def sendall(self, data: bytes) -> None:
        self.arm()
        self._sock.sendall(data)

    def release(self) -> None:
        self._files -= 1
        self._maybe_close()

    def close(self) -> None:
        self._closed = True
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self._closed and self._files <= 0:
            self._sock.close()


class _DeadlineReader(io.RawIOBase):
    """The raw file under the response: reads go through :meth:`_DeadlineSocket.recv_into`."""

    def __init__(self, owner: _DeadlineSocket) -> None:
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._owner.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._owner.release()
        super().close()


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to one vetted IP, sending the URL's own host as ``Host`` and SNI."""

    def __init__(
        self,
        target: Target,
        ip: str,
        connect: Connector,
        policy: MediaPolicy,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(target.host, target.port, timeout=policy.connect_timeout)
        self.default_port = 443 if target.scheme == "https" else 80  # Host: omits the default port
        self._target = target
        self._ip = ip
        self._connector = connect
        self._policy = policy
        self._ssl_context = ssl_context

    def connect(self) -> None:
        sock = self._connector(self._ip, self._target.port, self._policy.connect_timeout)
        try:
            deadline = time.monotonic() + self._policy.read_timeout
            sock.settimeout(self._policy.read_timeout)  # bounds the TLS handshake as a whole
            if self._target.scheme == "https":
                context = self._ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=self._target.host)
        except BaseException:
            sock.close()
            raise
        self.sock = _DeadlineSocket(sock, deadline, self._policy.read_timeout)  # type: ignore[assignment]


def default_connect(ip: str, port: int, timeout: float) -> socket.socket:
    """Open a TCP connection to a literal IP (no name lookup happens here)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((ip, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _request(
    target: Target,
    addresses: list[str],
    policy: MediaPolicy,
    connect: Connector,
    ssl_context: ssl.SSLContext | None,
    name: str,
) -> tuple[int, str | None, bytes]:
    """One GET; returns (status, Location, body). The body is read only for a 2xx answer."""
    last_error: Exception | None = None
    for ip in addresses:
        conn = _PinnedConnection(target, ip, connect, policy, ssl_context)
        try:
            try:
                conn.connect()
            except (ConnectionError, OSError) as exc:  # try the next address, like create_connection
                last_error = exc
                continue
            conn.putrequest("GET", target.path, skip_accept_encoding=True)
            conn.putheader("User-Agent", policy.user_agent)
            conn.putheader("Accept", "*/*")
            conn.putheader("Accept-Encoding", "identity")
            conn.putheader("Connection", "close")
            conn.endheaders()
            response = conn.getresponse()
            try:
                status = response.status
                if status in _REDIRECTS:
                    return status, response.getheader("Location"), b""
                if not 200 <= status < 300:
                    raise MediaFetchError(name, f"{target.url} answered HTTP {status} {response.reason}")
                return status, None, _read_body(response, policy, target, name)
            finally:
                response.close()
        finally:
            conn.close()
    assert last_error is not None
    raise last_error


def _read_body(response: http.client.HTTPResponse, policy: MediaPolicy, target: Target, name: str) -> bytes:
    header = response.getheader("Content-Length")
    declared = int(header) if header is not None and header.strip().isdigit() else None
    if declared is not None and declared > policy.max_bytes:
        raise MediaTooLargeError(
            name,
            f"{target.url} announces {declared} bytes, over the cap of {policy.max_bytes} "
            "(MediaPolicy.max_bytes)",
        )
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = response.read(min(_CHUNK, policy.max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > policy.max_bytes:
            raise MediaTooLargeError(
                name,
                f"{target.url} sent more than the cap of {policy.max_bytes} bytes (MediaPolicy.max_bytes)",
            )
    # http.client's read(amt) does not raise on a body cut short of its Content-Length.
    if declared is not None and total != declared and not _is_compressed(response):
        raise MediaFetchError(
            name,
            f"{target.url} declared {declared} bytes but sent {total} before closing the connection "
            "(a truncated download); try again",
        )
    return b"".join(chunks)


def _is_compressed(response: http.client.HTTPResponse) -> bool:
    """Whether the body carries a transfer coding whose length differs from Content-Length's."""
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    return encoding not in ("", "identity")


def fetch_url(
    url: str,
    *,
    policy: MediaPolicy,
    resolve: Resolver,
    connect: Connector,
    ssl_context: ssl.SSLContext | None,
    name: str,
) -> bytes:
    """Fetch a URL under the policy, following at most ``policy.max_redirects`` redirects.

    Raises:
        URLNotAllowedError, AddressNotAllowedError: refused before any socket was opened.
        TooManyRedirectsError, MediaTimeoutError, MediaFetchError, MediaTooLargeError.
    """
    if not policy.allow_urls:
        raise URLNotAllowedError(name, "URLs are disabled; set MediaPolicy(allow_urls=True) to fetch them")
    current = url
    for hop in range(policy.max_redirects + 1):
        target = parse_url(current, name)
        addresses = resolve_and_vet(target, policy, resolve, name)
        try:
            status, location, body = _request(target, addresses, policy, connect, ssl_context, name)
        except (MediaFetchError, MediaTooLargeError):
            raise
        except TimeoutError as exc:
            raise MediaTimeoutError(
                name,
                f"{target.url} did not answer in time ({exc or 'timed out'}); connect_timeout="
                f"{policy.connect_timeout:g}s, read_timeout={policy.read_timeout:g}s (also the deadline "
                "for a whole response)",
            ) from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise MediaFetchError(name, f"cannot fetch {target.url}: {type(exc).__name__}: {exc}") from exc
        if location is None and status in _REDIRECTS:
            raise MediaFetchError(name, f"{target.url} answered HTTP {status} without a Location header")
        if location is None:
            return body
        next_url = urljoin(current, location.strip())
        logger.debug("redirect %d of %s: %s -> %s", hop + 1, name, current, next_url)
        if hop == policy.max_redirects:
            raise TooManyRedirectsError(
                name,
                f"more than {policy.max_redirects} redirects (MediaPolicy.max_redirects); the last hop "
                f"{current} redirects to {next_url}",
            )
        current = next_url.split("#", 1)[0]
    raise AssertionError("unreachable")  # pragma: no cover
