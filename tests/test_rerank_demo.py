"""The demo reranker shipped in the package: plain CrossEncoder loading, by name, and what it fixes."""

from __future__ import annotations

from pathlib import Path

import pytest

from omniretrieve.demo.loading import DEMO_RERANKER_ID, reranker_path


@pytest.fixture(scope="module")
def hard_hits(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, dict[str, list[str]]]:
    """The held-out hard world and the calibrated first stage's top 30 for each text -> image query."""
    from omniretrieve.calibration import DEFAULT_CALIBRATION
    from omniretrieve.demo.evaluation import demo_judged_queries
    from omniretrieve.demo.hard_world import make_hard_world
    from omniretrieve.demo.rerank_eval import open_indexed
    from omniretrieve.evaluation import run_judged_queries

    world = make_hard_world(0, n_text_queries=0, n_text_to_image_queries=24)
    store = open_indexed(world, tmp_path_factory.mktemp("hard-store"))
    try:
        run = run_judged_queries(store, demo_judged_queries(world), calibration=DEFAULT_CALIBRATION, k=30).run
    finally:
        store.close()
    return world, run


def test_plain_cross_encoder_puts_the_right_image_first_where_the_first_stage_does_not(
    hard_hits: tuple[object, dict[str, list[str]]],
) -> None:
    from sentence_transformers import CrossEncoder

    from omniretrieve.demo.world import DemoWorld

    world, run = hard_hits
    assert isinstance(world, DemoWorld)
    model = CrossEncoder(str(reranker_path()), device="cpu")
    before = after = 0
    fixed: list[str] = []
    for q in world.queries:
        ids = run[q.id]
        ranked = model.rank(q.text, [world.doc(d).image for d in ids])
        top = ids[ranked[0]["corpus_id"]]
        before += ids[0] in q.judgments
        after += top in q.judgments
        if top in q.judgments and ids[0] not in q.judgments:
            fixed.append(q.id)
    assert before < len(world.queries) / 2  # the first stage gets most held-out hard queries wrong at rank 1
    assert fixed, (
        "no held-out hard query where the reranker puts the right image first and the first stage does not"
    )
    assert after > before


def test_load_reranker_demo_works_offline_and_reads_text_images_and_combined() -> None:
    from omniretrieve import load_reranker
    from omniretrieve.demo.hard_world import Obj, PairScene
    from omniretrieve.types import Combined, Image

    reranker = load_reranker("demo")
    assert reranker.model_id == DEMO_RERANKER_ID
    assert {"text", "image"} <= reranker.modalities
    scene = PairScene(Obj("red", "circle"), Obj("blue", "square"), "horizontal")
    confuser = PairScene(Obj("blue", "circle"), Obj("red", "square"), "horizontal")
    picture = scene.render(64, seed=5)
    results = reranker.rerank(
        "red circle left of blue square",
        [
            "the weather is sunny and warm today",
            Image(confuser.render(64, seed=5)),
            Combined(text=scene.caption(0), image=Image(picture)),
            Image(picture),
        ],
    )
    assert all(r.ok for r in results) and len(results) == 4
    assert results[-1].index == 0  # the off-topic text last
    assert len({r.score for r in results}) == 4  # text, pictures and the combined item each scored


def test_cross_encoder_reranker_takes_the_demo_name() -> None:
    from omniretrieve.rerank import CrossEncoderReranker

    reranker = CrossEncoderReranker("demo")
    assert reranker.model_id == DEMO_RERANKER_ID
    assert reranker.revision is not None and reranker.revision.startswith("sha256:")
    assert (
        reranker.first_stage_weight > 0.0
    )  # the shipped weight (tests/rerank/test_reranker_default_weight.py)


def test_fuse_scores_interpolates_min_max_normalised_scores() -> None:
    from omniretrieve.errors import InvalidInputError
    from omniretrieve.rerank.fusion import fuse_scores, minmax

    assert minmax([1.0, 3.0, 2.0]) == [0.0, 1.0, 0.5]
    assert minmax([4.0, 4.0]) == [0.0, 0.0]
    first, second = [0.9, 0.5, 0.1], [-3.0, 5.0, 1.0]
    assert fuse_scores(first, second, 1.0) == minmax(first)
    assert fuse_scores(first, second, 0.0) == minmax(second)
    fused = fuse_scores(first, second, 0.5)
    assert fused == pytest.approx([0.5, 0.75, 0.25])
    assert fuse_scores(first, [1.0, float("-inf"), 0.0], 0.5)[1] == float("-inf")
    with pytest.raises(InvalidInputError):
        fuse_scores(first, second[:2], 0.5)
    with pytest.raises(InvalidInputError):
        fuse_scores(first, second, 1.5)


def test_first_stage_weight_fuses_the_given_first_stage_scores() -> None:
    from omniretrieve import load_reranker
    from omniretrieve.demo.world import Scene
    from omniretrieve.errors import InvalidInputError
    from omniretrieve.rerank.fusion import fuse_scores
    from omniretrieve.types import Image

    candidates = [
        Image(Scene(color, "circle", "center").render(64, seed=1)) for color in ("red", "blue", "green")
    ] + ["a red circle in the center"]
    first_stage = [0.2, 0.9, 0.5, 0.4]
    alone = load_reranker("demo").rerank("red circle center", candidates)
    by_first = load_reranker("demo", first_stage_weight=1.0).rerank(
        "red circle center", candidates, first_stage_scores=first_stage
    )
    assert [r.index for r in by_first] == [1, 2, 3, 0]  # weight 1: the first stage's order
    half = load_reranker("demo", first_stage_weight=0.5)
    fused = half.rerank("red circle center", candidates, first_stage_scores=first_stage)
    raw = load_reranker("demo").raw_scores("red circle center", candidates)  # the logits
    expected = fuse_scores(first_stage, raw, 0.5)
    assert {r.index: r.score for r in fused} == pytest.approx(dict(enumerate(expected)))
    assert [r.index for r in half.rerank("red circle center", candidates)] == [r.index for r in alone]
    with pytest.raises(InvalidInputError):
        half.rerank("red circle center", candidates, first_stage_scores=first_stage[:2])
    with pytest.raises(InvalidInputError):
        load_reranker("demo", first_stage_weight=-0.1)


def test_demo_reranker_is_small_and_documented() -> None:
    folder = reranker_path()
    weights = sum(p.stat().st_size for p in folder.rglob("*.safetensors"))
    assert 0 < weights < 2_200_000
    card = (folder / "README.md").read_text(encoding="utf-8")
    for section in ("## Recipe", "## Data", "## Measured", "## Limits"):
        assert section in card


def test_training_is_deterministic(tmp_path: Path) -> None:
    from omniretrieve.demo.train_reranker import RerankerTrainConfig, train_reranker

    config = RerankerTrainConfig(steps=2, queries_per_step=2, list_size=8, renders=1, num_layers=1)
    first = train_reranker(tmp_path / "a", config, choose_weight=False)
    second = train_reranker(tmp_path / "b", config, choose_weight=False)
    assert first["config"] == second["config"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "model.safetensors"
    ).read_bytes()
    other = train_reranker(
        tmp_path / "c",
        RerankerTrainConfig(steps=2, queries_per_step=2, list_size=8, renders=1, num_layers=1, seed=1),
        choose_weight=False,
    )
    assert other["config"]["seed"] == 1
    assert (tmp_path / "c" / "model.safetensors").read_bytes() != (
        tmp_path / "a" / "model.safetensors"
    ).read_bytes()
