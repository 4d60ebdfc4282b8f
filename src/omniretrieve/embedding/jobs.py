"""The bookkeeping of one ``embed_each`` call: which model call each input goes to, what each item has.

Internal to :class:`~omniretrieve.embedding.BaseEmbedder`. :func:`plan` turns the inputs into one
:class:`Pending` per item and one :class:`Job` per model input: a whole item, or, for a combined
item embedded as the mean of its parts, one job per part. As model calls return, each job's vector
is checked (:func:`~omniretrieve.vectors.vector_problem`) and kept, or its item is marked failed;
:meth:`Pending.result` then gives the item's :class:`~omniretrieve.embedding.EmbeddingResult`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from omniretrieve.embedding.protocol import EmbeddingResult, RouteKey
from omniretrieve.errors import EmbeddingError, MediaDecodeError, OmniretrieveError
from omniretrieve.media._workers import (
    BrokenProcessPool,
    DecodeFailure,
    DecodePool,
    DecodeSpec,
    default_workers,
    worker_decodable,
)
from omniretrieve.types import (
    Audio,
    Combined,
    Image,
    ItemInput,
    Modality,
    NormalizedItem,
    Role,
    Text,
    Video,
    as_item,
    describe,
    modality_of,
)
from omniretrieve.vectors import ZERO_NORM, vector_problem

CombineRoute = Callable[[tuple[Modality, ...]], Literal["native", "mean"] | None]
"""How the embedder reads a combination of modalities: as one input, as the mean of its parts, or not."""

PROCESS_MIN_ITEMS = 64
"""Media files in one call from which decoding moves to worker processes by default (starting them
costs about a second; below this, threads in this process decode)."""

Unsupported = Callable[[NormalizedItem, "Modality | tuple[Modality, ...]"], OmniretrieveError]
"""The error for an item of a modality (or combination) the embedder cannot read."""


@dataclass
class Job:
    """One input of one model call: a whole item, or one part of a combined item (mean strategy).

    Attributes:
        index: the item's position in the call.
        slot: which part of the item this is (0 for a whole item).
        route: what the model call holds (see :data:`~omniretrieve.embedding.RouteKey`).
        source: what is loaded and handed to the model.
    """

    index: int
    slot: int
    route: RouteKey
    source: NormalizedItem

    @property
    def text_length(self) -> int:
        """The length of the text this job embeds (0 for media); texts are batched longest first."""
        return len(self.source.text) if isinstance(self.source, Text) else 0


@dataclass
class Pending:
    """What is known about one item while a call runs.

    Attributes:
        item: the normalised input; ``None`` when it had no accepted shape.
        parts: how many part vectors make the item's vector (1 unless it is a mean of parts).
        error: the first error the item met, or ``None``.
        vectors: the unit vector of each part received so far, by slot.
    """

    item: NormalizedItem | None
    parts: int = 1
    error: OmniretrieveError | None = None
    vectors: dict[int, np.ndarray] | None = None

    def fail(self, error: OmniretrieveError) -> None:
        """Mark the item failed with ``error`` (the first error wins; part vectors are dropped)."""
        if self.error is None:
            self.error = error
            self.vectors = None

    def fail_model(self, job: Job, exc: Exception) -> None:
        """Mark the item failed because the model failed on ``job`` (the cause is chained)."""
        if isinstance(exc, OmniretrieveError):
            self.fail(exc)
            return
        error = EmbeddingError(
            describe(job.source), f"the model failed on this input ({type(exc).__name__}: {exc})"
        )
        error.__cause__ = exc
        self.fail(error)

    def accept(self, job: Job, vector: np.ndarray, dimension: int) -> None:
        """Keep the model's vector for ``job``, normalised, or mark the item failed if it is unusable."""
        if self.error is not None:
            return
        vector = np.asarray(vector, dtype=np.float64)
        problem = vector_problem(vector, dimension)
        if problem is not None:
            self.fail(
                EmbeddingError(describe(job.source), f"the model returned an unusable embedding: {problem}")
            )
            return
        if self.vectors is None:
            self.vectors = {}
        self.vectors[job.slot] = vector / np.linalg.norm(vector)

    def result(self, index: int) -> EmbeddingResult:
        """The item's result: its vector (the mean of its parts', renormalised), or its error."""
        if self.error is not None:
            return EmbeddingResult(index, self.item, None, self.error)
        assert self.item is not None and self.vectors is not None and len(self.vectors) == self.parts
        if self.parts == 1:
            vector = self.vectors[0]
        else:
            vector = np.mean([self.vectors[slot] for slot in range(self.parts)], axis=0)
            norm = float(np.linalg.norm(vector))
            if norm < ZERO_NORM:
                error = EmbeddingError(
                    describe(self.item), "the parts' embeddings cancel out (their mean is zero)"
                )
                return EmbeddingResult(index, self.item, None, error)
            vector = vector / norm
        return EmbeddingResult(index, self.item, vector.astype(np.float32), None)


def plan(
    items: Sequence[ItemInput],
    modalities: frozenset[Modality],
    combine_route: CombineRoute,
    unsupported: Unsupported,
) -> tuple[list[Pending], list[Job]]:
    """One :class:`Pending` per input, and the jobs to run, in input order.

    An input of no accepted shape, or of a modality the embedder cannot read, gets its error here
    and no job.
    """
    pending: list[Pending] = []
    jobs: list[Job] = []
    for index, value in enumerate(items):
        try:
            item = as_item(value)
        except OmniretrieveError as exc:
            pending.append(Pending(item=None, error=exc))
            continue
        state = Pending(item=item)
        pending.append(state)
        modality = modality_of(item)
        if isinstance(modality, str):
            if modality not in modalities:
                state.error = unsupported(item, modality)
                continue
            source = item.parts()[0] if isinstance(item, Combined) else item  # one part: that part
            jobs.append(Job(index, 0, modality, source))
            continue
        assert isinstance(item, Combined)
        how = combine_route(modality)
        if how is None:
            state.error = unsupported(item, modality)
        elif how == "native":
            jobs.append(Job(index, 0, modality, item))
        else:
            parts = item.parts()
            state.parts = len(parts)
            jobs.extend(Job(index, slot, part.modality, part) for slot, part in enumerate(parts))
    return pending, jobs


Chunk = tuple[RouteKey, list[Job]]
"""One model call's jobs, all of one route."""


def chunked(jobs: list[Job], batch_size: int) -> list[Chunk]:
    """The jobs grouped by route (routes in order of first appearance) and cut into model calls.

    Texts are sorted longest first, as sentence-transformers does, so each batch pads little.
    """
    groups: dict[RouteKey, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.route, []).append(job)
    chunks: list[Chunk] = []
    for route, group in groups.items():
        if route == "text":
            group.sort(key=lambda job: -job.text_length)
        chunks += [(route, group[i : i + batch_size]) for i in range(0, len(group), batch_size)]
    return chunks


class Loads:
    """The model calls of one embedding call, their inputs loading ahead of the model.

    ``start(job)`` begins loading one job (in a worker process, a thread, or at once) and returns a
    handle; iterating yields each chunk with its handles, keeping at most ``ahead`` chunks started
    beyond the one being encoded (``None``: every chunk is started at once). A chunk's handles are
    dropped once it has been yielded, so at most ``ahead + 1`` chunks of loaded media are held.

    Args:
        chunks: What :func:`chunked` returns.
        start: Starts loading one job.
        ahead: How many chunks may load ahead of the model, or ``None`` for all.
    """

    def __init__(self, chunks: list[Chunk], start: Callable[[Job], Any], ahead: int | None) -> None:
        self.chunks = chunks
        self.ahead = ahead
        self._start = start
        self._handles: dict[int, list[Any]] = {}
        self._next = 0
        self.started_max = 0
        """The most chunks ever started and not yet consumed (a test's window check)."""
        self._fill(0)

    @property
    def jobs(self) -> int:
        """How many jobs (model inputs) the chunks hold."""
        return sum(len(chunk) for _, chunk in self.chunks)

    def _fill(self, consumed: int) -> None:
        n = len(self.chunks)
        limit = n if self.ahead is None else min(n, consumed + 1 + self.ahead)
        while self._next < limit:
            self._handles[self._next] = [self._start(job) for job in self.chunks[self._next][1]]
            self._next += 1
        self.started_max = max(self.started_max, len(self._handles))

    def __iter__(self) -> Iterator[tuple[RouteKey, list[Job], list[Any]]]:
        for k, (route, chunk) in enumerate(self.chunks):
            self._fill(k)
            handles = self._handles.pop(k)
            yield route, chunk, handles


class Later:
    """Handle of a job loaded when the model reaches it (no thread or process loads it ahead)."""


@dataclass
class InWorkers:
    """Handle of a job whose media parts decode in worker processes (modality -> future)."""

    futures: dict[str, Future[Any]]
    pool: DecodePool
    spec: DecodeSpec

    def loader(
        self, load: Callable[[Any], Any], prepare_audio: Callable[[np.ndarray], np.ndarray]
    ) -> Callable[[Any], Any]:
        """A part loader that takes the workers' result for their parts and ``load`` for the rest."""

        def load_part(part: Text | Image | Audio | Video) -> Any:
            future = self.futures.get(part.modality)
            if future is None or isinstance(part, Text):
                return load(part)
            value = self._result(part, future)
            if value is _IN_PROCESS:
                return load(part)
            if isinstance(value, DecodeFailure):
                raise value.error()
            return prepare_audio(value) if isinstance(part, Audio) else value

        return load_part

    def _result(self, part: Image | Audio | Video, future: Future[Any]) -> Any:
        """The worker's result; a worker that died is retried once in a fresh pool.

        A pool that broke before it ever worked cannot start: the part is loaded in this process.
        """
        name = describe(part)
        try:
            return future.result()
        except BrokenProcessPool:
            pass
        if self.pool.unusable:
            return _IN_PROCESS
        try:
            return self.pool.submit(self.spec, part.modality, part.source, name).result()  # type: ignore[arg-type]
        except BrokenProcessPool as exc:
            if not self.pool.worked:
                self.pool.give_up()
                return _IN_PROCESS
            raise MediaDecodeError(name, "the decoding process died on this input (twice)") from exc


_IN_PROCESS = object()
"""Marker: the worker pool cannot start; load the part in this process."""


@dataclass
class Loading:
    """An embedding call whose media are loading (:meth:`BaseEmbedder.load_ahead`)."""

    pending: list[Pending]
    loads: Loads
    role: Role
    threads: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """Release the loading threads (the decoding processes stay for the next call)."""
        if self.threads is not None:
            self.threads.shutdown(wait=True, cancel_futures=True)
            self.threads = None


def parts_of(source: NormalizedItem) -> list[Any]:
    """The parts of an item (itself when it is not combined)."""
    return list(source.parts()) if isinstance(source, Combined) else [source]


def pool_for(pool: DecodePool | None, media: list[Job], workers: int | None) -> DecodePool | None:
    """The decoding process pool to keep for a call with these media jobs (``pool``: the current one).

    ``workers``: 0 never starts processes; ``None`` starts one per CPU once a call has
    :data:`PROCESS_MIN_ITEMS` media files, bytes or data URIs (and keeps running ones); a number
    starts that many. Returns the pool to keep (``None`` when none runs).
    """
    if pool is not None and pool.unusable:
        return pool  # it could not start: the caller decodes in its own process
    if workers == 0 or not media:
        return pool
    if workers is None:
        if pool is not None:
            return pool
        decodable = sum(
            1
            for job in media
            for p in parts_of(job.source)
            if isinstance(p, Image | Audio | Video) and worker_decodable(p.source)
        )
        if decodable < PROCESS_MIN_ITEMS:
            return None
        workers = default_workers()
    if pool is not None and pool.workers == workers:
        return pool
    if pool is not None:
        pool.close()
    return DecodePool(workers)


__all__ = [
    "PROCESS_MIN_ITEMS",
    "Chunk",
    "InWorkers",
    "Job",
    "Later",
    "Loading",
    "Loads",
    "Pending",
    "chunked",
    "parts_of",
    "plan",
    "pool_for",
]
