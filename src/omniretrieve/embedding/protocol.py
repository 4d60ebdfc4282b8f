"""What an embedder is: the :class:`Embedder` protocol, its per-item result, and the names it uses.

The protocol is what the store, the search and the adapters rely on; anything with these members
works (:class:`~omniretrieve.embedding.BaseEmbedder` implements all of them once)::

    model_id: str                      # what a store records and checks: hub id, path, "fake:<dim>"
    dimension: int
    modalities: frozenset[Modality]    # single modalities the model reads
    similarity: str                    # "cosine" (vectors are L2-normalised)
    supports(modality) -> bool
    embed(items, *, role="document", show_progress=None) -> np.ndarray
        # (n, dimension) float32, L2-normalised, input order; raises the first failing item's error
    embed_each(items, *, role="document", show_progress=None) -> list[EmbeddingResult]
        # one result per input, input order; a bad item never costs the good ones
    embed_query(item) -> np.ndarray    # (dimension,), role="query"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias, runtime_checkable

import numpy as np

from omniretrieve.errors import InvalidInputError, OmniretrieveError
from omniretrieve.types import MODALITIES, ItemInput, Modality, NormalizedItem, Role

CombineStrategy: TypeAlias = Literal["auto", "native", "mean"]
"""How a combined item (several parts) is embedded: ``"native"``: as one input, which the model
must support; ``"mean"``: as the L2-normalised mean of its parts' normalised embeddings; ``"auto"``:
native where the model supports the combination, mean otherwise."""

RouteKey: TypeAlias = "Modality | tuple[Modality, ...]"
"""What one model call holds: one modality, or one combination of modalities (native combined)."""

ROLES: tuple[Role, ...] = ("query", "document")


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns items into L2-normalised float32 vectors of one fixed dimension."""

    @property
    def model_id(self) -> str:
        """The id a store records and checks: the model's hub id or path, a stable name, or ``"fake:<dim>"``."""
        ...

    @property
    def dimension(self) -> int:
        """The length of every vector."""
        ...

    @property
    def modalities(self) -> frozenset[Modality]:
        """The single modalities the model reads."""
        ...

    @property
    def similarity(self) -> str:
        """How vectors compare: ``"cosine"`` (they are L2-normalised)."""
        ...

    def supports(self, modality: Modality | tuple[Modality, ...]) -> bool:
        """Whether an item of this modality (or combination of modalities) can be embedded."""
        ...

    def embed(
        self, items: Sequence[ItemInput], *, role: Role = "document", show_progress: bool | None = None
    ) -> np.ndarray:
        """``(n, dimension)`` float32 unit vectors in input order; raises the first failing item's error."""
        ...

    def embed_each(
        self, items: Sequence[ItemInput], *, role: Role = "document", show_progress: bool | None = None
    ) -> list[EmbeddingResult]:
        """One :class:`EmbeddingResult` per input, in input order; a bad item never costs the good ones."""
        ...

    def embed_query(self, item: ItemInput) -> np.ndarray:
        """One ``(dimension,)`` unit vector for a query (``role="query"``)."""
        ...


@dataclass(frozen=True)
class EmbeddingResult:
    """The outcome for one input of :meth:`Embedder.embed_each`.

    Attributes:
        index: the input's position in the call.
        item: the normalised input; ``None`` only when the input was of no accepted shape (then
            ``error`` is an :class:`~omniretrieve.errors.InvalidInputError`).
        vector: the ``(dimension,)`` float32 unit vector, or ``None`` on error.
        error: why the item has no vector, or ``None``.
    """

    index: int
    item: NormalizedItem | None
    vector: np.ndarray | None
    error: OmniretrieveError | None

    @property
    def ok(self) -> bool:
        """Whether the item was embedded."""
        return self.error is None and self.vector is not None


def canonical_modalities(modality: Modality | tuple[Modality, ...]) -> tuple[Modality, ...]:
    """A modality or combination as a tuple in canonical order (text, image, audio, video), no repeats.

    Raises:
        InvalidInputError: a name is not a modality.
    """
    names = (modality,) if isinstance(modality, str) else tuple(modality)
    unknown = [m for m in names if m not in MODALITIES]
    if unknown or not names:
        raise InvalidInputError(repr(modality), f"not a modality or combination of {list(MODALITIES)}")
    return tuple(m for m in MODALITIES if m in names)


__all__ = ["ROLES", "CombineStrategy", "Embedder", "EmbeddingResult", "RouteKey", "canonical_modalities"]
