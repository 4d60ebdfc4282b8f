"""A LangChain document compressor that reranks text and image documents with an omniretrieve reranker."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from omniretrieve import InvalidInputError, Reranker
from omniretrieve.rerank import rerank_candidates
from omniretrieve.types import NormalizedItem
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from langchain_omniretrieve._convert import document_item, first_stage_score, query_item
from langchain_omniretrieve._options import media_loader, translate_media_options


class OmniretrieveReranker(BaseDocumentCompressor):
    """Rerank retrieved documents, texts and images alike, with a cross-encoder.

    A multimodal reranker (a vision-language model scoring "is this document relevant to the
    query?") reads the query together with each document, caption or picture, and orders them
    by its score. Use it on its own or inside ``ContextualCompressionRetriever``.

    Which documents are images: those whose metadata has ``image_uri`` (documents from
    ``OmniretrieveRetriever`` / ``OmniretrieveVectorStore``), and those whose ``page_content`` is a
    ``data:image/...`` URI or a bare base64 image (as ``langchain_chroma.Chroma.add_images`` stores
    them). Every other document is text: a ``page_content`` that looks like a path or URL is never
    opened. Images are read by omniretrieve's media loader under its policy.

    Setup:
        ```bash
        pip install -U langchain-omniretrieve langchain-classic "omniretrieve[image]"
        ```

    Key init args:
        model: a sentence-transformers ``CrossEncoder``: hub id or local directory.
        reranker: an omniretrieve ``Reranker`` already built (instead of ``model``).
        top_n: how many documents to return (``None``: all of them, reordered).
        media_policy: what the reranker may read (an ``omniretrieve.MediaPolicy``), with ``model``;
            the same option as in the LlamaIndex integration (``allow_urls=`` and ``media=`` are its
            deprecated spellings).
        device: torch device for ``model``.
        model_kwargs: loading options for ``model`` by name: every option of ``CrossEncoder(...)``
            (``revision``, ``cache_folder``, ``local_files_only``, ``token``, ``backend``,
            ``max_length``, ``model_kwargs``...), passed to ``omniretrieve.CrossEncoderReranker``.

    Instantiate:
        ```python
        from langchain_omniretrieve import OmniretrieveReranker

        reranker = OmniretrieveReranker(model="path/to/multimodal-reranker", top_n=3)
        pinned = OmniretrieveReranker(model="org/reranker", model_kwargs={"revision": "<commit>"})
        ```

    Rerank:
        ```python
        docs = reranker.compress_documents(documents, "a red circle")
        [(d.metadata["relevance_score"], d.page_content) for d in docs]
        ```

    Use with a retriever:
        ```python
        from langchain_classic.retrievers import ContextualCompressionRetriever

        retriever = ContextualCompressionRetriever(
            base_compressor=reranker, base_retriever=vector_store.as_retriever(search_kwargs={"k": 20})
        )
        retriever.invoke("a red circle")
        ```

    Each returned document is a copy with ``metadata["relevance_score"]`` set to the reranker's
    score, best first. A document the reranker could not score (its image would not load, say)
    comes after the scored ones with ``relevance_score`` ``-inf`` and ``rerank_error`` saying why.

    First-stage scores: a reranker that fuses its scores with the first stage's (an omniretrieve
    ``CrossEncoderReranker`` whose ``first_stage_weight`` is above 0, as the demo reranker's is by
    default: ``load_reranker("demo")``) is given each document's ``metadata["score"]`` as its
    first-stage score, as ``omniretrieve.Store.search`` gives its own, and ``relevance_score`` is
    the fused score. ``OmniretrieveRetriever`` puts its calibrated score there. When a document to
    rerank has no numeric ``score`` (documents from ``OmniretrieveVectorStore.as_retriever()`` or
    other retrievers carry none), that call ranks by the reranker alone. For the reranker alone
    every time, give it ``first_stage_weight=0.0`` (``load_reranker("demo", first_stage_weight=0.0)``).
    """

    model: str | None = Field(
        default=None, description="Hub id or local directory of a CrossEncoder reranker."
    )
    reranker: Any = Field(default=None, description="An omniretrieve Reranker to use instead of `model`.")
    top_n: int | None = Field(default=3, description="Documents to return; None returns all, reordered.")
    media_policy: Any = Field(
        default=None, description="omniretrieve MediaPolicy for reading images (with `model`)."
    )
    device: str | None = Field(default=None, description="Torch device for `model`.")
    model_kwargs: dict[str, Any] | None = Field(
        default=None,
        description="Loading options for `model`, by name: every option of CrossEncoder(...) "
        "(revision, cache_folder, local_files_only, token, backend, model_kwargs, ...).",
    )

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=(), extra="forbid")

    _reranker: Reranker = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _media_option_spellings(cls, data: Any) -> Any:
        return translate_media_options(data, cls.__name__)

    @model_validator(mode="after")
    def _build_reranker(self) -> OmniretrieveReranker:
        if self.top_n is not None and self.top_n < 1:
            raise InvalidInputError(f"top_n={self.top_n!r}", "top_n must be None or a positive int")
        if (self.model is None) == (self.reranker is None):
            raise InvalidInputError(
                "OmniretrieveReranker", "give exactly one of `model` (a model id or directory) and `reranker`"
            )
        if self.reranker is not None:
            if not isinstance(self.reranker, Reranker):
                raise InvalidInputError(
                    type(self.reranker).__name__,
                    "`reranker` must be an omniretrieve Reranker (e.g. omniretrieve.CrossEncoderReranker)",
                )
            if self.media_policy is not None or self.device is not None or self.model_kwargs:
                raise InvalidInputError(
                    "OmniretrieveReranker",
                    "`media_policy`, `device` and `model_kwargs` apply to `model`; configure the reranker itself",
                )
            self._reranker = self.reranker
            return self
        from omniretrieve import CrossEncoderReranker

        media = media_loader(self.media_policy)
        self._reranker = CrossEncoderReranker(
            self.model,  # type: ignore[arg-type]  # set: checked above
            device=self.device,
            media=media,
            **(self.model_kwargs or {}),
        )
        if media is not None:
            self.media_policy = media.policy
        return self

    @property
    def omniretrieve_reranker(self) -> Reranker:
        """The omniretrieve reranker doing the work."""
        return self._reranker

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: Any,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank documents against a query.

        Args:
            documents: Text and image documents (see the class docstring for how images are found).
            query: A text query, or an image or combined query: a dict such as
                ``{"text": "...", "image": "query.png"}`` or an omniretrieve item.
            callbacks: Unused; accepted for the LangChain interface.

        Returns:
            At most ``top_n`` copies of the documents, best first, with ``relevance_score`` metadata.

        Raises:
            InvalidInputError: the query is of no accepted shape.
            UnsupportedModalityError: the reranker cannot read the query.
            MediaError: the query's media could not be read.
        """
        query_input = query_item(query)
        if not documents:
            return []
        items: list[NormalizedItem] = []
        positions: list[int] = []
        unreadable: list[tuple[int, InvalidInputError]] = []
        for index, document in enumerate(documents):
            try:
                items.append(document_item(document))
                positions.append(index)
            except InvalidInputError as exc:
                unreadable.append((index, exc))
        first_stage = [first_stage_score(documents[index]) for index in positions]
        results = rerank_candidates(self._reranker, query_input, items, first_stage) if items else []
        ranked = [(positions[r.index], r.score, r.error) for r in results]
        ranked += [(index, -math.inf, error) for index, error in unreadable]
        out: list[Document] = []
        for index, score, error in ranked[: self.top_n]:
            original = documents[index]
            metadata = {**original.metadata, "relevance_score": float(score)}
            if error is not None:
                metadata["relevance_score"] = -math.inf
                metadata["rerank_error"] = str(error)
            out.append(original.model_copy(update={"metadata": metadata}))
        return out
