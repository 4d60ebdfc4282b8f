"""The hostile media corpus: every case raises its specific MediaError subclass (or loads).

URL refusals are proven to happen before any socket: the loader used is a GuardedMediaLoader whose
connect step raises ConnectForbidden (a BaseException) for anything but the loopback test server,
every connect attempt is recorded, and the whole module runs with socket.connect guarded too.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from media_fixtures import (
    ConnectForbidden,
    GuardedMediaLoader,
    HostileCase,
    LoopbackServer,
    StaticResolver,
    good_items,
    hostile_corpus,
    loopback_server,  # noqa: F401 - a fixture, used by name
    no_remote_connections,
    rgb_png,
)

from omniretrieve import errors
from omniretrieve.media import MediaLoader, MediaPolicy
from omniretrieve.types import Audio, Image, describe


def _case_names() -> list[str]:
    # The names only; a server that is never started is enough to register its routes.
    with tempfile.TemporaryDirectory() as tmp:
        return [case.name for case in hostile_corpus(Path(tmp), LoopbackServer())]


CASE_NAMES = _case_names()


@pytest.fixture(autouse=True)
def _only_loopback() -> Iterator[None]:
    with no_remote_connections():
        yield


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, server: LoopbackServer) -> dict[str, HostileCase]:
    return {case.name: case for case in hostile_corpus(tmp_path_factory.mktemp("corpus"), server)}


def test_corpus_covers_enough_kinds() -> None:
    assert len(CASE_NAMES) == len(set(CASE_NAMES))
    assert len(CASE_NAMES) >= 25
    with tempfile.TemporaryDirectory() as tmp:
        cases = hostile_corpus(Path(tmp), LoopbackServer())
    refused = {case.expected for case in cases if case.expected is not None}
    assert refused == {
        errors.MediaDecodeError,
        errors.MediaTooLargeError,
        errors.MediaNotFoundError,
        errors.PathNotAllowedError,
        errors.URLNotAllowedError,
        errors.AddressNotAllowedError,
        errors.MediaFetchError,
        errors.TooManyRedirectsError,
        errors.MediaTimeoutError,
    }
    assert sum(case.expected is None for case in cases) >= 8  # tricky inputs that must load


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_case(corpus: dict[str, HostileCase], name: str) -> None:
    case = corpus[name]
    loader = case.loader()
    started = time.monotonic()
    if case.expected is None:
        result = case.load(loader)
        assert case.check is not None, "a case that must load checks what it loads"
        case.check(result)
    else:
        with pytest.raises(errors.MediaError) as info:
            case.load(loader)
        assert type(info.value) is case.expected, f"{name}: {type(info.value).__name__}: {info.value}"
        assert str(info.value).startswith(describe(case.item) + ": "), "the error names the input"
        assert info.value.reason
    assert time.monotonic() - started < case.max_seconds
    if not case.allowed_ports:
        assert loader.connects == [], "refused before any connection"


# -- URL details that a per-case check cannot see ---------------------------------------------

PRIVATE_URLS = [
    "http://127.0.0.1/a.png",
    "http://127.1/a.png",
    "http://10.0.0.1/a.png",
    "http://172.16.5.4/a.png",
    "http://192.168.1.1/a.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/a.png",
    "http://[::ffff:127.0.0.1]/a.png",
    "http://[::ffff:10.0.0.1]:8080/a.png",
    "http://[fe80::1]/a.png",
    "http://[fc00::1]/a.png",
    "http://[ff02::1]/a.png",
    "http://0.0.0.0/a.png",
    "http://[::]/a.png",
    "http://224.0.0.1/a.png",
    "http://255.255.255.255/a.png",
    "https://[2002:7f00:1::]/a.png",
    "http://2130706433/a.png",
    "http://0x7f000001/a.png",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_addresses_refused_with_the_plain_loader(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real MediaLoader, its connect step patched to fail the test if reached.

    Hosts resolve through getaddrinfo with AI_NUMERICHOST: the system resolver's own parsing of
    odd numeric forms (``127.1``, ``2130706433``, ``0x7f000001``), and never a DNS query.
    """
    reached: list[tuple[str, int]] = []

    def forbidden(self: MediaLoader, ip: str, port: int, timeout: float) -> socket.socket:
        reached.append((ip, port))
        raise ConnectForbidden(f"connect reached for {ip}:{port}")

    def numeric_only(host: str, port: int) -> list[str]:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        return [str(info[4][0]) for info in infos]

    monkeypatch.setattr(MediaLoader, "_connect", forbidden)
    with pytest.raises(errors.AddressNotAllowedError):
        MediaLoader(MediaPolicy(allow_urls=True), resolver=numeric_only).load_image(Image(url))
    assert reached == []


def test_redirect_to_loopback_is_refused_at_the_redirect_hop(server: LoopbackServer) -> None:
    resolver = StaticResolver({"media.example.test": ["127.0.0.1"]})
    server.add_redirect("/hop-to-loopback", server.url("/hop-target.png"))
    server.add_bytes("/hop-target.png", rgb_png())
    loader = GuardedMediaLoader(
        MediaPolicy(allow_urls=True, allowed_hosts=("Media.Example.Test.",)),
        resolver=resolver,
        allowed_ports=(server.port,),
    )
    with pytest.raises(errors.AddressNotAllowedError) as info:
        loader.load_image(Image(server.url("/hop-to-loopback", "media.example.test")))
    assert f"http://127.0.0.1:{server.port}/hop-target.png" in str(info.value)
    assert loader.connects == [("127.0.0.1", server.port)]  # the first hop only
    assert server.hits["/hop-to-loopback"] == 1
    assert server.hits["/hop-target.png"] == 0


def test_trusted_host_is_pinned_to_the_vetted_address(server: LoopbackServer) -> None:
    """One lookup per hop; the socket goes to that answer; Host carries the original name."""
    resolver = StaticResolver({"media.example.test": ["127.0.0.1"]})
    server.add_bytes("/pinned.png", rgb_png(5, 7))
    loader = GuardedMediaLoader(
        MediaPolicy(allow_urls=True, allowed_hosts=("media.example.test",), user_agent="test-agent/1"),
        resolver=resolver,
        allowed_ports=(server.port,),
    )
    img = loader.load_image(Image(server.url("/pinned.png", "media.example.test")))
    assert img.size == (5, 7)
    assert resolver.calls == [("media.example.test", server.port)]
    assert loader.connects == [("127.0.0.1", server.port)]
    path, headers = [r for r in server.requests if r[0] == "/pinned.png"][-1]
    assert headers["Host"] == f"media.example.test:{server.port}"
    assert headers["User-Agent"] == "test-agent/1"
    assert headers["Accept-Encoding"] == "identity"


def test_redirect_loop_stops_after_max_redirects(server: LoopbackServer) -> None:
    server.add_redirect("/spin", "/spin", status=301)
    loader = GuardedMediaLoader(
        MediaPolicy(allow_urls=True, allow_private_addresses=True), allowed_ports=(server.port,)
    )
    with pytest.raises(errors.TooManyRedirectsError):
        loader.read_bytes(server.url("/spin"))
    assert server.hits["/spin"] == 6  # the URL and 5 redirects, then refusal without a 7th request


def test_relative_redirects_are_followed(server: LoopbackServer) -> None:
    server.add_bytes("/dir/final.png", rgb_png(3, 2))
    server.add_redirect("/dir/start", "final.png", status=307)
    server.add_redirect("/first", "/dir/start", status=308)
    loader = GuardedMediaLoader(
        MediaPolicy(allow_urls=True, allow_private_addresses=True, max_redirects=2),
        allowed_ports=(server.port,),
    )
    assert loader.load_image(Image(server.url("/first"))).size == (3, 2)


def test_redirects_can_be_disabled(server: LoopbackServer) -> None:
    server.add_bytes("/nr-final.png", rgb_png())
    server.add_redirect("/nr-start", "/nr-final.png")
    loader = GuardedMediaLoader(
        MediaPolicy(allow_urls=True, allow_private_addresses=True, max_redirects=0),
        allowed_ports=(server.port,),
    )
    with pytest.raises(errors.TooManyRedirectsError):
        loader.read_bytes(server.url("/nr-start"))
    assert server.hits["/nr-final.png"] == 0


def test_endless_drip_ends_at_the_deadline(server: LoopbackServer) -> None:
    server.add_drip("/drip-timed", 0.1)
    loader = GuardedMediaLoader(
        MediaPolicy(allow_urls=True, allow_private_addresses=True, read_timeout=0.8),
        allowed_ports=(server.port,),
    )
    started = time.monotonic()
    with pytest.raises(errors.MediaTimeoutError):
        loader.read_bytes(server.url("/drip-timed"))
    elapsed = time.monotonic() - started
    assert 0.7 <= elapsed < 2.0, elapsed  # each byte arrives well within read_timeout: the deadline cut it


def test_content_length_over_cap_is_refused_from_the_header(server: LoopbackServer) -> None:
    server.add_oversize("/announced", 64 * 2**20, content_length=True)
    loader = GuardedMediaLoader(
        MediaPolicy(allow_urls=True, allow_private_addresses=True, max_bytes=1024),
        allowed_ports=(server.port,),
    )
    with pytest.raises(errors.MediaTooLargeError, match="announces 67108864 bytes"):
        loader.read_bytes(server.url("/announced"))


def test_connection_refused_is_a_fetch_error() -> None:
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    loader = GuardedMediaLoader(
        MediaPolicy(allow_urls=True, allow_private_addresses=True), allowed_ports=(port,)
    )
    with pytest.raises(errors.MediaFetchError) as info:
        loader.read_bytes(f"http://127.0.0.1:{port}/a.png")
    assert type(info.value) is errors.MediaFetchError


def test_urls_disabled_by_default_never_resolve() -> None:
    resolver = StaticResolver({"media.example.test": ["93.184.216.34"]})
    loader = GuardedMediaLoader(resolver=resolver)
    with pytest.raises(errors.URLNotAllowedError):
        loader.read_bytes("https://media.example.test/a.png")
    assert resolver.calls == []
    assert loader.connects == []


@pytest.mark.parametrize(
    "url",
    [
        "gopher://media.example.test/",
        "file:/etc/passwd",
        "http:///a.png",
        "http://media.example.test:0/a.png",
        "http://media.example.test:99999/a.png",
        "http://media.example.test/a b.png",
        "http://media.example.test/a\r\nX-Injected: 1",
        "http://" + "a" * 9000 + ".test/",
        "http://bad_host!.test/",
    ],
)
def test_malformed_or_disallowed_urls(url: str) -> None:
    loader = GuardedMediaLoader(MediaPolicy(allow_urls=True), resolver=StaticResolver({}))
    with pytest.raises(errors.URLNotAllowedError):
        loader.read_bytes(url)
    assert loader.connects == []


# -- HTTPS: certificates are checked against the URL's host, while the socket goes to the IP -----


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, list[str | None]]]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=media.example.test",
         "-addext", "subjectAltName=DNS:media.example.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    body = rgb_png(4, 4)
    server_names: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)  # type: ignore[assignment,misc]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], cert, server_names
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_https_verifies_the_certificate_for_the_url_host(
    tls_server: tuple[int, Path, list[str | None]],
) -> None:
    port, cert, server_names = tls_server
    resolver = StaticResolver({"media.example.test": ["127.0.0.1"], "other.example.test": ["127.0.0.1"]})
    policy = MediaPolicy(allow_urls=True, allowed_hosts=("media.example.test", "other.example.test"))
    # Not trusted by the system's CAs: refused.
    untrusted = GuardedMediaLoader(policy, resolver=resolver, allowed_ports=(port,))
    with pytest.raises(errors.MediaFetchError):
        untrusted.read_bytes(f"https://media.example.test:{port}/a.png")
    # Trusted CA, right name: loads, and the TLS server name is the URL's host, not the IP.
    trusting = ssl.create_default_context(cafile=str(cert))
    loader = GuardedMediaLoader(policy, resolver=resolver, allowed_ports=(port,), ssl_context=trusting)
    assert loader.load_image(Image(f"https://media.example.test:{port}/a.png")).size == (4, 4)
    assert server_names[-1] == "media.example.test"
    assert loader.connects[-1] == ("127.0.0.1", port)
    # Trusted CA, wrong name: the certificate does not match the host, refused.
    with pytest.raises(errors.MediaFetchError):
        loader.read_bytes(f"https://other.example.test:{port}/a.png")


def test_good_items_load_next_to_the_corpus(
    tmp_path: Path,
    loopback_server: LoopbackServer,  # noqa: F811 - the imported fixture
) -> None:
    loader = GuardedMediaLoader()
    kinds = set()
    for item in good_items(tmp_path):
        if isinstance(item, Image):
            assert loader.load(item).mode == "RGB"
        elif isinstance(item, Audio):
            assert loader.load(item, sampling_rate=16_000).ndim == 1
        else:
            assert loader.load(item, num_frames=2).shape[0] == 2
        kinds.add(type(item))
    assert len(kinds) == 3
    assert loopback_server.port > 0 and loader.connects == []  # the fixture runs; nothing connected
