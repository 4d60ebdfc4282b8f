"""What a store holds, read without its model and without writing anything (:meth:`Store.inspect`).

Embedded and not open in this process: the store's Chroma SQLite database is opened read-only and
read in one short transaction, never through a Chroma client (opening one writes to the directory),
so an inspection never makes a second writer. Open in this process, or on a server: read requests
through a client. Both paths end in the same :class:`StoreInfo`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from omniretrieve.calibration import PRIOR_COUNT, ModalityStats
from omniretrieve.documents import KINDS
from omniretrieve.errors import OmniretrieveError, StoreError, StoreNotFoundError
from omniretrieve.store._backend import DEFAULT_TIMEOUT, Backend, reading_backend
from omniretrieve.store._identity import Identity, ModelChange, recorded_identity
from omniretrieve.store._schema import (
    DEFAULT_NAME,
    K_COUNT,
    K_DIM,
    K_KIND,
    K_MODEL,
    K_SIM,
    K_SUM,
    K_WRITER,
    STATS,
    check_name,
    check_recorded,
    collections_of,
    store_names,
)
from omniretrieve.store._statistics import K_FROM, K_SEQ, live_records, parse_records

_CHROMA_FILE = "chroma.sqlite3"
_CHROMA_TENANT = "default_tenant"
_CHROMA_DATABASE = "default_database"
_CREATE_HINT = "create one with Store(embedder, ...) or `omniretrieve index`"

_StatsRecord: TypeAlias = tuple[str, int, "np.ndarray | None"]
"""One statistics record: kind, count, sum (``None`` when unknown)."""


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
        revision: The model's revision when the store was created or last changed model: its hub
            commit, or ``"sha256:..."`` (a hash of a local directory's configuration and weight
            headers, :func:`omniretrieve.models.model_revision`); ``None`` when unknown.
        fingerprint: A short hash (``"fp:<12 hex>"``) of the model's recorded embeddings of the
            probe set, which every open compares (:mod:`omniretrieve.store._identity`); ``None``
            for a store made before fingerprints were kept and not opened for writing since.
        fingerprint_probes: The probes the fingerprint holds (``"text:0"``, ..., ``"image:0"``).
        model_history: How the store's model came to be: created, fingerprint recorded, model
            changed (``allow_model_change=True``), revision changed; oldest first.
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
    revision: str | None = None
    fingerprint: str | None = None
    fingerprint_probes: tuple[str, ...] = ()
    model_history: tuple[ModelChange, ...] = ()

    @property
    def total(self) -> int:
        """Documents of every kind."""
        return sum(self.counts.values())


def inspect_store(
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
    holds the store open (a :class:`~omniretrieve.store.Store` on the same directory), it is read
    through that store's client instead. This relies on the SQLite layout of Chroma 1.x: an unknown
    layout raises :class:`~omniretrieve.errors.StoreError`.

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
            server (the message names any other stores found there).
        StoreError: the store was written by a newer omniretrieve, holds collections
            omniretrieve did not make, or could not be read.
        StoreConnectionError: the server could not be reached.
        InvalidInputError: a bad argument.
    """
    check_name(name)
    with reading_backend(
        path=path, host=host, port=port, ssl=ssl, headers=headers, timeout=timeout
    ) as reading:
        if reading.backend is not None:
            return inspect_client(reading.backend, name, reading.location)
        assert reading.directory is not None
        return inspect_sqlite(reading.directory, name, timeout)


def inspect_client(backend: Backend, name: str, location: str) -> StoreInfo:
    """Read a store's description through a Chroma client (read requests only)."""
    try:
        metas = backend.list_collections()
        space = _recorded_space(metas, name, location)
        identity = recorded_identity(metas, name)
        counts: dict[str, int] = {}
        for kind in KINDS:
            col = backend.get_collection(f"{name}.{kind}") if f"{name}.{kind}" in metas else None
            if col is not None:
                counts[kind] = int(col.count())
        records: list[_StatsRecord] = []
        col = backend.get_collection(f"{name}.{STATS}") if f"{name}.{STATS}" in metas else None
        if col is not None:
            got = col.get(include=["embeddings", "metadatas"])
            records = _live(got, space[1], got.get("embeddings"))
    except OmniretrieveError:
        raise
    except Exception as exc:
        raise StoreError(f"could not read store {name!r} at {location}: {exc}") from exc
    return _store_info(name, location, space, counts, records, identity)


def inspect_sqlite(folder: Path, name: str, timeout: float | None) -> StoreInfo:
    """Read a store's description from its Chroma SQLite database, opened read-only."""
    location = str(folder)
    if not folder.is_dir():
        what = "not a directory" if folder.exists() else "no such directory"
        raise StoreNotFoundError(f"{location}: holds no omniretrieve store ({what}); {_CREATE_HINT}")
    database = folder / _CHROMA_FILE
    if not database.is_file():
        raise StoreNotFoundError(
            f"{location}: holds no omniretrieve store (no {_CHROMA_FILE}); {_CREATE_HINT}"
        )
    try:
        space, counts, fields, identity = _read_database(database, name, location, timeout)
    except _HotJournal:
        # A writer was killed mid-transaction: its journal must be rolled back before the database
        # can be read, which needs write access. Roll it back on a copy; the store is left as it
        # is, and the next Store(...) on it recovers it for good.
        with tempfile.TemporaryDirectory(prefix="omniretrieve-inspect-") as tmp:
            copy = _copy_database(database, Path(tmp))
            space, counts, fields, identity = _read_database(copy, name, location, timeout, read_only=False)
    records = _live({"ids": list(fields), "metadatas": list(fields.values())}, space[1])
    return _store_info(name, location, space, counts, records, identity)


def _live(got: Mapping[str, Any], dimension: int, embeddings: Any = None) -> list[_StatsRecord]:
    """The statistics records that count, as the live reader counts them (:func:`live_records`).

    ``embeddings``: the records' embeddings, the sum of an older record that holds none in its
    metadata (float32; the metadata's sum is float64).
    """
    parsed = parse_records(got, dimension)
    if embeddings is not None:
        row = {rid: i for i, rid in enumerate(got.get("ids") or [])}
        parsed = [
            r
            if r.total is not None
            else replace(r, total=np.asarray(embeddings[row[r.id]], dtype=np.float64))
            for r in parsed
        ]
    return [(r.kind, r.count, r.total) for r in live_records(parsed)]


class _HotJournal(Exception):
    """The database has a hot journal (a writer died mid-transaction): reading it needs a rollback."""


_JOURNAL_SUFFIXES = ("-journal", "-wal", "-shm")


def _copy_database(database: Path, folder: Path) -> Path:
    """Copy the database and its journal files into ``folder``; return the copy's path."""
    try:
        for suffix in ("", *_JOURNAL_SUFFIXES):
            source = database.with_name(database.name + suffix)
            if source.exists():
                shutil.copyfile(source, folder / source.name)
    except OSError as exc:
        raise StoreError(
            f"the store at {str(database.parent)!r} was not closed cleanly (a writer was killed) and "
            f"could not be copied to read it ({exc}); open it once with Store(...) to recover"
        ) from exc
    return folder / database.name


def _read_database(
    database: Path, name: str, location: str, timeout: float | None, *, read_only: bool = True
) -> tuple[tuple[str, int, str, int], dict[str, int], dict[str, dict[str, Any]], Identity]:
    """The recorded space, the count per kind, the statistics records and the model's identity, in one snapshot.

    Raises:
        _HotJournal: read-only, and a hot journal must be rolled back first.
        StoreError: the database cannot be opened or has an unknown layout.
    """
    try:
        # SQLite counts its busy timeout in int32 milliseconds: "forever" is capped at ~24 days.
        wait = 2_000_000.0 if timeout is None else float(timeout)
        conn = sqlite3.connect(
            f"{database.as_uri()}?mode=ro" if read_only else database.as_uri(),
            uri=True,
            timeout=wait,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise StoreError(f"could not open the store database {str(database)!r} read-only: {exc}") from exc
    try:
        conn.execute("BEGIN")  # one snapshot for every read below
        metas, segments = _sqlite_collections(conn)
        space = _recorded_space(metas, name, location)
        identity = recorded_identity(metas, name)
        counts: dict[str, int] = {}
        for kind in KINDS:
            segment = segments.get(f"{name}.{kind}")
            if segment is not None:
                (n,) = conn.execute(
                    "SELECT COUNT(*) FROM embeddings WHERE segment_id = ?", (segment,)
                ).fetchone()
                counts[kind] = int(n)
        fields = _sqlite_stats_fields(conn, segments.get(f"{name}.{STATS}"))
    except sqlite3.Error as exc:
        if read_only and _needs_recovery(exc, database):
            raise _HotJournal(str(exc)) from exc
        raise StoreError(
            f"could not read the store database {str(database)!r} ({type(exc).__name__}: {exc}); it may "
            "come from a Chroma version whose layout omniretrieve does not know: open it with Store(...)"
        ) from exc
    finally:
        conn.close()
    return space, counts, fields, identity


def _needs_recovery(exc: sqlite3.Error, database: Path) -> bool:
    """Whether a read-only read failed because a journal or WAL must be recovered first."""
    text = str(exc).lower()
    if "readonly" not in text and "read-only" not in text:
        return False
    return any(database.with_name(database.name + s).exists() for s in _JOURNAL_SUFFIXES)


def _sqlite_collections(conn: sqlite3.Connection) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Collection name -> metadata, and collection name -> metadata segment id (Chroma 1.x layout)."""
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
    segments = {
        collections[cid]: sid
        for sid, cid in conn.execute("SELECT id, collection FROM segments WHERE scope = 'METADATA'")
        if cid in collections
    }
    return metas, segments


def _sqlite_stats_fields(conn: sqlite3.Connection, segment: str | None) -> dict[str, dict[str, Any]]:
    """Record id -> the kind, count and sum fields of the statistics records in ``segment``."""
    fields: dict[str, dict[str, Any]] = {}
    if segment is None:
        return fields
    for record, key, str_value, int_value in conn.execute(
        "SELECT e.embedding_id, m.key, m.string_value, m.int_value FROM embeddings e "
        "JOIN embedding_metadata m ON m.id = e.id WHERE e.segment_id = ? AND m.key IN (?, ?, ?, ?, ?, ?)",
        (segment, K_KIND, K_COUNT, K_SUM, K_WRITER, K_SEQ, K_FROM),
    ):
        fields.setdefault(record, {})[key] = str_value if int_value is None else int_value
    return fields


def _recorded_space(
    metas: Mapping[str, Mapping[str, Any]], name: str, location: str
) -> tuple[str, int, str, int]:
    """``(model, dimension, similarity, schema)`` recorded by store ``name`` among these collections."""
    mine = collections_of(metas, name)
    if not mine:
        others = store_names(metas)
        found = f" (stores found there: {', '.join(others)}; pass name=)" if others else ""
        raise StoreNotFoundError(
            f"{location}: holds no omniretrieve store named {name!r}{found}; {_CREATE_HINT}"
        )
    spaces: set[tuple[str, int, str]] = set()
    schema = 0
    where = f"{name!r} at {location}"
    for kind, meta in sorted(mine.items()):
        schema = max(schema, check_recorded(name, kind, meta, where))
        spaces.add((str(meta[K_MODEL]), int(meta[K_DIM]), str(meta[K_SIM])))
    if len(spaces) != 1:
        raise StoreError(f"the collections of store {where} record different models: {sorted(spaces)}")
    model, dimension, similarity = spaces.pop()
    return model, dimension, similarity, schema


def _store_info(
    name: str,
    location: str,
    space: tuple[str, int, str, int],
    counts: Mapping[str, int],
    records: Sequence[_StatsRecord],
    identity: Identity,
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
        revision=identity.revision,
        fingerprint=identity.summary,
        fingerprint_probes=identity.probes,
        model_history=identity.history,
    )


__all__ = ["StoreInfo", "inspect_client", "inspect_sqlite", "inspect_store"]
