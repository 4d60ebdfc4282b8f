"""What a reranker is: the :class:`Reranker` protocol and its per-candidate :class:`RerankResult`.

:data:`UnsupportedPolicy` names what a reranker does with a candidate it cannot read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias, runtime_checkable

from omniretrieve.errors import OmniretrieveError
from omniretrieve.types import ItemInput, Modality

UnsupportedPolicy: TypeAlias = Literal["keep_last", "drop", "error"]
"""What to do with a candidate of a modality the model cannot read (see :mod:`omniretrieve.rerank`)."""

_POLICIES: tuple[str, ...] = ("keep_last", "drop", "error")


@dataclass(frozen=True)
class RerankResult:
    """The score of one candidate.

    Attributes:
        index: position of the candidate in the list passed to :meth:`Reranker.rerank`.
        score: the model's relevance score (higher is more relevant; for a ``CrossEncoder`` with one
            output, its activation, by default a sigmoid in ``[0, 1]``). ``float("-inf")`` when the
            candidate was not scored.
        error: why the candidate was not scored, or None when it was.
    """

    index: int
    score: float
    error: OmniretrieveError | None = None

    @property
    def ok(self) -> bool:
        """True when the model scored this candidate (``error`` is None), as ``EmbeddingResult.ok``."""
        return self.error is None

    @property
    def scored(self) -> bool:
        """The same as :attr:`ok` (the name this property had first; kept so existing code works)."""
        return self.ok


@runtime_checkable
class Reranker(Protocol):
    """Scores candidates against a query and returns them best first.

    Attributes:
        model_id: hub id or local path of the model (or a fake's name).
        modalities: the single modalities the model reads as a query or candidate.
    """

    model_id: str
    modalities: frozenset[Modality]

    def supports(self, modality: Modality | tuple[Modality, ...]) -> bool:
        """Whether the model reads items of this modality (a tuple: a combined item of those parts)."""
        ...

    def rerank(
        self, query: ItemInput, candidates: Sequence[ItemInput], *, top_n: int | None = None
    ) -> list[RerankResult]:
        """Score each candidate against ``query``; results sorted by score, best first (see :mod:`omniretrieve.rerank`)."""
        ...


__all__ = ["RerankResult", "Reranker", "UnsupportedPolicy"]
