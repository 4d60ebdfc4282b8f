"""``OmniretrieveRetriever``: omniretrieve's calibrated mixed-modality search as a LlamaIndex retriever."""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.schema import (
    BaseNode,
    ImageNode,
    MediaResource,
    Node,
    NodeWithScore,
    QueryBundle,
    TextNode,
)
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from llama_index.embeddings.omniretrieve._items import query_item
from llama_index.retrievers.omniretrieve.ingest import add_documents

from omniretrieve.documents import Document, Kind, SearchHit
from omniretrieve.errors import InvalidInputError

if TYPE_CHECKING:
    from omniretrieve.calibration import Calibration
    from omniretrieve.rerank import Reranker
    from omniretrieve.store import Store

_OPERATORS: dict[FilterOperator, str] = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.CONTAINS: "$contains",
}
"""LlamaIndex filter operators with a direct equivalent in omniretrieve's (Chroma's) filter language."""


def metadata_filters_to_where(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """Translate LlamaIndex ``MetadataFilters`` into omniretrieve's ``where`` filter.

    ``==``, ``!=``, ``>``, ``>=``, ``<``, ``<=``, ``in``, ``nin`` and ``contains`` map to ``$eq``,
    ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``, ``$nin`` and ``$contains``; ``any`` and
    ``all`` (a list metadata value holding any / all of the given values) to an ``$or`` / ``$and``
    of ``$contains``. Conditions ``and`` and ``or`` nest as ``$and`` / ``$or``.

    Raises:
        InvalidInputError: an operator or condition with no equivalent (``text_match``,
            ``text_match_insensitive``, ``is_empty``, the ``not`` condition): the message names it.
    """
    if filters is None or not filters.filters:
        return None
    condition = filters.condition or FilterCondition.AND
    if condition not in (FilterCondition.AND, FilterCondition.OR):
        raise InvalidInputError(
            f"MetadataFilters(condition={condition.value!r})",
            "omniretrieve's filters have no 'not'; use the != or nin operators instead",
        )
    clauses = [
        clause
        for clause in (
            metadata_filters_to_where(f) if isinstance(f, MetadataFilters) else _clause(f)
            for f in filters.filters
        )
        if clause
    ]
    if not clauses:
        return None
    if len(clauses) == 1:
        return clauses[0]
    return {f"${condition.value}": clauses}


def _clause(f: MetadataFilter) -> dict[str, Any]:
    operator = FilterOperator(f.operator)
    if operator in _OPERATORS:
        value = list(f.value) if isinstance(f.value, (list, tuple)) else f.value
        return {f.key: {_OPERATORS[operator]: value}}
    if operator in (FilterOperator.ANY, FilterOperator.ALL):
        values = f.value if isinstance(f.value, (list, tuple)) else [f.value]
        if not values:
            raise InvalidInputError(
                f"MetadataFilter({f.key!r}, {operator.value!r})", "takes a non-empty list"
            )
        join = "$or" if operator == FilterOperator.ANY else "$and"
        parts = [{f.key: {"$contains": v}} for v in values]
        return parts[0] if len(parts) == 1 else {join: parts}
    raise InvalidInputError(
        f"MetadataFilter({f.key!r}, {operator.value!r})",
        f"the operator {operator.value!r} has no equivalent in omniretrieve's filters; use one of "
        f"{[o.value for o in (*_OPERATORS, FilterOperator.ANY, FilterOperator.ALL)]}",
    )


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


def document_to_node(document: Document) -> BaseNode:
    """A stored document as a LlamaIndex node, with its id and the caller's metadata.

    Text -> ``TextNode``; image (with or without text) -> ``ImageNode`` with ``image_path`` (a local
    file) or ``image_url`` and the image's MIME type; anything with audio or video -> ``Node``
    with ``audio_resource`` / ``video_resource`` (and text and image resources).
    """
    metadata = dict(document.metadata)
    parts = set(document.parts)
    if parts <= {"text"}:
        return TextNode(id_=document.id, text=document.text or "", metadata=metadata)
    if parts <= {"text", "image"}:
        path, url = _path_or_url(document.image)
        return ImageNode(
            id_=document.id,
            text=document.text or "",
            image_path=path,
            image_url=url,
            image_mimetype=_mimetype(document.image, metadata, "image"),
            metadata=metadata,
        )
    resources: dict[str, Any] = {"metadata": metadata}
    if document.text is not None:
        resources["text_resource"] = MediaResource(text=document.text)
    for modality in ("image", "audio", "video"):
        reference = getattr(document, modality)
        if reference is not None:
            path, url = _path_or_url(reference)
            fields: dict[str, Any] = {
                "path": path,
                "url": url,
                "mimetype": _mimetype(reference, metadata, modality),
            }
            resources[f"{modality}_resource"] = MediaResource(**fields)
    return Node(id_=document.id, **resources)


def _path_or_url(reference: str | None) -> tuple[str | None, str | None]:
    if reference is None:
        return None, None
    if reference.lower().startswith(("http://", "https://")):
        return None, reference
    return reference, None


def _mimetype(reference: str | None, metadata: dict[str, Any], modality: str) -> str | None:
    """The MIME type of a media reference: ``file_type`` metadata (set by LlamaIndex readers), else a guess."""
    declared = metadata.get("file_type")
    if isinstance(declared, str) and declared.startswith(f"{modality}/"):
        return declared
    if reference is None:
        return None
    guessed, _ = mimetypes.guess_type(reference.split("?")[0])
    return guessed if guessed and guessed.startswith(f"{modality}/") else None


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

        pip install llama-index-omniretrieve

    Instantiate (over a store, e.g. filled from a folder)::

        from llama_index.core import SimpleDirectoryReader
        from llama_index.retrievers.omniretrieve import OmniretrieveRetriever, add_documents
        from omniretrieve.embedding import SentenceTransformerEmbedder
        from omniretrieve.store import Store

        store = Store(SentenceTransformerEmbedder("path/to/clip"), path="my-store")
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
        calibration: how scores of different modalities are made comparable: ``"gap"`` (default),
            ``"rrf"`` or ``"none"``.
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
        calibration: Calibration = "gap",
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
        self._calibration: Calibration = calibration
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
        hits = self._store.search(
            query_item(query_bundle),
            self._similarity_top_k,
            calibration=self._calibration,
            where=self._where,
            modalities=self._modalities,
            reranker=self._reranker,
            rerank_top_n=self._rerank_top_n,
        )
        return [hit_to_node(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)
