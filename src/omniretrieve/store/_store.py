"""The :class:`Store` facade: each public method checks its arguments and hands over to one module."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from omniretrieve.calibration import DEFAULT_CALIBRATION, PRIOR_COUNT, Calibration, ModalityStats
from omniretrieve.documents import KINDS, Document, Kind, SearchHit
from omniretrieve.errors import InvalidInputError, OmniretrieveError, StoreError
from omniretrieve.store._backend import DEFAULT_TIMEOUT, check_location, open_backend
from omniretrieve.store._identity import check_identity
from omniretrieve.store._ingest import DEFAULT_BATCH_SIZE, Ingest, WriteResult
from omniretrieve.store._inspect import inspect_store
from omniretrieve.store._media import MediaCopies, MediaReader, media_folder
from omniretrieve.store._records import Records, Stored, check_ids, lookup
from omniretrieve.store._schema import DEFAULT_NAME, Collections, check_name, space_of
from omniretrieve.store._search import Search, candidates_wanted, query_kind
from omniretrieve.store._statistics import open_statistics
from omniretrieve.types import Audio, Image, ItemInput, Video, as_item

if TYPE_CHECKING:
    from omniretrieve.embedding import Embedder
    from omniretrieve.media import MediaLoader
    from omniretrieve.rerank import Reranker


class Store:
    """A multimodal document store on Chroma with calibrated, fused search (see :mod:`omniretrieve.store`).

    Args:
        embedder: The model that embeds documents and queries (an
            :class:`~omniretrieve.embedding.Embedder`). A store is bound to one embedding space:
            opening it with another model raises :class:`~omniretrieve.errors.EmbeddingSpaceMismatchError`.
            Every open also compares the model's vectors of a fixed probe set with the ones
            recorded (the fingerprint, :mod:`omniretrieve.store._identity`), even under one id.
        path: Directory of an embedded store (Chroma ``PersistentClient``); created if missing.
            Default ``./omniretrieve-store`` when ``host`` is not given. The store holds an
            exclusive lock on the directory until :meth:`close`.
        host: Host of a Chroma server (``chroma run --path DIR --port N``); switches to
            client-server mode (``HttpClient``), which several processes can write through.
        port: The server's port.
        ssl: Use HTTPS to reach the server.
        headers: Extra HTTP headers for the server (e.g. an auth token).
        timeout: Seconds to wait for the server on connect, read and write (Chroma's own client
            waits forever); ``None`` waits forever.
        name: The store's name, prefix of its Chroma collections (letters, digits, ``-``, ``_``).
        copy_media: Copy every media part into a content-addressed folder (``DIR/media``) and
            reference the copy, so results stay viewable after the originals move or when media
            were given in memory. Needs ``path`` or ``media_dir``.
        media_dir: Where copies go (default ``DIR/media`` for an embedded store).
        media: The :class:`~omniretrieve.media.MediaLoader` that reads media for hashing and
            copying (default: the embedder's, else one with the default policy).
        reranker: A default :class:`~omniretrieve.rerank.Reranker` for :meth:`search`.
        prior_count: Shrinkage of the per-kind means (see :mod:`omniretrieve.calibration`).
        allow_model_change: Open it even with another model id or fingerprint (not dimension):
            the new model becomes the store's and its history records the change. Nothing
            stored is re-embedded: only for vectors that still fit (a renamed model, say).

    Raises:
        StoreLockedError: another process (or store object) writes to this embedded directory.
        EmbeddingSpaceMismatchError: the store holds another model's embeddings.
        StoreConnectionError: the server could not be reached.
        InvalidInputError: bad name or arguments.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        path: str | os.PathLike[str] | None = None,
        host: str | None = None,
        port: int = 8000,
        ssl: bool = False,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        name: str = DEFAULT_NAME,
        copy_media: bool = False,
        media_dir: str | os.PathLike[str] | None = None,
        media: MediaLoader | None = None,
        reranker: Reranker | None = None,
        prior_count: float = PRIOR_COUNT,
        allow_model_change: bool = False,
    ) -> None:
        check_name(name)
        check_location(path, host, timeout)
        if not (isinstance(prior_count, int | float) and math.isfinite(prior_count) and prior_count >= 0):
            raise InvalidInputError(f"prior_count={prior_count!r}", "must be a finite number >= 0")
        self.embedder = embedder
        self.name = name
        self.reranker = reranker
        self.prior_count = float(prior_count)
        self.host = host
        self.port = port
        self._closed = False
        self._backend = open_backend(
            path=path, host=host, port=port, ssl=ssl, headers=headers, timeout=timeout
        )
        self.path = self._backend.directory
        try:
            self.media_dir = media_folder(media_dir, self.path)
            if copy_media and self.media_dir is None:
                raise InvalidInputError(
                    "copy_media", "a client-server store needs media_dir= to copy media into"
                )
            self.copy_media = bool(copy_media)
            self._collections = Collections(
                self._backend, name, space_of(embedder), allow_model_change=allow_model_change
            )
            created = self._collections.created
            self.identity = check_identity(self._collections, embedder, allow_model_change, created)
            self._statistics = open_statistics(self._collections)
        except BaseException:
            self._backend.close()
            raise
        read = MediaReader(media if media is not None else getattr(embedder, "media", None))
        self._records = Records(self.media_dir)
        self._copies = MediaCopies(self.media_dir, read)
        self._ingest = Ingest(
            self._collections,
            self._statistics,
            self._records,
            embedder,
            read,
            self._copies if copy_media else None,
        )
        self._search = Search(self._collections, self._statistics, self._records, self.prior_count)

    # Store.inspect(path=... or host=...): what a store holds, read without its model or a lock.
    inspect = staticmethod(inspect_store)

    @property
    def embedded(self) -> bool:
        """True for an embedded (on-disk, single-writer) store, False for client-server."""
        return self._backend.exclusive

    def close(self) -> None:
        """Release the Chroma client, the directory lock and the embedder's decoding processes. Idempotent.

        Statistics are saved on every write (one that failed is written here, see
        :mod:`omniretrieve.store._statistics`). The embedder stays usable: its decoding processes
        start again when it next needs them.
        """
        if self._closed:
            return
        self._closed = True
        self._search.close()
        self._statistics.close()  # writes what a failed statistics write left pending; never raises
        self._backend.close()
        close_workers = getattr(self.embedder, "close_workers", None)
        if callable(close_workers):
            close_workers()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- statistics ----------------------------------------------------------------------------

    def statistics(self) -> ModalityStats:
        """The current per-kind sums and counts of the stored embeddings (what ``"gap"`` centres on).

        Embedded: kept in memory, exact after every write. Client-server: read from the server's
        ``NAME.stats`` collection, so it includes every writer's writes.
        """
        self._check_open()
        return self._statistics.read()

    def recompute_statistics(self) -> ModalityStats:
        """Recount the statistics from every stored vector and replace the stored ones.

        Never needed in normal use (statistics follow every write). With a server, run it while no
        other process writes.
        """
        self._check_open()
        return self._statistics.recompute()

    # -- reading -------------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[Document | None]:
        """The stored documents for these ids, in order (``None`` where an id is not stored).

        Raises:
            InvalidInputError: ``ids`` is not a sequence of str.
        """
        ids, found = self._lookup(ids)
        return [
            self._records.document(i, found[i].metadata, found[i].document) if i in found else None
            for i in ids
        ]

    def get_vectors(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        """The stored (L2-normalised) vectors for these ids, in order (``None`` where not stored)."""
        ids, found = self._lookup(ids)
        return [found[i].vector.copy() if i in found else None for i in ids]

    def count(self, modality: Kind | None = None) -> int:
        """How many documents are stored (of one kind when ``modality`` is given)."""
        self._check_open()
        if modality is not None and modality not in KINDS:
            raise InvalidInputError(f"modality={modality!r}", f"must be one of {list(KINDS)}")
        cols = [self._collections.kind(kind) for kind in (KINDS if modality is None else (modality,))]
        return sum(int(col.count()) for col in cols if col is not None)

    def __len__(self) -> int:
        return self.count()

    # -- writing -------------------------------------------------------------------------------

    def add(
        self,
        items: Sequence[ItemInput],
        *,
        ids: Sequence[str | None] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        sources: Sequence[str | None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool | None = None,
        workers: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[WriteResult]:
        """Embed and store items; an id already stored is left as it is (status ``"exists"``).

        Ids default to the SHA-256 of the content, so adding the same content twice is a no-op (it
        is not even embedded again).

        Args:
            items: Texts (plain ``str``), ``Image``/``Audio``/``Video``, PIL images, ``Combined``
                items or dicts with ``text``/``image``/``audio``/``video`` keys.
            ids: One id (or ``None`` for the content hash) per item.
            metadatas: One flat metadata mapping (or ``None``) per item.
            sources: One source URI (or ``None``) per item.
            batch_size: Items read, looked up, embedded and written per step. Steps overlap
                (:mod:`omniretrieve.store._pipeline`): the next batches decode in worker
                processes while this one is encoded and the previous one is written.
            show_progress: Show a progress bar over the items.
            workers: Processes that decode media files (JPEGs at reduced scale where the model
                shrinks them anyway); 0 decodes in this process; ``None``: one per CPU once a call
                holds enough media files (the embedder's ``decode_workers`` when set).
            progress: Called with the number of items done so far, as the write goes.

        Returns:
            One :class:`WriteResult` per item, in order. A bad item (unreadable media, wrong
            metadata, a model failure) fails alone.
        """
        self._check_open()
        return self._ingest.items(
            items, ids, metadatas, sources, "add", batch_size, show_progress, workers, progress
        )

    def upsert(
        self,
        items: Sequence[ItemInput],
        *,
        ids: Sequence[str | None] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        sources: Sequence[str | None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool | None = None,
        workers: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[WriteResult]:
        """Like :meth:`add`, but an existing id is replaced: vector, content and metadata.

        The new metadata replaces the old entirely (keys not given again are removed). An item
        whose content, source and metadata equal the stored ones is left alone (``"unchanged"``).
        """
        self._check_open()
        return self._ingest.items(
            items, ids, metadatas, sources, "upsert", batch_size, show_progress, workers, progress
        )

    def add_vectors(
        self, vectors: Sequence[Any] | np.ndarray, documents: Sequence[Document], *, upsert: bool = False
    ) -> list[WriteResult]:
        """Store documents with vectors computed elsewhere (the vector-level API).

        Each vector is checked (dimension, finite, non-zero) and L2-normalised; each document's
        kind (from its parts) picks its collection.

        Args:
            vectors: One vector per document, ``(n, dimension)``.
            documents: The documents (see :meth:`Document.from_item`).
            upsert: Replace existing ids instead of leaving them.

        Returns:
            One :class:`WriteResult` per document.
        """
        self._check_open()
        return self._ingest.vectors(vectors, documents, "upsert" if upsert else "add")

    def delete(self, ids: Sequence[str] | None = None, *, where: Mapping[str, Any] | None = None) -> int:
        """Delete documents by id, by metadata filter, or both (documents matching both).

        Returns:
            How many documents were deleted.

        Raises:
            InvalidInputError: neither ``ids`` nor ``where`` given, or a bad filter.
            StoreError: Chroma failed.
        """
        self._check_open()
        return self._ingest.delete(ids, where)

    def copy_medium(self, part: Image | Audio | Video, *, name: str | None = None) -> str | None:
        """Copy one media part into the content-addressed media folder; return the copy's path.

        Files and URLs are copied byte for byte (named by the SHA-256 of the bytes, with the
        original's extension); in-memory images are saved as PNG, in-memory audio as WAV.
        In-memory video frames are not kept (``None``).

        Args:
            part: The media part.
            name: The original file name or URL, for the extension (default: the part's source).

        Raises:
            MediaError: the source could not be read.
            InvalidInputError: the store has no media folder.
        """
        return self._copies.copy(part, name=name)

    # -- search --------------------------------------------------------------------------------

    def search(
        self,
        query: ItemInput,
        k: int = 10,
        *,
        calibration: Calibration = DEFAULT_CALIBRATION,
        where: Mapping[str, Any] | None = None,
        modalities: Sequence[Kind] | None = None,
        reranker: Reranker | None = None,
        rerank_top_n: int | None = None,
    ) -> list[SearchHit]:
        """One ranked list over every kind of stored document.

        Args:
            query: Any accepted input: text (a plain ``str``), an image, audio, video, or a
                combined item.
            k: How many hits to return.
            calibration: ``"auto"`` (default: ``"gap"`` or ``"none"``, chosen once per store
                state from whether the store shows a modality gap), ``"gap"`` (modality-gap
                removal, scores comparable across kinds), ``"rrf"`` (reciprocal-rank fusion) or
                ``"none"`` (raw cosine); see :mod:`omniretrieve.calibration`. Whichever, the hits are the ``k``
                best by that score over the whole store, and ``search(q, k)`` is the first ``k``
                of ``search(q, k2)`` for ``k < k2`` (:mod:`omniretrieve.topk`).
            where: A filter on your metadata (see :func:`chroma_where`).
            modalities: Only search these document kinds (default: all).
            reranker: Rerank with this (default: the store's ``reranker``, if set).
            rerank_top_n: How many of the best hits the reranker sees (default ``max(k, 20)``).

        Returns:
            Up to ``k`` hits, best first: by ``score`` or, when reranked, by ``rerank_score``.

        Raises:
            InvalidInputError: bad query, k, calibration or filter.
            InvalidVectorError: the query embedding is not finite.
            StoreError: Chroma failed.
        """
        self._check_open()
        reranker = reranker if reranker is not None else self.reranker
        n = candidates_wanted(k, reranker, rerank_top_n)
        item = as_item(query)
        vector = self.embedder.embed_query(item)
        kind, parts = query_kind(item)
        hits = self._search.vector(vector, n, kind, parts, calibration, where, modalities)
        if reranker is None or not hits:
            return hits[:k]
        return self._search.rerank(reranker, item, hits, k)

    def search_vector(
        self,
        vector: Any,
        k: int = 10,
        *,
        query_modality: Kind = "text",
        calibration: Calibration = DEFAULT_CALIBRATION,
        where: Mapping[str, Any] | None = None,
        modalities: Sequence[Kind] | None = None,
    ) -> list[SearchHit]:
        """Search with a query embedding computed elsewhere (the vector-level API).

        Args:
            vector: The query embedding, ``(dimension,)``.
            k: How many hits.
            query_modality: The query's kind, whose mean centres it under ``"gap"`` (and
                ``"auto"`` when it chooses ``"gap"``).
            calibration: See :meth:`search`.
            where: See :meth:`search`.
            modalities: See :meth:`search`.

        Raises:
            InvalidVectorError: NaN/Inf values, wrong dimension or all zeros.
        """
        self._check_open()
        parts = (query_modality,) if query_modality != "combined" else ()
        return self._search.vector(vector, k, query_modality, parts, calibration, where, modalities)

    # -- helpers -------------------------------------------------------------------------------

    @property
    def _stats_col(self) -> Any:
        """The statistics collection (tests reach it to simulate a crash between two writes)."""
        return self._collections.stats

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self._backend.describe(self.name)} is closed; open a new Store")

    def _lookup(self, ids: Sequence[str]) -> tuple[list[str], dict[str, Stored]]:
        self._check_open()
        checked = check_ids(ids)
        try:
            return checked, lookup(self._collections, checked)
        except OmniretrieveError:
            raise
        except Exception as exc:
            raise StoreError(f"could not read from store {self._collections.describe()}: {exc}") from exc
