"""Searching the store: the exact top-k of one calibrated list over every kind, optionally reranked.

A search embeds the query and hands every kind's collection that holds documents to
:func:`omniretrieve.topk.top_k` as a nearest-neighbour fetch (Chroma's ``query`` for the probe:
the query itself, or centred on its kind's mean under ``"gap"``; with the
``where`` filter, so a fetch returns the filtered kind's nearest). ``top_k`` first fetches each
kind's ``k + 1`` nearest (``max(2k, 20)`` under ``"gap"``:
:func:`omniretrieve.topk.first_fetch_size`; the kinds concurrently: Chroma releases the GIL),
scores every fetched vector exactly in numpy, and widens the fetch of a kind, doubling it, until a
bound proves that no unfetched document can enter the top ``k``: the hits are the ``k`` best by
the documented score over the whole store (as exact as Chroma's index), and ``search(k)`` is the
first ``k`` of ``search(k2)`` for ``k < k2``. A Chroma call costs mostly a fixed overhead, and
reading records (metadata and text) costs more per result than reading vectors, so a kind's
first fetch reads the records of what it returns in the same query, a widening fetch reads
vectors only, and one read per kind completes the hits whose records are still missing. What
does not depend on the query (each kind's sample, what
``"auto"`` applies, the bounds ``max d . mu``) is computed once per store state by
:class:`omniretrieve.store._samples.Samples`. A reranker, when given, then reorders the best
``rerank_top_n`` hits. Searching one collection per kind, instead of filtering one collection by
modality, is what keeps this fast: see ``benchmarks/results/search_latency.json`` for the time of
the default search against one plain Chroma query and a filtered one, and
``benchmarks/results/calibration.json`` for the agreement with brute force through the store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import numpy as np

from omniretrieve.calibration import Calibration, FusedHit, ModalityStats, check_calibration
from omniretrieve.documents import KINDS, Kind, SearchHit, kind_of_modalities
from omniretrieve.errors import InvalidInputError, OmniretrieveError, StoreError
from omniretrieve.rerank.fusion import rerank_candidates
from omniretrieve.store._filters import chroma_where
from omniretrieve.store._records import Records
from omniretrieve.store._samples import Samples, StoreSamples
from omniretrieve.store._schema import Collections
from omniretrieve.store._statistics import Statistics
from omniretrieve.topk import FIRST_FETCH_MIN, ArrayIndex, KindSource, TopKCost, top_k
from omniretrieve.types import Combined, NormalizedItem
from omniretrieve.vectors import check_vector

if TYPE_CHECKING:
    from omniretrieve.rerank import Reranker

logger = logging.getLogger(__name__)

CANDIDATES_MIN = FIRST_FETCH_MIN
"""Under ``"gap"`` each kind's first fetch holds at least this many candidates
(:data:`omniretrieve.topk.FIRST_FETCH_MIN`; ``k + 1`` under the other calibrations:
:func:`omniretrieve.topk.first_fetch_size`).

Only the cost depends on it: :func:`omniretrieve.topk.top_k` widens a kind's fetch until a bound
proves that no unfetched document can enter the top ``k``."""

CANDIDATES_FACTOR = 2
"""... and at least this many times the number of hits asked for (under ``"gap"``)."""

DEFAULT_RERANK_TOP_N = 20
"""Fused candidates handed to a reranker when ``rerank_top_n`` is not given (at least ``k``)."""

_ATTEMPTS = 3
"""Searches tried when hits are deleted between their fetch and the read of their records."""

_Records: TypeAlias = dict[str, tuple[Any, str | None]]
"""id -> (metadata, text) of the documents of one kind read during a search."""

_TEXT_KINDS: tuple[Kind, ...] = ("text", "combined")
"""The kinds whose records can hold a text (a document of any other kind has no text part)."""


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
    """Calibrated, exact top-k search over one store's kinds (see the module docstring).

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
        self.samples = Samples(collections, prior_count)
        self.last_cost: TopKCost | None = None
        """What the latest search cost (fetches, vectors fetched, rounds): for benchmarks and tests."""
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
        try:
            for _ in range(_ATTEMPTS):
                found = self._attempt(q, k, query_modality, parts, calibration, cw, kinds)
                if found is not None:
                    return found
        except OmniretrieveError:
            raise
        except Exception as exc:
            raise StoreError(f"search failed in store {self.collections.describe()}: {exc}") from exc
        raise StoreError(
            f"search failed in store {self.collections.describe()}: documents it found were deleted "
            f"before their records could be read, {_ATTEMPTS} times in a row; search again"
        )

    def _attempt(
        self,
        q: np.ndarray,
        k: int,
        query_modality: Kind,
        parts: Sequence[str],
        calibration: Calibration,
        where: dict[str, Any] | None,
        kinds: Sequence[Kind],
    ) -> list[SearchHit] | None:
        """One search: the hits, or ``None`` when a hit's record was deleted before it could be read."""
        stats = self.statistics.current()
        jobs = self._jobs(stats, kinds)
        if not jobs:
            return []
        state = self.samples.current(stats)
        records: dict[str, _Records] = {kind: {} for kind, _, _ in jobs}
        sources = [self._source(kind, col, count, where, state, records[kind]) for kind, col, count in jobs]
        executor = self._executor() if len(jobs) > 1 else None
        cost = TopKCost()
        hits = top_k(
            q,
            sources,
            k,
            calibration=calibration,
            stats=stats,
            query_kind=query_modality,
            query_parts=parts,
            prior_count=self.prior_count,
            auto=state.auto,
            executor=executor,
            cost=cost,
        )
        self.last_cost = cost
        _complete(jobs, hits, records, executor)
        if any(h.id not in records[h.kind] for h in hits):
            return None
        return [
            SearchHit(
                document=self.records.document(h.id, *records[h.kind][h.id]),
                score=h.score,
                cosine=h.cosine,
                modality=cast(Kind, h.kind),
            )
            for h in hits
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
        ranked: list[Any] = []
        if items:  # a reranker that fuses gets our scores
            ranked = rerank_candidates(reranker, query, items, [hits[i].score for i in positions])
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

    def _source(
        self,
        kind: Kind,
        col: Any,
        count: int,
        where: dict[str, Any] | None,
        state: StoreSamples,
        records: _Records,
    ) -> KindSource:
        """One kind as :func:`top_k` fetches it.

        A small kind is fetched from its exact in-memory index (:mod:`._samples`; the ``where``
        filter applied by one id query); any other from Chroma. The kind's first fetch also reads
        the metadata and text of what it returns into ``records`` (the hits are mostly among
        them; in the same query they cost less than a read of their own), a widening fetch ids and
        vectors only (:func:`_complete` reads what the hits lack). ``count`` (the kind's size) is
        an upper bound under a ``where`` filter: a fetch that returns fewer than asked marks the
        kind exhausted.
        """
        bound = state.max_dot_mean.get(kind)
        index = state.exact.get(kind)
        if index is not None:
            if where is not None:
                allowed = set(col.get(where=where, include=[])["ids"])
                rows = [n for n, i in enumerate(index.ids) if i in allowed]
                index = ArrayIndex([index.ids[n] for n in rows], index.vectors[rows])
            return KindSource(kind, len(index), index.fetch, max_dot_mean=bound)

        first = [True]

        def fetch(probe: np.ndarray, n: int) -> tuple[list[str], np.ndarray]:
            n = min(n, count)
            if n <= 0:
                return [], np.zeros((0, self.dimension), dtype=np.float32)
            inline, first[0] = first[0], False
            include = ["embeddings", *_record_fields(kind)] if inline else ["embeddings"]
            got = col.query(query_embeddings=[probe], n_results=n, where=where, include=include)
            ids = list(got["ids"][0])
            vectors = np.asarray(got["embeddings"][0], dtype=np.float32).reshape(len(ids), self.dimension)
            if inline:
                _keep(records, ids, got["metadatas"][0], got["documents"] and got["documents"][0])
            return ids, vectors

        return KindSource(kind, count, fetch, max_dot_mean=bound)

    def _executor(self) -> ThreadPoolExecutor:
        """The threads the kinds are fetched on (Chroma releases the GIL while it searches)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=len(KINDS) - 1, thread_name_prefix="omniretrieve-search"
            )
        return self._pool


def _complete(
    jobs: Sequence[tuple[Kind, Any, int]],
    hits: Sequence[FusedHit],
    records: Mapping[str, _Records],
    executor: ThreadPoolExecutor | None,
) -> None:
    """Read the metadata and text of the hits ``records`` lacks.

    One read per kind that lacks some (concurrently on ``executor``); a hit deleted since it was
    found stays missing.
    """
    reads = []
    for kind, col, _ in jobs:
        missing = [h.id for h in hits if h.kind == kind and h.id not in records[kind]]
        if missing:
            reads.append((kind, records[kind], col, missing))
    if executor is not None and len(reads) > 1:
        futures = [executor.submit(_read, *read) for read in reads[1:]]
        _read(*reads[0])
        for future in futures:
            future.result()
    else:
        for read in reads:
            _read(*read)


def _read(kind: Kind, records: _Records, col: Any, ids: list[str]) -> None:
    """Add the (metadata, text) of the stored records of ``ids`` to ``records``."""
    got = col.get(ids=ids, include=_record_fields(kind))
    _keep(records, got["ids"], got["metadatas"], got["documents"])


def _record_fields(kind: Kind) -> list[str]:
    """What Chroma returns of a record of ``kind``: its metadata, and its text where it can have one.

    Only a kind with a text part (``"text"``, ``"combined"``) keeps text in Chroma's document field
    (:mod:`._records`); reading the empty field of the others costs as much as a text.
    """
    return ["metadatas", "documents"] if kind in _TEXT_KINDS else ["metadatas"]


def _keep(
    records: _Records, ids: Sequence[str], metadatas: Sequence[Any], texts: Sequence[str] | None
) -> None:
    """Add ``id -> (metadata, text)`` to ``records`` (``texts`` ``None``: no text read)."""
    if texts is None:
        records.update((i, (meta, None)) for i, meta in zip(ids, metadatas, strict=True))
    else:
        records.update(zip(ids, zip(metadatas, texts, strict=True), strict=True))


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
