"""The calibration statistics a store keeps: per kind, the sum and count of its stored embeddings.

``calibration="gap"`` centres each kind on its mean (:mod:`omniretrieve.calibration`), so every
write updates these sums. They live in the ``NAME.stats`` collection as records of a kind, a count
and a sum: the sum is the record's embedding (float32) and, in float64, its metadata ``omni:sum``,
which is what is read back. The embeddings never are: a Chroma server fails that read ("Error
creating hnsw segment reader: Nothing found on disk") while another client's first write to the
collection is in flight, which is how a server store once lost a batch's statistics.

Two keepers:

* :class:`LocalStatistics` (an exclusive backend): the totals are kept in memory, exact after every
  write, and written through to one record per kind (``KIND:base``); a failed write is written
  again with the next one. On open they are checked against the collections' counts and recounted
  when a crash left them behind.
* :class:`SharedStatistics` (a server, several writers): append-only, so no writer ever reads,
  changes and writes back a record another process may be writing. Each write adds records of
  its own change under new ids (``KIND:WRITER:SEQ``), retried with the same ids (idempotent); a
  write that still fails is kept in memory, counted in this process's reads, and written with the
  next one or by :meth:`Statistics.close`. Each writer compacts its own records now and then: one
  atomic ``upsert`` adds their sum as a record covering their sequence numbers (``omni:from`` ..
  ``omni:seq``) and zeroes them; a ``delete`` then removes them. Reading sums the records no newer
  one of their writer covers (:func:`live_records`): a request that lands late never counts twice.
  Searches read the statistics on every query; beyond a few records, the ids are listed (cheap)
  and only new records read.

What no record layout can make exact: two writers updating or deleting the *same* document id at the
same instant each count the document they saw (Chroma has no conditional write); and a writer killed
between writing its documents and their statistics leaves them uncounted.
:meth:`Store.recompute_statistics` repairs both.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from omniretrieve.calibration import ModalityStats
from omniretrieve.errors import OmniretrieveError, StoreConnectionError, StoreError
from omniretrieve.store._backend import EXCLUSIVE_WRITER, ChromaRefusal
from omniretrieve.store._schema import K_COUNT, K_KIND, K_SUM, K_WRITER, Collections

logger = logging.getLogger(__name__)

_SUM_DTYPE = "<f8"

K_SEQ = "omni:seq"
"""A statistics record's sequence number within its writer (the last part of its id)."""

K_FROM = "omni:from"
"""The first sequence number of its writer that a statistics record covers (its own for a change)."""

COMPACT_AFTER = 8
"""A server writer compacts its records after this many writes of its own."""

ATTEMPTS = 3
"""Tries of one statistics write (Chroma failures only: an unreachable server is not retried)."""

BACKOFF = 0.1
"""Seconds before the second try; doubled before each further one."""

FEW_RECORDS = 32
"""Up to this many statistics records, a search reads them all; beyond, it lists their ids first."""


def encode_sum(vector: np.ndarray) -> str:
    """A sum as base64 of its float64 little-endian bytes (``omni:sum``)."""
    return base64.b64encode(np.asarray(vector, dtype=_SUM_DTYPE).tobytes()).decode("ascii")


def decode_sum(text: Any, dimension: int) -> np.ndarray | None:
    """A sum written by :func:`encode_sum`, or ``None`` when absent or not ``dimension`` finite floats.

    Not :func:`omniretrieve.vectors.check_vector`: a sum is no direction; it is not normalised and
    is all zeros once a kind's documents are all deleted.
    """
    if not isinstance(text, str):
        return None
    try:
        vector = np.frombuffer(base64.b64decode(text, validate=True), dtype=_SUM_DTYPE)
    except ValueError:
        return None
    if vector.shape != (dimension,) or not np.isfinite(vector).all():
        return None
    return vector.astype(np.float64)


@dataclass(frozen=True)
class StatRecord:
    """One record of the statistics collection.

    Attributes:
        id: The record id.
        kind: The document kind it counts.
        count: Documents it adds (negative when it counts deletions).
        total: The sum of their vectors (float64), ``None`` when the record holds none readable.
        writer: The writer that wrote it (``None`` for records of unknown origin).
        seq: Its sequence number within the writer; ``None`` for a record of the older layout
            (one record per kind and writer, changed in place), which is always counted.
        low: The first sequence number of the writer it covers (``seq`` for one write's change).
    """

    id: str
    kind: str
    count: int
    total: np.ndarray | None
    writer: str | None = None
    seq: int | None = None
    low: int = 0

    def metadata(self) -> dict[str, Any]:
        """The record's Chroma metadata."""
        meta: dict[str, Any] = {K_KIND: self.kind, K_COUNT: int(self.count)}
        if self.writer is not None:
            meta[K_WRITER] = self.writer
        if self.seq is not None:
            meta[K_SEQ] = int(self.seq)
            meta[K_FROM] = int(self.low)
        if self.total is not None:
            meta[K_SUM] = encode_sum(self.total)
        return meta

    def zeroed(self, dimension: int) -> StatRecord:
        """The record counting nothing (what a compaction leaves behind it until it is deleted)."""
        return replace(self, count=0, total=np.zeros(dimension))


def parse_records(got: Any, dimension: int) -> list[StatRecord]:
    """The records of a Chroma ``get(include=["metadatas"])`` answer (malformed ones skipped)."""
    out: list[StatRecord] = []
    for rid, meta in zip(got.get("ids") or [], got.get("metadatas") or [], strict=False):
        meta = meta or {}
        try:
            kind, count = str(meta[K_KIND]), int(meta[K_COUNT])
        except (KeyError, TypeError, ValueError):
            logger.warning("statistics record %r has no kind or count; ignored", rid)
            continue
        seq, low, writer = meta.get(K_SEQ), meta.get(K_FROM), meta.get(K_WRITER)
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
        low = low if seq is not None and isinstance(low, int) and low <= seq else (seq or 0)
        total = decode_sum(meta.get(K_SUM), dimension)
        out.append(
            StatRecord(str(rid), kind, count, total, None if writer is None else str(writer), seq, low)
        )
    return out


def live_records(records: Iterable[StatRecord]) -> list[StatRecord]:
    """The records that count: all but those covered by a newer record of the same writer and kind.

    A record covers its writer's sequence numbers ``low .. seq``; a compaction's record covers the
    records it summed. Each writer's records are scanned newest first: a record is covered exactly
    when an earlier-scanned (newer) one starts at or before its start.
    """
    groups: dict[tuple[str, str], list[StatRecord]] = {}
    out: list[StatRecord] = []
    for r in records:
        if r.seq is None or r.writer is None:
            out.append(r)
        else:
            groups.setdefault((r.writer, r.kind), []).append(r)
    for group in groups.values():
        first = None
        for r in sorted(group, key=lambda r: r.seq or 0, reverse=True):
            if first is None or r.low < first:
                out.append(r)
                first = r.low
    return out


def fold(records: Iterable[StatRecord], dimension: int) -> ModalityStats:
    """The statistics the live records add up to (:func:`live_records`)."""
    stats = ModalityStats(dimension)
    for r in live_records(records):
        stats.counts[r.kind] = stats.counts.get(r.kind, 0) + r.count
        total = np.zeros(dimension) if r.total is None else r.total
        stats.sums[r.kind] = stats.sums.get(r.kind, np.zeros(dimension)) + total
    return stats


class Statistics:
    """The statistics of one store (base of the two keepers; see the module docstring).

    Args:
        collections: The store's collections (the statistics live in ``collections.stats``).
    """

    def __init__(self, collections: Collections) -> None:
        self.collections = collections
        self.dimension = collections.dimension
        self.writer = collections.backend.writer
        # Orders this process's statistics writes (the ingest pipeline's writer thread, the caller's).
        self._lock = threading.RLock()

    def current(self) -> ModalityStats:
        """The statistics every search centres on (not to be modified by the caller)."""
        raise NotImplementedError

    def read(self) -> ModalityStats:
        """The statistics of every writer (a copy)."""
        return self.current().copy()

    def changed(self, delta: ModalityStats) -> None:
        """Count one write's change. Never raises: the documents are written.

        A statistics write that fails is kept and written again with the next one (see the
        keepers); it is logged, never dropped.
        """
        kinds = sorted(set(delta.counts) | set(delta.sums))
        if not kinds:
            return
        try:
            with self._lock:
                self._fold(delta, kinds)
        except Exception:  # a bug, not a failing store (those are kept for the next write)
            logger.exception("store %s: could not count a write's statistics", self.collections.describe())

    _UNWRITTEN = "run Store.recompute_statistics()"  # what to do about statistics left unwritten

    def flush(self) -> bool:
        """Write the statistics that failed to be written so far (after each write call); never raises.

        Returns:
            Whether every statistics write of this store has succeeded.
        """
        with self._lock:
            return self._retry()

    def close(self) -> None:
        """Flush and tidy up before the store closes (``Store.close``); never raises."""
        if not self.flush():
            logger.error(
                "store %s: the statistics of its last writes could not be written: %s",
                self.collections.describe(),
                self._UNWRITTEN,
            )

    def _retry(self) -> bool:
        return True

    def recompute(self) -> ModalityStats:
        """Recount from every stored vector and replace every stored record; return the new totals."""
        with self._lock:
            stats = self.scan()
            self._delete_all()
            self.persist(stats, list(stats.counts))
            return stats

    def scan(self) -> ModalityStats:
        """Statistics counted from every stored vector (one pass over each kind's collection)."""
        stats = ModalityStats(self.dimension)
        for kind, col in self.collections.existing().items():
            offset = 0
            while True:
                got = col.get(include=["embeddings"], limit=self.collections.max_batch, offset=offset)
                if not got["ids"]:
                    break
                stats.add(kind, np.asarray(got["embeddings"], dtype=np.float32))
                offset += len(got["ids"])
            stats.counts.setdefault(kind, 0)
        return stats

    def persist(self, stats: ModalityStats, kinds: Sequence[str]) -> None:
        """Write this writer's totals of ``kinds`` from ``stats``, one record per kind (``KIND:WRITER``)."""
        zero = np.zeros(self.dimension)
        self.write(
            [
                StatRecord(f"{k}:{self.writer}", k, stats.count(k), stats.sums.get(k, zero), self.writer)
                for k in sorted(set(kinds))
            ]
        )

    def write(self, records: Sequence[StatRecord], *, attempts: int | None = None) -> None:
        """Upsert records in one call (all or nothing), tried again on a server's failure.

        Args:
            records: The records.
            attempts: Tries; default :data:`ATTEMPTS` with a server, one for an embedded store (its
                failures are its disk's, which a second try does not mend).

        Raises:
            StoreError: the last try failed (:class:`StoreConnectionError` at once: the server does
                not answer, and each try would wait for the timeout again).
        """
        if not records:
            return
        if attempts is None:
            attempts = 1 if self.collections.backend.exclusive else ATTEMPTS
        delay, zero = BACKOFF, np.zeros(self.dimension)
        embeddings = [np.asarray(zero if r.total is None else r.total, np.float32) for r in records]
        ids, metadatas = [r.id for r in records], [r.metadata() for r in records]
        for attempt in range(1, attempts + 1):
            try:
                self.collections.stats.upsert(ids=ids, embeddings=embeddings, metadatas=metadatas)
                return
            except Exception as exc:
                err = self._typed(exc, "write the statistics of")
                if attempt == attempts or isinstance(err, StoreConnectionError | ChromaRefusal):
                    raise err from err.__cause__
                logger.info(
                    "store %s: statistics write failed (%s); trying again", self.collections.describe(), err
                )
                time.sleep(delay)
                delay *= 2

    def _fold(self, delta: ModalityStats, kinds: list[str]) -> None:
        raise NotImplementedError

    def _fetch(self) -> list[StatRecord]:
        """Every record (metadata only; embeddings only for records of old stores without ``omni:sum``)."""
        return self._fill(parse_records(self.collections.stats.get(include=["metadatas"]), self.dimension))

    def _fill(self, records: list[StatRecord]) -> list[StatRecord]:
        """Records without ``omni:sum`` (written by an older omniretrieve) with their embedding as sum."""
        missing = [r.id for r in records if r.total is None]
        if not missing:
            return records
        got = self.collections.stats.get(ids=missing, include=["embeddings"])
        sums = {
            i: np.asarray(v, dtype=np.float64) for i, v in zip(got["ids"], got["embeddings"], strict=True)
        }
        return [replace(r, total=sums[r.id]) if r.id in sums else r for r in records]

    def _delete_all(self) -> None:
        ids = list(self.collections.stats.get(include=[])["ids"])
        for sl in self.collections.slices(len(ids)):
            self.collections.stats.delete(ids=ids[sl])

    def _typed(self, exc: BaseException, what: str) -> OmniretrieveError:
        """``exc`` when it is omniretrieve's (Chroma's errors come translated), else a StoreError."""
        if isinstance(exc, OmniretrieveError):
            return exc
        err = StoreError(f"could not {what} store {self.collections.describe()}: {type(exc).__name__}: {exc}")
        err.__cause__ = exc
        return err


@dataclass(frozen=True)
class _Snapshot:
    """What a server store's statistics were when their record ids were last these."""

    ids: frozenset[str]
    records: tuple[StatRecord, ...]
    stats: ModalityStats
    mutable: bool  # holds old-layout records another writer may change in place: read each time


class SharedStatistics(Statistics):
    """Statistics of a store several processes write (a server): append-only records, see the module.

    Attributes:
        compacted: How many compactions this writer ran (tests check compaction happens).
    """

    def __init__(self, collections: Collections) -> None:
        super().__init__(collections)
        self._seq = 0
        # Kind -> this writer's change not yet written; replaced, not changed: searches read it unlocked.
        self._pending: dict[str, StatRecord] = {}
        self._written = 0  # change records written since the last compaction
        self._snapshot: _Snapshot | None = None
        self.compacted = 0

    @property
    def pending(self) -> int:
        """Kinds whose change is not yet written (0 once every statistics write succeeded)."""
        return len(self._pending)

    def current(self) -> ModalityStats:
        try:
            return self._current()
        except Exception as exc:
            err = self._typed(exc, "read the statistics of")
            raise err from err.__cause__

    _UNWRITTEN = "other processes do not count them until Store.recompute_statistics() is run"

    def close(self) -> None:
        super().close()
        with self._lock:
            if not self._pending and self._written > 1:
                self._compact()

    def _retry(self) -> bool:
        return not self._pending or self._write_pending()

    def recompute(self) -> ModalityStats:
        with self._lock:
            stats = self.scan()
            self._delete_all()
            self._seq += 1
            zero = np.zeros(self.dimension)
            self.write(
                [self._record(k, stats.count(k), stats.sums.get(k, zero), 0) for k in sorted(stats.counts)]
            )
            self._pending, self._written, self._snapshot = {}, 0, None
            return stats

    def _record(self, kind: str, count: int, total: np.ndarray, low: int) -> StatRecord:
        """A record of this writer under its newest sequence number, covering ``low`` onwards."""
        seq = self._seq
        return StatRecord(f"{kind}:{self.writer}:{seq}", kind, count, total, self.writer, seq, low)

    def _fold(self, delta: ModalityStats, kinds: list[str]) -> None:
        self._seq += 1
        pending = dict(self._pending)
        for kind in kinds:
            count, total = delta.count(kind), delta.sums.get(kind, np.zeros(self.dimension))
            old = pending.get(kind)
            if old is None:
                pending[kind] = self._record(kind, count, np.asarray(total, dtype=np.float64), self._seq)
            else:  # not written yet: one record covers both (and the old one, should it land late)
                old_total = old.total if old.total is not None else 0.0
                pending[kind] = self._record(kind, old.count + count, old_total + total, old.low)
        self._pending = pending
        if self._write_pending() and self._written >= COMPACT_AFTER:
            self._compact()

    def _write_pending(self) -> bool:
        """Write the pending changes in one call; whether they are written now."""
        records = list(self._pending.values())
        try:
            self.write(records)
        except OmniretrieveError as exc:
            logger.warning(
                "store %s: could not write the statistics of a write (%s); kept in memory and written "
                "with the next write or when the store closes",
                self.collections.describe(),
                exc,
            )
            return False
        self._pending = {}
        self._written += len(records)
        return True

    def _compact(self) -> None:
        """Sum this writer's records per kind into one (atomically zeroing them), then delete them."""
        self._written = 0
        stats = self.collections.stats
        try:
            got = stats.get(where={K_WRITER: self.writer}, include=["metadatas"])
        except Exception as exc:
            logger.info("store %s: statistics compaction skipped (%s)", self.collections.describe(), exc)
            return
        groups: dict[str, list[StatRecord]] = {}
        for r in parse_records(got, self.dimension):
            if r.writer == self.writer and r.seq is not None and r.total is not None:
                groups.setdefault(r.kind, []).append(r)
        groups = {kind: group for kind, group in groups.items() if len(group) > 1}
        if not groups or sum(len(g) + 1 for g in groups.values()) > self.collections.max_batch:
            return
        self._seq += 1
        out: list[StatRecord] = []
        for kind, group in sorted(groups.items()):
            total = fold(group, self.dimension)
            out.append(self._record(kind, total.count(kind), total.sums[kind], min(r.low for r in group)))
            out.extend(r.zeroed(self.dimension) for r in group)
        try:
            self.write(out, attempts=1)
            stats.delete(ids=[r.id for group in groups.values() for r in group])
        except Exception as exc:  # readers skip covered records: only tidiness is lost
            logger.info("store %s: statistics compaction incomplete (%s)", self.collections.describe(), exc)
            return
        self.compacted += 1

    def _current(self) -> ModalityStats:
        snap = self._snapshot
        if snap is None or snap.mutable or len(snap.ids) <= FEW_RECORDS:
            records: list[StatRecord] | None = self._fetch()  # one request, as cheap as the ids
        else:
            ids = frozenset(self.collections.stats.get(include=[])["ids"])
            records = None if ids == snap.ids else self._fetch_new(ids, snap)
        if records is not None and (snap is None or snap.mutable or {r.id for r in records} != snap.ids):
            mutable = any(r.seq is None and r.writer not in (None, EXCLUSIVE_WRITER) for r in records)
            ids = frozenset(r.id for r in records)
            snap = _Snapshot(ids, tuple(records), fold(records, self.dimension), mutable)
            self._snapshot = snap
        assert snap is not None
        pending = [p for p in self._pending.values() if p.id not in snap.ids]
        return fold([*snap.records, *pending], self.dimension) if pending else snap.stats

    def _fetch_new(self, ids: frozenset[str], snap: _Snapshot) -> list[StatRecord]:
        """The records listed as ``ids``: known ones from ``snap``, new ones read (all when unsure).

        A new record read as zeroed or gone was compacted since the listing, into a record the
        listing lacks: everything is read again then.
        """
        new = sorted(ids - snap.ids)
        got = self.collections.stats.get(ids=new, include=["metadatas"]) if new else {}
        read = parse_records(got, self.dimension)
        if len(read) != len(new) or any(r.count == 0 for r in read):
            return self._fetch()
        return [r for r in snap.records if r.id in ids] + self._fill(read)


class LocalStatistics(Statistics):
    """Statistics of a store only this process writes: kept in memory, written through.

    Opening reads the records, recounts them when they disagree with the collections (a crash
    between writing documents and statistics), and compacts them to one record per kind.
    """

    def __init__(self, collections: Collections) -> None:
        super().__init__(collections)
        self._unwritten: set[str] = set()  # kinds whose totals failed to be written
        self._totals = self._load()

    @property
    def pending(self) -> int:
        """Kinds whose totals are not yet written (0 once every statistics write succeeded)."""
        return len(self._unwritten)

    def current(self) -> ModalityStats:
        return self._totals

    def recompute(self) -> ModalityStats:
        with self._lock:
            self._totals = super().recompute()
            self._unwritten.clear()
            return self._totals.copy()

    def _retry(self) -> bool:
        return not self._unwritten or self._persist_totals([])

    def _fold(self, delta: ModalityStats, kinds: list[str]) -> None:
        totals = self._totals.copy()  # searching threads keep the totals they read
        totals.merge(delta)
        for kind in kinds:
            if totals.count(kind) == 0:
                totals.sums[kind] = np.zeros(self.dimension)
        self._totals = totals
        self._persist_totals(kinds)

    def _persist_totals(self, kinds: Sequence[str]) -> bool:
        todo = sorted(self._unwritten | set(kinds))
        try:
            self.persist(self._totals, todo)
        except OmniretrieveError as exc:
            self._unwritten.update(todo)
            logger.warning(
                "store %s: could not write the statistics (%s); kept in memory and written with the "
                "next write or when the store closes",
                self.collections.describe(),
                exc,
            )
            return False
        self._unwritten.clear()
        return True

    def _load(self) -> ModalityStats:
        records = parse_records(self.collections.stats.get(include=["metadatas"]), self.dimension)
        no_sum = any(r.total is None for r in records)  # rewritten below with their float64 sums
        records = self._fill(records)
        stats = fold(records, self.dimension)
        counts: dict[str, int] = {kind: int(col.count()) for kind, col in self.collections.existing().items()}
        drift = any(counts.get(k, 0) != stats.count(k) for k in set(counts) | set(stats.kinds()))
        if drift:
            logger.warning(
                "store %s: statistics disagree with the stored documents; recounting",
                self.collections.describe(),
            )
            stats = self.scan()
        foreign = any(not r.id.endswith(f":{self.writer}") or r.seq is not None for r in records)
        if drift or no_sum or foreign:
            self._delete_all()
            self.persist(stats, list(stats.counts))
        return stats


def open_statistics(collections: Collections) -> Statistics:
    """The keeper for this store: in memory when its backend is exclusive, else shared records."""
    if collections.backend.exclusive:
        return LocalStatistics(collections)
    return SharedStatistics(collections)


__all__ = [
    "COMPACT_AFTER",
    "K_FROM",
    "K_SEQ",
    "LocalStatistics",
    "SharedStatistics",
    "StatRecord",
    "Statistics",
    "decode_sum",
    "encode_sum",
    "fold",
    "live_records",
    "open_statistics",
    "parse_records",
]
