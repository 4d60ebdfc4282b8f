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

import errno
import functools
import logging
import os
import threading
import time
import uuid
import weakref
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omniretrieve.errors import (
    InvalidInputError,
    OmniretrieveError,
    StoreConnectionError,
    StoreError,
    StoreLockedError,
    require,
)
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
        """The collection ``name``, or ``None`` when it does not exist.

        Raises:
            StoreError: any other failure (a dead server is not a missing collection).
        """
        try:
            return self.client.get_collection(name, embedding_function=None)
        except ChromaRefusal as exc:
            if _is_not_found(exc.__cause__):
                return None
            raise

    def translate(self, exc: BaseException, call: str) -> OmniretrieveError:
        """The typed error for an exception Chroma (or its HTTP client) raised in ``call``."""
        return translate(exc, call, self.location, server=not self.exclusive)

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
        self.client = Guarded(client, self.translate)
        self.max_batch = int(self.client.get_max_batch_size())


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
        self._lock: DirectoryLock | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            held = open_here(directory)
            if held is not None:
                raise StoreLockedError(str(directory), str(os.getpid()))
            self._lock = DirectoryLock(directory)
            self._lock.acquire()
        except OSError as exc:
            raise StoreError(_directory_advice(directory, exc)) from exc
        try:
            chromadb = require("chromadb", extra=None, purpose="The store", package="chromadb")
            try:
                client = chromadb.PersistentClient(path=str(directory), settings=_chroma_settings())
            except Exception as exc:
                reason = _directory_advice(directory, exc) if _is_disk_error(exc) else str(exc)
                raise StoreError(f"could not open the Chroma store at {str(directory)!r}: {reason}") from exc
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


class ChromaRefusal(StoreError):
    """Chroma refused the records of one call as invalid (a validation error, not a failing store).

    The only Chroma failure after which the other records of a batch are worth retrying one by
    one; every other failure (a full or read-only disk, an I/O error, a dead server) is a
    store-level :class:`StoreError` that stops the write.
    """


_DISK_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EROFS, errno.EIO, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EFBIG}
)
_DISK_WORDS = (
    "no space",
    "disk is full",
    "database or disk",
    "readonly",
    "read-only",
    "i/o error",
    "permission denied",
    "compaction",
    "quota",
)


def _is_disk_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return True
    text = str(exc).lower()
    return any(word in text for word in _DISK_WORDS)


def _is_not_found(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    if type(exc).__name__ == "NotFoundError":
        return True
    return isinstance(exc, ValueError) and "does not exist" in str(exc)


def _is_refusal(exc: BaseException) -> bool:
    """Whether Chroma refused the request's contents (validation), as opposed to failing."""
    name = type(exc).__name__
    if name in ("InvalidArgumentError", "InvalidDimensionException", "DuplicateIDError", "NotFoundError"):
        return True
    if name.endswith("Error") and type(exc).__module__.startswith("chromadb"):
        return False  # InternalError, QuotaError, RateLimitError, auth: the store, not the records
    return isinstance(exc, ValueError | TypeError) and not _is_disk_error(exc)


def translate(exc: BaseException, call: str, location: str, *, server: bool) -> OmniretrieveError:
    """The typed error for ``exc``, raised by Chroma or its HTTP client in ``call`` on ``location``.

    The one place foreign exceptions become omniretrieve's: :class:`StoreConnectionError` when a
    server cannot be reached or does not answer in time; :class:`ChromaRefusal` when Chroma refused
    the contents of the call; :class:`StoreError` for anything else (a full, read-only or failing
    disk says so, with what to do).
    """
    if isinstance(exc, OmniretrieveError):
        return exc
    httpx = _httpx()
    if httpx is not None and isinstance(exc, httpx.TransportError | httpx.HTTPStatusError):
        return StoreConnectionError(
            f"the Chroma server at {location} failed on {call}() ({type(exc).__name__}: {exc}). "
            "Check that it is running and not paused or overloaded; raise timeout= for a slow server. "
            "What was written before is kept."
        )
    if server and isinstance(exc, ConnectionError | TimeoutError):
        return StoreConnectionError(f"the Chroma server at {location} failed on {call}(): {exc}")
    if _is_refusal(exc):
        return ChromaRefusal(f"Chroma refused {call}() on {location}: {exc}")
    if _is_disk_error(exc) and not server:
        return StoreError(
            f"the store at {location} could not be written ({call}: {exc}): its disk is full, "
            "read-only or failing. Free space or fix the filesystem, then write again; what was "
            "written before is kept."
        )
    return StoreError(f"Chroma failed on {call}() for the store at {location}: {type(exc).__name__}: {exc}")


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx comes with chromadb
        return None
    return httpx


def _directory_advice(directory: Path, exc: BaseException) -> str:
    return (
        f"cannot use {str(directory)!r} as an embedded store ({exc}): the directory must be "
        "writable (the store writes its database and lock there, even to read). Fix its "
        "permissions, free space on its disk, or read it without writing with "
        "Store.inspect(path=...)."
    )


READ_ATTEMPTS = 4
"""Tries of a read that failed transiently (:func:`_is_transient_read`); the last failure is raised."""

READ_BACKOFF = 0.05
"""Seconds before the second try of such a read; doubled before each further one."""

_READS = frozenset({"get", "query", "count", "peek"})
"""Collection methods that only read, and so can be tried again."""

_TRANSIENT_READ = "nothing found on disk"
"""A Chroma server (1.5.x) answers a read that includes embeddings with ``InternalError: Error
creating hnsw segment reader: Nothing found on disk`` while another client's first write to the
collection is still being applied (measured: 38 of 1,200 such reads from 4 processes failed; reads
of metadata only, and writes, never did). The same read a moment later succeeds."""


def _is_transient_read(exc: BaseException) -> bool:
    """Whether a failed read is the server's transient one (:data:`_TRANSIENT_READ`), worth retrying."""
    return _TRANSIENT_READ in str(exc).lower()


class Guarded:
    """A Chroma client or collection whose every method raises only omniretrieve's errors.

    Methods are looked up on the wrapped object and called through :func:`translate`; a
    collection a method returns is guarded in turn. Plain attributes pass through.

    Args:
        target: The Chroma object.
        translate: ``(exception, method name) -> typed error``.
    """

    def __init__(self, target: Any, translate: Any) -> None:
        self.__dict__["_target"] = target
        self.__dict__["_translate"] = translate

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name.startswith("__") or not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(READ_ATTEMPTS):
                try:
                    out = attr(*args, **kwargs)
                except OmniretrieveError:
                    raise
                except Exception as exc:
                    if name in _READS and attempt + 1 < READ_ATTEMPTS and _is_transient_read(exc):
                        time.sleep(READ_BACKOFF * 2**attempt)
                        continue
                    raise self._translate(exc, name) from exc
                return self._guard(out)
            raise AssertionError("unreachable")  # pragma: no cover

        return call

    def _guard(self, out: Any) -> Any:
        if _is_collection(out):
            return Guarded(out, self._translate)
        if isinstance(out, list) and out and all(_is_collection(o) for o in out):
            return [Guarded(o, self._translate) for o in out]
        return out

    def __repr__(self) -> str:
        return f"Guarded({self._target!r})"


def _is_collection(obj: Any) -> bool:
    return type(obj).__name__ == "Collection" and hasattr(obj, "add") and hasattr(obj, "query")


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
    "ChromaRefusal",
    "EmbeddedBackend",
    "Guarded",
    "ServerBackend",
    "check_location",
    "embedded_directory",
    "open_backend",
    "open_here",
    "reading_backend",
    "server_url",
    "translate",
]
