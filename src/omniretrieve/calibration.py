"""Making scores of different modalities comparable, and fusing per-modality lists into one.

Pure numpy; the store (:mod:`omniretrieve.store`) feeds it candidates and keeps its statistics.

The problem: contrastive models (CLIP, CLAP, ...) place each modality in its own region of the
embedding space (the *modality gap*). Every caption is closer to every other caption than to any
image, so in one list over a mixed corpus a text query ranks all texts above all images, whatever
they show. Raw cosine scores are comparable within one modality only.

Calibrations (``calibration=`` on search):

* ``"auto"`` (default): ``"gap"`` or ``"none"``, chosen once per store state from a fixed sample
  of each kind's stored vectors (:func:`gap_statistic`): for every ordered pair of sampled kinds
  ``(a, b)``, the median raw cosine between vectors of ``a`` minus the median raw cosine from
  ``a`` to ``b``, in units of the ``a -> b`` tail width (the :data:`TAIL_QUANTILE` quantile of the
  ``a -> b`` scores minus their median). Above :data:`GAP_THRESHOLD` (1: a typical document of the
  query's own kind outscores a top-1% document of the other kind) the store has a modality gap
  and ``"auto"`` is ``"gap"``; else the model already puts the kinds on one scale and centring
  would only remove content (a kind's mean is partly what its documents are about), so ``"auto"``
  is ``"none"``; with fewer than two sampled kinds it is ``"none"``. A score is the chosen
  method's score (comparable across queries and kinds within one store state; the choice can
  change when the store changes). Where it loses (a much noisier tower without a gap):
  ``benchmarks/results/calibration.json``.
* ``"gap"``: post-hoc gap removal (GR-CLIP, Li et al. 2025, "Closing the Modality Gap
  for Mixed Modality Search"). For each document kind ``m`` the store keeps the mean ``mu_m`` of
  the stored (L2-normalised) embeddings of that kind, updated on every add, update and delete.
  A document vector ``d`` of kind ``m`` becomes ``d' = (d - mu_m) / |d - mu_m|``, the query
  ``q`` of kind ``k`` becomes ``q' = (q - mu_k) / |q - mu_k|``, and the score is ``q' . d'``:
  a cosine in ``[-1, 1]`` between gap-free directions, comparable across kinds when the kinds'
  towers are equally sharp. Means are shrunk toward zero by a pseudo-count
  (``mu = sum / (n + prior_count)``) so that a kind with a single document is not centred onto
  itself (``d - mu`` would be zero). A query of a kind with no stored documents is centred on the
  mean of its parts' kinds (a combined query) or not at all. On a gap-free model it costs a
  few points of nDCG (the means it removes hold content).
* ``"rrf"``: reciprocal-rank fusion of the per-kind lists, each ranked by raw cosine:
  ``score = 1 / (60 + rank)`` (rank from 1 within the document's kind). It interleaves kinds
  regardless of how well each matches; no statistics are needed.
* ``"none"``: the raw cosine ``q . d``, what most frameworks do. Fine within one modality;
  across modalities it carries the gap.

Example::

    stats = ModalityStats(dimension=3)
    stats.add("text", text_vectors)
    stats.add("image", image_vectors)
    scores = gap_scores(query, image_vectors, stats.mean("text"), stats.mean("image"))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np

from omniretrieve.errors import InvalidInputError

Calibration: TypeAlias = Literal["auto", "gap", "rrf", "none"]
"""How scores of different kinds are made comparable; see the module docstring."""

CALIBRATIONS: tuple[Calibration, ...] = ("auto", "gap", "rrf", "none")

DEFAULT_CALIBRATION: Calibration = "auto"
"""The default. ``"auto"`` is within 0.01 of the best fixed method, and above 0.9 of the oracle
interleave, on every world but one of ``benchmarks/results/calibration.json`` (``"gap"`` misses on
five); the note there says which world it misses and why."""

RRF_K = 60
"""The constant of reciprocal-rank fusion (Cormack et al. 2009)."""

PRIOR_COUNT = 1.0
"""Pseudo-count that shrinks each kind's mean toward zero: ``mean = sum / (count + PRIOR_COUNT)``."""


def check_calibration(calibration: str) -> Calibration:
    """Return ``calibration`` if it is one of :data:`CALIBRATIONS`.

    Raises:
        InvalidInputError: it is not.
    """
    if calibration not in CALIBRATIONS:
        raise InvalidInputError("calibration", f"{calibration!r} is not one of {list(CALIBRATIONS)}")
    return calibration  # type: ignore[return-value]


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows (or one vector) scaled to unit length; all-zero rows stay zero."""
    arr = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    return np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)


def center(vectors: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    """Subtract a kind's mean (when known) and renormalise: the gap-free directions."""
    arr = np.asarray(vectors, dtype=np.float64)
    return l2_normalize(arr if mean is None else arr - mean)


def dot_rows(rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """The dot product of each row of ``rows`` with ``vector``, each row's a function of that row only.

    A matrix product (``rows @ vector``) may round a row differently depending on where it sits in
    the matrix (BLAS kernels block rows), so two identical documents could get scores a few ulps
    apart, and which of them wins a tie would depend on which other documents were scored with
    them: ``search(k)`` would then not be a prefix of ``search(k2)``. Scores that decide a ranking
    are computed here instead: an element-wise product summed along each row.
    """
    return np.multiply(np.atleast_2d(rows), vector).sum(axis=-1)


def cosine_scores(query: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """Cosine between one query vector and each row of ``docs`` (row by row: :func:`dot_rows`)."""
    return dot_rows(l2_normalize(np.atleast_2d(docs)), l2_normalize(np.asarray(query)))


def gap_scores(
    query: np.ndarray, docs: np.ndarray, query_mean: np.ndarray | None, doc_mean: np.ndarray | None
) -> np.ndarray:
    """Calibrated scores: cosine between the query and the documents, each centred on its kind's mean.

    Args:
        query: The query vector, shape ``(dim,)``.
        docs: Document vectors of one kind, shape ``(n, dim)``.
        query_mean: The mean of the query's kind (``None``: no centring).
        doc_mean: The mean of the documents' kind (``None``: no centring).
    """
    return dot_rows(center(np.atleast_2d(docs), doc_mean), center(query, query_mean))


def rrf_scores(n: int, k: int = RRF_K) -> np.ndarray:
    """Reciprocal-rank-fusion scores of the first ``n`` ranks of one list: ``1 / (k + rank)``."""
    return 1.0 / (k + np.arange(1, n + 1, dtype=np.float64))


def query_probe(
    query: np.ndarray,
    calibration: Calibration,
    stats: ModalityStats | None,
    query_kind: str = "text",
    query_parts: Sequence[str] = (),
    prior_count: float = PRIOR_COUNT,
) -> np.ndarray:
    """The unit vector documents are compared with (the probe of the index).

    The query centred on its kind's mean for ``"gap"``, else the query itself (resolve ``"auto"``
    first: :func:`resolve`); also the query itself when centring leaves nothing.
    """
    q = l2_normalize(np.asarray(query, dtype=np.float64))
    if calibration != "gap" or stats is None:
        return q
    probe = center(q, stats.query_mean(query_kind, query_parts, prior_count=prior_count))
    return probe if np.any(probe) else q


TAIL_QUANTILE = 0.99
""":func:`gap_statistic` measures score differences in units of the distance from the median to this
quantile of a pair's sampled raw cosines (the upper tail, where relevant documents score)."""

GAP_THRESHOLD = 1.0
""":func:`auto_choice` picks ``"gap"`` when :func:`gap_statistic` is above this, else ``"none"``."""


def gap_statistic(samples: Mapping[str, np.ndarray | None], quantile: float = TAIL_QUANTILE) -> float | None:
    """How far apart the kinds' raw cosines sit, in tail widths; ``None`` with fewer than two kinds.

    For every ordered pair of sampled kinds ``(a, b)`` with at least two vectors of ``a``: the
    median raw cosine between two different sampled vectors of ``a``, minus the median raw cosine
    from a sampled vector of ``a`` to one of ``b``, divided by the tail width of the ``a -> b``
    cosines (their ``quantile`` minus their median). The largest over the pairs.

    Args:
        samples: Kind -> a fixed sample of its stored vectors (a few hundred suffice; the cost is
            the product of the sample sizes per pair).
        quantile: The upper quantile of the tail width (:data:`TAIL_QUANTILE`).
    """
    units = {k: l2_normalize(np.atleast_2d(v)) for k, v in samples.items() if v is not None and len(v)}
    found: list[float] = []
    for a, va in units.items():
        if len(va) < 2:
            continue
        within = va @ va.T
        inside = float(np.median(within[~np.eye(len(va), dtype=bool)]))
        for b, vb in units.items():
            if b == a:
                continue
            cross = (va @ vb.T).ravel()
            median = float(np.median(cross))
            width = max(float(np.quantile(cross, quantile)) - median, 1e-12)
            found.append((inside - median) / width)
    return max(found) if found else None


def auto_choice(statistic: float | None) -> Calibration:
    """What ``"auto"`` applies for a store whose :func:`gap_statistic` is ``statistic``."""
    return "gap" if statistic is not None and statistic > GAP_THRESHOLD else "none"


def resolve(
    calibration: Calibration,
    samples: Mapping[str, np.ndarray | None] | None = None,
    auto: Calibration | None = None,
) -> Calibration:
    """The calibration applied: ``calibration`` itself, or for ``"auto"`` its choice.

    Args:
        calibration: A name from :data:`CALIBRATIONS`.
        samples: For ``"auto"`` without ``auto``: the kinds' samples (:func:`gap_statistic`).
        auto: For ``"auto"``: the choice already made for this store state (preferred: the store
            caches it per state).
    """
    calibration = check_calibration(calibration)
    if calibration != "auto":
        return calibration
    return auto if auto in ("gap", "none") else auto_choice(gap_statistic(samples or {}))


@dataclass
class ModalityStats:
    """Running sums and counts of stored embeddings per document kind, and the means they give.

    Sums are kept in float64. :meth:`add` and :meth:`remove` take the vectors exactly as stored,
    so the statistics follow every write; :meth:`merge` combines the partial statistics that
    several writers keep.

    Attributes:
        dimension: The embedding dimension.
        sums: Kind -> sum of its stored vectors.
        counts: Kind -> number of its stored vectors.
    """

    dimension: int
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        arr = np.asarray(vectors, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dimension:
            raise InvalidInputError(
                "vectors", f"shape {arr.shape} does not hold vectors of dimension {self.dimension}"
            )
        return arr

    def add(self, kind: str, vectors: np.ndarray) -> None:
        """Count vectors that were stored under ``kind``."""
        arr = self._check(vectors)
        if len(arr) == 0:
            return
        self.sums[kind] = self.sums.get(kind, np.zeros(self.dimension)) + arr.sum(axis=0)
        self.counts[kind] = self.counts.get(kind, 0) + len(arr)

    def remove(self, kind: str, vectors: np.ndarray) -> None:
        """Uncount vectors that were deleted or replaced under ``kind``."""
        arr = self._check(vectors)
        if len(arr) == 0:
            return
        self.sums[kind] = self.sums.get(kind, np.zeros(self.dimension)) - arr.sum(axis=0)
        self.counts[kind] = self.counts.get(kind, 0) - len(arr)

    def count(self, kind: str) -> int:
        """Stored vectors of ``kind``."""
        return self.counts.get(kind, 0)

    def kinds(self) -> list[str]:
        """The kinds with at least one stored vector."""
        return [k for k, n in self.counts.items() if n > 0]

    def mean(self, kind: str, *, prior_count: float = PRIOR_COUNT) -> np.ndarray | None:
        """The shrunk mean ``sum / (count + prior_count)`` of a kind, or ``None`` if it has no vectors."""
        n = self.counts.get(kind, 0)
        if n <= 0:
            return None
        return self.sums[kind] / (n + prior_count)

    def query_mean(
        self, kind: str, parts: Sequence[str] = (), *, prior_count: float = PRIOR_COUNT
    ) -> np.ndarray | None:
        """The mean a query of ``kind`` is centred on.

        The mean of stored documents of the same kind; for a combined query with no combined
        documents stored, the average of its parts' means (those known); else ``None``.
        """
        own = self.mean(kind, prior_count=prior_count)
        if own is not None:
            return own
        means = [m for m in (self.mean(p, prior_count=prior_count) for p in parts) if m is not None]
        if not means:
            return None
        return np.mean(means, axis=0)

    def merge(self, other: ModalityStats) -> None:
        """Add another writer's statistics to these."""
        if other.dimension != self.dimension:
            raise InvalidInputError("stats", f"dimension {other.dimension} != {self.dimension}")
        for kind, n in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + n
            self.sums[kind] = self.sums.get(kind, np.zeros(self.dimension)) + other.sums[kind]

    def copy(self) -> ModalityStats:
        """An independent copy."""
        return ModalityStats(self.dimension, {k: v.copy() for k, v in self.sums.items()}, dict(self.counts))

    @classmethod
    def from_vectors(cls, dimension: int, by_kind: Mapping[str, np.ndarray]) -> ModalityStats:
        """Statistics of the given vectors per kind (what a full recount computes)."""
        stats = cls(dimension)
        for kind, vectors in by_kind.items():
            stats.add(kind, vectors)
        return stats


@dataclass(frozen=True)
class KindCandidates:
    """The candidates of one document kind, as retrieved for one query.

    Attributes:
        kind: The document kind.
        ids: Candidate ids, in the store's retrieval order.
        vectors: Their stored embeddings, shape ``(n, dim)``.
    """

    kind: str
    ids: Sequence[str]
    vectors: np.ndarray


@dataclass(frozen=True)
class FusedHit:
    """One fused entry: which kind list it came from, its position there, and its scores."""

    kind: str
    index: int
    id: str
    score: float
    cosine: float


def fuse(
    query: np.ndarray,
    candidates: Iterable[KindCandidates],
    k: int,
    *,
    calibration: Calibration = DEFAULT_CALIBRATION,
    stats: ModalityStats | None = None,
    query_kind: str = "text",
    query_parts: Sequence[str] = (),
    prior_count: float = PRIOR_COUNT,
    samples: Mapping[str, np.ndarray] | None = None,
    auto: Calibration | None = None,
) -> list[FusedHit]:
    """Score every candidate exactly and merge all kinds into one list of the best ``k``.

    This ranks the candidates it is given; :func:`omniretrieve.topk.top_k` decides which
    candidates are needed for the result to be the top ``k`` over the whole store.

    Args:
        query: The query embedding (L2-normalised).
        candidates: Per-kind candidate lists with their stored vectors.
        k: How many hits to return.
        calibration: A name from :data:`CALIBRATIONS` (module docstring).
        stats: The corpus statistics (needed for ``"gap"``, and ``"auto"`` when it picks it).
        query_kind: The query's kind, for its mean.
        query_parts: The query's part modalities (a combined query).
        prior_count: Shrinkage of the means.
        samples: Kind -> a fixed sample of its stored vectors: ``"auto"`` chooses from them
            (:func:`resolve`) when ``auto`` is not given.
        auto: For ``"auto"``: the choice made once per store state (preferred).

    Returns:
        Hits by score descending; ties broken by raw cosine, then id.

    Raises:
        InvalidInputError: unknown calibration, or ``"gap"`` without statistics.
    """
    calibration = resolve(calibration, samples, auto)
    if calibration == "gap" and stats is None:
        raise InvalidInputError("stats", f"{calibration} calibration needs the corpus statistics")
    q = np.asarray(query, dtype=np.float64)
    probe = query_probe(q, calibration, stats, query_kind, query_parts, prior_count)
    hits: list[FusedHit] = []
    for cand in candidates:
        if len(cand.ids) == 0:
            continue
        vectors = np.atleast_2d(np.asarray(cand.vectors, dtype=np.float64))
        cosines = cosine_scores(q, vectors)
        if calibration == "rrf":
            order = np.lexsort((np.asarray(cand.ids), -cosines))
            scores = np.empty(len(cand.ids))
            scores[order] = rrf_scores(len(cand.ids))
        elif calibration == "none":
            scores = cosines
        else:
            assert stats is not None
            scores = gap_scores(probe, vectors, None, stats.mean(cand.kind, prior_count=prior_count))
        for i in range(len(cand.ids)):
            hits.append(FusedHit(cand.kind, i, cand.ids[i], float(scores[i]), float(cosines[i])))
    hits.sort(key=lambda h: (-h.score, -h.cosine, h.id))
    return hits[: max(k, 0)]


__all__ = [
    "CALIBRATIONS",
    "DEFAULT_CALIBRATION",
    "GAP_THRESHOLD",
    "PRIOR_COUNT",
    "RRF_K",
    "TAIL_QUANTILE",
    "Calibration",
    "FusedHit",
    "KindCandidates",
    "ModalityStats",
    "center",
    "auto_choice",
    "check_calibration",
    "cosine_scores",
    "dot_rows",
    "fuse",
    "gap_scores",
    "gap_statistic",
    "l2_normalize",
    "query_probe",
    "resolve",
    "rrf_scores",
]
