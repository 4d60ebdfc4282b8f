"""The calibration statistics a store keeps: per kind, the sum and count of its stored embeddings.

``calibration="gap"`` centres each kind on its mean (:mod:`omniretrieve.calibration`), so every
write updates these sums. They live in the ``NAME.stats`` collection, one record per kind and
writer (id ``KIND:WRITER``): the sum is the record's embedding (float32, what Chroma stores) and
again, in float64, in its metadata (``omni:sum``, which :meth:`Store.inspect` reads straight from the
database). Two keepers:

* :class:`LocalStatistics` (an exclusive backend): the totals are kept in memory, exact after every
  write, and written through. On open they are checked against the collections' counts and
  recounted when a crash left them behind.
* :class:`SharedStatistics` (a server, several writers): each writer folds its changes into its own
  records only, so concurrent writers never lose each other's counts; reading sums every record.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from omniretrieve.calibration import ModalityStats
from omniretrieve.errors import OmniretrieveError, StoreError
from omniretrieve.store._schema import K_COUNT, K_KIND, K_SUM, K_WRITER, Collections

logger = logging.getLogger(__name__)

_SUM_DTYPE = "<f8"


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


class Statistics:
    """The statistics of one store (base of the two keepers; see the module docstring).

    Args:
        collections: The store's collections (the statistics live in ``collections.stats``).
    """

    def __init__(self, collections: Collections) -> None:
        self.collections = collections
        self.dimension = collections.dimension
        self.writer = collections.backend.writer
        # This writer's records are read, changed and written back; the ingest pipeline folds from
        # more than one thread, so the read-modify-write runs under one lock per store.
        self._fold_lock = threading.Lock()

    def current(self) -> ModalityStats:
        """The statistics every search centres on (not to be modified by the caller)."""
        return self.read()

    def changed(self, delta: ModalityStats) -> None:
        """Fold one write's change of the statistics into the stored statistics.

        Never raises: the documents are written; :meth:`recompute` repairs a failure, which is logged.
        """
        kinds = sorted(set(delta.counts) | set(delta.sums))
        if not kinds:
            return
        try:
            with self._fold_lock:
                self._fold(delta, kinds)
        except Exception:
            logger.exception("store %s: could not persist statistics", self.collections.describe())

    def recompute(self) -> ModalityStats:
        """Recount from every stored vector and replace every stored record; return the new totals."""
        stats = self.scan()
        ids = list(self.collections.stats.get(include=[])["ids"])
        if ids:
            self.collections.stats.delete(ids=ids)
        self.persist(stats, list(stats.counts))
        return stats

    def read(self) -> ModalityStats:
        """The sum of every writer's records."""
        try:
            return self._read_records()
        except OmniretrieveError:
            raise
        except Exception as exc:
            raise StoreError(
                f"could not read the statistics of store {self.collections.describe()}: {exc}"
            ) from exc

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
        """Write this writer's records of ``kinds`` from ``stats``."""
        kinds = sorted(set(kinds))
        if not kinds:
            return
        sums = [stats.sums.get(k, np.zeros(self.dimension)) for k in kinds]
        self.collections.stats.upsert(
            ids=[f"{k}:{self.writer}" for k in kinds],
            embeddings=[s.astype(np.float32) for s in sums],
            metadatas=[
                {K_KIND: k, K_COUNT: stats.count(k), K_WRITER: self.writer, K_SUM: encode_sum(s)}
                for k, s in zip(kinds, sums, strict=True)
            ],
        )

    def _fold(self, delta: ModalityStats, kinds: list[str]) -> None:
        mine = ModalityStats(self.dimension)
        got = self.collections.stats.get(
            ids=[f"{k}:{self.writer}" for k in kinds], include=["embeddings", "metadatas"]
        )
        for i, meta in enumerate(got["metadatas"] or []):
            kind = str(meta[K_KIND])
            mine.counts[kind] = int(meta[K_COUNT])
            mine.sums[kind] = np.asarray(got["embeddings"][i], dtype=np.float64)
        mine.merge(delta)
        self.persist(mine, kinds)

    def _read_records(self) -> ModalityStats:
        got = self.collections.stats.get(include=["embeddings", "metadatas"])
        stats = ModalityStats(self.dimension)
        embeddings = got.get("embeddings")
        for i, meta in enumerate(got.get("metadatas") or []):
            kind = str(meta[K_KIND])
            stats.counts[kind] = stats.counts.get(kind, 0) + int(meta[K_COUNT])
            stats.sums[kind] = stats.sums.get(kind, np.zeros(self.dimension)) + np.asarray(
                embeddings[i], dtype=np.float64
            )
        return stats


class SharedStatistics(Statistics):
    """Statistics of a store several processes write (a server): read from the records every time."""


class LocalStatistics(Statistics):
    """Statistics of a store only this process writes: kept in memory, written through.

    Opening reads the records, recounts them when they disagree with the collections (a crash
    between writing documents and statistics), and compacts them to one record per kind.
    """

    def __init__(self, collections: Collections) -> None:
        super().__init__(collections)
        self._totals = self._load()

    def current(self) -> ModalityStats:
        return self._totals

    def read(self) -> ModalityStats:
        return self._totals.copy()

    def recompute(self) -> ModalityStats:
        self._totals = super().recompute()
        return self._totals.copy()

    def _fold(self, delta: ModalityStats, kinds: list[str]) -> None:
        self._totals.merge(delta)
        for kind in kinds:
            if self._totals.count(kind) == 0:
                self._totals.sums[kind] = np.zeros(self.dimension)
        self.persist(self._totals, kinds)

    def _load(self) -> ModalityStats:
        stats = self._read_records()
        got = self.collections.stats.get(include=["metadatas"])
        ids = list(got["ids"])
        # Records written before the float64 sums were kept in metadata lack them: rewrite those.
        no_sum = any(K_SUM not in (meta or {}) for meta in got["metadatas"] or [])
        counts: dict[str, int] = {kind: int(col.count()) for kind, col in self.collections.existing().items()}
        drift = any(counts.get(k, 0) != stats.count(k) for k in set(counts) | set(stats.kinds()))
        if drift:
            logger.warning(
                "store %s: statistics disagree with the stored documents; recounting",
                self.collections.describe(),
            )
            stats = self.scan()
        if drift or no_sum or any(not i.endswith(f":{self.writer}") for i in ids):
            if ids:
                self.collections.stats.delete(ids=ids)
            self.persist(stats, list(stats.counts))
        return stats


def open_statistics(collections: Collections) -> Statistics:
    """The keeper for this store: in memory when its backend is exclusive, else shared records."""
    if collections.backend.exclusive:
        return LocalStatistics(collections)
    return SharedStatistics(collections)


__all__ = [
    "LocalStatistics",
    "SharedStatistics",
    "Statistics",
    "decode_sum",
    "encode_sum",
    "open_statistics",
]
