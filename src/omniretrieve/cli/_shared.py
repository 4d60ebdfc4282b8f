"""What every command shares: the Typer app, the common options, the store target, loading models and stores.

Nothing here prints except through :mod:`omniretrieve.cli._render`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from omniretrieve.cli import _render
from omniretrieve.embedding import DEMO_ALIAS
from omniretrieve.errors import InvalidInputError, OmniretrieveError, StoreNotFoundError

if TYPE_CHECKING:
    from rich.console import Console

    from omniretrieve.embedding import Embedder
    from omniretrieve.media import MediaLoader
    from omniretrieve.rerank import Reranker
    from omniretrieve.store import Store, StoreInfo

DEMO_MODEL = DEMO_ALIAS
"""The ``--model`` value naming the demo model shipped in the package (id ``omniretrieve/demo-clip``)."""

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

    auto = "auto"
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


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Embedding model: 'demo' (shipped, offline), a sentence-transformers id or local directory; "
        "pin a hub revision with ID@REVISION (a commit hash, tag or branch). Default: the store's own "
        "model (at its recorded commit when it came from the hub), or 'demo' for a new store.",
    ),
]
RerankerOpt = Annotated[
    str | None,
    typer.Option(
        "--reranker",
        help="Reranker: 'demo' (shipped, offline), a sentence-transformers CrossEncoder id (ID@REVISION pins a "
        "revision) or local directory. It fuses its scores with the first stage's at its own default weight "
        "(the demo reranker's, or a directory's omniretrieve_reranker.json; else 0: the reranker alone).",
    ),
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
        """The target the ``--store`` / ``--chroma-host`` / ``--chroma-port`` options name.

        Raises:
            InvalidInputError: both a directory and a server are given.
        """
        if store is not None and host is not None:
            raise InvalidInputError("--store/--chroma-host", "give one: an embedded directory or a server")
        if host is not None:
            return cls(None, host, port)
        from omniretrieve.store import DEFAULT_PATH

        return cls(Path(store if store is not None else DEFAULT_PATH), None, port)

    def describe(self) -> str:
        """The target in words: its directory, or the server's address."""
        return str(self.path) if self.path is not None else f"chroma server {self.host}:{self.port}"

    def options(self) -> str:
        """The command line options that name this store."""
        if self.path is not None:
            return f"--store {self.path}"
        return f"--chroma-host {self.host} --chroma-port {self.port}"


@contextmanager
def errors(err: Console) -> Iterator[None]:
    """Turn omniretrieve errors into one readable line on ``err`` and exit status 2."""
    try:
        yield
    except OmniretrieveError as exc:
        _render.print_error(err, exc)
        raise typer.Exit(EXIT_ERROR) from exc


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


def load_embedder(spec: str) -> Embedder:
    """The embedder a ``--model`` value names (see :func:`omniretrieve.embedding.load_embedder`).

    ``ID@REVISION`` pins a hub revision (:func:`omniretrieve.embedding.split_revision`); a local
    directory whose path holds an ``@`` is still that directory when it exists.

    Raises:
        InvalidInputError: it names nothing that loads; the message names the ``--model`` value.
    """
    from omniretrieve.embedding import load_embedder as load
    from omniretrieve.embedding import split_revision

    names = {spec}  # what a loading error may name: the value, or the model it pins a revision of
    try:
        names.add(split_revision(spec)[0])
        return load(spec)
    except InvalidInputError as exc:
        if exc.input not in names:
            raise
        raise InvalidInputError(f"--model {spec}", exc.reason) from exc


def load_reranker(spec: str | None) -> Reranker | None:
    """The reranker a ``--reranker`` value names (``None`` for none; ``demo`` for the shipped one).

    Raises:
        InvalidInputError: the model cannot be loaded as a reranker.
    """
    if not spec:
        return None
    if spec == "fake":
        from omniretrieve.testing.rerankers import FakeReranker

        return FakeReranker()
    from omniretrieve.rerank.loading import DEMO_RERANKER_SPECS
    from omniretrieve.rerank.loading import load_reranker as load

    if spec in DEMO_RERANKER_SPECS:  # the demo reranker shipped in the package
        return load(spec)
    from omniretrieve.embedding import split_revision
    from omniretrieve.rerank import CrossEncoderReranker

    try:
        name, revision = split_revision(spec)  # ID@REVISION pins a hub revision, as for --model
        return CrossEncoderReranker(name, revision=revision)
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
    spec = model or (stored_model(info) if info is not None else DEMO_MODEL)
    if err is not None:
        _render.print_model(err, spec)
    embedder = load_embedder(spec)
    if target.host is not None:
        return Store(embedder, host=target.host, port=target.port)
    return Store(embedder, path=target.path)


def stored_model(info: StoreInfo) -> str:
    """The ``--model`` value that reloads a store's model: its id, pinned to its hub commit when known."""
    from omniretrieve.models import is_commit

    return f"{info.model_id}@{info.revision}" if is_commit(info.revision) else info.model_id


def loader_of(store: Store) -> MediaLoader:
    """The media loader of the store's embedder (its policy), or a default one."""
    loader = getattr(store.embedder, "media", None)
    if loader is None:
        from omniretrieve.media import MediaLoader

        loader = MediaLoader()
    return loader


__all__ = [
    "DEMO_MODEL",
    "EXIT_ERROR",
    "EXIT_FAILED_ITEMS",
    "CalibrationChoice",
    "HostOpt",
    "JsonOpt",
    "KindChoice",
    "ModelOpt",
    "PortOpt",
    "RerankerOpt",
    "StoreOpt",
    "StoreTarget",
    "app",
    "errors",
    "inspect_store",
    "load_embedder",
    "load_reranker",
    "loader_of",
    "open_store",
    "stored_model",
]
