"""The best merge of per-kind ranked lists by the judgments: the ceiling any fusion can reach.

Shared by ``mixed_search.py`` (its ``fusion_ceiling``) and ``calibration.py`` (``oracle_interleave_ndcg@10``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

K = 10


def _dcg(grades: Sequence[int]) -> float:
    return sum(g / math.log2(r + 1) for r, g in enumerate(grades, start=1))


def oracle_interleave(lists: Sequence[Sequence[str]], judgments: dict[str, int], k: int = K) -> float:
    """The best nDCG@k of any interleaving of ranked lists that keeps each list's own order."""
    ideal = _dcg(sorted((g for g in judgments.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    lists = [list(x[:k]) for x in lists]

    @functools.cache
    def best(pos: tuple[int, ...]) -> float:
        rank = sum(pos) + 1
        if rank > k:
            return 0.0
        options = [0.0]
        for i, p in enumerate(pos):
            if p < len(lists[i]):
                nxt = tuple(q + 1 if j == i else q for j, q in enumerate(pos))
                options.append(judgments.get(lists[i][p], 0) / math.log2(rank + 1) + best(nxt))
        return max(options)

    return best(tuple(0 for _ in lists)) / ideal
