"""A LangChain retriever over an omniretrieve store: one ranked list of texts, images and more."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from omniretrieve import InvalidInputError, Store
from pydantic import ConfigDict, Field, model_validator

from langchain_omniretrieve._convert import hit_to_langchain, query_item, search_options


class OmniretrieveRetriever(BaseRetriever):
    """Retrieve texts, images, audio and video from an omniretrieve store as one ranked list.

    Scores are calibrated across modalities (by default the modality gap is removed), so a text
    query gets the right captions *and* the right pictures, not every caption first.

    Setup:
        ```bash
        pip install -U langchain-omniretrieve "omniretrieve[image]"
        ```

    Key init args:
        store: an ``omniretrieve.Store`` (or ``OmniretrieveVectorStore(...).store``).
        k: how many documents to return (``invoke(..., k=3)`` overrides it per call).
        filter: a metadata filter, Chroma syntax (``{"album": "shapes"}``, ``{"year": {"$gte": 2000}}``).
        modalities: only these document kinds (``["image"]``); default all.
        calibration: ``"gap"`` (default), ``"rrf"`` or ``"none"``.
        reranker: an omniretrieve ``Reranker`` to reorder the best ``rerank_top_n`` candidates.

    Instantiate:
        ```python
        from omniretrieve import Image, Store, load_embedder
        from langchain_omniretrieve import OmniretrieveRetriever

        store = Store(load_embedder("path/to/clip-model"), path="index")
        store.add(["a red circle", Image("photos/circle.png")])
        retriever = OmniretrieveRetriever(store=store, k=4)
        ```

    Search:
        ```python
        docs = retriever.invoke("a red circle")                     # text query
        docs = retriever.invoke({"image": "query.png"}, k=2)         # image query
        docs = retriever.invoke({"text": "red", "image": "q.png"})   # combined query
        docs = retriever.invoke("a red circle", filter={"album": "shapes"})
        [(d.metadata.get("modality", "text"), d.metadata["score"], d.page_content) for d in docs]
        ```

    Queries: a ``str`` is always text (a URL-shaped query is never fetched); an image or
    combined query is a dict with ``text`` / ``image`` / ``audio`` / ``video`` keys or an
    omniretrieve item (``Image("q.png")``), read under the embedder's media policy.

    Results: the same documents, with the same metadata keys, as ``OmniretrieveVectorStore``
    returns (the caller's metadata; ``modality`` and ``image_uri`` / ``audio_uri`` /
    ``video_uri`` on documents with media, so a document without ``modality`` is text; the id in
    ``Document.id``), plus the scores: ``score`` (calibrated, what the list is ordered by),
    ``raw_score`` (cosine) and ``rerank_score`` when reranked. A media-only document's
    ``page_content`` is its media reference (path or URL).

    Use in a chain:
        ```python
        def format_docs(docs):
            return "; ".join(f"[{d.metadata.get('modality', 'text')}] {d.page_content}" for d in docs)

        chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | llm
        ```

    Async:
        ```python
        docs = await retriever.ainvoke("a red circle", k=2)
        ```
    """

    store: Any = Field(description="The omniretrieve Store to search.")
    k: int = Field(default=4, description="Number of documents to return.")
    filter: dict[str, Any] | None = Field(default=None, description="Metadata filter (Chroma syntax).")
    modalities: list[str] | None = Field(default=None, description="Only these document kinds.")
    calibration: str = Field(default="gap", description="Score calibration: 'gap', 'rrf' or 'none'.")
    reranker: Any = Field(default=None, description="An omniretrieve Reranker for the best candidates.")
    rerank_top_n: int | None = Field(default=None, description="Candidates the reranker sees.")

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    @model_validator(mode="after")
    def _check_store(self) -> OmniretrieveRetriever:
        if not isinstance(self.store, Store):
            raise InvalidInputError(
                type(self.store).__name__,
                "`store` must be an omniretrieve Store (OmniretrieveVectorStore.store)",
            )
        return self

    def _get_relevant_documents(
        self, query: Any, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        """Search the store.

        Args:
            query: A text, or an image / combined query (see the class docstring).
            run_manager: LangChain's callback manager.
            **kwargs: Per-call overrides: ``k``, ``filter`` (or ``where``), ``modalities``,
                ``calibration``, ``reranker``, ``rerank_top_n``.

        Raises:
            InvalidInputError: a bad query or option.
            MediaError: the query's media could not be read.
        """
        kwargs.pop("verbose", None)  # LangChain's own invoke option, not a search option
        defaults = {
            "k": self.k,
            "where": self.filter,
            "modalities": self.modalities,
            "calibration": self.calibration,
            "reranker": self.reranker,
            "rerank_top_n": self.rerank_top_n,
        }
        hits = self.store.search(query_item(query), **search_options(defaults, kwargs))
        return [hit_to_langchain(hit) for hit in hits]

    async def _aget_relevant_documents(
        self, query: Any, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        """Async search (in an executor thread); takes the same per-call options as the sync one.

        LangChain's default async implementation drops per-call options (``ainvoke(q, k=3)`` would
        raise), so this one passes them through.
        """
        return await run_in_executor(
            None, self._get_relevant_documents, query, run_manager=run_manager.get_sync(), **kwargs
        )
