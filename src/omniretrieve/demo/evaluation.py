"""The demo world as a judged-query set: index its corpus, run its queries, measure them.

The same path as ``omniretrieve eval`` on files (:mod:`omniretrieve.evaluation`), on the world held
in memory: :func:`demo_judged_queries` turns a :class:`~omniretrieve.demo.world.DemoWorld` into
:class:`~omniretrieve.evaluation.JudgedQueries`, whose documents are named by the world's ids
(:func:`index_demo_world` stores them under those ids).

Example::

    from omniretrieve import Store, load_embedder
    from omniretrieve.demo import make_world
    from omniretrieve.demo.evaluation import evaluate_demo, index_demo_world

    world = make_world(seed=0)
    with Store(load_embedder("demo"), path="demo-store") as store:
        index_demo_world(store, world)
        evaluate_demo(store, world)   # {calibration: {group: {"ndcg@10": ..., ...}}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from omniretrieve.calibration import CALIBRATIONS, Calibration, check_calibration
from omniretrieve.errors import InvalidInputError
from omniretrieve.evaluation import (
    JudgedQueries,
    JudgedQuery,
    evaluate,
    evaluate_judged_queries,
    run_judged_queries,
)

if TYPE_CHECKING:
    from omniretrieve.demo.world import DemoQuery, DemoWorld
    from omniretrieve.store import Store, WriteResult

DEMO_GROUPS: dict[str, tuple[str, str]] = {
    "text->mixed": ("text", "mixed"),
    "text->image": ("text", "image"),
    "image->image": ("image", "image"),
}
"""The demo world's query groups: name -> (query modality, target)."""


def index_demo_world(store: Store, world: DemoWorld, *, batch_size: int = 64) -> list[WriteResult]:
    """Add the demo world's corpus to a store, under the world's document ids.

    Metadata: ``{"scene": "red-circle-top_left" | "none", "role": "caption" | "image" | "distractor"}``.
    """
    from omniretrieve.types import Image

    items: list[Any] = []
    ids: list[str | None] = []
    metas: list[Mapping[str, Any] | None] = []
    for d in world.docs:
        items.append(Image(d.image) if d.image is not None else d.text)
        ids.append(d.id)
        role = "image" if d.image is not None else ("caption" if d.scene is not None else "distractor")
        metas.append({"scene": d.scene.key if d.scene is not None else "none", "role": role})
    return store.upsert(items, ids=ids, metadatas=metas, batch_size=batch_size)


def _demo_queries(world: DemoWorld, group: str | None) -> list[DemoQuery]:
    if group is None:
        return list(world.queries)
    if group not in DEMO_GROUPS:
        raise InvalidInputError(f"group={group!r}", f"must be one of {list(DEMO_GROUPS)}")
    modality, target = DEMO_GROUPS[group]
    return [q for q in world.queries if q.modality == modality and q.target == target]


def demo_qrels(world: DemoWorld, group: str | None = None) -> dict[str, dict[str, int]]:
    """The world's judgments, for one query group of :data:`DEMO_GROUPS` or all."""
    return {q.id: dict(q.judgments) for q in _demo_queries(world, group)}


def demo_judged_queries(world: DemoWorld, group: str | None = None) -> JudgedQueries:
    """The world's queries (of one group of :data:`DEMO_GROUPS`, or all) as a judged set.

    Image queries hold the world's images in memory; documents are named by the world's ids.
    """
    from omniretrieve.types import Image

    queries = tuple(
        JudgedQuery(q.id, Image(q.image) if q.image is not None else q.text or "", q.modality, q.target)
        for q in _demo_queries(world, group)
    )
    return JudgedQueries(queries, demo_qrels(world, group))


def demo_run(
    store: Store, world: DemoWorld, *, calibration: Calibration = "gap", k: int = 10, group: str | None = None
) -> dict[str, list[str]]:
    """Search every demo query (of one group, or all) and return the ranked ids (a run).

    Queries with target ``"image"`` search the image documents only; ``"mixed"`` the whole store.
    """
    check_calibration(calibration)
    return run_judged_queries(store, demo_judged_queries(world, group), calibration=calibration, k=k).run


def evaluate_demo(
    store: Store,
    world: DemoWorld,
    *,
    calibrations: Sequence[Calibration] = CALIBRATIONS,
    groups: Sequence[str] = tuple(DEMO_GROUPS),
    k: int = 10,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics of the demo world's queries through a store that holds its corpus.

    Index the corpus first with :func:`index_demo_world`. Every query is embedded once and searched
    with each calibration (:func:`~omniretrieve.evaluation.evaluate_judged_queries`).

    Returns:
        ``{calibration: {group: {"ndcg@k", "recall@k", "mrr@k"}}}``.
    """
    for group in groups:
        _demo_queries(world, group)  # an unknown group fails before any search
    wanted = {q.id for group in groups for q in _demo_queries(world, group)}
    everything = demo_judged_queries(world)
    judged = JudgedQueries(
        tuple(q for q in everything.queries if q.id in wanted),
        {qid: grades for qid, grades in everything.qrels.items() if qid in wanted},
    )
    metrics = evaluate_judged_queries(store, judged, calibrations=calibrations, k=k)
    nothing = evaluate({}, {}, k)  # a group without queries
    return {c: {g: metrics[c].get(g, nothing) for g in groups} for c in calibrations}


__all__ = [
    "DEMO_GROUPS",
    "demo_judged_queries",
    "demo_qrels",
    "demo_run",
    "evaluate_demo",
    "index_demo_world",
]
