"""A real Chroma server for tests: ``chroma run`` on a free loopback port, started and stopped by us.

Use the ``chroma_server`` fixture (session scope: one server for the whole test session)::

    def test_something(chroma_server):
        store = Store(embedder, host=chroma_server.host, port=chroma_server.port)

or the class directly::

    with ChromaServer(tmp_path / "db") as server:
        ...

Every wait is bounded; the server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


def chroma_executable() -> str:
    """The ``chroma`` command of this Python environment (the venv's bin), else the one on PATH."""
    candidate = Path(sys.executable).parent / "chroma"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("chroma")
    if found is None:
        raise RuntimeError("no `chroma` command: pip install chromadb")
    return found


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ChromaServer:
    """``chroma run --path DIR --host 127.0.0.1 --port N`` as a subprocess.

    Args:
        path: The server's data directory.
        host: Loopback address to listen on.
        port: The port (default: a free one).
        startup_timeout: Seconds to wait for the heartbeat.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        host: str = HOST,
        port: int | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        self.path = Path(path)
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout = startup_timeout
        self.log_path = self.path.parent / f"{self.path.name}-chroma-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def heartbeat(self, timeout: float = 1.0) -> bool:
        try:
            return httpx.get(f"{self.url}/api/v2/heartbeat", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self) -> ChromaServer:
        self.path.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the server's life
        env = dict(os.environ, ANONYMIZED_TELEMETRY="False", NO_COLOR="1")
        self._proc = subprocess.Popen(
            [
                chroma_executable(),
                "run",
                "--path",
                str(self.path),
                "--host",
                self.host,
                "--port",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {self._proc.returncode}:\n{self.log()}")
            if self.heartbeat():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"chroma run gave no heartbeat within {self.startup_timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)  # a paused server cannot handle SIGTERM
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections are accepted by the kernel, nothing answers."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One Chroma server for the whole session, on a free loopback port; stopped at the end."""
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server") / "db")
    last: Exception | None = None
    for _ in range(3):  # the free port may be taken between choosing and binding it
        try:
            server.start()
            break
        except RuntimeError as exc:
            last = exc
            server = ChromaServer(server.path)
    else:
        raise RuntimeError(f"could not start a Chroma server: {last}")
    try:
        yield server
    finally:
        server.stop()
