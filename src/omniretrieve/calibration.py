"""Making scores of different modalities comparable, and fusing per-modality lists into one.

Pure numpy; the store (:mod:`omniretrieve.store`) feeds it candidates and keeps its statistics.

The problem: contrastive models (CLIP, CLAP, ...) place each modality in its own region of the
embedding space (the *modality gap*). Every caption is closer to every other caption than to any
image, so in one list over a mixed corpus a text query ranks all texts above all images, whatever
they show. Raw cosine scores are comparable within one modality only.

Calibrations (``calibration=`` on search):

* ``"gap"`` (default): post-hoc gap removal (GR-CLIP, Li et al. 2025, "Closing the Modality Gap
  for Mixed Modality Search"). For each document kind ``m`` the store keeps the mean ``mu_m`` of
  the stored (L2-normalised) embeddings of that kind, updated on every add, update and delete.
  A document vector ``d`` of kind ``m`` becomes ``d' = (d - mu_m) / |d - mu_m|``, the query
  ``q`` of kind ``k`` becomes ``q' = (q - mu_k) / |q - mu_k|``, and the score is ``q' . d'``:
  a cosine in ``[-1, 1]`` between gap-free directions, comparable across kinds. Means are
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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np

from omniretrieve.errors import InvalidInputError

Calibration: TypeAlias = Literal["gap", "rrf", "none"]
"""How scores of different kinds are made comparable; see the module docstring."""

CALIBRATIONS: tuple[Calibration, ...] = ("gap", "rrf", "none")

DEFAULT_CALIBRATION: Calibration = "gap"

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
) -> list[FusedHit]:
    """Score every candidate exactly and merge all kinds into one list of the best ``k``.

    Args:
        query: The query embedding (L2-normalised).
        candidates: Per-kind candidate lists with their stored vectors.
        k: How many hits to return.
        calibration: ``"gap"``, ``"rrf"`` or ``"none"`` (module docstring).
        stats: The corpus statistics (needed for ``"gap"``).
        query_kind: The query's kind, for its mean.
        query_parts: The query's part modalities (a combined query).
        prior_count: Shrinkage of the means.

    Returns:
        Hits by score descending; ties broken by raw cosine, then id.

    Raises:
        InvalidInputError: unknown calibration, or ``"gap"`` without statistics.
    """
    check_calibration(calibration)
    if calibration == "gap" and stats is None:
        raise InvalidInputError("stats", "gap calibration needs the corpus statistics")
    q = np.asarray(query, dtype=np.float64)
    q_mean = (
        stats.query_mean(query_kind, query_parts, prior_count=prior_count)
        if stats is not None and calibration == "gap"
        else None
    )
    q_centered = center(q, q_mean)
    hits: list[FusedHit] = []
    for cand in candidates:
        if len(cand.ids) == 0:
            continue
        vectors = np.atleast_2d(np.asarray(cand.vectors, dtype=np.float64))
        cosines = cosine_scores(q, vectors)
        if calibration == "none":
            scores = cosines
            order = np.arange(len(cand.ids))
        elif calibration == "gap":
            assert stats is not None
            scores = center(vectors, stats.mean(cand.kind, prior_count=prior_count)) @ q_centered
            order = np.arange(len(cand.ids))
        else:
            order = np.lexsort((np.asarray(cand.ids), -cosines))
            scores = np.empty(len(cand.ids))
            scores[order] = rrf_scores(len(cand.ids))
        for i in order:
            hits.append(FusedHit(cand.kind, int(i), cand.ids[int(i)], float(scores[i]), float(cosines[i])))
    hits.sort(key=lambda h: (-h.score, -h.cosine, h.id))
    return hits[: max(k, 0)]


__all__ = [
    "CALIBRATIONS",
    "DEFAULT_CALIBRATION",
    "PRIOR_COUNT",
    "RRF_K",
    "Calibration",
    "FusedHit",
    "KindCandidates",
    "ModalityStats",
    "center",
    "check_calibration",
    "cosine_scores",
    "fuse",
    "gap_scores",
    "l2_normalize",
    "rrf_scores",
]
