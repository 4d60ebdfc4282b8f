"""``OmniretrieveRetriever``: omniretrieve's calibrated mixed-modality search as a LlamaIndex retriever."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters
from llama_index.embeddings.omniretrieve.convert import (
    document_to_node,
    metadata_filters_to_where,
    query_item,
)
from llama_index.retrievers.omniretrieve.ingest import add_documents

from omniretrieve import InvalidInputError

if TYPE_CHECKING:
    from omniretrieve import Calibration, Reranker, SearchHit, Store
    from omniretrieve.documents import Kind


def hit_to_node(hit: SearchHit) -> NodeWithScore:
    """One search hit as a LlamaIndex ``NodeWithScore``.

    The score is the reranker's when the search was reranked (``None`` for a hit it could not
    score), else omniretrieve's calibrated score.
    """
    if hit.rerank_score is not None:
        score: float | None = hit.rerank_score if hit.rerank_score != float("-inf") else None
    else:
        score = hit.score
    return NodeWithScore(node=document_to_node(hit.document), score=score)


class OmniretrieveRetriever(BaseRetriever):
    """Retrieve texts, images, audio and video from an omniretrieve store as one calibrated list.

    A LlamaIndex query becomes an omniretrieve search: the ``QueryBundle``'s ``query_str`` (text),
    its ``image_path`` (an image query, path or URL, read under the media policy), or both (a
    combined query). Hits come back in omniretrieve's order, as ``TextNode`` (text documents),
    ``ImageNode`` (image documents, with their caption if combined; ``image_path`` or
    ``image_url``, MIME type and your metadata kept) or ``Node`` (audio and video), scored by
    omniretrieve's calibrated score, comparable across modalities (or by the reranker's score when
    the store or this retriever has a reranker).

    Setup::

        pip install llama-index-retrievers-omniretrieve

    Instantiate (over a store, e.g. filled from a folder)::

        from llama_index.core import SimpleDirectoryReader
        from llama_index.retrievers.omniretrieve import OmniretrieveRetriever, add_documents
        from omniretrieve import Store, load_embedder

        store = Store(load_embedder("path/to/clip"), path="my-store")
        add_documents(store, SimpleDirectoryReader("photos-and-notes").load_data())
        retriever = OmniretrieveRetriever(store, similarity_top_k=5)

    Retrieve (text, image, filtered, async)::

        retriever.retrieve("a red circle")
        retriever.retrieve(QueryBundle(query_str="", image_path="query.png"))
        OmniretrieveRetriever(store, filters=MetadataFilters(filters=[MetadataFilter(key="album", value="shapes")]))
        await retriever.aretrieve("a red circle")

    Use in a query engine::

        RetrieverQueryEngine.from_args(retriever, llm=llm, node_postprocessors=[OmniretrieveRerank(...)])

    Args:
        store: the omniretrieve ``Store`` to search.
        similarity_top_k: how many nodes to return.
        filters: LlamaIndex ``MetadataFilters`` on your metadata (see
            :func:`metadata_filters_to_where` for the operators).
        calibration: how scores of different modalities are made comparable (``"gap"``, ``"rrf"``,
            ``"none"``...; see ``omniretrieve.calibration``); default: omniretrieve's default.
        modalities: search only these document kinds (``"text"``, ``"image"``, ``"audio"``,
            ``"video"``, ``"combined"``); default all.
        reranker: an omniretrieve ``Reranker`` to rerank inside the search (default: the store's).
        rerank_top_n: how many fused candidates the reranker sees.
        callback_manager: LlamaIndex callback manager.
        verbose: LlamaIndex's verbose flag.

    Raises:
        InvalidInputError: ``similarity_top_k`` is not a positive int, or a filter has no
            equivalent in omniretrieve's filter language.
    """

    def __init__(
        self,
        store: Store,
        *,
        similarity_top_k: int = DEFAULT_SIMILARITY_TOP_K,
        filters: MetadataFilters | None = None,
        calibration: Calibration | None = None,
        modalities: Sequence[Kind] | None = None,
        reranker: Reranker | None = None,
        rerank_top_n: int | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if (
            isinstance(similarity_top_k, bool)
            or not isinstance(similarity_top_k, int)
            or similarity_top_k < 1
        ):
            raise InvalidInputError(f"similarity_top_k={similarity_top_k!r}", "must be a positive int")
        self._store = store
        self._similarity_top_k = similarity_top_k
        self._filters = filters
        self._where = metadata_filters_to_where(filters)
        self._calibration: Calibration | None = calibration
        self._modalities = tuple(modalities) if modalities is not None else None
        self._reranker = reranker
        self._rerank_top_n = rerank_top_n
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @classmethod
    def from_documents(
        cls, documents: Sequence[BaseNode], store: Store, **kwargs: Any
    ) -> OmniretrieveRetriever:
        """Add LlamaIndex documents (or nodes) to ``store`` with :func:`add_documents`, then retrieve over it.

        Raises:
            OmniretrieveError: the first document that could not be added (the others are stored).
        """
        for result in add_documents(store, documents):
            if result.error is not None:
                raise result.error
        return cls(store, **kwargs)

    @property
    def store(self) -> Store:
        """The store searched."""
        return self._store

    @property
    def similarity_top_k(self) -> int:
        """How many nodes a query returns."""
        return self._similarity_top_k

    @similarity_top_k.setter
    def similarity_top_k(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"similarity_top_k={value!r}", "must be a positive int")
        self._similarity_top_k = value

    @property
    def filters(self) -> MetadataFilters | None:
        """The metadata filters every query applies."""
        return self._filters

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        options: dict[str, Any] = {"calibration": self._calibration} if self._calibration is not None else {}
        hits = self._store.search(
            query_item(query_bundle),
            self._similarity_top_k,
            where=self._where,
            modalities=self._modalities,
            reranker=self._reranker,
            rerank_top_n=self._rerank_top_n,
            **options,
        )
        return [hit_to_node(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)
