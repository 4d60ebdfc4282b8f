"""``OmniretrieveEmbedding``: an omniretrieve embedder as a LlamaIndex ``MultiModalEmbedding``."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import numpy as np
from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.constants import DEFAULT_EMBED_BATCH_SIZE
from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
from llama_index.core.schema import ImageType
from llama_index.embeddings.omniretrieve.convert import image_item, resolve_model

from omniretrieve import Embedder, InvalidInputError
from omniretrieve.models import SENTENCE_TRANSFORMER_OPTIONS
from omniretrieve.types import Text, describe

if TYPE_CHECKING:
    from omniretrieve import MediaPolicy


class OmniretrieveEmbedding(MultiModalEmbedding):
    """Text and image embeddings from any omniretrieve embedder (any sentence-transformers model).

    One model, one vector space: use the same instance as ``embed_model`` and ``image_embed_model``
    (for instance in ``MultiModalVectorStoreIndex``) so text queries find images and images find
    texts.

    Setup::

        pip install llama-index-embeddings-omniretrieve

    Instantiate (a model id or local directory, or a ready omniretrieve ``Embedder``)::

        from llama_index.embeddings.omniretrieve import OmniretrieveEmbedding

        embed_model = OmniretrieveEmbedding("demo")             # the demo model shipped with omniretrieve
        embed_model = OmniretrieveEmbedding("path/to/clip-model", device="cpu")
        embed_model = OmniretrieveEmbedding("org/clip-model", revision="<commit>", truncate_dim=256)
        embed_model = OmniretrieveEmbedding(my_embedder)        # e.g. load_embedder(...), FakeEmbedder()

    Embed::

        embed_model.get_query_embedding("a red circle")
        embed_model.get_text_embedding_batch(["a red circle", "a blue square"])
        embed_model.get_image_embedding("photos/circle.png")      # a path, BytesIO or URL

    Use in an index::

        index = MultiModalVectorStoreIndex.from_documents(
            documents, embed_model=embed_model, image_embed_model=embed_model, storage_context=...
        )

    Images given as a path, a URL, ``BytesIO`` or bytes are read by omniretrieve's ``MediaLoader``
    under its media policy: URLs are refused unless the policy allows them
    (``media_policy=MediaPolicy(allow_urls=True)``, or the given embedder's loader), and a query
    string is always embedded as text, never opened or fetched. Text goes through the model's
    query or document prompt (queries: ``role="query"``).

    The async methods run the model in a worker thread (``asyncio.to_thread``), so they never block
    the event loop and the sync methods never start one.

    Args:
        model_name: hub id or local directory of a sentence-transformers model (text and image,
            e.g. a CLIP model; ``"demo"``: the demo model shipped with omniretrieve), or a ready
            omniretrieve ``Embedder`` (as ``embedder=``).
        embedder: a ready omniretrieve ``Embedder`` to use as it is (its own media loader and
            batching apply). Not with ``model_name``, ``device`` or ``media_policy``.
        device: torch device to load the model on, e.g. ``"cpu"`` or ``"cuda"``; default: the best
            available.
        media_policy: the ``omniretrieve.MediaPolicy`` images are read under (allowed roots, size
            caps, ``allow_urls``...); default: omniretrieve's safe default (no URLs).
        embed_batch_size: texts or images per model call.
        **kwargs: every loading option of ``SentenceTransformer(...)`` by its name (``revision``,
            ``cache_folder``, ``local_files_only``, ``token``, ``backend``, ``truncate_dim``,
            ``prompts``, ``model_kwargs``...: ``omniretrieve.models.SENTENCE_TRANSFORMER_OPTIONS``),
            passed to ``omniretrieve.load_embedder`` with a model name; the others are
            ``BaseEmbedding`` settings (``callback_manager``, ``num_workers``...).

    Raises:
        InvalidInputError: neither or both of a model name and an embedder were given, the object
            given is not an ``Embedder``, or loading options were given with an embedder.
    """

    model_name: str = Field(
        default="unknown",
        description="Hub id or local directory of the sentence-transformers model (the embedder's model_id).",
    )
    device: str | None = Field(
        default=None,
        description="Torch device the model was loaded on ('cpu', 'cuda', ...); None: the best available.",
    )

    _embedder: Embedder = PrivateAttr()

    def __init__(
        self,
        model_name: str | os.PathLike[str] | Embedder | None = None,
        *,
        embedder: Embedder | None = None,
        device: str | None = None,
        media_policy: MediaPolicy | None = None,
        embed_batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        loading = {key: kwargs.pop(key) for key in SENTENCE_TRANSFORMER_OPTIONS if key in kwargs}
        name, ready = resolve_model(
            model_name,
            embedder,
            Embedder,
            role="embedder",
            options={"device": device, "media_policy": media_policy, **loading},
        )
        settings: dict[str, Any] = {
            "model_name": name,
            "device": device,
            "embed_batch_size": embed_batch_size,
        }
        super().__init__(**settings, **kwargs)
        if ready is None:
            ready = _load(name, media_policy, {"device": device, "batch_size": embed_batch_size, **loading})
        self._embedder = ready

    @classmethod
    def class_name(cls) -> str:
        return "OmniretrieveEmbedding"

    @property
    def embedder(self) -> Embedder:
        """The omniretrieve embedder doing the work."""
        return self._embedder

    @property
    def media_policy(self) -> MediaPolicy | None:
        """The policy the embedder reads images under (its media loader's)."""
        return getattr(getattr(self._embedder, "media", None), "policy", None)

    @property
    def dimension(self) -> int:
        """The length of every embedding."""
        return self._embedder.dimension

    # -- text ------------------------------------------------------------------------------------

    def _get_query_embedding(self, query: str) -> Embedding:
        vector: list[float] = self._embedder.embed_query(Text(query)).tolist()
        return vector

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        vectors = self._embedder.embed([Text(t) for t in texts], role="document")
        return _as_lists(vectors)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    # -- images ----------------------------------------------------------------------------------

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._get_image_embeddings([img_file_path])[0]

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        items = [image_item(img, name=f"images[{i}]") for i, img in enumerate(img_file_paths)]
        return _as_lists(self._embedder.embed(items, role="document"))

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return await asyncio.to_thread(self._get_image_embedding, img_file_path)

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_image_embeddings, img_file_paths)


def _load(name: str, media_policy: MediaPolicy | None, options: dict[str, Any]) -> Embedder:
    """Load a model by name (``omniretrieve.load_embedder``, with ``options``) with its media loader."""
    from omniretrieve import MediaLoader, MediaPolicy, load_embedder

    if media_policy is not None and not isinstance(media_policy, MediaPolicy):
        raise InvalidInputError(describe(media_policy), "media_policy must be an omniretrieve.MediaPolicy")
    media = MediaLoader(media_policy) if media_policy is not None else None
    return load_embedder(name, media=media, **options)


def _as_lists(vectors: np.ndarray) -> list[Embedding]:
    """Rows of a float32 array as lists of Python floats (what LlamaIndex stores and serialises)."""
    rows: list[Embedding] = vectors.tolist()
    return rows
