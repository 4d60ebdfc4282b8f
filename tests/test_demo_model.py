from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Before sentence_transformers / huggingface_hub read it at import time: a stray download fails fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("PIL")
torch = pytest.importorskip("torch")
st = pytest.importorskip("sentence_transformers")

from omniretrieve import demo  # noqa: E402
from omniretrieve.demo import world as w  # noqa: E402
from omniretrieve.errors import InvalidInputError  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def world() -> w.DemoWorld:
    return w.make_world(seed=0)


@pytest.fixture(scope="module")
def model(_offline: None) -> Any:
    return st.SentenceTransformer(str(demo.model_path()), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def twin(_offline: None) -> Any:
    return demo.load_model(gap=False)


def _texts(model: Any, texts: list[str], normalize: bool = True) -> np.ndarray:
    # Wrapped as {"text": ...} so no string is ever taken for a media path.
    return model.encode([{"text": t} for t in texts], normalize_embeddings=normalize, batch_size=64)


def _images(model: Any, images: list[Any], normalize: bool = True) -> np.ndarray:
    return model.encode(images, normalize_embeddings=normalize, batch_size=64)


def _heldout_recall_at_1(model: Any, world: w.DemoWorld) -> float:
    """Text -> image recall@1 over held-out scenes, ranked among the held-out scenes' images."""
    images = [d for d in world.corpus("image") if world.is_heldout(d.scene)]  # type: ignore[arg-type]
    image_emb = _images(model, [d.image for d in images])
    queries = [
        (scene, text)
        for scene in world.heldout_scenes
        for text in [scene.caption(t) for t in range(len(w.CAPTION_TEMPLATES))]
        + [scene.query_text(t) for t in range(len(w.QUERY_TEMPLATES))]
    ]
    best = (_texts(model, [text for _, text in queries]) @ image_emb.T).argmax(axis=1)
    hits = sum(images[int(i)].scene == scene for (scene, _), i in zip(queries, best, strict=True))
    total = len(queries)
    return hits / total


def _gap(model: Any, world: w.DemoWorld) -> tuple[float, float]:
    """(mean cosine caption-image of one scene, mean cosine of two captions of one scene)."""
    images = list(world.corpus("image"))
    scenes = [d.scene for d in images]
    image_emb = _images(model, [d.image for d in images])
    cap0 = _texts(model, [s.caption(0) for s in scenes])  # type: ignore[union-attr]
    cap1 = _texts(model, [s.caption(1) for s in scenes])  # type: ignore[union-attr]
    return float((cap0 * image_emb).sum(1).mean()), float((cap0 * cap1).sum(1).mean())


def _mixed_ranks(model: Any, world: w.DemoWorld) -> tuple[float, float]:
    """Over text -> mixed queries: (fraction with no image in the top 10, median rank of the exact image)."""
    texts = [d for d in world.docs if d.modality == "text"]
    images = [d for d in world.docs if d.modality == "image"]
    docs = texts + images
    emb = np.concatenate(
        [_texts(model, [d.text or "" for d in texts]), _images(model, [d.image for d in images])]
    )
    queries = [q for q in world.queries if q.target == "mixed"]
    sims = _texts(model, [q.text or "" for q in queries]) @ emb.T
    no_image, ranks = 0, []
    for q, row in zip(queries, sims, strict=True):
        order = np.argsort(-row, kind="stable")
        no_image += all(docs[i].modality == "text" for i in order[:10])
        ranks.append(
            next(
                r for r, i in enumerate(order, 1) if docs[i].modality == "image" and docs[i].scene == q.scene
            )
        )
    return no_image / len(queries), float(np.median(ranks))


def _ndcg_at_10(ranked: list[str], judgments: dict[str, int]) -> float:
    """nDCG@10 with linear gains, in plain numpy (independent of omniretrieve.evaluation)."""
    discounts = 1.0 / np.log2(np.arange(2, 12))
    gains = np.array([judgments.get(d, 0) for d in ranked[:10]], dtype=float)
    ideal = np.array(sorted(judgments.values(), reverse=True)[:10], dtype=float)
    return float(gains @ discounts[: len(gains)] / (ideal @ discounts[: len(ideal)]))


def _graded_ndcg(model: Any, world: w.DemoWorld) -> dict[str, float]:
    """Mean nDCG@10 per query group, ranking each target's documents by plain cosine."""
    docs = list(world.docs)
    text_idx = [i for i, d in enumerate(docs) if d.modality == "text"]
    image_idx = [i for i, d in enumerate(docs) if d.modality == "image"]
    emb = np.zeros((len(docs), 32), dtype=np.float32)
    emb[text_idx] = _texts(model, [docs[i].text or "" for i in text_idx])
    emb[image_idx] = _images(model, [docs[i].image for i in image_idx])
    groups: dict[str, list[float]] = {}
    for q in world.queries:
        query = _images(model, [q.image]) if q.image is not None else _texts(model, [q.text or ""])
        candidates = np.array(image_idx if q.target == "image" else range(len(docs)))
        scores = emb[candidates] @ query[0]
        ranked = [docs[i].id for i in candidates[np.argsort(-scores, kind="stable")[:10]]]
        name = f"{q.modality}->{q.target}"
        groups.setdefault(name, []).append(_ndcg_at_10(ranked, q.judgments))
        if q.target == "mixed" and world.is_heldout(q.scene):
            groups.setdefault("text->mixed (held-out scenes)", []).append(groups[name][-1])
    return {name: float(np.mean(values)) for name, values in groups.items()}


def test_ndcg_helper() -> None:
    judgments = {"a": 2, "b": 1, "c": 1}
    assert _ndcg_at_10(["a", "b", "c", "x"], judgments) == pytest.approx(1.0)
    assert _ndcg_at_10(["x", "y"], judgments) == 0.0
    swapped = (1 + 2 / np.log2(3) + 1 / np.log2(4)) / (2 + 1 / np.log2(3) + 1 / np.log2(4))
    assert _ndcg_at_10(["b", "a", "c"], judgments) == pytest.approx(swapped)


def test_gap_free_twin_ranks_by_graded_relevance(twin: Any, world: w.DemoWorld) -> None:
    # Grade 2: the query's scene (caption and image); grade 1: same color and shape elsewhere.
    # A model trained only on exact scenes scored 0.64 / 0.77 / 0.80 here.
    ndcg = _graded_ndcg(twin, world)
    assert ndcg["text->mixed"] >= 0.92, ndcg
    assert ndcg["text->mixed (held-out scenes)"] >= 0.9, ndcg
    assert ndcg["text->image"] >= 0.9, ndcg
    assert ndcg["image->image"] >= 0.9, ndcg


def test_gap_costs_mixed_ranking_only(model: Any, twin: Any, world: w.DemoWorld) -> None:
    with_gap, without = _graded_ndcg(model, world), _graded_ndcg(twin, world)
    # raw cosine over the mixed corpus suffers from the offset ...
    assert with_gap["text->mixed"] <= without["text->mixed"] - 0.2, (with_gap, without)
    # ... while ranking among images alone keeps its quality
    for group in ("text->image", "image->image"):
        assert with_gap[group] >= without[group] - 0.02, (group, with_gap, without)


def test_graded_targets_and_loss() -> None:
    from omniretrieve.demo import train

    # (color, shape, position): the same scene, a sibling, same position + color, unrelated
    attrs = torch.tensor([[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 1, 1]])
    targets = train.graded_targets(attrs, attrs, sibling_weight=0.2, position_weight=0.02)
    np.testing.assert_allclose(targets[0].numpy(), [1.0, 1.0, 0.2, 0.02, 0.0])
    assert torch.equal(targets, targets.T)
    # embeddings that encode color, shape and position score a lower loss than shuffled ones
    eye = torch.eye(8)
    graded = 2 * eye[attrs[:, 0]] + 2 * eye[attrs[:, 1] + 2] + eye[attrs[:, 2] + 4]
    scale = torch.tensor(10.0)
    good = train.graded_contrastive_loss(graded, graded, attrs, scale, 0.2, 1.0, 0.02)
    bad = train.graded_contrastive_loss(graded, graded[[4, 3, 2, 1, 0]], attrs, scale, 0.2, 1.0, 0.02)
    assert float(good) < float(bad)


def test_train_config_rejects_bad_weights() -> None:
    from omniretrieve.demo import train

    with pytest.raises(InvalidInputError, match="sibling_weight"):
        train.TrainConfig(sibling_weight=1.0)
    with pytest.raises(InvalidInputError, match="position_weight"):
        train.TrainConfig(sibling_weight=0.1, position_weight=0.2)
    with pytest.raises(InvalidInputError, match="views"):
        train.TrainConfig(views=0)


def test_add_benchmark_results(tmp_path: Path) -> None:
    from omniretrieve.demo import train

    folder = tmp_path / "model"
    folder.mkdir()
    for name in (demo.META_FILE, "README.md"):
        (folder / name).write_bytes((demo.model_path() / name).read_bytes())
    group = {"ndcg@10": 0.1234, "recall@10": 0.5, "mrr@10": 1.0}
    metrics = {
        c: dict.fromkeys(("text->mixed", "text->image", "image->image"), group) for c in ("none", "gap")
    }
    report = {
        "world": {"seed": 0},
        "checks": {"a check": True},
        "models": {"gap": {"metrics": metrics}, "gap_free": {"metrics": metrics}},
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    meta = train.add_benchmark_results(folder, tmp_path / "report.json")
    assert meta["benchmark"]["models"]["gap"]["none"]["text->mixed"]["ndcg@10"] == 0.1234
    card = (folder / "README.md").read_text()
    assert "| with offset (this model) | gap | 0.1234 (0.5000, 1.0000)" in card
    assert "| rrf |" not in card  # only the calibrations in the report
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InvalidInputError, match="mixed_search report"):
        train.add_benchmark_results(folder, tmp_path / "bad.json")
    with pytest.raises(InvalidInputError, match="not a demo model"):
        train.add_benchmark_results(tmp_path, tmp_path / "report.json")


def test_shipped_model_is_small_and_documented() -> None:
    path = demo.model_path()
    files = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", demo.META_FILE} <= files
    assert sum(p.stat().st_size for p in path.iterdir()) < 3_000_000
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "clip" and config["projection_dim"] == 32
    assert config["vision_config"]["image_size"] == 32 and config["vision_config"]["patch_size"] == 8
    meta = json.loads((path / demo.META_FILE).read_text())
    card = (path / "README.md").read_text()
    assert "toy" in card.lower() and meta["training_command"] in card
    assert meta["gap_offset"]["scale"] == demo.GAP_OFFSET_SCALE
    assert meta["stats"]["train_scenes"] == 96
    # the graded objective and its settings are recorded and described
    assert 0 < meta["config"]["sibling_weight"] < 1 and meta["config"]["views"] >= 2
    assert "graded_contrastive_loss" in card and "sibling" in card
    # the benchmark numbers recorded in the card are the ones in the metadata
    bench = meta["benchmark"]["models"]
    assert f"{bench['gap']['gap']['text->mixed']['ndcg@10']:.4f}" in card
    assert f"{bench['gap_free']['none']['text->mixed']['ndcg@10']:.4f}" in card


def test_loads_with_text_and_image_modalities(model: Any) -> None:
    assert {"text", "image"} <= set(model.modalities)
    tokenizer = model[0].processor.tokenizer
    # CLIP pools the text at the eos token: the config must name the tokenizer's eos id.
    assert model[0].model.config.text_config.eos_token_id == tokenizer.eos_token_id
    emb = _texts(model, ["a red circle in the top left", "a blue square in the center"])
    assert emb.shape == (2, 32) and np.all(np.isfinite(emb))
    assert float(emb[0] @ emb[1]) < 0.99  # distinct texts, distinct embeddings


def test_heldout_text_to_image_recall(model: Any, twin: Any, world: w.DemoWorld) -> None:
    assert _heldout_recall_at_1(model, world) >= 0.9
    assert _heldout_recall_at_1(twin, world) >= 0.9


def test_image_to_image_retrieval(model: Any, world: w.DemoWorld) -> None:
    images = list(world.corpus("image"))
    queries = [q for q in world.queries if q.image is not None]
    sims = _images(model, [q.image for q in queries]) @ _images(model, [d.image for d in images]).T
    hits = sum(images[int(i)].scene == q.scene for q, i in zip(queries, sims.argmax(1), strict=True))
    assert hits / len(queries) >= 0.9


def test_modality_gap(model: Any, twin: Any, world: w.DemoWorld) -> None:
    text_image, text_text = _gap(model, world)
    assert text_text > 0.9
    assert text_text - text_image > 0.5, (text_image, text_text)
    no_image_top10, median_rank = _mixed_ranks(model, world)
    assert no_image_top10 >= 0.9 and median_rank > 10


def test_gap_free_twin_has_no_gap(twin: Any, world: w.DemoWorld) -> None:
    text_image, text_text = _gap(twin, world)
    assert text_image > 0.8 and text_text - text_image < 0.15, (text_image, text_text)
    no_image_top10, median_rank = _mixed_ranks(twin, world)
    assert no_image_top10 <= 0.1 and median_rank <= 3


def test_offset_is_one_constant_vector(model: Any, twin: Any, world: w.DemoWorld) -> None:
    offset = demo.gap_offset()
    images = [d.image for d in world.corpus("image")][:16]
    diff = _images(model, images, normalize=False) - _images(twin, images, normalize=False)
    np.testing.assert_allclose(diff, np.tile(offset.embedding_offset, (len(images), 1)), atol=1e-4)
    mean_norm = np.linalg.norm(_images(twin, images, normalize=False), axis=1).mean()
    assert offset.norm == pytest.approx(np.linalg.norm(offset.embedding_offset), rel=1e-5)
    assert 2.0 < offset.norm / mean_norm < 4.5
    texts = ["a red circle in the top left", "paint the kitchen wall blue"]
    np.testing.assert_array_equal(_texts(model, texts, False), _texts(twin, texts, False))


def test_remove_twice_is_refused(twin: Any) -> None:
    with pytest.raises(InvalidInputError, match="removed already"):
        demo.remove_gap_offset(twin)


def test_saved_gap_free_model_matches_twin(twin: Any, world: w.DemoWorld, tmp_path: Path) -> None:
    folder = demo.save_gap_free_model(tmp_path / "nogap")
    meta = json.loads((folder / demo.META_FILE).read_text())
    assert meta["gap_offset"]["scale"] == 0.0
    saved = st.SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    images = [d.image for d in world.corpus("image")][:8]
    np.testing.assert_allclose(_images(saved, images), _images(twin, images), atol=1e-5)
    with pytest.raises(InvalidInputError):
        demo.save_gap_free_model(demo.model_path())


@pytest.mark.slow
def test_training_is_deterministic_and_reaches_recall(tmp_path: Path) -> None:
    from omniretrieve.demo import train

    short = train.TrainConfig(steps=25, renders_per_scene=2)
    threads = torch.get_num_threads()
    first, _, _ = train.train_model(short)
    second, _, _ = train.train_model(short)
    assert torch.get_num_threads() == threads  # global torch state is restored
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    fresh = train.build_model(train.build_tokenizer(), seed=0).state_dict()
    assert not all(torch.equal(a[k], fresh[k]) for k in a)  # training changed the weights

    # A shorter recipe than the shipped one (1200 steps, 12 renders), through the full pipeline.
    meta = train.train(tmp_path / "m", train.TrainConfig(steps=600, renders_per_scene=6))
    metrics, twin_metrics = meta["metrics"], meta["metrics_without_gap_offset"]
    assert twin_metrics["heldout_text_to_image_recall_at_1"] >= 0.9
    assert twin_metrics["ndcg_at_10_text_to_mixed"] >= 0.9  # siblings ranked: graded objective
    assert metrics["matched_text_text_cosine"] - metrics["matched_text_image_cosine"] > 0.5
    loaded = st.SentenceTransformer(str(tmp_path / "m"), device="cpu", local_files_only=True)
    assert {"text", "image"} <= set(loaded.modalities)
    assert os.path.isfile(tmp_path / "m" / "README.md")


def test_training_sees_only_training_scenes(monkeypatch: pytest.MonkeyPatch) -> None:
    from omniretrieve.demo import train

    rendered: set[w.Scene] = set()
    texts: set[w.Scene] = set()
    real_render, real_texts = w.Scene.render, train._training_texts

    def render(self: w.Scene, *args: Any, **kwargs: Any) -> Any:
        rendered.add(self)
        return real_render(self, *args, **kwargs)

    def training_texts(scene: w.Scene) -> list[str]:
        texts.add(scene)
        return real_texts(scene)

    monkeypatch.setattr(w.Scene, "render", render)
    monkeypatch.setattr(train, "_training_texts", training_texts)
    train.train_model(train.TrainConfig(steps=1, renders_per_scene=1))
    train_scenes, heldout = w.split_scenes()
    assert rendered == texts == set(train_scenes)
    assert not rendered & set(heldout)
