from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omniretrieve.calibration import (
    GAP_THRESHOLD,
    KindCandidates,
    ModalityStats,
    auto_choice,
    center,
    check_calibration,
    cosine_scores,
    fuse,
    gap_scores,
    gap_statistic,
    l2_normalize,
    resolve,
    rrf_scores,
)
from omniretrieve.documents import Document
from omniretrieve.errors import InvalidInputError
from omniretrieve.evaluation import evaluate
from omniretrieve.store import Store
from omniretrieve.testing.fakes import FakeEmbedder


def offset_corpus(
    n: int = 60, dim: int = 32, gap: float = 3.0, noise: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texts, images and text queries about n concepts, each modality shifted by its own offset.

    Text i, image i and query i share concept i. The offsets (norm ``gap``) dominate the
    concepts (norm 1), as the modality gap does in CLIP-like models.
    """
    rng = np.random.default_rng(seed)
    concepts = l2_normalize(rng.standard_normal((n, dim)))
    off_text, off_image = l2_normalize(rng.standard_normal((2, dim))) * gap

    def noisy(offset: np.ndarray) -> np.ndarray:
        return l2_normalize(concepts + noise * rng.standard_normal((n, dim)) / np.sqrt(dim) + offset)

    return noisy(off_text), noisy(off_image), noisy(off_text)


def _rank_all(query: np.ndarray, texts: np.ndarray, images: np.ndarray, calibration: str) -> list[str]:
    stats = ModalityStats.from_vectors(texts.shape[1], {"text": texts, "image": images})
    cands = [
        KindCandidates("text", [f"t{i}" for i in range(len(texts))], texts),
        KindCandidates("image", [f"i{i}" for i in range(len(images))], images),
    ]
    hits = fuse(query, cands, len(texts) + len(images), calibration=calibration, stats=stats)  # type: ignore[arg-type]
    return [h.id for h in hits]


def test_stats_add_remove_mean_merge() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 4)), rng.standard_normal((3, 4))
    stats = ModalityStats(4)
    assert stats.mean("text") is None and stats.count("text") == 0
    stats.add("text", a)
    stats.add("text", b)
    np.testing.assert_allclose(stats.mean("text", prior_count=0), np.vstack([a, b]).mean(axis=0))
    np.testing.assert_allclose(stats.mean("text"), np.vstack([a, b]).sum(axis=0) / 9)  # shrunk by 1
    stats.remove("text", b)
    np.testing.assert_allclose(stats.mean("text", prior_count=0), a.mean(axis=0))
    other = ModalityStats(4)
    other.add("image", b)
    other.remove("text", a[:2])
    stats.merge(other)
    assert stats.counts == {"text": 3, "image": 3}
    np.testing.assert_allclose(stats.sums["text"], a[2:].sum(axis=0))
    assert stats.kinds() == ["text", "image"]
    with pytest.raises(InvalidInputError):
        stats.add("text", np.zeros((2, 5)))
    with pytest.raises(InvalidInputError):
        stats.merge(ModalityStats(5))


def test_query_mean_falls_back_to_parts() -> None:
    stats = ModalityStats(2)
    stats.add("text", np.array([[1.0, 0.0]]))
    stats.add("image", np.array([[0.0, 1.0]]))
    np.testing.assert_allclose(stats.query_mean("text", ("text",), prior_count=0), [1.0, 0.0])
    np.testing.assert_allclose(stats.query_mean("combined", ("text", "image"), prior_count=0), [0.5, 0.5])
    assert stats.query_mean("audio", ("audio",)) is None


def test_scores_are_cosines_of_centred_vectors() -> None:
    rng = np.random.default_rng(2)
    q, docs = l2_normalize(rng.standard_normal(6)), l2_normalize(rng.standard_normal((4, 6)))
    qm, dm = rng.standard_normal(6) * 0.1, rng.standard_normal(6) * 0.1
    expected = [
        float(np.dot((q - qm) / np.linalg.norm(q - qm), (d - dm) / np.linalg.norm(d - dm))) for d in docs
    ]
    np.testing.assert_allclose(gap_scores(q, docs, qm, dm), expected)
    np.testing.assert_allclose(cosine_scores(q, docs), docs @ q)
    np.testing.assert_allclose(center(np.zeros((1, 3)), None), np.zeros((1, 3)))  # zero stays zero
    np.testing.assert_allclose(rrf_scores(3), [1 / 61, 1 / 62, 1 / 63])
    assert check_calibration("gap") == "gap"
    with pytest.raises(InvalidInputError):
        check_calibration("zscore")


def test_gap_removal_restores_ranking_on_offset_corpus() -> None:
    texts, images, queries = offset_corpus()
    n = len(texts)
    qrels = {f"q{i}": {f"t{i}": 1, f"i{i}": 1} for i in range(n)}
    runs = {
        c: {f"q{i}": _rank_all(queries[i], texts, images, c) for i in range(n)}
        for c in ("none", "gap", "rrf")
    }
    # raw cosine: the gap puts every text above every image
    image_rank_none = [runs["none"][f"q{i}"].index(f"i{i}") for i in range(n)]
    assert min(image_rank_none) >= n  # all n texts come first
    assert all(r.startswith("t") for r in runs["none"]["q0"][:n])
    # gap removal: the matching image comes back next to its caption
    image_rank_gap = [runs["gap"][f"q{i}"].index(f"i{i}") for i in range(n)]
    assert float(np.median(image_rank_gap)) <= 2
    metrics = {c: evaluate(runs[c], qrels, k=10) for c in runs}
    assert metrics["gap"]["ndcg@10"] >= 0.9
    assert metrics["gap"]["ndcg@10"] >= metrics["none"]["ndcg@10"] + 0.2
    assert metrics["gap"]["ndcg@10"] >= metrics["rrf"]["ndcg@10"]


def test_gap_removal_costs_nothing_without_a_gap() -> None:
    texts, images, queries = offset_corpus(gap=0.0)
    n = len(texts)
    qrels = {f"q{i}": {f"t{i}": 1, f"i{i}": 1} for i in range(n)}
    runs = {c: {f"q{i}": _rank_all(queries[i], texts, images, c) for i in range(n)} for c in ("none", "gap")}
    none, gap = (evaluate(runs[c], qrels, k=10)["ndcg@10"] for c in ("none", "gap"))
    assert gap >= none - 0.01


def test_rrf_interleaves_kinds_by_rank() -> None:
    texts, images, queries = offset_corpus(n=10)
    ids = _rank_all(queries[0], texts, images, "rrf")
    pairs = [{ids[2 * r][0], ids[2 * r + 1][0]} for r in range(10)]
    assert all(p == {"t", "i"} for p in pairs)  # rank r of each kind, then rank r + 1


def test_fuse_orders_and_limits() -> None:
    q = np.array([1.0, 0.0])
    cands = [
        KindCandidates("text", ["a", "b"], np.array([[1.0, 0.0], [0.6, 0.8]])),
        KindCandidates("image", ["c"], np.array([[0.8, 0.6]])),
        KindCandidates("audio", [], np.zeros((0, 2))),
    ]
    hits = fuse(q, cands, 2, calibration="none")
    assert [(h.id, h.kind, h.index) for h in hits] == [("a", "text", 0), ("c", "image", 0)]
    assert hits[0].score == pytest.approx(1.0) and hits[1].cosine == pytest.approx(0.8)
    with pytest.raises(InvalidInputError):
        fuse(q, cands, 2, calibration="gap")  # needs statistics


def _docs(n: int, kind_tag: str) -> list[Document]:
    return [
        Document(id=f"{kind_tag}{i}", parts=("text",), sha256=f"s{i}", text=f"{kind_tag} {i}")
        for i in range(n)
    ]


def _image_docs(n: int) -> list[Document]:
    return [Document(id=f"img{i}", parts=("image",), sha256=f"h{i}") for i in range(n)]


def _expected(store_vectors: dict[str, dict[str, np.ndarray]], dim: int) -> ModalityStats:
    return ModalityStats.from_vectors(
        dim, {k: np.array(list(v.values())) if v else np.zeros((0, dim)) for k, v in store_vectors.items()}
    )


def _assert_stats_equal(actual: ModalityStats, expected: ModalityStats) -> None:
    for kind in set(actual.counts) | set(expected.counts):
        assert actual.count(kind) == expected.count(kind), kind
        if expected.count(kind):
            np.testing.assert_allclose(actual.sums[kind], expected.sums[kind], atol=1e-5)


def test_store_means_stay_current_after_add_delete_update(tmp_path: Path) -> None:
    dim = 8
    rng = np.random.default_rng(3)
    model: dict[str, dict[str, np.ndarray]] = {"text": {}, "image": {}}

    def vecs(n: int) -> np.ndarray:
        return l2_normalize(rng.standard_normal((n, dim))).astype(np.float32)

    with Store(FakeEmbedder(dimension=dim), path=tmp_path / "s") as store:
        tv, iv = vecs(6), vecs(4)
        store.add_vectors(tv, _docs(6, "t"))
        store.add_vectors(iv, _image_docs(4))
        model["text"] = {f"t{i}": tv[i] for i in range(6)}
        model["image"] = {f"img{i}": iv[i] for i in range(4)}
        _assert_stats_equal(store.statistics(), _expected(model, dim))
        # update: a text gets a new vector
        new = vecs(1)
        assert [r.status for r in store.add_vectors(new, _docs(1, "t"), upsert=True)] == ["updated"]
        model["text"]["t0"] = new[0]
        # delete by id and by filter
        assert store.delete(ids=["t1", "img0", "missing"]) == 2
        del model["text"]["t1"], model["image"]["img0"]
        _assert_stats_equal(store.statistics(), _expected(model, dim))
        # a document that changes kind moves its vector between means
        moved = vecs(1)
        doc = Document(id="t2", parts=("image",), sha256="x")
        assert [r.status for r in store.add_vectors(moved, [doc], upsert=True)] == ["updated"]
        del model["text"]["t2"]
        model["image"]["t2"] = moved[0]
        _assert_stats_equal(store.statistics(), _expected(model, dim))
        mean = store.statistics().mean("image", prior_count=0)
        assert mean is not None
        np.testing.assert_allclose(mean, np.mean(list(model["image"].values()), axis=0), atol=1e-6)
    # persistent: reopening reads the same statistics, and a full recount agrees
    with Store(FakeEmbedder(dimension=dim), path=tmp_path / "s") as store:
        _assert_stats_equal(store.statistics(), _expected(model, dim))
        _assert_stats_equal(store.recompute_statistics(), _expected(model, dim))


def test_drifted_statistics_are_recounted_on_open(tmp_path: Path) -> None:
    dim = 4
    vectors = l2_normalize(np.random.default_rng(4).standard_normal((3, dim))).astype(np.float32)
    with Store(FakeEmbedder(dimension=dim), path=tmp_path / "s") as store:
        store.add_vectors(vectors, _docs(3, "t"))
        # simulate a crash between writing documents and writing statistics
        store._stats_col.delete(ids=store._stats_col.get(include=[])["ids"])
    with Store(FakeEmbedder(dimension=dim), path=tmp_path / "s") as store:
        _assert_stats_equal(store.statistics(), ModalityStats.from_vectors(dim, {"text": vectors}))


@pytest.mark.parametrize("gap", [0.0, 0.5, 3.0])
def test_auto_is_gap_with_a_gap_and_none_without(gap: float) -> None:
    texts, images, queries = offset_corpus(gap=gap)
    statistic = gap_statistic({"text": texts, "image": images})
    assert statistic is not None
    if gap == 3.0:
        assert statistic > 2 * GAP_THRESHOLD  # the offsets dominate: far above the threshold
        assert auto_choice(statistic) == "gap"
    else:
        assert statistic < GAP_THRESHOLD / 2
        assert auto_choice(statistic) == "none"
    # the promise: "auto" ranks and scores exactly as the method it chose (from the samples given)
    stats = ModalityStats.from_vectors(texts.shape[1], {"text": texts, "image": images})
    cands = [
        KindCandidates("text", [f"t{i}" for i in range(len(texts))], texts),
        KindCandidates("image", [f"i{i}" for i in range(len(images))], images),
    ]
    samples = {"text": texts[::3], "image": images[::3]}
    chosen = auto_choice(gap_statistic(samples))
    assert chosen == auto_choice(statistic)
    for q in queries[:10]:
        auto = fuse(q, cands, 30, calibration="auto", stats=stats, samples=samples)
        assert auto == fuse(q, cands, 30, calibration=chosen, stats=stats)
        assert auto == fuse(q, cands, 30, calibration="auto", stats=stats, auto=chosen)


def test_gap_statistic_definition_and_fallbacks() -> None:
    rng = np.random.default_rng(6)
    a = l2_normalize(rng.standard_normal((30, 8)) + 2.0)
    b = l2_normalize(rng.standard_normal((20, 8)))
    one = l2_normalize(rng.standard_normal((1, 8)))
    within = (a @ a.T)[~np.eye(30, dtype=bool)]
    cross = (a @ b.T).ravel()
    expected = (np.median(within) - np.median(cross)) / (np.quantile(cross, 0.99) - np.median(cross))
    # b -> a is also measured; the statistic is the larger of the two
    assert gap_statistic({"a": a, "b": b}) == pytest.approx(
        max(expected, gap_statistic({"b": b, "a": a}) or 0)
    )
    assert gap_statistic({"a": a, "b": b}) >= expected - 1e-12  # type: ignore[operator]
    # a kind with one vector has no within-kind pair: only the other direction counts
    wb = (a @ one.T).ravel()
    only = (np.median(within) - np.median(wb)) / (np.quantile(wb, 0.99) - np.median(wb))
    assert gap_statistic({"a": a, "one": one}) == pytest.approx(only)
    # fewer than two kinds: nothing to compare, "auto" is "none"
    assert gap_statistic({"a": a}) is None
    assert gap_statistic({"a": a, "empty": np.zeros((0, 8)), "missing": None}) is None
    assert auto_choice(None) == "none"
    assert resolve("auto", {"a": a}) == "none"
    assert resolve("auto", auto="gap") == "gap"
    assert resolve("rrf", auto="gap") == "rrf"
    with pytest.raises(InvalidInputError):
        resolve("scaled")  # type: ignore[arg-type]
