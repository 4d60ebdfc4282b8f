"""Writing to the store: plan each item, embed what must be, write in Chroma-sized batches, report per item.

One write (``add``, ``upsert``, ``add_vectors``) goes through these steps, batch by batch (for
``add``/``upsert`` the batches overlap in a :class:`~._pipeline.Pipeline`: decoding in worker
processes, encoding, and writing in a writer thread run at the same time):

1. each item is read once (media files and URLs into bytes: what is hashed is what is embedded),
   hashed, and made a :class:`~omniretrieve.documents.Document`; a bad item fails alone;
2. the batch is split into rounds in which each id appears once (later duplicates apply later);
3. per round, the ids are looked up (:meth:`Ingest.plan`): ``add`` asks only which exist (one
   ``get(include=[])`` per collection, cheap) and leaves those alone (``"exists"``); ``upsert``
   reads the stored records and leaves unchanged ones alone (``"unchanged"``);
4. the rest is embedded, copied (``copy_media``) and written per kind, in chunks Chroma takes; a
   chunk Chroma refuses as invalid is retried item by item, so a bad item fails alone. A failure of
   the store itself (a full, read-only or failing disk, a dead server) is not retried: the rest of
   the call fails at once with that :class:`StoreError`, and what was written before it is kept;
5. the statistics follow the change (:mod:`._statistics`), batch by batch; one whose statistics
   write failed is written with the next batch, or again before the call returns. With a server,
   an ``add`` tags its records with a token and reads them back: an id another writer added first
   is ``"exists"`` for this one and counts once.

New collections keep Chroma's default HNSW settings: no other ``batch_size``,
``sync_threshold`` or ``num_threads`` measured faster here (``benchmarks/results/ingest.json``,
``hnsw``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np

from omniretrieve.calibration import ModalityStats
from omniretrieve.documents import Document, content_sha256
from omniretrieve.errors import InvalidInputError, OmniretrieveError, StoreError
from omniretrieve.store._backend import ChromaRefusal
from omniretrieve.store._filters import chroma_where
from omniretrieve.store._media import MediaCopies, MediaReader
from omniretrieve.store._pipeline import Pipeline, existing_ids, rounds
from omniretrieve.store._records import Records, Stored, check_ids, full_replace, lookup
from omniretrieve.store._schema import K_WRITE, Collections
from omniretrieve.store._statistics import Statistics
from omniretrieve.types import (
    Audio,
    Combined,
    Image,
    ItemInput,
    NormalizedItem,
    Text,
    Video,
    as_item,
    describe,
    read_into,
)
from omniretrieve.vectors import check_vector

if TYPE_CHECKING:
    from omniretrieve.embedding import Embedder

DEFAULT_BATCH_SIZE = 64
"""Items embedded and written per step by :meth:`Store.add` / :meth:`Store.upsert`."""

WriteStatus: TypeAlias = Literal["added", "updated", "unchanged", "exists", "failed"]
"""The outcome of writing one item:

* ``added``: stored under a new id;
* ``updated``: the id existed (``upsert``); its vector, content and metadata were replaced;
* ``unchanged``: the id existed with the same content and metadata (``upsert``): nothing written;
* ``exists``: the id existed (``add``): nothing written, the stored document kept;
* ``failed``: nothing written for this item; ``error`` says why.
"""

Mode: TypeAlias = Literal["add", "upsert"]


@dataclass(frozen=True)
class WriteResult:
    """The outcome for one item of a write.

    Attributes:
        index: The item's position in the call.
        id: The document id (``None`` when the item failed before it had one).
        status: See :data:`WriteStatus`.
        error: Why the item failed, else ``None``.
    """

    index: int
    id: str | None
    status: WriteStatus
    error: OmniretrieveError | None = None

    @property
    def ok(self) -> bool:
        """True unless the item failed."""
        return self.status != "failed"


@dataclass
class Entry:
    """One item on its way into the store."""

    index: int
    doc: Document
    item: NormalizedItem | None = None  # what is embedded (media read into bytes once)
    original: NormalizedItem | None = None  # as given (file names, for copies' extensions)
    vector: np.ndarray | None = None

    def failed(self, error: OmniretrieveError) -> WriteResult:
        return WriteResult(self.index, self.doc.id, "failed", error)


class Ingest:
    """Writes items, documents with vectors, and deletions into one store.

    Args:
        collections: The store's collections.
        statistics: Its statistics, which follow every write.
        records: Documents <-> records.
        embedder: The model that embeds items.
        read: Reads media sources to bytes.
        copies: Where media copies go when the store keeps them (``copy_media``), else ``None``.
    """

    def __init__(
        self,
        collections: Collections,
        statistics: Statistics,
        records: Records,
        embedder: Embedder,
        read: MediaReader,
        copies: MediaCopies | None,
    ) -> None:
        self.collections = collections
        self.statistics = statistics
        self.records = records
        self.embedder = embedder
        self.read = read
        self.copies = copies
        self.dimension = collections.dimension
        self.down: StoreError | None = None
        """The store-level failure that stopped the current write (the rest of it fails with it)."""

    # -- entry points --------------------------------------------------------------------------

    def items(
        self,
        items: Sequence[ItemInput],
        ids: Sequence[str | None] | None,
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        sources: Sequence[str | None] | None,
        mode: Mode,
        batch_size: int,
        show_progress: bool | None,
        workers: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[WriteResult]:
        """Embed and write items (``Store.add`` / ``Store.upsert``); one result per item, in order.

        Batches flow through a :class:`~._pipeline.Pipeline`: this thread reads, hashes and looks
        up batch ``k + 1`` while worker processes decode it, encodes batch ``k``, and a writer
        thread writes batch ``k - 1``.
        """
        n = _check_items(items, ids, metadatas, sources, batch_size)
        results: list[WriteResult | None] = [None] * n
        self.down = None
        with Pipeline(
            self, mode, results, workers=workers, progress=progress, show=bool(show_progress)
        ) as pipe:
            for lo in range(0, n, batch_size):
                entries: list[Entry] = []
                for i in range(lo, min(lo + batch_size, n)):
                    try:
                        entries.append(self._entry(i, items[i], ids, metadatas, sources))
                    except OmniretrieveError as exc:
                        pipe.record([WriteResult(i, ids[i] if ids is not None else None, "failed", exc)])
                pipe.feed(entries)
        self.statistics.flush()  # a batch whose statistics write failed: one more try before returning
        return [r for r in results if r is not None]

    def vectors(
        self, vectors: Sequence[Any] | np.ndarray, documents: Sequence[Document], mode: Mode
    ) -> list[WriteResult]:
        """Write documents with vectors computed elsewhere (``Store.add_vectors``)."""
        if len(vectors) != len(documents):
            raise InvalidInputError("vectors", f"{len(vectors)} vectors for {len(documents)} documents")
        results: list[WriteResult | None] = [None] * len(documents)
        entries: list[Entry] = []
        self.down = None
        for i, (vec, doc) in enumerate(zip(vectors, documents, strict=True)):
            if not isinstance(doc, Document):
                error = InvalidInputError(f"documents[{i}]", "is not a Document")
                results[i] = WriteResult(i, None, "failed", error)
                continue
            try:
                entries.append(Entry(i, doc, vector=check_vector(vec, self.dimension, f"vectors[{i}]")))
            except OmniretrieveError as exc:
                results[i] = WriteResult(i, doc.id, "failed", exc)
        for rnd in rounds(entries):
            for sl in self.collections.slices(len(rnd)):
                for r in self._write(rnd[sl], mode):
                    results[r.index] = r
        self.statistics.flush()
        return [r for r in results if r is not None]

    def delete(self, ids: Sequence[str] | None, where: Mapping[str, Any] | None) -> int:
        """Delete by id, by filter, or both (``Store.delete``); return how many were deleted."""
        if ids is None and not where:
            raise InvalidInputError(
                "delete", "give ids=[...] and/or where={...} (an empty filter would delete all)"
            )
        id_list = check_ids(ids) if ids is not None else None
        if id_list is not None and not id_list:
            return 0
        cw = chroma_where(where)
        batches: list[list[str] | None] = (
            [id_list[sl] for sl in self.collections.slices(len(id_list))] if id_list is not None else [None]
        )
        delta = ModalityStats(self.dimension)
        deleted = 0
        try:
            for kind, col in self.collections.existing().items():
                for batch in batches:
                    got = col.get(ids=batch, where=cw, include=["embeddings"])
                    found = list(got["ids"])
                    for dsl in self.collections.slices(len(found)):
                        col.delete(ids=found[dsl])
                        delta.remove(kind, np.asarray(got["embeddings"][dsl], dtype=np.float32))
                        deleted += len(found[dsl])
        except OmniretrieveError:
            raise
        except Exception as exc:
            raise StoreError(f"could not delete from store {self.collections.describe()}: {exc}") from exc
        finally:
            self.statistics.changed(delta)
        return deleted

    # -- planning ------------------------------------------------------------------------------

    def _entry(
        self,
        i: int,
        given: ItemInput,
        ids: Sequence[str | None] | None,
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        sources: Sequence[str | None] | None,
    ) -> Entry:
        item = as_item(given)
        material = _materialize(item, self.read)
        doc = Document.from_item(
            item,
            id=ids[i] if ids is not None else None,
            metadata=metadatas[i] if metadatas is not None else None,
            source=sources[i] if sources is not None else None,
            sha256=content_sha256(material, reader=self.read),
        )
        return Entry(i, doc, item=material, original=item)

    def _write(self, entries: list[Entry], mode: Mode) -> list[WriteResult]:
        """Write one round of documents with vectors (unique ids): look up, copy media, write, count."""
        todo, existing, results = self.plan(entries, mode)
        return results + self.store(todo, existing)

    def plan(
        self, entries: list[Entry], mode: Mode
    ) -> tuple[list[Entry], dict[str, Stored], list[WriteResult]]:
        """Look up one round (unique ids): what to write, what it replaces, the results of the rest.

        The rest is ``exists``, ``unchanged``, or failed when the store is down. ``add`` only asks Chroma which ids exist (no vectors or metadata are read); ``upsert``
        reads the stored records, to leave unchanged ones alone and to replace the others.
        """
        if self.down is not None:
            return [], {}, [e.failed(self.down) for e in entries]
        try:
            if mode == "add":
                found = existing_ids(self.collections, [e.doc.id for e in entries])
                existing: dict[str, Stored] = {}
            else:
                existing = lookup(self.collections, [e.doc.id for e in entries])
                found = set(existing)
        except Exception as exc:
            err = self._store_failure(exc, "could not read from the store")
            return [], {}, [e.failed(err) for e in entries]
        todo: list[Entry] = []
        results: list[WriteResult] = []
        for e in entries:
            if e.doc.id in found and mode == "add":
                results.append(WriteResult(e.index, e.doc.id, "exists"))
            elif e.doc.id in found and self._same(e, existing[e.doc.id]):
                results.append(WriteResult(e.index, e.doc.id, "unchanged"))
            else:
                todo.append(e)
        return todo, existing, results

    def store(self, todo: list[Entry], existing: Mapping[str, Stored]) -> list[WriteResult]:
        """Copy the media of embedded entries (``copy_media``), write them and count them."""
        results: list[WriteResult] = []
        if self.copies is not None:
            todo = self._copy(todo, results)
        results.extend(self._apply(todo, existing))
        return results

    def start_embedding(self, todo: list[Entry], workers: int | None) -> Any:
        """Start loading the entries' media (an embedder with ``load_ahead``); see :meth:`embedded`."""
        load_ahead = getattr(self.embedder, "load_ahead", None)
        if load_ahead is None:
            return None
        try:
            return load_ahead([e.item for e in todo], role="document", workers=workers)
        except OmniretrieveError as exc:
            return exc

    def embedded(self, todo: list[Entry], started: Any, results: list[WriteResult]) -> list[Entry]:
        """The entries whose vectors came back good (failures appended to ``results``)."""
        try:
            if isinstance(started, OmniretrieveError):
                raise started
            if started is None:
                items: list[Any] = [e.item for e in todo]
                embedded = self.embedder.embed_each(items, role="document", show_progress=False)
            else:
                embedded = self.embedder.encode_loaded(started, show_progress=False)  # type: ignore[attr-defined]
        except OmniretrieveError as exc:
            results.extend(e.failed(exc) for e in todo)
            return []
        ok: list[Entry] = []
        for e, res in zip(todo, embedded, strict=True):
            if not res.ok or res.vector is None:
                results.append(e.failed(res.error or StoreError("the embedder returned no vector")))
                continue
            try:
                e.vector = check_vector(res.vector, self.dimension, describe(e.item))
            except OmniretrieveError as exc:
                results.append(e.failed(exc))
                continue
            ok.append(e)
        return ok

    def _same(self, e: Entry, old: Stored) -> bool:
        if not self.records.same(e.doc, old, ignore_media=self.copies is not None):
            return False
        return e.vector is None or bool(np.array_equal(e.vector, old.vector))

    def _copy(self, todo: list[Entry], results: list[WriteResult]) -> list[Entry]:
        assert self.copies is not None
        ok: list[Entry] = []
        for e in todo:
            try:
                refs = self.copies.copy_parts(e.item, e.original) if e.item is not None else {}
            except OmniretrieveError as exc:
                results.append(e.failed(exc))
                continue
            ok.append(replace(e, doc=replace(e.doc, **refs)) if refs else e)  # type: ignore[arg-type]
        return ok

    # -- writing -------------------------------------------------------------------------------

    def _apply(self, todo: list[Entry], existing: Mapping[str, Stored]) -> list[WriteResult]:
        """Write new and replaced records per collection, in Chroma-sized chunks; update statistics."""
        results: list[WriteResult] = []
        adds: dict[str, list[Entry]] = {}
        updates: dict[str, list[Entry]] = {}
        moves: list[Entry] = []
        for e in todo:
            old = existing.get(e.doc.id)
            if old is None:
                adds.setdefault(e.doc.kind, []).append(e)
            elif old.kind == e.doc.kind:
                updates.setdefault(e.doc.kind, []).append(e)
            else:
                moves.append(e)
        delta = ModalityStats(self.dimension)
        for kind, group in adds.items():
            results.extend(self._apply_group(kind, group, existing, "add", delta))
        for kind, group in updates.items():
            results.extend(self._apply_group(kind, group, existing, "update", delta))
        results.extend(self._move(e, existing[e.doc.id], delta) for e in moves)
        self.statistics.changed(delta)
        return results

    def _apply_group(
        self, kind: str, group: list[Entry], existing: Mapping[str, Stored], op: str, delta: ModalityStats
    ) -> list[WriteResult]:
        results: list[WriteResult] = []
        try:
            col = self.collections.kind(kind, create=True)
        except Exception as exc:
            err = self._store_failure(exc, "could not open a collection")
            return [e.failed(err) for e in group]
        for sl in self.collections.slices(len(group)):
            chunk = group[sl]
            if self.down is not None:
                results.extend(e.failed(self.down) for e in chunk)
                continue
            try:
                mine = self._chroma_write(col, chunk, existing, op)
            except Exception as exc:
                if not _refused(exc):  # the store failed, not the records: stop the whole write
                    err = self._store_failure(exc, f"could not write to the store ({op})")
                    results.extend(e.failed(err) for e in chunk)
                elif len(chunk) == 1:
                    err = StoreError(f"Chroma refused {chunk[0].doc.id!r}: {exc}")
                    err.__cause__ = exc
                    results.append(chunk[0].failed(err))
                else:  # isolate the bad item(s): one by one
                    results.extend(self._apply_group(kind, [e], existing, op, delta)[0] for e in chunk)
                continue
            written = [e for e in chunk if e.doc.id in mine]
            if op == "update":
                delta.remove(kind, np.stack([existing[e.doc.id].vector for e in chunk]))
            if written:
                delta.add(kind, np.stack([e.vector for e in written]))  # type: ignore[misc]
            status: WriteStatus = "added" if op == "add" else "updated"
            results.extend(
                WriteResult(e.index, e.doc.id, status if e.doc.id in mine else "exists") for e in chunk
            )
        return results

    def _store_failure(self, exc: BaseException, what: str) -> OmniretrieveError:
        """The typed error for a failure of the store; a store-level one stops the rest of the write."""
        if isinstance(exc, OmniretrieveError):
            err = exc
        else:
            err = StoreError(f"{what} {self.collections.describe()}: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
        if isinstance(err, StoreError) and not isinstance(err, ChromaRefusal):
            self.down = err
        return err

    def _chroma_write(
        self, col: Any, chunk: list[Entry], existing: Mapping[str, Stored], op: str
    ) -> set[str]:
        """Write one chunk; return the ids this writer wrote (an ``add`` another writer beat is left out)."""
        ids = [e.doc.id for e in chunk]
        embeddings = np.stack([e.vector for e in chunk]).astype(np.float32)  # type: ignore[misc]
        metas = [self.records.metadata(e.doc) for e in chunk]
        texts = [e.doc.text or "" for e in chunk]
        if op == "update":
            metas = [
                full_replace(meta, existing[e.doc.id].metadata) for meta, e in zip(metas, chunk, strict=True)
            ]
            col.update(ids=ids, embeddings=embeddings, metadatas=metas, documents=texts)
            return set(ids)
        if self.collections.backend.exclusive:
            col.add(ids=ids, embeddings=embeddings, metadatas=metas, documents=texts)
            return set(ids)
        # Several writers: Chroma's add skips an id that exists, silently and atomically per id. Tag
        # the records with a token of this call and read them back: the records carrying it are ours.
        token = uuid.uuid4().hex
        for meta in metas:
            meta[K_WRITE] = token
        col.add(ids=ids, embeddings=embeddings, metadatas=metas, documents=texts)
        got = col.get(ids=ids, include=["metadatas"])
        return {
            i
            for i, m in zip(got["ids"], got["metadatas"] or [], strict=True)
            if (m or {}).get(K_WRITE) == token
        }

    def _move(self, e: Entry, old: Stored, delta: ModalityStats) -> WriteResult:
        """Replace a document whose kind changed: add to the new collection, then delete the old."""
        if self.down is not None:
            return e.failed(self.down)
        try:
            new_col = self.collections.kind(e.doc.kind, create=True)
            old_col = self.collections.kind(old.kind)
            assert new_col is not None and old_col is not None
            if e.doc.id not in self._chroma_write(new_col, [e], {}, "add"):
                return WriteResult(e.index, e.doc.id, "exists")
        except Exception as exc:
            return e.failed(self._store_failure(exc, f"could not write {e.doc.id!r} to"))
        try:
            old_col.delete(ids=[e.doc.id])
        except Exception as exc:
            new_col.delete(ids=[e.doc.id])
            return e.failed(StoreError(f"could not replace {e.doc.id!r}: {exc}"))
        delta.remove(old.kind, old.vector[None, :])
        delta.add(e.doc.kind, e.vector[None, :])  # type: ignore[index]
        return WriteResult(e.index, e.doc.id, "updated")


def _refused(exc: BaseException) -> bool:
    """Whether Chroma refused the records of a call as invalid (worth retrying them one by one)."""
    if isinstance(exc, ChromaRefusal | InvalidInputError):
        return True
    return isinstance(exc, ValueError | TypeError) and not isinstance(exc, OmniretrieveError)


def _check_items(
    items: Any,
    ids: Sequence[Any] | None,
    metadatas: Sequence[Any] | None,
    sources: Sequence[Any] | None,
    batch_size: Any,
) -> int:
    """The number of items, once the arguments of a write are checked."""
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise InvalidInputError("items", "pass a list of items (a single str is not a list)")
    n = len(items)
    for label, seq in (("ids", ids), ("metadatas", metadatas), ("sources", sources)):
        if seq is not None and len(seq) != n:
            raise InvalidInputError(label, f"has {len(seq)} entries for {n} items")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size={batch_size!r}", "must be a positive int")
    return n


def _materialize(item: NormalizedItem, read: MediaReader) -> NormalizedItem:
    """The item with every media file or URL read into bytes, once.

    What is hashed is then exactly what is embedded (a file changing in between cannot split
    them), and a URL is fetched once, not once for the hash and again for the model.
    """
    parts = item.parts() if isinstance(item, Combined) else [item]
    out: dict[str, Any] = {}
    for part in parts:
        if isinstance(part, Image | Audio | Video) and isinstance(part.source, str | os.PathLike):
            part = read_into(part, read(part.source))
        out[part.modality] = part.text if isinstance(part, Text) else part
    if len(out) == 1 and not isinstance(item, Combined):
        single = next(iter(out.values()))
        return Text(single) if isinstance(single, str) else single  # type: ignore[no-any-return]
    return Combined(**out)


__all__ = ["DEFAULT_BATCH_SIZE", "Ingest", "WriteResult", "WriteStatus"]
