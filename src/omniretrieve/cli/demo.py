"""``omniretrieve demo``: the tour. Build a world of colored shapes, index it, search it, write a gallery.

The world is written as files and then handled as any user folder is: ``index`` adds the corpus and
the judged queries are read and run through :mod:`omniretrieve.evaluation`, as ``eval`` does.
Two splits: the easy one-object world, and the hard two-object world
(:mod:`omniretrieve.demo.hard_world`) where the bi-encoder confuses "a red circle left of a blue
square" with its colors or sides swapped. Each is searched raw, calibrated, and calibrated +
reranked by the demo reranker shipped in the package, its scores fused with the first stage's at
the weight it carries (``first_stage_weight``, chosen on validation queries and recorded in its
folder; the figures are in ``benchmarks/results/rerank.json``). ``--reranker`` picks another, which
fuses at its own default weight: the one a local directory records in
``omniretrieve_reranker.json``, else 0 (the reranker alone).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from omniretrieve.calibration import DEFAULT_CALIBRATION
from omniretrieve.cli import _render
from omniretrieve.cli import _render_demo as _demo_render
from omniretrieve.cli._shared import (
    HostOpt,
    ModelOpt,
    PortOpt,
    RerankerOpt,
    StoreOpt,
    StoreTarget,
    errors,
    load_reranker,
    loader_of,
    open_store,
)
from omniretrieve.cli.index import IndexReport, collect_files, index_files

if TYPE_CHECKING:
    import numpy as np
    from rich.console import Console

    from omniretrieve.calibration import Calibration
    from omniretrieve.documents import SearchHit
    from omniretrieve.evaluation import JudgedQueries, JudgedQuery
    from omniretrieve.gallery import GalleryQuery
    from omniretrieve.media import MediaLoader
    from omniretrieve.rerank import Reranker
    from omniretrieve.store import Store

DEFAULT_DEMO_FOLDER = "omniretrieve-demo"
"""Where ``omniretrieve demo`` writes its world, store and gallery unless told otherwise."""

SHOWCASE_GROUPS: dict[str, str] = {
    "text->mixed": "text -> mixed corpus (captions, images, distractors)",
    "text->image": "text -> images",
    "image->image": "image -> images",
}
"""The query groups the demo shows one query of, in this order, with their titles."""

HARD_SHOWCASE_GROUPS: dict[str, str] = {
    "text->image": "HARD text -> images (two objects: binding and relations)",
    "text->mixed": "HARD text -> mixed corpus (two objects)",
}
"""The hard split's query groups the demo shows one query of, with their titles."""

COMPARED: tuple[Calibration, ...] = ("none", "rrf", "gap", "auto")
"""The calibrations the demo measures over all queries, in column order."""

DEFAULT_RERANKER = "demo"
"""The reranker the demo uses unless ``--reranker`` names another: the one shipped in the package."""


def _fusion_weight(reranker: Reranker | None) -> float:
    """The reranker's first-stage weight (0: it ranks alone)."""
    return float(getattr(reranker, "first_stage_weight", 0.0) or 0.0)


def _reranked(
    store: Store, judged: JudgedQueries, reranker: Reranker, *, k: int, only: list[str] | None = None
) -> tuple[dict[str, list[str]], dict[str, list[SearchHit]]]:
    """The reranked run and hits, through the store (which fuses at the reranker's own weight)."""
    from omniretrieve.demo.rerank_eval import RERANK_TOP_N
    from omniretrieve.evaluation import run_judged_queries

    found = run_judged_queries(
        store,
        judged,
        calibration=DEFAULT_CALIBRATION,
        k=k,
        reranker=reranker,
        rerank_top_n=RERANK_TOP_N,
        only=only,
    )
    return found.run, found.hits


def _showcase(judged: JudgedQueries, groups: dict[str, str] = SHOWCASE_GROUPS) -> list[JudgedQuery]:
    """One query of each of ``groups``, in its order."""
    chosen: list[JudgedQuery] = []
    for group in groups:
        found = next((q for q in judged.queries if q.group == group), None)
        if found is not None:
            chosen.append(found)
    return chosen


def _showcase_query(
    store: Store,
    judged: JudgedQueries,
    q: JudgedQuery,
    *,
    vectors: dict[str, np.ndarray],
    k: int,
    show: int,
    reranker: Reranker | None,
    loader: MediaLoader,
    out: Console,
    titles: dict[str, str] = SHOWCASE_GROUPS,
) -> GalleryQuery:
    """Search one query raw, calibrated (and reranked); print the lists and their nDCG; return the gallery part."""
    from omniretrieve.evaluation import ndcg_at_k, run_judged_queries

    grades = judged.qrels.get(q.id, {})
    lists: list[tuple[str, list[SearchHit], list[str]]] = []
    raw_and_calibrated: tuple[Calibration, ...] = ("none", DEFAULT_CALIBRATION)
    for calib in raw_and_calibrated:
        found = run_judged_queries(store, judged, calibration=calib, k=k, query_vectors=vectors, only=[q.id])
        lists.append((_render.list_title(calib), found.hits[q.id], found.run[q.id]))
    if reranker is not None:
        run, hits = _reranked(store, judged, reranker, k=k, only=[q.id])
        weight = _fusion_weight(reranker)
        fused = f", fused {weight:g}" if weight > 0 else ""
        lists.append((f"reranked ({DEFAULT_CALIBRATION} + reranker{fused})", hits[q.id], run[q.id]))
    ndcgs = [ndcg_at_k(names, grades, k) for _, _, names in lists]
    title = titles.get(q.group, q.group)
    text = q.item if isinstance(q.item, str) else None
    source = None if text is not None else str(getattr(q.item, "source", ""))
    shown = repr(text) if text is not None else f"image {source}"
    _demo_render.print_showcase(
        out, title=title, query=shown, lists=lists, grades=grades, ndcgs=ndcgs, k=k, show=show
    )
    return _demo_render.showcase_gallery_query(
        title=title,
        text=text,
        image_source=source,
        lists=lists,
        grades=grades,
        ndcgs=ndcgs,
        k=k,
        loader=loader,
    )


def _split(
    store: Store,
    judged: JudgedQueries,
    *,
    groups: dict[str, str],
    k: int,
    show: int,
    reranker: Reranker | None,
    out: Console,
) -> tuple[list[GalleryQuery], dict[str, dict[str, dict[str, float]]]]:
    """Showcase one query per group, then measure every query raw, calibrated (each) and reranked."""
    from omniretrieve.evaluation import embed_judged_queries, evaluate_by_group, run_judged_queries

    loader = loader_of(store)
    vectors = embed_judged_queries(store, judged)
    gallery_queries = [
        _showcase_query(
            store,
            judged,
            q,
            vectors=vectors,
            k=k,
            show=show,
            reranker=reranker,
            loader=loader,
            out=out,
            titles=groups,
        )
        for q in _showcase(judged, groups)
    ]
    results: dict[str, dict[str, dict[str, float]]] = {
        calib: evaluate_by_group(
            judged, run_judged_queries(store, judged, calibration=calib, k=k, query_vectors=vectors).run, k
        )
        for calib in COMPARED
    }
    if reranker is not None:
        reranked, _ = _reranked(store, judged, reranker, k=k)
        results[_demo_render.RERANKED_COLUMN] = evaluate_by_group(judged, reranked, k)
    return gallery_queries, results


def _demo_root(out_dir: Path | None, tmp: bool) -> Path:
    if tmp:
        root = Path(tempfile.mkdtemp(prefix="omniretrieve-demo-"))
    else:
        root = out_dir if out_dir is not None else Path(DEFAULT_DEMO_FOLDER)
    root.mkdir(parents=True, exist_ok=True)
    return root


def demo(
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help=f"Folder for the world, store and gallery (default ./{DEFAULT_DEMO_FOLDER})."
        ),
    ] = None,
    tmp: Annotated[bool, typer.Option("--tmp", help="Use a fresh temporary folder instead.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the demo world.")] = 0,
    k: Annotated[int, typer.Option("-k", min=1, help="Results per list and metric cut-off.")] = 10,
    show: Annotated[int, typer.Option("--show", min=1, help="Rows shown per query table.")] = 5,
    model: ModelOpt = None,
    reranker: RerankerOpt = None,
    store_dir: StoreOpt = None,
    chroma_host: HostOpt = None,
    chroma_port: PortOpt = 8000,
) -> None:
    """The tour: worlds of colored shapes (easy and hard), indexed, searched raw, calibrated and reranked; a gallery."""
    from omniretrieve.demo.hard_world import make_hard_world
    from omniretrieve.demo.world import make_world
    from omniretrieve.evaluation import load_judged_queries

    out, err = _render.console(), _render.console(stderr=True)
    with errors(err):
        started = time.perf_counter()
        root = _demo_root(out_dir, tmp)
        target = StoreTarget.of(
            store_dir if store_dir is not None or chroma_host else root / "store", chroma_host, chroma_port
        )
        world = make_world(seed)
        world_dir = world.write(root / "world")
        _demo_render.print_demo_intro(
            out,
            documents=len(world.docs),
            texts=sum(1 for d in world.docs if d.modality == "text"),
            queries=len(world.queries),
            world_dir=world_dir,
        )
        rr = load_reranker(reranker or DEFAULT_RERANKER)  # fuses at its own weight (0: alone)
        files, _, ignored = collect_files([world_dir / "corpus"])
        judged = load_judged_queries(world_dir)
        with open_store(target, model, err=err) as store:
            _demo_render.print_indexing(out, world_dir / "corpus", target.describe())
            report = index_files(store, files, err=err, report=IndexReport(ignored=ignored))
            _render.print_index_summary(report, out)
            gallery_queries, results = _split(
                store, judged, groups=SHOWCASE_GROUPS, k=k, show=show, reranker=rr, out=out
            )
            model_id = store.embedder.model_id
        _demo_render.print_demo_summary(
            out, results, k=k, queries=len(judged.queries), reranked=rr is not None, default=reranker is None
        )

        hard = make_hard_world(seed)
        hard_dir = hard.write(root / "hard-world")
        _demo_render.print_hard_intro(
            out, documents=len(hard.docs), queries=len(hard.queries), world_dir=hard_dir
        )
        hard_target = StoreTarget.of(root / "store-hard", None, chroma_port)
        files, _, ignored = collect_files([hard_dir / "corpus"])
        hard_judged = load_judged_queries(hard_dir)
        with open_store(hard_target, model, err=err) as store:
            _demo_render.print_indexing(out, hard_dir / "corpus", hard_target.describe())
            report = index_files(store, files, err=err, report=IndexReport(ignored=ignored))
            _render.print_index_summary(report, out)
            hard_gallery, hard_results = _split(
                store, hard_judged, groups=HARD_SHOWCASE_GROUPS, k=k, show=show, reranker=rr, out=out
            )
        _demo_render.print_split_summary(out, "hard", hard_results, k=k, queries=len(hard_judged.queries))
        _demo_render.print_split_summary(out, "easy", results, k=k, queries=len(judged.queries))
        gallery = _demo_render.write_demo_gallery(
            root / "gallery.html",
            [*gallery_queries, *hard_gallery],
            model_id=model_id,
            reranked=rr is not None,
        )
        _demo_render.print_demo_next(
            out,
            gallery=gallery,
            options=target.options(),
            world_dir=world_dir,
            seconds=time.perf_counter() - started,
        )
