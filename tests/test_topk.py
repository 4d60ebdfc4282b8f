from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import kind_stores

from omniretrieve.calibration import CALIBRATIONS, KindCandidates, ModalityStats, fuse, l2_normalize
from omniretrieve.errors import InvalidInputError
from omniretrieve.topk import ArrayIndex, KindSource, TopKCost, top_k


def _sources(
    store: dict[str, np.ndarray],
) -> tuple[list[KindSource], list[KindCandidates], dict[str, np.ndarray]]:
    sources, full = [], []
    for kind, vecs in store.items():
        ids = [f"{kind}{i:03d}" for i in range(len(vecs))]
        sources.append(KindSource(kind, len(ids), ArrayIndex(ids, vecs).fetch, vecs[::2]))
        full.append(KindCandidates(kind, ids, vecs))
    return sources, full, {k: v[::2] for k, v in store.items()}


def _check_exact(store: dict[str, np.ndarray], query: np.ndarray, ks: tuple[int, ...] = (1, 3, 10)) -> None:
    stats = ModalityStats.from_vectors(query.shape[0], store)
    sources, full, samples = _sources(store)
    for calibration in CALIBRATIONS:
        for k in ks:
            got = top_k(query, sources, k, calibration=calibration, stats=stats)
            ref = fuse(
                query, full, k, calibration=calibration, stats=stats, samples=samples, query_parts=("text",)
            )
            assert [h.id for h in got] == [h.id for h in ref], (calibration, k)
            np.testing.assert_allclose([h.score for h in got], [h.score for h in ref], rtol=1e-9, atol=1e-12)


def test_best_match_far_from_the_kind_mean_is_found() -> None:
    # most images sit tightly around their mean; one is far from it and matches the query best
    rng = np.random.default_rng(0)
    dim = 16
    centre = l2_normalize(rng.standard_normal(dim)) * 3
    images = l2_normalize(centre + 0.05 * rng.standard_normal((200, dim)))
    texts = l2_normalize(rng.standard_normal((50, dim)))
    query = l2_normalize(rng.standard_normal(dim))
    images[137] = l2_normalize(0.6 * l2_normalize(centre) + query)  # off the cluster, toward the query
    store = {"text": texts, "image": images}
    _check_exact(store, query, ks=(1, 3, 10))
    stats = ModalityStats.from_vectors(dim, store)
    sources, _, _ = _sources(store)
    cost = TopKCost()
    hits = top_k(query, sources, 3, calibration="gap", stats=stats, cost=cost)
    assert "image137" in [h.id for h in hits]
    assert cost.fetched < 250 + 50  # proved without scoring more than the whole store


def test_tight_clusters_single_document_kind_and_ties() -> None:
    rng = np.random.default_rng(1)
    dim = 8
    tight = l2_normalize(np.tile(rng.standard_normal(dim), (60, 1)) + 1e-3 * rng.standard_normal((60, dim)))
    tight[5:15] = tight[4]  # exact ties straddle every fetch boundary
    store = {
        "text": tight,
        "image": l2_normalize(rng.standard_normal((30, dim))),
        "audio": l2_normalize(rng.standard_normal((1, dim))),
    }
    for _ in range(5):
        _check_exact(store, l2_normalize(rng.standard_normal(dim)), ks=(1, 5, 12, 40))
    _check_exact(store, tight[4], ks=(1, 5, 12, 91))  # k beyond the store


def test_errors_and_empty_kinds() -> None:
    dim = 4
    vecs = l2_normalize(np.random.default_rng(2).standard_normal((3, dim)))
    src = KindSource("text", 3, ArrayIndex(["a", "b", "c"], vecs).fetch)
    empty = KindSource("image", 0, ArrayIndex([], np.zeros((0, dim))).fetch)
    assert len(top_k(vecs[0], [src, empty], 5, calibration="none")) == 3
    with pytest.raises(InvalidInputError):
        top_k(vecs[0], [src], 0, calibration="none")
    with pytest.raises(InvalidInputError):
        top_k(vecs[0], [src], 2, calibration="gap")  # needs statistics
    with pytest.raises(InvalidInputError):
        top_k(vecs[0], [src], 2, calibration="auto", auto="gap")  # chose "gap": needs statistics
    with pytest.raises(InvalidInputError):
        top_k(vecs[0], [src], 2, calibration="scaled")  # type: ignore[arg-type]  # removed
    stats = ModalityStats.from_vectors(dim, {"text": vecs})
    # one kind (no pair to measure a gap on): "auto" is "none", and records what it applied
    cost = TopKCost()
    auto = top_k(vecs[0], [src], 3, calibration="auto", stats=stats, cost=cost)
    plain = top_k(vecs[0], [src], 3, calibration="none", stats=stats)
    assert [(h.id, h.score) for h in auto] == [(h.id, h.score) for h in plain]
    assert cost.calibration == "none"
    chosen = top_k(vecs[0], [src], 3, calibration="auto", stats=stats, auto="gap")
    gap = top_k(vecs[0], [src], 3, calibration="gap", stats=stats)
    assert [(h.id, h.score) for h in chosen] == [(h.id, h.score) for h in gap]


@settings(max_examples=60, deadline=None)
@given(kind_stores())
def test_top_k_is_exact_and_a_prefix_of_every_larger_k(
    case: tuple[dict[str, np.ndarray], np.ndarray],
) -> None:
    store, query = case
    stats = ModalityStats.from_vectors(query.shape[0], store)
    sources, full, samples = _sources(store)
    total = sum(len(v) for v in store.values())
    for calibration in CALIBRATIONS:
        lists = [
            [h.id for h in top_k(query, sources, k, calibration=calibration, stats=stats)]
            for k in (1, 4, 9, total)
        ]
        for shorter, longer in zip(lists, lists[1:], strict=False):
            assert longer[: len(shorter)] == shorter, calibration
        ref = fuse(
            query, full, 9, calibration=calibration, stats=stats, samples=samples, query_parts=("text",)
        )
        assert lists[2] == [h.id for h in ref], calibration


def test_concurrent_rounds_and_first_fetch_change_only_the_cost() -> None:
    rng = np.random.default_rng(3)
    dim = 8
    store = {
        "text": l2_normalize(rng.standard_normal((70, dim)) + 2.0).astype(np.float32),
        "image": l2_normalize(rng.standard_normal((50, dim)) - 2.0).astype(np.float32),
        "audio": l2_normalize(rng.standard_normal((3, dim))).astype(np.float32),
    }
    stats = ModalityStats.from_vectors(dim, store)
    sources, _, _ = _sources(store)
    threads: set[str] = set()

    def spy(source: KindSource) -> KindSource:
        def fetch(probe: np.ndarray, n: int) -> tuple[list[str], np.ndarray]:
            threads.add(threading.current_thread().name)
            return source.fetch(probe, n)  # type: ignore[return-value]

        return KindSource(source.kind, source.count, fetch, source.sample)

    spied = [spy(s) for s in sources]
    query = l2_normalize(rng.standard_normal(dim))
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="topk-test") as pool:
        for calibration in CALIBRATIONS:
            plain_cost, pooled_cost = TopKCost(), TopKCost()
            plain = top_k(query, sources, 7, calibration=calibration, stats=stats, cost=plain_cost)
            pooled = top_k(
                query, spied, 7, calibration=calibration, stats=stats, cost=pooled_cost, executor=pool
            )
            assert pooled == plain
            assert (pooled_cost.fetches, pooled_cost.fetched) == (plain_cost.fetches, plain_cost.fetched)
            for first in (1, 3, 200):
                assert (
                    top_k(query, sources, 7, calibration=calibration, stats=stats, first_fetch=first) == plain
                )
    assert any(name.startswith("topk-test") for name in threads)  # rounds ran on the pool


def test_identical_documents_tie_by_id_wherever_the_index_returns_them() -> None:
    """Twins (the same vector stored twice) tie, and the smaller id wins, whatever rows the index
    returns them in: a matrix product rounds a row differently depending on its position among the
    fetched rows (BLAS blocks rows: here one twin is the 8th of 9 rows, the other the 9th), which
    used to let the larger id win and made ``search(k)`` differ from the first k of ``search(k + 1)``."""
    for seed in range(40):
        rng = np.random.default_rng(seed)
        query = l2_normalize(rng.normal(size=32))
        vectors = rng.normal(size=(12, 32)) + 4 * query  # rows of decreasing cosine below
        cos = l2_normalize(vectors) @ query
        vectors = vectors[np.argsort(-cos)]
        vectors[8] = vectors[7]  # twins at rows 7 and 8 of every fetch
        ids = [f"d{i:02d}" for i in range(12)]
        ids[7], ids[8] = "d08", "d07"  # the later row holds the smaller id

        def fetch(
            probe: np.ndarray, n: int, vectors: np.ndarray = vectors, ids: list[str] = ids
        ) -> tuple[list[str], np.ndarray]:
            return ids[:n], vectors[:n]  # already in cosine order (the twins in row order)

        source = KindSource("text", len(ids), fetch)
        for calibration in ("none", "gap"):
            stats = ModalityStats(32)
            stats.add("text", vectors)
            for k in range(1, 12):
                got = [h.id for h in top_k(query, [source], k, calibration=calibration, stats=stats)]
                if "d08" in got:  # the larger id only ever comes right after the smaller one
                    assert got[got.index("d08") - 1] == "d07", (seed, calibration, k, got)
