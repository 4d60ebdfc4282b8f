"""The rules every reranker follows, the fake one included: checks, policy, order of results.

A reranker calls, in order: :func:`check_top_n`; :func:`check_query` (a query the model cannot read
raises); :func:`split_supported` (normalise the candidates and apply the ``unsupported`` policy);
scores what is left; then :func:`order_results` (scored by score descending, ties in incoming order,
then unscored in incoming order, then ``top_n``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from omniretrieve.errors import InvalidInputError, RerankError, UnsupportedModalityError
from omniretrieve.rerank.protocol import RerankResult, UnsupportedPolicy
from omniretrieve.types import ItemInput, Modality, NormalizedItem, as_item, describe, modality_of

POLICIES: tuple[UnsupportedPolicy, ...] = ("keep_last", "drop", "error")
"""Every :data:`~omniretrieve.rerank.UnsupportedPolicy`."""


def supports_modality(
    modality: Modality | tuple[Modality, ...], modalities: frozenset[Modality], *, combined: bool
) -> bool:
    """Whether a reranker reading ``modalities`` reads this modality, or (``combined``) this combination."""
    if isinstance(modality, tuple):
        return combined and len(modality) > 0 and all(m in modalities for m in modality)
    return modality in modalities


def check_top_n(top_n: int | None) -> None:
    """Raise :class:`~omniretrieve.errors.InvalidInputError` unless ``top_n`` is None or an int >= 0."""
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 0):
        raise InvalidInputError(f"top_n={top_n!r}", "top_n must be None or a non-negative int")


def check_policy(unsupported: str) -> None:
    """Raise :class:`~omniretrieve.errors.InvalidInputError` unless ``unsupported`` is one of :data:`POLICIES`."""
    if unsupported not in POLICIES:
        raise InvalidInputError(f"unsupported={unsupported!r}", f"the policy must be one of {list(POLICIES)}")


def check_query(
    query: ItemInput,
    supports: Callable[[Modality | tuple[Modality, ...]], bool],
    modalities: frozenset[Modality],
) -> NormalizedItem:
    """The normalised query.

    Raises:
        InvalidInputError: the query is of no accepted shape.
        UnsupportedModalityError: the reranker cannot read it.
    """
    item = as_item(query)
    modality = modality_of(item)
    if not supports(modality):
        raise UnsupportedModalityError(f"query {describe(item)}", modality, sorted(modalities))
    return item


def split_supported(
    candidates: Sequence[ItemInput],
    supports: Callable[[Modality | tuple[Modality, ...]], bool],
    modalities: frozenset[Modality],
    policy: UnsupportedPolicy,
) -> tuple[list[tuple[int, NormalizedItem]], list[RerankResult]]:
    """Normalise candidates and apply the unsupported-modality policy.

    Returns:
        The ``(index, item)`` pairs to score, and the results already decided (unscored ones).

    Raises:
        UnsupportedModalityError: under the ``"error"`` policy, for the first unreadable candidate.
    """
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
        raise InvalidInputError(
            describe(candidates), "candidates must be a list (or other sequence) of items"
        )
    to_score: list[tuple[int, NormalizedItem]] = []
    decided: list[RerankResult] = []
    for index, value in enumerate(candidates):
        try:
            item = as_item(value)
        except InvalidInputError as exc:
            decided.append(RerankResult(index, float("-inf"), exc))
            continue
        modality = modality_of(item)
        if supports(modality):
            to_score.append((index, item))
            continue
        error = UnsupportedModalityError(f"candidate {index} {describe(item)}", modality, sorted(modalities))
        if policy == "error":
            raise error
        if policy == "keep_last":
            decided.append(RerankResult(index, float("-inf"), error))
    return to_score, decided


def scored_result(index: int, item: NormalizedItem, score: float) -> RerankResult:
    """The result of a candidate the model scored: a NaN score is a failure (``RerankError``), not a score."""
    if math.isnan(score):
        return RerankResult(
            index,
            float("-inf"),
            RerankError(f"candidate {index} {describe(item)}", "the reranker returned NaN"),
        )
    return RerankResult(index, score)


def order_results(results: list[RerankResult], top_n: int | None) -> list[RerankResult]:
    """Scored results by score descending (ties: incoming order), then unscored in incoming order."""
    scored = sorted((r for r in results if r.ok), key=lambda r: (-r.score, r.index))
    unscored = sorted((r for r in results if not r.ok), key=lambda r: r.index)
    ordered = scored + unscored
    return ordered if top_n is None else ordered[:top_n]


__all__ = [
    "POLICIES",
    "check_policy",
    "check_query",
    "check_top_n",
    "order_results",
    "scored_result",
    "split_supported",
    "supports_modality",
]
