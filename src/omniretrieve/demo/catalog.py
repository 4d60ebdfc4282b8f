"""A held-out world for the calibration benchmark: three embedding towers over product attributes.

Model-free and deterministic; see :func:`catalog_world` and :mod:`omniretrieve.demo.worlds`.
"""

from __future__ import annotations

import numpy as np

from omniretrieve.demo.worlds import VectorWorld, _unit

_CATALOG_KINDS: dict[str, tuple[float, float]] = {
    "text": (0.3, 0.0),
    "image": (0.6, 2.5),
    "audio": (0.9, 1.5),
}
"""Kind -> (noise, gap offset) of the catalog world: a sharp text tower without an offset, an image
tower with a large offset and an audio tower that is both noisier and offset."""


def catalog_world(seed: int = 0, dim: int = 64) -> VectorWorld:
    """A model-free three-kind world (text, image, audio) over product attributes.

    A product is (category, material, colour) of 8 x 5 x 6; its content vector is a fixed sum of
    seeded random attribute directions. Each kind sees content through its own random linear map,
    with its own noise and its own constant offset (:data:`_CATALOG_KINDS`), then renormalised.
    120 products get 2 texts, 2 images and 1 audio each; 150 distractor texts have random
    content. 40 text, 20 image and 10 audio queries; grade 2 for the same product, 1 for the same
    category and material. Added as a held-out world: it was not used to design a default.
    """
    rng = np.random.default_rng([seed, 0xCA7])
    cats, mats, cols = (_unit(rng.standard_normal((n, dim))).astype(np.float64) for n in (8, 5, 6))
    maps = {k: np.eye(dim) + 0.4 * rng.standard_normal((dim, dim)) / np.sqrt(dim) for k in _CATALOG_KINDS}
    offsets = {
        k: _unit(rng.standard_normal(dim)).astype(np.float64) * g for k, (_, g) in _CATALOG_KINDS.items()
    }
    products = [(c, m, o) for c in range(8) for m in range(5) for o in range(6)]

    def embed(kind: str, content: np.ndarray) -> np.ndarray:
        noise = _CATALOG_KINDS[kind][0]
        x = _unit(content).astype(np.float64) @ maps[kind]
        return _unit(_unit(x) + noise * rng.standard_normal(dim) / np.sqrt(dim) * 2 + offsets[kind])

    def content(p: tuple[int, int, int]) -> np.ndarray:
        return cats[p[0]] + 0.7 * mats[p[1]] + 0.5 * cols[p[2]]

    chosen = [products[i] for i in rng.permutation(len(products))[:120]]
    ids: list[str] = []
    kinds: list[str] = []
    vecs: list[np.ndarray] = []
    product_of: dict[str, tuple[int, int, int] | None] = {}
    for n, p in enumerate(chosen):
        for kind, copies in (("text", 2), ("image", 2), ("audio", 1)):
            for j in range(copies):
                ids.append(f"{kind}-{n:03d}-{j}")
                kinds.append(kind)
                vecs.append(embed(kind, content(p)))
                product_of[ids[-1]] = p
    for j in range(150):
        ids.append(f"dis-{j:03d}")
        kinds.append("text")
        vecs.append(embed("text", rng.standard_normal(dim)))
        product_of[ids[-1]] = None
    q_ids: list[str] = []
    q_kinds: list[str] = []
    q_vecs: list[np.ndarray] = []
    judgments: dict[str, dict[str, int]] = {}
    for kind, n_q in (("text", 40), ("image", 20), ("audio", 10)):
        for i in range(n_q):
            p = chosen[int(rng.integers(len(chosen)))]
            qid = f"q-{kind}-{i:03d}"
            q_ids.append(qid)
            q_kinds.append(kind)
            q_vecs.append(embed(kind, content(p)))
            judgments[qid] = {
                d: 2 if dp == p else 1 for d, dp in product_of.items() if dp is not None and dp[:2] == p[:2]
            }
    return VectorWorld(
        name="heldout-catalog-3kinds",
        model="synthetic: 3 towers (text sharp; image offset 2.5x; audio noisier, offset 1.5x)",
        doc_ids=tuple(ids),
        doc_kinds=tuple(kinds),
        doc_vectors=np.stack(vecs).astype(np.float32),
        query_ids=tuple(q_ids),
        query_kinds=tuple(q_kinds),
        query_vectors=np.stack(q_vecs).astype(np.float32),
        judgments=judgments,
    )


__all__ = ["catalog_world"]
