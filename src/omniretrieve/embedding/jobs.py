"""The bookkeeping of one ``embed_each`` call: which model call each input goes to, what each item has.

Internal to :class:`~omniretrieve.embedding.BaseEmbedder`. :func:`plan` turns the inputs into one
:class:`Pending` per item and one :class:`Job` per model input: a whole item, or, for a combined
item embedded as the mean of its parts, one job per part. As model calls return, each job's vector
is checked (:func:`~omniretrieve.vectors.vector_problem`) and kept, or its item is marked failed;
:meth:`Pending.result` then gives the item's :class:`~omniretrieve.embedding.EmbeddingResult`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from omniretrieve.embedding.protocol import EmbeddingResult, RouteKey
from omniretrieve.errors import EmbeddingError, OmniretrieveError
from omniretrieve.types import (
    Combined,
    ItemInput,
    Modality,
    NormalizedItem,
    Text,
    as_item,
    describe,
    modality_of,
)
from omniretrieve.vectors import ZERO_NORM, vector_problem

CombineRoute = Callable[[tuple[Modality, ...]], Literal["native", "mean"] | None]
"""How the embedder reads a combination of modalities: as one input, as the mean of its parts, or not."""

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


__all__ = ["Job", "Pending", "plan"]
