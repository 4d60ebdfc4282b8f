"""The Chroma-backed store: add texts, images, audio, video and combined documents; search them as one list.

Setup::

    pip install omniretrieve        # Chroma comes with it

Instantiate (embedded: a directory on this machine, one writing process at a time)::

    from omniretrieve.embedding import SentenceTransformerEmbedder
    from omniretrieve.store import Store

    embedder = SentenceTransformerEmbedder("path/to/clip")
    store = Store(embedder, path="my-store")          # default path: ./omniretrieve-store

Instantiate (client-server: several processes, or another machine; start the server with
``chroma run --path DIR --port 8000``)::

    store = Store(embedder, host="localhost", port=8000, timeout=30.0)

Add (ids default to the content's SHA-256: adding the same thing twice stores it once)::

    from omniretrieve.types import Image

    results = store.add(["a red circle", Image("circle.png"), {"text": "slide 3", "image": "s3.png"}],
                        metadatas=[{"lang": "en"}, {"album": "shapes"}, {"deck": "intro"}])
    [r.status for r in results]     # ["added", "added", "added"]; a bad item fails alone

Search (one ranked list over every modality, scores comparable across them)::

    for hit in store.search("a red circle", k=5, where={"lang": "en"}):
        print(hit.modality, hit.score, hit.document.text or hit.document.image)

Update, delete, close::

    store.upsert(["a red circle"], metadatas=[{"lang": "fr"}])   # replaces the metadata entirely
    store.delete(ids=[...]); store.delete(where={"album": "shapes"})
    store.close()                     # or use ``with Store(...) as store:``

Inspect (no model loaded, nothing written, safe while another process writes; see :meth:`Store.inspect`)::

    info = Store.inspect(path="my-store")        # or host=..., port=...
    info.model_id, info.counts, info.mean_distances
    store = Store(load_embedder(info.model_id), path="my-store")   # reopen with the model it was built with

Layout in Chroma: a store named ``NAME`` (default ``"omniretrieve"``) keeps one collection per
document kind, ``NAME.text``, ``NAME.image``, ``NAME.audio``, ``NAME.video`` and ``NAME.combined``
(created on first use), plus ``NAME.stats``, which holds the per-kind running sums and counts of
the stored embeddings that calibration needs (:mod:`omniretrieve.calibration`), one record per
kind and writer, so every writer of a server deployment sees current statistics (each sum is the
record's embedding, and again, in float64, in its metadata, where :meth:`Store.inspect` reads it). Each collection's
metadata records the model id, dimension, similarity and schema version; opening a store with
another embedder raises :class:`~omniretrieve.errors.EmbeddingSpaceMismatchError`. Searching one
collection per kind instead of filtering one collection by modality is what keeps search fast
(a Chroma ``where`` on modality measured 57 times slower).

Search: the query is embedded and centred on its kind's mean (``calibration="gap"``); each kind's
collection that holds documents returns its ``max(2k, 20)`` best candidates for that centred
query, with their stored vectors (the collections are queried concurrently; Chroma releases the
GIL); every candidate is scored exactly in numpy and the lists are merged
(:func:`omniretrieve.calibration.fuse`). A reranker, when given, then reorders the best
``rerank_top_n`` fused candidates. At 100k documents (half text, half image, 512-d) a calibrated
top-10 search took 1.6x the time of one plain Chroma query over all of them, and 1/24 of the time
of a Chroma query filtered by modality (``benchmarks/search_latency.py``).

What a score means (``SearchHit.score``): with ``"gap"``, the cosine between the query and the
document after removing each kind's mean direction: in ``[-1, 1]``, comparable across kinds (a text
scoring 0.8 and an image scoring 0.8 match the query equally well, as far as the model can tell);
``SearchHit.cosine`` keeps the raw cosine. Measured on the demo world, scaling each kind's scores
further (z-scores or min-max over the candidates) moved nDCG@10 by less than 0.01, so none is
applied.

Combined documents (several parts) are embedded as one vector by the embedder (natively, or as the
normalised mean of their parts' vectors) and stored in the ``combined`` collection, which has its
own mean; the calibrated score of a combined document is the cosine between the centred query and
its centred vector. Measured on the demo world with half of the scenes stored as caption+image
documents (``benchmarks/mixed_search.py``): nDCG@10 0.685 this way, 0.686 taking the max and 0.687
the mean of the parts' separately centred scores; the single vector costs nothing and needs no
extra records.

A ``Store`` object is meant for one thread at a time (searches may run in parallel with each other
but not with writes).
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
import re
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np

from omniretrieve.calibration import (
    DEFAULT_CALIBRATION,
    PRIOR_COUNT,
    Calibration,
    KindCandidates,
    ModalityStats,
    center,
    check_calibration,
    fuse,
)
from omniretrieve.documents import (
    KINDS,
    RESERVED_PREFIXES,
    Document,
    Kind,
    SearchHit,
    content_sha256,
    kind_of_modalities,
    validate_metadata,
)
from omniretrieve.errors import (
    EmbeddingSpaceMismatchError,
    InvalidInputError,
    InvalidVectorError,
    OmniretrieveError,
    StoreConnectionError,
    StoreError,
    StoreLockedError,
    StoreNotFoundError,
    require,
)
from omniretrieve.types import (
    Audio,
    Combined,
    Image,
    ItemInput,
    NormalizedItem,
    Text,
    Video,
    as_item,
    describe,
)

if TYPE_CHECKING:
    from omniretrieve.embedding import Embedder
    from omniretrieve.media import MediaLoader
    from omniretrieve.rerank import Reranker

logger = logging.getLogger(__name__)

DEFAULT_PATH = "omniretrieve-store"
"""Where an embedded store lives when no ``path`` is given: ``./omniretrieve-store``."""

DEFAULT_NAME = "omniretrieve"
"""The default store name (prefix of its Chroma collections)."""

DEFAULT_TIMEOUT = 30.0
"""Seconds a client-server store waits for the Chroma server (connect, read, write) by default."""

SCHEMA_VERSION = 1
"""Version of the layout this module writes (collections, metadata keys, statistics)."""

LOCK_FILE = "omniretrieve.lock"
"""The lock file an embedded store holds in its directory."""

MEDIA_DIR = "media"
"""Folder beside an embedded store's data where ``copy_media=True`` keeps content-addressed copies."""

CANDIDATES_MIN = 20
"""Each kind's collection returns at least this many candidates for exact rescoring.

Chroma ranks a kind's documents by ``q' . d`` (the centred query against the stored vector); the
exact calibrated score divides by ``|d - mu|``, which varies little within a kind, so the exact
top ``k`` lies among the first few candidates. Measured on the demo world at 5x size (1,224
documents, gap model), 10 candidates per kind already held the exact top 10 of every query."""

CANDIDATES_FACTOR = 2
"""... and at least this many times the number of hits asked for."""

DEFAULT_RERANK_TOP_N = 20
"""Fused candidates handed to a reranker when ``rerank_top_n`` is not given (at least ``k``)."""

FLOAT_TOLERANCE = 1e-14
"""Relative difference under which two metadata floats count as equal: Chroma 1.5 returns a float
it stored to within an ulp or two (1.3384270668029785 comes back as 1.3384270668029783)."""

DEFAULT_BATCH_SIZE = 64
"""Items embedded and written per step by :meth:`Store.add` / :meth:`Store.upsert`."""

WriteStatus: TypeAlias = Literal["added", "updated", "unchanged", "exists", "failed"]
"""The outcome of writing one item:

* ``added``: stored under a new id;
* ``updated``: the id existed (``upsert``); its vector, content and metadata were replaced;
* ``unchanged``: the id existed with the same content and metadata (``upsert``): nothing written;
* ``exists``: the id existed (``add``): nothing written, the stored document kept;
* ``failed``: nothing written for this item; ``error`` says why.
"""

_K_SHA = "omni:sha256"
_K_PARTS = "omni:parts"
_K_SOURCE = "omni:source"
_K_SCHEMA = "omni:schema"
_K_MODEL = "omni:model"
_K_DIM = "omni:dimension"
_K_SIM = "omni:similarity"
_K_KIND = "omni:kind"
_K_COUNT = "omni:count"
_K_WRITER = "omni:writer"
_K_SUM = "omni:sum"  # a statistics record's sum, float64 little-endian, base64: readable without Chroma
_MEDIA_SCHEME = "omni-media:"
_MEDIA_REF_RE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}(\.[a-z0-9]{1,8})?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$")
_STATS = "stats"
_OPERATORS = frozenset(
    {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains", "$not_contains"}
)


@dataclass(frozen=True)
class WriteResult:
    """The outcome for one item of a write.

    Attributes:
        index: The item's position in the call.
        id: The document id (``None`` when the item failed before it had one).
        status: See :data:`WriteStatus`.
        error: Why the item failed, else ``None``.
    """

    index: int
    id: str | None
    status: WriteStatus
    error: OmniretrieveError | None = None

    @property
    def ok(self) -> bool:
        """True unless the item failed."""
        return self.status != "failed"


@dataclass
class _Entry:
    """One item on its way into the store."""

    index: int
    doc: Document
    item: NormalizedItem | None = None  # what is embedded (media read into bytes once)
    original: NormalizedItem | None = None  # as given (file names, for copies' extensions)
    vector: np.ndarray | None = None


@dataclass(frozen=True)
class _Stored:
    kind: Kind
    vector: np.ndarray
    metadata: dict[str, Any]
    document: str


@dataclass(frozen=True)
class StoreInfo:
    """What a store holds, as :meth:`Store.inspect` reads it (no model needed).

    Attributes:
        name: The store's name (prefix of its Chroma collections).
        location: Where it is: the embedded directory, or the Chroma server's URL.
        model_id: The id of the model its vectors come from; ``load_embedder(model_id)``
            (:func:`omniretrieve.embedding.load_embedder`) loads that model for the ids it knows
            (the demo models, a hub id, a local directory).
        dimension: The length of its vectors.
        similarity: How its vectors compare (``"cosine"``).
        schema_version: The omniretrieve layout version it was written with.
        counts: Documents per kind, every kind of :data:`~omniretrieve.documents.KINDS` (0 when none).
        statistics_counts: Vectors per kind in the calibration statistics. Equal to ``counts``
            unless a write is in progress (a store writes a batch's statistics just after its
            documents) or was cut short (opening the store for writing recounts them).
        mean_norms: Per kind with statistics, the length of its (shrunk) mean embedding, the point
            ``calibration="gap"`` centres that kind on (:mod:`omniretrieve.calibration`).
        mean_distances: ``"a-b"`` -> the distance between the mean embeddings of kinds ``a`` and
            ``b`` (kinds in :data:`~omniretrieve.documents.KINDS` order): the modality gap that
            ``calibration="gap"`` removes. Without an entry for a kind whose statistics were last
            written by an omniretrieve older than this one.
    """

    name: str
    location: str
    model_id: str
    dimension: int
    similarity: str
    schema_version: int
    counts: dict[str, int] = field(default_factory=dict)
    statistics_counts: dict[str, int] = field(default_factory=dict)
    mean_norms: dict[str, float] = field(default_factory=dict)
    mean_distances: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Documents of every kind."""
        return sum(self.counts.values())


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def check_vector(vector: Any, dimension: int, name: str = "vector") -> np.ndarray:
    """A vector as a finite, non-zero, L2-normalised float32 array of the right dimension.

    Raises:
        InvalidVectorError: wrong shape, NaN or infinite values, or all zeros.
    """
    try:
        arr = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidVectorError(name, f"not a numeric vector ({exc})") from exc
    if arr.shape != (dimension,):
        raise InvalidVectorError(name, f"shape {arr.shape}, expected ({dimension},) for this store's model")
    if not np.isfinite(arr).all():
        raise InvalidVectorError(name, "holds NaN or infinite values; check the model or the input")
    norm = float(np.linalg.norm(arr))
    if norm == 0.0:
        raise InvalidVectorError(name, "is all zeros and has no direction")
    return (arr / norm).astype(np.float32)


def chroma_where(where: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Translate a metadata filter into a Chroma ``where`` on the caller's own keys.

    Accepts Chroma's filter language (``{"lang": "en"}``, ``{"year": {"$gte": 2000}}``,
    ``{"$or": [...]}``, ``{"$and": [...]}``); a mapping of several keys means all must hold (it
    becomes an ``$and``). Keys are the caller's metadata keys; omniretrieve's own (``omni:...``)
    cannot be filtered on.

    Raises:
        InvalidInputError: a reserved or malformed key, an unknown operator, or a bad value.
    """
    if where is None:
        return None
    if not isinstance(where, Mapping):
        raise InvalidInputError("where", f"a filter is a mapping, not {type(where).__name__}")
    if not where:
        return None
    clauses = [_where_clause(key, value) for key, value in where.items()]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _where_clause(key: Any, value: Any) -> dict[str, Any]:
    if key in ("$and", "$or"):
        if not isinstance(value, Sequence) or isinstance(value, str) or not value:
            raise InvalidInputError("where", f"{key} takes a non-empty list of filters")
        subs = [c for c in (chroma_where(v) for v in value) if c]
        if not subs:
            raise InvalidInputError("where", f"{key} holds only empty filters")
        return subs[0] if len(subs) == 1 else {key: subs}
    if not isinstance(key, str) or not key or key.startswith("$"):
        raise InvalidInputError("where", f"{key!r} is not a metadata key or one of '$and', '$or'")
    if key.startswith(RESERVED_PREFIXES):
        raise InvalidInputError("where", f"{key!r} is reserved: filter on your own metadata keys")
    if isinstance(value, Mapping):
        if len(value) != 1:
            raise InvalidInputError("where", f"the condition on {key!r} needs exactly one operator")
        op, operand = next(iter(value.items()))
        if op not in _OPERATORS:
            raise InvalidInputError(
                "where", f"unknown operator {op!r} on {key!r}; use one of {sorted(_OPERATORS)}"
            )
        if op in ("$in", "$nin"):
            if isinstance(operand, str) or not isinstance(operand, Sequence) or not operand:
                raise InvalidInputError("where", f"{op} on {key!r} takes a non-empty list")
            validate_metadata({key: list(operand)}, name="where")
        else:
            validate_metadata({key: operand}, name="where")
        return {key: {op: list(operand) if isinstance(operand, tuple) else operand}}
    validate_metadata({key: value}, name="where")
    return {key: value}


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, max(size, 1)):
        yield slice(start, min(start + size, n))


def _rounds(entries: list[_Entry]) -> list[list[_Entry]]:
    """Split entries so that each id appears at most once per round (later duplicates go later)."""
    rounds: list[list[_Entry]] = []
    seen: list[set[str]] = []
    for e in entries:
        for r, ids in zip(rounds, seen, strict=True):
            if e.doc.id not in ids:
                r.append(e)
                ids.add(e.doc.id)
                break
        else:
            rounds.append([e])
            seen.append({e.doc.id})
    return rounds


class _DirectoryLock:
    """An exclusive advisory lock on ``DIR/omniretrieve.lock`` (fcntl.flock), held until released."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock_fd(fd)
        except OSError:
            holder = None
            try:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or None
            except OSError:  # pragma: no cover - unreadable lock file
                pass
            os.close(fd)
            raise StoreLockedError(str(self.path.parent), holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            _unlock_fd(fd)
        finally:
            os.close(fd)


def _lock_fd(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock_fd(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------------------------


def _chroma_settings() -> Any:
    chromadb_config = require("chromadb.config", extra=None, purpose="The store", package="chromadb")
    return chromadb_config.Settings(anonymized_telemetry=False)


def _connect_server(
    host: str, port: int, ssl: bool, headers: Mapping[str, str] | None, timeout: float | None
) -> Any:
    """A Chroma ``HttpClient`` whose every request is bounded by ``timeout``."""
    chromadb = require("chromadb", extra=None, purpose="The store", package="chromadb")
    import httpx

    url = _server_url(host, port, ssl)
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


def _server_url(host: str, port: int, ssl: bool) -> str:
    return f"{'https' if ssl else 'http'}://{host}:{int(port)}"


def _check_location(
    name: str, path: str | os.PathLike[str] | None, host: str | None, timeout: float | None
) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInputError(
            f"name={name!r}",
            "a store name is 1-64 letters, digits, '-' or '_' (starting and ending alphanumeric)",
        )
    if path is not None and host is not None:
        raise InvalidInputError("path/host", "give either path (embedded) or host (client-server), not both")
    if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
        raise InvalidInputError(f"timeout={timeout!r}", "must be a positive number of seconds or None")


_OPEN_LOCK = threading.Lock()
_OPEN: dict[Path, weakref.ReferenceType[Store]] = {}
"""The embedded stores this process holds open, by resolved directory (see :meth:`Store.inspect`)."""


def _open_here(folder: Path) -> Store | None:
    with _OPEN_LOCK:
        ref = _OPEN.get(folder.resolve())
    store = ref() if ref is not None else None
    return store if store is not None and not store._closed else None


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


class Store:
    """A multimodal document store on Chroma with calibrated, fused search.

    Args:
        embedder: The model that embeds documents and queries (an
            :class:`~omniretrieve.embedding.Embedder`). A store is bound to one embedding space:
            opening it with another model raises :class:`~omniretrieve.errors.EmbeddingSpaceMismatchError`.
        path: Directory of an embedded store (Chroma ``PersistentClient``); created if missing.
            Default ``./omniretrieve-store`` when ``host`` is not given. The store holds an
            exclusive lock on the directory until :meth:`close`.
        host: Host of a Chroma server (``chroma run --path DIR --port N``); switches to
            client-server mode (``HttpClient``), which several processes can write through.
        port: The server's port.
        ssl: Use HTTPS to reach the server.
        headers: Extra HTTP headers for the server (e.g. an auth token).
        timeout: Seconds to wait for the server on connect, read and write (Chroma's own client
            waits forever); ``None`` waits forever.
        name: The store's name, prefix of its Chroma collections (letters, digits, ``-``, ``_``).
        copy_media: Copy every media part into a content-addressed folder (``DIR/media``) and
            reference the copy, so results stay viewable after the originals move or when media
            were given in memory. Needs ``path`` or ``media_dir``.
        media_dir: Where copies go (default ``DIR/media`` for an embedded store).
        media: The :class:`~omniretrieve.media.MediaLoader` that reads media for hashing and
            copying (default: the embedder's, else one with the default policy).
        reranker: A default :class:`~omniretrieve.rerank.Reranker` for :meth:`search`.
        prior_count: Shrinkage of the per-kind means (see :mod:`omniretrieve.calibration`).

    Raises:
        StoreLockedError: another process (or store object) writes to this embedded directory.
        EmbeddingSpaceMismatchError: the store holds another model's embeddings.
        StoreConnectionError: the server could not be reached.
        InvalidInputError: bad name or arguments.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        path: str | os.PathLike[str] | None = None,
        host: str | None = None,
        port: int = 8000,
        ssl: bool = False,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        name: str = DEFAULT_NAME,
        copy_media: bool = False,
        media_dir: str | os.PathLike[str] | None = None,
        media: MediaLoader | None = None,
        reranker: Reranker | None = None,
        prior_count: float = PRIOR_COUNT,
    ) -> None:
        _check_location(name, path, host, timeout)
        if not (isinstance(prior_count, int | float) and math.isfinite(prior_count) and prior_count >= 0):
            raise InvalidInputError(f"prior_count={prior_count!r}", "must be a finite number >= 0")
        self.embedder = embedder
        self.name = name
        self.reranker = reranker
        self.prior_count = float(prior_count)
        self._dimension = int(embedder.dimension)
        self._space = {
            _K_MODEL: str(embedder.model_id),
            _K_DIM: self._dimension,
            _K_SIM: str(getattr(embedder, "similarity", "cosine")),
        }
        self._media = media if media is not None else getattr(embedder, "media", None)
        self._lock: _DirectoryLock | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._collections: dict[str, Any] = {}
        self.host = host
        self.port = port
        self.path: Path | None = None
        if host is None:
            self.path = Path(path if path is not None else DEFAULT_PATH).absolute()
        self.media_dir: Path | None = None
        if media_dir is not None:
            self.media_dir = Path(media_dir).absolute()
        elif self.path is not None:
            self.media_dir = self.path / MEDIA_DIR
        if copy_media and self.media_dir is None:
            raise InvalidInputError("copy_media", "a client-server store needs media_dir= to copy media into")
        self.copy_media = bool(copy_media)
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = _DirectoryLock(self.path)
            self._lock.acquire()
            self._writer = "base"
        else:
            self._writer = uuid.uuid4().hex[:16]
        try:
            self._client = (
                self._connect_embedded()
                if host is None
                else self._connect_server(host, port, ssl, headers, timeout)
            )
            self._max_batch = int(self._client.get_max_batch_size())
            self._check_space()
            self._stats_col = self._get_or_create(self._name_of(_STATS), _STATS, space="l2")
            self._own = ModalityStats(self._dimension)
            if self.embedded:
                self._own = self._load_embedded_stats()
        except BaseException:
            self._release()
            raise
        if self.path is not None:
            with _OPEN_LOCK:
                _OPEN[self.path.resolve()] = weakref.ref(self)

    # -- inspection ------------------------------------------------------------------------

    @classmethod
    def inspect(
        cls,
        *,
        path: str | os.PathLike[str] | None = None,
        host: str | None = None,
        port: int = 8000,
        ssl: bool = False,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        name: str = DEFAULT_NAME,
    ) -> StoreInfo:
        """What a store holds, read without its model and without disturbing anyone writing to it.

        It loads no model, creates nothing and writes nothing::

            info = Store.inspect(path="my-store")
            info.model_id, info.counts, info.mean_distances
            store = Store(load_embedder(info.model_id), path="my-store")   # reopen with its model

        Embedded (``path``): the store's SQLite database is opened read-only and read in one short
        transaction. No omniretrieve lock is taken (a running writer keeps writing; a writer can
        start meanwhile), no Chroma client is opened and the vector index files are never
        touched, so two processes never write one directory. SQLite's shared read lock is held for
        the milliseconds of the read: a writer committing at that moment waits that long (Chroma
        waits; it does not fail). Every write a writer has finished is seen (Chroma commits each
        write to SQLite before ``add`` returns); one in progress is not. When this process itself
        holds the store open (a :class:`Store` on the same directory), it is read through that
        object instead. This relies on the SQLite layout of Chroma 1.x: an unknown layout raises
        :class:`~omniretrieve.errors.StoreError`.

        Client-server (``host``): read requests to the server, which serves them beside any
        writers; every writer's statistics are included.

        Args:
            path: An embedded store's directory (default ``./omniretrieve-store`` when ``host``
                is not given).
            host: A Chroma server's host, instead of ``path``.
            port: The server's port.
            ssl: Use HTTPS to reach the server.
            headers: Extra HTTP headers for the server.
            timeout: Seconds to wait for the server, or for a writer's commit to finish
                (embedded); ``None`` waits forever.
            name: The store's name.

        Returns:
            A :class:`StoreInfo`.

        Raises:
            StoreNotFoundError: there is no omniretrieve store of this name at ``path`` or on the
                server (the message names any other stores found there); or a bad argument.
            StoreError: the store was written by a newer omniretrieve, holds collections
                omniretrieve did not make, or could not be read.
            StoreConnectionError: the server could not be reached.
        """
        _check_location(name, path, host, timeout)
        if host is not None:
            url = _server_url(host, port, ssl)
            client = _connect_server(host, port, ssl, headers, timeout)
            try:
                return _inspect_client(client, name, url)
            finally:
                try:
                    client.close()
                except Exception:  # pragma: no cover - best effort
                    logger.debug("closing the Chroma client failed", exc_info=True)
        folder = Path(path if path is not None else DEFAULT_PATH).absolute()
        open_here = _open_here(folder)
        if open_here is not None:
            return _inspect_client(open_here._client, name, str(folder))
        return _inspect_sqlite(folder, name, timeout)

    # -- connection ------------------------------------------------------------------------

    @property
    def embedded(self) -> bool:
        """True for an embedded (on-disk, single-writer) store, False for client-server."""
        return self.host is None

    def _connect_embedded(self) -> Any:
        chromadb = require("chromadb", extra=None, purpose="The store", package="chromadb")
        assert self.path is not None
        try:
            return chromadb.PersistentClient(path=str(self.path), settings=_chroma_settings())
        except Exception as exc:
            raise StoreError(f"could not open the Chroma store at {str(self.path)!r}: {exc}") from exc

    def _connect_server(
        self, host: str, port: int, ssl: bool, headers: Mapping[str, str] | None, timeout: float | None
    ) -> Any:
        return _connect_server(host, port, ssl, headers, timeout)

    def close(self) -> None:
        """Release the Chroma client and the directory lock (statistics are saved on every write). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._release()

    def _release(self) -> None:
        if self.path is not None:
            with _OPEN_LOCK:
                ref = _OPEN.get(self.path.resolve())
                if ref is not None and ref() in (self, None):
                    del _OPEN[self.path.resolve()]
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        client = getattr(self, "_client", None)
        if client is not None:
            try:
                client.close()
            except Exception:  # pragma: no cover - best effort
                logger.debug("closing the Chroma client failed", exc_info=True)
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self._where()} is closed; open a new Store")

    def _where(self) -> str:
        return (
            f"{self.name!r} at {str(self.path)!r}"
            if self.embedded
            else f"{self.name!r} on {self.host}:{self.port}"
        )

    # -- collections -------------------------------------------------------------------------

    def _name_of(self, kind: str) -> str:
        return f"{self.name}.{kind}"

    def _space_text(self, meta: Mapping[str, Any]) -> str:
        return f"model {meta.get(_K_MODEL)!r} (dimension {meta.get(_K_DIM)}, {meta.get(_K_SIM)})"

    def _check_space(self) -> None:
        prefix = f"{self.name}."
        try:
            collections = self._client.list_collections()
        except Exception as exc:
            raise StoreError(f"could not list the collections of store {self._where()}: {exc}") from exc
        for col in collections:
            if not col.name.startswith(prefix):
                continue
            meta = dict(col.metadata or {})
            kind = col.name[len(prefix) :]
            if kind not in (*KINDS, _STATS) or _K_SCHEMA not in meta:
                raise StoreError(
                    f"collection {col.name!r} was not made by omniretrieve; choose another store name"
                )
            if int(meta[_K_SCHEMA]) > SCHEMA_VERSION:
                raise StoreError(
                    f"store {self._where()} was written by a newer omniretrieve (schema {meta[_K_SCHEMA]} > "
                    f"{SCHEMA_VERSION}); upgrade omniretrieve"
                )
            if any(meta.get(key) != value for key, value in self._space.items()):
                raise EmbeddingSpaceMismatchError(
                    self._where(), self._space_text(meta), self._space_text(self._space)
                )
            if kind != _STATS:
                self._collections[kind] = self._wrap_collection(col)

    def _wrap_collection(self, col: Any) -> Any:
        return self._client.get_collection(col.name, embedding_function=None)

    def _get_or_create(self, full_name: str, kind: str, *, space: str = "cosine") -> Any:
        metadata = {_K_SCHEMA: SCHEMA_VERSION, _K_KIND: kind, **self._space}
        try:
            return self._client.get_or_create_collection(
                full_name,
                metadata=metadata,
                embedding_function=None,
                configuration={"hnsw": {"space": space}},
            )
        except Exception as exc:
            raise StoreError(f"could not create collection {full_name!r}: {exc}") from exc

    def _collection(self, kind: str, *, create: bool) -> Any | None:
        col = self._collections.get(kind)
        if col is None:
            if create:
                col = self._get_or_create(self._name_of(kind), kind)
            elif self.embedded:  # only this store creates collections in its directory
                return None
            else:
                try:
                    col = self._client.get_collection(self._name_of(kind), embedding_function=None)
                except Exception:
                    return None
            self._collections[kind] = col
        return col

    # -- statistics --------------------------------------------------------------------------

    def _read_stats_records(self) -> ModalityStats:
        got = self._stats_col.get(include=["embeddings", "metadatas"])
        stats = ModalityStats(self._dimension)
        embeddings = got.get("embeddings")
        for i, meta in enumerate(got.get("metadatas") or []):
            kind = str(meta[_K_KIND])
            stats.counts[kind] = stats.counts.get(kind, 0) + int(meta[_K_COUNT])
            stats.sums[kind] = stats.sums.get(kind, np.zeros(self._dimension)) + np.asarray(
                embeddings[i], dtype=np.float64
            )
        return stats

    def _load_embedded_stats(self) -> ModalityStats:
        """Read the statistics; recount when they disagree with the collections; compact to one record per kind."""
        stats = self._read_stats_records()
        got = self._stats_col.get(include=["metadatas"])
        ids = list(got["ids"])
        # Records written before the float64 sums were kept in metadata lack them: rewrite those.
        no_sum = any(_K_SUM not in (meta or {}) for meta in got["metadatas"] or [])
        counts = {kind: col.count() for kind, col in self._collections.items()}
        drift = any(counts.get(k, 0) != stats.count(k) for k in set(counts) | set(stats.kinds()))
        if drift:
            logger.warning(
                "store %s: statistics disagree with the stored documents; recounting", self._where()
            )
            stats = self._scan_stats()
        if drift or no_sum or any(not i.endswith(":base") for i in ids):
            if ids:
                self._stats_col.delete(ids=ids)
            self._persist_stats(stats, list(stats.counts))
        return stats

    def _scan_stats(self) -> ModalityStats:
        stats = ModalityStats(self._dimension)
        for kind, col in self._collections.items():
            offset = 0
            while True:
                got = col.get(include=["embeddings"], limit=self._max_batch, offset=offset)
                if not got["ids"]:
                    break
                stats.add(kind, np.asarray(got["embeddings"], dtype=np.float32))
                offset += len(got["ids"])
            stats.counts.setdefault(kind, 0)
        return stats

    def _persist_stats(self, stats: ModalityStats, kinds: Sequence[str]) -> None:
        kinds = sorted(set(kinds))
        if not kinds:
            return
        self._stats_col.upsert(
            ids=[f"{k}:{self._writer}" for k in kinds],
            embeddings=[stats.sums.get(k, np.zeros(self._dimension)).astype(np.float32) for k in kinds],
            metadatas=[
                {
                    _K_KIND: k,
                    _K_COUNT: stats.count(k),
                    _K_WRITER: self._writer,
                    _K_SUM: _encode_sum(stats.sums.get(k, np.zeros(self._dimension))),
                }
                for k in kinds
            ],
        )

    def statistics(self) -> ModalityStats:
        """The current per-kind sums and counts of the stored embeddings (what ``"gap"`` centres on).

        Embedded: kept in memory, exact after every write. Client-server: read from the server's
        ``NAME.stats`` collection, so it includes every writer's writes.
        """
        self._check_open()
        if self.embedded:
            return self._own.copy()
        try:
            return self._read_stats_records()
        except Exception as exc:
            raise StoreError(f"could not read the statistics of store {self._where()}: {exc}") from exc

    def recompute_statistics(self) -> ModalityStats:
        """Recount the statistics from every stored vector and replace the stored ones.

        Never needed in normal use (statistics follow every write). With a server, run it while no
        other process writes.
        """
        self._check_open()
        for kind in KINDS:
            self._collection(kind, create=False)
        stats = self._scan_stats()
        ids = list(self._stats_col.get(include=[])["ids"])
        if ids:
            self._stats_col.delete(ids=ids)
        if self.embedded:
            self._own = stats
        self._persist_stats(stats, list(stats.counts))
        return stats.copy()

    def _stats_changed(self, delta: ModalityStats) -> None:
        """Fold one write's change of the statistics into the stored statistics.

        Embedded: into the in-memory totals, then persisted. Client-server: into this writer's
        own records (read, add, write back), which no other writer touches, so concurrent writers
        never lose each other's counts.
        """
        kinds = sorted(set(delta.counts) | set(delta.sums))
        if not kinds:
            return
        try:
            if self.embedded:
                self._own.merge(delta)
                for kind in kinds:
                    if self._own.count(kind) == 0:
                        self._own.sums[kind] = np.zeros(self._dimension)
                self._persist_stats(self._own, kinds)
                return
            mine = ModalityStats(self._dimension)
            got = self._stats_col.get(
                ids=[f"{k}:{self._writer}" for k in kinds], include=["embeddings", "metadatas"]
            )
            for i, meta in enumerate(got["metadatas"] or []):
                kind = str(meta[_K_KIND])
                mine.counts[kind] = int(meta[_K_COUNT])
                mine.sums[kind] = np.asarray(got["embeddings"][i], dtype=np.float64)
            mine.merge(delta)
            self._persist_stats(mine, kinds)
        except Exception:  # the documents are written; recompute_statistics() repairs this
            logger.exception("store %s: could not persist statistics", self._where())

    # -- documents <-> records ---------------------------------------------------------------

    def _record_metadata(self, doc: Document) -> dict[str, Any]:
        meta: dict[str, Any] = dict(doc.metadata)
        meta[_K_SHA] = doc.sha256
        meta[_K_PARTS] = list(doc.parts)
        if doc.source is not None:
            meta[_K_SOURCE] = doc.source
        for m in ("image", "audio", "video"):
            ref = getattr(doc, m)
            if ref is not None:
                meta[f"omni:{m}"] = self._store_ref(ref)
        return meta

    def _store_ref(self, ref: str) -> str:
        if self.media_dir is not None:
            try:
                rel = Path(ref).relative_to(self.media_dir).as_posix()
            except ValueError:
                return ref
            if _MEDIA_REF_RE.match(rel):
                return _MEDIA_SCHEME + rel
        return ref

    def _load_ref(self, ref: str) -> str:
        if ref.startswith(_MEDIA_SCHEME):
            rel = ref[len(_MEDIA_SCHEME) :]
            if self.media_dir is not None and _MEDIA_REF_RE.match(rel):
                return str(self.media_dir / rel)
        return ref

    def _to_document(self, doc_id: str, meta: Mapping[str, Any] | None, text: str | None) -> Document:
        meta = dict(meta or {})
        parts = tuple(meta.get(_K_PARTS) or ())
        refs = {
            m: self._load_ref(str(meta[f"omni:{m}"]))
            for m in ("image", "audio", "video")
            if f"omni:{m}" in meta
        }
        return Document(
            id=doc_id,
            parts=parts,  # type: ignore[arg-type]
            sha256=str(meta.get(_K_SHA, "")),
            text=(text or "") if "text" in parts else None,
            metadata={k: v for k, v in meta.items() if not k.startswith(RESERVED_PREFIXES)},
            source=meta.get(_K_SOURCE),
            **refs,
        )

    # -- reading -----------------------------------------------------------------------------

    def _lookup(self, ids: Sequence[str]) -> dict[str, _Stored]:
        found: dict[str, _Stored] = {}
        if not ids:
            return found
        for kind in KINDS:
            col = self._collection(kind, create=False)
            if col is None:
                continue
            for sl in _chunks(len(ids), self._max_batch):
                got = col.get(ids=list(ids[sl]), include=["embeddings", "metadatas", "documents"])
                for i, doc_id in enumerate(got["ids"]):
                    found[doc_id] = _Stored(
                        kind=kind,  # type: ignore[arg-type]
                        vector=np.asarray(got["embeddings"][i], dtype=np.float32),
                        metadata=dict(got["metadatas"][i] or {}),
                        document=got["documents"][i] or "",
                    )
        return found

    def get(self, ids: Sequence[str]) -> list[Document | None]:
        """The stored documents for these ids, in order (``None`` where an id is not stored).

        Raises:
            InvalidInputError: ``ids`` is not a sequence of str.
        """
        self._check_open()
        ids = self._check_ids(ids)
        try:
            found = self._lookup(ids)
        except OmniretrieveError:
            raise
        except Exception as exc:
            raise StoreError(f"could not read from store {self._where()}: {exc}") from exc
        out: list[Document | None] = []
        for doc_id in ids:
            rec = found.get(doc_id)
            out.append(None if rec is None else self._to_document(doc_id, rec.metadata, rec.document))
        return out

    def get_vectors(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        """The stored (L2-normalised) vectors for these ids, in order (``None`` where not stored)."""
        self._check_open()
        found = self._lookup(self._check_ids(ids))
        return [found[i].vector.copy() if i in found else None for i in ids]

    def count(self, modality: Kind | None = None) -> int:
        """How many documents are stored (of one kind when ``modality`` is given)."""
        self._check_open()
        kinds = KINDS if modality is None else (modality,)
        if modality is not None and modality not in KINDS:
            raise InvalidInputError(f"modality={modality!r}", f"must be one of {list(KINDS)}")
        total = 0
        for kind in kinds:
            col = self._collection(kind, create=False)
            if col is not None:
                total += int(col.count())
        return total

    def __len__(self) -> int:
        return self.count()

    @staticmethod
    def _check_ids(ids: Any) -> list[str]:
        if isinstance(ids, str) or not isinstance(ids, Sequence):
            raise InvalidInputError("ids", "pass a list of ids (a single str is not a list)")
        out = list(ids)
        bad = [i for i in out if not isinstance(i, str) or not i]
        if bad:
            raise InvalidInputError("ids", f"ids must be non-empty str, got {bad[0]!r}")
        return out

    # -- writing -----------------------------------------------------------------------------

    def add(
        self,
        items: Sequence[ItemInput],
        *,
        ids: Sequence[str | None] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        sources: Sequence[str | None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool | None = None,
    ) -> list[WriteResult]:
        """Embed and store items; an id already stored is left as it is (status ``"exists"``).

        Ids default to the SHA-256 of the content, so adding the same content twice is a no-op (it
        is not even embedded again).

        Args:
            items: Texts (plain ``str``), ``Image``/``Audio``/``Video``, PIL images, ``Combined``
                items or dicts with ``text``/``image``/``audio``/``video`` keys.
            ids: One id (or ``None`` for the content hash) per item.
            metadatas: One flat metadata mapping (or ``None``) per item.
            sources: One source URI (or ``None``) per item.
            batch_size: Items embedded and written per step.
            show_progress: Passed to the embedder.

        Returns:
            One :class:`WriteResult` per item, in order. A bad item (unreadable media, wrong
            metadata, a model failure) fails alone.
        """
        return self._ingest(items, ids, metadatas, sources, "add", batch_size, show_progress)

    def upsert(
        self,
        items: Sequence[ItemInput],
        *,
        ids: Sequence[str | None] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        sources: Sequence[str | None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool | None = None,
    ) -> list[WriteResult]:
        """Like :meth:`add`, but an existing id is replaced: vector, content and metadata.

        The new metadata replaces the old entirely (keys not given again are removed). An item
        whose content, source and metadata equal the stored ones is left alone (``"unchanged"``).
        """
        return self._ingest(items, ids, metadatas, sources, "upsert", batch_size, show_progress)

    def add_vectors(
        self, vectors: Sequence[Any] | np.ndarray, documents: Sequence[Document], *, upsert: bool = False
    ) -> list[WriteResult]:
        """Store documents with vectors computed elsewhere (the vector-level API).

        Each vector is checked (dimension, finite, non-zero) and L2-normalised; each document's
        kind (from its parts) picks its collection.

        Args:
            vectors: One vector per document, ``(n, dimension)``.
            documents: The documents (see :meth:`Document.from_item`).
            upsert: Replace existing ids instead of leaving them.

        Returns:
            One :class:`WriteResult` per document.
        """
        self._check_open()
        if len(vectors) != len(documents):
            raise InvalidInputError("vectors", f"{len(vectors)} vectors for {len(documents)} documents")
        results: list[WriteResult | None] = [None] * len(documents)
        entries: list[_Entry] = []
        for i, (vec, doc) in enumerate(zip(vectors, documents, strict=True)):
            if not isinstance(doc, Document):
                results[i] = WriteResult(
                    i, None, "failed", InvalidInputError(f"documents[{i}]", "is not a Document")
                )
                continue
            try:
                entries.append(_Entry(i, doc, vector=check_vector(vec, self._dimension, f"vectors[{i}]")))
            except OmniretrieveError as exc:
                results[i] = WriteResult(i, doc.id, "failed", exc)
        mode: Literal["add", "upsert"] = "upsert" if upsert else "add"
        for rnd in _rounds(entries):
            for sl in _chunks(len(rnd), self._max_batch):
                for r in self._write(rnd[sl], mode, embed=False):
                    results[r.index] = r
        return [r for r in results if r is not None]

    def _ingest(
        self,
        items: Sequence[ItemInput],
        ids: Sequence[str | None] | None,
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        sources: Sequence[str | None] | None,
        mode: Literal["add", "upsert"],
        batch_size: int,
        show_progress: bool | None,
    ) -> list[WriteResult]:
        self._check_open()
        if isinstance(items, str | bytes) or not isinstance(items, Sequence):
            raise InvalidInputError("items", "pass a list of items (a single str is not a list)")
        n = len(items)
        for label, seq in (("ids", ids), ("metadatas", metadatas), ("sources", sources)):
            if seq is not None and len(seq) != n:
                raise InvalidInputError(label, f"has {len(seq)} entries for {n} items")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size={batch_size!r}", "must be a positive int")
        results: list[WriteResult | None] = [None] * n
        reader = self._reader()
        for lo in range(0, n, batch_size):
            entries: list[_Entry] = []
            for i in range(lo, min(lo + batch_size, n)):
                try:
                    item = as_item(items[i])
                    material = _materialize(item, reader)
                    doc = Document.from_item(
                        item,
                        id=ids[i] if ids is not None else None,
                        metadata=metadatas[i] if metadatas is not None else None,
                        source=sources[i] if sources is not None else None,
                        sha256=content_sha256(material, reader=reader),
                    )
                    entries.append(_Entry(i, doc, item=material, original=item))
                except OmniretrieveError as exc:
                    results[i] = WriteResult(i, ids[i] if ids is not None else None, "failed", exc)
            for rnd in _rounds(entries):
                for r in self._write(rnd, mode, embed=True, show_progress=show_progress):
                    results[r.index] = r
        return [r for r in results if r is not None]

    def _reader(self) -> Any:
        if self._media is None:
            from omniretrieve.media import MediaLoader

            self._media = MediaLoader()
        return self._media.read_bytes

    def _write(
        self,
        entries: list[_Entry],
        mode: Literal["add", "upsert"],
        *,
        embed: bool,
        show_progress: bool | None = None,
    ) -> list[WriteResult]:
        """Write one round (unique ids): look up, embed what must be, copy media, write, count."""
        results: list[WriteResult] = []
        try:
            existing = self._lookup([e.doc.id for e in entries])
        except Exception as exc:
            err = (
                exc
                if isinstance(exc, OmniretrieveError)
                else StoreError(f"could not read from the store: {exc}")
            )
            return [WriteResult(e.index, e.doc.id, "failed", err) for e in entries]
        todo: list[_Entry] = []
        for e in entries:
            old = existing.get(e.doc.id)
            if old is not None and mode == "add":
                results.append(WriteResult(e.index, e.doc.id, "exists"))
            elif old is not None and self._same(e, old):
                results.append(WriteResult(e.index, e.doc.id, "unchanged"))
            else:
                todo.append(e)
        if embed and todo:
            todo = self._embed(todo, results, show_progress)
        if self.copy_media:
            todo = self._copy_all(todo, results)
        results.extend(self._apply(todo, existing))
        return results

    def _same(self, e: _Entry, old: _Stored) -> bool:
        new_meta = self._record_metadata(e.doc)
        old_meta = dict(old.metadata)
        if self.copy_media:  # references to copies are decided after copying; the hash decides
            for m in ("image", "audio", "video"):
                new_meta.pop(f"omni:{m}", None)
                old_meta.pop(f"omni:{m}", None)
        if (
            old.kind != e.doc.kind
            or not _same_metadata(new_meta, old_meta)
            or (e.doc.text or "") != old.document
        ):
            return False
        return e.vector is None or bool(np.array_equal(e.vector, old.vector))

    def _embed(
        self, todo: list[_Entry], results: list[WriteResult], show_progress: bool | None
    ) -> list[_Entry]:
        items = [e.item for e in todo]
        try:
            embedded = self.embedder.embed_each(items, role="document", show_progress=show_progress)  # type: ignore[arg-type]
        except OmniretrieveError as exc:
            results.extend(WriteResult(e.index, e.doc.id, "failed", exc) for e in todo)
            return []
        ok: list[_Entry] = []
        for e, res in zip(todo, embedded, strict=True):
            if not res.ok or res.vector is None:
                err = res.error or StoreError("the embedder returned no vector")
                results.append(WriteResult(e.index, e.doc.id, "failed", err))
                continue
            try:
                e.vector = check_vector(res.vector, self._dimension, describe(e.item))
            except OmniretrieveError as exc:
                results.append(WriteResult(e.index, e.doc.id, "failed", exc))
                continue
            ok.append(e)
        return ok

    def _apply(self, todo: list[_Entry], existing: Mapping[str, _Stored]) -> list[WriteResult]:
        """Write new and replaced records per collection, in Chroma-sized chunks; update statistics."""
        results: list[WriteResult] = []
        adds: dict[str, list[_Entry]] = {}
        updates: dict[str, list[_Entry]] = {}
        moves: list[_Entry] = []
        for e in todo:
            old = existing.get(e.doc.id)
            if old is None:
                adds.setdefault(e.doc.kind, []).append(e)
            elif old.kind == e.doc.kind:
                updates.setdefault(e.doc.kind, []).append(e)
            else:
                moves.append(e)
        delta = ModalityStats(self._dimension)
        for kind, group in adds.items():
            results.extend(self._apply_group(kind, group, existing, "add", delta))
        for kind, group in updates.items():
            results.extend(self._apply_group(kind, group, existing, "update", delta))
        for e in moves:
            results.append(self._move(e, existing[e.doc.id], delta))
        self._stats_changed(delta)
        return results

    def _apply_group(
        self, kind: str, group: list[_Entry], existing: Mapping[str, _Stored], op: str, delta: ModalityStats
    ) -> list[WriteResult]:
        results: list[WriteResult] = []
        try:
            col = self._collection(kind, create=True)
        except OmniretrieveError as exc:
            return [WriteResult(e.index, e.doc.id, "failed", exc) for e in group]
        for sl in _chunks(len(group), self._max_batch):
            chunk = group[sl]
            try:
                self._chroma_write(col, chunk, existing, op)
            except Exception as exc:
                if len(chunk) == 1:
                    err = StoreError(f"Chroma refused {chunk[0].doc.id!r}: {exc}")
                    err.__cause__ = exc
                    results.append(WriteResult(chunk[0].index, chunk[0].doc.id, "failed", err))
                    continue
                # isolate the bad item(s): one by one
                results.extend(self._apply_group(kind, [e], existing, op, delta)[0] for e in chunk)
                continue
            vectors = np.stack([e.vector for e in chunk])  # type: ignore[misc]
            if op == "update":
                delta.remove(kind, np.stack([existing[e.doc.id].vector for e in chunk]))
            delta.add(kind, vectors)
            status: WriteStatus = "added" if op == "add" else "updated"
            results.extend(WriteResult(e.index, e.doc.id, status) for e in chunk)
        return results

    def _chroma_write(self, col: Any, chunk: list[_Entry], existing: Mapping[str, _Stored], op: str) -> None:
        ids = [e.doc.id for e in chunk]
        embeddings = np.stack([e.vector for e in chunk]).astype(np.float32)  # type: ignore[misc]
        metas = [self._record_metadata(e.doc) for e in chunk]
        texts = [e.doc.text or "" for e in chunk]
        if op == "add":
            col.add(ids=ids, embeddings=embeddings, metadatas=metas, documents=texts)
            return
        for meta, e in zip(metas, chunk, strict=True):
            for key in existing[e.doc.id].metadata:
                if key not in meta:
                    meta[key] = None  # Chroma keeps keys an update leaves out: remove them explicitly
        col.update(ids=ids, embeddings=embeddings, metadatas=metas, documents=texts)

    def _move(self, e: _Entry, old: _Stored, delta: ModalityStats) -> WriteResult:
        """Replace a document whose kind changed: add to the new collection, then delete the old."""
        try:
            new_col = self._collection(e.doc.kind, create=True)
            old_col = self._collection(old.kind, create=False)
            assert new_col is not None and old_col is not None
            self._chroma_write(new_col, [e], {}, "add")
        except Exception as exc:
            err = (
                exc
                if isinstance(exc, OmniretrieveError)
                else StoreError(f"Chroma refused {e.doc.id!r}: {exc}")
            )
            return WriteResult(e.index, e.doc.id, "failed", err)
        try:
            old_col.delete(ids=[e.doc.id])
        except Exception as exc:
            new_col.delete(ids=[e.doc.id])
            return WriteResult(
                e.index, e.doc.id, "failed", StoreError(f"could not replace {e.doc.id!r}: {exc}")
            )
        delta.remove(old.kind, old.vector[None, :])
        delta.add(e.doc.kind, e.vector[None, :])  # type: ignore[index]
        return WriteResult(e.index, e.doc.id, "updated")

    def delete(self, ids: Sequence[str] | None = None, *, where: Mapping[str, Any] | None = None) -> int:
        """Delete documents by id, by metadata filter, or both (documents matching both).

        Returns:
            How many documents were deleted.

        Raises:
            InvalidInputError: neither ``ids`` nor ``where`` given, or a bad filter.
            StoreError: Chroma failed.
        """
        self._check_open()
        if ids is None and not where:
            raise InvalidInputError(
                "delete", "give ids=[...] and/or where={...} (an empty filter would delete all)"
            )
        id_list = self._check_ids(ids) if ids is not None else None
        if id_list is not None and not id_list:
            return 0
        cw = chroma_where(where)
        deleted = 0
        delta = ModalityStats(self._dimension)
        for kind in KINDS:
            col = self._collection(kind, create=False)
            if col is None:
                continue
            batches: list[list[str] | None] = (
                [id_list[sl] for sl in _chunks(len(id_list), self._max_batch)]
                if id_list is not None
                else [None]
            )
            for batch in batches:
                try:
                    got = col.get(ids=batch, where=cw, include=["embeddings"])
                    found = list(got["ids"])
                    for dsl in _chunks(len(found), self._max_batch):
                        col.delete(ids=found[dsl])
                        delta.remove(kind, np.asarray(got["embeddings"][dsl], dtype=np.float32))
                        deleted += len(found[dsl])
                except Exception as exc:
                    self._stats_changed(delta)
                    raise StoreError(f"could not delete from store {self._where()}: {exc}") from exc
        self._stats_changed(delta)
        return deleted

    # -- media copies ------------------------------------------------------------------------

    def _copy_all(self, todo: list[_Entry], results: list[WriteResult]) -> list[_Entry]:
        ok: list[_Entry] = []
        for e in todo:
            try:
                ok.append(self._copy_entry(e))
            except OmniretrieveError as exc:
                results.append(WriteResult(e.index, e.doc.id, "failed", exc))
        return ok

    def _copy_entry(self, e: _Entry) -> _Entry:
        if e.item is None:
            return e
        parts = e.item.parts() if isinstance(e.item, Combined) else [e.item]
        given = e.original if e.original is not None else e.item
        originals = {p.modality: p for p in (given.parts() if isinstance(given, Combined) else [given])}
        refs: dict[str, Any] = {}
        for part in parts:
            if isinstance(part, Image | Audio | Video):
                source = getattr(originals.get(part.modality), "source", None)
                name = str(source) if isinstance(source, str | os.PathLike) else None
                refs[part.modality] = self.copy_medium(part, name=name)
        return replace(e, doc=replace(e.doc, **refs)) if refs else e

    def copy_medium(self, part: Image | Audio | Video, *, name: str | None = None) -> str | None:
        """Copy one media part into the content-addressed media folder; return the copy's path.

        Files and URLs are copied byte for byte (named by the SHA-256 of the bytes, with the
        original's extension); in-memory images are saved as PNG, in-memory audio as WAV.
        In-memory video frames are not kept (``None``).

        Args:
            part: The media part.
            name: The original file name or URL, for the extension (default: the part's source).

        Raises:
            MediaError: the source could not be read.
            InvalidInputError: the store has no media folder.
        """
        if self.media_dir is None:
            raise InvalidInputError("copy_media", "this store has no media folder (give media_dir=)")
        data, ext = self._media_bytes(part, name)
        if data is None:
            logger.info("in-memory %s is not kept by copy_media", part.modality)
            return None
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        target = self.media_dir / digest[:2] / f"{digest}{ext}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return str(target)

    def _media_bytes(self, part: Image | Audio | Video, name: str | None) -> tuple[bytes | None, str]:
        source = part.source
        if isinstance(source, np.ndarray):
            if isinstance(part, Image):
                pil = require("PIL.Image", extra=None, purpose="Copying images", package="pillow")
                arr = (
                    source
                    if source.dtype == np.uint8
                    else (np.clip(source, 0, 1) * 255).round().astype(np.uint8)
                )
                return _png(pil.fromarray(arr)), ".png"
            if isinstance(part, Audio) and part.sampling_rate:
                sf = require("soundfile", extra="audio", purpose="Copying audio")
                buf = io.BytesIO()
                sf.write(buf, source, int(part.sampling_rate), format="WAV")
                return buf.getvalue(), ".wav"
            return None, ""
        if not isinstance(source, str | bytes | os.PathLike):  # a PIL image
            return _png(source), ".png"
        data = self._reader()(source)
        if name is None and isinstance(source, str | os.PathLike):
            name = str(source)
        ext = ""
        if name is not None and not name.startswith("data:"):
            suffix = Path(name.split("?")[0].split("#")[0]).suffix.lower()
            if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix):
                ext = suffix
        if not ext and isinstance(part, Image):
            ext = _image_extension(data)
        return data, ext

    # -- search ------------------------------------------------------------------------------

    def search(
        self,
        query: ItemInput,
        k: int = 10,
        *,
        calibration: Calibration = DEFAULT_CALIBRATION,
        where: Mapping[str, Any] | None = None,
        modalities: Sequence[Kind] | None = None,
        reranker: Reranker | None = None,
        rerank_top_n: int | None = None,
    ) -> list[SearchHit]:
        """One ranked list over every kind of stored document.

        Args:
            query: Any accepted input: text (a plain ``str``), an image, audio, video, or a
                combined item.
            k: How many hits to return.
            calibration: ``"gap"`` (default: modality-gap removal, scores comparable across
                kinds), ``"rrf"`` (reciprocal-rank fusion) or ``"none"`` (raw cosine); see
                :mod:`omniretrieve.calibration`.
            where: A filter on your metadata (see :func:`chroma_where`).
            modalities: Only search these document kinds (default: all).
            reranker: Rerank with this (default: the store's ``reranker``, if set).
            rerank_top_n: How many fused candidates the reranker sees (default ``max(k, 20)``).

        Returns:
            Up to ``k`` hits, best first: by ``score`` or, when reranked, by ``rerank_score``.

        Raises:
            InvalidInputError: bad query, k, calibration or filter.
            InvalidVectorError: the query embedding is not finite.
            StoreError: Chroma failed.
        """
        self._check_open()
        if rerank_top_n is not None and (
            not isinstance(rerank_top_n, int) or isinstance(rerank_top_n, bool) or rerank_top_n < 1
        ):
            raise InvalidInputError(f"rerank_top_n={rerank_top_n!r}", "must be a positive int")
        item = as_item(query)
        vector = self.embedder.embed_query(item)
        reranker = reranker if reranker is not None else self.reranker
        kind, parts = _query_kind(item)
        n = k
        if reranker is not None:
            n = max(k, rerank_top_n if rerank_top_n is not None else DEFAULT_RERANK_TOP_N)
        hits = self._search(vector, n, kind, parts, calibration, where, modalities)
        if reranker is None or not hits:
            return hits[:k]
        return self._rerank(reranker, item, hits, k)

    def search_vector(
        self,
        vector: Any,
        k: int = 10,
        *,
        query_modality: Kind = "text",
        calibration: Calibration = DEFAULT_CALIBRATION,
        where: Mapping[str, Any] | None = None,
        modalities: Sequence[Kind] | None = None,
    ) -> list[SearchHit]:
        """Search with a query embedding computed elsewhere (the vector-level API).

        Args:
            vector: The query embedding, ``(dimension,)``.
            k: How many hits.
            query_modality: The query's kind, whose mean centres it under ``"gap"``.
            calibration: See :meth:`search`.
            where: See :meth:`search`.
            modalities: See :meth:`search`.

        Raises:
            InvalidVectorError: NaN/Inf values, wrong dimension or all zeros.
        """
        parts = (query_modality,) if query_modality != "combined" else ()
        return self._search(vector, k, query_modality, parts, calibration, where, modalities)

    def _search(
        self,
        vector: Any,
        k: int,
        query_modality: Kind,
        parts: Sequence[str],
        calibration: Calibration,
        where: Mapping[str, Any] | None,
        modalities: Sequence[Kind] | None,
    ) -> list[SearchHit]:
        self._check_open()
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k={k!r}", "must be a positive int")
        calibration = check_calibration(calibration)
        if query_modality not in KINDS:
            raise InvalidInputError(f"query_modality={query_modality!r}", f"must be one of {list(KINDS)}")
        kinds = tuple(KINDS if modalities is None else modalities)
        bad = [m for m in kinds if m not in KINDS]
        if bad:
            raise InvalidInputError(f"modalities={list(kinds)!r}", f"{bad[0]!r} is not one of {list(KINDS)}")
        q = check_vector(vector, self._dimension, "query vector")
        cw = chroma_where(where)
        stats = self._own if self.embedded else self.statistics()
        cols: list[tuple[str, Any, int]] = []
        for kind in kinds:
            count = stats.count(kind)
            if count <= 0:
                continue
            col = self._collection(kind, create=False)
            if col is not None:
                cols.append((kind, col, count))
        if not cols:
            return []
        n_cand = max(CANDIDATES_FACTOR * k, CANDIDATES_MIN)
        if calibration == "gap":
            probe = center(q, stats.query_mean(query_modality, parts, prior_count=self.prior_count))
            if not np.any(probe):
                probe = q.astype(np.float64)
        else:
            probe = q.astype(np.float64)
        probe32 = probe.astype(np.float32)

        def run(job: tuple[str, Any, int]) -> tuple[KindCandidates, dict[str, tuple[Any, str]]]:
            kind, col, count = job
            got = col.query(
                query_embeddings=[probe32],
                n_results=min(n_cand, count),
                where=cw,
                include=["embeddings", "metadatas", "documents"],
            )
            ids = list(got["ids"][0])
            vectors = np.asarray(got["embeddings"][0], dtype=np.float32).reshape(len(ids), self._dimension)
            extra = {i: (m, d) for i, m, d in zip(ids, got["metadatas"][0], got["documents"][0], strict=True)}
            return KindCandidates(kind, ids, vectors), extra

        try:
            if len(cols) == 1:
                outcomes = [run(cols[0])]
            else:  # Chroma releases the GIL while it searches: query the kinds concurrently
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=len(KINDS) - 1, thread_name_prefix="omniretrieve-search"
                    )
                futures = [self._pool.submit(run, job) for job in cols[1:]]
                outcomes = [run(cols[0])] + [f.result() for f in futures]
        except OmniretrieveError:
            raise
        except Exception as exc:
            raise StoreError(f"search failed in store {self._where()}: {exc}") from exc
        fused = fuse(
            q,
            [c for c, _ in outcomes],
            k,
            calibration=calibration,
            stats=stats,
            query_kind=query_modality,
            query_parts=parts,
            prior_count=self.prior_count,
        )
        extras = {c.kind: extra for c, extra in outcomes}
        hits: list[SearchHit] = []
        for h in fused:
            meta, text = extras[h.kind][h.id]
            hits.append(
                SearchHit(
                    document=self._to_document(h.id, meta, text),
                    score=h.score,
                    cosine=h.cosine,
                    modality=h.kind,  # type: ignore[arg-type]
                )
            )
        return hits

    def _rerank(
        self, reranker: Reranker, query: NormalizedItem, hits: list[SearchHit], k: int
    ) -> list[SearchHit]:
        """Rerank hits; a hit whose content is unavailable is kept after the scored ones, unscored."""
        items: list[NormalizedItem] = []
        positions: list[int] = []
        unavailable: list[int] = []
        for i, hit in enumerate(hits):
            try:
                items.append(hit.document.to_item())
                positions.append(i)
            except InvalidInputError:
                unavailable.append(i)
        if unavailable:
            logger.warning(
                "%d of %d rerank candidates have no stored content (media given in memory without "
                "copy_media=True, or removed since) and are placed last, unscored: %s",
                len(unavailable),
                len(hits),
                ", ".join(hits[i].id for i in unavailable[:5]),
            )
        ranked = reranker.rerank(query, items, top_n=None) if items else []
        out = [replace(hits[positions[r.index]], rerank_score=float(r.score)) for r in ranked]
        out.extend(replace(hits[i], rerank_score=float("-inf")) for i in unavailable)
        return out[:k]


# ---------------------------------------------------------------------------------------------
# Inspection (see Store.inspect)
# ---------------------------------------------------------------------------------------------

_CHROMA_FILE = "chroma.sqlite3"
_CHROMA_TENANT = "default_tenant"
_CHROMA_DATABASE = "default_database"
_SUM_DTYPE = "<f8"


def _encode_sum(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype=_SUM_DTYPE).tobytes()).decode("ascii")


def _decode_sum(text: Any, dimension: int) -> np.ndarray | None:
    """A sum written by :func:`_encode_sum`, or ``None`` when absent or not ``dimension`` finite floats."""
    if not isinstance(text, str):
        return None
    try:
        vector = np.frombuffer(base64.b64decode(text, validate=True), dtype=_SUM_DTYPE)
    except ValueError:
        return None
    if vector.shape != (dimension,) or not np.isfinite(vector).all():
        return None
    return vector.astype(np.float64)


_StatsRecord: TypeAlias = "tuple[str, int, np.ndarray | None]"
"""One statistics record: kind, count, sum (``None`` when unknown)."""


def _store_names(metas: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The names of the omniretrieve stores among Chroma collections (full name -> metadata)."""
    return sorted(
        {full.rsplit(".", 1)[0] for full, meta in metas.items() if "." in full and _K_SCHEMA in meta}
    )


def _recorded_space(
    metas: Mapping[str, Mapping[str, Any]], name: str, location: str
) -> tuple[str, int, str, int]:
    """``(model, dimension, similarity, schema)`` recorded by store ``name`` among these collections."""
    prefix = f"{name}."
    mine = {full[len(prefix) :]: meta for full, meta in metas.items() if full.startswith(prefix)}
    if not mine:
        others = _store_names(metas)
        found = f" (stores found there: {', '.join(others)}; pass name=)" if others else ""
        raise StoreNotFoundError(
            location,
            f"holds no omniretrieve store named {name!r}{found}; create one with Store(embedder, ...) "
            "or `omniretrieve index`",
        )
    spaces: set[tuple[str, int, str]] = set()
    schema = 0
    for kind, meta in sorted(mine.items()):
        if kind not in (*KINDS, _STATS) or any(k not in meta for k in (_K_SCHEMA, _K_MODEL, _K_DIM, _K_SIM)):
            raise StoreError(
                f"collection {prefix}{kind!s} at {location} was not made by omniretrieve; choose another store name"
            )
        version = int(meta[_K_SCHEMA])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {name!r} at {location} was written by a newer omniretrieve (schema {version} > "
                f"{SCHEMA_VERSION}); upgrade omniretrieve"
            )
        schema = max(schema, version)
        spaces.add((str(meta[_K_MODEL]), int(meta[_K_DIM]), str(meta[_K_SIM])))
    if len(spaces) != 1:
        raise StoreError(
            f"the collections of store {name!r} at {location} record different models: {sorted(spaces)}"
        )
    model, dimension, similarity = spaces.pop()
    return model, dimension, similarity, schema


def _store_info(
    name: str,
    location: str,
    space: tuple[str, int, str, int],
    counts: Mapping[str, int],
    records: Sequence[_StatsRecord],
) -> StoreInfo:
    model, dimension, similarity, schema = space
    stats = ModalityStats(dimension)
    unknown: set[str] = set()
    for kind, count, total in records:
        stats.counts[kind] = stats.counts.get(kind, 0) + count
        if total is None or total.shape != (dimension,):
            unknown.add(kind)
        else:
            stats.sums[kind] = stats.sums.get(kind, np.zeros(dimension)) + total
    means: dict[str, np.ndarray] = {}
    for kind in KINDS:
        mean = stats.mean(kind, prior_count=PRIOR_COUNT) if kind not in unknown else None
        if mean is not None:
            means[kind] = mean
    present = list(means)
    return StoreInfo(
        name=name,
        location=location,
        model_id=model,
        dimension=dimension,
        similarity=similarity,
        schema_version=schema,
        counts={kind: int(counts.get(kind, 0)) for kind in KINDS},
        statistics_counts={kind: stats.count(kind) for kind in KINDS},
        mean_norms={kind: float(np.linalg.norm(m)) for kind, m in means.items()},
        mean_distances={
            f"{a}-{b}": float(np.linalg.norm(means[a] - means[b]))
            for i, a in enumerate(present)
            for b in present[i + 1 :]
        },
    )


def _inspect_client(client: Any, name: str, location: str) -> StoreInfo:
    """Read a store's description through a Chroma client (read requests only)."""
    try:
        metas = {col.name: dict(col.metadata or {}) for col in client.list_collections()}
        space = _recorded_space(metas, name, location)
        counts: dict[str, int] = {}
        for kind in KINDS:
            if f"{name}.{kind}" in metas:
                counts[kind] = int(client.get_collection(f"{name}.{kind}", embedding_function=None).count())
        records: list[_StatsRecord] = []
        if f"{name}.{_STATS}" in metas:
            col = client.get_collection(f"{name}.{_STATS}", embedding_function=None)
            got = col.get(include=["embeddings", "metadatas"])
            embeddings = got.get("embeddings")
            for i, meta in enumerate(got.get("metadatas") or []):
                total = _decode_sum(meta.get(_K_SUM), space[1])  # float64; the embedding is float32
                if total is None and embeddings is not None:
                    total = np.asarray(embeddings[i], dtype=np.float64)
                records.append((str(meta[_K_KIND]), int(meta[_K_COUNT]), total))
    except OmniretrieveError:
        raise
    except Exception as exc:
        raise StoreError(f"could not read store {name!r} at {location}: {exc}") from exc
    return _store_info(name, location, space, counts, records)


def _inspect_sqlite(folder: Path, name: str, timeout: float | None) -> StoreInfo:
    """Read a store's description from its Chroma SQLite database, opened read-only (see Store.inspect)."""
    location = str(folder)
    if not folder.is_dir():
        what = "not a directory" if folder.exists() else "no such directory"
        raise StoreNotFoundError(
            location,
            f"holds no omniretrieve store ({what}); create one with Store(embedder, path=...) or "
            "`omniretrieve index`",
        )
    database = folder / _CHROMA_FILE
    if not database.is_file():
        raise StoreNotFoundError(
            location,
            f"holds no omniretrieve store (no {_CHROMA_FILE}); create one with Store(embedder, path=...) "
            "or `omniretrieve index`",
        )
    try:
        # SQLite counts its busy timeout in int32 milliseconds: "forever" is capped at ~24 days.
        wait = 2_000_000.0 if timeout is None else float(timeout)
        conn = sqlite3.connect(
            f"{database.as_uri()}?mode=ro",
            uri=True,
            timeout=wait,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise StoreError(f"could not open the store database {str(database)!r} read-only: {exc}") from exc
    try:
        conn.execute("BEGIN")  # one snapshot for every read below
        collections = dict(
            conn.execute(
                "SELECT c.id, c.name FROM collections c JOIN databases d ON d.id = c.database_id "
                "WHERE d.name = ? AND d.tenant_id = ?",
                (_CHROMA_DATABASE, _CHROMA_TENANT),
            ).fetchall()
        )
        metas: dict[str, dict[str, Any]] = {full: {} for full in collections.values()}
        for cid, key, str_value, int_value, float_value, bool_value in conn.execute(
            "SELECT collection_id, key, str_value, int_value, float_value, bool_value FROM collection_metadata"
        ):
            if cid in collections:
                values = (str_value, int_value, float_value, None if bool_value is None else bool(bool_value))
                metas[collections[cid]][key] = next((v for v in values if v is not None), None)
        space = _recorded_space(metas, name, location)
        segments = {
            collections[cid]: sid
            for sid, cid in conn.execute("SELECT id, collection FROM segments WHERE scope = 'METADATA'")
            if cid in collections
        }
        counts: dict[str, int] = {}
        for kind in KINDS:
            segment = segments.get(f"{name}.{kind}")
            if segment is not None:
                (n,) = conn.execute(
                    "SELECT COUNT(*) FROM embeddings WHERE segment_id = ?", (segment,)
                ).fetchone()
                counts[kind] = int(n)
        fields: dict[str, dict[str, Any]] = {}
        segment = segments.get(f"{name}.{_STATS}")
        if segment is not None:
            for record, key, str_value, int_value in conn.execute(
                "SELECT e.embedding_id, m.key, m.string_value, m.int_value FROM embeddings e "
                "JOIN embedding_metadata m ON m.id = e.id WHERE e.segment_id = ? AND m.key IN (?, ?, ?)",
                (segment, _K_KIND, _K_COUNT, _K_SUM),
            ):
                fields.setdefault(record, {})[key] = str_value if int_value is None else int_value
    except sqlite3.Error as exc:
        raise StoreError(
            f"could not read the store database {str(database)!r} ({type(exc).__name__}: {exc}); it may "
            "come from a Chroma version whose layout omniretrieve does not know: open it with Store(...)"
        ) from exc
    finally:
        conn.close()
    records: list[_StatsRecord] = [
        (str(f[_K_KIND]), int(f[_K_COUNT]), _decode_sum(f.get(_K_SUM), space[1]))
        for f in fields.values()
        if _K_KIND in f and _K_COUNT in f
    ]
    return _store_info(name, location, space, counts, records)


def _same_value(x: Any, y: Any) -> bool:
    if type(x) is not type(y):
        return False
    if isinstance(x, float):  # Chroma round-trips floats to within an ulp or two
        return math.isclose(x, y, rel_tol=FLOAT_TOLERANCE, abs_tol=0.0) or x == y
    return bool(x == y)


def _same_metadata(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal keys and values, types included (``1``, ``1.0`` and ``True`` differ)."""

    def same(x: Any, y: Any) -> bool:
        if isinstance(x, list | tuple) or isinstance(y, list | tuple):
            return (
                isinstance(x, list | tuple)
                and isinstance(y, list | tuple)
                and len(x) == len(y)
                and all(_same_value(u, v) for u, v in zip(x, y, strict=True))
            )
        return _same_value(x, y)

    return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)


def _materialize(item: NormalizedItem, reader: Any) -> NormalizedItem:
    """The item with every media file or URL read into bytes, once.

    What is hashed is then exactly what is embedded (a file changing in between cannot split
    them), and a URL is fetched once, not once for the hash and again for the model.
    """
    parts = item.parts() if isinstance(item, Combined) else [item]
    out: dict[str, Any] = {}
    for part in parts:
        if isinstance(part, Image | Audio | Video) and isinstance(part.source, str | os.PathLike):
            data = reader(part.source)
            if isinstance(part, Audio):
                part = Audio(data, sampling_rate=part.sampling_rate)
            else:
                part = type(part)(data)
        out[part.modality] = part.text if isinstance(part, Text) else part
    if len(out) == 1 and not isinstance(item, Combined):
        single = next(iter(out.values()))
        return Text(single) if isinstance(single, str) else single  # type: ignore[no-any-return]
    return Combined(**out)


def _query_kind(item: NormalizedItem) -> tuple[Kind, tuple[str, ...]]:
    if isinstance(item, Combined):
        mods = item.modalities
        return kind_of_modalities(mods), tuple(mods)
    return item.modality, (item.modality,)


def _image_extension(data: bytes) -> str:
    try:
        from PIL import Image as PILImage

        with PILImage.open(io.BytesIO(data)) as img:
            fmt = (img.format or "").lower()
    except Exception:  # not an image Pillow knows: keep the bytes, without an extension
        return ""
    return {"jpeg": ".jpg", "tiff": ".tif"}.get(fmt, f".{fmt}" if re.fullmatch(r"[a-z0-9]{1,8}", fmt) else "")


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


__all__ = [
    "CANDIDATES_FACTOR",
    "CANDIDATES_MIN",
    "DEFAULT_NAME",
    "DEFAULT_PATH",
    "DEFAULT_TIMEOUT",
    "LOCK_FILE",
    "SCHEMA_VERSION",
    "Store",
    "StoreInfo",
    "WriteResult",
    "WriteStatus",
    "check_vector",
    "chroma_where",
]
