"""Searching the store: candidates per kind, fused into one list, optionally reranked.

A search embeds the query and centres it on its kind's mean (``calibration="gap"``); each kind's
collection that holds documents returns its ``max(2k, 20)`` best candidates for the centred query,
with their stored vectors (the kinds are queried concurrently: Chroma releases the GIL); every
candidate is scored exactly in numpy and the lists are merged by
:func:`omniretrieve.calibration.fuse`. A reranker, when given, then reorders the best
``rerank_top_n`` fused candidates. Searching one collection per kind, instead of filtering one
collection by modality, is what keeps this fast: see ``benchmarks/results/search_latency.json``
for the time of a calibrated search against one plain Chroma query and a filtered one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import numpy as np

from omniretrieve.calibration import (
    Calibration,
    KindCandidates,
    ModalityStats,
    center,
    check_calibration,
    fuse,
)
from omniretrieve.documents import KINDS, Kind, SearchHit, kind_of_modalities
from omniretrieve.errors import InvalidInputError, OmniretrieveError, StoreError
from omniretrieve.store._filters import chroma_where
from omniretrieve.store._records import Records
from omniretrieve.store._schema import Collections
from omniretrieve.store._statistics import Statistics
from omniretrieve.types import Combined, NormalizedItem
from omniretrieve.vectors import check_vector

if TYPE_CHECKING:
    from omniretrieve.rerank import Reranker

logger = logging.getLogger(__name__)

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

_Found: TypeAlias = tuple[KindCandidates, dict[str, tuple[Any, str]]]
"""One kind's candidates, and id -> (metadata, text) of each."""


def query_kind(item: NormalizedItem) -> tuple[Kind, tuple[str, ...]]:
    """The kind of a query item and its part modalities."""
    if isinstance(item, Combined):
        mods = item.modalities
        return kind_of_modalities(mods), tuple(mods)
    return item.modality, (item.modality,)


def candidates_wanted(k: int, reranker: Reranker | None, rerank_top_n: int | None) -> int:
    """How many fused hits a search needs: ``k``, or what the reranker should see.

    Raises:
        InvalidInputError: ``rerank_top_n`` is not a positive int.
    """
    if rerank_top_n is not None and (
        not isinstance(rerank_top_n, int) or isinstance(rerank_top_n, bool) or rerank_top_n < 1
    ):
        raise InvalidInputError(f"rerank_top_n={rerank_top_n!r}", "must be a positive int")
    if reranker is None:
        return k
    return max(k, rerank_top_n if rerank_top_n is not None else DEFAULT_RERANK_TOP_N)


class Search:
    """Calibrated, fused search over one store's kinds.

    Args:
        collections: The store's collections.
        statistics: Its statistics (the means ``"gap"`` centres on).
        records: Records -> documents.
        prior_count: Shrinkage of the per-kind means.
    """

    def __init__(
        self, collections: Collections, statistics: Statistics, records: Records, prior_count: float
    ) -> None:
        self.collections = collections
        self.statistics = statistics
        self.records = records
        self.prior_count = prior_count
        self.dimension = collections.dimension
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """Stop the query threads. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def vector(
        self,
        vector: Any,
        k: int,
        query_modality: Kind,
        parts: Sequence[str],
        calibration: Calibration,
        where: Mapping[str, Any] | None,
        modalities: Sequence[Kind] | None,
    ) -> list[SearchHit]:
        """The best ``k`` hits for a query vector of kind ``query_modality``, fused over ``modalities``.

        Raises:
            InvalidInputError: bad k, calibration, kinds or filter.
            InvalidVectorError: the vector is not finite, not of the store's dimension, or zero.
            StoreError: Chroma failed.
        """
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k={k!r}", "must be a positive int")
        calibration = check_calibration(calibration)
        kinds = _check_kinds(query_modality, modalities)
        q = check_vector(vector, self.dimension, "query vector")
        cw = chroma_where(where)
        stats = self.statistics.current()
        jobs = self._jobs(stats, kinds)
        if not jobs:
            return []
        probe = q.astype(np.float64)
        if calibration == "gap":
            centred = center(q, stats.query_mean(query_modality, parts, prior_count=self.prior_count))
            probe = centred if np.any(centred) else probe
        found = self._candidates(
            jobs, probe.astype(np.float32), max(CANDIDATES_FACTOR * k, CANDIDATES_MIN), cw
        )
        fused = fuse(
            q,
            [c for c, _ in found],
            k,
            calibration=calibration,
            stats=stats,
            query_kind=query_modality,
            query_parts=parts,
            prior_count=self.prior_count,
        )
        extras = {c.kind: extra for c, extra in found}
        return [
            SearchHit(
                document=self.records.document(h.id, *extras[h.kind][h.id]),
                score=h.score,
                cosine=h.cosine,
                modality=cast(Kind, h.kind),
            )
            for h in fused
        ]

    def rerank(
        self, reranker: Reranker, query: NormalizedItem, hits: list[SearchHit], k: int
    ) -> list[SearchHit]:
        """The best ``k`` of ``hits`` by the reranker; a hit whose content is unavailable is kept last, unscored."""
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

    def _jobs(self, stats: ModalityStats, kinds: Sequence[Kind]) -> list[tuple[Kind, Any, int]]:
        """(kind, collection, count) of every kind searched that holds documents."""
        jobs: list[tuple[Kind, Any, int]] = []
        for kind in kinds:
            count = stats.count(kind)
            col = self.collections.kind(kind) if count > 0 else None
            if col is not None:
                jobs.append((kind, col, count))
        return jobs

    def _candidates(
        self, jobs: list[tuple[Kind, Any, int]], probe: np.ndarray, n: int, where: dict[str, Any] | None
    ) -> list[_Found]:
        """Each kind's best ``n`` for ``probe``, with vectors, metadata and texts (kinds queried concurrently)."""

        def run(job: tuple[Kind, Any, int]) -> _Found:
            kind, col, count = job
            got = col.query(
                query_embeddings=[probe],
                n_results=min(n, count),
                where=where,
                include=["embeddings", "metadatas", "documents"],
            )
            ids = list(got["ids"][0])
            vectors = np.asarray(got["embeddings"][0], dtype=np.float32).reshape(len(ids), self.dimension)
            extra = {i: (m, d) for i, m, d in zip(ids, got["metadatas"][0], got["documents"][0], strict=True)}
            return KindCandidates(kind, ids, vectors), extra

        try:
            if len(jobs) == 1:
                return [run(jobs[0])]
            if self._pool is None:  # Chroma releases the GIL while it searches
                self._pool = ThreadPoolExecutor(
                    max_workers=len(KINDS) - 1, thread_name_prefix="omniretrieve-search"
                )
            futures = [self._pool.submit(run, job) for job in jobs[1:]]
            return [run(jobs[0])] + [f.result() for f in futures]
        except OmniretrieveError:
            raise
        except Exception as exc:
            raise StoreError(f"search failed in store {self.collections.describe()}: {exc}") from exc


def _check_kinds(query_modality: Any, modalities: Sequence[Any] | None) -> tuple[Kind, ...]:
    """The kinds to search, once the query's kind and ``modalities`` are checked."""
    if query_modality not in KINDS:
        raise InvalidInputError(f"query_modality={query_modality!r}", f"must be one of {list(KINDS)}")
    kinds = tuple(KINDS if modalities is None else modalities)
    bad = [m for m in kinds if m not in KINDS]
    if bad:
        raise InvalidInputError(f"modalities={list(kinds)!r}", f"{bad[0]!r} is not one of {list(KINDS)}")
    return kinds


__all__ = [
    "CANDIDATES_FACTOR",
    "CANDIDATES_MIN",
    "DEFAULT_RERANK_TOP_N",
    "Search",
    "candidates_wanted",
    "query_kind",
]
