"""The first-stage weight a reranker fuses with by default: the demo reranker's shipped one, chosen on validation."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest

from omniretrieve.demo.loading import reranker_path
from omniretrieve.rerank.loading import RERANKER_SETTINGS_FILE


def _shipped_meta() -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((reranker_path() / RERANKER_SETTINGS_FILE).read_text(encoding="utf-8"))
    return meta


def _candidates() -> list[Any]:
    from omniretrieve.demo.world import Scene
    from omniretrieve.types import Image

    return [Image(Scene(c, "circle", "center").render(64, seed=1)) for c in ("red", "blue", "green")] + [
        "a red circle in the center"
    ]


def test_the_shipped_weight_is_the_rule_applied_to_the_recorded_validation_figures() -> None:
    from omniretrieve.demo.rerank_eval import FUSION_GRID, WEIGHT_RULE, choose_first_stage_weight

    meta = _shipped_meta()
    validation = meta["validation"]
    assert validation["rule"] == WEIGHT_RULE
    assert validation["grid"] == list(FUSION_GRID)
    assert set(validation["splits"]) == {"easy", "hard"}
    for w in FUSION_GRID:  # the recorded means are the means of the recorded per-split figures
        per_split = [split["fusion_sweep"][str(w)] for split in validation["splits"].values()]
        assert validation["mean_ndcg@10"][str(w)] == pytest.approx(statistics.fmean(per_split), abs=1e-4)
    means = {float(w): m for w, m in validation["mean_ndcg@10"].items()}
    assert meta["first_stage_weight"] == validation["first_stage_weight"] == choose_first_stage_weight(means)
    card = (reranker_path() / "README.md").read_text(encoding="utf-8")
    assert "## Fusion weight" in card and f"**{meta['first_stage_weight']}**" in card
    assert "validation" in card and "never on the\nheld-out test queries" in card


def test_the_demo_reranker_by_name_uses_the_shipped_weight() -> None:
    from omniretrieve import load_reranker
    from omniretrieve.demo.rerank_eval import DEMO_FIRST_STAGE_WEIGHT
    from omniretrieve.rerank import CrossEncoderReranker
    from omniretrieve.rerank.loading import demo_first_stage_weight

    weight = _shipped_meta()["first_stage_weight"]
    assert weight > 0  # the demo reranker is meant to be fused
    assert demo_first_stage_weight() == DEMO_FIRST_STAGE_WEIGHT == weight
    for reranker in (
        load_reranker("demo"),
        load_reranker("omniretrieve/demo-reranker"),
        CrossEncoderReranker("demo"),
        CrossEncoderReranker(reranker_path()),  # its directory, by path: the same settings file
    ):
        assert reranker.first_stage_weight == weight


def test_an_explicit_weight_wins_and_zero_is_the_reranker_alone() -> None:
    from omniretrieve import load_reranker
    from omniretrieve.rerank.fusion import fuse_scores

    candidates, first_stage = _candidates(), [0.2, 0.9, 0.5, 0.4]
    shipped = load_reranker("demo")
    alone = load_reranker("demo", first_stage_weight=0.0)
    assert alone.first_stage_weight == 0.0
    assert load_reranker("demo", first_stage_weight=0.7).first_stage_weight == 0.7
    raw = alone.rerank("red circle center", candidates)
    # weight 0: the first stage's scores are ignored, the reranker's own scores and order come back
    assert alone.rerank("red circle center", candidates, first_stage_scores=first_stage) == raw
    fused = shipped.rerank("red circle center", candidates, first_stage_scores=first_stage)
    logits = alone.raw_scores("red circle center", candidates)  # fusion reads the logits
    expected = fuse_scores(first_stage, logits, shipped.first_stage_weight)
    assert {r.index: r.score for r in fused} == pytest.approx(dict(enumerate(expected)))
    first_only = load_reranker("demo", first_stage_weight=1.0)
    assert [
        r.index for r in first_only.rerank("red circle center", candidates, first_stage_scores=first_stage)
    ] == [
        1,
        2,
        3,
        0,
    ]


def test_a_local_directory_uses_the_weight_its_settings_record(tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    from omniretrieve.errors import InvalidInputError
    from omniretrieve.rerank import CrossEncoderReranker

    folder = tmp_path / "reranker"
    shutil.copytree(reranker_path(), folder)
    settings = folder / RERANKER_SETTINGS_FILE
    meta = _shipped_meta()
    settings.write_text(json.dumps(meta | {"first_stage_weight": 0.7}), encoding="utf-8")
    assert CrossEncoderReranker(folder).first_stage_weight == 0.7
    assert CrossEncoderReranker(str(folder), first_stage_weight=0.3).first_stage_weight == 0.3
    settings.write_text(
        json.dumps({k: v for k, v in meta.items() if k != "first_stage_weight"}), encoding="utf-8"
    )
    assert CrossEncoderReranker(folder).first_stage_weight == 0.0  # none recorded: the reranker alone
    settings.unlink()
    assert CrossEncoderReranker(folder).first_stage_weight == 0.0
    # a loaded CrossEncoder carries no settings: alone unless told
    assert CrossEncoderReranker(CrossEncoder(str(folder), device="cpu")).first_stage_weight == 0.0
    settings.write_text(json.dumps({"first_stage_weight": 1.5}), encoding="utf-8")
    with pytest.raises(InvalidInputError):
        CrossEncoderReranker(folder)
    settings.write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidInputError):
        CrossEncoderReranker(folder)


def test_choose_first_stage_weight_takes_the_best_mean_and_ties_go_to_the_first_stage() -> None:
    from omniretrieve.demo.rerank_eval import choose_first_stage_weight
    from omniretrieve.errors import InvalidInputError

    assert choose_first_stage_weight({0.0: 0.5, 0.1: 0.7, 0.2: 0.6}) == 0.1
    assert choose_first_stage_weight({0.1: 0.7, 0.3: 0.7, 0.2: 0.6}) == 0.3
    assert choose_first_stage_weight({0.1: 0.70004, 0.2: 0.70001}) == 0.2  # equal at 4 decimals
    assert choose_first_stage_weight({0.1: 0.7001, 0.2: 0.7}) == 0.1
    with pytest.raises(InvalidInputError):
        choose_first_stage_weight({})


def test_training_records_the_weight_it_chose_on_validation(tmp_path: Path) -> None:
    from omniretrieve.demo.rerank_eval import FUSION_GRID
    from omniretrieve.demo.train_reranker import RerankerTrainConfig, train_reranker
    from omniretrieve.rerank import CrossEncoderReranker

    config = RerankerTrainConfig(steps=2, queries_per_step=2, list_size=8, renders=1, num_layers=1)
    meta = train_reranker(tmp_path / "tiny", config)
    assert meta["first_stage_weight"] == meta["validation"]["first_stage_weight"]
    assert meta["first_stage_weight"] in FUSION_GRID
    assert {name: split["queries"] for name, split in meta["validation"]["splits"].items()} == {
        "easy": 72,
        "hard": 144,
    }
    saved = json.loads((tmp_path / "tiny" / RERANKER_SETTINGS_FILE).read_text(encoding="utf-8"))
    assert saved["first_stage_weight"] == meta["first_stage_weight"]
    assert CrossEncoderReranker(tmp_path / "tiny").first_stage_weight == meta["first_stage_weight"]
    assert "## Fusion weight" in (tmp_path / "tiny" / "README.md").read_text(encoding="utf-8")


def test_revalidating_the_shipped_reranker_chooses_its_shipped_weight_again(tmp_path: Path) -> None:
    """The shipped weight was chosen for the fusion the code does now (a change of fusion makes it stale)."""
    from omniretrieve.demo.reranker_card import revalidate

    folder = tmp_path / "reranker"
    shutil.copytree(reranker_path(), folder)
    shipped = _shipped_meta()
    validation = revalidate(folder)
    assert validation["first_stage_weight"] == shipped["first_stage_weight"]
    assert validation["mean_ndcg@10"] == pytest.approx(shipped["validation"]["mean_ndcg@10"], abs=2e-3)
    saved = json.loads((folder / RERANKER_SETTINGS_FILE).read_text(encoding="utf-8"))
    assert saved["first_stage_weight"] == shipped["first_stage_weight"]
    assert "benchmark" not in saved  # a benchmark of another fusion is not carried over
    assert saved["recipe_selection"] == shipped["recipe_selection"]
