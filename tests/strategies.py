"""Hypothesis strategies shared by the tests: small adversarial multi-kind vector stores."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from omniretrieve.calibration import l2_normalize


@st.composite
def kind_stores(draw: st.DrawFn, dim: int = 6) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-kind unit vectors (1-40 per kind, each kind a cluster of drawn tightness around its own
    offset, a few duplicated rows) and a unit query."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    kinds: dict[str, np.ndarray] = {}
    for kind in draw(st.sampled_from([("text",), ("text", "image"), ("text", "image", "audio")])):
        n = draw(st.integers(1, 40))
        offset = draw(st.sampled_from([0.0, 1.0, 3.0, 8.0]))
        spread = draw(st.sampled_from([0.01, 0.1, 1.0]))
        centre = l2_normalize(rng.standard_normal(dim)) * offset
        rows = centre + spread * rng.standard_normal((n, dim))
        if n > 3 and draw(st.booleans()):
            rows[1] = rows[0]  # an exact tie
        kinds[kind] = l2_normalize(rows).astype(np.float32)
    query = l2_normalize(rng.standard_normal(dim)).astype(np.float32)
    return kinds, query
