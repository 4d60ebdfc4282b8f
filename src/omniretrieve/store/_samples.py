"""What a store's search keeps per store state: each kind's sample, small kinds whole, ``"auto"``'s choice, bounds.

The ``"auto"`` calibration chooses ``"gap"`` or ``"none"`` from a statistic
(:func:`omniretrieve.calibration.gap_statistic`) of a sample of each kind's stored vectors, and
the exact top-k (:func:`omniretrieve.topk.top_k`) proves its result faster with an
upper bound of ``d . mu`` over each kind. Neither depends on the query, so both are computed once
per store state and cached here, never per query.

* The sample of a kind: the :data:`SAMPLE_SIZE` ids with the smallest SHA-256 of the id (the whole
  kind when it holds fewer). It is a function of the stored ids alone, not of the order they were
  written in nor of Chroma's order (Chroma's ``get`` documents no order), and it is spread over
  the kind whatever the id scheme (``news-1``, ``news-2``, ... hash anywhere).
* A kind of at most :data:`EXACT_LIMIT` documents is held whole, as an exact in-memory index
  (:class:`omniretrieve.topk.ArrayIndex`): the search fetches from it instead of Chroma's HNSW,
  which is approximate even on small collections (measured: in a 200-vector collection, a vector
  far from a tight cluster, second by cosine to the query, was missing from the first 100
  results). Brute force over a few thousand vectors also costs less than an index query.
* The bound ``max d . mu``: exact over the vectors held (the whole kind for a small kind), and for
  a larger kind the larger of that and the nearest stored vector to ``mu`` by one index query (as
  exact as the index; see :mod:`omniretrieve.topk`), plus the index's float slack.
* The store state: the statistics' per-kind counts and sums (what every write changes, read at
  every search anyway). When they change (this process wrote, or another writer of a server store
  did), the next search recomputes: it lists each kind's ids (one pass over the ids), reads the
  sampled vectors (all of a small kind's) and runs one index query per large kind.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from omniretrieve.calibration import Calibration, ModalityStats, auto_choice, gap_statistic, l2_normalize
from omniretrieve.store._schema import Collections
from omniretrieve.topk import FETCH_SLACK, ArrayIndex

SAMPLE_SIZE = 256
"""Vectors sampled per kind (the cost of ``"auto"``'s statistic is the product of two kinds' sample sizes)."""

EXACT_LIMIT = 4096
"""A kind with at most this many documents is held whole in memory and searched by brute force."""

StateKey = tuple[tuple[str, int, bytes], ...]
"""The store state samples are valid for: per kind, its count and the bytes of its sum."""


def state_key(stats: ModalityStats) -> StateKey:
    """The key of the statistics' state (changes on every write that changes a kind's vectors)."""
    return tuple(
        (kind, stats.count(kind), np.asarray(stats.sums.get(kind, ()), dtype=np.float64).tobytes())
        for kind in sorted(stats.counts)
    )


def _rank(doc_id: str) -> bytes:
    return hashlib.sha256(doc_id.encode("utf-8")).digest()


def sample_ids(ids: Iterable[str], n: int = SAMPLE_SIZE) -> list[str]:
    """The ``n`` ids with the smallest SHA-256 of their UTF-8 bytes, in that order (all when fewer)."""
    return heapq.nsmallest(n, ids, key=_rank)


@dataclass(frozen=True)
class StoreSamples:
    """What :class:`Samples` computed for one store state.

    Attributes:
        key: The state (:func:`state_key`).
        samples: Kind -> its sampled stored vectors, shape ``(n, dim)`` (ids order of :func:`sample_ids`).
        gap_statistic: :func:`omniretrieve.calibration.gap_statistic` of the samples.
        auto: What ``"auto"`` applies in this state (:func:`omniretrieve.calibration.auto_choice`).
        max_dot_mean: Kind -> an upper bound of ``d . mu`` over the kind's stored vectors.
        exact: Kind -> every stored vector of the kind, as an exact index (small kinds only).
    """

    key: StateKey
    samples: Mapping[str, np.ndarray] = field(default_factory=dict)
    gap_statistic: float | None = None
    auto: Calibration = "none"
    max_dot_mean: Mapping[str, float] = field(default_factory=dict)
    exact: Mapping[str, ArrayIndex] = field(default_factory=dict)


class Samples:
    """The per-state cache of one store's samples, ``"auto"`` choice and bounds (see the module docstring).

    Safe to call from several searching threads: one computes, the others wait for it.

    Args:
        collections: The store's collections.
        prior_count: Shrinkage of the per-kind means.
        size: Vectors sampled per kind.
        exact_limit: Kinds of at most this many documents are held whole (0: none).
    """

    def __init__(
        self,
        collections: Collections,
        prior_count: float,
        size: int = SAMPLE_SIZE,
        exact_limit: int = EXACT_LIMIT,
    ) -> None:
        self.collections = collections
        self.prior_count = prior_count
        self.size = size
        self.exact_limit = exact_limit
        self._lock = threading.Lock()
        self._current: StoreSamples | None = None
        self.computed = 0
        """How many times a state was computed (tests check it is not per query)."""

    def current(self, stats: ModalityStats) -> StoreSamples:
        """The samples of the store state ``stats`` describes: cached, or computed now.

        Raises:
            Exception: whatever Chroma raises (the caller wraps it).
        """
        key = state_key(stats)
        cached = self._current
        if cached is not None and cached.key == key:
            return cached
        with self._lock:
            cached = self._current
            if cached is not None and cached.key == key:
                return cached
            fresh = self._compute(key, stats)
            self._current = fresh
            self.computed += 1
            return fresh

    def _compute(self, key: StateKey, stats: ModalityStats) -> StoreSamples:
        samples: dict[str, np.ndarray] = {}
        bounds: dict[str, float] = {}
        exact: dict[str, ArrayIndex] = {}
        for kind in stats.kinds():
            col = self.collections.kind(kind)
            if col is None:
                continue
            ids = self._ids(col)
            whole = len(ids) <= self.exact_limit
            chosen = sample_ids(ids, self.size)
            held_ids, held = self._vectors(col, ids if whole else chosen)
            if not held_ids:
                continue
            if whole:
                exact[kind] = ArrayIndex(held_ids, held)
                rows = {i: n for n, i in enumerate(held_ids)}
                samples[kind] = held[[rows[i] for i in chosen if i in rows]]
            else:
                samples[kind] = held
            mean = stats.mean(kind, prior_count=self.prior_count)
            if mean is not None:
                bounds[kind] = self._max_dot_mean(col, held, mean, exhaustive=whole)
        statistic = gap_statistic(samples)
        return StoreSamples(key, samples, statistic, auto_choice(statistic), bounds, exact)

    def _ids(self, col: Any) -> list[str]:
        """Every id of a kind, in pages Chroma takes (ids only: no vectors, no metadata)."""
        ids: list[str] = []
        while True:
            got = col.get(include=[], limit=self.collections.max_batch, offset=len(ids))
            page = list(got["ids"])
            ids.extend(page)
            if len(page) < self.collections.max_batch:
                return ids

    def _vectors(self, col: Any, ids: list[str]) -> tuple[list[str], np.ndarray]:
        """The stored vectors of ``ids`` (those still stored), in that order."""
        by_id: dict[str, Any] = {}
        for part in self.collections.slices(len(ids)):
            got = col.get(ids=ids[part], include=["embeddings"])
            by_id.update(zip(got["ids"], got["embeddings"], strict=True))
        kept = [i for i in ids if i in by_id]  # an id deleted meanwhile is left out
        rows = np.asarray([by_id[i] for i in kept], dtype=np.float32)
        return kept, rows.reshape(len(kept), self.collections.dimension)

    @staticmethod
    def _max_dot_mean(col: Any, sample: np.ndarray, mean: np.ndarray, *, exhaustive: bool) -> float:
        """An upper bound of ``d . mean`` over the kind (``exhaustive``: the sample is the whole kind)."""
        norm = float(np.linalg.norm(mean))
        if norm == 0:
            return 0.0
        best = float((l2_normalize(sample) @ mean).max())
        if not exhaustive:
            got = col.query(
                query_embeddings=[(mean / norm).astype(np.float32)], n_results=1, include=["embeddings"]
            )
            near = np.asarray(got["embeddings"][0], dtype=np.float64)
            if len(near):
                best = max(best, float((l2_normalize(np.atleast_2d(near)) @ mean).max()))
        return min(norm, best + FETCH_SLACK * norm)


__all__ = ["EXACT_LIMIT", "SAMPLE_SIZE", "Samples", "StoreSamples", "sample_ids", "state_key"]
