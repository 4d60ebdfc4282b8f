"""The demo world as a judged-query set: its groups, its qrels, and its metrics through a store."""

from __future__ import annotations

from pathlib import Path

import pytest

from omniretrieve.demo import DEMO_GROUPS, demo_judged_queries, demo_qrels, demo_run, evaluate_demo
from omniretrieve.demo import index_demo_world as index_world
from omniretrieve.demo.world import DemoWorld, make_world
from omniretrieve.errors import InvalidInputError
from omniretrieve.evaluation import evaluate, load_judged_queries
from omniretrieve.store import Store
from omniretrieve.testing import FakeEmbedder
from omniretrieve.types import Image


@pytest.fixture(scope="module")
def world() -> DemoWorld:
    return make_world(
        seed=0,
        n_images=12,
        n_captions=12,
        n_distractors=4,
        n_text_queries=3,
        n_text_to_image_queries=2,
        n_image_queries=1,
    )


def test_demo_qrels_groups(world: DemoWorld) -> None:
    assert len(demo_qrels(world)) == 6
    assert len(demo_qrels(world, "text->mixed")) == 3
    assert len(demo_qrels(world, "text->image")) == 2
    assert len(demo_qrels(world, "image->image")) == 1
    assert all(d.startswith("img-") for j in demo_qrels(world, "text->image").values() for d in j)
    with pytest.raises(InvalidInputError):
        demo_qrels(world, "audio->text")


def test_the_world_in_memory_matches_the_world_written_as_files(world: DemoWorld, tmp_path: Path) -> None:
    in_memory = demo_judged_queries(world)
    from_files = load_judged_queries(world.write(tmp_path / "world"))
    assert [(q.id, q.modality, q.target, q.group) for q in in_memory.queries] == [
        (q.id, q.modality, q.target, q.group) for q in from_files.queries
    ]
    assert in_memory.qrels == from_files.qrels
    assert set(in_memory.groups()) == set(DEMO_GROUPS)
    assert [q.id for q in demo_judged_queries(world, "text->image").queries] == list(
        demo_qrels(world, "text->image")
    )


def test_evaluate_demo_is_each_query_searched_and_measured(world: DemoWorld, tmp_path: Path) -> None:
    with Store(FakeEmbedder(16), path=tmp_path / "store") as store:
        assert all(r.ok for r in index_world(store, world))
        metrics = evaluate_demo(
            store, world, calibrations=("gap", "none"), groups=("text->image", "text->mixed")
        )
        assert list(metrics) == ["gap", "none"] and list(metrics["gap"]) == ["text->image", "text->mixed"]
        for calibration in ("gap", "none"):
            for group in ("text->image", "text->mixed"):
                run: dict[str, list[str]] = {}
                for q in world.queries:
                    if q.id not in demo_qrels(world, group):
                        continue
                    item = Image(q.image) if q.image is not None else q.text or ""
                    kinds = None if q.target == "mixed" else (q.target,)
                    run[q.id] = [
                        h.id for h in store.search(item, 10, calibration=calibration, modalities=kinds)
                    ]
                assert metrics[calibration][group] == pytest.approx(
                    evaluate(run, demo_qrels(world, group), 10)
                )
                assert demo_run(store, world, calibration=calibration, group=group) == run
        with pytest.raises(InvalidInputError):
            evaluate_demo(store, world, groups=("audio->text",))
