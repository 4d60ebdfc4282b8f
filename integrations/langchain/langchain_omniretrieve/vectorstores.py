"""A LangChain vector store over an omniretrieve store: texts, images and combined documents together."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore
from omniretrieve import Embedder, Image, InvalidInputError, Store
from omniretrieve.documents import Kind, kind_of
from omniretrieve.types import ItemInput

from langchain_omniretrieve import _mmr
from langchain_omniretrieve._convert import from_langchain, query_item, search_options, to_langchain
from langchain_omniretrieve.embeddings import OmniretrieveEmbeddings

_WRITE_OPTIONS = frozenset({"batch_size"})


class OmniretrieveVectorStore(VectorStore):
    """A multimodal vector store: texts, images and captioned images in one index, one ranked list.

    It wraps an omniretrieve ``Store`` (Chroma underneath, one collection per modality, scores
    calibrated across modalities). Adding a document whose id exists replaces it; without ids, a
    document's id is the SHA-256 of its content, so adding the same content twice stores it once.

    Setup:
        ```bash
        pip install -U langchain-omniretrieve
        ```

    Key init args (connection options as ``langchain_chroma.Chroma`` takes them):
        embedding: ``OmniretrieveEmbeddings`` (or an omniretrieve ``Embedder``). What it may read
            (URLs, folders) is its ``media_policy``.
        collection_name: the store's name (prefix of its Chroma collections).
        persist_directory: where an embedded store lives on disk (default ``./omniretrieve-store``).
        host, port, ssl, headers: a Chroma server (``chroma run --path DIR --port 8000``) instead
            of a directory, through which several processes can write: its host, port (default
            8000), HTTPS or not, and HTTP headers (e.g. an auth token).
        store_options: further ``omniretrieve.Store`` options (``timeout``, ``copy_media``,
            ``media_dir``, ``prior_count``) where ``Chroma`` takes ``client_settings``.
        store: an ``omniretrieve.Store`` already open, instead of all of the above (as ``Chroma``
            takes ``client``).
        calibration: ``"gap"`` (default), ``"rrf"`` or ``"none"``.
        reranker: an omniretrieve ``Reranker`` used by every similarity search (optional).

    Instantiate:
        ```python
        from langchain_omniretrieve import OmniretrieveEmbeddings, OmniretrieveVectorStore

        embeddings = OmniretrieveEmbeddings(model="path/to/clip-model")
        vector_store = OmniretrieveVectorStore(embedding=embeddings, persist_directory="index")
        # or through a Chroma server:
        vector_store = OmniretrieveVectorStore(embedding=embeddings, host="localhost", port=8000)
        ```

    Add and delete:
        ```python
        from langchain_core.documents import Document

        vector_store.add_texts(["a red circle"], metadatas=[{"album": "shapes"}], ids=["cap-1"])
        vector_store.add_images(uris=["photos/circle.png"], metadatas=[{"album": "shapes"}])
        # an image with its caption, as one document:
        vector_store.add_documents([Document(page_content="slide 3", metadata={"image_uri": "s3.png"})])
        vector_store.delete(ids=["cap-1"])
        vector_store.delete(filter={"album": "shapes"})
        ```

    Search:
        ```python
        vector_store.similarity_search("a red circle", k=2, filter={"album": "shapes"})
        vector_store.similarity_search_by_image("query.png", k=2)
        for doc, score in vector_store.similarity_search_with_score("a red circle", k=2):
            print(f"{score:.3f} {doc.metadata.get('modality', 'text')} {doc.page_content}")
        # relevant and diverse (maximal marginal relevance), over texts and images alike:
        vector_store.max_marginal_relevance_search("a red circle", k=4, fetch_k=20, lambda_mult=0.5)
        ```

    Use as retriever:
        ```python
        vector_store.as_retriever(search_kwargs={"k": 3}).invoke("a red circle")
        vector_store.as_retriever(search_type="mmr", search_kwargs={"k": 3}).invoke("a red circle")
        # or, with the scores in each document's metadata: OmniretrieveRetriever(store=vector_store.store)
        ```

    Async: every method has its ``a``-prefixed twin (``aadd_documents``, ``asimilarity_search``,
    ``aadd_images``, ``asimilarity_search_by_image``, ``amax_marginal_relevance_search``,
    ``adelete``, ``aget_by_ids`` ...).

    Documents come back with the metadata they were added with, plus ``modality`` and
    ``image_uri`` / ``audio_uri`` / ``video_uri`` on documents with media (no ``modality``: text);
    a media-only document's ``page_content`` is its path or URL. ``OmniretrieveRetriever`` returns
    the same keys, plus its scores. Media are kept by reference (``store_options={"copy_media":
    True}`` keeps copies with the index).
    """

    def __init__(
        self,
        embedding: OmniretrieveEmbeddings | Embedder | None = None,
        *,
        collection_name: str | None = None,
        persist_directory: str | os.PathLike[str] | None = None,
        host: str | None = None,
        port: int | None = None,
        ssl: bool = False,
        headers: Mapping[str, str] | None = None,
        store_options: Mapping[str, Any] | None = None,
        store: Store | None = None,
        calibration: str = "gap",
        reranker: Any = None,
    ) -> None:
        location: dict[str, Any] = {"name": collection_name, "path": persist_directory, "host": host}
        location.update(port=port, ssl=ssl or None, headers=headers)
        if store is None:
            self._store = _open_store(_embedder_of(embedding), location, store_options)
        elif embedding is not None or store_options or any(v is not None for v in location.values()):
            raise InvalidInputError(
                "OmniretrieveVectorStore",
                "give either `store` (a Store already open), or `embedding` with where the store is "
                "(persist_directory, or host/port/ssl/headers), not both",
            )
        elif not isinstance(store, Store):
            raise InvalidInputError(type(store).__name__, "`store` must be an omniretrieve Store")
        else:
            self._store = store
        self._defaults: dict[str, Any] = {"calibration": calibration, "reranker": reranker}

    @property
    def store(self) -> Store:
        """The omniretrieve store underneath (for ``OmniretrieveRetriever`` or the core API)."""
        return self._store

    @property
    def embeddings(self) -> Embeddings:
        """The store's embedder as LangChain embeddings."""
        return OmniretrieveEmbeddings(embedder=self._store.embedder)

    def close(self) -> None:
        """Close the store (release the directory lock). Idempotent."""
        self._store.close()

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store texts (a text is always text, even when it looks like a path or URL).

        Args:
            texts: The texts.
            metadatas: One flat metadata dict per text (str, int, float, bool or lists of them).
            ids: One id per text (``None`` entries: the content's SHA-256). An existing id is replaced.
            **kwargs: ``batch_size``.

        Returns:
            The ids, in order.

        Raises:
            OmniretrieveError: the first item that could not be stored (the others are stored).
        """
        return _write(self._store, list(texts), metadatas, ids, kwargs)

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async :meth:`add_texts`."""
        return await run_in_executor(None, self.add_texts, list(texts), metadatas, ids=ids, **kwargs)

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Embed and store LangChain documents.

        A document is text, unless its metadata names media (``image_uri``, ``audio_uri``,
        ``video_uri``): it is then that medium, or a combined document with ``page_content`` as its
        text part. Ids come from ``ids=`` or else each document's ``id`` (else the content hash).

        Args:
            documents: The documents (not modified).
            **kwargs: ``ids`` and ``batch_size``.

        Returns:
            The ids, in order.
        """
        ids = kwargs.pop("ids", None)
        if ids is None:
            ids = [doc.id for doc in documents]
        converted = [from_langchain(doc) for doc in documents]
        return _write(
            self._store, [item for item, _ in converted], [meta for _, meta in converted], ids, kwargs
        )

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Async :meth:`add_documents`."""
        return await run_in_executor(None, self.add_documents, documents, **kwargs)

    def add_images(
        self,
        uris: list[str],
        metadatas: list[dict[str, Any]] | None = None,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store images (same signature as ``langchain_chroma.Chroma.add_images``).

        Args:
            uris: Image paths (or URLs when the media policy allows them).
            metadatas: One flat metadata dict per image.
            ids: One id per image (default: the SHA-256 of the image bytes).
            **kwargs: ``batch_size``.

        Returns:
            The ids, in order.

        Raises:
            MediaError: an image could not be read (the others are stored).
        """
        return _write(self._store, [Image(uri) for uri in uris], metadatas, ids, kwargs)

    async def aadd_images(
        self,
        uris: list[str],
        metadatas: list[dict[str, Any]] | None = None,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async :meth:`add_images`."""
        return await run_in_executor(None, self.add_images, uris, metadatas, ids, **kwargs)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id and/or metadata filter (``filter=`` or ``where=``).

        Ids that are not stored are ignored. Deleting everything takes an explicit filter: with
        neither ids nor a filter this raises instead of emptying the store.

        Returns:
            True.
        """
        unknown = sorted(set(kwargs) - {"filter", "where"})
        if unknown:
            raise InvalidInputError(f"options {unknown}", "unknown; delete takes ids and filter (or where)")
        where = kwargs.get("filter") if kwargs.get("filter") is not None else kwargs.get("where")
        self._store.delete(ids=ids, where=where)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids, in the order given; ids not stored are skipped."""
        return [to_langchain(doc) for doc in self._store.get(list(ids)) if doc is not None]

    def _search(self, query: Any, k: int, kwargs: Mapping[str, Any]) -> list[tuple[Document, float]]:
        hits = self._store.search(query_item(query), **search_options(self._defaults, {**kwargs, "k": k}))
        return [(to_langchain(hit.document), _score(hit)) for hit in hits]

    def similarity_search(self, query: Any, k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` documents most relevant to a query, any modality, best first.

        Args:
            query: A text (always text), or an image / combined query: ``{"image": "q.png"}``,
                ``{"text": "...", "image": "q.png"}`` or an omniretrieve item.
            k: How many documents.
            **kwargs: ``filter`` (or ``where``), ``modalities``, ``calibration``, ``reranker``,
                ``rerank_top_n``.
        """
        return [doc for doc, _ in self._search(query, k, kwargs)]

    def similarity_search_with_score(
        self, query: Any, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Like :meth:`similarity_search`, with each document's score (higher is better).

        The score is the calibrated similarity (a cosine in ``[-1, 1]`` for ``"gap"`` and
        ``"none"``, ``1 / (60 + rank)`` for ``"rrf"``), or the reranker's score when one is used.
        """
        return self._search(query, k, kwargs)

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to a query embedding.

        Args:
            embedding: A vector from this store's embeddings.
            k: How many documents.
            **kwargs: ``filter`` (or ``where``), ``modalities``, ``calibration``, and
                ``query_modality`` (the kind the vector came from, default ``"text"``).
        """
        query_modality, options = _vector_options(self._defaults, kwargs, k)
        hits = self._store.search_vector(embedding, query_modality=query_modality, **options)
        return [to_langchain(hit.document) for hit in hits]

    def max_marginal_relevance_search(
        self, query: Any, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        """Documents relevant to a query and diverse among themselves (maximal marginal relevance).

        MMR (langchain-core's ``maximal_marginal_relevance``) picks ``k`` of the ``fetch_k`` best
        candidates of the calibrated search, in the order it picks them. Its similarities are
        gap-free cosines (each vector centred on its kind's mean, see ``_mmr``): a picture and its
        own caption count as near-duplicates. ``calibration="none"``: raw cosines. No reranking.

        Args:
            query: A text (always text), or an image / combined query (as for
                :meth:`similarity_search`).
            k: How many documents.
            fetch_k: How many candidates MMR chooses from (at least ``k`` are fetched).
            lambda_mult: From ``0`` (most diverse) to ``1`` (most relevant: the similarity order).
            **kwargs: ``filter`` (or ``where``), ``modalities``, ``calibration``.

        Raises:
            InvalidInputError: a bad query or option.
            MediaError: the query's media could not be read.
        """
        item = query_item(query)
        vector = self._store.embedder.embed_query(item)
        return self.max_marginal_relevance_search_by_vector(
            vector.tolist(), k, fetch_k, lambda_mult, query_modality=kind_of(item), **kwargs
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Like :meth:`max_marginal_relevance_search`, from a vector of this store's embeddings.

        ``query_modality=`` names the kind the vector came from (default ``"text"``).
        """
        _mmr.check_mmr_options(k, fetch_k, lambda_mult)
        query_modality, options = _vector_options(self._defaults, kwargs, max(k, fetch_k))
        hits = self._store.search_vector(embedding, query_modality=query_modality, **options)
        raw = options.get("calibration") == "none"
        chosen = _mmr.select(
            self._store, hits, embedding, query_modality, k=k, lambda_mult=lambda_mult, raw=raw
        )
        return [to_langchain(hit.document) for hit in chosen]

    def similarity_search_by_image(self, uri: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` documents most relevant to an image (``langchain_chroma``'s method name).

        Args:
            uri: An image path (or URL / ``data:`` URI, as the media policy allows).
            k: How many documents.
            **kwargs: As for :meth:`similarity_search`.
        """
        return self.similarity_search(Image(uri), k, **kwargs)

    def similarity_search_by_image_with_relevance_score(
        self, uri: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Like :meth:`similarity_search_by_image`, with scores (see :meth:`similarity_search_with_score`)."""
        return self.similarity_search_with_score(Image(uri), k, **kwargs)

    async def asimilarity_search_by_image(self, uri: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Async :meth:`similarity_search_by_image`."""
        return await run_in_executor(None, self.similarity_search_by_image, uri, k, **kwargs)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine scores in ``[-1, 1]`` become relevance in ``[0, 1]``; RRF scores already are."""
        if self._defaults["calibration"] == "rrf":
            return lambda score: score
        return lambda score: (score + 1.0) / 2.0

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> OmniretrieveVectorStore:
        """Create a store and add texts.

        Args:
            texts: The texts.
            embedding: ``OmniretrieveEmbeddings`` (the store needs omniretrieve's embedder).
            metadatas: One metadata dict per text.
            ids: One id per text.
            **kwargs: The constructor's options (``persist_directory`` or ``host``/``port``/...,
                ``collection_name``, ``calibration``, ``reranker`` ...).
        """
        store = cls(embedding=embedding, **kwargs)  # type: ignore[arg-type]
        return _filled(store, lambda: store.add_texts(texts, metadatas, ids=ids))

    @classmethod
    def from_documents(
        cls, documents: list[Document], embedding: Embeddings, **kwargs: Any
    ) -> OmniretrieveVectorStore:
        """Create a store and add documents (media named by ``image_uri`` etc. included).

        Args:
            documents: The documents; their ids are used when set.
            embedding: ``OmniretrieveEmbeddings``.
            **kwargs: ``ids``, and the constructor's options (``persist_directory`` or
                ``host``/``port``/..., ``collection_name``, ``calibration``, ``reranker`` ...).
        """
        ids = kwargs.pop("ids", None)
        store = cls(embedding=embedding, **kwargs)  # type: ignore[arg-type]
        return _filled(store, lambda: store.add_documents(documents, ids=ids))

    @classmethod
    async def afrom_documents(
        cls, documents: list[Document], embedding: Embeddings, **kwargs: Any
    ) -> OmniretrieveVectorStore:
        """Async :meth:`from_documents`."""
        return await run_in_executor(None, cls.from_documents, documents, embedding, **kwargs)


def _filled(store: OmniretrieveVectorStore, add: Callable[[], object]) -> OmniretrieveVectorStore:
    """``store`` after ``add()``; closed (its directory lock released) if adding fails."""
    try:
        add()
    except BaseException:
        store.close()
        raise
    return store


def _embedder_of(embedding: Any) -> Embedder:
    if isinstance(embedding, OmniretrieveEmbeddings):
        return embedding.omniretrieve_embedder
    if isinstance(embedding, Embedder):
        return embedding
    raise InvalidInputError(
        type(embedding).__name__,
        "`embedding` must be OmniretrieveEmbeddings or an omniretrieve Embedder: the store embeds texts and media "
        "with omniretrieve's embedder",
    )


def _score(hit: Any) -> float:
    return float(hit.rerank_score if hit.rerank_score is not None else hit.score)


def _open_store(
    embedder: Embedder, location: Mapping[str, Any], store_options: Mapping[str, Any] | None
) -> Store:
    """An omniretrieve ``Store`` at ``location`` (an option given as ``None`` takes the Store's default)."""
    options = dict(store_options or {})
    clash = sorted(set(options) & {"embedder", *location})
    if clash:
        raise InvalidInputError(
            f"store_options {clash}",
            "have their own parameters: embedding, collection_name, persist_directory, host, port, ssl, headers",
        )
    given = {key: value for key, value in location.items() if value is not None}
    return Store(embedder, **given, **options)


def _write(
    store: Store,
    items: Sequence[ItemInput],
    metadatas: Sequence[Mapping[str, Any] | None] | None,
    ids: Sequence[str | None] | None,
    kwargs: Mapping[str, Any],
) -> list[str]:
    """Upsert items into ``store``; raise the first item's error, if any."""
    unknown = sorted(set(kwargs) - _WRITE_OPTIONS)
    if unknown:
        raise InvalidInputError(
            f"options {unknown}", f"unknown; adding takes ids, metadatas and {sorted(_WRITE_OPTIONS)}"
        )
    if metadatas is not None and len(metadatas) != len(items):
        raise InvalidInputError("metadatas", f"has {len(metadatas)} entries for {len(items)} items")
    if ids is not None and len(ids) != len(items):
        raise InvalidInputError("ids", f"has {len(ids)} entries for {len(items)} items")
    results = store.upsert(list(items), ids=ids, metadatas=metadatas, **kwargs)
    for result in results:
        if result.error is not None:
            raise result.error
    return [str(result.id) for result in results]


def _vector_options(
    defaults: Mapping[str, Any], kwargs: Mapping[str, Any], k: int
) -> tuple[Kind, dict[str, Any]]:
    """``query_modality`` and the ``Store.search_vector`` options of a search by vector or by MMR."""
    options = dict(kwargs)
    query_modality: Kind = options.pop("query_modality", "text")
    for name in ("reranker", "rerank_top_n"):
        if options.get(name) is not None:
            raise InvalidInputError(
                name, "a search by vector or by MMR does not rerank: use similarity_search to rerank"
            )
    merged = search_options(defaults, {**options, "k": k})
    merged.pop("reranker", None)
    merged.pop("rerank_top_n", None)
    return query_modality, merged
