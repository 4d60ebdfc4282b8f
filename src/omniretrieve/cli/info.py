"""``omniretrieve info``: what a store holds, read without loading its model."""

from __future__ import annotations

from typing import Annotated

import typer

from omniretrieve.cli import _render
from omniretrieve.cli._shared import (
    HostOpt,
    JsonOpt,
    PortOpt,
    StoreOpt,
    StoreTarget,
    errors,
    inspect_store,
    load_embedder,
)
from omniretrieve.errors import EmbeddingSpaceMismatchError


def info(
    json_output: JsonOpt = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Also check that the store was built with this model (loads it). Default: no model is loaded.",
        ),
    ] = None,
    store_dir: StoreOpt = None,
    chroma_host: HostOpt = None,
    chroma_port: PortOpt = 8000,
) -> None:
    """What a store holds: its model (id, revision, fingerprint, history), dimension, documents per modality and calibration state.

    Reads the store without loading its model and without disturbing a process that writes to it.
    """
    out, err = _render.console(), _render.console(stderr=True)
    with errors(err):
        target = StoreTarget.of(store_dir, chroma_host, chroma_port)
        described = inspect_store(target)
        if model is not None:
            embedder = load_embedder(model)
            differs = tuple(
                what
                for what, ours, theirs in (
                    ("model id", embedder.model_id, described.model_id),
                    ("dimension", embedder.dimension, described.dimension),
                )
                if ours != theirs
            )
            if differs:
                raise EmbeddingSpaceMismatchError(
                    target.describe(),
                    f"model {described.model_id!r} (dimension {described.dimension})",
                    f"model {embedder.model_id!r} (dimension {embedder.dimension})",
                    differs,
                )
        _render.print_info(out, target.describe(), described, json_output=json_output)
