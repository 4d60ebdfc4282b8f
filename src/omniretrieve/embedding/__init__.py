"""Embedding any mix of items with one model.

The interface the store, search and adapters use is :class:`Embedder`, a small protocol
(:mod:`~omniretrieve.embedding.protocol`): ``model_id``, ``dimension``, ``modalities``,
``similarity``, ``supports``, ``embed``, ``embed_each`` (one :class:`EmbeddingResult` per input; a
bad item never costs the good ones) and ``embed_query``.

The package, one idea per module:

- :mod:`~omniretrieve.embedding.protocol`: :class:`Embedder`, :class:`EmbeddingResult` and the
  names they use (:data:`CombineStrategy`, :data:`RouteKey`, :data:`ROLES`).
- :mod:`~omniretrieve.embedding.base`: :class:`BaseEmbedder`, which implements ``embed``,
  ``embed_each`` and ``embed_query`` once for every model: input normalisation, routing by
  modality, media loading ahead of the model, batching with failing items isolated, the vector
  check; :mod:`~omniretrieve.embedding.jobs` holds its per-call bookkeeping.
- :mod:`~omniretrieve.embedding.sentence_transformer`: :class:`SentenceTransformerEmbedder`, any
  sentence-transformers model (text, image, audio, video). What it shares with the reranker
  (processor lookup, dtype, model id, batch isolation) lives in :mod:`omniretrieve.models`.
- :mod:`~omniretrieve.embedding.loading`: :func:`load_embedder` builds an embedder from a name:
  ``"demo"`` (the toy CLIP shipped in the package, id :data:`DEMO_MODEL_ID` wherever it is
  installed), ``"omniretrieve/demo-clip-nogap"`` (its gap-free twin, :data:`DEMO_NOGAP_MODEL_ID`),
  ``"<scheme>:<rest>"`` for a registered scheme (:func:`register_embedder_scheme`; ``"fake:<dim>"``
  is the deterministic, model-free :class:`omniretrieve.testing.fakes.FakeEmbedder`, imported
  only when asked for), or any sentence-transformers hub id or local directory. Every id it reports
  loads again through it, so ``load_embedder(Store.inspect(...).model_id)`` reopens a store with
  the model it was built with.

Example::

    from omniretrieve.embedding import load_embedder
    from omniretrieve.types import Image

    embedder = load_embedder("demo")
    vectors = embedder.embed(["a red circle", Image("circle.png")])   # (2, dimension) float32
    query = embedder.embed_query("https://example.com/x.png")          # embedded as text, never fetched
"""

from __future__ import annotations

from omniretrieve.embedding.base import BaseEmbedder
from omniretrieve.embedding.loading import (
    DEMO_ALIAS,
    DEMO_MODEL_ID,
    DEMO_NOGAP_MODEL_ID,
    FAKE_PREFIX,
    EmbedderFactory,
    load_embedder,
    register_embedder_scheme,
    split_revision,
)
from omniretrieve.embedding.protocol import (
    ROLES,
    CombineStrategy,
    Embedder,
    EmbeddingResult,
    RouteKey,
    canonical_modalities,
)
from omniretrieve.embedding.sentence_transformer import SentenceTransformerEmbedder

__all__ = [
    "DEMO_ALIAS",
    "DEMO_MODEL_ID",
    "DEMO_NOGAP_MODEL_ID",
    "FAKE_PREFIX",
    "ROLES",
    "BaseEmbedder",
    "CombineStrategy",
    "EmbedderFactory",
    "Embedder",
    "EmbeddingResult",
    "RouteKey",
    "SentenceTransformerEmbedder",
    "canonical_modalities",
    "load_embedder",
    "register_embedder_scheme",
    "split_revision",
]
