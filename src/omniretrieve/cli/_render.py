"""Everything the command line shows: consoles, tables, JSON output, progress, gallery pages.

The commands compute; the functions here print. Text that comes from users or files is escaped
(:func:`plain`) before it reaches rich markup.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from omniretrieve.embedding import DEMO_ALIAS, DEMO_MODEL_ID, DEMO_NOGAP_MODEL_ID
from omniretrieve.errors import OmniretrieveError
from omniretrieve.evaluation import source_path

if TYPE_CHECKING:
    from omniretrieve.cli.index import IndexReport
    from omniretrieve.documents import SearchHit
    from omniretrieve.evaluation import UnknownJudgments
    from omniretrieve.gallery import GalleryEntry, Thumbnail
    from omniretrieve.media import MediaLoader
    from omniretrieve.store import StoreInfo

RERANK_HINT = "omniretrieve demo --reranker <hub id or local dir>"

HitList = tuple[str, Sequence["SearchHit"]]
"""A titled ranked list: ``(title, hits)``."""

GRADE_NOTE = "marks: 2 = the exact scene, 1 = right color and shape elsewhere, 0 = not relevant"


# ---------------------------------------------------------------------------------------------
# Consoles, errors, the model line
# ---------------------------------------------------------------------------------------------


def console(stderr: bool = False) -> Console:
    """A console on standard output (or error), 120 columns wide when not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    interactive = hasattr(stream, "isatty") and stream.isatty()
    width = None if interactive or os.environ.get("COLUMNS") else 120
    return Console(stderr=stderr, highlight=False, width=width)


def plain(text: str) -> str:
    """Escape rich markup in text that comes from users or files."""
    from rich.markup import escape

    return escape(text)


def print_error(err: Console, exc: OmniretrieveError) -> None:
    """One readable error line."""
    err.print(f"[bold red]error:[/] {plain(str(exc))}")


def print_json(payload: Any) -> None:
    """``payload`` as indented JSON on standard output (and nothing else)."""
    sys.stdout.write(json.dumps(payload, indent=1) + "\n")


def model_label(spec: str) -> str:
    """A model id in words (the demo models are named as such)."""
    if spec in (DEMO_ALIAS, DEMO_MODEL_ID):
        return f"demo ({DEMO_MODEL_ID}, the tiny CLIP shipped with omniretrieve)"
    if spec == DEMO_NOGAP_MODEL_ID:
        return f"demo without its modality gap ({DEMO_NOGAP_MODEL_ID})"
    return spec


def print_model(err: Console, spec: str) -> None:
    """The dim ``model: ...`` line printed before a model loads."""
    err.print(f"[dim]model: {plain(model_label(spec))}[/]")


# ---------------------------------------------------------------------------------------------
# index
# ---------------------------------------------------------------------------------------------


def _counts(report: IndexReport) -> str:
    return f"{report.added} added, {report.existing} already stored, {report.failed} failed"


LINE_SECONDS = 2.0
"""Off a terminal, ``index`` prints a progress line at most this often (and after every call)."""


@contextmanager
def index_progress(err: Console, total: int) -> Iterator[Callable[[int, IndexReport, float, bool], None]]:
    """A progress bar with files/s on a terminal, else a line now and then (see :data:`LINE_SECONDS`).

    Yields ``advance(done, report, seconds, line)``: ``line`` marks the end of a ``Store.add`` call
    (the report's counts are current then; a line is printed when not on a terminal).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    interactive = err.is_terminal
    progress = Progress(
        TextColumn("indexing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[counts]}"),
        TimeRemainingColumn(),
        console=err,
        disable=not interactive,
        transient=False,
    )
    with progress:
        task = progress.add_task("index", total=total, counts="", rate="")
        last = [-1.0]  # when the last line was printed (not on a terminal); -1: none yet

        def advance(done: int, report: IndexReport, seconds: float, line: bool) -> None:
            rate = f"{done / seconds:,.0f} files/s" if seconds > 0 and done else ""
            fields: dict[str, Any] = {"counts": _counts(report)} if line else {}
            progress.update(task, completed=done, rate=rate, **fields)
            if interactive or not done:
                return
            if line:
                err.print(f"indexed {done}/{total} files ({rate}): {_counts(report)}")
            elif done < total and (last[0] < 0 or seconds - last[0] >= LINE_SECONDS):
                err.print(f"indexed {done}/{total} files ({rate})")
            else:
                return
            last[0] = seconds

        yield advance


def print_index_summary(report: IndexReport, out: Console) -> None:
    """The end-of-run summary: counts, then every failure with its reason."""
    line = (
        f"[bold]{report.files}[/] files in {report.seconds:.1f} s: [green]{report.added} added[/], "
        f"{report.existing} already stored (same content), "
        f"[{'red' if report.failed else 'green'}]{report.failed} failed[/]"
    )
    if report.ignored:
        line += f"; {report.ignored} files of no supported type ignored"
    out.print(line)
    if report.failures:
        table = Table(title="Not indexed", title_justify="left", show_lines=False)
        table.add_column("file", overflow="fold")
        table.add_column("error")
        table.add_column("reason", overflow="fold")
        for f in report.failures:
            table.add_row(plain(f.path), f.error, plain(f.reason))
        out.print(table)


def print_store_total(out: Console, where: str, total: int) -> None:
    """How many documents the store holds now."""
    out.print(f"store {plain(where)} holds {total} documents")


# ---------------------------------------------------------------------------------------------
# Hits: records, labels, tables
# ---------------------------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def hit_record(rank: int, hit: SearchHit) -> dict[str, Any]:
    """A search hit as a JSON-ready dict (non-finite scores become ``null``)."""
    doc = hit.document
    return {
        "rank": rank,
        "id": hit.id,
        "modality": hit.modality,
        "score": _finite(hit.score),
        "cosine": _finite(hit.cosine),
        "rerank_score": _finite(hit.rerank_score),
        "source": doc.source,
        "text": doc.text,
        "image": doc.image,
        "audio": doc.audio,
        "video": doc.video,
        "metadata": dict(doc.metadata),
    }


def _records(hits: Sequence[SearchHit]) -> list[dict[str, Any]]:
    return [hit_record(i, h) for i, h in enumerate(hits, start=1)]


def _hit_label(hit: SearchHit, width: int = 60) -> str:
    path = source_path(hit)
    doc = hit.document
    if doc.text and hit.modality in ("text", "combined"):
        text = " ".join(doc.text.split())
        label = text if len(text) <= width else text[: width - 1] + "\u2026"
        return f"{label} ({path.name})" if path is not None else label
    if path is not None:
        return path.name
    ref = doc.image or doc.audio or doc.video or doc.source or ""
    return ref.rsplit("/", 1)[-1]


def _score_text(hit: SearchHit) -> str:
    if hit.rerank_score is not None:
        return f"{hit.rerank_score:.4f}" if math.isfinite(hit.rerank_score) else "unscored"
    return f"{hit.score:.4f}"


def _marker(grade: int | None) -> str:
    if grade is None:
        return ""
    return {2: "[green]\u2714\u2714[/]", 1: "[yellow]\u2714[/]"}.get(grade, "[dim]\u00b7[/]")


def list_title(calibration: str) -> str:
    """The column title of a list searched with ``calibration``."""
    return {
        "none": "raw (cosine)",
        "auto": "calibrated (auto)",
        "gap": "calibrated (gap)",
        "rrf": "calibrated (rrf)",
    }[calibration]


def results_table(
    columns: Sequence[HitList],
    *,
    grades: Mapping[str, int] | None = None,
    names: Mapping[str, str] | None = None,
    title: str | None = None,
    width: int = 120,
) -> Table:
    """Ranked lists side by side, one column per list: modality, score and what was found.

    With ``grades`` (judgments keyed by ``names[hit.id]`` or the id) each row is marked:
    two ticks for grade 2, one tick for grade 1, a dot for not relevant.
    """
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right", style="dim", no_wrap=True, min_width=2)
    # Rich shrinks every column, the rank too, when a table is too wide: size the lists to fit.
    column_width = max(24, (width - 6 - 3 * len(columns)) // max(len(columns), 1))
    for name, _ in columns:
        table.add_column(plain(name), overflow="ellipsis", no_wrap=True, max_width=column_width)
    depth = max((len(hits) for _, hits in columns), default=0)
    for i in range(depth):
        row = [str(i + 1)]
        for _, hits in columns:
            if i >= len(hits):
                row.append("")
                continue
            hit = hits[i]
            mark = ""
            if grades is not None:
                key = names.get(hit.id, hit.id) if names is not None else hit.id
                mark = _marker(grades.get(key, 0)) + " "
            row.append(f"{hit.modality:<5} {_score_text(hit):>8} {mark}{plain(_hit_label(hit))}")
        table.add_row(*row)
    return table


def metrics_table(results: Mapping[str, Mapping[str, Mapping[str, float]]], k: int, title: str) -> Table:
    """Rows: query groups; columns: one metric triple per calibration (or reranked list)."""
    table = Table(title=title, title_justify="left")
    table.add_column("queries")
    names = list(results)
    for name in names:
        table.add_column(f"{name}\nnDCG@{k}", justify="right")
        table.add_column(f"recall@{k}", justify="right")
        table.add_column(f"MRR@{k}", justify="right")
    groups: list[str] = []
    for per_group in results.values():
        groups += [g for g in per_group if g not in groups]
    for g in sorted(groups, key=lambda x: (x == "all", x)):
        row = [g]
        for name in names:
            m = results[name].get(g)
            row += (
                [f"{m[key]:.3f}" for key in (f"ndcg@{k}", f"recall@{k}", f"mrr@{k}")] if m else ["", "", ""]
            )
        table.add_row(*row)
    return table


# ---------------------------------------------------------------------------------------------
# Gallery pages
# ---------------------------------------------------------------------------------------------


def thumbnail(loader: MediaLoader, reference: str | None, kind: str) -> tuple[Thumbnail | None, str | None]:
    """A preview image of a media reference (an image, or a video's middle frame) and a note if none."""
    if reference is None or kind not in ("image", "video"):
        return None, None
    from omniretrieve.types import Image, Video

    try:
        if kind == "image":
            return loader.load_image(Image(reference)), None
        frames = loader.load_video(Video(reference), num_frames=1)
        return frames[0], None
    except OmniretrieveError as exc:
        return None, f"no preview: {getattr(exc, 'reason', exc)}"


def gallery_entry(
    hit: SearchHit, loader: MediaLoader, *, grade: int | None = None, note: str | None = None
) -> GalleryEntry:
    """A search hit as a gallery card (thumbnail loaded through ``loader``)."""
    from omniretrieve.gallery import GalleryEntry

    doc = hit.document
    image, problem = thumbnail(loader, doc.image, "image")
    if image is None and doc.video is not None:
        image, problem = thumbnail(loader, doc.video, "video")
    path = source_path(hit)
    score = hit.rerank_score if hit.rerank_score is not None else hit.score
    notes = [n for n in (note, problem) if n]
    return GalleryEntry(
        id=hit.id[:12] if len(hit.id) == 64 else hit.id,
        modality="+".join(doc.parts) if len(doc.parts) > 1 else hit.modality,
        score=_finite(score),
        source=str(path) if path is not None else doc.source,
        text=doc.text,
        image=image,
        grade=grade,
        note="; ".join(notes) or None,
    )


def _query_preview(loader: MediaLoader, described: Mapping[str, str]) -> Thumbnail | None:
    for kind in ("image", "video"):
        if kind in described:
            return thumbnail(loader, described[kind], kind)[0]
    return None


def write_search_gallery(
    path: Path, described: Mapping[str, str], lists: Sequence[HitList], loader: MediaLoader
) -> None:
    """The gallery page of one search: the query, then each list as a column of cards."""
    from omniretrieve.gallery import GalleryColumn, GalleryQuery, write_gallery

    columns = [GalleryColumn(name, [gallery_entry(h, loader) for h in hits]) for name, hits in lists]
    query = GalleryQuery(
        title="query",
        columns=columns,
        text=described.get("text"),
        image=_query_preview(loader, described),
        note=", ".join(f"{k}: {v}" for k, v in described.items() if k != "text") or None,
    )
    write_gallery(path, [query], title="omniretrieve search results")


# ---------------------------------------------------------------------------------------------
# search, eval, info
# ---------------------------------------------------------------------------------------------


def print_search(
    out: Console,
    *,
    described: Mapping[str, str],
    lists: Sequence[tuple[str, str, Sequence[SearchHit]]],
    json_output: bool,
    header: Mapping[str, Any],
    html: Path | None,
) -> None:
    """A search's lists: JSON (``header`` plus the results) or a table side by side.

    ``lists`` holds ``(title, key, hits)``; the last list is the result.
    """
    results = lists[-1][2]
    if json_output:
        payload: dict[str, Any] = {"query": dict(described), **header, "results": _records(results)}
        if len(lists) > 1:
            payload["lists"] = {key: _records(hits) for _, key, hits in lists}
        if html is not None:
            payload["gallery"] = str(html)
        print_json(payload)
        return
    title = "query: " + ", ".join(f"{key} {value!r}" for key, value in described.items())
    out.print(results_table([(name, hits) for name, _, hits in lists], title=plain(title), width=out.width))
    if not results:
        out.print("[yellow]no results[/]: the store is empty or holds nothing of the searched kinds")
    if html is not None:
        out.print(f"gallery: {plain(str(html))}")


def print_unknown_judgments(err: Console, unknown: UnknownJudgments) -> None:
    """Warn, with counts, about judged documents not in the store and judged queries not defined."""
    if unknown.documents:
        shown = ", ".join(unknown.documents[:5]) + (" ..." if len(unknown.documents) > 5 else "")
        err.print(
            f"warning: {len(unknown.documents)} of {unknown.judged_documents} judged documents are not in "
            f"the store; they count as misses: {shown}",
            markup=False,
            highlight=False,
        )
    if unknown.queries:
        shown = ", ".join(unknown.queries[:5]) + (" ..." if len(unknown.queries) > 5 else "")
        err.print(
            f"warning: {len(unknown.queries)} judged queries are not in the queries file and were not "
            f"searched: {shown}",
            markup=False,
            highlight=False,
        )


def print_eval(
    out: Console,
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    *,
    k: int,
    queries: int,
    judgments: Path,
    json_output: bool,
    unknown: UnknownJudgments | None = None,
) -> None:
    """Metrics of an ``eval`` run: JSON, or a table of query groups by calibration."""
    if json_output:
        payload: dict[str, Any] = {"k": k, "queries": queries, "metrics": results}
        if unknown is not None:
            payload["unknown"] = {
                "documents": list(unknown.documents),
                "queries": list(unknown.queries),
                "judged_documents": unknown.judged_documents,
            }
        print_json(payload)
        return
    out.print(metrics_table(results, k, f"{queries} queries, judgments {judgments}"))


def _info_payload(where: str, described: StoreInfo) -> dict[str, Any]:
    from omniretrieve.calibration import PRIOR_COUNT

    return {
        "store": where,
        "name": described.name,
        "model": described.model_id,
        "revision": described.revision,
        "fingerprint": described.fingerprint,
        "fingerprint_probes": list(described.fingerprint_probes),
        "model_history": [asdict(change) for change in described.model_history],
        "dimension": described.dimension,
        "similarity": described.similarity,
        "schema": described.schema_version,
        "documents": described.total,
        "counts": described.counts,
        "calibration": {
            "statistics_counts": described.statistics_counts,
            "mean_norms": described.mean_norms,
            "gaps": described.mean_distances,
            "prior_count": PRIOR_COUNT,
        },
    }


def print_info(out: Console, where: str, described: StoreInfo, *, json_output: bool) -> None:
    """What a store holds: JSON, or its model, counts per kind and modality gap in words."""
    from omniretrieve.documents import KINDS

    if json_output:
        print_json(_info_payload(where, described))
        return
    out.print(f"store      {plain(where)}")
    out.print(f"model      {plain(model_label(described.model_id))}")
    out.print(f"revision   {plain(described.revision or 'unknown')}")
    probes = ", ".join(described.fingerprint_probes)
    out.print(f"fingerprint {described.fingerprint} ({probes})" if probes else "fingerprint none yet")
    out.print(f"dimension  {described.dimension} ({described.similarity})")
    out.print(f"documents  {described.total}")
    table = Table(title="per modality", title_justify="left")
    table.add_column("kind")
    table.add_column("documents", justify="right")
    table.add_column("in calibration statistics", justify="right")
    table.add_column("|mean embedding|", justify="right")
    for kind in KINDS:
        norm = described.mean_norms.get(kind)
        table.add_row(
            kind,
            str(described.counts[kind]),
            str(described.statistics_counts[kind]),
            "" if norm is None else f"{norm:.3f}",
        )
    out.print(table)
    if described.mean_distances:
        out.print(
            "modality gap (distance between the kinds' mean embeddings; calibration 'gap' removes it): "
            + ", ".join(f"{pair} {value:.3f}" for pair, value in described.mean_distances.items())
        )
    else:
        out.print("one kind of document or none: no modality gap to remove yet")
    for c in described.model_history:  # oldest first
        was = f" (was {c.previous_model_id} {c.previous_fingerprint})" if c.previous_model_id else ""
        out.print(f"history    {c.time} {c.event}: {plain(c.model_id)} {c.fingerprint or ''}{plain(was)}")
