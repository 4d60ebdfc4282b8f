"""The demo reranker's candidate recipes and the record of how the shipped one was chosen."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from omniretrieve.demo import hard_world as hw
from omniretrieve.errors import InvalidInputError


def test_the_default_config_is_the_shipped_recipe_and_every_recipe_is_named() -> None:
    from omniretrieve.demo.train_reranker import (
        RECIPES,
        SHIPPED_RECIPE,
        RerankerTrainConfig,
        recipe_config,
        recipe_name,
    )

    assert SHIPPED_RECIPE in RECIPES and 2 <= len(RECIPES) <= 6
    assert recipe_config(SHIPPED_RECIPE) == RerankerTrainConfig()
    assert recipe_name(RerankerTrainConfig()) == SHIPPED_RECIPE
    configs = {name: recipe_config(name) for name in RECIPES}
    assert len(set(configs.values())) == len(RECIPES)  # no two recipes alike
    assert all(recipe_name(config) == name for name, config in configs.items())
    assert recipe_name(replace(RerankerTrainConfig(), lr=1e-3)) is None
    assert recipe_config(SHIPPED_RECIPE, steps=7).steps == 7
    with pytest.raises(InvalidInputError):
        recipe_config("no-such-recipe")


def test_shipped_reranker_records_its_recipe_and_the_selection() -> None:
    from omniretrieve.demo.loading import reranker_path
    from omniretrieve.demo.reranker_card import RERANKER_META_FILE
    from omniretrieve.demo.train_reranker import RECIPE_RULE, RECIPES, SHIPPED_RECIPE, recipe_config

    meta = json.loads((reranker_path() / RERANKER_META_FILE).read_text(encoding="utf-8"))
    assert meta["recipe"] == SHIPPED_RECIPE
    assert meta["config"] == json.loads(json.dumps(recipe_config(SHIPPED_RECIPE).__dict__))
    selection = meta["recipe_selection"]
    assert selection["rule"] == RECIPE_RULE and selection["chosen"] == SHIPPED_RECIPE
    entries = selection["candidates"]
    assert {e["recipe"] for e in entries} <= set(RECIPES) and len(entries) >= 2
    best = max(entries, key=lambda e: e["validation_ndcg@10"]["mean"])
    assert best["recipe"] == SHIPPED_RECIPE
    assert all(e["train_cpu_seconds"] <= 600 for e in entries)  # the 10 CPU minutes
    card = (reranker_path() / "README.md").read_text(encoding="utf-8")
    assert "## Recipe selection" in card and all(f"`{e['recipe']}`" in card for e in entries)


def test_binding_lists_hold_every_confuser_of_the_bag() -> None:
    from omniretrieve.demo.train_reranker import RerankerTrainConfig, _Data

    data = _Data(RerankerTrainConfig(renders=1, hard_other_negatives=1))
    scene_of = {id(im): scene for scene, ims in data.renders.items() for im in ims}
    for _ in range(20):
        _, candidates = data.hard_list()
        assert len(candidates) == data.config.list_size
        pictures = [doc for doc, _ in candidates if not isinstance(doc, dict)]
        if len(pictures) < len(candidates):
            continue  # a mixed list: captions are not traced back here
        positive = next(scene_of[id(doc)] for doc, grade in candidates if grade == 2)
        shown = {scene_of[id(doc)] for doc in pictures}
        mates = {s for s in shown if isinstance(s, hw.PairScene) and s.bag == positive.bag} - {positive}
        assert mates == set(hw.bag_scenes(positive.bag)) - {positive}
    with pytest.raises(InvalidInputError):
        RerankerTrainConfig(hard_other_negatives=0)


def _candidate(folder: Path, recipe: str, mean: float, config: dict[str, Any]) -> Path:
    from omniretrieve.demo.reranker_card import RERANKER_META_FILE

    folder.mkdir()
    split = {"queries": 4, "fusion_sweep": {"0.0": mean - 0.1}}
    meta = {
        "recipe": recipe,
        "config": config,
        "stats": {"train_cpu_seconds": 100.0, "final_listwise_loss": 1.0},
        "validation": {
            "rule": "test",
            "mean_ndcg@10": {"0.0": mean - 0.1},
            "first_stage_weight": 0.0,
            "chosen": {"easy": mean, "hard": mean, "mean": mean},
            "splits": {"easy": split, "hard": split},
            "pairs": {"scenes": 8, "colors_swapped": 0.5, "sides_swapped": 0.5, "other_layout": 0.9},
        },
    }
    (folder / RERANKER_META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    return folder


def test_write_selection_picks_the_best_by_validation_and_refuses_another_recipe(tmp_path: Path) -> None:
    from omniretrieve.demo.reranker_card import RERANKER_META_FILE, write_selection
    from omniretrieve.demo.train_reranker import RECIPE_RULE, recipe_config, record_selection

    config = {
        k: v if not isinstance(v, tuple) else list(v) for k, v in recipe_config("last-layer").__dict__.items()
    }
    worse = _candidate(tmp_path / "a", "last-layer", 0.6, config)
    better = _candidate(tmp_path / "b", "penultimate-layer", 0.7, config | {"vision_layers": [-2]})
    metas = [json.loads((d / RERANKER_META_FILE).read_text(encoding="utf-8")) for d in (worse, better)]
    with pytest.raises(InvalidInputError):
        write_selection(worse, metas, RECIPE_RULE)  # not the recipe the rule picks
    record = record_selection(better, [worse, better])
    assert record["chosen"] == "penultimate-layer"
    assert [e["recipe"] for e in record["candidates"]] == ["last-layer", "penultimate-layer"]
    assert record["candidates"][1]["validation_reranker_alone_ndcg@10"] == {"easy": 0.6, "hard": 0.6}
    saved = json.loads((better / RERANKER_META_FILE).read_text(encoding="utf-8"))
    assert saved["recipe_selection"] == record
    with pytest.raises(InvalidInputError):
        record_selection(better, [tmp_path])  # not a candidate
