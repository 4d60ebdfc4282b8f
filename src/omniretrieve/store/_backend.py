"""How a store reaches Chroma: embedded (a directory, one writing process) or a server (``HttpClient``).

The choice is made once, by :func:`open_backend`, from the arguments a :class:`Store` gets; every
other module talks to the :class:`Backend` interface and never asks which one it has. What differs
between the two lives here:

* embedded (:class:`EmbeddedBackend`): a ``PersistentClient`` on a directory, under an exclusive
  directory lock (:mod:`._lock`). Nobody else writes, so the backend is ``exclusive``: collections
  and statistics may be cached in memory.
* server (:class:`ServerBackend`): an ``HttpClient`` whose every request is bounded by a timeout
  (Chroma's own client waits forever), several writers at once, each with its own writer id.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
import weakref
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omniretrieve.errors import InvalidInputError, StoreConnectionError, StoreError, StoreLockedError, require
from omniretrieve.store._lock import DirectoryLock

logger = logging.getLogger(__name__)

DEFAULT_PATH = "omniretrieve-store"
"""Where an embedded store lives when no ``path`` is given: ``./omniretrieve-store``."""

DEFAULT_TIMEOUT = 30.0
"""Seconds a client-server store waits for the Chroma server (connect, read, write) by default."""

EXCLUSIVE_WRITER = "base"
"""The writer id of an exclusive (embedded) backend; a server backend draws a random one."""


class Backend(ABC):
    """One connection to Chroma, embedded or client-server, as the rest of the store sees it.

    Attributes:
        client: The Chroma client (``PersistentClient`` or ``HttpClient``).
        location: Where the store is, in words: the directory, or the server's URL.
        directory: The store's directory on this machine (embedded), else ``None``.
        exclusive: True when no other process can write: collections and statistics may then be
            kept in memory.
        writer: This writer's id, which names its statistics records.
        max_batch: The most records Chroma takes in one call.
    """

    client: Any
    location: str
    directory: Path | None
    exclusive: bool
    writer: str
    max_batch: int

    @abstractmethod
    def describe(self, name: str) -> str:
        """The store ``name`` on this backend, for messages: ``'NAME' at 'DIR'`` or ``'NAME' on HOST:PORT``."""

    def list_collections(self) -> dict[str, dict[str, Any]]:
        """Every collection's name and metadata."""
        return {col.name: dict(col.metadata or {}) for col in self.client.list_collections()}

    def get_collection(self, name: str) -> Any | None:
        """The collection ``name``, or ``None`` when it does not exist."""
        try:
            return self.client.get_collection(name, embedding_function=None)
        except Exception:
            return None

    def get_or_create_collection(self, name: str, metadata: Mapping[str, Any], space: str) -> Any:
        """The collection ``name``, created with this metadata and HNSW space when missing."""
        return self.client.get_or_create_collection(
            name, metadata=dict(metadata), embedding_function=None, configuration={"hnsw": {"space": space}}
        )

    def close(self) -> None:
        """Release the client (and whatever else the backend holds). Idempotent."""
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            try:
                client.close()
            except Exception:  # pragma: no cover - best effort
                logger.debug("closing the Chroma client failed", exc_info=True)

    def _start(self, client: Any) -> None:
        self.client = client
        self.max_batch = int(client.get_max_batch_size())


class EmbeddedBackend(Backend):
    """A ``PersistentClient`` on ``directory``, under the directory lock until :meth:`close`.

    Raises:
        StoreLockedError: another process, or another open store of this process, holds the directory.
        StoreError: Chroma could not open the directory.
    """

    exclusive = True
    writer = EXCLUSIVE_WRITER

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.location = str(directory)
        self.closed = False
        self._known: set[str] = set()
        directory.mkdir(parents=True, exist_ok=True)
        held = open_here(directory)
        if held is not None:
            raise StoreLockedError(str(directory), str(os.getpid()))
        self._lock: DirectoryLock | None = DirectoryLock(directory)
        self._lock.acquire()
        try:
            chromadb = require("chromadb", extra=None, purpose="The store", package="chromadb")
            try:
                client = chromadb.PersistentClient(path=str(directory), settings=_chroma_settings())
            except Exception as exc:
                raise StoreError(f"could not open the Chroma store at {str(directory)!r}: {exc}") from exc
            self._start(client)
        except BaseException:
            self.close()
            raise
        with _OPEN_LOCK:
            _OPEN[directory.resolve()] = weakref.ref(self)

    def describe(self, name: str) -> str:
        return f"{name!r} at {self.location!r}"

    def list_collections(self) -> dict[str, dict[str, Any]]:
        found = super().list_collections()
        self._known.update(found)
        return found

    def get_collection(self, name: str) -> Any | None:
        # Only this process creates collections in its directory: one it has not seen does not exist.
        return super().get_collection(name) if name in self._known else None

    def get_or_create_collection(self, name: str, metadata: Mapping[str, Any], space: str) -> Any:
        col = super().get_or_create_collection(name, metadata, space)
        self._known.add(name)
        return col

    def close(self) -> None:
        self.closed = True
        with _OPEN_LOCK:
            key = self.directory.resolve() if self.directory is not None else None
            ref = _OPEN.get(key) if key is not None else None
            if key is not None and ref is not None and ref() in (self, None):
                del _OPEN[key]
        super().close()
        lock, self._lock = getattr(self, "_lock", None), None
        if lock is not None:
            lock.release()


class ServerBackend(Backend):
    """An ``HttpClient`` on a Chroma server, every request bounded by ``timeout``.

    Raises:
        StoreConnectionError: no server answered within the timeout, or it refused the client.
    """

    exclusive = False
    directory = None

    def __init__(
        self, host: str, port: int, ssl: bool, headers: Mapping[str, str] | None, timeout: float | None
    ) -> None:
        self.host = host
        self.port = int(port)
        self.location = server_url(host, port, ssl)
        self.writer = uuid.uuid4().hex[:16]
        self._start(_connect_server(host, self.port, ssl, headers, timeout))

    def describe(self, name: str) -> str:
        return f"{name!r} on {self.host}:{self.port}"


def check_location(path: str | os.PathLike[str] | None, host: str | None, timeout: float | None) -> None:
    """Check the arguments that say where a store is.

    Raises:
        InvalidInputError: both ``path`` and ``host``, or a timeout that is not a positive number.
    """
    if path is not None and host is not None:
        raise InvalidInputError("path/host", "give either path (embedded) or host (client-server), not both")
    if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
        raise InvalidInputError(f"timeout={timeout!r}", "must be a positive number of seconds or None")


def open_backend(
    *,
    path: str | os.PathLike[str] | None,
    host: str | None,
    port: int,
    ssl: bool,
    headers: Mapping[str, str] | None,
    timeout: float | None,
) -> Backend:
    """The backend these arguments name: a server when ``host`` is given, else an embedded directory.

    Raises:
        InvalidInputError: see :func:`check_location`.
        StoreLockedError: the embedded directory is held by another writer.
        StoreConnectionError: the server could not be reached.
        StoreError: Chroma could not open the store.
    """
    check_location(path, host, timeout)
    if host is not None:
        return ServerBackend(host, port, ssl, headers, timeout)
    return EmbeddedBackend(embedded_directory(path))


def embedded_directory(path: str | os.PathLike[str] | None) -> Path:
    """The absolute directory of an embedded store (default ``./omniretrieve-store``)."""
    return Path(path if path is not None else DEFAULT_PATH).absolute()


def reading_backend(
    *,
    path: str | os.PathLike[str] | None,
    host: str | None,
    port: int,
    ssl: bool,
    headers: Mapping[str, str] | None,
    timeout: float | None,
) -> _Reading:
    """How to read a store without writing to it (:meth:`Store.inspect`).

    A server: a fresh client, closed after the read. An embedded directory this process holds
    open: that store's own backend. Any other directory: no client at all (``backend`` is
    ``None``): the caller reads its database read-only, and never opens a Chroma client there.
    """
    check_location(path, host, timeout)
    if host is not None:
        server = ServerBackend(host, port, ssl, headers, timeout)
        return _Reading(server, server.location, owned=True)
    directory = embedded_directory(path)
    return _Reading(open_here(directory), str(directory), owned=False, directory=directory)


class _Reading:
    """The backend a read goes through, if any, and where the store is (closes a backend opened for it).

    Attributes:
        backend: The client to read through; ``None``: read ``directory`` from disk.
        location: Where the store is, in words (the directory as given, or the server's URL).
        directory: The embedded store's directory, else ``None``.
    """

    def __init__(
        self, backend: Backend | None, location: str, *, owned: bool, directory: Path | None = None
    ) -> None:
        self.backend = backend
        self.location = location
        self.directory = directory
        self._owned = owned

    def __enter__(self) -> _Reading:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._owned and self.backend is not None:
            self.backend.close()


_OPEN_LOCK = threading.Lock()
_OPEN: dict[Path, weakref.ReferenceType[EmbeddedBackend]] = {}
"""The embedded stores this process holds open, by resolved directory."""


def open_here(directory: Path) -> EmbeddedBackend | None:
    """The open embedded backend this process holds on ``directory``, if any."""
    with _OPEN_LOCK:
        ref = _OPEN.get(directory.resolve())
    backend = ref() if ref is not None else None
    return backend if backend is not None and not backend.closed else None


def server_url(host: str, port: int, ssl: bool) -> str:
    """The base URL of a Chroma server."""
    return f"{'https' if ssl else 'http'}://{host}:{int(port)}"


def _chroma_settings() -> Any:
    chromadb_config = require("chromadb.config", extra=None, purpose="The store", package="chromadb")
    return chromadb_config.Settings(anonymized_telemetry=False)


def _connect_server(
    host: str, port: int, ssl: bool, headers: Mapping[str, str] | None, timeout: float | None
) -> Any:
    """A Chroma ``HttpClient`` whose every request is bounded by ``timeout``."""
    chromadb = require("chromadb", extra=None, purpose="The store", package="chromadb")
    import httpx

    url = server_url(host, port, ssl)
    # Chroma's HttpClient talks to the server while it is being built, with no timeout; a
    # bounded heartbeat first turns an unreachable or silent server into a prompt error.
    try:
        response = httpx.get(f"{url}/api/v2/heartbeat", headers=dict(headers or {}), timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise StoreConnectionError(
            f"no Chroma server answered at {url} within {timeout} s ({type(exc).__name__}: {exc}). "
            f"Start one with `chroma run --path DIR --host {host} --port {port}`, or check host, port, "
            "ssl and headers."
        ) from exc
    try:
        client = chromadb.HttpClient(
            host=host, port=int(port), ssl=ssl, headers=dict(headers or {}), settings=_chroma_settings()
        )
    except Exception as exc:
        raise StoreConnectionError(f"the Chroma server at {url} refused the connection: {exc}") from exc
    # Chroma builds its httpx.Client with timeout=None and offers no setting for it.
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(timeout)
    else:  # pragma: no cover - only if Chroma's internals change
        logger.warning("could not set a timeout on Chroma's HTTP client: requests may wait forever")
    return client


__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_TIMEOUT",
    "Backend",
    "EmbeddedBackend",
    "ServerBackend",
    "check_location",
    "embedded_directory",
    "open_backend",
    "open_here",
    "reading_backend",
    "server_url",
]
