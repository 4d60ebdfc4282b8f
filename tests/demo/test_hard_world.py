"""The hard split: two-object scenes whose bags hold each other's confusers, split by bag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omniretrieve.demo import hard_world as hw
from omniretrieve.demo.evaluation import demo_judged_queries
from omniretrieve.demo.world import COLORS, SHAPES
from omniretrieve.errors import InvalidInputError


def test_bags_hold_eight_confusers_with_one_bag_of_words() -> None:
    bags = hw.all_bags()
    assert len(bags) == len(set(bags)) == 90
    scenes = hw.bag_scenes(bags[0])
    assert len(set(scenes)) == 8
    assert {s.bag for s in scenes} == {bags[0]}
    vocabulary = set(COLORS) | set(SHAPES)
    bags_of_words = {frozenset(w for w in s.caption(0).split() if w in vocabulary) for s in scenes}
    assert len(bags_of_words) == 1 and len(next(iter(bags_of_words))) == 4
    keys = {s.key for s in scenes}
    assert len(keys) == 8


def test_relations_name_the_same_scene_both_ways() -> None:
    scene = hw.PairScene(hw.Obj("red", "circle"), hw.Obj("blue", "square"), "horizontal")
    assert scene.caption(0) == "a red circle left of a blue square"
    assert scene.caption(1) == "a blue square right of a red circle"
    swapped = hw.PairScene(hw.Obj("blue", "circle"), hw.Obj("red", "square"), "horizontal")
    assert swapped.bag == scene.bag and swapped != scene
    vertical = hw.PairScene(scene.first, scene.second, "vertical")
    assert vertical.query_text(1) == "blue square below red circle"
    with pytest.raises(InvalidInputError):
        hw.PairScene(hw.Obj("red", "circle"), hw.Obj("red", "square"), "horizontal")


def test_split_is_deterministic_disjoint_and_covers_every_pair() -> None:
    train, heldout = hw.split_bags()
    assert (train, heldout) == hw.split_bags()
    assert not set(train) & set(heldout)
    assert len(heldout) == 18 and len(train) == 72
    assert {b[0] for b in train} == {b[0] for b in hw.all_bags()}
    assert {b[1] for b in train} == {b[1] for b in hw.all_bags()}


def test_render_puts_each_object_on_its_side() -> None:
    red, blue = hw.Obj("red", "square"), hw.Obj("blue", "circle")
    image = np.asarray(hw.PairScene(red, blue, "horizontal").render(64, seed=3)).astype(int)
    left, right = image[:, :32], image[:, 32:]

    def reddish(part: np.ndarray) -> int:
        return int(((part[..., 0] > 150) & (part[..., 2] < 100)).sum())

    assert reddish(left) > 100 and reddish(right) == 0
    again = np.asarray(hw.PairScene(red, blue, "horizontal").render(64, seed=3)).astype(int)
    assert (image == again).all()


def test_world_holds_whole_heldout_bags_and_judges_exact_scenes(tmp_path: Path) -> None:
    world = hw.make_hard_world(0, n_text_queries=6, n_text_to_image_queries=4, n_distractors=3)
    _, heldout = hw.split_bags()
    scenes = {d.scene for d in world.docs if d.scene is not None}
    assert {s.bag for s in scenes if isinstance(s, hw.PairScene)} == set(heldout)
    assert len(world.docs) == 18 * 8 * 2 + 3
    for q in world.queries:
        assert q.judgments, q.id
        assert all(world.doc(d).scene == q.scene for d in q.judgments)
        if q.target == "image":
            assert all(d.startswith("img-") for d in q.judgments)
        else:
            assert {d[:3] for d in q.judgments} == {"cap", "img"}
    judged = demo_judged_queries(world)
    assert {q.group for q in judged.queries} == set(hw.HARD_GROUPS)
    folder = world.write(tmp_path / "hard")
    docs = json.loads((folder / "docs.json").read_text())
    assert docs["img-0000"]["scene"] == world.doc("img-0000").scene.key  # type: ignore[union-attr]


def test_make_hard_world_refuses_bad_counts() -> None:
    with pytest.raises(InvalidInputError):
        hw.make_hard_world(0, n_text_queries=-1)
    with pytest.raises(InvalidInputError):
        hw.make_hard_world(0, bags=[])
