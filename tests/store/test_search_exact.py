"""Through a real Store: the top-k is brute force's, for every calibration, with and without a filter."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from strategies import kind_stores

from omniretrieve.calibration import (
    CALIBRATIONS,
    KindCandidates,
    auto_choice,
    center,
    fuse,
    gap_statistic,
    l2_normalize,
)
from omniretrieve.documents import Document
from omniretrieve.store import Store
from omniretrieve.store._samples import EXACT_LIMIT, SAMPLE_SIZE, sample_ids
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.vectors import check_vector

DIM = 16


def _ids(kind: str, n: int) -> list[str]:
    return [f"{kind}{i:03d}" for i in range(n)]


def _doc(doc_id: str, kind: str, metadata: Mapping[str, Any] | None = None) -> Document:
    text = doc_id if kind == "text" else None
    return Document(id=doc_id, parts=(kind,), sha256=doc_id, text=text, metadata=metadata or {})  # type: ignore[arg-type]


@contextmanager
def _store(path: Path, kinds: Mapping[str, np.ndarray], *, exact_limit: int = EXACT_LIMIT) -> Iterator[Store]:
    """A store holding each kind's vectors, ids ``KINDnnn``, metadata ``{"even": i % 2 == 0}``.

    ``exact_limit=0``: every kind is fetched from Chroma (as a kind beyond EXACT_LIMIT is), not
    from the in-memory index of small kinds.
    """
    dim = next(iter(kinds.values())).shape[1]
    with Store(FakeEmbedder(dimension=dim), path=path) as store:
        store._search.samples.exact_limit = exact_limit
        for kind, vectors in kinds.items():
            docs = [_doc(i, kind, {"even": n % 2 == 0}) for n, i in enumerate(_ids(kind, len(vectors)))]
            assert all(r.ok for r in store.add_vectors(vectors, docs))
        yield store


def _reference(
    store: Store,
    kinds: Mapping[str, np.ndarray],
    query: np.ndarray,
    k: int,
    calibration: str,
    even_only: bool,
) -> list[Any]:
    """Brute force: every stored vector scored by ``fuse``, with the store's means and a sample chosen
    by the store's rule (whole kinds up to SAMPLE_SIZE)."""
    stored: dict[str, np.ndarray] = {}
    cands = []
    samples = {}
    for kind, vectors in kinds.items():
        ids = _ids(kind, len(vectors))
        got = store.get_vectors(ids)
        stored[kind] = np.asarray(got, dtype=np.float32)
        by_id = dict(zip(ids, stored[kind], strict=True))
        samples[kind] = np.asarray([by_id[i] for i in sample_ids(ids)])
        keep = [n for n in range(len(ids)) if not even_only or n % 2 == 0]
        cands.append(KindCandidates(kind, [ids[n] for n in keep], stored[kind][keep]))
    stats = store.statistics()  # the store's own sums (what its documented score uses)
    assert {k: stats.count(k) for k in stored} == {k: len(v) for k, v in stored.items()}
    auto = auto_choice(gap_statistic(samples))
    query = check_vector(query).astype(np.float64)  # what the store searches with: float32, unit
    return fuse(query, cands, k, calibration=calibration, stats=stats, auto=auto, query_parts=("text",))  # type: ignore[arg-type]


def _check(
    store: Store, kinds: Mapping[str, np.ndarray], query: np.ndarray, ks: tuple[int, ...] = (1, 3, 10)
) -> None:
    for calibration in CALIBRATIONS:
        for even_only in (False, True):
            where = {"even": True} if even_only else None
            for k in ks:
                got = store.search_vector(query, k, calibration=calibration, where=where)  # type: ignore[arg-type]
                ref = _reference(store, kinds, query, k, calibration, even_only)
                assert [h.id for h in got] == [h.id for h in ref], (calibration, even_only, k)
                np.testing.assert_allclose(
                    [h.score for h in got], [h.score for h in ref], rtol=1e-6, atol=1e-7
                )


def _far_best_match(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Most images sit tightly around their mean; the best match of the query is far from it."""
    rng = np.random.default_rng(seed)
    centre = l2_normalize(rng.standard_normal(DIM)) * 3
    images = l2_normalize(centre + 0.05 * rng.standard_normal((200, DIM)))
    texts = l2_normalize(rng.standard_normal((50, DIM)))
    query = l2_normalize(rng.standard_normal(DIM))
    images[137] = l2_normalize(0.6 * l2_normalize(centre) + query)  # off the cluster, toward the query
    return {"text": texts.astype(np.float32), "image": images.astype(np.float32)}, query


THROUGH = pytest.mark.parametrize("exact_limit", [EXACT_LIMIT, 0], ids=["in-memory", "chroma"])


@THROUGH
def test_model_free_best_match_far_from_its_kind_mean(tmp_path: Path, exact_limit: int) -> None:
    """The issue's model-free case: most images near their mean, the best match far from it."""
    kinds, query = _far_best_match()
    with _store(tmp_path / "s", kinds, exact_limit=exact_limit) as store:
        hits = store.search_vector(query, k=3, calibration="gap")
        assert "image137" in [h.id for h in hits]
        _check(store, kinds, query)


def test_best_match_the_old_preselection_ranked_beyond_its_shortlist(tmp_path: Path) -> None:
    """Images in a tight cluster; the best match by ``"gap"`` sits just off the mean, in the query's
    centred direction, so ``d - mu`` points at the query while ``q' . d`` barely moves: by that raw
    cosine (the old pre-selection: centred query, raw stored vectors, max(2k, 20) per kind) it
    ranks beyond 40th; the exact search returns it first."""
    rng = np.random.default_rng(7)
    images = l2_normalize(l2_normalize(rng.standard_normal(DIM)) + 0.03 * rng.standard_normal((300, DIM)))
    texts = l2_normalize(rng.standard_normal((80, DIM)))
    query = l2_normalize(rng.standard_normal(DIM))
    probe = center(query, texts.sum(axis=0) / (len(texts) + 1))
    for _ in range(3):  # the mean moves a little with the vector placed beside it
        mean = l2_normalize(images.astype(np.float32).sum(axis=0, dtype=np.float64))
        off = l2_normalize(probe - (probe @ mean) * mean)
        images[7] = l2_normalize(mean + 0.03 * off)
    kinds = {"text": texts.astype(np.float32), "image": images.astype(np.float32)}
    with _store(tmp_path / "s", kinds) as store:
        stats = store.statistics()
        probe = center(query, stats.mean("text", prior_count=store.prior_count))
        preselect = l2_normalize(kinds["image"].astype(np.float64)) @ probe
        assert int((preselect > preselect[7]).sum()) >= 40  # outside max(2k, 20) for k <= 10
        assert store.search_vector(query, k=3, calibration="gap")[0].id == "image007"
        assert "image007" in [h.id for h in store.search_vector(query, k=3)]
        _check(store, kinds, query)


def test_tight_clusters_ties_and_a_kind_with_one_document(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    dim = 8
    tight = l2_normalize(np.tile(rng.standard_normal(dim), (60, 1)) + 1e-3 * rng.standard_normal((60, dim)))
    tight[5:15] = tight[4]  # exact ties straddle every fetch boundary
    kinds = {
        "text": tight.astype(np.float32),
        "image": l2_normalize(
            3 * l2_normalize(rng.standard_normal(dim)) + rng.standard_normal((30, dim))
        ).astype(np.float32),
        "audio": l2_normalize(rng.standard_normal((1, dim))).astype(np.float32),
    }
    with _store(tmp_path / "s", kinds) as store:
        for _ in range(3):
            _check(store, kinds, l2_normalize(rng.standard_normal(dim)), ks=(1, 5, 12, 40))
        _check(store, kinds, tight[4], ks=(1, 12, 91))  # k beyond the store


@THROUGH
def test_kinds_larger_than_the_sample(tmp_path: Path, exact_limit: int) -> None:
    """A kind beyond SAMPLE_SIZE: widths from the hashed sample, bounds from the index."""
    rng = np.random.default_rng(3)
    n = SAMPLE_SIZE + 44
    concepts = l2_normalize(rng.standard_normal((n, DIM)))
    offsets = l2_normalize(rng.standard_normal((2, DIM))) * 3
    kinds = {
        kind: l2_normalize(concepts + 0.1 * rng.standard_normal((n, DIM)) + offsets[j]).astype(np.float32)
        for j, kind in enumerate(("text", "image"))
    }
    with _store(tmp_path / "s", kinds, exact_limit=exact_limit) as store:
        for q in kinds["text"][:4]:
            _check(store, kinds, q.astype(np.float64), ks=(10,))


@THROUGH
def test_where_filter_matching_few_or_none_of_a_kind(tmp_path: Path, exact_limit: int) -> None:
    """A fetch that returns fewer than asked (the filter) ends the widening of its kind."""
    kinds, query = _far_best_match(seed=2)
    with _store(tmp_path / "s", kinds, exact_limit=exact_limit) as store:
        assert store.search_vector(query, k=5, where={"even": "no such value"}) == []
        for calibration in CALIBRATIONS:
            hits = store.search_vector(query, k=300, calibration=calibration, where={"even": True})  # type: ignore[arg-type]
            assert len(hits) == 125 and all(h.document.metadata["even"] for h in hits)


def test_samples_are_computed_once_per_store_state(tmp_path: Path) -> None:
    kinds, query = _far_best_match(seed=4)
    with _store(tmp_path / "s", kinds) as store:
        samples = store._search.samples
        before = samples.computed
        first = [h.id for h in store.search_vector(query, k=10)]
        for _ in range(5):
            assert [h.id for h in store.search_vector(query, k=10)] == first
        assert samples.computed == before + 1
        statistic = samples.current(store._statistics.current()).gap_statistic
        # a write that changes a vector but no count is a new state
        store.add_vectors(
            l2_normalize(np.ones((1, DIM))),
            [_doc("image000", "image", {"even": True})],
            upsert=True,
        )
        store.search_vector(query, k=10)
        assert samples.computed == before + 2
        assert samples.current(store._statistics.current()).gap_statistic != statistic
        _check(
            store,
            {**kinds, "image": np.concatenate([l2_normalize(np.ones((1, DIM))), kinds["image"][1:]])},
            query,
        )


def test_samples_do_not_depend_on_the_write_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    kinds = {
        "text": l2_normalize(rng.standard_normal((SAMPLE_SIZE + 30, DIM))).astype(np.float32),
        "image": l2_normalize(rng.standard_normal((40, DIM)) + 2).astype(np.float32),
    }
    reverse = {kind: v[::-1] for kind, v in kinds.items()}
    results = []
    for name, order in (("a", kinds), ("b", reverse)):
        with Store(FakeEmbedder(dimension=DIM), path=tmp_path / name) as store:
            for kind, vectors in order.items():
                ids = _ids(kind, len(vectors))
                if order is reverse:
                    ids = ids[::-1]
                store.add_vectors(vectors, [_doc(i, kind) for i in ids])
            state = store._search.samples.current(store._statistics.current())
            results.append((state.gap_statistic, [h.id for h in store.search_vector(kinds["text"][0], k=10)]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    assert results[0][1] == results[1][1]


@pytest.mark.parametrize("offset", [0.0, 3.0], ids=["gap-free", "gap"])
def test_auto_applies_what_the_store_state_chose(tmp_path: Path, offset: float) -> None:
    # texts and images about the same 60 concepts; with an offset per kind (a modality gap) or not
    rng = np.random.default_rng(9)
    concepts = l2_normalize(rng.standard_normal((60, DIM)))
    shift = l2_normalize(rng.standard_normal((2, DIM))) * offset

    def tower(side: int) -> np.ndarray:
        noise = 0.3 * rng.standard_normal((60, DIM)) / np.sqrt(DIM)
        return l2_normalize(concepts + noise + shift[side]).astype(np.float32)

    kinds = {"text": tower(0), "image": tower(1)}
    query = tower(0)[7]
    with _store(tmp_path / "s", kinds) as store:
        state = store._search.samples.current(store._statistics.current())
        assert state.auto == ("gap" if offset else "none")
        chosen = store.search_vector(query, k=15, calibration=state.auto)
        auto = store.search_vector(query, k=15, calibration="auto")
        assert [(h.id, h.score) for h in auto] == [(h.id, h.score) for h in chosen]
        assert store._search.last_cost is not None and store._search.last_cost.calibration == state.auto
        # either way the query's own concept comes back in both kinds
        assert {"text007", "image007"} <= {h.id for h in auto[:4]}
        _check(store, kinds, query)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind_stores())
def test_search_is_exact_and_a_prefix_of_every_larger_k(
    case: tuple[dict[str, np.ndarray], np.ndarray],
) -> None:
    kinds, query = case
    total = sum(len(v) for v in kinds.values())
    with tempfile.TemporaryDirectory() as tmp, _store(Path(tmp) / "s", kinds) as store:
        for calibration in CALIBRATIONS:
            lists = [
                [h.id for h in store.search_vector(query, k, calibration=calibration)]  # type: ignore[arg-type]
                for k in (1, 4, 9, total)
            ]
            for shorter, longer in zip(lists, lists[1:], strict=False):
                assert longer[: len(shorter)] == shorter, calibration
            ref = _reference(store, kinds, query.astype(np.float64), 9, calibration, False)
            assert lists[2] == [h.id for h in ref], calibration


def _twin_kind(
    rng: np.random.Generator, query: np.ndarray, n: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``n`` vectors whose cosines to ``query`` fall in steps: one document alone first, then pairs
    of identical ones, so pairs sit across every boundary of a matrix product's row blocks."""
    unit = query / np.linalg.norm(query)
    cosines = np.linspace(0.95, 0.1, n // 2 + 1)
    vectors = np.empty((n, len(query)), dtype=np.float32)
    pairs: list[tuple[int, int]] = []
    rows = rng.permutation(n)  # the row (id) of each rank: twins' ids come in either order
    for rank in range(n):
        step = (rank + 1) // 2
        if rank % 2 == 0 and rank > 0:
            vectors[rows[rank]] = vectors[rows[rank - 1]]
            pairs.append((int(rows[rank - 1]), int(rows[rank])))
            continue
        noise = rng.normal(size=len(query))
        noise -= (noise @ unit) * unit
        noise /= np.linalg.norm(noise)
        c = cosines[step]
        vectors[rows[rank]] = c * unit + np.sqrt(1 - c * c) * noise
    return vectors, pairs


@pytest.mark.parametrize("exact_limit", [EXACT_LIMIT, 0])
def test_identical_documents_tie_by_id_whatever_k(tmp_path: Path, exact_limit: int) -> None:
    """Duplicates (the same caption twice, the same photo saved twice) get the same score, so a tie
    goes to the smaller id for every k and calibration: a matrix product rounds identical rows
    differently depending on where they sit among the fetched ones (BLAS blocks rows), which
    flipped such ties between ``k`` and ``k + 1``."""
    rng = np.random.default_rng(7)
    query = rng.normal(size=32)
    base: dict[str, np.ndarray] = {}
    twins: list[tuple[str, str]] = []
    for kind in ("text", "image"):
        base[kind], pairs = _twin_kind(rng, query, 41)
        twins += [(f"{kind}{min(p):03d}", f"{kind}{max(p):03d}") for p in pairs]
    with _store(tmp_path / "twins", base, exact_limit=exact_limit) as store:
        for calibration in CALIBRATIONS:
            full = [h.id for h in store.search_vector(query, 60, calibration=calibration)]
            for k in range(1, 60):
                got = [h.id for h in store.search_vector(query, k, calibration=calibration)]
                assert got == full[:k], (calibration, k)
            if calibration == "rrf":  # twins share a score only within their kind's list
                continue
            ranks = {doc_id: n for n, doc_id in enumerate(full)}
            for first, second in twins:
                if first in ranks and second in ranks:
                    assert ranks[first] < ranks[second], (calibration, first, second)
