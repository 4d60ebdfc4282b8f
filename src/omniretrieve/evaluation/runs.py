"""Running a judged-query set through a :class:`~omniretrieve.store.Store` and measuring it.

The store is only used, never imported at run time: this module stays light to import.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from omniretrieve.calibration import DEFAULT_CALIBRATION, Calibration, check_calibration
from omniretrieve.evaluation.judged import JudgedQueries
from omniretrieve.evaluation.metrics import Run, check_k, evaluate

if TYPE_CHECKING:
    import numpy as np

    from omniretrieve.documents import Kind, SearchHit
    from omniretrieve.rerank import Reranker
    from omniretrieve.store import Store


@dataclass(frozen=True)
class JudgedRun:
    """What :func:`run_judged_queries` found.

    Attributes:
        run: Query id -> the judgments' names of the hits, best first (a :data:`Run`).
        hits: Query id -> the hits themselves.
    """

    run: dict[str, list[str]]
    hits: dict[str, list[SearchHit]]


@dataclass(frozen=True)
class UnknownJudgments:
    """What a judged set names that the store or the queries file does not hold.

    Judgments on a document that is not stored can never be found: every metric counts them as
    misses. Judgments on a query that is not in the queries file are never searched.

    Attributes:
        documents: Judged document names found neither as a store id nor as a stored file
            (through ``docs.json``, a path relative to the judgments, or a file stem there).
        queries: Query ids in the judgments that the queries file does not define.
        judged_documents: How many distinct documents the judgments name.
    """

    documents: tuple[str, ...]
    queries: tuple[str, ...]
    judged_documents: int

    @property
    def any(self) -> bool:
        """Whether anything is unknown."""
        return bool(self.documents or self.queries)


def find_unknown_judgments(store: Store, judged: JudgedQueries) -> UnknownJudgments:
    """Which judged documents are not in ``store`` and which judged queries are not defined.

    A name is known when it is a stored id, or names a file (by ``docs.json``, by a path relative
    to the judgments file, or by its stem in that folder) whose content is stored: the file is
    read and hashed as ``omniretrieve index`` does (ids are content hashes).
    """
    from omniretrieve.documents import content_sha256
    from omniretrieve.errors import OmniretrieveError
    from omniretrieve.media import from_path

    query_ids = {q.id for q in judged.queries}
    unknown_queries = tuple(sorted(q for q in judged.qrels if q not in query_ids))
    names = sorted(judged.judged_names)
    stored = store.get(names) if names else []
    paths_by_name = {name: path for path, name in judged.names_by_path.items()}
    unknown: list[str] = []
    for name, doc in zip(names, stored, strict=True):
        if doc is not None:
            continue
        path = _judged_file(name, paths_by_name, judged.base)
        try:
            found = path is not None and store.get([content_sha256(from_path(path))])[0] is not None
        except OmniretrieveError:
            found = False
        if not found:
            unknown.append(name)
    return UnknownJudgments(tuple(unknown), unknown_queries, len(names))


def _judged_file(name: str, paths_by_name: Mapping[str, Path], base: Path | None) -> Path | None:
    """The file a judged document name points at, if any."""
    if name in paths_by_name:
        return paths_by_name[name]
    if base is None:
        return None
    candidate = base / name
    if candidate.is_file():
        return candidate
    stems = sorted(p for p in base.glob(f"**/{name}.*") if p.is_file()) if "/" not in name else []
    return stems[0] if stems else None


def embed_judged_queries(store: Store, judged: JudgedQueries) -> dict[str, np.ndarray]:
    """Embed every single-part query once, in one batch, so several runs can reuse the vectors.

    Combined queries are left out (they are searched by item).

    Raises:
        OmniretrieveError: a query could not be embedded (e.g. its image file is missing).
    """
    todo = [q for q in judged.queries if "+" not in q.modality]
    if not todo:
        return {}
    results = store.embedder.embed_each([q.item for q in todo], role="query")
    vectors: dict[str, np.ndarray] = {}
    for q, result in zip(todo, results, strict=True):
        if result.error is not None:
            raise result.error
        if result.vector is not None:
            vectors[q.id] = result.vector
    return vectors


def run_judged_queries(
    store: Store,
    judged: JudgedQueries,
    *,
    calibration: Calibration = DEFAULT_CALIBRATION,
    k: int = 10,
    reranker: Reranker | None = None,
    rerank_top_n: int | None = None,
    query_vectors: Mapping[str, np.ndarray] | None = None,
    only: Collection[str] | None = None,
) -> JudgedRun:
    """Search every query of ``judged`` (or those in ``only``) in ``store``; return the run and the hits.

    Each query searches its :attr:`JudgedQuery.kinds`. A query with a vector in ``query_vectors``
    (from :func:`embed_judged_queries`) is searched by that vector, the same search without
    embedding the query again; the others, and every reranked search, by item.

    Raises:
        InvalidInputError: a bad ``calibration`` or ``k``.
        OmniretrieveError: a query could not be embedded or searched.
    """
    check_calibration(calibration)
    vectors = query_vectors or {}
    run: dict[str, list[str]] = {}
    hits_by_query: dict[str, list[SearchHit]] = {}
    for q in judged.queries:
        if only is not None and q.id not in only:
            continue
        vector = vectors.get(q.id)
        if vector is not None and reranker is None:
            hits = store.search_vector(
                vector,
                k,
                query_modality=cast("Kind", q.modality),
                calibration=calibration,
                modalities=q.kinds,
            )
        else:
            hits = store.search(
                q.item,
                k,
                calibration=calibration,
                modalities=q.kinds,
                reranker=reranker,
                rerank_top_n=rerank_top_n,
            )
        hits_by_query[q.id] = hits
        run[q.id] = [judged.name_of(h) for h in hits]
    return JudgedRun(run, hits_by_query)


def evaluate_by_group(judged: JudgedQueries, run: Run, k: int = 10) -> dict[str, dict[str, float]]:
    """Mean metrics (:func:`evaluate`) per query group and over all queries (``"all"``) of a run.

    Only the queries in ``run`` count, so a run of some queries is evaluated on those.
    """
    out: dict[str, dict[str, float]] = {}
    for name, ids in judged.groups().items():
        ran = [i for i in ids if i in run]
        if ran:
            out[name] = evaluate(run, {i: judged.qrels.get(i, {}) for i in ran}, k)
    ids_all = [q.id for q in judged.queries if q.id in run]
    out["all"] = evaluate(run, {i: judged.qrels.get(i, {}) for i in ids_all}, k)
    return out


def evaluate_judged_queries(
    store: Store,
    judged: JudgedQueries,
    *,
    calibrations: Sequence[Calibration] = ("none", "rrf", "gap", "auto"),
    k: int = 10,
    reranker: Reranker | None = None,
    rerank_top_n: int | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Search a judged set in a store with each calibration (and a reranker) and measure it.

    The queries are embedded once and reused by every calibration. With a ``reranker``, one more
    list reranks the ``"gap"`` results (or the last calibration's), under ``"<calibration>+rerank"``.

    Returns:
        ``{calibration: {group or "all": {"ndcg@k": ..., "recall@k": ..., "mrr@k": ...}}}``.

    Raises:
        InvalidInputError: a bad calibration or ``k``.
        OmniretrieveError: a query could not be embedded or searched.
    """
    check_k(k)
    for calibration in calibrations:
        check_calibration(calibration)
    vectors = embed_judged_queries(store, judged)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for calibration in calibrations:
        found = run_judged_queries(store, judged, calibration=calibration, k=k, query_vectors=vectors)
        out[calibration] = evaluate_by_group(judged, found.run, k)
    if reranker is not None and calibrations:
        base = "gap" if "gap" in calibrations else calibrations[-1]
        found = run_judged_queries(
            store, judged, calibration=base, k=k, reranker=reranker, rerank_top_n=rerank_top_n
        )
        out[f"{base}+rerank"] = evaluate_by_group(judged, found.run, k)
    return out


__all__ = [
    "JudgedRun",
    "UnknownJudgments",
    "embed_judged_queries",
    "evaluate_by_group",
    "evaluate_judged_queries",
    "find_unknown_judgments",
    "run_judged_queries",
]
