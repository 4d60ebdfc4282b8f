"""``omniretrieve eval``: recall@k, MRR@k and nDCG@k of a store's search on a judged-query set.

The files and the measuring are :mod:`omniretrieve.evaluation`'s (:func:`load_judged_queries`,
:func:`evaluate_judged_queries`); this module only reads the options and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from omniretrieve.cli import _render
from omniretrieve.cli._shared import (
    CalibrationChoice,
    HostOpt,
    JsonOpt,
    ModelOpt,
    PortOpt,
    RerankerOpt,
    StoreOpt,
    StoreTarget,
    errors,
    load_reranker,
    open_store,
)
from omniretrieve.errors import InvalidInputError

DEFAULT_CALIBRATIONS = ("none", "rrf", "gap", "auto")
"""The calibrations ``eval`` compares unless ``--calibration`` says otherwise, in column order."""


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
        typer.Option(
            "--calibration", help="Calibrations to compare (repeat; default: none, rrf, gap, auto)."
        ),
    ] = None,
    reranker: RerankerOpt = None,
    rerank_top_n: Annotated[int | None, typer.Option("--rerank-top-n", min=1)] = None,
    json_output: JsonOpt = False,
    model: ModelOpt = None,
    store_dir: StoreOpt = None,
    chroma_host: HostOpt = None,
    chroma_port: PortOpt = 8000,
) -> None:
    r"""Measure recall@k, MRR@k and nDCG@k of the store's search on judged queries.

    \b
    Files (a folder holding the first two, or --queries and --judgments):
      queries.json    [{"id": "q1", "text": "a red circle"},
                       {"id": "q2", "image": "queries/q2.png", "target": "image"}]
      judgments.json  {"q1": {"circle.png": 2, "notes/circle.txt": 1}, "q2": {"circle.png": 2}}
      docs.json       optional: {"circle": {"path": "corpus/circle.png"}} names documents
    Documents are named by store id, by path relative to the judgments file, or by file stem.
    Grades are integers; > 0 is relevant. Judged documents that are not in the store and
    judged queries missing from the queries file are reported with counts (they count as misses
    and are not searched, respectively). The README's "Judged queries" section has the details.
    """
    from omniretrieve.calibration import Calibration, check_calibration
    from omniretrieve.evaluation import evaluate_judged_queries, find_unknown_judgments, load_judged_queries

    out, err = _render.console(), _render.console(stderr=True)
    with errors(err):
        if folder is not None:
            queries = queries or folder / "queries.json"
            judgments = judgments or folder / "judgments.json"
        if queries is None or judgments is None:
            raise InvalidInputError("eval", "give a folder, or --queries FILE and --judgments FILE")
        judged = load_judged_queries(queries=queries, judgments=judgments)
        target = StoreTarget.of(store_dir, chroma_host, chroma_port)
        chosen = [c.value for c in calibration] if calibration else DEFAULT_CALIBRATIONS
        calibrations: list[Calibration] = [check_calibration(c) for c in chosen]
        rr = load_reranker(reranker)
        with open_store(target, model, err=None if json_output else err, must_exist=True) as store:
            unknown = find_unknown_judgments(store, judged)
            results = evaluate_judged_queries(
                store, judged, calibrations=calibrations, k=k, reranker=rr, rerank_top_n=rerank_top_n
            )
        _render.print_unknown_judgments(err, unknown)
        _render.print_eval(
            out,
            results,
            k=k,
            queries=len(judged.queries),
            judgments=judgments,
            json_output=json_output,
            unknown=unknown,
        )
