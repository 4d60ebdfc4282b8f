from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImageModule

from omniretrieve.calibration import DEFAULT_CALIBRATION, KindCandidates, ModalityStats, fuse, l2_normalize
from omniretrieve.documents import Document
from omniretrieve.errors import InvalidInputError, InvalidVectorError
from omniretrieve.evaluation import evaluate
from omniretrieve.store import CANDIDATES_MIN, Store
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.testing.rerankers import FakeReranker
from omniretrieve.types import Audio, Combined, Image

DIM = 16


def _pixels(seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((8, 8, 3)) * 255).astype(np.uint8)


def _samples(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(1600).astype(np.float32) * 0.1


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(FakeEmbedder(dimension=DIM), path=tmp_path / "s") as s:
        texts = ["a red circle", "a blue square", "a green triangle", "music for an evening", "the weather"]
        s.add(texts, metadatas=[{"lang": "en", "n": i} for i in range(len(texts))])
        s.add(
            [Image(_pixels(i)) for i in range(4)], metadatas=[{"lang": "xx", "n": 10 + i} for i in range(4)]
        )
        s.add(
            [Audio(_samples(i), sampling_rate=16_000) for i in range(3)],
            metadatas=[{"n": 20 + i} for i in range(3)],
        )
        s.add(
            [{"text": f"slide {i}", "image": Image(_pixels(100 + i))} for i in range(3)],
            metadatas=[{"lang": "en", "n": 30 + i} for i in range(3)],
        )
        yield s


def _exact_match_scores(store: Store, query: Any) -> None:
    """The query's own document scores 1 under "gap"; a search without a calibration is the default's."""
    gap = store.search(query, k=15, calibration="gap")
    assert gap[0].score == pytest.approx(1.0, abs=1e-5)
    named = store.search(query, k=15, calibration=DEFAULT_CALIBRATION)
    assert [(h.id, h.score, h.cosine) for h in store.search(query, k=15)] == [
        (h.id, h.score, h.cosine) for h in named
    ]


def test_search_by_text(store: Store) -> None:
    hits = store.search("a blue square", k=5)
    assert len(hits) == 5
    top = hits[0]
    assert top.document.text == "a blue square" and top.modality == "text"
    assert top.cosine == pytest.approx(1.0, abs=1e-5)
    _exact_match_scores(store, "a blue square")
    assert top.document.metadata == {"lang": "en", "n": 1} and top.rerank_score is None
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert {h.modality for h in store.search("a blue square", k=15)} == {"text", "image", "audio", "combined"}


def test_search_by_image(store: Store) -> None:
    hits = store.search(Image(_pixels(2)), k=3)
    assert hits[0].modality == "image" and hits[0].document.metadata["n"] == 12
    _exact_match_scores(store, Image(_pixels(2)))
    # a PIL image is an image query too
    pil = PILImageModule.fromarray(_pixels(3))
    assert store.search(pil, k=1)[0].document.metadata["n"] == 13


def test_search_by_audio(store: Store) -> None:
    hits = store.search(Audio(_samples(1), sampling_rate=16_000), k=3)
    assert hits[0].modality == "audio" and hits[0].document.metadata["n"] == 21
    _exact_match_scores(store, Audio(_samples(1), sampling_rate=16_000))


def test_search_by_combined_item(store: Store) -> None:
    hits = store.search(Combined(text="slide 1", image=Image(_pixels(101))), k=3)
    top = hits[0]
    assert (
        top.modality == "combined"
        and top.document.text == "slide 1"
        and top.document.parts == ("text", "image")
    )
    _exact_match_scores(store, Combined(text="slide 1", image=Image(_pixels(101))))
    assert (
        store.search({"text": "slide 2", "image": Image(_pixels(102))}, k=1)[0].document.metadata["n"] == 32
    )


def test_where_and_modalities(store: Store) -> None:
    hits = store.search("a blue square", k=20, where={"lang": "en"})
    assert hits and all(h.document.metadata["lang"] == "en" for h in hits)
    assert {h.modality for h in hits} == {"text", "combined"} and len(hits) == 8
    hits = store.search("a blue square", k=20, where={"n": {"$gte": 20}, "lang": "en"})
    assert sorted(h.document.metadata["n"] for h in hits) == [30, 31, 32]
    hits = store.search("a blue square", k=20, modalities=("image", "audio"))
    assert len(hits) == 7 and {h.modality for h in hits} == {"image", "audio"}
    with pytest.raises(InvalidInputError):
        store.search("x", where={"omni:sha256": "y"})
    with pytest.raises(InvalidInputError):
        store.search("x", modalities=("pictures",))  # type: ignore[arg-type]


def test_bad_queries(store: Store) -> None:
    with pytest.raises(InvalidInputError):
        store.search("x", k=0)
    with pytest.raises(InvalidInputError):
        store.search("x", calibration="zscore")  # type: ignore[arg-type]
    with pytest.raises(InvalidVectorError):
        store.search_vector(np.full(DIM, np.nan))
    with pytest.raises(InvalidInputError):
        store.search(np.zeros(3))  # type: ignore[arg-type]


def test_empty_store_returns_nothing(tmp_path: Path) -> None:
    with Store(FakeEmbedder(dimension=DIM), path=tmp_path / "e") as s:
        assert s.search("anything") == []
        s.add(["only text"])
        assert s.search("x", modalities=("image",)) == []


def test_rerank_in_the_same_call(store: Store) -> None:
    reranker = FakeReranker()
    hits = store.search("red circle", k=3, reranker=reranker, rerank_top_n=16)
    assert len(hits) == 3
    # word overlap of "red circle" with "a red circle": 2 / sqrt(2 * 3)
    assert hits[0].document.text == "a red circle" and hits[0].rerank_score == pytest.approx(2 / 6**0.5)
    scores = [h.rerank_score for h in hits]
    assert all(s is not None for s in scores) and scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    # all 15 documents are candidates; the 7 media given in memory (no copy) have no content to rerank
    assert len(reranker.calls[-1][1]) == 15 - 7
    # the store's own reranker is the default
    store.reranker = reranker
    assert store.search("blue square", k=1)[0].document.text == "a blue square"


def test_unavailable_content_is_kept_after_reranked_hits(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="omniretrieve.store"):
        hits = store.search("red circle", k=16, reranker=FakeReranker(), rerank_top_n=16)
    # the user is told, not left to wonder why images never move up
    assert "7 of 15 rerank candidates have no stored content" in caplog.text
    assert "copy_media=True" in caplog.text
    ranked = [h.rerank_score for h in hits]
    scored = [s for s in ranked if s != float("-inf")]
    assert len(hits) == 15 and len(scored) == 8  # 5 texts, 3 combined (their text part)
    assert ranked[: len(scored)] == scored
    assert all(h.document.missing_media for h in hits[len(scored) :])


def _offset_store(path: Path, n: int, gap: float) -> tuple[Store, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    concepts = l2_normalize(rng.standard_normal((n, DIM)))
    offsets = l2_normalize(rng.standard_normal((2, DIM))) * gap

    def noisy(offset: np.ndarray) -> np.ndarray:
        return l2_normalize(concepts + 0.3 * rng.standard_normal((n, DIM)) / 4 + offset).astype(np.float32)

    texts, images, queries = noisy(offsets[0]), noisy(offsets[1]), noisy(offsets[0])
    store = Store(FakeEmbedder(dimension=DIM), path=path)
    store.add_vectors(
        texts, [Document(id=f"t{i}", parts=("text",), sha256=f"t{i}", text=f"t{i}") for i in range(n)]
    )
    store.add_vectors(images, [Document(id=f"i{i}", parts=("image",), sha256=f"i{i}") for i in range(n)])
    return store, texts, images, queries


@pytest.mark.parametrize("calibration", ["gap", "none", "rrf"])
def test_candidate_retrieval_matches_exhaustive_scoring(tmp_path: Path, calibration: str) -> None:
    n = 6 * CANDIDATES_MIN  # several times the candidates fetched per kind
    store, texts, images, queries = _offset_store(tmp_path / "s", n, gap=3.0)
    with store:
        stats = ModalityStats.from_vectors(DIM, {"text": texts, "image": images})
        cands = [
            KindCandidates("text", [f"t{i}" for i in range(n)], texts),
            KindCandidates("image", [f"i{i}" for i in range(n)], images),
        ]
        for q in queries[:15]:
            hits = store.search_vector(q, k=10, calibration=calibration)  # type: ignore[arg-type]
            exact = fuse(q, cands, 10, calibration=calibration, stats=stats)  # type: ignore[arg-type]
            assert [h.id for h in hits] == [h.id for h in exact]
            np.testing.assert_allclose([h.score for h in hits], [h.score for h in exact], atol=1e-5)


def test_store_search_removes_the_gap(tmp_path: Path) -> None:
    n = 60
    store, _, _, queries = _offset_store(tmp_path / "s", n, gap=3.0)
    qrels = {f"q{i}": {f"t{i}": 1, f"i{i}": 1} for i in range(n)}
    with store:
        metrics = {
            c: evaluate(
                {
                    f"q{i}": [h.id for h in store.search_vector(queries[i], k=10, calibration=c)]
                    for i in range(n)
                },
                qrels,
            )  # type: ignore[arg-type]
            for c in ("none", "rrf", "gap")
        }
    assert metrics["gap"]["ndcg@10"] >= 0.9
    assert metrics["gap"]["ndcg@10"] >= metrics["none"]["ndcg@10"] + 0.2


@pytest.mark.slow
def test_demo_world_gap_calibration(tmp_path: Path) -> None:
    """On the demo model (a toy CLIP with a modality gap): gap removal recovers the gap-free quality."""
    import torch

    from omniretrieve.demo import make_world
    from omniretrieve.demo.evaluation import evaluate_demo, index_demo_world
    from omniretrieve.embedding import DEMO_MODEL_ID, DEMO_NOGAP_MODEL_ID, load_embedder

    torch.set_num_threads(1)
    world = make_world(seed=0)
    ndcg: dict[str, dict[str, float]] = {}
    for name, gap in (("gap", True), ("twin", False)):
        embedder = load_embedder(DEMO_MODEL_ID if gap else DEMO_NOGAP_MODEL_ID)
        with Store(embedder, path=tmp_path / name) as store:
            assert all(r.ok for r in index_demo_world(store, world))
            result = evaluate_demo(store, world, groups=("text->mixed",))
            ndcg[name] = {c: result[c]["text->mixed"]["ndcg@10"] for c in result}
            if gap:  # the gap is real: raw cosine ranks texts above every image
                q = next(q for q in world.queries if q.target == "mixed")
                assert all(h.modality == "text" for h in store.search(q.text, 10, calibration="none"))
                assert any(h.modality == "image" for h in store.search(q.text, 3))
    assert ndcg["gap"]["gap"] >= ndcg["gap"]["none"] + 0.1
    assert ndcg["gap"]["gap"] >= ndcg["twin"]["none"] - 0.02  # as good as a model without the gap
    assert ndcg["twin"]["gap"] >= ndcg["twin"]["none"] - 0.01  # and free when there is no gap
