"""A synthetic world of colored shapes: images, captions, distractor texts, queries and judgments.

Everything is deterministic by seed and generated in well under a second, so the demo, the tests
and the benchmarks all run on the same small, fully known retrieval problem.

A :class:`Scene` is one combination of a color, a shape and a position (6 x 4 x 5 = 120 scenes).
Some scenes are *held out*: the demo model never saw them in training, so retrieval of them
measures generalisation to new combinations of known words and looks.

The corpus mixes modalities: one caption document (text) and one image document per scene, plus
distractor texts that talk about other things or only partly match. Queries come in three kinds
(:attr:`DemoQuery.target` says which documents are candidates):

* text -> mixed corpus (``target="mixed"``): a text query over captions, images and distractors;
* text -> images (``target="image"``): a text query ranked among the image documents only;
* image -> images (``target="image"``): an image query (a new render of a scene).

Graded relevance (the same rule for every kind, restricted to the target's documents):
grade 2 for a document of exactly the query's scene (both its caption and its image), grade 1 for
a document with the right color and shape in another position; everything else is not relevant
and is left out of :attr:`DemoQuery.judgments` (standard qrels).

Example::

    from omniretrieve.demo.world import make_world

    world = make_world(seed=0)
    query = world.queries[0]
    candidates = world.corpus(query.target)   # the documents to rank for this query
    world.write("demo-folder")                # PNG + .txt files, queries.json, judgments.json
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import numpy as np

from omniretrieve.errors import InvalidInputError, require

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from omniretrieve.demo.hard_world import PairScene

COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
"""The colors of the world, in a fixed order."""

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
"""The shapes of the world, in a fixed order."""

POSITIONS: tuple[str, ...] = ("top left", "top right", "bottom left", "bottom right", "center")
"""The positions of the world, in a fixed order."""

RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 55),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 30),
    "purple": (135, 55, 180),
    "orange": (240, 135, 25),
}
"""The base RGB value of each color (renders jitter around it)."""

CAPTION_TEMPLATES: tuple[str, ...] = (
    "a {color} {shape} in the {position}",
    "a photo of a {color} {shape} in the {position}",
    "there is a {color} {shape} in the {position} of the picture",
    "the {position} holds a {color} {shape}",
    "{color} {shape}, {position}",
)
"""Templates of caption documents; ``{position}`` is a phrase like ``top left`` or ``center``."""

QUERY_TEMPLATES: tuple[str, ...] = (
    "{color} {shape} {position}",
    "find the {color} {shape} in the {position}",
    "show me a picture of a {color} {shape} at the {position}",
)
"""Templates of text queries (different wording from the captions)."""

DISTRACTOR_TEMPLATES: tuple[str, ...] = (
    "{color} is my favourite color",
    "how to draw a {shape} with a ruler and a compass",
    "a {color} car is parked on the street",
    "the {position} of the page is torn",
    "a {shape} has a simple geometry",
    "paint the kitchen wall {color}",
    "the weather is sunny and warm today",
    "a recipe for tomato soup with bread",
    "the train to the city leaves at noon",
    "the cat sleeps on the sofa all afternoon",
    "yes or no: is the meeting on monday",
    "music and books make a good evening",
)
"""Templates of distractor texts: off-topic, or naming a color, shape or position of no scene."""

DEMO_SPLIT_SEED = 0
"""The split seed the shipped demo model was trained with (which scenes are held out)."""

DEMO_HELDOUT_FRACTION = 0.2
"""The fraction of scenes held out from the shipped demo model's training."""

RERANKER_VALIDATION_FRACTION = 0.1
"""The fraction of all scenes the demo reranker keeps out of its training to validate on
(:func:`split_reranker_scenes`): taken from the demo model's training scenes, never held-out ones."""

Modality: TypeAlias = Literal["text", "image"]
Target: TypeAlias = Literal["mixed", "image", "text"]

# Centers of the positions on a 64 x 64 canvas (scaled for other sizes).
_CENTERS: dict[str, tuple[float, float]] = {
    "top left": (16.0, 16.0),
    "top right": (48.0, 16.0),
    "bottom left": (16.0, 48.0),
    "bottom right": (48.0, 48.0),
    "center": (32.0, 32.0),
}

_T = TypeVar("_T")

# Separate random streams for separate purposes, so changing one count leaves the rest intact.
_STREAM_SPLIT, _STREAM_CORPUS, _STREAM_DOC, _STREAM_QUERY, _STREAM_DISTRACTOR, _STREAM_VALIDATION = range(6)


def check_object(owner: str, color: str, shape: str) -> None:
    """Raise :class:`InvalidInputError` naming ``owner``'s field unless the color and shape are the world's."""
    if color not in COLORS:
        raise InvalidInputError(f"{owner}.color", f"{color!r} is not one of {list(COLORS)}")
    if shape not in SHAPES:
        raise InvalidInputError(f"{owner}.shape", f"{shape!r} is not one of {list(SHAPES)}")


@dataclass(frozen=True, order=True)
class Scene:
    """One combination of a color, a shape and a position, e.g. a red circle in the top left."""

    color: str
    shape: str
    position: str

    def __post_init__(self) -> None:
        check_object("Scene", self.color, self.shape)
        if self.position not in POSITIONS:
            raise InvalidInputError("Scene.position", f"{self.position!r} is not one of {list(POSITIONS)}")

    @property
    def key(self) -> str:
        """A short stable name, e.g. ``red-circle-top_left``."""
        return f"{self.color}-{self.shape}-{self.position.replace(' ', '_')}"

    def caption(self, template: int = 0) -> str:
        """The caption from :data:`CAPTION_TEMPLATES` number ``template`` (taken modulo their count)."""
        return self._fill(CAPTION_TEMPLATES[template % len(CAPTION_TEMPLATES)])

    def query_text(self, template: int = 0) -> str:
        """A query from :data:`QUERY_TEMPLATES` number ``template`` (taken modulo their count)."""
        return self._fill(QUERY_TEMPLATES[template % len(QUERY_TEMPLATES)])

    def _fill(self, template: str) -> str:
        return template.format(color=self.color, shape=self.shape, position=self.position)

    def render(self, size: int = 64, seed: int = 0) -> PILImage:
        """Draw the scene as an RGB image of ``size`` x ``size`` pixels.

        The seed jitters the shape's place, size and color and the background, and adds a little
        pixel noise, so two seeds give two different pictures of the same scene.

        Raises:
            InvalidInputError: ``size`` is below 16.
            MissingDependencyError: Pillow is not installed (``omniretrieve[image]``).
        """
        if size < 16:
            raise InvalidInputError("size", f"{size} is too small to draw a scene; use 16 or more")
        image_module = require("PIL.Image", extra=None, purpose="Rendering demo images", package="pillow")
        draw_module = require("PIL.ImageDraw", extra=None, purpose="Rendering demo images", package="pillow")
        rng = np.random.default_rng([seed, 0x5CE7E])
        scale = size / 64.0
        cx, cy = _CENTERS[self.position]
        cx = (cx + rng.uniform(-3.0, 3.0)) * scale
        cy = (cy + rng.uniform(-3.0, 3.0)) * scale
        r = rng.uniform(9.0, 12.0) * scale
        base = np.array(RGB[self.color], dtype=np.float64)
        fill = tuple(int(v) for v in np.clip(base + rng.uniform(-18.0, 18.0, size=3), 0, 255))
        bg_level = rng.uniform(228.0, 250.0)
        background = tuple(int(v) for v in np.clip(bg_level + rng.uniform(-6.0, 6.0, size=3), 0, 255))
        image = image_module.new("RGB", (size, size), background)
        draw_shape(draw_module.Draw(image), self.shape, cx, cy, r, fill)
        return add_pixel_noise(image, rng)


def draw_shape(draw: Any, shape: str, cx: float, cy: float, r: float, fill: tuple[int, ...]) -> None:
    """Draw one flat ``shape`` of "radius" ``r`` centred at (``cx``, ``cy``) with a PIL ``ImageDraw``."""
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        s = r * 0.9
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
    else:  # cross
        w = r * 0.36
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)


def add_pixel_noise(image: PILImage, rng: np.random.Generator, sigma: float = 5.0) -> PILImage:
    """``image`` with Gaussian pixel noise of standard deviation ``sigma`` (seeded by ``rng``)."""
    image_module = require("PIL.Image", extra=None, purpose="Rendering demo images", package="pillow")
    pixels = np.asarray(image, dtype=np.float64)
    pixels = pixels + rng.normal(0.0, sigma, size=pixels.shape)
    return image_module.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), mode="RGB")


def check_fraction(name: str, fraction: float) -> None:
    """Raise :class:`InvalidInputError` naming ``name`` unless ``fraction`` is in [0, 0.5]."""
    if not 0.0 <= fraction <= 0.5:
        raise InvalidInputError(name, f"{fraction} is outside [0, 0.5]")


def draw_covering(
    pool: Sequence[_T], n: int, rng: np.random.Generator, covers: Callable[[Sequence[_T]], bool]
) -> tuple[tuple[_T, ...], tuple[_T, ...]]:
    """Draw ``n`` items out of ``pool`` at random until the rest still ``covers`` the world.

    Each try is one permutation of ``rng``, so a seed gives one split. Returns ``(rest, drawn)``,
    each in ``pool``'s order.
    """
    while True:
        order = rng.permutation(len(pool))
        drawn = {pool[i] for i in order[:n]}
        rest = tuple(x for x in pool if x not in drawn)
        if covers(rest):
            return rest, tuple(x for x in pool if x in drawn)


def all_scenes() -> tuple[Scene, ...]:
    """Every scene of the world (colors x shapes x positions), in a fixed order."""
    return tuple(Scene(c, s, p) for c in COLORS for s in SHAPES for p in POSITIONS)


def split_scenes(
    split_seed: int = DEMO_SPLIT_SEED, heldout_fraction: float = DEMO_HELDOUT_FRACTION
) -> tuple[tuple[Scene, ...], tuple[Scene, ...]]:
    """Split the scenes into (training scenes, held-out scenes), deterministically by seed.

    Every color, shape and position keeps at least one training scene, so a held-out scene is
    always a new *combination* of things seen in training.

    Raises:
        InvalidInputError: ``heldout_fraction`` is outside [0, 0.5].
    """
    check_fraction("heldout_fraction", heldout_fraction)
    scenes = all_scenes()
    rng = np.random.default_rng([split_seed, _STREAM_SPLIT])
    return draw_covering(scenes, round(len(scenes) * heldout_fraction), rng, _covers)


def _covers(scenes: Sequence[Scene]) -> bool:
    """Whether ``scenes`` hold every color, every shape and every position of the world."""
    return (
        {s.color for s in scenes} == set(COLORS)
        and {s.shape for s in scenes} == set(SHAPES)
        and {s.position for s in scenes} == set(POSITIONS)
    )


def split_reranker_scenes(
    split_seed: int = DEMO_SPLIT_SEED, validation_fraction: float = RERANKER_VALIDATION_FRACTION
) -> tuple[tuple[Scene, ...], tuple[Scene, ...], tuple[Scene, ...]]:
    """The demo reranker's split: (training scenes, validation scenes, held-out scenes).

    The held-out scenes are :func:`split_scenes`' (the test scenes of the demo model and of the
    reranker, unchanged); the validation scenes are drawn, deterministically by seed, from its
    training scenes, so the demo model saw them but the reranker does not. Every color, shape
    and position keeps a reranker training scene.

    Raises:
        InvalidInputError: ``validation_fraction`` is outside [0, 0.5].
    """
    check_fraction("validation_fraction", validation_fraction)
    pool, heldout = split_scenes(split_seed)
    rng = np.random.default_rng([split_seed, _STREAM_VALIDATION])
    train, validation = draw_covering(pool, round(len(all_scenes()) * validation_fraction), rng, _covers)
    return train, validation, heldout


@dataclass(frozen=True, eq=False)
class DemoDoc:
    """One corpus document: a caption or distractor text, or an image.

    Attributes:
        id: Stable id (``cap-0007``, ``img-0007``, ``dis-0003``); files written by
            :meth:`DemoWorld.write` are named after it.
        modality: ``"text"`` or ``"image"``.
        scene: The scene shown or described, or ``None`` for a distractor.
        text: The text of a text document, else ``None``.
        image: The image of an image document, else ``None``.
    """

    id: str
    modality: Modality
    scene: Scene | PairScene | None
    text: str | None = None
    image: PILImage | None = None


@dataclass(frozen=True, eq=False)
class DemoQuery:
    """One query with graded relevance judgments.

    Attributes:
        id: Stable id (``q-text-0001``, ``q-t2i-0001``, ``q-img-0001``).
        text: The query text, or ``None`` for an image query.
        image: The query image, or ``None`` for a text query.
        scene: The scene the query asks for.
        target: Which documents are candidates: ``"mixed"`` (the whole corpus) or ``"image"``
            (image documents only); see :meth:`DemoWorld.corpus`.
        judgments: Document id -> grade (2 exact scene, 1 right color and shape); documents not
            listed are not relevant.
    """

    id: str
    text: str | None
    image: PILImage | None
    scene: Scene | PairScene
    target: Target
    judgments: dict[str, int] = field(default_factory=dict)

    @property
    def modality(self) -> Modality:
        """``"image"`` for an image query, else ``"text"``."""
        return "image" if self.image is not None else "text"


@dataclass(frozen=True, eq=False)
class DemoWorld:
    """A generated world: the mixed corpus, the queries and the train/held-out split of scenes.

    Attributes:
        seed: The seed that generated the corpus and queries.
        docs: Captions, images and distractors, in id order within each kind.
        queries: Text -> mixed, text -> image and image -> image queries.
        train_scenes: Scenes the demo model was trained on (for the default split seed).
        heldout_scenes: Scenes never seen in training.
    """

    seed: int
    docs: tuple[DemoDoc, ...]
    queries: tuple[DemoQuery, ...]
    train_scenes: tuple[Scene, ...] | tuple[PairScene, ...]
    heldout_scenes: tuple[Scene, ...] | tuple[PairScene, ...]

    def doc(self, doc_id: str) -> DemoDoc:
        """The document with this id.

        Raises:
            InvalidInputError: No document has this id.
        """
        for d in self.docs:
            if d.id == doc_id:
                return d
        raise InvalidInputError("doc_id", f"no document has id {doc_id!r}")

    def corpus(self, target: Target = "mixed") -> tuple[DemoDoc, ...]:
        """The candidate documents for a query target: all (``mixed``) or one modality's."""
        if target == "mixed":
            return self.docs
        if target not in ("image", "text"):
            raise InvalidInputError("target", f"{target!r} is not 'mixed', 'image' or 'text'")
        return tuple(d for d in self.docs if d.modality == target)

    def is_heldout(self, scene: Scene | PairScene) -> bool:
        """Whether the demo model never saw this scene in training."""
        return scene in self.heldout_scenes

    def write(self, folder: str | os.PathLike[str]) -> Path:
        """Write the world as files, so the command line tool can index a real folder.

        Layout (the file stem of every document is its id)::

            folder/corpus/cap-0000.txt, img-0000.png, dis-0000.txt, ...   # the documents
            folder/queries/q-img-0000.png, ...                             # image queries
            folder/queries.json    # [{"id", "text" | "image" (path relative to folder),
                                   #   "target", "scene"}]
            folder/judgments.json  # {query id: {doc id: grade}} (qrels)
            folder/docs.json       # {doc id: {"path", "modality", "scene"}}

        Returns:
            The folder, as a :class:`~pathlib.Path`.
        """
        root = Path(folder)
        corpus_dir = root / "corpus"
        query_dir = root / "queries"
        corpus_dir.mkdir(parents=True, exist_ok=True)
        query_dir.mkdir(parents=True, exist_ok=True)
        docs_index: dict[str, dict[str, str | None]] = {}
        for d in self.docs:
            if d.image is not None:
                path = corpus_dir / f"{d.id}.png"
                d.image.save(path, format="PNG")
            else:
                path = corpus_dir / f"{d.id}.txt"
                path.write_text((d.text or "") + "\n", encoding="utf-8")
            docs_index[d.id] = {
                "path": path.relative_to(root).as_posix(),
                "modality": d.modality,
                "scene": d.scene.key if d.scene is not None else None,
            }
        queries_out: list[dict[str, str]] = []
        for q in self.queries:
            entry = {"id": q.id, "target": q.target, "scene": q.scene.key}
            if q.image is not None:
                qpath = query_dir / f"{q.id}.png"
                q.image.save(qpath, format="PNG")
                entry["image"] = qpath.relative_to(root).as_posix()
            else:
                entry["text"] = q.text or ""
            queries_out.append(entry)
        (root / "docs.json").write_text(json.dumps(docs_index, indent=1), encoding="utf-8")
        (root / "queries.json").write_text(json.dumps(queries_out, indent=1), encoding="utf-8")
        judgments = {q.id: q.judgments for q in self.queries}
        (root / "judgments.json").write_text(json.dumps(judgments, indent=1), encoding="utf-8")
        return root


def _grade(query: Scene, doc: Scene | PairScene | None) -> int:
    if not isinstance(doc, Scene) or doc.color != query.color or doc.shape != query.shape:
        return 0
    return 2 if doc.position == query.position else 1


def _judge(scene: Scene, candidates: Sequence[DemoDoc]) -> dict[str, int]:
    grades = {d.id: _grade(scene, d.scene) for d in candidates}
    return {doc_id: g for doc_id, g in grades.items() if g > 0}


def _check_count(name: str, value: int) -> None:
    if value < 0:
        raise InvalidInputError(name, f"{value} is negative; use 0 or more")


def make_world(
    seed: int = 0,
    *,
    n_images: int = 120,
    n_captions: int = 120,
    n_distractors: int = 24,
    n_text_queries: int = 40,
    n_text_to_image_queries: int = 24,
    n_image_queries: int = 24,
    image_size: int = 64,
    split_seed: int = DEMO_SPLIT_SEED,
    heldout_fraction: float = DEMO_HELDOUT_FRACTION,
) -> DemoWorld:
    """Generate a world, deterministically by ``seed`` (renders, templates, queries).

    The documents cover the scenes in a seeded order: with 120 images and 120 captions every
    scene has one image document and one caption document; with more, scenes repeat (new renders,
    other templates), with fewer, a seeded subset is used. Queries ask for scenes that have both a
    caption and an image in the corpus (cycling if more queries than scenes are asked for).

    Args:
        seed: Seed of the corpus and the queries.
        n_images: Number of image documents.
        n_captions: Number of caption documents.
        n_distractors: Number of distractor texts (relevant to no query).
        n_text_queries: Text queries over the whole mixed corpus.
        n_text_to_image_queries: Text queries over the image documents only.
        n_image_queries: Image queries over the image documents only.
        image_size: Side of the rendered images in pixels (the demo model sees 32).
        split_seed: Seed of the train/held-out split; keep the default to match the shipped
            demo model.
        heldout_fraction: Fraction of scenes held out; keep the default to match the model.

    Raises:
        InvalidInputError: A count is negative, or a fraction or size is out of range.
    """
    for name, value in (
        ("n_images", n_images),
        ("n_captions", n_captions),
        ("n_distractors", n_distractors),
        ("n_text_queries", n_text_queries),
        ("n_text_to_image_queries", n_text_to_image_queries),
        ("n_image_queries", n_image_queries),
    ):
        _check_count(name, value)
    train, heldout = split_scenes(split_seed, heldout_fraction)
    scenes = all_scenes()

    rng = np.random.default_rng([seed, _STREAM_CORPUS])
    image_order = rng.permutation(len(scenes))
    caption_order = rng.permutation(len(scenes))
    image_scenes = [scenes[image_order[i % len(scenes)]] for i in range(n_images)]
    caption_scenes = [scenes[caption_order[i % len(scenes)]] for i in range(n_captions)]

    docs: list[DemoDoc] = []
    for i, scene in enumerate(caption_scenes):
        template = int(np.random.default_rng([seed, _STREAM_DOC, 0, i]).integers(len(CAPTION_TEMPLATES)))
        docs.append(DemoDoc(id=f"cap-{i:04d}", modality="text", scene=scene, text=scene.caption(template)))
    for i, scene in enumerate(image_scenes):
        render_seed = int(np.random.default_rng([seed, _STREAM_DOC, 1, i]).integers(2**31))
        image = scene.render(image_size, seed=render_seed)
        docs.append(DemoDoc(id=f"img-{i:04d}", modality="image", scene=scene, image=image))
    drng = np.random.default_rng([seed, _STREAM_DISTRACTOR])
    for i in range(n_distractors):
        text = DISTRACTOR_TEMPLATES[i % len(DISTRACTOR_TEMPLATES)].format(
            color=COLORS[int(drng.integers(len(COLORS)))],
            shape=SHAPES[int(drng.integers(len(SHAPES)))],
            position=POSITIONS[int(drng.integers(len(POSITIONS)))],
        )
        docs.append(DemoDoc(id=f"dis-{i:04d}", modality="text", scene=None, text=text))

    both = sorted(set(image_scenes) & set(caption_scenes))
    image_docs = [d for d in docs if d.modality == "image"]
    queries: list[DemoQuery] = []
    qrng = np.random.default_rng([seed, _STREAM_QUERY])
    kinds: tuple[tuple[str, int, Target], ...] = (
        ("text", n_text_queries, "mixed"),
        ("t2i", n_text_to_image_queries, "image"),
        ("img", n_image_queries, "image"),
    )
    for kind, count, target in kinds:
        if count == 0:
            continue
        if not both:
            raise InvalidInputError(
                "make_world", "queries need at least one scene with both a caption and an image"
            )
        order = qrng.permutation(len(both))
        candidates: Sequence[DemoDoc] = docs if target == "mixed" else image_docs
        for i in range(count):
            scene = both[order[i % len(both)]]
            judgments = _judge(scene, candidates)
            if kind == "img":
                render_seed = int(qrng.integers(2**31))
                image = scene.render(image_size, seed=render_seed)
                queries.append(DemoQuery(f"q-{kind}-{i:04d}", None, image, scene, target, judgments))
            else:
                text = scene.query_text(int(qrng.integers(len(QUERY_TEMPLATES))))
                queries.append(DemoQuery(f"q-{kind}-{i:04d}", text, None, scene, target, judgments))
    return DemoWorld(
        seed=seed, docs=tuple(docs), queries=tuple(queries), train_scenes=train, heldout_scenes=heldout
    )


__all__ = [
    "CAPTION_TEMPLATES",
    "COLORS",
    "DEMO_HELDOUT_FRACTION",
    "DEMO_SPLIT_SEED",
    "DISTRACTOR_TEMPLATES",
    "POSITIONS",
    "QUERY_TEMPLATES",
    "RERANKER_VALIDATION_FRACTION",
    "RGB",
    "SHAPES",
    "DemoDoc",
    "DemoQuery",
    "DemoWorld",
    "Scene",
    "all_scenes",
    "make_world",
    "split_reranker_scenes",
    "split_scenes",
]
