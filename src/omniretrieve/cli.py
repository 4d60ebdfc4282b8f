"""The ``omniretrieve`` command line: index folders, search them, run the demo, evaluate, inspect a store.

Start with the demo (offline, under a minute on a laptop)::

    omniretrieve demo

It builds a small world of colored shapes (images, captions, distractor texts, queries with graded
judgments), writes it to ``./omniretrieve-demo/world``, indexes that folder, searches it, shows the
raw and the calibrated ranking side by side with their nDCG, and writes a result gallery
(``./omniretrieve-demo/gallery.html``). Then point the same commands at your own folder::

    omniretrieve index ~/Pictures ~/notes --store my-store
    omniretrieve search "a red bicycle" --store my-store --html results.html --compare
    omniretrieve search --image query.jpg --store my-store --json
    omniretrieve eval my-queries-folder --store my-store
    omniretrieve info --store my-store

Models (``--model``, read by :func:`omniretrieve.embedding.load_embedder`): ``demo`` (the default for
a new store) is the tiny CLIP shipped inside the package, so everything runs offline;
``omniretrieve/demo-clip-nogap`` is its twin without the modality gap; any sentence-transformers
model id or local directory works (e.g. a CLIP for text + images, a CLAP for text + audio).
``fake:<dim>`` is a model-free test double (content-hash vectors that carry no meaning). A store
remembers its model's id (``omniretrieve/demo-clip`` for the demo model, wherever it is installed):
commands on an existing store load that model unless ``--model`` says otherwise, and ``info`` reads a
store without loading any model.

Rerankers (``--reranker``): any sentence-transformers ``CrossEncoder`` id or local directory (a text
cross-encoder, or a multimodal yes/no reranker).

Stores: ``--store PATH`` (an embedded Chroma directory, default ``./omniretrieve-store``; one
writing process at a time) or ``--chroma-host/--chroma-port`` (a Chroma server started with
``chroma run --path DIR --port N``; several writers).

This module only formats and orchestrates; the work is done by :mod:`omniretrieve.store`,
:mod:`omniretrieve.media`, :mod:`omniretrieve.evaluation` and :mod:`omniretrieve.gallery`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import typer
from rich.console import Console
from rich.table import Table

from omniretrieve.embedding import DEMO_ALIAS, DEMO_MODEL_ID, DEMO_NOGAP_MODEL_ID
from omniretrieve.errors import (
    EmbeddingSpaceMismatchError,
    InvalidInputError,
    OmniretrieveError,
    StoreNotFoundError,
)

if TYPE_CHECKING:
    import numpy as np

    from omniretrieve.documents import Kind, SearchHit
    from omniretrieve.embedding import Embedder
    from omniretrieve.gallery import GalleryEntry, GalleryQuery, Thumbnail
    from omniretrieve.media import MediaLoader
    from omniretrieve.rerank import Reranker
    from omniretrieve.store import Store, StoreInfo

logger = logging.getLogger(__name__)

DEMO_MODEL = DEMO_ALIAS
"""The ``--model`` value naming the demo model shipped in the package (id ``omniretrieve/demo-clip``)."""

DEFAULT_DEMO_FOLDER = "omniretrieve-demo"
"""Where ``omniretrieve demo`` writes its world, store and gallery unless told otherwise."""

DEFAULT_INDEX_BATCH = 64
"""Files embedded and written per step by ``index``; a killed run loses at most one step."""

RERANK_HINT = "omniretrieve demo --reranker <hub id or local dir>"

EXIT_FAILED_ITEMS = 1
"""Exit status when some files could not be indexed (the others were)."""

EXIT_ERROR = 2
"""Exit status for a bad invocation or an error that stopped the command."""

app = typer.Typer(
    name="omniretrieve",
    help="Multimodal retrieval for RAG: index texts, images, audio and video; search them as one list.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class CalibrationChoice(str, Enum):
    """How scores of different modalities are made comparable (see :mod:`omniretrieve.calibration`)."""

    gap = "gap"
    rrf = "rrf"
    none = "none"


class KindChoice(str, Enum):
    """A document kind to search."""

    text = "text"
    image = "image"
    audio = "audio"
    video = "video"
    combined = "combined"


# ---------------------------------------------------------------------------------------------
# Shared options
# ---------------------------------------------------------------------------------------------

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Embedding model: 'demo' (shipped, offline), a sentence-transformers id or local directory. "
        "Default: the store's own model, or 'demo' for a new store.",
    ),
]
RerankerOpt = Annotated[
    str | None,
    typer.Option("--reranker", help="Reranker: a sentence-transformers CrossEncoder id or local directory."),
]
StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="Embedded store directory (default ./omniretrieve-store)."),
]
HostOpt = Annotated[
    str | None, typer.Option("--chroma-host", help="Use the Chroma server on this host instead of --store.")
]
PortOpt = Annotated[int, typer.Option("--chroma-port", help="Port of the Chroma server.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (only JSON) to standard output.")]


@dataclass(frozen=True)
class StoreTarget:
    """Where a command's store is: an embedded directory or a Chroma server."""

    path: Path | None
    host: str | None
    port: int

    @classmethod
    def of(cls, store: Path | None, host: str | None, port: int) -> StoreTarget:
        if store is not None and host is not None:
            raise InvalidInputError("--store/--chroma-host", "give one: an embedded directory or a server")
        if host is not None:
            return cls(None, host, port)
        from omniretrieve.store import DEFAULT_PATH

        return cls(Path(store if store is not None else DEFAULT_PATH), None, port)

    def describe(self) -> str:
        return str(self.path) if self.path is not None else f"chroma server {self.host}:{self.port}"

    def options(self) -> str:
        """The command line options that name this store."""
        if self.path is not None:
            return f"--store {self.path}"
        return f"--chroma-host {self.host} --chroma-port {self.port}"


# ---------------------------------------------------------------------------------------------
# Consoles, errors, logging
# ---------------------------------------------------------------------------------------------


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    interactive = hasattr(stream, "isatty") and stream.isatty()
    width = None if interactive or os.environ.get("COLUMNS") else 120
    return Console(stderr=stderr, highlight=False, width=width)


@contextmanager
def _errors(err: Console) -> Iterator[None]:
    """Turn omniretrieve errors into one readable line and exit status 2."""
    try:
        yield
    except OmniretrieveError as exc:
        err.print(f"[bold red]error:[/] {_plain(str(exc))}")
        raise typer.Exit(EXIT_ERROR) from exc


def _plain(text: str) -> str:
    """Escape rich markup in text that comes from users or files."""
    from rich.markup import escape

    return escape(text)


def _quiet_libraries(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        for name in ("transformers", "sentence_transformers", "chromadb", "httpx"):
            logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show library log messages.")] = False,
) -> None:
    """Multimodal retrieval for RAG. Start with `omniretrieve demo`."""
    _quiet_libraries(verbose)


# ---------------------------------------------------------------------------------------------
# Models and stores
# ---------------------------------------------------------------------------------------------


def load_embedder(spec: str) -> Embedder:
    """The embedder a ``--model`` value names (see :func:`omniretrieve.embedding.load_embedder`).

    Raises:
        InvalidInputError: it names nothing that loads; the message names the ``--model`` value.
    """
    from omniretrieve.embedding import load_embedder as load

    try:
        return load(spec)
    except InvalidInputError as exc:
        if exc.input != spec:
            raise
        raise InvalidInputError(f"--model {spec}", exc.reason) from exc


def load_reranker(spec: str | None) -> Reranker | None:
    """The reranker a ``--reranker`` value names (``None`` for none).

    Raises:
        InvalidInputError: the model cannot be loaded as a reranker.
    """
    if not spec:
        return None
    if spec == "fake":
        from omniretrieve.testing.rerankers import FakeReranker

        return FakeReranker()
    from omniretrieve.rerank import CrossEncoderReranker

    try:
        return CrossEncoderReranker(spec)
    except OmniretrieveError:
        raise
    except Exception as exc:
        raise InvalidInputError(
            f"--reranker {spec}",
            f"could not load it ({type(exc).__name__}: {exc}); give a CrossEncoder id or local directory",
        ) from exc


def inspect_store(target: StoreTarget) -> StoreInfo:
    """What the store at ``target`` holds, read without loading a model (:meth:`Store.inspect`).

    Raises:
        StoreNotFoundError: there is no omniretrieve store there.
    """
    from omniretrieve.store import Store

    return Store.inspect(path=target.path, host=target.host, port=target.port)


def open_store(
    target: StoreTarget, model: str | None, *, err: Console | None = None, must_exist: bool = False
) -> Store:
    """Open (or create) the store, with ``model`` or else the model it was built with, else the demo model.

    Raises:
        StoreNotFoundError: ``must_exist`` and there is no store at ``target``.
    """
    from omniretrieve.store import Store

    info: StoreInfo | None = None
    if must_exist:
        info = inspect_store(target)
    elif model is None:
        try:
            info = inspect_store(target)
        except StoreNotFoundError:  # no store yet: a new one gets the demo model
            info = None
    spec = model or (info.model_id if info is not None else DEMO_MODEL)
    if err is not None:
        err.print(f"[dim]model: {_plain(_model_label(spec))}[/]")
    embedder = load_embedder(spec)
    if target.host is not None:
        return Store(embedder, host=target.host, port=target.port)
    return Store(embedder, path=target.path)


def _model_label(spec: str) -> str:
    if spec in (DEMO_ALIAS, DEMO_MODEL_ID):
        return f"demo ({DEMO_MODEL_ID}, the tiny CLIP shipped with omniretrieve)"
    if spec == DEMO_NOGAP_MODEL_ID:
        return f"demo without its modality gap ({DEMO_NOGAP_MODEL_ID})"
    return spec


# ---------------------------------------------------------------------------------------------
# Indexing
# ---------------------------------------------------------------------------------------------


@dataclass
class Failure:
    """A file that could not be indexed."""

    path: str
    error: str
    reason: str


@dataclass
class IndexReport:
    """What an ``index`` run did."""

    files: int = 0
    added: int = 0
    existing: int = 0
    ignored: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return len(self.failures)


def supported_extensions() -> frozenset[str]:
    """File extensions ``index`` picks up in folders (images, text, audio, video)."""
    from omniretrieve.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, TEXT_EXTENSIONS, VIDEO_EXTENSIONS

    return IMAGE_EXTENSIONS | TEXT_EXTENSIONS | AUDIO_EXTENSIONS | VIDEO_EXTENSIONS


def collect_files(paths: Sequence[Path]) -> tuple[list[Path], list[Failure], int]:
    """Files to index under ``paths`` (folders recursively, hidden entries skipped), sorted.

    Returns:
        ``(files, failures, ignored)``: files of a supported type (and every file named directly),
        paths that do not exist, and how many files in folders were of no supported type.
    """
    exts = supported_extensions()
    files: list[Path] = []
    failures: list[Failure] = []
    ignored = 0
    for given in paths:
        if given.is_dir():
            for root, dirs, names in os.walk(given):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if name.startswith("."):
                        continue
                    if Path(name).suffix.lower() in exts:
                        files.append(Path(root) / name)
                    else:
                        ignored += 1
        elif given.exists() or given.is_symlink():
            files.append(given)
        else:
            failures.append(Failure(str(given), "MediaNotFoundError", "no such file or folder"))
    seen: set[Path] = set()
    unique: list[Path] = []
    for f in files:
        key = f.absolute()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, failures, ignored


def _error_row(path: str, exc: BaseException) -> Failure:
    reason = getattr(exc, "reason", None) or str(exc)
    return Failure(path, type(exc).__name__, str(reason))


def index_files(
    store: Store,
    files: Sequence[Path],
    *,
    batch_size: int = DEFAULT_INDEX_BATCH,
    err: Console,
    report: IndexReport | None = None,
) -> IndexReport:
    """Add ``files`` to ``store`` in batches, with a progress bar (or one line per batch when not a terminal).

    What is stored already (the same content, by hash) is skipped without being embedded again.
    A file that fails is recorded with its reason; the others are stored.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from omniretrieve.media import from_path

    report = report if report is not None else IndexReport()
    report.files += len(files)
    start = time.perf_counter()
    policy = getattr(getattr(store.embedder, "media", None), "policy", None)
    interactive = err.is_terminal
    progress = Progress(
        TextColumn("indexing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeRemainingColumn(),
        console=err,
        disable=not interactive,
        transient=False,
    )
    with progress:
        task = progress.add_task("index", total=len(files), counts="")
        done = 0
        for offset in range(0, len(files), batch_size):
            batch = files[offset : offset + batch_size]
            items: list[Any] = []
            sources: list[str] = []
            names: list[str] = []
            for f in batch:
                try:
                    items.append(from_path(f, policy=policy))
                except OmniretrieveError as exc:
                    report.failures.append(_error_row(str(f), exc))
                    continue
                sources.append(f.absolute().as_uri())
                names.append(str(f))
            if items:
                results = store.add(items, sources=sources, batch_size=len(items))
                for name, result in zip(names, results, strict=True):
                    if result.status == "added":
                        report.added += 1
                    elif result.status == "failed":
                        problem = result.error or OmniretrieveError("unknown failure")
                        report.failures.append(_error_row(name, problem))
                    else:
                        report.existing += 1
            done += len(batch)
            counts = f"{report.added} added, {report.existing} already stored, {report.failed} failed"
            progress.update(task, completed=done, counts=counts)
            if not interactive:
                err.print(f"indexed {done}/{len(files)} files: {counts}")
    report.seconds += time.perf_counter() - start
    return report


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
            table.add_row(_plain(f.path), f.error, _plain(f.reason))
        out.print(table)


@app.command()
def index(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (folders are walked recursively).")],
    model: ModelOpt = None,
    store: StoreOpt = None,
    chroma_host: HostOpt = None,
    chroma_port: PortOpt = 8000,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Files embedded and written per step.")
    ] = DEFAULT_INDEX_BATCH,
) -> None:
    """Index images, text and markdown files, audio and video (told apart by extension).

    Re-running is cheap and safe: content already stored is skipped (ids are content hashes), so an
    interrupted run resumes where it stopped. Exits with status 1 when some files failed (they are
    listed with the reason); everything else is stored.
    """
    out, err = _console(), _console(stderr=True)
    with _errors(err):
        target = StoreTarget.of(store, chroma_host, chroma_port)
        files, missing, ignored = collect_files(paths)
        with open_store(target, model, err=err) as st:
            report = IndexReport(ignored=ignored, failures=list(missing))
            index_files(st, files, batch_size=batch_size, err=err, report=report)
            total = st.count()
        print_index_summary(report, out)
        out.print(f"store {_plain(target.describe())} holds {total} documents")
    if report.failures:
        raise typer.Exit(EXIT_FAILED_ITEMS)


# ---------------------------------------------------------------------------------------------
# Results: records, tables, gallery entries
# ---------------------------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def source_path(hit: SearchHit) -> Path | None:
    """The local file a hit came from, if its source is a ``file://`` URI."""
    source = hit.document.source
    if not source:
        return None
    parts = urlsplit(source)
    if parts.scheme != "file":
        return None
    return Path(url2pathname(unquote(parts.path)))


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


def results_table(
    columns: Sequence[tuple[str, Sequence[SearchHit]]],
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
        table.add_column(_plain(name), overflow="ellipsis", no_wrap=True, max_width=column_width)
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
            row.append(f"{hit.modality:<5} {_score_text(hit):>8} {mark}{_plain(_hit_label(hit))}")
        table.add_row(*row)
    return table


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


def _loader_of(store: Store) -> MediaLoader:
    loader = getattr(store.embedder, "media", None)
    if loader is None:
        from omniretrieve.media import MediaLoader

        loader = MediaLoader()
    return loader


# ---------------------------------------------------------------------------------------------
# search
# ---------------------------------------------------------------------------------------------


def run_search(
    store: Store,
    item: Any,
    k: int,
    calibration: str,
    kinds: Sequence[str] | None,
    *,
    reranker: Reranker | None = None,
    rerank_top_n: int | None = None,
) -> list[SearchHit]:
    """``store.search`` with the command line's plain-string choices checked first."""
    from omniretrieve.calibration import check_calibration
    from omniretrieve.documents import KINDS

    bad = [kind for kind in kinds or () if kind not in KINDS]
    if bad:
        raise InvalidInputError(f"modality {bad[0]!r}", f"must be one of {list(KINDS)}")
    return store.search(
        item,
        k,
        calibration=check_calibration(calibration),
        modalities=cast("list[Kind] | None", list(kinds) if kinds is not None else None),
        reranker=reranker,
        rerank_top_n=rerank_top_n,
    )


def build_query(
    text: str | None, image: Path | None, audio: Path | None, video: Path | None
) -> tuple[Any, dict[str, str]]:
    """The query item from the command line parts (one of them, or several as a combined query)."""
    from omniretrieve.types import Audio, Image, Video

    parts: dict[str, Any] = {}
    described: dict[str, str] = {}
    if text is not None:
        parts["text"] = text
        described["text"] = text
    for key, value, wrap in (("image", image, Image), ("audio", audio, Audio), ("video", video, Video)):
        if value is not None:
            parts[key] = wrap(value)
            described[key] = str(value)
    if not parts:
        raise InvalidInputError("query", "give a text query, or --image / --audio / --video PATH")
    if len(parts) == 1:
        return next(iter(parts.values())), described
    return parts, described


def _query_preview(loader: MediaLoader, described: Mapping[str, str]) -> Thumbnail | None:
    for kind in ("image", "video"):
        if kind in described:
            return thumbnail(loader, described[kind], kind)[0]
    return None


@app.command()
def search(
    query: Annotated[str | None, typer.Argument(help="Text query (always read as text).")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="Query with this image file.")] = None,
    audio: Annotated[Path | None, typer.Option("--audio", help="Query with this audio file.")] = None,
    video: Annotated[Path | None, typer.Option("--video", help="Query with this video file.")] = None,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="How many results.")] = 10,
    calibration: Annotated[
        CalibrationChoice, typer.Option("--calibration", help="gap (default), rrf, or none (raw cosine).")
    ] = CalibrationChoice.gap,
    modality: Annotated[
        list[KindChoice] | None, typer.Option("--modality", help="Only search these document kinds (repeat).")
    ] = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="Show the raw (uncalibrated) order next to the calibrated one.")
    ] = False,
    reranker: RerankerOpt = None,
    rerank_top_n: Annotated[
        int | None, typer.Option("--rerank-top-n", min=1, help="Candidates the reranker sees (default 20).")
    ] = None,
    json_output: JsonOpt = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML result gallery to this file.")
    ] = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    chroma_host: HostOpt = None,
    chroma_port: PortOpt = 8000,
) -> None:
    """Search the store with a text, image, audio or video query: one ranked list over every modality."""
    out, err = _console(), _console(stderr=True)
    with _errors(err):
        item, described = build_query(query, image, audio, video)
        target = StoreTarget.of(store, chroma_host, chroma_port)
        rr = load_reranker(reranker)
        kinds = [m.value for m in modality] if modality else None
        calib = calibration.value
        with open_store(target, model, err=None if json_output else err, must_exist=True) as st:
            lists: list[tuple[str, str, list[SearchHit]]] = []
            if compare:
                raw_name = "none" if calib != "none" else "gap"
                lists.append((_list_title(raw_name), raw_name, run_search(st, item, k, raw_name, kinds)))
            main = run_search(st, item, k, calib, kinds)
            lists.append((_list_title(calib), calib, main))
            if rr is not None:
                reranked = run_search(st, item, k, calib, kinds, reranker=rr, rerank_top_n=rerank_top_n)
                lists.append((f"reranked ({calib} then {rr.model_id})", "rerank", reranked))
            loader = _loader_of(st)
            if html is not None:
                _write_search_gallery(html, described, lists, loader)
            model_id = st.embedder.model_id
        results = lists[-1][2]
        if json_output:
            payload: dict[str, Any] = {
                "query": described,
                "k": k,
                "calibration": calib,
                "model": model_id,
                "reranker": rr.model_id if rr is not None else None,
                "results": [hit_record(i, h) for i, h in enumerate(results, start=1)],
            }
            if len(lists) > 1:
                payload["lists"] = {
                    key: [hit_record(i, h) for i, h in enumerate(hits, start=1)] for _, key, hits in lists
                }
            if html is not None:
                payload["gallery"] = str(html)
            sys.stdout.write(json.dumps(payload, indent=1) + "\n")
            return
        title = "query: " + ", ".join(f"{key} {value!r}" for key, value in described.items())
        out.print(
            results_table([(name, hits) for name, _, hits in lists], title=_plain(title), width=out.width)
        )
        if not results:
            out.print("[yellow]no results[/]: the store is empty or holds nothing of the searched kinds")
        if html is not None:
            out.print(f"gallery: {_plain(str(html))}")


def _list_title(calibration: str) -> str:
    return {"none": "raw (cosine)", "gap": "calibrated (gap)", "rrf": "calibrated (rrf)"}[calibration]


def _write_search_gallery(
    path: Path,
    described: Mapping[str, str],
    lists: Sequence[tuple[str, str, Sequence[SearchHit]]],
    loader: MediaLoader,
) -> None:
    from omniretrieve.gallery import GalleryColumn, GalleryQuery, write_gallery

    columns = [GalleryColumn(name, [gallery_entry(h, loader) for h in hits]) for name, _, hits in lists]
    query = GalleryQuery(
        title="query",
        columns=columns,
        text=described.get("text"),
        image=_query_preview(loader, described),
        note=", ".join(f"{k}: {v}" for k, v in described.items() if k != "text") or None,
    )
    write_gallery(path, [query], title="omniretrieve search results")


# ---------------------------------------------------------------------------------------------
# eval
# ---------------------------------------------------------------------------------------------


@dataclass
class EvalQuery:
    """One query of a query file: its id, item, target kinds and the item's description."""

    id: str
    item: Any
    kinds: list[str] | None
    modality: str
    target: str


@dataclass
class EvalSet:
    """Queries, judgments and how to name stored documents the way the judgments do."""

    queries: list[EvalQuery]
    qrels: dict[str, dict[str, int]]
    base: Path
    names_by_path: dict[Path, str]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)

    def name_of(self, hit: SearchHit, judged: set[str]) -> str:
        """The judgments' name for a hit: via ``docs.json``, its id, relative path or file stem."""
        path = source_path(hit)
        if path is not None:
            resolved = path.resolve()
            if resolved in self.names_by_path:
                return self.names_by_path[resolved]
        if hit.id in judged or path is None:
            return hit.id
        try:
            rel = path.resolve().relative_to(self.base.resolve()).as_posix()
        except ValueError:
            rel = None
        if rel is not None and rel in judged:
            return rel
        if path.stem in judged:
            return path.stem
        return hit.id


def load_eval_set(queries_file: Path, judgments_file: Path) -> EvalSet:
    """Read a query file and a judgments file (the demo world's format, see :meth:`DemoWorld.write`).

    Query file: a JSON list of ``{"id", "text" | "image" | "audio" | "video", "target"?}`` (media
    paths relative to the file; ``target`` a kind to search, or ``"mixed"``). Judgments: TREC-like
    qrels JSON ``{query id: {document: grade}}``, a document named by its store id, its path
    relative to the judgments file, its file stem, or its id in a ``docs.json`` beside it.

    Raises:
        InvalidInputError: a file is missing or malformed.
    """
    from omniretrieve.types import Audio, Image, Video

    def read(path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InvalidInputError(str(path), "no such file") from exc
        except (OSError, ValueError) as exc:
            raise InvalidInputError(str(path), f"not readable JSON: {exc}") from exc

    raw_queries = read(queries_file)
    raw_qrels = read(judgments_file)
    if not isinstance(raw_queries, list):
        raise InvalidInputError(str(queries_file), "must hold a JSON list of queries")
    if not isinstance(raw_qrels, dict) or not all(isinstance(v, dict) for v in raw_qrels.values()):
        raise InvalidInputError(str(judgments_file), "must hold {query id: {document: grade}}")
    qrels = {str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in raw_qrels.items()}
    qbase = queries_file.parent
    queries: list[EvalQuery] = []
    for n, entry in enumerate(raw_queries):
        if not isinstance(entry, dict) or "id" not in entry:
            raise InvalidInputError(f"{queries_file}[{n}]", "each query needs an 'id'")
        parts: dict[str, Any] = {}
        if isinstance(entry.get("text"), str):
            parts["text"] = entry["text"]
        for key, wrap in (("image", Image), ("audio", Audio), ("video", Video)):
            if isinstance(entry.get(key), str):
                parts[key] = wrap(qbase / entry[key])
        if not parts:
            raise InvalidInputError(
                f"{queries_file}[{n}]", "a query needs 'text', 'image', 'audio' or 'video'"
            )
        target = str(entry.get("target", "mixed"))
        kinds = None if target == "mixed" else [target]
        modality = "+".join(parts) if len(parts) > 1 else next(iter(parts))
        item = next(iter(parts.values())) if len(parts) == 1 else parts
        queries.append(EvalQuery(str(entry["id"]), item, kinds, modality, target))
    names: dict[Path, str] = {}
    docs_index = judgments_file.parent / "docs.json"
    if docs_index.is_file():
        index_data = read(docs_index)
        if isinstance(index_data, dict):
            for doc_id, info in index_data.items():
                if isinstance(info, dict) and isinstance(info.get("path"), str):
                    names[(docs_index.parent / info["path"]).resolve()] = str(doc_id)
    return EvalSet(queries, qrels, judgments_file.parent, names)


def embed_queries(store: Store, evalset: EvalSet) -> None:
    """Embed every single-modality query once, in batches, so runs with several calibrations reuse them.

    Raises:
        OmniretrieveError: a query could not be embedded (e.g. its image file is missing).
    """
    todo = [q for q in evalset.queries if q.id not in evalset.vectors and "+" not in q.modality]
    if not todo:
        return
    results = store.embedder.embed_each([q.item for q in todo], role="query")
    for q, result in zip(todo, results, strict=True):
        if result.error is not None:
            raise result.error
        if result.vector is not None:
            evalset.vectors[q.id] = result.vector


def run_queries(
    store: Store,
    evalset: EvalSet,
    *,
    calibration: str,
    k: int,
    reranker: Reranker | None = None,
    rerank_top_n: int | None = None,
    only: Sequence[str] | None = None,
) -> tuple[dict[str, list[str]], dict[str, list[SearchHit]]]:
    """Search every query (or those in ``only``); return the run (judgment names) and the hits.

    Queries embedded by :func:`embed_queries` are searched by vector (the same search without
    embedding the query again); the others, and every reranked search, by item.
    """
    from omniretrieve.calibration import check_calibration

    judged = {d for docs in evalset.qrels.values() for d in docs}
    run: dict[str, list[str]] = {}
    hits_by_query: dict[str, list[SearchHit]] = {}
    for q in evalset.queries:
        if only is not None and q.id not in only:
            continue
        vector = evalset.vectors.get(q.id)
        if vector is not None and reranker is None:
            hits = store.search_vector(
                vector,
                k,
                query_modality=cast("Kind", q.modality),
                calibration=check_calibration(calibration),
                modalities=cast("list[Kind] | None", q.kinds),
            )
        else:
            hits = run_search(
                store, q.item, k, calibration, q.kinds, reranker=reranker, rerank_top_n=rerank_top_n
            )
        hits_by_query[q.id] = hits
        run[q.id] = [evalset.name_of(h, judged) for h in hits]
    return run, hits_by_query


def group_of(q: EvalQuery) -> str:
    """A query's group name, e.g. ``text->mixed`` or ``image->image``."""
    return f"{q.modality}->{q.target}"


def evaluate_groups(
    evalset: EvalSet, run: Mapping[str, Sequence[str]], k: int
) -> dict[str, dict[str, float]]:
    """Mean metrics per query group and over all queries (``"all"``)."""
    from omniretrieve.evaluation import evaluate

    groups: dict[str, list[str]] = {}
    for q in evalset.queries:
        if q.id in run:
            groups.setdefault(group_of(q), []).append(q.id)
    out: dict[str, dict[str, float]] = {}
    for name, ids in groups.items():
        out[name] = evaluate(run, {i: evalset.qrels.get(i, {}) for i in ids}, k)
    ids_all = [q.id for q in evalset.queries if q.id in run]
    out["all"] = evaluate(run, {i: evalset.qrels.get(i, {}) for i in ids_all}, k)
    return out


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


@app.command("eval")
def eval_command(
    folder: Annotated[
        Path | None,
        typer.Argument(help="A folder holding queries.json and judgments.json (e.g. the demo world)."),
    ] = None,
    queries: Annotated[Path | None, typer.Option("--queries", help="Query file (JSON list).")] = None,
    judgments: Annotated[
        Path | None, typer.Option("--judgments", help="Judgments (qrels JSON {query: {doc: grade}}).")
    ] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Cut-off of the metrics.")] = 10,
    calibration: Annotated[
        list[CalibrationChoice] | None,
        typer.Option("--calibration", help="Calibrations to compare (repeat; default: none, rrf, gap)."),
    ] = None,
    reranker: RerankerOpt = None,
    rerank_top_n: Annotated[int | None, typer.Option("--rerank-top-n", min=1)] = None,
    json_output: JsonOpt = False,
    model: ModelOpt = None,
    store: StoreOpt = None,
    chroma_host: HostOpt = None,
    chroma_port: PortOpt = 8000,
) -> None:
    """Measure recall@k, MRR@k and nDCG@k of the store's search on judged queries."""
    out, err = _console(), _console(stderr=True)
    with _errors(err):
        if folder is not None:
            queries = queries or folder / "queries.json"
            judgments = judgments or folder / "judgments.json"
        if queries is None or judgments is None:
            raise InvalidInputError("eval", "give a folder, or --queries FILE and --judgments FILE")
        evalset = load_eval_set(queries, judgments)
        target = StoreTarget.of(store, chroma_host, chroma_port)
        calibs = [c.value for c in calibration] if calibration else ["none", "rrf", "gap"]
        rr = load_reranker(reranker)
        results: dict[str, dict[str, dict[str, float]]] = {}
        with open_store(target, model, err=None if json_output else err, must_exist=True) as st:
            embed_queries(st, evalset)
            for c in calibs:
                run, _ = run_queries(st, evalset, calibration=c, k=k)
                results[c] = evaluate_groups(evalset, run, k)
            if rr is not None:
                base = "gap" if "gap" in calibs else calibs[-1]
                run, _ = run_queries(
                    st, evalset, calibration=base, k=k, reranker=rr, rerank_top_n=rerank_top_n
                )
                results[f"{base}+rerank"] = evaluate_groups(evalset, run, k)
        if json_output:
            sys.stdout.write(
                json.dumps({"k": k, "queries": len(evalset.queries), "metrics": results}, indent=1) + "\n"
            )
            return
        out.print(metrics_table(results, k, f"{len(evalset.queries)} queries, judgments {judgments}"))


# ---------------------------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------------------------


@app.command()
def info(
    json_output: JsonOpt = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Also check that the store was built with this model (loads it). Default: no model is loaded.",
        ),
    ] = None,
    store: StoreOpt = None,
    chroma_host: HostOpt = None,
    chroma_port: PortOpt = 8000,
) -> None:
    """What a store holds: its model, dimension, documents per modality and calibration state.

    Reads the store without loading its model and without disturbing a process that writes to it.
    """
    out, err = _console(), _console(stderr=True)
    with _errors(err):
        from omniretrieve.calibration import PRIOR_COUNT
        from omniretrieve.documents import KINDS

        target = StoreTarget.of(store, chroma_host, chroma_port)
        described = inspect_store(target)
        if model is not None:
            embedder = load_embedder(model)
            if (embedder.model_id, embedder.dimension) != (described.model_id, described.dimension):
                raise EmbeddingSpaceMismatchError(
                    target.describe(),
                    f"model {described.model_id!r} (dimension {described.dimension})",
                    f"model {embedder.model_id!r} (dimension {embedder.dimension})",
                )
        if json_output:
            payload = {
                "store": target.describe(),
                "name": described.name,
                "model": described.model_id,
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
            sys.stdout.write(json.dumps(payload, indent=1) + "\n")
            return
        out.print(f"store      {_plain(target.describe())}")
        out.print(f"model      {_plain(_model_label(described.model_id))}")
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


# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------


def _showcase(evalset: EvalSet) -> list[EvalQuery]:
    """One query of each group, in a fixed order: text -> mixed, text -> image, image -> image."""
    wanted = ("text->mixed", "text->image", "image->image")
    chosen: list[EvalQuery] = []
    for group in wanted:
        for q in evalset.queries:
            if group_of(q) == group:
                chosen.append(q)
                break
    return chosen


_GROUP_TITLES = {
    "text->mixed": "text -> mixed corpus (captions, images, distractors)",
    "text->image": "text -> images",
    "image->image": "image -> images",
}


def _showcase_query(
    store: Store,
    evalset: EvalSet,
    q: EvalQuery,
    *,
    k: int,
    show: int,
    reranker: Reranker | None,
    loader: MediaLoader,
    out: Console,
) -> GalleryQuery:
    """Search one demo query raw, calibrated (and reranked); print the lists and their nDCG; return the gallery part."""
    from omniretrieve.evaluation import ndcg_at_k
    from omniretrieve.gallery import GalleryColumn, GalleryQuery

    grades = evalset.qrels.get(q.id, {})
    lists: list[tuple[str, list[SearchHit], list[str]]] = []
    for calib in ("none", "gap"):
        run, hits = run_queries(store, evalset, calibration=calib, k=k, only=[q.id])
        lists.append((_list_title(calib), hits[q.id], run[q.id]))
    if reranker is not None:
        run, hits = run_queries(store, evalset, calibration="gap", k=k, reranker=reranker, only=[q.id])
        lists.append(("reranked (gap + reranker)", hits[q.id], run[q.id]))
    ndcgs = [ndcg_at_k(names, grades, k) for _, _, names in lists]
    names_by_id = {h.id: n for _, hits_, names in lists for h, n in zip(hits_, names, strict=True)}

    title = _GROUP_TITLES.get(group_of(q), group_of(q))
    text = q.item if isinstance(q.item, str) else None
    source = None if text is not None else str(getattr(q.item, "source", ""))
    out.print()
    out.print(f"[bold]{title}[/]: " + _plain(repr(text) if text is not None else f"image {source}"))
    table = results_table(
        [(name, hits_[:show]) for name, hits_, _ in lists], grades=grades, names=names_by_id, width=out.width
    )
    out.print(table)
    for (name, _, _), value in zip(lists, ndcgs, strict=True):
        out.print(f"  nDCG@{k} {name:<26} {value:.3f}")

    columns = [
        GalleryColumn(
            name,
            [gallery_entry(h, loader, grade=grades.get(n, 0)) for h, n in zip(hits_, names, strict=True)],
            metric=f"nDCG@{k} {value:.3f}",
        )
        for (name, hits_, names), value in zip(lists, ndcgs, strict=True)
    ]
    return GalleryQuery(
        title=title,
        columns=columns,
        text=text,
        image=thumbnail(loader, source, "image")[0] if source is not None else None,
        note="marks: 2 = the exact scene, 1 = right color and shape elsewhere, 0 = not relevant",
    )


@app.command()
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
    store: StoreOpt = None,
    chroma_host: HostOpt = None,
    chroma_port: PortOpt = 8000,
) -> None:
    """The tour: build a world of colored shapes, index it, search it raw and calibrated, write a gallery."""
    out, err = _console(), _console(stderr=True)
    with _errors(err):
        from omniretrieve.demo.world import make_world
        from omniretrieve.gallery import write_gallery

        started = time.perf_counter()
        if tmp:
            root = Path(tempfile.mkdtemp(prefix="omniretrieve-demo-"))
        else:
            root = out_dir if out_dir is not None else Path(DEFAULT_DEMO_FOLDER)
        root.mkdir(parents=True, exist_ok=True)
        target = StoreTarget.of(
            store if store is not None or chroma_host else root / "store", chroma_host, chroma_port
        )

        world = make_world(seed)
        world_dir = world.write(root / "world")
        n_text = sum(1 for d in world.docs if d.modality == "text")
        n_image = len(world.docs) - n_text
        out.rule("[bold]omniretrieve demo[/]")
        out.print(
            f"A world of colored shapes: {len(world.docs)} documents ({n_text} texts, {n_image} images) and "
            f"{len(world.queries)} queries with graded judgments, written to {_plain(str(world_dir))}"
        )
        rr = load_reranker(reranker)
        files, _, ignored = collect_files([world_dir / "corpus"])
        evalset = load_eval_set(world_dir / "queries.json", world_dir / "judgments.json")
        with open_store(target, model, err=err) as st:
            out.print(f"Indexing {_plain(str(world_dir / 'corpus'))} into {_plain(target.describe())}")
            report = index_files(st, files, err=err, report=IndexReport(ignored=ignored))
            print_index_summary(report, out)
            loader = _loader_of(st)
            embed_queries(st, evalset)
            gallery_queries = [
                _showcase_query(st, evalset, q, k=k, show=show, reranker=rr, loader=loader, out=out)
                for q in _showcase(evalset)
            ]
            results: dict[str, dict[str, dict[str, float]]] = {}
            for calib in ("none", "rrf", "gap"):
                run, _ = run_queries(st, evalset, calibration=calib, k=k)
                results[calib] = evaluate_groups(evalset, run, k)
        out.print()
        out.print(
            metrics_table(
                results, k, f"All {len(evalset.queries)} queries: raw (none) vs calibrated (rrf, gap)"
            )
        )
        for calib in ("none", "gap"):
            out.print(f"nDCG@{k} {calib:<5} over all queries: {results[calib]['all'][f'ndcg@{k}']:.3f}")
        if rr is None:
            out.print(
                "\nReranking needs a real reranker model (a CrossEncoder; none ships with the package). "
                f"Run: [bold]{_plain(RERANK_HINT)}[/]"
            )
        gallery_path = write_gallery(
            root / "gallery.html",
            gallery_queries,
            title="omniretrieve demo",
            subtitle=f"raw cosine vs calibrated (gap){' vs reranked' if rr is not None else ''}; model {_model_label(st.embedder.model_id)}",
        )
        out.print(f"\ngallery: {_plain(str(gallery_path.resolve()))}")
        out.print(
            'next:    omniretrieve search "a red circle in the top left" '
            f"{_plain(target.options())} --compare --html results.html"
        )
        out.print(f"         omniretrieve eval {_plain(str(world_dir))} {_plain(target.options())}")
        out.print(f"[dim]done in {time.perf_counter() - started:.1f} s[/]")


def main() -> None:
    """The console-script entry point (``omniretrieve``)."""
    app()


__all__ = ["app", "main"]
