"""Rerankers by name: :func:`load_reranker`, beside :func:`~omniretrieve.embedding.load_embedder`."""

from __future__ import annotations

import os
from typing import Any

from omniretrieve.errors import InvalidInputError
from omniretrieve.rerank.cross_encoder import CrossEncoderReranker

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
    """
    if isinstance(spec, str) and spec in DEMO_RERANKER_SPECS:
        return CrossEncoderReranker(spec, **kwargs)  # resolved to the shipped folder there
    if not isinstance(spec, (str, os.PathLike)) or not os.fspath(spec):
        raise InvalidInputError(
            repr(spec), "name a reranker: 'demo', a hub id or a local CrossEncoder directory"
        )
    return CrossEncoderReranker(spec, **kwargs)


__all__ = ["DEMO_RERANKER_ALIAS", "DEMO_RERANKER_SPECS", "demo_reranker_dir", "load_reranker"]
