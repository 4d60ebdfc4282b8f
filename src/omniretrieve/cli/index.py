"""``omniretrieve index``: add files and folders to a store, resumably, with every failure reported."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from omniretrieve.cli import _render
from omniretrieve.cli._shared import (
    EXIT_FAILED_ITEMS,
    HostOpt,
    ModelOpt,
    PortOpt,
    StoreOpt,
    StoreTarget,
    errors,
    open_store,
)
from omniretrieve.errors import InvalidInputError, OmniretrieveError

if TYPE_CHECKING:
    from rich.console import Console

    from omniretrieve.store import Store

DEFAULT_INDEX_BATCH = 64
"""Files read, embedded and written per pipeline step by ``index`` (a rerun skips what was stored)."""

FILES_PER_CALL = 2048
"""Files handed to one ``Store.add`` call (its pipeline keeps every stage busy within a call)."""


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
        """How many files could not be indexed."""
        return len(self.failures)


def supported_extensions() -> frozenset[str]:
    """File extensions ``index`` picks up in folders (images, text, audio, video)."""
    from omniretrieve.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, TEXT_EXTENSIONS, VIDEO_EXTENSIONS

    return IMAGE_EXTENSIONS | TEXT_EXTENSIONS | AUDIO_EXTENSIONS | VIDEO_EXTENSIONS


def _walk(folder: Path, exts: frozenset[str]) -> tuple[list[Path], int]:
    """Supported files under ``folder`` (hidden entries skipped), sorted, and how many were not."""
    files: list[Path] = []
    ignored = 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in exts:
                files.append(Path(root) / name)
            else:
                ignored += 1
    return files, ignored


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
            found, skipped = _walk(given, exts)
            files += found
            ignored += skipped
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


def _add_files(
    store: Store,
    batch: Sequence[Path],
    policy: Any,
    report: IndexReport,
    *,
    step: int,
    workers: int | None,
    progress: Callable[[int], None],
) -> None:
    """Load and add files in one pipelined ``Store.add`` call, counting each outcome in ``report``."""
    from omniretrieve.media import from_path

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
    refused = len(batch) - len(items)
    if not items:
        progress(refused)
        return
    results = store.add(
        items, sources=sources, batch_size=step, workers=workers, progress=lambda k: progress(refused + k)
    )
    for name, result in zip(names, results, strict=True):
        if result.status == "added":
            report.added += 1
        elif result.status == "failed":
            report.failures.append(_error_row(name, result.error or OmniretrieveError("unknown failure")))
        else:
            report.existing += 1


def index_files(
    store: Store,
    files: Sequence[Path],
    *,
    batch_size: int = DEFAULT_INDEX_BATCH,
    err: Console,
    report: IndexReport | None = None,
    workers: int | None = None,
) -> IndexReport:
    """Add ``files`` to ``store`` with a progress bar and files/s (one line per call when not a terminal).

    Files go to :meth:`Store.add` :data:`FILES_PER_CALL` at a time (memory stays bounded), which
    pipelines them in steps of ``batch_size``: decoding in ``workers`` processes, encoding, writing.
    What is stored already (the same content, by hash) is skipped without being embedded again.
    A file that fails is recorded with its reason; the others are stored.
    """
    report = report if report is not None else IndexReport()
    report.files += len(files)
    start = time.perf_counter()
    policy = getattr(getattr(store.embedder, "media", None), "policy", None)
    with _render.index_progress(err, len(files)) as advance:
        for offset in range(0, len(files), FILES_PER_CALL):
            chunk = files[offset : offset + FILES_PER_CALL]

            def progress(done: int, offset: int = offset) -> None:
                advance(offset + done, report, time.perf_counter() - start, False)

            _add_files(store, chunk, policy, report, step=batch_size, workers=workers, progress=progress)
            advance(offset + len(chunk), report, time.perf_counter() - start, True)
    report.seconds += time.perf_counter() - start
    return report


def _devices(value: str | None) -> tuple[str, ...] | None:
    """The ``--devices`` value as device names, checked before any store is opened."""
    if value is None:
        return None
    from omniretrieve.embedding._pool import parse_devices

    try:
        return parse_devices(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"--devices {value}", exc.reason) from exc


def use_devices(embedder: Any, devices: Sequence[str]) -> None:
    """Make ``embedder`` encode on ``devices`` (a sentence-transformers model; others take no devices).

    Raises:
        InvalidInputError: the embedder has no ``devices`` setting.
    """
    from omniretrieve.embedding import SentenceTransformerEmbedder

    if not isinstance(embedder, SentenceTransformerEmbedder):
        raise InvalidInputError(
            f"--devices {','.join(devices)}",
            f"the model {getattr(embedder, 'model_id', type(embedder).__name__)} takes no devices "
            "(sentence-transformers models do)",
        )
    embedder.devices = devices


def index(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (folders are walked recursively).")],
    model: ModelOpt = None,
    store_dir: StoreOpt = None,
    chroma_host: HostOpt = None,
    chroma_port: PortOpt = 8000,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Files embedded and written per step.")
    ] = DEFAULT_INDEX_BATCH,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=0, help="Processes that decode media files (0: none; default: one per CPU)."
        ),
    ] = None,
    devices: Annotated[
        str | None,
        typer.Option(
            "--devices",
            help="Encode on these devices, e.g. cuda:0,cuda:1 (two or more: one process per device, "
            "through sentence-transformers' multi-process pool; default: the model's own device).",
        ),
    ] = None,
) -> None:
    """Index images, text and markdown files, audio and video (told apart by extension).

    Re-running is cheap and safe: content already stored is skipped (ids are content hashes), so an
    interrupted run resumes where it stopped. Exits with status 1 when some files failed (they are
    listed with the reason); everything else is stored.
    """
    out, err = _render.console(), _render.console(stderr=True)
    with errors(err):
        target = StoreTarget.of(store_dir, chroma_host, chroma_port)
        wanted = _devices(devices)
        files, missing, ignored = collect_files(paths)
        if missing and len(missing) == len(paths):  # nothing to index: do not create a store
            names = ", ".join(f.path for f in missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise InvalidInputError(
                names, "no such file or folder; nothing was indexed and no store was created"
            )
        with open_store(target, model, err=err) as store:
            if wanted is not None:
                use_devices(store.embedder, wanted)
            report = IndexReport(ignored=ignored, failures=list(missing))
            index_files(store, files, batch_size=batch_size, err=err, report=report, workers=workers)
            total = store.count()
        _render.print_index_summary(report, out)
        _render.print_store_total(out, target.describe(), total)
    if report.failures:
        raise typer.Exit(EXIT_FAILED_ITEMS)
