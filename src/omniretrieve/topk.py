"""The exact top-k of one calibrated list over every document kind, from nearest-neighbour fetches.

A vector index (Chroma) answers one question fast: the ``n`` stored vectors of one kind with the
highest raw cosine to a probe vector. The calibrated scores of :mod:`omniretrieve.calibration` are
not raw cosines, so a shortlist fetched that way and rescored is not, in general, the top-k by the
calibrated score: a document far from its kind's mean can score high under ``"gap"`` while its raw
cosine ranks it 26th. :func:`top_k` fetches, rescores, and *proves* from a bound that nothing left
unfetched can enter the top k, widening the fetch (doubling ``n``) until it can, or until the
whole kind is fetched. Each round's fetches (every kind's first fetch, then the kinds widened
together) can run concurrently on an executor (``executor=``): Chroma releases the GIL while it
searches.

The bounds, per calibration, for a kind ``m`` whose unfetched documents all have a raw cosine to
the probe of at most ``c`` (the smallest fetched one, plus :data:`FETCH_SLACK` for the index's
float32 arithmetic):

* ``"none"``: the score is the raw cosine itself, so no unfetched document scores above ``c``.
* ``"gap"``: with ``q'`` the centred unit query (the probe) and ``|d| = 1``, the score is
  ``cos(d - mu_m, q') = (d.q' - mu_m.q') / |d - mu_m|`` and
  ``|d - mu_m|^2 = 1 + |mu_m|^2 - 2 d.mu_m``. With ``M`` an upper bound of ``d.mu_m`` over the
  kind (the trivial ``|mu_m|``, or the best raw cosine to ``mu_m``, one fetch of one vector,
  made only when the trivial bound does not settle the question), ``|d - mu_m| >= L =
  sqrt(1 + |mu_m|^2 - 2M)`` and ``|d - mu_m| <= U = 1 + |mu_m|``, so an unfetched document
  scores at most ``(c - mu_m.q') / L`` when that numerator is positive and
  ``(c - mu_m.q') / U`` when it is negative (and never above 1).
* ``"auto"``: ``"gap"`` or ``"none"``, chosen per store state before the search
  (:func:`omniretrieve.calibration.resolve`), so that method's bound.
* ``"rrf"``: the score is a function of the rank by raw cosine within the kind; a kind's first
  ``k`` ranks are exact once its ``k``-th fetched cosine is above ``c`` (no unfetched document
  can tie it and win on id), or the kind is exhausted.

The stop rule is strict (an unfetched document's bound must be *below* the current k-th score,
by :data:`SCORE_SLACK`), so ties cannot hide documents either, and the order is total: score
descending, then raw cosine descending, then id. Hence ``top_k(k)`` is the first ``k`` of
``top_k(k2)`` for every ``k < k2``.

Exactness is relative to the fetch: with an exact nearest-neighbour fetch (a brute-force
:class:`ArrayIndex`) the result equals brute force over the whole store. Chroma's HNSW is
approximate; ``benchmarks/results/calibration.json`` records the agreement measured through a
real Chroma collection. Costs (fetches and candidates scored per query) are recorded there too.

Example::

    index = {"text": ArrayIndex(text_ids, text_vectors), "image": ArrayIndex(image_ids, image_vectors)}
    sources = [KindSource(kind, len(ix), ix.fetch) for kind, ix in index.items()]
    hits = top_k(query, sources, 10, calibration="gap", stats=stats)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from omniretrieve.calibration import (
    DEFAULT_CALIBRATION,
    PRIOR_COUNT,
    RRF_K,
    Calibration,
    FusedHit,
    ModalityStats,
    dot_rows,
    gap_scores,
    l2_normalize,
    query_probe,
    resolve,
)
from omniretrieve.errors import InvalidInputError

Fetch = Callable[[np.ndarray, int], tuple[Sequence[str], np.ndarray]]
"""``fetch(probe, n) -> (ids, vectors)``: a kind's ``n`` stored vectors of highest raw cosine to
``probe`` (fewer when the kind holds fewer), with their ids; any order."""

FETCH_SLACK = 1e-5
"""How far (in raw cosine) the index may misorder two vectors: float32 distances, stored vectors
normalised in float32. Unfetched documents are assumed to have a raw cosine at most the smallest
fetched one plus this."""

SCORE_SLACK = 1e-9
"""A bound must be below the k-th score by this much before the search stops."""

FIRST_FETCH_MIN = 20
"""Under ``"gap"`` the first fetch of a kind asks for ``max(2k, FIRST_FETCH_MIN)`` vectors
(:func:`first_fetch_size`)."""


def first_fetch_size(calibration: str, k: int) -> int:
    """How many vectors :func:`top_k` first fetches of each kind (only the cost depends on it).

    Under ``"none"`` and ``"rrf"`` (exact from raw cosines) ``k + 1``: the bound is then settled
    in one round unless the ``k``-th and the ``(k + 1)``-th cosine of a kind are within
    :data:`FETCH_SLACK`. Under ``"gap"`` (a looser bound, widened more often) ``max(2k,
    FIRST_FETCH_MIN)``.

    Args:
        calibration: The calibration applied (``"auto"`` resolved).
        k: The hits asked for.
    """
    return max(2 * k, FIRST_FETCH_MIN) if calibration == "gap" else k + 1


_T = TypeVar("_T")


@dataclass(frozen=True)
class KindSource:
    """One document kind as :func:`top_k` sees it.

    Attributes:
        kind: The document kind (``"text"``, ``"image"``, ...).
        count: How many documents the kind holds (an upper bound is fine: a fetch that returns
            fewer than asked marks the kind exhausted).
        fetch: See :data:`Fetch`.
        sample: Stored vectors of the kind, a fixed sample (``"auto"`` chooses from the samples
            when :func:`top_k` is not given ``auto``); ``None`` when not needed.
        max_dot_mean: A known upper bound of ``d . mu`` over the kind (``mu`` the kind's mean),
            e.g. cached by the store; ``None``: fetched when needed.
    """

    kind: str
    count: int
    fetch: Fetch
    sample: np.ndarray | None = None
    max_dot_mean: float | None = None


@dataclass
class TopKCost:
    """What one :func:`top_k` call cost, and the calibration it applied (``"auto"`` resolved).

    Attributes:
        fetches: Index queries made.
        fetched: Vectors those returned (candidates scored).
        rounds: Widening rounds (1: the first fetch sufficed).
        calibration: The calibration applied.
        per_kind: Kind -> vectors fetched.
    """

    fetches: int = 0
    fetched: int = 0
    rounds: int = 0
    calibration: str = ""
    per_kind: dict[str, int] = field(default_factory=dict)


class ArrayIndex:
    """A brute-force, exact :data:`Fetch` over vectors held in memory (research, tests, small stores).

    Args:
        ids: One id per row.
        vectors: Shape ``(n, dim)``.
    """

    def __init__(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        self.ids = list(ids)
        self.vectors = np.atleast_2d(np.asarray(vectors))
        if len(self.ids) != len(self.vectors):
            raise InvalidInputError("ids", f"{len(self.ids)} ids for {len(self.vectors)} vectors")
        self._unit = l2_normalize(self.vectors)

    def __len__(self) -> int:
        return len(self.ids)

    def fetch(self, probe: np.ndarray, n: int) -> tuple[list[str], np.ndarray]:
        """The ``n`` rows of highest cosine to ``probe`` (ties by row order)."""
        if len(self.ids) == 0 or n <= 0:
            return [], self.vectors[:0]
        cos = self._unit @ l2_normalize(np.asarray(probe, dtype=np.float64))
        n = min(n, len(cos))
        top = np.argpartition(-cos, n - 1)[:n] if n < len(cos) else np.arange(len(cos))
        top = top[np.lexsort((top, -cos[top]))]
        return [self.ids[i] for i in top], self.vectors[top]


class _Kind:
    """The fetched state of one kind during a search."""

    def __init__(self, source: KindSource, probe: np.ndarray, query: np.ndarray) -> None:
        self.source = source
        self.probe = probe
        self.query = query
        self.n = 0
        self.ids: list[str] = []
        self.vectors = np.zeros((0, len(probe)))
        self.exhausted = source.count <= 0
        self.probe_cos = np.zeros(0)
        self.cosines = np.zeros(0)

    def request(self, n: int) -> Callable[[], tuple[Sequence[str], np.ndarray]]:
        """The fetch of this kind's first ``n`` (capped at its count), to run now or elsewhere."""
        n = min(n, max(self.source.count, 0))
        probe = self.probe.astype(np.float32)
        return lambda: self.source.fetch(probe, n)

    def receive(self, n: int, got: tuple[Sequence[str], np.ndarray], cost: TopKCost) -> None:
        """Take the answer of :meth:`request` ``(n)``."""
        n = min(n, max(self.source.count, 0))
        ids, vectors = got
        cost.fetches += 1
        cost.fetched += len(ids)
        cost.per_kind[self.source.kind] = cost.per_kind.get(self.source.kind, 0) + len(ids)
        self.n = n
        self.ids = list(ids)
        self.vectors = np.asarray(vectors, dtype=np.float64).reshape(len(self.ids), len(self.probe))
        self.exhausted = len(self.ids) < n or n >= self.source.count
        unit = l2_normalize(self.vectors)
        self.probe_cos = dot_rows(unit, self.probe)  # row by row: ties stay ties whatever was fetched
        self.cosines = self.probe_cos if self.probe is self.query else dot_rows(unit, self.query)

    def last(self) -> float:
        """Upper bound of the probe cosine of every unfetched document."""
        return float(self.probe_cos.min()) + FETCH_SLACK if len(self.ids) else 1.0


def _gather(thunks: Sequence[Callable[[], _T]], executor: Executor | None) -> list[_T]:
    """Run ``thunks``, concurrently on ``executor`` when given (the first in this thread)."""
    if executor is None or len(thunks) < 2:
        return [thunk() for thunk in thunks]
    futures = [executor.submit(thunk) for thunk in thunks[1:]]
    first = thunks[0]()
    return [first] + [f.result() for f in futures]


def _widen(kinds: Sequence[_Kind], sizes: Sequence[int], cost: TopKCost, executor: Executor | None) -> None:
    """One round: fetch ``sizes[i]`` of ``kinds[i]`` for every kind, concurrently on ``executor``."""
    got = _gather([kind.request(n) for kind, n in zip(kinds, sizes, strict=True)], executor)
    for kind, n, answer in zip(kinds, sizes, got, strict=True):
        kind.receive(n, answer, cost)


def top_k(
    query: np.ndarray,
    sources: Sequence[KindSource],
    k: int,
    *,
    calibration: Calibration = DEFAULT_CALIBRATION,
    stats: ModalityStats | None = None,
    query_kind: str = "text",
    query_parts: Sequence[str] = (),
    prior_count: float = PRIOR_COUNT,
    cost: TopKCost | None = None,
    auto: Calibration | None = None,
    executor: Executor | None = None,
    first_fetch: int | None = None,
) -> list[FusedHit]:
    """The ``k`` best documents over every kind by the calibrated score, exactly (module docstring).

    Args:
        query: The query embedding.
        sources: One :class:`KindSource` per document kind to search.
        k: How many hits.
        calibration: A name from :data:`omniretrieve.calibration.CALIBRATIONS`.
        stats: The corpus statistics (needed for ``"gap"``, and ``"auto"`` when it picks it).
        query_kind: The query's kind, for its mean.
        query_parts: The query's part modalities (a combined query).
        prior_count: Shrinkage of the means.
        cost: If given, filled with what the search cost.
        auto: For ``"auto"``: the store's choice (``"gap"`` or ``"none"``, made once per store state);
            ``None``: chosen here from the sources' samples (a cost per call the store should avoid).
        executor: If given, the fetches of one round (every kind's first fetch, then the kinds
            widened together) run concurrently on it; ``None``: one after the other.
        first_fetch: The size of every kind's first fetch (default :func:`first_fetch_size`);
            only the cost depends on it, never the result.

    Returns:
        Up to ``k`` hits, best first (score, then raw cosine descending, then id); ``index`` is the
        hit's rank within its kind (0-based).

    Raises:
        InvalidInputError: unknown calibration, ``k < 1``, missing statistics.
    """
    calibration = resolve(calibration, {s.kind: s.sample for s in sources}, auto)
    if k < 1:
        raise InvalidInputError(f"k={k!r}", "must be a positive int")
    if calibration == "gap" and stats is None:
        raise InvalidInputError("stats", f"{calibration} calibration needs the corpus statistics")
    cost = cost if cost is not None else TopKCost()
    q = l2_normalize(np.asarray(query, dtype=np.float64))
    cost.calibration = calibration
    probe = query_probe(q, calibration, stats, query_kind, query_parts, prior_count)
    probe = q if np.array_equal(probe, q) else probe  # the same vector: score it once
    kinds = [_Kind(s, probe, q) for s in sources if s.count > 0]
    first = first_fetch_size(calibration, k) if first_fetch is None else max(int(first_fetch), 1)
    _widen(kinds, [first] * len(kinds), cost, executor)
    cost.rounds = 1
    if calibration == "rrf":
        return _rrf(kinds, k, cost, executor)
    plans = {kind.source.kind: _Plan(kind, calibration, stats, probe, prior_count) for kind in kinds}
    while True:
        hits = _merge(kinds, plans, k)
        threshold = hits[-1].score if len(hits) == k else -np.inf
        widen = [
            kind for kind in kinds if not kind.exhausted and plans[kind.source.kind].open(threshold, cost)
        ]
        if not widen:
            return hits
        _widen(widen, [2 * kind.n for kind in widen], cost, executor)
        cost.rounds += 1


class _Plan:
    """How one kind's documents are scored under a calibration, and the bound on its unfetched ones."""

    def __init__(
        self,
        kind: _Kind,
        calibration: Calibration,
        stats: ModalityStats | None,
        probe: np.ndarray,
        prior_count: float,
    ) -> None:
        self.kind = kind
        self.calibration = calibration
        self.mean: np.ndarray | None = None
        if calibration == "gap":
            assert stats is not None
            self.mean = stats.mean(kind.source.kind, prior_count=prior_count)
        self.probe = probe
        self.max_dot_mean = kind.source.max_dot_mean
        self._fetched_max = False

    def scores(self) -> np.ndarray:
        """Calibrated scores of the fetched documents."""
        if self.calibration == "none":
            return self.kind.cosines
        return gap_scores(self.probe, self.kind.vectors, None, self.mean)

    def open(self, threshold: float, cost: TopKCost) -> bool:
        """Whether an unfetched document could still reach ``threshold`` (then fetch more)."""
        if self.calibration == "none":
            return self.kind.last() + SCORE_SLACK >= threshold
        if self._bound() + SCORE_SLACK < threshold:
            return False
        if self.max_dot_mean is None and not self._fetched_max and self.mean is not None:
            self._fetched_max = True  # the trivial |mu| was not enough: ask the index for max d.mu
            self.max_dot_mean = _max_dot(self.kind, self.mean, cost)
            return self._bound() + SCORE_SLACK >= threshold
        return True

    def _bound(self) -> float:
        """Upper bound of the calibrated score of every unfetched document."""
        c = self.kind.last()
        if self.mean is None:
            return min(c, 1.0)
        m_norm = float(np.linalg.norm(self.mean))
        top = m_norm if self.max_dot_mean is None else min(self.max_dot_mean, m_norm)
        numerator = c - float(self.mean @ self.probe)
        if numerator >= 0:
            low_sq = 1.0 + m_norm * m_norm - 2.0 * top - 2 * FETCH_SLACK
            return 1.0 if low_sq <= 0 else float(min(1.0, numerator / np.sqrt(low_sq)))
        return numerator / (1.0 + m_norm)


def _max_dot(kind: _Kind, mean: np.ndarray, cost: TopKCost) -> float:
    """An upper bound of ``d . mean`` over the kind: the best fetched cosine to the mean, times ``|mean|``."""
    norm = float(np.linalg.norm(mean))
    if norm == 0:
        return 0.0
    ids, vectors = kind.source.fetch((mean / norm).astype(np.float32), 1)
    cost.fetches += 1
    cost.fetched += len(ids)
    if len(ids) == 0:
        return norm
    best = float((l2_normalize(np.atleast_2d(np.asarray(vectors, dtype=np.float64))) @ mean).max())
    return min(norm, best + FETCH_SLACK * norm)


def _merge(kinds: Sequence[_Kind], plans: Mapping[str, _Plan], k: int) -> list[FusedHit]:
    hits: list[FusedHit] = []
    for kind in kinds:
        if not kind.ids:
            continue
        scores = plans[kind.source.kind].scores()
        order = np.lexsort((np.asarray(kind.ids), -kind.cosines, -scores))
        for rank, i in enumerate(order[:k]):
            hits.append(
                FusedHit(kind.source.kind, rank, kind.ids[i], float(scores[i]), float(kind.cosines[i]))
            )
    hits.sort(key=_order)
    return hits[:k]


def _order(hit: FusedHit) -> tuple[float, float, str]:
    return (-hit.score, -hit.cosine, hit.id)


def _rrf(kinds: Sequence[_Kind], k: int, cost: TopKCost, executor: Executor | None = None) -> list[FusedHit]:
    """Reciprocal-rank fusion with exact per-kind ranks (raw cosine descending, then id)."""
    tops: dict[str, np.ndarray] = {}
    while True:
        widen: list[_Kind] = []
        for kind in kinds:
            order = np.lexsort((np.asarray(kind.ids), -kind.cosines))
            tops[kind.source.kind] = top = order[:k]
            settled = kind.exhausted or (
                len(top) == k and float(kind.cosines[top[-1]]) > kind.last() + SCORE_SLACK
            )
            if not settled:
                widen.append(kind)
        if not widen:
            break
        _widen(widen, [2 * kind.n for kind in widen], cost, executor)
        cost.rounds += 1
    hits: list[FusedHit] = []
    for kind in kinds:
        for rank, i in enumerate(tops[kind.source.kind]):
            score = 1.0 / (RRF_K + rank + 1)
            hits.append(FusedHit(kind.source.kind, rank, kind.ids[i], score, float(kind.cosines[i])))
    hits.sort(key=_order)
    return hits[:k]


__all__ = [
    "FETCH_SLACK",
    "FIRST_FETCH_MIN",
    "SCORE_SLACK",
    "ArrayIndex",
    "Fetch",
    "KindSource",
    "TopKCost",
    "first_fetch_size",
    "top_k",
]
