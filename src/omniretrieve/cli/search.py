"""``omniretrieve search``: one ranked list over every modality, raw and calibrated side by side on request."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from omniretrieve.calibration import DEFAULT_CALIBRATION
from omniretrieve.cli import _render
from omniretrieve.cli._shared import (
    CalibrationChoice,
    HostOpt,
    JsonOpt,
    KindChoice,
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
from omniretrieve.errors import InvalidInputError

if TYPE_CHECKING:
    from omniretrieve.documents import Kind, SearchHit
    from omniretrieve.rerank import Reranker
    from omniretrieve.store import Store


_DEFAULT_CHOICE = CalibrationChoice(DEFAULT_CALIBRATION)


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


def search(
    query: Annotated[str | None, typer.Argument(help="Text query (always read as text).")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="Query with this image file.")] = None,
    audio: Annotated[Path | None, typer.Option("--audio", help="Query with this audio file.")] = None,
    video: Annotated[Path | None, typer.Option("--video", help="Query with this video file.")] = None,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="How many results.")] = 10,
    calibration: Annotated[
        CalibrationChoice,
        typer.Option(
            "--calibration",
            help="auto (default: gap or none, chosen per store), gap, rrf, or none (raw cosine); see omniretrieve.calibration.",
        ),
    ] = _DEFAULT_CHOICE,
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
    store_dir: StoreOpt = None,
    chroma_host: HostOpt = None,
    chroma_port: PortOpt = 8000,
) -> None:
    """Search the store with a text, image, audio or video query: one ranked list over every modality."""
    out, err = _render.console(), _render.console(stderr=True)
    with errors(err):
        item, described = build_query(query, image, audio, video)
        target = StoreTarget.of(store_dir, chroma_host, chroma_port)
        rr = load_reranker(reranker)
        kinds = [m.value for m in modality] if modality else None
        calib = calibration.value
        with open_store(target, model, err=None if json_output else err, must_exist=True) as store:
            lists: list[tuple[str, str, list[SearchHit]]] = []
            if compare:
                raw_name = "none" if calib != "none" else "gap"
                lists.append(
                    (_render.list_title(raw_name), raw_name, run_search(store, item, k, raw_name, kinds))
                )
            lists.append((_render.list_title(calib), calib, run_search(store, item, k, calib, kinds)))
            if rr is not None:
                reranked = run_search(store, item, k, calib, kinds, reranker=rr, rerank_top_n=rerank_top_n)
                lists.append((f"reranked ({calib} then {rr.model_id})", "rerank", reranked))
            if html is not None:
                titled = [(name, hits) for name, _, hits in lists]
                _render.write_search_gallery(html, described, titled, loader_of(store))
            model_id = store.embedder.model_id
        header = {
            "k": k,
            "calibration": calib,
            "model": model_id,
            "reranker": rr.model_id if rr is not None else None,
        }
        _render.print_search(
            out, described=described, lists=lists, json_output=json_output, header=header, html=html
        )
