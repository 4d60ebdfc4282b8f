"""Making scores of different modalities comparable, and fusing per-modality lists into one.

Pure numpy; the store (:mod:`omniretrieve.store`) feeds it candidates and keeps its statistics.

The problem: contrastive models (CLIP, CLAP, ...) place each modality in its own region of the
embedding space (the *modality gap*). Every caption is closer to every other caption than to any
image, so in one list over a mixed corpus a text query ranks all texts above all images, whatever
they show. Raw cosine scores are comparable within one modality only.

Calibrations (``calibration=`` on search):

* ``"scaled"`` (experimental, by name): ``"gap"`` removal, then each (query kind, document kind) pair's scores
  divided by one store-level constant, the *tail width* of that pair: over a fixed sample of each
  kind's stored vectors, the ``"gap"`` scores between sampled vectors of the query's kind (standing
  in for queries) and sampled vectors of the document's kind, and the width is their
  :data:`TAIL_QUANTILE` (0.99) quantile minus their median (:func:`pair_scales`). A weaker tower, a
  residual gap or a kind whose vectors spread differently compresses or stretches one pair's
  scores; relevant documents score in the upper tail, so the tail's width is the unit that makes
  pairs comparable. A score is "how many tail widths above orthogonal (after gap removal) this
  document is", no supervision, and 0 keeps its meaning (orthogonal), so no location is moved.
  The widths depend on the store (its means and samples), not on the query: within one store
  state, scores are comparable across queries of the same kind and across document kinds; not
  across stores, nor across query kinds (each has its own widths). The map is one positive factor
  per kind, so the exact top-k of :mod:`omniretrieve.topk` holds. Without samples (or a pair with
  fewer than two sampled scores) see :func:`pair_scale`: an unknown pair is scaled like the
  median of the known ones; with nothing known the score is the ``"gap"`` score.
  ``benchmarks/results/calibration.json`` compares it with the others, and says where it loses.
* ``"gap"`` (default): post-hoc gap removal (GR-CLIP, Li et al. 2025, "Closing the Modality Gap
  for Mixed Modality Search"). For each document kind ``m`` the store keeps the mean ``mu_m`` of
  the stored (L2-normalised) embeddings of that kind, updated on every add, update and delete.
  A document vector ``d`` of kind ``m`` becomes ``d' = (d - mu_m) / |d - mu_m|``, the query
  ``q`` of kind ``k`` becomes ``q' = (q - mu_k) / |q - mu_k|``, and the score is ``q' . d'``:
  a cosine in ``[-1, 1]`` between gap-free directions, comparable across kinds when the kinds'
  towers are equally sharp (``"scaled"`` handles the other case). Means are
  shrunk toward zero by a pseudo-count (``mu = sum / (n + prior_count)``) so that a kind with a
  single document is not centred onto itself (``d - mu`` would be zero). A query of a kind with
  no stored documents is centred on the mean of its parts' kinds (a combined query) or not at
  all.
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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np

from omniretrieve.errors import InvalidInputError

Calibration: TypeAlias = Literal["scaled", "gap", "rrf", "none"]
"""How scores of different kinds are made comparable; see the module docstring."""

CALIBRATIONS: tuple[Calibration, ...] = ("scaled", "gap", "rrf", "none")

DEFAULT_CALIBRATION: Calibration = "gap"
"""The default. ``"scaled"`` depends on which vectors its sample holds and lost to ``"gap"`` by up to
0.05 nDCG@10 on held-out worlds once measured through the store (``benchmarks/results/calibration.json``);
no method yet is within 0.01 of the best fixed one on every world (gap-free models favour ``"none"``)."""

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


def cosine_scores(query: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """Cosine between one query vector and each row of ``docs``."""
    return l2_normalize(np.atleast_2d(docs)) @ l2_normalize(np.asarray(query))


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
    return center(np.atleast_2d(docs), doc_mean) @ center(query, query_mean)


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

    The query centred on its kind's mean for ``"gap"`` and ``"scaled"``, else the query itself;
    also the query itself when centring leaves nothing.
    """
    q = l2_normalize(np.asarray(query, dtype=np.float64))
    if calibration not in ("gap", "scaled") or stats is None:
        return q
    probe = center(q, stats.query_mean(query_kind, query_parts, prior_count=prior_count))
    return probe if np.any(probe) else q


TAIL_QUANTILE = 0.99
"""``"scaled"`` measures each pair of kinds by the distance from the median to this quantile of its
sampled ``"gap"`` scores (the upper tail, where relevant documents score)."""

SCALE_FLOOR = 1e-6
"""The smallest tail width ``"scaled"`` divides by."""

PairScales: TypeAlias = Mapping[tuple[str, str], float]
"""(query kind, document kind) -> the tail width of that pair's ``"gap"`` scores (:func:`pair_scales`)."""


def pair_scales(
    samples: Mapping[str, np.ndarray | None],
    stats: ModalityStats,
    prior_count: float = PRIOR_COUNT,
    quantile: float = TAIL_QUANTILE,
) -> dict[tuple[str, str], float]:
    """The store-level tail widths ``"scaled"`` divides ``"gap"`` scores by.

    For every pair of sampled kinds ``(a, b)``, the ``"gap"`` scores between the sampled vectors
    of ``a`` (standing in for queries of kind ``a``) and those of ``b``, a vector never paired with
    itself; the width is the ``quantile`` of these scores minus their median. Pairs without two
    scores, or with a width below :data:`SCALE_FLOOR`, are left out (:func:`pair_scale` fills them).

    Args:
        samples: Kind -> a fixed sample of its stored vectors (a few hundred suffice; the cost is
            the product of the sample sizes per pair).
        stats: The corpus statistics (the means the vectors are centred on).
        prior_count: Shrinkage of the means.
        quantile: The upper quantile (:data:`TAIL_QUANTILE`).
    """
    centred: dict[str, np.ndarray] = {}
    for kind, sample in samples.items():
        if sample is None or len(sample) == 0 or stats.count(kind) <= 0:
            continue
        centred[kind] = center(np.atleast_2d(sample), stats.mean(kind, prior_count=prior_count))
    widths: dict[tuple[str, str], float] = {}
    for a, qa in centred.items():
        for b, db in centred.items():
            scores = qa @ db.T
            values = scores[~np.eye(len(qa), dtype=bool)] if a == b else scores.ravel()
            if len(values) < 2:
                continue
            width = float(np.quantile(values, quantile) - np.median(values))
            if width >= SCALE_FLOOR:
                widths[(a, b)] = width
    return widths


def pair_scale(
    scales: PairScales | None, query_kind: str, doc_kind: str, query_parts: Sequence[str] = ()
) -> float:
    """The tail width that ``"scaled"`` divides the ``"gap"`` scores of ``doc_kind`` by, for one query.

    The width of ``(query_kind, doc_kind)``; for a query kind without a sample (a combined query),
    the geometric mean of its parts' widths; a pair still unknown gets the median of the known
    widths for the query (a kind with a single document), and a query with none known gets 1 (the
    ``"gap"`` score).
    """
    if not scales:
        return 1.0
    if (query_kind, doc_kind) in scales:
        return scales[(query_kind, doc_kind)]
    parts = [scales[(p, doc_kind)] for p in query_parts if (p, doc_kind) in scales]
    if parts:
        return float(np.exp(np.mean(np.log(parts))))
    kinds = [query_kind, *query_parts]
    known = [w for (a, _), w in scales.items() if a in kinds]
    return float(np.median(known)) if known else 1.0


def kind_transform(calibration: Calibration, scale: float) -> Callable[[np.ndarray], np.ndarray]:
    """The increasing map from a kind's per-document score to its calibrated score, for one query.

    ``"scaled"``: the ``"gap"`` score divided by ``scale`` (> 0, :func:`pair_scale`); else the
    identity.
    """
    if calibration != "scaled":
        return lambda scores: scores
    return lambda scores: scores / scale


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
    scales: PairScales | None = None,
) -> list[FusedHit]:
    """Score every candidate exactly and merge all kinds into one list of the best ``k``.

    This ranks the candidates it is given; :func:`omniretrieve.topk.top_k` decides which
    candidates are needed for the result to be the top ``k`` over the whole store.

    Args:
        query: The query embedding (L2-normalised).
        candidates: Per-kind candidate lists with their stored vectors.
        k: How many hits to return.
        calibration: A name from :data:`CALIBRATIONS` (module docstring).
        stats: The corpus statistics (needed for ``"gap"`` and ``"scaled"``).
        query_kind: The query's kind, for its mean.
        query_parts: The query's part modalities (a combined query).
        prior_count: Shrinkage of the means.
        samples: Kind -> a fixed sample of its stored vectors: ``"scaled"`` computes its widths
            from them (:func:`pair_scales`) when ``scales`` is not given.
        scales: The widths of :func:`pair_scales`, computed once per store state (preferred).

    Returns:
        Hits by score descending; ties broken by raw cosine, then id.

    Raises:
        InvalidInputError: unknown calibration, or ``"gap"``/``"scaled"`` without statistics.
    """
    check_calibration(calibration)
    if calibration in ("gap", "scaled") and stats is None:
        raise InvalidInputError("stats", f"{calibration} calibration needs the corpus statistics")
    q = np.asarray(query, dtype=np.float64)
    if calibration == "scaled" and scales is None:
        assert stats is not None
        scales = pair_scales(samples or {}, stats, prior_count)
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
            mean = stats.mean(cand.kind, prior_count=prior_count)
            transform = kind_transform(calibration, pair_scale(scales, query_kind, cand.kind, query_parts))
            scores = transform(gap_scores(probe, vectors, None, mean))
        for i in range(len(cand.ids)):
            hits.append(FusedHit(cand.kind, i, cand.ids[i], float(scores[i]), float(cosines[i])))
    hits.sort(key=lambda h: (-h.score, -h.cosine, h.id))
    return hits[: max(k, 0)]


__all__ = [
    "CALIBRATIONS",
    "DEFAULT_CALIBRATION",
    "PRIOR_COUNT",
    "RRF_K",
    "SCALE_FLOOR",
    "TAIL_QUANTILE",
    "PairScales",
    "Calibration",
    "FusedHit",
    "KindCandidates",
    "ModalityStats",
    "center",
    "check_calibration",
    "cosine_scores",
    "fuse",
    "gap_scores",
    "kind_transform",
    "pair_scale",
    "pair_scales",
    "l2_normalize",
    "query_probe",
    "rrf_scores",
]
