"""The demo reranker's validation split: disjoint from its training data and from the test split."""

from __future__ import annotations

from pathlib import Path

import pytest

from omniretrieve.demo import hard_world as hw
from omniretrieve.demo import world as ew
from omniretrieve.errors import InvalidInputError


def test_easy_scenes_split_three_ways_and_the_test_scenes_are_unchanged() -> None:
    train, validation, test = ew.split_reranker_scenes()
    assert (train, validation, test) == ew.split_reranker_scenes()
    assert test == ew.split_scenes()[1]  # the demo CLIP's held-out scenes, as before
    assert set(train) | set(validation) == set(ew.split_scenes()[0])
    assert not set(train) & set(validation) and not (set(train) | set(validation)) & set(test)
    assert (len(train), len(validation), len(test)) == (84, 12, 24)
    assert {s.color for s in train} == set(ew.COLORS) and {s.shape for s in train} == set(ew.SHAPES)
    assert {s.position for s in train} == set(ew.POSITIONS)
    with pytest.raises(InvalidInputError):
        ew.split_reranker_scenes(validation_fraction=0.6)


def test_hard_bags_split_three_ways_and_the_test_bags_are_unchanged() -> None:
    train, validation, test = hw.split_reranker_bags()
    assert (train, validation, test) == hw.split_reranker_bags()
    assert test == hw.split_bags()[1]
    assert set(train) | set(validation) == set(hw.split_bags()[0])
    assert not set(train) & set(validation) and not (set(train) | set(validation)) & set(test)
    assert (len(train), len(validation), len(test)) == (63, 9, 18)
    assert {b[0] for b in train} == {b[0] for b in hw.all_bags()}
    assert {b[1] for b in train} == {b[1] for b in hw.all_bags()}


def test_training_draws_neither_validation_nor_test_scenes() -> None:
    from omniretrieve.demo.train_reranker import RerankerTrainConfig, _Data

    data = _Data(RerankerTrainConfig(renders=1))
    _, easy_validation, easy_test = ew.split_reranker_scenes()
    _, hard_validation, hard_test = hw.split_reranker_bags()
    assert set(data.easy_scenes) == set(ew.split_reranker_scenes()[0])
    assert set(data.bags) == set(hw.split_reranker_bags()[0])
    seen = set(data.renders)
    assert not seen & (set(easy_validation) | set(easy_test))
    held = {s for bag in (*hard_validation, *hard_test) for s in hw.bag_scenes(bag)}
    assert not seen & held


def test_validation_worlds_hold_validation_queries_and_no_test_scene() -> None:
    from omniretrieve.demo.rerank_eval import easy_validation_split, hard_validation_split

    _, easy_validation, easy_test = ew.split_reranker_scenes()
    easy = easy_validation_split()
    assert {q.scene for q in easy.queries} == set(easy_validation)
    assert len(easy.queries) == len(easy_validation) * 3 * 2
    assert not {d.scene for d in easy.docs} & set(easy_test)
    ids = {d.id for d in easy.docs}
    for q in easy.queries:
        assert q.judgments and set(q.judgments) <= ids, q.id
        assert any(g == 2 for g in q.judgments.values())
    _, hard_validation, _ = hw.split_reranker_bags()
    hard = hard_validation_split()
    scenes = {d.scene for d in hard.docs if d.scene is not None}
    assert {s.bag for s in scenes if isinstance(s, hw.PairScene)} == set(hard_validation)
    assert {q.scene for q in hard.queries} == scenes and len(hard.queries) == 2 * len(scenes)


def test_validate_fusion_measures_the_grid_and_applies_the_rule(tmp_path: Path) -> None:
    from omniretrieve.demo.rerank_eval import choose_first_stage_weight, validate_fusion
    from omniretrieve.rerank import load_reranker

    worlds = {
        "hard": hw.make_hard_world(
            1,
            bags=hw.split_reranker_bags()[1][:2],
            n_text_queries=4,
            n_text_to_image_queries=4,
            n_distractors=2,
        )
    }
    result = validate_fusion(
        load_reranker("demo", first_stage_weight=0.0), tmp_path, worlds=worlds, grid=(0.0, 0.5, 1.0)
    )
    sweep = result["splits"]["hard"]["fusion_sweep"]
    assert set(sweep) == {"0.0", "0.5", "1.0"} and result["splits"]["hard"]["queries"] == 8
    assert sweep["1.0"] == result["splits"]["hard"]["calibrated_ndcg@10"]  # all weight on the first stage
    assert result["mean_ndcg@10"] == sweep
    assert result["first_stage_weight"] == choose_first_stage_weight({float(w): m for w, m in sweep.items()})
    assert result["chosen"]["hard"] == sweep[str(result["first_stage_weight"])]
