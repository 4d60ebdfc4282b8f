"""What ``omniretrieve demo`` prints and the gallery it writes (split from :mod:`omniretrieve.cli._render`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from omniretrieve.cli._render import (
    GRADE_NOTE,
    RERANK_HINT,
    gallery_entry,
    metrics_table,
    model_label,
    plain,
    results_table,
    thumbnail,
)

if TYPE_CHECKING:
    from rich.console import Console

    from omniretrieve.documents import SearchHit
    from omniretrieve.gallery import GalleryQuery
    from omniretrieve.media import MediaLoader


def print_demo_intro(out: Console, *, documents: int, texts: int, queries: int, world_dir: Path) -> None:
    """The demo's title and what its world holds."""
    out.rule("[bold]omniretrieve demo[/]")
    out.print(
        f"A world of colored shapes: {documents} documents ({texts} texts, {documents - texts} images) and "
        f"{queries} queries with graded judgments, written to {plain(str(world_dir))}"
    )


def print_indexing(out: Console, folder: Path, where: str) -> None:
    """The line before the demo indexes its corpus."""
    out.print(f"Indexing {plain(str(folder))} into {plain(where)}")


def print_showcase(
    out: Console,
    *,
    title: str,
    query: str,
    lists: Sequence[tuple[str, Sequence[SearchHit], Sequence[str]]],
    grades: Mapping[str, int],
    ndcgs: Sequence[float],
    k: int,
    show: int,
) -> None:
    """One showcase query: its lists side by side (judged hits marked) and each list's nDCG.

    ``lists`` holds ``(title, hits, judged names of the hits)``.
    """
    names_by_id = {h.id: n for _, hits, names in lists for h, n in zip(hits, names, strict=True)}
    out.print()
    out.print(f"[bold]{title}[/]: " + plain(query))
    table = results_table(
        [(name, hits[:show]) for name, hits, _ in lists], grades=grades, names=names_by_id, width=out.width
    )
    out.print(table)
    for (name, _, _), value in zip(lists, ndcgs, strict=True):
        out.print(f"  nDCG@{k} {name:<26} {value:.3f}")


def showcase_gallery_query(
    *,
    title: str,
    text: str | None,
    image_source: str | None,
    lists: Sequence[tuple[str, Sequence[SearchHit], Sequence[str]]],
    grades: Mapping[str, int],
    ndcgs: Sequence[float],
    k: int,
    loader: MediaLoader,
) -> GalleryQuery:
    """One showcase query as a gallery section: a column of graded cards per list."""
    from omniretrieve.gallery import GalleryColumn, GalleryQuery

    columns = [
        GalleryColumn(
            name,
            [gallery_entry(h, loader, grade=grades.get(n, 0)) for h, n in zip(hits, names, strict=True)],
            metric=f"nDCG@{k} {value:.3f}",
        )
        for (name, hits, names), value in zip(lists, ndcgs, strict=True)
    ]
    image = thumbnail(loader, image_source, "image")[0] if image_source is not None else None
    return GalleryQuery(title=title, columns=columns, text=text, image=image, note=GRADE_NOTE)


RERANKED_COLUMN = "reranked"
"""The name of the demo's calibrated + reranked column in its metric tables."""


def print_demo_summary(
    out: Console,
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    *,
    k: int,
    queries: int,
    reranked: bool,
    default: bool = False,
) -> None:
    """The demo's metrics over all queries, raw against calibrated (and reranked), and the reranking hint.

    ``default``: the reranker is the demo's own (the hint then names ``--reranker`` to try another).
    """
    out.print()
    calibrated = ", ".join(name for name in results if name not in ("none", RERANKED_COLUMN))
    title = f"raw (none) vs calibrated ({calibrated})" + (" vs reranked" if reranked else "")
    out.print(metrics_table(results, k, f"All {queries} queries: {title}"))
    for calib in ("none", "gap"):
        out.print(f"nDCG@{k} {calib:<5} over all queries: {results[calib]['all'][f'ndcg@{k}']:.3f}")
    if not reranked:
        out.print(f"\nNo reranker. Run: [bold]{plain(RERANK_HINT)}[/]")
    elif default:
        out.print(
            f"[dim]reranked by the demo reranker shipped in the package; another: {plain(RERANK_HINT)}[/]"
        )


def print_hard_intro(out: Console, *, documents: int, queries: int, world_dir: Path) -> None:
    """The hard split's title and what its world holds."""
    out.print()
    out.rule("[bold]the hard split: two objects per picture[/]")
    out.print(
        f"{documents} documents and {queries} queries about who is where ('a red circle left of a blue "
        "square' vs 'a blue circle left of a red square'), scenes never seen in training, written to "
        + plain(str(world_dir))
    )


def print_split_summary(
    out: Console,
    split: str,
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    *,
    k: int,
    queries: int,
) -> None:
    """One line per split: nDCG@k over all its queries, raw -> calibrated (default) -> calibrated + reranked."""
    from omniretrieve.calibration import DEFAULT_CALIBRATION

    metric = f"ndcg@{k}"
    columns = [
        ("raw", "none"),
        (f"calibrated ({DEFAULT_CALIBRATION})", DEFAULT_CALIBRATION),
        ("calibrated + reranked", RERANKED_COLUMN),
    ]
    parts = [f"{name} {results[key]['all'][metric]:.3f}" for name, key in columns if key in results]
    out.print(f"{split:<5} split, {queries} queries, nDCG@{k}: " + " -> ".join(parts))


def write_demo_gallery(path: Path, queries: Sequence[GalleryQuery], *, model_id: str, reranked: bool) -> Path:
    """The demo's gallery page: one section per showcase query."""
    from omniretrieve.gallery import write_gallery

    return write_gallery(
        path,
        queries,
        title="omniretrieve demo",
        subtitle=f"raw cosine vs calibrated (gap){' vs calibrated + reranked' if reranked else ''}; easy and hard "
        f"splits; model {model_label(model_id)}",
    )


def print_demo_next(out: Console, *, gallery: Path, options: str, world_dir: Path, seconds: float) -> None:
    """Where the gallery is and the commands to try next."""
    out.print(f"\ngallery: {plain(str(gallery.resolve()))}")
    out.print(
        f'next:    omniretrieve search "a red circle in the top left" {plain(options)} --compare --html results.html'
    )
    out.print(f"         omniretrieve eval {plain(str(world_dir))} {plain(options)}")
    out.print(f"[dim]done in {seconds:.1f} s[/]")
