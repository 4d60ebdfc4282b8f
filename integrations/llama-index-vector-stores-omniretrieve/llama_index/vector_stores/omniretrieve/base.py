"""``OmniretrieveVectorStore``: an omniretrieve ``Store`` as a LlamaIndex vector store."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.embeddings.omniretrieve import OmniretrieveEmbedding
from llama_index.embeddings.omniretrieve.convert import (
    REF_DOC_ID_KEY,
    document_to_node,
    file_source,
    join_where,
    metadata_filters_to_where,
    node_item,
    node_metadata,
    resolve_model,
)

from omniretrieve import Embedder, InvalidInputError, Store, Text
from omniretrieve.documents import KINDS, Document, validate_metadata
from omniretrieve.types import ItemInput, describe

if TYPE_CHECKING:
    from omniretrieve import MediaPolicy, WriteResult

QUERY_OPTIONS = ("query_modality", "calibration", "modalities", "where")
"""The keyword arguments ``query`` takes (``vector_store_kwargs={...}`` in LlamaIndex retrievers)."""


class OmniretrieveVectorStore(BasePydanticVectorStore):
    """An omniretrieve store (Chroma, one collection per modality) as a LlamaIndex vector store.

    A query embedding is searched over every kind of stored node at once, texts, images and
    combined nodes, and the hits come back as one list in omniretrieve's calibrated order: the
    modality gap of CLIP-style models is taken out of the scores (``omniretrieve.calibration``), so
    a text query does not rank every text above every image, and the scores compare across
    modalities.

    Setup::

        pip install llama-index-vector-stores-omniretrieve

    Instantiate (from parameters, as ``ChromaVectorStore.from_params``, or over a ready ``Store``)::

        from llama_index.embeddings.omniretrieve import OmniretrieveEmbedding
        from llama_index.vector_stores.omniretrieve import OmniretrieveVectorStore

        embed_model = OmniretrieveEmbedding("demo")            # or a hub id / directory
        vector_store = OmniretrieveVectorStore.from_params(model=embed_model, persist_dir="my-store")
        vector_store = OmniretrieveVectorStore.from_params(model="demo", host="localhost", port=8000)
        vector_store = OmniretrieveVectorStore(store=Store(load_embedder("demo"), path="my-store"))

    Use in an index (LlamaIndex embeds the texts and the query; the store embeds the media)::

        storage_context = StorageContext.from_defaults(vector_store=vector_store)
        index = VectorStoreIndex.from_documents(
            documents, storage_context=storage_context, embed_model=embed_model
        )
        index.as_query_engine(llm=llm).query("a red circle")   # source nodes: texts and images

    Nodes in (``add``):

    - a text node keeps the embedding LlamaIndex attached (the store's model embeds it when it has
      none); use the store's model as ``embed_model`` (``OmniretrieveEmbedding`` over the same
      embedder) so that texts, media and queries share one space;
    - an ``ImageNode`` (``image_path``, ``image_url`` or base64 ``image``), or a ``Node`` /
      ``Document`` with image, audio or video resources (in memory included), is embedded from
      its media by the store's own model, with its text as a combined document if it has any.
      LlamaIndex's ``VectorStoreIndex`` embeds every node as text (an image read by
      ``SimpleDirectoryReader`` has only its metadata as text), so its embedding is not used.
      Media are read under the embedder's media policy (URLs refused by default).

    Each node is stored under its ``node_id``, with its metadata and the node itself as JSON
    (as LlamaIndex's vector stores keep nodes), so the same node, ``ref_doc_id`` and relationships
    included, comes back from ``query``. Adding an id again replaces it.

    Query (``query``): ``VectorStoreQuery.query_embedding`` with ``similarity_top_k``,
    ``filters`` (``MetadataFilters``, translated to omniretrieve's ``where``, see
    ``metadata_filters_to_where``) and ``doc_ids`` (only nodes of these source documents); the
    default mode only. ``node_ids`` is not a restriction here, as for ``ChromaVectorStore``:
    ``VectorStoreIndex`` sends the ids of the nodes its docstore keeps, which for a store that
    keeps text are its image and index nodes only.
    Options through ``query(..., **kwargs)`` (``vector_store_kwargs`` in retrievers):
    ``query_modality`` (the kind of the query embedding, default ``"text"``; a query whose
    ``query_str`` is ``""`` is taken as an image query, as LlamaIndex's image-to-image retrieval
    sends it), ``calibration``, ``modalities`` (search only these kinds) and ``where`` (a raw
    omniretrieve filter, not with ``filters``).

    Delete: ``delete(ref_doc_id)`` removes every node of that source document, ``delete_nodes``
    by node ids and / or filters. Every method has its async twin (``async_add``, ``aquery``,
    ``adelete``, ``adelete_nodes``, ``aget_nodes``), run in a worker thread.

    Args:
        store: the omniretrieve ``Store`` to read and write.
        calibration: how scores of different modalities are made comparable (``"gap"``,
            ``"rrf"``, ``"none"``...; see ``omniretrieve.calibration``); default: the store's
            default.
        query_modality: the kind of query embeddings (``"text"``, ``"image"``...), whose mean
            centres them under ``"gap"``.
        **kwargs: other ``BasePydanticVectorStore`` settings.

    Raises:
        InvalidInputError: ``store`` is not an omniretrieve ``Store`` or ``query_modality`` is not
            a kind.
    """

    stores_text: bool = True
    is_embedding_query: bool = True

    persist_dir: str | None = Field(default=None, description="Directory of an embedded store.")
    host: str | None = Field(default=None, description="Host of the Chroma server of a client-server store.")
    port: int | None = Field(default=None, description="Port of that server.")
    name: str = Field(default="omniretrieve", description="The store's name (prefix of its collections).")
    model_name: str = Field(default="unknown", description="The store's model (its embedder's model_id).")
    calibration: str | None = Field(
        default=None,
        description="How scores of different modalities are made comparable; None: the store's default.",
    )
    query_modality: str = Field(default="text", description="The kind of query embeddings.")

    _store: Store = PrivateAttr()

    def __init__(
        self,
        store: Store,
        *,
        calibration: str | None = None,
        query_modality: str = "text",
        **kwargs: Any,
    ) -> None:
        if not isinstance(store, Store):
            raise InvalidInputError(
                describe(store), "store must be an omniretrieve Store (or use from_params)"
            )
        _check_kind(query_modality)
        settings: dict[str, Any] = {
            "persist_dir": os.fspath(store.path) if store.path is not None else None,
            "host": store.host,
            "port": store.port if store.host is not None else None,
            "name": store.name,
            "model_name": str(store.embedder.model_id),
            "calibration": calibration,
            "query_modality": query_modality,
        }
        super().__init__(**settings, **kwargs)
        self._store = store

    @classmethod
    def from_params(
        cls,
        model: str | os.PathLike[str] | Embedder | OmniretrieveEmbedding,
        *,
        persist_dir: str | os.PathLike[str] | None = None,
        host: str | None = None,
        port: int = 8000,
        ssl: bool = False,
        headers: Mapping[str, str] | None = None,
        device: str | None = None,
        media_policy: MediaPolicy | None = None,
        calibration: str | None = None,
        query_modality: str = "text",
        **store_kwargs: Any,
    ) -> OmniretrieveVectorStore:
        """Open (or create) a store and wrap it: embedded in ``persist_dir``, or on a Chroma server.

        Args:
            model: the store's model: a hub id or directory (``"demo"``: the demo model shipped
                with omniretrieve), a ready omniretrieve ``Embedder``, or an
                ``OmniretrieveEmbedding`` (its embedder, so LlamaIndex and the store share it).
            persist_dir: directory of an embedded store (one writing process at a time).
            host: host of a Chroma server (``chroma run --path DIR --port N``), for several writers.
            port: the server's port.
            ssl: reach the server over HTTPS.
            headers: extra HTTP headers for the server (e.g. an auth token); not kept in the
                vector store's settings.
            device: torch device for a model loaded by name.
            media_policy: the ``omniretrieve.MediaPolicy`` media are read under, for a model
                loaded by name; default: omniretrieve's safe default (no URLs).
            calibration: see the class.
            query_modality: see the class.
            **store_kwargs: other ``Store`` options (``name``, ``timeout``, ``copy_media``,
                ``media_dir``, ``prior_count``...).

        Raises:
            InvalidInputError: neither or both of ``persist_dir`` and ``host``, or a bad model.
            StoreLockedError: another process writes to ``persist_dir``.
            StoreConnectionError: the server could not be reached.
        """
        if (persist_dir is None) == (host is None):
            raise InvalidInputError(
                "OmniretrieveVectorStore.from_params",
                "give persist_dir= (an embedded store) or host= and port= (a Chroma server), not both",
            )
        embedder = _embedder(model, device, media_policy)
        store = Store(
            embedder, path=persist_dir, host=host, port=port, ssl=ssl, headers=headers, **store_kwargs
        )
        return cls(store, calibration=calibration, query_modality=query_modality)

    @classmethod
    def class_name(cls) -> str:
        return "OmniretrieveVectorStore"

    @property
    def client(self) -> Store:
        """The omniretrieve ``Store``."""
        return self._store

    @property
    def store(self) -> Store:
        """The omniretrieve ``Store`` (the same as ``client``)."""
        return self._store

    def close(self) -> None:
        """Close the store (releases an embedded store's directory lock)."""
        self._store.close()

    # -- writing ---------------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Store nodes (see the class): text nodes with their embeddings, media embedded by the store.

        Args:
            nodes: LlamaIndex nodes.
            **add_kwargs: accepted for LlamaIndex's ``insert_kwargs``; none is used.

        Returns:
            The nodes' ids, in order.

        Raises:
            InvalidInputError: a node has no content, or metadata the store cannot keep (a nested
                dict, an empty list): raised before anything is written.
            OmniretrieveError: the first node that could not be stored (unreadable media, a wrong
                embedding dimension); the others are stored.
        """
        vectors: list[Any] = []
        documents: list[Document] = []
        items: list[ItemInput] = []
        ids: list[str | None] = []
        metadatas: list[Mapping[str, Any] | None] = []
        sources: list[str | None] = []
        for node in nodes:
            if not isinstance(node, BaseNode):
                raise InvalidInputError(describe(node), "not a LlamaIndex node")
            item = node_item(node)
            metadata = validate_metadata(node_metadata(node), name=f"node {node.node_id!r} metadata")
            source = file_source(node.metadata)
            if isinstance(item, Text) and node.embedding is not None:
                vectors.append(node.embedding)
                documents.append(Document.from_item(item, id=node.node_id, metadata=metadata, source=source))
            else:
                items.append(item)
                ids.append(node.node_id)
                metadatas.append(metadata)
                sources.append(source)
        results: list[WriteResult] = []
        if documents:
            results += self._store.add_vectors(vectors, documents, upsert=True)
        if items:
            results += self._store.upsert(items, ids=ids, metadatas=metadatas, sources=sources)
        for result in results:
            if result.error is not None:
                raise result.error
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node whose source document is ``ref_doc_id``."""
        self._store.delete(where={REF_DOC_ID_KEY: ref_doc_id})

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete nodes by id, by metadata filters, or both (nodes matching both); nothing if neither."""
        where = metadata_filters_to_where(filters)
        if not node_ids and where is None:
            return
        self._store.delete(ids=node_ids or None, where=where)

    def clear(self) -> None:
        """Not supported: the store deletes by id or filter only (delete by ``ref_doc_id`` instead)."""
        raise NotImplementedError(
            "omniretrieve's Store has no 'delete everything'; delete by ref_doc_id or node ids, "
            "or open a new store"
        )

    # -- reading ---------------------------------------------------------------------------------

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """The stored nodes with these ids (ids not stored are left out).

        Raises:
            InvalidInputError: ``filters`` were given, or no ids: the store reads by id only.
        """
        if filters is not None or node_ids is None:
            raise InvalidInputError(
                "get_nodes", "omniretrieve's Store reads nodes by id only: pass node_ids (and no filters)"
            )
        return [document_to_node(doc) for doc in self._store.get(node_ids) if doc is not None]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Search the query embedding over every kind of node: one list, calibrated, best first.

        Args:
            query: the LlamaIndex query (see the class for what is read).
            **kwargs: ``query_modality``, ``calibration``, ``modalities``, ``where`` (see the class).

        Returns:
            The nodes, their calibrated scores (``similarities``) and ids, best first.

        Raises:
            InvalidInputError: no query embedding, a mode other than the default, an unknown
                option, or a filter with no equivalent.
        """
        options = self._search_options(query, kwargs)
        if query.query_embedding is None:
            raise InvalidInputError(
                "VectorStoreQuery",
                "has no query_embedding: the store searches an embedding (is_embedding_query)",
            )
        hits = self._store.search_vector(query.query_embedding, query.similarity_top_k, **options)
        return VectorStoreQueryResult(
            nodes=[document_to_node(hit.document) for hit in hits],
            similarities=[hit.score for hit in hits],
            ids=[hit.document.id for hit in hits],
        )

    def _search_options(self, query: VectorStoreQuery, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``Store.search_vector`` options for a query: where, query modality, calibration, kinds."""
        unknown = sorted(set(kwargs) - set(QUERY_OPTIONS))
        if unknown:
            raise InvalidInputError(
                f"{unknown}", f"unknown query options; this store takes {list(QUERY_OPTIONS)}"
            )
        if VectorStoreQueryMode(query.mode) != VectorStoreQueryMode.DEFAULT:
            raise InvalidInputError(
                f"VectorStoreQuery(mode={VectorStoreQueryMode(query.mode).value!r})",
                "only the default mode is supported",
            )
        if query.filters is not None and kwargs.get("where") is not None:
            raise InvalidInputError(
                "where", "give filters (MetadataFilters) or where (omniretrieve's filter), not both"
            )
        doc_ids = {REF_DOC_ID_KEY: {"$in": list(query.doc_ids)}} if query.doc_ids else None
        where = join_where([metadata_filters_to_where(query.filters) or kwargs.get("where"), doc_ids])
        modality = kwargs.get("query_modality")
        if modality is None:
            modality = "image" if query.query_str == "" else self.query_modality
        options: dict[str, Any] = {"query_modality": _check_kind(modality), "where": where}
        calibration = kwargs.get("calibration", self.calibration)
        if calibration is not None:
            options["calibration"] = calibration
        if kwargs.get("modalities") is not None:
            options["modalities"] = kwargs["modalities"]
        return options

    # -- async -----------------------------------------------------------------------------------

    async def async_add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **add_kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)


def _check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise InvalidInputError(f"query_modality={kind!r}", f"must be one of {list(KINDS)}")
    return str(kind)


def _embedder(model: Any, device: str | None, media_policy: MediaPolicy | None) -> Embedder:
    """The store's embedder: a ready one (an ``OmniretrieveEmbedding``'s included) or one loaded by name."""
    if isinstance(model, OmniretrieveEmbedding):
        model = model.embedder
    name, ready = resolve_model(
        model, None, Embedder, role="embedder", options={"device": device, "media_policy": media_policy}
    )
    if ready is not None:
        embedder: Embedder = ready
        return embedder
    return OmniretrieveEmbedding(name, device=device, media_policy=media_policy).embedder
