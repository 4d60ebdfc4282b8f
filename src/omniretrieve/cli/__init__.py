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

Rerankers (``--reranker``): ``demo`` (the tiny multimodal reranker shipped inside the package), or
any sentence-transformers ``CrossEncoder`` id or local directory (a text cross-encoder, or a
multimodal yes/no reranker). A reranker fuses its scores with the first stage's at its own default
weight (:class:`~omniretrieve.rerank.CrossEncoderReranker`'s ``first_stage_weight``): the demo
reranker's, chosen on validation queries; a local directory's ``omniretrieve_reranker.json``; else 0,
the reranker alone.

Stores: ``--store PATH`` (an embedded Chroma directory, default ``./omniretrieve-store``; one
writing process at a time) or ``--chroma-host/--chroma-port`` (a Chroma server started with
``chroma run --path DIR --port N``; several writers).

This package only formats and orchestrates; the work is done by :mod:`omniretrieve.store`,
:mod:`omniretrieve.media`, :mod:`omniretrieve.evaluation` and :mod:`omniretrieve.gallery`. One
module per command (``index``, ``search``, ``eval``, ``info``, ``demo``); the shared options,
store target and model loading in ``_shared``; everything printed (tables, JSON, progress,
gallery pages) in ``_render``.
"""

from __future__ import annotations

from omniretrieve.cli import demo, eval, index, info, search
from omniretrieve.cli._shared import app

# The commands, in the order ``--help`` lists them.
app.command()(index.index)
app.command()(search.search)
app.command("eval")(eval.eval_command)
app.command()(info.info)
app.command()(demo.demo)


def main() -> None:
    """The console-script entry point (``omniretrieve``)."""
    app()


__all__ = ["app", "main"]
