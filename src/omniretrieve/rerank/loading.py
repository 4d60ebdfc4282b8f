"""Rerankers by name: :func:`load_reranker`, beside :func:`~omniretrieve.embedding.load_embedder`.

A reranker directory may carry :data:`RERANKER_SETTINGS_FILE` (``omniretrieve_reranker.json``, written
by :mod:`omniretrieve.demo.train_reranker`); its ``"first_stage_weight"`` is the weight
:class:`~omniretrieve.rerank.CrossEncoderReranker` fuses the first stage's scores with unless told
otherwise (:func:`saved_first_stage_weight`). The demo reranker's was chosen on validation queries
(its model card says how).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omniretrieve.errors import InvalidInputError
from omniretrieve.rerank.cross_encoder import CrossEncoderReranker
from omniretrieve.rerank.fusion import check_weight

RERANKER_SETTINGS_FILE = "omniretrieve_reranker.json"
"""The file in a reranker directory recording how it was trained, and its ``"first_stage_weight"``."""

DEMO_RERANKER_ALIAS = "demo"
"""The short name :func:`load_reranker` takes for the demo reranker shipped in the package."""

DEMO_RERANKER_SPECS: frozenset[str] = frozenset({DEMO_RERANKER_ALIAS, "omniretrieve/demo-reranker"})
"""Every name of the demo reranker: the alias and its model id."""


def demo_reranker_dir() -> str:
    """The directory of the demo reranker shipped in the package.

    Raises:
        InvalidInputError: the package was installed without it.
    """
    from omniretrieve.demo.loading import reranker_path

    try:
        return str(reranker_path())
    except FileNotFoundError as exc:
        raise InvalidInputError(DEMO_RERANKER_ALIAS, str(exc)) from exc


def saved_first_stage_weight(folder: str | os.PathLike[str]) -> float | None:
    """The ``"first_stage_weight"`` recorded in ``folder``'s :data:`RERANKER_SETTINGS_FILE`, if any.

    Returns:
        The weight, or None when ``folder`` has no such file or the file records no weight.

    Raises:
        InvalidInputError: the file is not readable JSON, or the weight is not a number in [0, 1].
    """
    path = Path(folder) / RERANKER_SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(str(path), f"is not a readable reranker settings file ({exc})") from exc
    weight = settings.get("first_stage_weight") if isinstance(settings, dict) else None
    return None if weight is None else check_weight(weight)


def demo_first_stage_weight() -> float:
    """The demo reranker's shipped first-stage weight (chosen on validation; 0 if none is recorded).

    Raises:
        InvalidInputError: the package was installed without the demo reranker.
    """
    return saved_first_stage_weight(demo_reranker_dir()) or 0.0


def load_reranker(spec: str | os.PathLike[str], **kwargs: Any) -> CrossEncoderReranker:
    """The reranker a name or directory stands for.

    ========================================== ===================================================
    ``spec``                                   reranker
    ========================================== ===================================================
    ``"demo"``, ``"omniretrieve/demo-reranker"`` the demo reranker shipped in the package (a tiny
                                               multimodal cross-encoder for the demo worlds;
                                               ``model_id`` ``"omniretrieve/demo-reranker"``),
                                               offline
    anything else                              ``CrossEncoderReranker(spec, **kwargs)``: a hub id
                                               or a local ``CrossEncoder`` directory
    ========================================== ===================================================

    A path object always names a directory (``Path("demo")`` is a folder called ``demo``).

    The demo reranker fuses its scores with the first stage's at its shipped weight
    (:func:`demo_first_stage_weight`, chosen on validation queries) whenever it is given them, as
    ``Store.search`` does; ``first_stage_weight=0.0`` gets the reranker alone, any other value
    overrides the shipped one. A local directory whose :data:`RERANKER_SETTINGS_FILE` records a
    ``"first_stage_weight"`` (as ``python -m omniretrieve.demo.train_reranker --out DIR`` writes)
    uses it the same way; other models rank alone unless given a weight.

    Args:
        spec: The reranker's name or directory, see above.
        **kwargs: Options of :class:`~omniretrieve.rerank.CrossEncoderReranker` (``device``,
            ``dtype``, ``batch_size``, ``media``, ``unsupported``, ``max_length``, ...).

    Raises:
        InvalidInputError: ``spec`` names nothing that loads, or an option is bad.
        MissingDependencyError: sentence-transformers is missing.

    Example::

        from omniretrieve.rerank import load_reranker

        reranker = load_reranker("demo")                  # offline, a second
        store.search("a red circle left of a blue square", k=10, reranker=reranker, rerank_top_n=30)
        alone = load_reranker("demo", first_stage_weight=0.0)  # the reranker's own order
    """
    if isinstance(spec, str) and spec in DEMO_RERANKER_SPECS:
        return CrossEncoderReranker(spec, **kwargs)  # resolved to the shipped folder there
    if not isinstance(spec, (str, os.PathLike)) or not os.fspath(spec):
        raise InvalidInputError(
            repr(spec), "name a reranker: 'demo', a hub id or a local CrossEncoder directory"
        )
    return CrossEncoderReranker(spec, **kwargs)


__all__ = [
    "DEMO_RERANKER_ALIAS",
    "DEMO_RERANKER_SPECS",
    "RERANKER_SETTINGS_FILE",
    "demo_first_stage_weight",
    "demo_reranker_dir",
    "load_reranker",
    "saved_first_stage_weight",
]
