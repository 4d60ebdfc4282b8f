from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from omniretrieve.demo import world as w
from omniretrieve.errors import InvalidInputError

pytest.importorskip("PIL")
from PIL import Image as PILImage  # noqa: E402


@pytest.fixture(scope="module")
def world() -> w.DemoWorld:
    return w.make_world(seed=0)


def _pixels(image: PILImage.Image | None) -> np.ndarray:
    assert image is not None
    return np.asarray(image)


def test_default_sizes(world: w.DemoWorld) -> None:
    kinds = Counter(d.id.split("-")[0] for d in world.docs)
    assert kinds == {"cap": 120, "img": 120, "dis": 24}
    assert len(w.all_scenes()) == 6 * 4 * 5
    # 120 captions and 120 images: every scene has exactly one of each.
    assert Counter(d.scene for d in world.docs if d.modality == "image") == Counter(w.all_scenes())
    assert Counter(d.scene for d in world.docs if d.id.startswith("cap")) == Counter(w.all_scenes())
    queries = Counter((q.modality, q.target) for q in world.queries)
    assert queries == {("text", "mixed"): 40, ("text", "image"): 24, ("image", "image"): 24}
    assert len({d.id for d in world.docs}) == len(world.docs)
    assert len({q.id for q in world.queries}) == len(world.queries)


def test_documents_are_well_formed(world: w.DemoWorld) -> None:
    for d in world.docs:
        if d.modality == "image":
            assert d.text is None and d.image is not None and d.scene is not None
            assert d.image.mode == "RGB" and d.image.size == (64, 64)
        else:
            assert d.image is None and d.text
    for d in world.docs:
        if d.id.startswith("cap"):
            assert d.scene is not None
            assert d.text in [d.scene.caption(t) for t in range(len(w.CAPTION_TEMPLATES))]
            assert d.scene.color in d.text and d.scene.shape in d.text and d.scene.position in d.text
        if d.id.startswith("dis"):
            assert d.scene is None
    assert world.doc("cap-0003").id == "cap-0003"
    with pytest.raises(InvalidInputError):
        world.doc("nope")


def test_same_seed_same_world() -> None:
    a, b = w.make_world(seed=5), w.make_world(seed=5)
    assert [(d.id, d.scene, d.text) for d in a.docs] == [(d.id, d.scene, d.text) for d in b.docs]
    for da, db in zip(a.docs, b.docs, strict=True):
        if da.image is not None:
            assert np.array_equal(_pixels(da.image), _pixels(db.image))
    assert [(q.id, q.text, q.scene, q.target, q.judgments) for q in a.queries] == [
        (q.id, q.text, q.scene, q.target, q.judgments) for q in b.queries
    ]
    for qa, qb in zip(a.queries, b.queries, strict=True):
        if qa.image is not None:
            assert np.array_equal(_pixels(qa.image), _pixels(qb.image))


def test_other_seed_other_world_same_split() -> None:
    a, b = w.make_world(seed=0), w.make_world(seed=1)
    assert [d.scene for d in a.docs] != [d.scene for d in b.docs]
    assert [q.text for q in a.queries] != [q.text for q in b.queries]
    # The split is fixed by split_seed, so every world matches the shipped model's training.
    assert a.heldout_scenes == b.heldout_scenes
    assert a.train_scenes == b.train_scenes
    assert w.make_world(seed=0, split_seed=1).heldout_scenes != a.heldout_scenes


def test_render_is_deterministic_and_jittered() -> None:
    scene = w.Scene("red", "circle", "top left")
    one, again, other = scene.render(seed=1), scene.render(seed=1), scene.render(seed=2)
    assert np.array_equal(_pixels(one), _pixels(again))
    assert not np.array_equal(_pixels(one), _pixels(other))
    px = _pixels(one).astype(int)
    # The shape is red and sits in the top-left quadrant; the bottom-right quadrant is background.
    red = (px[..., 0] > 150) & (px[..., 1] < 100) & (px[..., 2] < 100)
    assert red[:32, :32].sum() > 100 and red[32:, 32:].sum() == 0
    assert scene.render(size=32, seed=0).size == (32, 32)
    with pytest.raises(InvalidInputError):
        scene.render(size=8)


def test_scene_validation_and_text() -> None:
    scene = w.Scene("blue", "cross", "center")
    assert scene.caption(0) == "a blue cross in the center"
    assert scene.key == "blue-cross-center"
    assert scene.query_text(0) == "blue cross center"
    with pytest.raises(InvalidInputError, match="color"):
        w.Scene("pink", "cross", "center")
    with pytest.raises(InvalidInputError, match="shape"):
        w.Scene("blue", "hexagon", "center")


def test_judgments_follow_the_scenes(world: w.DemoWorld) -> None:
    for q in world.queries:
        candidates = world.corpus(q.target)
        ids = {d.id for d in candidates}
        assert set(q.judgments) <= ids
        for d in candidates:
            s = d.scene
            if s is None or (s.color, s.shape) != (q.scene.color, q.scene.shape):
                expected = 0
            else:
                expected = 2 if s.position == q.scene.position else 1
            assert q.judgments.get(d.id, 0) == expected, (q.id, d.id)
        grade2 = {world.doc(i).modality for i, g in q.judgments.items() if g == 2}
        assert grade2 == ({"text", "image"} if q.target == "mixed" else {"image"})
        # Right color and shape, four other positions: one caption and one image each.
        assert sum(g == 1 for g in q.judgments.values()) == (8 if q.target == "mixed" else 4)
        if q.text is not None:
            assert q.scene.color in q.text and q.scene.shape in q.text
        if q.image is not None:
            assert all(not np.array_equal(_pixels(q.image), _pixels(d.image)) for d in world.corpus("image"))


def test_distractors_are_relevant_to_nothing(world: w.DemoWorld) -> None:
    distractors = {d.id for d in world.docs if d.id.startswith("dis")}
    assert distractors and all(distractors.isdisjoint(q.judgments) for q in world.queries)


def test_heldout_scenes_are_excluded_from_training(world: w.DemoWorld) -> None:
    train, heldout = set(world.train_scenes), set(world.heldout_scenes)
    assert not train & heldout
    assert train | heldout == set(w.all_scenes())
    assert len(heldout) == round(120 * w.DEMO_HELDOUT_FRACTION) == 24
    # Held-out scenes are new combinations of things seen in training.
    assert {s.color for s in train} == set(w.COLORS)
    assert {s.shape for s in train} == set(w.SHAPES)
    assert {s.position for s in train} == set(w.POSITIONS)
    assert (world.train_scenes, world.heldout_scenes) == w.split_scenes()
    assert all(world.is_heldout(s) for s in heldout) and not any(world.is_heldout(s) for s in train)
    # Queries about held-out scenes exist, so the benchmarks can measure generalisation.
    assert any(world.is_heldout(q.scene) for q in world.queries)
    with pytest.raises(InvalidInputError):
        w.split_scenes(heldout_fraction=0.9)


def test_counts_other_than_default() -> None:
    big = w.make_world(seed=2, n_images=150, n_captions=10, n_distractors=0, n_text_queries=5)
    images = [d for d in big.docs if d.modality == "image"]
    assert len(images) == 150 and len(big.docs) == 160
    # Queries only ask for scenes that have a caption and an image.
    captioned = {d.scene for d in big.docs if d.id.startswith("cap")}
    assert all(q.scene in captioned for q in big.queries)
    # Scenes repeat beyond 120 images: some queries then have two exact images.
    assert any(sum(g == 2 for g in q.judgments.values()) == 3 for q in big.queries if q.target == "mixed")
    empty = w.make_world(n_text_queries=0, n_text_to_image_queries=0, n_image_queries=0)
    assert empty.queries == ()
    with pytest.raises(InvalidInputError, match="n_images"):
        w.make_world(n_images=-1)
    with pytest.raises(InvalidInputError):
        w.make_world(n_images=0)


def test_write_produces_the_files(world: w.DemoWorld, tmp_path) -> None:
    root = world.write(tmp_path / "demo")
    corpus = root / "corpus"
    assert len(list(corpus.glob("*.png"))) == 120
    assert len(list(corpus.glob("*.txt"))) == 144
    assert len(list((root / "queries").glob("*.png"))) == 24
    docs = json.loads((root / "docs.json").read_text())
    queries = json.loads((root / "queries.json").read_text())
    judgments = json.loads((root / "judgments.json").read_text())
    assert set(docs) == {d.id for d in world.docs}
    assert judgments == {q.id: q.judgments for q in world.queries}
    for d in world.docs:
        path = root / docs[d.id]["path"]
        assert path.stem == d.id
        if d.image is not None:
            with PILImage.open(path) as img:
                assert np.array_equal(np.asarray(img.convert("RGB")), _pixels(d.image))
        else:
            assert path.read_text(encoding="utf-8").strip() == d.text
    for entry, q in zip(queries, world.queries, strict=True):
        assert entry["id"] == q.id and entry["target"] == q.target and entry["scene"] == q.scene.key
        if q.image is not None:
            assert (root / entry["image"]).is_file()
        else:
            assert entry["text"] == q.text
    # Writing again into the same folder is fine and gives the same files.
    world.write(root)
    assert json.loads((root / "judgments.json").read_text()) == judgments
