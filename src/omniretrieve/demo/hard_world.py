"""The HARD split of the demo world: two objects per picture, queries about who is where.

The easy world (:mod:`omniretrieve.demo.world`) has one object per picture; the shipped demo CLIP
solves it (calibrated nDCG@10 ~0.99). Here every picture holds two objects, side by side or one
above the other, and a query's meaning lies in *attribute binding* and *relations*:
"a red circle left of a blue square" against "a blue circle left of a red square" (colors swapped)
and "a blue square left of a red circle" (sides swapped). All of them hold the same *bag* of
words and looks: {red, blue, circle, square}. Contrastive bi-encoders behave like bags of words
on such queries (Yuksekgonul et al. 2023, "When and why vision-language models behave like
bags-of-words, and what to do about it"), so a first stage ranks the right picture somewhere among
its confusers; a cross-encoder reading query and picture together can tell them apart
(:mod:`omniretrieve.demo.train_reranker`, ``benchmarks/rerank.py``).

* A :class:`PairScene` is (first object, second object, layout): the first object is the left one
  (``"horizontal"``) or the top one (``"vertical"``); an object is a color and a shape, and the
  two differ in both color and shape.
* A *bag* is the unordered set {color1, color2} x {shape1, shape2}: the 8 scenes of a bag
  (2 bindings x 2 orders x 2 layouts) are each other's confusers, and every world holds whole
  bags, so every query meets all 7 of its confusers.
* :func:`split_bags`: 20% of the 90 bags are held out, deterministically; the reranker never sees
  a held-out bag (neither its pictures nor its texts), so held-out queries ask for new attribute
  combinations. The demo CLIP saw no two-object scene at all.
* :func:`split_reranker_bags`: 10% of the bags, taken from the training ones, are the reranker's
  validation bags: it does not train on them, and its fusion weight is chosen on them
  (:mod:`omniretrieve.demo.rerank_eval`), never on the held-out bags.

Judgments: grade 2 for a document of exactly the query's scene (its picture and its caption);
every other document, confusers included, is not relevant.

Example::

    from omniretrieve.demo.hard_world import make_hard_world

    world = make_hard_world(seed=0)      # held-out bags only: the evaluation split
    world.write("hard-folder")           # the same layout as the easy world's files
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

import numpy as np

from omniretrieve.demo.world import (
    COLORS,
    RGB,
    SHAPES,
    DemoDoc,
    DemoQuery,
    DemoWorld,
    Target,
    add_pixel_noise,
    check_fraction,
    check_object,
    draw_covering,
    draw_shape,
)
from omniretrieve.errors import InvalidInputError, require

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

Layout: TypeAlias = Literal["horizontal", "vertical"]
LAYOUTS: tuple[Layout, ...] = ("horizontal", "vertical")

Bag: TypeAlias = tuple[tuple[str, str], tuple[str, str]]
"""Two colors and two shapes, each pair in the world's order: the 8 scenes that share them."""

HARD_SPLIT_SEED = 0
"""The seed of the shipped reranker's split of bags into training and held-out bags."""

HARD_HELDOUT_FRACTION = 0.2
"""The fraction of bags held out from the reranker's training."""

HARD_VALIDATION_FRACTION = 0.1
"""The fraction of all bags the reranker keeps out of its training to validate on
(:func:`split_reranker_bags`): taken from the training bags, never from the held-out ones."""

# (first-object relation, second-object relation) words per layout: "A left of B" == "B right of A".
_RELATIONS: dict[Layout, tuple[str, str]] = {
    "horizontal": ("left of", "right of"),
    "vertical": ("above", "below"),
}
_PLACES: dict[Layout, tuple[str, str]] = {
    "horizontal": ("on the left", "on the right"),
    "vertical": ("at the top", "at the bottom"),
}

CAPTION_TEMPLATES: tuple[str, ...] = (
    "a {a} {rel_ab} a {b}",
    "a {b} {rel_ba} a {a}",
    "a {a} {place_a} and a {b} {place_b}",
    "a picture of a {a} {rel_ab} a {b}",
)
"""Caption templates; ``{a}``/``{b}`` are the first/second object ("red circle"); ``{rel_ab}`` is
"left of"/"above", ``{rel_ba}`` "right of"/"below", ``{place_a}`` "on the left"/"at the top"."""

QUERY_TEMPLATES: tuple[str, ...] = (
    "{a} {rel_ab} {b}",
    "{b} {rel_ba} {a}",
    "find a {a} {rel_ab} a {b}",
    "show me a {b} {rel_ba} a {a}",
    "a {b} {place_b} and a {a} {place_a}",
)
"""Query templates (other wordings than the captions; either object may be named first)."""

DISTRACTOR_TEMPLATES: tuple[str, ...] = (
    "{a} and {b} are two shapes",
    "the {a} is left of the door",
    "a {b} above the kitchen table",
    "the weather is sunny and warm today",
    "a recipe for tomato soup with bread",
    "music and books make a good evening",
)
"""Distractor texts: off-topic, or naming objects without a relation between them."""

# Centres of the two objects on a 64 x 64 canvas, per layout (scaled for other sizes).
_CENTERS: dict[Layout, tuple[tuple[float, float], tuple[float, float]]] = {
    "horizontal": ((17.0, 32.0), (47.0, 32.0)),
    "vertical": ((32.0, 17.0), (32.0, 47.0)),
}

_STREAM_SPLIT, _STREAM_DOC, _STREAM_QUERY, _STREAM_DISTRACTOR, _STREAM_ORDER, _STREAM_VALIDATION = range(
    100, 106
)


@dataclass(frozen=True, order=True)
class Obj:
    """One object: a color and a shape, e.g. a red circle."""

    color: str
    shape: str

    def __post_init__(self) -> None:
        check_object("Obj", self.color, self.shape)

    @property
    def name(self) -> str:
        """``"red circle"``."""
        return f"{self.color} {self.shape}"


@dataclass(frozen=True, order=True)
class PairScene:
    """Two objects and their layout: ``first`` is left of (``horizontal``) or above (``vertical``) ``second``."""

    first: Obj
    second: Obj
    layout: Layout

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InvalidInputError("PairScene.layout", f"{self.layout!r} is not one of {list(LAYOUTS)}")
        if self.first.color == self.second.color or self.first.shape == self.second.shape:
            raise InvalidInputError("PairScene", "the two objects must differ in color and in shape")

    @property
    def key(self) -> str:
        """A short stable name, e.g. ``red-circle_left-of_blue-square``."""
        rel = _RELATIONS[self.layout][0].replace(" ", "-")
        return f"{self.first.color}-{self.first.shape}_{rel}_{self.second.color}-{self.second.shape}"

    @property
    def bag(self) -> Bag:
        """The unordered colors and shapes, each pair in the world's order (as :func:`all_bags` lists them)."""
        colors = sorted((self.first.color, self.second.color), key=COLORS.index)
        shapes = sorted((self.first.shape, self.second.shape), key=SHAPES.index)
        return (colors[0], colors[1]), (shapes[0], shapes[1])

    def caption(self, template: int = 0) -> str:
        """The caption from :data:`CAPTION_TEMPLATES` number ``template`` (modulo their count)."""
        return self._fill(CAPTION_TEMPLATES[template % len(CAPTION_TEMPLATES)])

    def query_text(self, template: int = 0) -> str:
        """A query from :data:`QUERY_TEMPLATES` number ``template`` (modulo their count)."""
        return self._fill(QUERY_TEMPLATES[template % len(QUERY_TEMPLATES)])

    def _fill(self, template: str) -> str:
        rel_ab, rel_ba = _RELATIONS[self.layout]
        place_a, place_b = _PLACES[self.layout]
        return template.format(
            a=self.first.name,
            b=self.second.name,
            rel_ab=rel_ab,
            rel_ba=rel_ba,
            place_a=place_a,
            place_b=place_b,
        )

    def render(self, size: int = 64, seed: int = 0) -> PILImage:
        """Draw the two objects as an RGB image of ``size`` x ``size`` pixels (jittered by ``seed``).

        Raises:
            InvalidInputError: ``size`` is below 16.
        """
        if size < 16:
            raise InvalidInputError("size", f"{size} is too small to draw a scene; use 16 or more")
        image_module = require("PIL.Image", extra=None, purpose="Rendering demo images", package="pillow")
        draw_module = require("PIL.ImageDraw", extra=None, purpose="Rendering demo images", package="pillow")
        rng = np.random.default_rng([seed, 0x2C3E])
        scale = size / 64.0
        bg_level = rng.uniform(228.0, 250.0)
        background = tuple(int(v) for v in np.clip(bg_level + rng.uniform(-6.0, 6.0, size=3), 0, 255))
        image = image_module.new("RGB", (size, size), background)
        draw = draw_module.Draw(image)
        for obj, (cx, cy) in zip((self.first, self.second), _CENTERS[self.layout], strict=True):
            x = (cx + rng.uniform(-2.0, 2.0)) * scale
            y = (cy + rng.uniform(-2.0, 2.0)) * scale
            r = rng.uniform(8.5, 11.0) * scale
            base = np.array(RGB[obj.color], dtype=np.float64)
            fill = tuple(int(v) for v in np.clip(base + rng.uniform(-18.0, 18.0, size=3), 0, 255))
            draw_shape(draw, obj.shape, x, y, r, fill)
        return add_pixel_noise(image, rng)


def all_bags() -> tuple[Bag, ...]:
    """Every bag: two different colors and two different shapes (15 x 6 = 90), in a fixed order."""
    return tuple(
        (colors, shapes)
        for colors in itertools.combinations(COLORS, 2)
        for shapes in itertools.combinations(SHAPES, 2)
    )


def bag_scenes(bag: Bag) -> tuple[PairScene, ...]:
    """The 8 scenes of a bag: 2 bindings x 2 orders x 2 layouts; each the others' confusers."""
    (c1, c2), (s1, s2) = bag
    scenes: list[PairScene] = []
    for layout in LAYOUTS:
        for a, b in ((Obj(c1, s1), Obj(c2, s2)), (Obj(c1, s2), Obj(c2, s1))):
            scenes += [PairScene(a, b, layout), PairScene(b, a, layout)]
    return tuple(scenes)


def split_bags(
    split_seed: int = HARD_SPLIT_SEED, heldout_fraction: float = HARD_HELDOUT_FRACTION
) -> tuple[tuple[Bag, ...], tuple[Bag, ...]]:
    """Split the bags into (training bags, held-out bags), deterministically by seed.

    Every color pair and every shape pair keeps a training bag, so a held-out bag is a new
    *combination* of pairs seen in training.

    Raises:
        InvalidInputError: ``heldout_fraction`` is outside [0, 0.5].
    """
    check_fraction("heldout_fraction", heldout_fraction)
    bags = all_bags()
    rng = np.random.default_rng([split_seed, _STREAM_SPLIT])
    return draw_covering(bags, round(len(bags) * heldout_fraction), rng, _covers)


def _covers(bags: Sequence[Bag]) -> bool:
    """Whether ``bags`` hold every color pair and every shape pair of the world."""
    every = all_bags()
    return {b[0] for b in bags} == {b[0] for b in every} and {b[1] for b in bags} == {b[1] for b in every}


def split_reranker_bags(
    split_seed: int = HARD_SPLIT_SEED, validation_fraction: float = HARD_VALIDATION_FRACTION
) -> tuple[tuple[Bag, ...], tuple[Bag, ...], tuple[Bag, ...]]:
    """The reranker's split of bags: (training bags, validation bags, held-out bags).

    The held-out bags are :func:`split_bags`' (the test bags, unchanged); the validation bags are
    drawn, deterministically by seed, from its training bags, and the reranker trains on the
    rest. Every color pair and shape pair keeps a training bag.

    Raises:
        InvalidInputError: ``validation_fraction`` is outside [0, 0.5].
    """
    check_fraction("validation_fraction", validation_fraction)
    pool, heldout = split_bags(split_seed)
    rng = np.random.default_rng([split_seed, _STREAM_VALIDATION])
    train, validation = draw_covering(pool, round(len(all_bags()) * validation_fraction), rng, _covers)
    return train, validation, heldout


def _judge(scene: PairScene, candidates: Sequence[DemoDoc]) -> dict[str, int]:
    return {d.id: 2 for d in candidates if d.scene == scene}


def make_hard_world(
    seed: int = 0,
    *,
    bags: Sequence[Bag] | None = None,
    n_text_queries: int = 48,
    n_text_to_image_queries: int = 48,
    n_distractors: int = 12,
    image_size: int = 64,
    split_seed: int = HARD_SPLIT_SEED,
    heldout_fraction: float = HARD_HELDOUT_FRACTION,
) -> DemoWorld:
    """Generate a hard world: for each bag, all 8 of its scenes, each one picture and one caption.

    Args:
        seed: Seed of renders, caption and query templates and which scenes are asked for.
        bags: The bags in the corpus; default the held-out bags of the split (the evaluation
            split: no query of it was seen by the reranker).
        n_text_queries: Text queries over the whole mixed corpus (group ``text->mixed``).
        n_text_to_image_queries: Text queries over the pictures only (group ``text->image``).
        n_distractors: Distractor texts (relevant to no query).
        image_size: Side of the rendered pictures in pixels (the models see 32).
        split_seed: Seed of the train/held-out split of bags.
        heldout_fraction: Fraction of bags held out.

    Returns:
        A :class:`~omniretrieve.demo.world.DemoWorld` whose scenes are :class:`PairScene` s
        (``train_scenes`` / ``heldout_scenes``: the scenes of :func:`split_bags`' training / held-out
        bags; its training bags include the reranker's validation bags).

    Raises:
        InvalidInputError: A count is negative or no bag is given.
    """
    for name, value in (
        ("n_text_queries", n_text_queries),
        ("n_text_to_image_queries", n_text_to_image_queries),
        ("n_distractors", n_distractors),
    ):
        if value < 0:
            raise InvalidInputError(name, f"{value} is negative; use 0 or more")
    train_bags, heldout_bags = split_bags(split_seed, heldout_fraction)
    chosen = tuple(bags) if bags is not None else heldout_bags
    if not chosen:
        raise InvalidInputError("bags", "a hard world needs at least one bag")
    scenes = [s for bag in chosen for s in bag_scenes(bag)]
    docs: list[DemoDoc] = []
    for i, scene in enumerate(scenes):
        template = int(np.random.default_rng([seed, _STREAM_DOC, 0, i]).integers(len(CAPTION_TEMPLATES)))
        docs.append(DemoDoc(id=f"cap-{i:04d}", modality="text", scene=scene, text=scene.caption(template)))
    for i, scene in enumerate(scenes):
        render_seed = int(np.random.default_rng([seed, _STREAM_DOC, 1, i]).integers(2**31))
        docs.append(
            DemoDoc(
                id=f"img-{i:04d}", modality="image", scene=scene, image=scene.render(image_size, render_seed)
            )
        )
    drng = np.random.default_rng([seed, _STREAM_DISTRACTOR])
    for i in range(n_distractors):
        a, b = (
            Obj(COLORS[int(drng.integers(len(COLORS)))], SHAPES[int(drng.integers(len(SHAPES)))])
            for _ in "ab"
        )
        text = DISTRACTOR_TEMPLATES[i % len(DISTRACTOR_TEMPLATES)].format(a=a.name, b=b.name)
        docs.append(DemoDoc(id=f"dis-{i:04d}", modality="text", scene=None, text=text))

    image_docs = [d for d in docs if d.modality == "image"]
    queries: list[DemoQuery] = []
    qrng = np.random.default_rng([seed, _STREAM_QUERY])
    kinds: tuple[tuple[str, int, Target], ...] = (
        ("text", n_text_queries, "mixed"),
        ("t2i", n_text_to_image_queries, "image"),
    )
    for kind, count, target in kinds:
        order = qrng.permutation(len(scenes))
        candidates: Sequence[DemoDoc] = docs if target == "mixed" else image_docs
        for i in range(count):
            scene = scenes[order[i % len(scenes)]]
            text = scene.query_text(int(qrng.integers(len(QUERY_TEMPLATES))))
            queries.append(
                DemoQuery(f"q-{kind}-{i:04d}", text, None, scene, target, _judge(scene, candidates))
            )
    return DemoWorld(
        seed=seed,
        docs=tuple(docs),
        queries=tuple(queries),
        train_scenes=tuple(s for bag in train_bags for s in bag_scenes(bag)),
        heldout_scenes=tuple(s for bag in heldout_bags for s in bag_scenes(bag)),
    )


HARD_GROUPS: dict[str, tuple[str, str]] = {"text->mixed": ("text", "mixed"), "text->image": ("text", "image")}
"""The hard world's query groups: name -> (query modality, target)."""


__all__ = [
    "CAPTION_TEMPLATES",
    "DISTRACTOR_TEMPLATES",
    "HARD_GROUPS",
    "HARD_HELDOUT_FRACTION",
    "HARD_SPLIT_SEED",
    "HARD_VALIDATION_FRACTION",
    "LAYOUTS",
    "QUERY_TEMPLATES",
    "Bag",
    "Layout",
    "Obj",
    "PairScene",
    "all_bags",
    "bag_scenes",
    "make_hard_world",
    "split_bags",
    "split_reranker_bags",
]
