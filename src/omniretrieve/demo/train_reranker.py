"""Train the demo reranker: a tiny multimodal cross-encoder that reads who is where.

Run ``python -m omniretrieve.demo.train_reranker --out DIR`` to reproduce the shipped reranker
(``src/omniretrieve/demo/reranker/``). Training is deterministic: fixed seeds, a fixed thread
count, ``torch.use_deterministic_algorithms(True)``.

Recipe (:func:`train_reranker`):

1. a byte-level BPE tokenizer on the words of both worlds (easy and hard), with ``yes``/``no``;
2. a ``LlavaForConditionalGeneration`` (:mod:`omniretrieve.demo.reranker_build`) whose vision
   tower is the shipped demo CLIP's (kept frozen: it already sees colors, shapes and places) and
   whose small Llama text model and projector start from random weights;
3. a *listwise* loss: each training query gets a list of candidates, the right documents
   (images, captions, sometimes both as one combined document) among the documents a bi-encoder
   confuses with them: in the hard world, the 7 other scenes of the query's bag (colors swapped,
   sides swapped, the other layout) and scenes sharing one object; in the easy world, the same
   object elsewhere (grade 1) and objects sharing a color or a shape. The loss is the cross-entropy
   between the softmax of the list's scores and the graded target distribution
   (``2^grade - 1``, ListNet); a curriculum: the first ``easy_first_steps`` steps draw easy lists
   only (one-object scenes: colour, shape, position), then ``hard_fraction`` of the lists are hard
   (measured: the same steps without it leave the reranker alone at easy nDCG@10 ~0.50 instead
   of ~0.82, ``benchmarks/rerank.py``); mixed lists may hold a distractor text naming the query's
   words;
4. only training scenes: the easy world's training scenes (the demo CLIP's split) and the hard
   world's training bags, less the reranker's validation scenes and bags
   (:func:`omniretrieve.demo.world.split_reranker_scenes`,
   :func:`omniretrieve.demo.hard_world.split_reranker_bags`); held-out (test) scenes and bags
   never appear, and validation ones do not either;
5. the fusion weight (:func:`~omniretrieve.demo.rerank_eval.validate_fusion`): after training, the
   first-stage weight is chosen on the validation splits only, by the fixed rule
   :data:`~omniretrieve.demo.rerank_eval.WEIGHT_RULE`, and saved as ``"first_stage_weight"`` in
   ``omniretrieve_reranker.json`` (with the validation figures): ``load_reranker("demo")`` uses it;
6. the recipe itself (:data:`RECIPES`, ``--recipe NAME``) was chosen among a few candidates on the
   validation splits only (:data:`RECIPE_RULE`); ``--add-selection`` records the comparison in
   the reranker's metadata and card.

Its measured effect is in ``benchmarks/results/rerank.json`` (``benchmarks/rerank.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omniretrieve.demo import hard_world as hw
from omniretrieve.demo import world as ew
from omniretrieve.demo.reranker_build import build_reranker
from omniretrieve.demo.reranker_card import RERANKER_META_FILE, record_selection, reranker_card
from omniretrieve.demo.train import warmup_cosine_adamw
from omniretrieve.errors import InvalidInputError, require

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

logger = logging.getLogger(__name__)

Candidate = tuple[Any, int]
"""A candidate document as the ``CrossEncoder`` reads it, and its grade."""


@dataclass(frozen=True)
class RerankerTrainConfig:
    """Settings of one training run; the defaults reproduce the shipped reranker.

    Attributes:
        seed: Seed of weights, data and order.
        steps: Optimizer steps.
        queries_per_step: Queries (lists) per step.
        list_size: Candidates per list.
        lr: AdamW learning rate (cosine decay to 10% after a short warm-up).
        renders: Pre-rendered pictures per training scene.
        hard_fraction: Share of the lists that come from the hard (two-object) world.
        combined_fraction: Share of mixed-list documents shown as one combined (text + image) item.
        hidden_size: Width of the Llama text model.
        num_layers: Layers of the Llama text model.
        num_heads: Attention heads of the Llama text model.
        threads: Torch CPU threads.
        init_range: Standard deviation of the text model's and projector's initial weights.
        vision_layers: The vision tower's layers whose tokens, concatenated, reach the projector.
        vision_strategy: ``"full"`` keeps the vision tower's class token among the image tokens
            (the summary the demo CLIP was trained on), ``"default"`` drops it.
        trained_vision_layers: How many of the vision tower's last layers are trained (the rest,
            and its embeddings, stay frozen).
        distractor_fraction: Chance that a mixed list holds a distractor text (a wrong document
            naming the query's words).
        easy_first_steps: A curriculum: the first this many steps draw easy (one-object) lists
            only; ``hard_fraction`` applies after them.
        hard_other_negatives: Places a hard list keeps for negatives outside the query's bag
            (up to two scenes sharing one object, a distractor text, unrelated scenes); the
            other places go to the bag's confusers (colours swapped, sides swapped, the other
            layout), all 7 of them when the list has room.
    """

    seed: int = 0
    steps: int = 4500
    queries_per_step: int = 8
    list_size: int = 10
    lr: float = 5e-3
    renders: int = 4
    hard_fraction: float = 0.8
    combined_fraction: float = 0.1
    hidden_size: int = 64
    num_layers: int = 4
    num_heads: int = 4
    threads: int = 1
    init_range: float = 0.1
    vision_layers: tuple[int, ...] = (-1,)
    vision_strategy: str = "default"
    trained_vision_layers: int = 0
    distractor_fraction: float = 0.5
    easy_first_steps: int = 1500
    hard_other_negatives: int = 1

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "queries_per_step",
            "renders",
            "hidden_size",
            "num_layers",
            "num_heads",
            "threads",
            "hard_other_negatives",
        ):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"RerankerTrainConfig.{name}", f"{getattr(self, name)} is below 1")
        if self.list_size < 8:
            raise InvalidInputError("RerankerTrainConfig.list_size", f"{self.list_size} is below 8")
        if self.vision_strategy not in ("full", "default"):
            raise InvalidInputError(
                "RerankerTrainConfig.vision_strategy", f"{self.vision_strategy!r} is not 'full' or 'default'"
            )
        for name in ("hard_fraction", "combined_fraction", "distractor_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInputError(
                    f"RerankerTrainConfig.{name}", f"{getattr(self, name)} is outside [0, 1]"
                )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InvalidInputError("RerankerTrainConfig.lr", f"{self.lr} must be a finite number > 0")


RECIPES: dict[str, dict[str, Any]] = {
    "last-layer": {
        "vision_layers": (-1,),
        "trained_vision_layers": 0,
        "steps": 4500,
        "hard_fraction": 0.6,
        "hard_other_negatives": 4,
    },
    "penultimate-layer": {
        "vision_layers": (-2,),
        "trained_vision_layers": 0,
        "steps": 4500,
        "hard_fraction": 0.6,
        "hard_other_negatives": 4,
    },
    "tuned-last-layer": {
        "vision_layers": (-1,),
        "trained_vision_layers": 1,
        "steps": 4500,
        "hard_fraction": 0.6,
        "hard_other_negatives": 4,
    },
    "binding-lists": {
        "vision_layers": (-1,),
        "trained_vision_layers": 0,
        "steps": 4500,
        "hard_fraction": 0.8,
        "hard_other_negatives": 1,
    },
    "binding-lists-balanced": {
        "vision_layers": (-1,),
        "trained_vision_layers": 0,
        "steps": 5000,
        "hard_fraction": 0.6,
        "hard_other_negatives": 1,
    },
}
"""The candidate recipes the shipped one was chosen from, by :data:`RECIPE_RULE` on validation
only (``--recipe NAME`` trains one; ``--add-selection`` records the comparison in the card). Each
sets these fields of :class:`RerankerTrainConfig`; the others keep their defaults.

* ``last-layer``: the demo CLIP's last-layer patch tokens, vision tower frozen;
* ``penultimate-layer``: the patch tokens after its first layer (as LLaVA reads CLIP's
  penultimate layer: the last layer's patch outputs are never trained by CLIP, which pools its
  class token only);
* ``tuned-last-layer``: the last-layer tokens, that layer trained with the cross-encoder, so it
  can bind colour and shape per place;
* ``binding-lists``: the vision tokens of the best of the three above on validation
  (``last-layer``), more hard lists (80% after the curriculum), and every hard list holding all 7
  confusers of its bag (colours swapped, sides swapped, the other layout): the most binding
  signal per step;
* ``binding-lists-balanced`` (added after the first four were compared, see the card): the
  binding lists of ``binding-lists`` at ``last-layer``'s share of hard lists (60%), with 5,000
  steps, so the easy lists keep their share of training.

Compared again by the same rule when fusion moved from the sigmoid to the logits (weights chosen
anew by ``--revalidate``): ``binding-lists`` won."""

SHIPPED_RECIPE = "binding-lists"
"""The recipe :class:`RerankerTrainConfig`'s defaults reproduce (chosen by :data:`RECIPE_RULE`)."""

RECIPE_RULE = (
    "the candidate with the highest mean validation nDCG@10 over the easy and the hard validation "
    "split, each at its own first-stage weight chosen on validation (WEIGHT_RULE); ties go to the "
    "earlier candidate; the test splits are measured once, for the chosen recipe only"
)
"""How the shipped recipe was chosen among :data:`RECIPES`, in words."""


def recipe_config(name: str, **overrides: Any) -> RerankerTrainConfig:
    """The training settings of the candidate recipe ``name`` (:data:`RECIPES`), with ``overrides``.

    Raises:
        InvalidInputError: ``name`` is not a recipe.
    """
    if name not in RECIPES:
        raise InvalidInputError("recipe", f"{name!r} is not one of {sorted(RECIPES)}")
    return replace(RerankerTrainConfig(), **(RECIPES[name] | overrides))


def recipe_name(config: RerankerTrainConfig) -> str | None:
    """The name of the recipe (:data:`RECIPES`) ``config`` is, or None."""
    return next((name for name in RECIPES if recipe_config(name) == config), None)


def tokenizer_texts() -> list[str]:
    """The texts the reranker's tokenizer is trained on: the demo CLIP's plus the hard world's words."""
    from omniretrieve.demo.train import tokenizer_corpus

    texts = tokenizer_corpus()
    for bag in hw.all_bags():
        for scene in hw.bag_scenes(bag):
            texts += [scene.caption(t) for t in range(len(hw.CAPTION_TEMPLATES))]
            texts += [scene.query_text(t) for t in range(len(hw.QUERY_TEMPLATES))]
    texts += [t.format(a="red circle", b="blue square") for t in hw.DISTRACTOR_TEMPLATES]
    return texts


class _Data:
    """Training scenes, their renders and texts, and the candidate lists drawn from them."""

    def __init__(self, config: RerankerTrainConfig) -> None:
        self.config = config
        self.easy_scenes = list(ew.split_reranker_scenes()[0])
        self.bags = list(hw.split_reranker_bags()[0])
        self.renders: dict[Any, list[PILImage]] = {}
        scenes: list[Any] = self.easy_scenes + [s for bag in self.bags for s in hw.bag_scenes(bag)]
        for i, scene in enumerate(scenes):
            self.renders[scene] = [
                scene.render(64, seed=int(np.random.default_rng([config.seed, 11, i, r]).integers(2**31)))
                for r in range(config.renders)
            ]
        self.rng = np.random.default_rng([config.seed, 12])

    # -- documents ---------------------------------------------------------------------------

    def _image(self, scene: Any, avoid: Any = None) -> PILImage:
        choices = [im for im in self.renders[scene] if im is not avoid] or self.renders[scene]
        return choices[int(self.rng.integers(len(choices)))]

    def _caption(self, scene: Any) -> dict[str, str]:
        n = len(hw.CAPTION_TEMPLATES) if isinstance(scene, hw.PairScene) else len(ew.CAPTION_TEMPLATES)
        return {"text": scene.caption(int(self.rng.integers(n)))}

    def _doc(self, scene: Any, target: str, avoid: Any = None) -> Any:
        if target == "image":
            return self._image(scene, avoid)
        roll = self.rng.random()
        if roll < self.config.combined_fraction:
            return {"text": self._caption(scene)["text"], "image": self._image(scene, avoid)}
        return (
            self._image(scene, avoid)
            if roll < 0.5 + self.config.combined_fraction / 2
            else self._caption(scene)
        )

    # -- lists -------------------------------------------------------------------------------

    def hard_list(self) -> tuple[Any, list[Candidate]]:
        """A text query about a two-object scene; its right documents among its bag and neighbours."""
        bag = self.bags[int(self.rng.integers(len(self.bags)))]
        mates = list(hw.bag_scenes(bag))
        scene = mates.pop(int(self.rng.integers(len(mates))))
        query = {"text": scene.query_text(int(self.rng.integers(len(hw.QUERY_TEMPLATES))))}
        target = "image" if self.rng.random() < 0.5 else "mixed"
        size = self.config.list_size
        positives = [(self._doc(scene, target), 2)]
        if target == "mixed" and self.rng.random() < 0.5:
            first = positives[0][0]
            positives.append((self._image(scene) if isinstance(first, dict) else self._caption(scene), 2))
        others = self.config.hard_other_negatives
        n_mates = max(0, min(len(mates), size - len(positives) - others))
        picked = [mates[i] for i in self.rng.permutation(len(mates))[:n_mates]]
        negatives = [(self._doc(s, target), 0) for s in picked]
        n_neighbours = min(2, size - len(positives) - len(negatives))
        negatives += [(self._doc(self._neighbour(scene), target), 0) for _ in range(n_neighbours)]
        room = len(positives) + len(negatives) < size
        if target == "mixed" and room and self.rng.random() < self.config.distractor_fraction:
            template = hw.DISTRACTOR_TEMPLATES[int(self.rng.integers(len(hw.DISTRACTOR_TEMPLATES)))]
            negatives.append(({"text": template.format(a=scene.first.name, b=scene.second.name)}, 0))
        while len(positives) + len(negatives) < size:
            negatives.append((self._doc(self._unrelated(), target), 0))
        return query, positives + negatives

    def _unrelated(self) -> Any:
        """Any training scene, of either world (mostly unrelated to the query)."""
        if self.rng.random() < 0.5:
            return self.easy_scenes[int(self.rng.integers(len(self.easy_scenes)))]
        return self._image_scene(self.bags[int(self.rng.integers(len(self.bags)))])

    def _image_scene(self, bag: hw.Bag) -> hw.PairScene:
        scenes = hw.bag_scenes(bag)
        return scenes[int(self.rng.integers(len(scenes)))]

    def _neighbour(self, scene: hw.PairScene) -> hw.PairScene:
        """A training scene (of another bag) sharing one object with ``scene``."""
        while True:
            bag = self.bags[int(self.rng.integers(len(self.bags)))]
            if bag == scene.bag:
                continue
            options = [s for s in hw.bag_scenes(bag) if {s.first, s.second} & {scene.first, scene.second}]
            if options:
                return options[int(self.rng.integers(len(options)))]

    def easy_list(self) -> tuple[Any, list[Candidate]]:
        """A query about a one-object scene (text -> mixed, text -> image or image -> image)."""
        scene = self.easy_scenes[int(self.rng.integers(len(self.easy_scenes)))]
        kind = int(self.rng.integers(3))
        target = "mixed" if kind == 0 else "image"
        query_image = None
        if kind == 2:
            query_image = self._image(scene)
            query: Any = query_image
        else:
            query = {"text": scene.query_text(int(self.rng.integers(len(ew.QUERY_TEMPLATES))))}
        siblings = [
            s for s in self.easy_scenes if (s.color, s.shape) == (scene.color, scene.shape) and s != scene
        ]
        near = [
            s for s in self.easy_scenes if s != scene and (s.color == scene.color) != (s.shape == scene.shape)
        ]
        others = [s for s in self.easy_scenes if s.color != scene.color and s.shape != scene.shape]
        candidates: list[Candidate] = [(self._doc(scene, target, query_image), 2)]
        if target == "mixed":
            candidates.append((self._doc(scene, target, query_image), 2))
        for s in [siblings[i] for i in self.rng.permutation(len(siblings))[:3]]:
            candidates.append((self._doc(s, target), 1))
        for _ in range(2):
            s = near[int(self.rng.integers(len(near)))]
            candidates.append((self._doc(s, target), 0))
        if target == "mixed" and self.rng.random() < self.config.distractor_fraction:
            template = ew.DISTRACTOR_TEMPLATES[int(self.rng.integers(len(ew.DISTRACTOR_TEMPLATES)))]
            text = template.format(color=scene.color, shape=scene.shape, position=scene.position)
            candidates.append(({"text": text}, 0))
        while len(candidates) < self.config.list_size:
            s = others[int(self.rng.integers(len(others)))] if self.rng.random() < 0.5 else self._unrelated()
            candidates.append((self._doc(s, target), 0))
        return query, candidates

    def batch(self, step: int) -> list[tuple[Any, list[Candidate]]]:
        hard = self.config.hard_fraction if step >= self.config.easy_first_steps else 0.0
        return [
            self.hard_list() if self.rng.random() < hard else self.easy_list()
            for _ in range(self.config.queries_per_step)
        ]


def listwise_loss(scores: Any, grades: Any) -> Any:
    """ListNet: cross-entropy between ``softmax(scores)`` and the targets ``2^grade - 1`` (normalised), per list.

    Args:
        scores: ``(lists, size)`` scores.
        grades: ``(lists, size)`` grades (at least one positive per list).
    """
    torch = require("torch", extra=None, purpose="training the demo reranker")
    gains = torch.pow(2.0, grades.float()) - 1.0
    targets = gains / gains.sum(dim=1, keepdim=True).clamp(min=1e-12)
    return -(targets * torch.log_softmax(scores, dim=1)).sum(dim=1).mean()


def _fit(cross_encoder: Any, config: RerankerTrainConfig) -> dict[str, Any]:
    torch = require("torch", extra=None, purpose="training the demo reranker")
    started, started_cpu = time.perf_counter(), time.process_time()
    data = _Data(config)
    params = [p for p in cross_encoder.parameters() if p.requires_grad]
    optimizer, scheduler = warmup_cosine_adamw(params, config.lr, config.steps)
    cross_encoder.train()
    losses: list[float] = []
    for step in range(config.steps):
        lists = data.batch(step)
        pairs = [(query, doc) for query, candidates in lists for doc, _ in candidates]
        grades = torch.tensor([[g for _, g in candidates] for _, candidates in lists])
        features = cross_encoder.preprocess(pairs)
        scores = cross_encoder(features)["scores"].reshape(len(lists), -1)
        loss = listwise_loss(scores, grades)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if step % 25 == 0:
            logger.info(
                "step %d loss %.4f (%.0f s)", step, np.mean(losses[-25:]), time.perf_counter() - started
            )
    cross_encoder.eval()
    return {
        "train_seconds": round(time.perf_counter() - started, 2),
        "train_cpu_seconds": round(time.process_time() - started_cpu, 2),
        "final_listwise_loss": round(float(np.mean(losses[-50:])), 4),
        "easy_train_scenes": len(data.easy_scenes),
        "hard_train_bags": len(data.bags),
        "easy_validation_scenes": len(ew.split_reranker_scenes()[1]),
        "hard_validation_bags": len(hw.split_reranker_bags()[1]),
        "pictures": sum(len(v) for v in data.renders.values()),
    }


def validation_pairs(reranker: Any) -> dict[str, Any]:
    """:func:`~omniretrieve.demo.rerank_eval.pair_accuracy` on the validation bags (a diagnostic of binding)."""
    from omniretrieve.demo.rerank_eval import VALIDATION_SEED, pair_accuracy

    return pair_accuracy(reranker, render_seed=VALIDATION_SEED, bags=hw.split_reranker_bags()[1])


def choose_fusion_weight(out_dir: Path, threads: int) -> dict[str, Any]:
    """The fusion weight chosen on the validation splits for the reranker saved at ``out_dir``."""
    from omniretrieve.demo.rerank_eval import validate_fusion
    from omniretrieve.rerank import CrossEncoderReranker

    started, started_cpu = time.perf_counter(), time.process_time()
    reranker = CrossEncoderReranker(out_dir, first_stage_weight=0.0, device="cpu")
    with tempfile.TemporaryDirectory() as scratch:
        validation = validate_fusion(reranker, Path(scratch))
    validation["pairs"] = validation_pairs(reranker)
    validation["seconds"] = round(time.perf_counter() - started, 2)
    validation["cpu_seconds"] = round(time.process_time() - started_cpu, 2)
    validation["torch_threads"] = threads
    logger.info("fusion weight chosen on validation: %s", validation["first_stage_weight"])
    return validation


def train_reranker(
    out: str | Path, config: RerankerTrainConfig | None = None, *, choose_weight: bool = True
) -> dict[str, Any]:
    """Build, train and save a demo reranker to ``out`` (with its card and metadata).

    The global torch state (RNG, thread count, deterministic-algorithms flag) is restored after.

    Args:
        out: The directory to save to.
        config: The training settings (default: the shipped reranker's).
        choose_weight: Choose the first-stage fusion weight on the validation splits after
            training (:func:`~omniretrieve.demo.rerank_eval.validate_fusion`, tens of seconds) and
            record it as ``"first_stage_weight"``; without it none is recorded (the reranker then
            ranks alone by default).

    Returns:
        The metadata written to ``out/omniretrieve_reranker.json``.
    """
    torch = require("torch", extra=None, purpose="training the demo reranker")
    config = config or RerankerTrainConfig()
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    out_dir = Path(out)
    validation: dict[str, Any] | None = None
    try:
        with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory() as scratch:
            torch.manual_seed(config.seed)
            cross_encoder = build_reranker(config, Path(scratch) / "backbone")
            stats = _fit(cross_encoder, config)
            logger.info("trained: %s", stats)
            out_dir.mkdir(parents=True, exist_ok=True)
            cross_encoder.save(str(out_dir))
            if choose_weight:
                validation = choose_fusion_weight(out_dir, config.threads)
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)
    for weights in out_dir.rglob("*.safetensors"):
        weights.chmod(0o644)  # safetensors writes it owner-only
    from omniretrieve.demo.model_card import versions
    from omniretrieve.demo.reranker_build import parameter_count

    stats["parameters"] = parameter_count(cross_encoder)
    stats["trained_parameters"] = sum(p.numel() for p in cross_encoder.parameters() if p.requires_grad)
    command = "python -m omniretrieve.demo.train_reranker --out DIR"
    recipe = next(
        (
            name
            for name in RECIPES
            if replace(config, seed=0, steps=1, threads=1) == recipe_config(name, seed=0, steps=1, threads=1)
        ),
        None,
    )
    if recipe is not None and recipe != SHIPPED_RECIPE:
        command += f" --recipe {recipe}"
    defaults = recipe_config(recipe) if recipe is not None else RerankerTrainConfig()
    for flag, name in (("--seed", "seed"), ("--steps", "steps"), ("--threads", "threads")):
        if getattr(config, name) != getattr(defaults, name):
            command += f" {flag} {getattr(config, name)}"
    meta = {
        "description": "omniretrieve demo reranker: a tiny LLaVA cross-encoder for the colored-shapes worlds",
        "training_command": command,
        "recipe": recipe_name(config),
        "versions": versions(),
        "config": asdict(config),
        "stats": stats,
    }
    if validation is not None:
        meta["first_stage_weight"] = validation["first_stage_weight"]
        meta["validation"] = validation
    (out_dir / RERANKER_META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    (out_dir / "README.md").write_text(reranker_card(meta), encoding="utf-8")
    logger.info("saved demo reranker to %s: %s", out_dir, stats)
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: ``python -m omniretrieve.demo.train_reranker --out DIR``."""
    parser = argparse.ArgumentParser(
        description="Train the omniretrieve demo reranker (a tiny LLaVA cross-encoder)."
    )
    parser.add_argument("--out", required=True, help="directory to save the reranker to")
    parser.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default=SHIPPED_RECIPE,
        help=f"a candidate recipe (default {SHIPPED_RECIPE!r}: the shipped one)",
    )
    parser.add_argument("--seed", type=int, help="seed of weights and data (default 0)")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: the recipe's)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--add-selection",
        nargs="+",
        metavar="CANDIDATE",
        help="do not train: record the comparison of candidate rerankers (trained with --recipe) "
        "in the reranker at --out",
    )
    parser.add_argument(
        "--revalidate",
        action="store_true",
        help="do not train: choose the fusion weight again, on validation, for the reranker at --out",
    )
    parser.add_argument(
        "--add-benchmark",
        metavar="REPORT",
        help="do not train: record a benchmarks/rerank.py report in the reranker at --out",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.revalidate or args.add_benchmark:
        from omniretrieve.demo.reranker_card import add_rerank_benchmark, revalidate

        try:
            if args.revalidate:
                print(json.dumps(revalidate(args.out)["chosen"], indent=1))
            else:
                add_rerank_benchmark(args.out, args.add_benchmark)
        except InvalidInputError as exc:
            parser.error(str(exc))
        return 0
    given = {k: getattr(args, k) for k in ("seed", "steps", "threads") if getattr(args, k) is not None}
    try:
        if args.add_selection:
            record_selection(args.out, args.add_selection)
            return 0
        config = recipe_config(args.recipe, **given)
    except InvalidInputError as exc:
        parser.error(str(exc))
    meta = train_reranker(args.out, config)
    summary = {"stats": meta["stats"], "first_stage_weight": meta.get("first_stage_weight")}
    print(json.dumps(summary | {"validation": meta.get("validation", {}).get("chosen")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
