"""Maximal marginal relevance over a mixed store: the similarity it uses, and the selection.

MMR (Carbonell and Goldstein 1998) picks, one at a time, the candidate that maximises
``lambda_mult * sim(query, doc) - (1 - lambda_mult) * max sim(doc, already picked)``; the selection
itself is langchain-core's :func:`~langchain_core.vectorstores.utils.maximal_marginal_relevance`.

Which similarity: raw cosines carry the modality gap (see :mod:`omniretrieve.calibration`). Every
image is closer to every other image than to any text, so with raw cosines MMR would take an
image as "new" next to a caption for being an image, and the redundancy it removes would be by
modality, not by content. Here every vector is first centred on its kind's mean (the store's
statistics, the same means calibration ``"gap"`` removes; the query on its own kind's mean, as the
search centres it) and renormalised, so both MMR terms are cosines between gap-free directions:
comparable across kinds. A picture and its own caption then count as near-duplicates of each
other, as two copies of one caption do. With ``calibration="none"`` MMR uses the raw cosines, as
that setting asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from omniretrieve import InvalidInputError
from omniretrieve.calibration import center, l2_normalize

if TYPE_CHECKING:
    from omniretrieve import Store
    from omniretrieve.documents import SearchHit


def check_mmr_options(k: int, fetch_k: int, lambda_mult: float) -> None:
    """Validate MMR's own options (the search checks the rest).

    Raises:
        InvalidInputError: ``k`` or ``fetch_k`` is not a positive int, or ``lambda_mult`` is not in
            ``[0, 1]``.
    """
    for name, value in (("k", k), ("fetch_k", fetch_k)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidInputError(f"{name}={value!r}", "must be a positive int")
    if isinstance(lambda_mult, bool) or not isinstance(lambda_mult, int | float) or not 0 <= lambda_mult <= 1:
        raise InvalidInputError(
            f"lambda_mult={lambda_mult!r}", "must be a number in [0, 1] (0: most diverse, 1: most relevant)"
        )


def select(
    store: Store,
    hits: Sequence[SearchHit],
    query: Sequence[float] | np.ndarray,
    query_kind: str,
    *,
    k: int,
    lambda_mult: float,
    raw: bool,
) -> list[SearchHit]:
    """The ``k`` candidates MMR picks, in the order it picks them.

    Args:
        store: The store the candidates come from (their vectors and its statistics).
        hits: The candidates, as the store's search returned them.
        query: The query embedding.
        query_kind: The query's kind (``"text"``, ``"image"``, ...), whose mean centres it.
        k: How many to pick.
        lambda_mult: ``1``: relevance only; ``0``: diversity only.
        raw: Compare raw cosines instead of gap-free ones (``calibration="none"``).
    """
    vectors = store.get_vectors([hit.document.id for hit in hits])
    kept = [(hit, vector) for hit, vector in zip(hits, vectors, strict=True) if vector is not None]
    if not kept:  # every candidate was deleted between the search and now
        return []
    q = l2_normalize(np.asarray(query, dtype=np.float64))
    if raw:
        docs = l2_normalize(np.stack([vector for _, vector in kept]))
    else:
        stats = store.statistics()
        prior = store.prior_count
        centred = center(q, stats.mean(query_kind, prior_count=prior))
        q = centred if np.any(centred) else q
        docs = np.stack([center(vector, stats.mean(hit.modality, prior_count=prior)) for hit, vector in kept])
    chosen = maximal_marginal_relevance(q, docs.tolist(), lambda_mult=float(lambda_mult), k=k)
    return [kept[i][0] for i in chosen]
