"""The pipelined write behind ``Store.add`` / ``Store.upsert``: every stage busy at once, memory bounded.

A write is cut into batches (``batch_size`` items). Each batch goes through four stages, and the
stages work on different batches at the same time::

    this thread:     read + hash + look up (k+2)  ->  encode (k)  ->  queue
    worker procs:    decode (k+1, k+2)                                  |
    writer thread:                                  write (k-1)  <------'

1. **plan** (this thread): each item is read once and hashed (its id), then the batch's ids are
   looked up in one Chroma ``get`` per collection: ``add`` asks only which exist
   (``include=[]``, cheap), ``upsert`` reads the stored records to leave unchanged ones alone;
2. **load**: what must be embedded starts decoding at once in the embedder's worker processes
   (:meth:`~omniretrieve.embedding.BaseEmbedder.load_ahead`), at most :data:`AHEAD` batches
   beyond the one being encoded;
3. **encode** (this thread, on the model's device): the oldest loaded batch is encoded and its
   vectors checked;
4. **write** (one writer thread, fed through a queue of at most :data:`QUEUE` batches): media
   copies, then Chroma writes per kind, batches waiting in the queue merged into one write of up
   to Chroma's maximum batch; then the statistics.

Memory is bounded, whatever the corpus: at most ``(AHEAD + 2 * QUEUE + 2) * batch_size`` items are
between planning and written (the window being loaded and encoded, the writer's queue, and what the
writer merged from it), and at most ``(AHEAD + 1) * batch_size`` hold decoded media.

Correctness is kept by construction: results are placed by each item's index (input order); an id
that is still on its way through the pipeline is never looked up again until that write landed
(the pipeline drains first), so a repeated id is ``exists``/``unchanged``/``updated`` exactly as in
a sequential write; a store failure (:attr:`Ingest.down`) fails the rest of the write. Every
Chroma ``add`` is atomic, and ids are content hashes: after a ``kill -9`` a rerun adds exactly the
missing items.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omniretrieve.store._ingest import Entry, Ingest, Mode, WriteResult
    from omniretrieve.store._records import Stored
    from omniretrieve.store._schema import Collections

AHEAD = 2
"""Batches whose media load (decode) ahead of the batch being encoded."""

QUEUE = 2
"""Encoded batches that may wait for the writer thread."""


class Pipeline:
    """One pipelined write (see the module docstring); use as a context manager.

    Args:
        ingest: The store's writer (planning, embedding, writing steps).
        mode: ``"add"`` or ``"upsert"``.
        results: Where each item's result goes, by its index.
        workers: Decoding processes (passed to the embedder's ``load_ahead``).
        progress: Called with the number of items done so far, after each step.
        show: Show a progress bar (tqdm) when no ``progress`` is given.
    """

    def __init__(
        self,
        ingest: Ingest,
        mode: Mode,
        results: list[WriteResult | None],
        *,
        workers: int | None = None,
        progress: Callable[[int], None] | None = None,
        show: bool = False,
    ) -> None:
        self.ingest = ingest
        self.mode = mode
        self.results = results
        self.workers = workers
        self.done = 0
        self.window: deque[tuple[list[Entry], dict[str, Stored], Any]] = deque()
        self.in_flight: set[str] = set()
        self.max_in_flight = 0
        """The most items ever between planning and written (a test's bound)."""
        self._lock = threading.Lock()
        self._bar = _bar(len(results)) if show and progress is None else None
        self._progress = progress
        self._queue: queue.Queue[list[tuple[list[Entry], dict[str, Stored]]] | None] = queue.Queue(QUEUE)
        self._error: BaseException | None = None
        self._writer = threading.Thread(target=self._write_loop, name="omniretrieve-writer", daemon=True)
        self._writer.start()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                self.drain()
        finally:
            for _, _, started in self.window:  # left over after an error: release its threads
                close = getattr(started, "close", None)
                if close is not None:
                    close()
            self._queue.put(None)
            self._writer.join()
            if self._bar is not None:
                self._bar.close()
        if exc_type is None and self._error is not None:
            raise self._error

    # -- this thread -----------------------------------------------------------------------------

    def feed(self, entries: list[Entry]) -> None:
        """Plan one batch and start loading it; encode older batches to keep the window bounded."""
        for rnd in rounds(entries):
            if any(e.doc.id in self.in_flight for e in rnd):
                self.drain()  # the earlier write of this id must land before it is looked up
            todo, existing, done = self.ingest.plan(rnd, self.mode)
            self.record(done)
            if not todo:
                continue
            with self._lock:
                self.in_flight.update(e.doc.id for e in todo)
                self.max_in_flight = max(self.max_in_flight, len(self.in_flight))
            started = self.ingest.start_embedding(todo, self.workers)
            self.window.append((todo, existing, started))
            while len(self.window) > AHEAD:
                self._encode_next()

    def drain(self) -> None:
        """Encode and write everything in flight, and wait for the writer."""
        while self.window:
            self._encode_next()
        self._queue.join()
        if self._error is not None:
            raise self._error

    def record(self, results: Sequence[WriteResult]) -> None:
        """Put results in place (by index) and report progress; callable from either thread."""
        if not results:
            return
        with self._lock:
            for r in results:
                self.results[r.index] = r
            self.done += len(results)
            done = self.done
        if self._progress is not None:
            self._progress(done)
        if self._bar is not None:
            self._bar.update(len(results))

    def _encode_next(self) -> None:
        todo, existing, started = self.window.popleft()
        failed: list[WriteResult] = []
        ok = self.ingest.embedded(todo, started, failed)
        kept = {id(e) for e in ok}
        self._release([e.doc.id for e in todo if id(e) not in kept])
        self.record(failed)
        if self._error is not None:
            raise self._error
        if ok:
            self._queue.put([(ok, existing)])

    def _release(self, ids: list[str]) -> None:
        with self._lock:
            self.in_flight.difference_update(ids)

    # -- the writer thread -----------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                self._queue.task_done()
                return
            jobs = [job]
            try:
                jobs += self._merge(sum(len(todo) for todo, _ in job))
                self._write(jobs)
            except BaseException as exc:  # a bug: surfaced in the calling thread
                self._error = self._error or exc
            finally:
                for _ in jobs:
                    self._queue.task_done()

    def _merge(self, size: int) -> list[list[tuple[list[Entry], dict[str, Stored]]]]:
        """Batches waiting in the queue, to write with the current one (up to Chroma's maximum)."""
        more: list[list[tuple[list[Entry], dict[str, Stored]]]] = []
        limit = self.ingest.collections.max_batch
        while size < limit:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:  # keep the stop signal for the loop
                self._queue.task_done()
                self._queue.put_nowait(None)
                break
            more.append(job)
            size += sum(len(todo) for todo, _ in job)
        return more

    def _write(self, jobs: list[list[tuple[list[Entry], dict[str, Stored]]]]) -> None:
        todo: list[Entry] = []
        existing: dict[str, Stored] = {}
        for job in jobs:
            for part, found in job:
                todo += part
                existing.update(found)
        if self._error is not None:  # the calling thread stops at the next step
            return
        results = self.ingest.store(todo, existing)
        self.record(results)
        self._release([e.doc.id for e in todo])


def rounds(entries: list[Entry]) -> list[list[Entry]]:
    """Split entries so that each id appears at most once per round (later duplicates go later)."""
    out: list[list[Entry]] = []
    seen: list[set[str]] = []
    for e in entries:
        for r, ids in zip(out, seen, strict=True):
            if e.doc.id not in ids:
                r.append(e)
                ids.add(e.doc.id)
                break
        else:
            out.append([e])
            seen.append({e.doc.id})
    return out


def existing_ids(collections: Collections, ids: Sequence[str]) -> set[str]:
    """Which of these ids are stored, in any kind's collection (one ``get(include=[])`` per slice)."""
    found: set[str] = set()
    if not ids:
        return found
    for col in collections.existing().values():
        for sl in collections.slices(len(ids)):
            found.update(col.get(ids=list(ids[sl]), include=[])["ids"])
    return found


def _bar(total: int) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with sentence-transformers
        return None
    return tqdm(total=total, desc="Adding", unit="item")


__all__ = ["AHEAD", "QUEUE", "Pipeline", "existing_ids", "rounds"]
