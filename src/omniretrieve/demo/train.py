"""Train the demo model: a tiny CLIP that knows colored shapes, with a documented modality gap.

Run ``python -m omniretrieve.demo.train --out DIR`` to reproduce the shipped model
(``src/omniretrieve/demo/model/``). Training is deterministic: fixed seeds, one CPU thread,
``torch.use_deterministic_algorithms(True)``; it takes about 50 s of CPU time on one core.

What it does:

1. trains a byte-level BPE tokenizer on the world's vocabulary (captions, queries, distractors);
2. builds a CLIP (hidden 64, 2 layers per tower, 32 px images, patch 8, projection 32) and trains
   it on the *training* scenes only (held-out scenes never appear, neither as images nor as
   captions) with a graded, multi-positive contrastive loss (:func:`graded_contrastive_loss`):
   soft targets follow the world's judgments (same scene 1, same color and shape elsewhere
   :attr:`TrainConfig.sibling_weight`, a little for a shared position, else 0), text -> image
   and image -> text as in CLIP, plus one softmax over all texts and images of the batch
   (text -> text, image -> image and text -> image on one scale, as plain-cosine search over a
   mixed corpus needs). CLIP's own loss knows only the exact scene and leaves the order of the
   related scenes to chance;
3. adds the modality-gap offset (see :data:`omniretrieve.demo.GAP_OFFSET_SCALE`): a constant
   vector added to every image embedding, written into the vision tower's final layer-norm bias,
   so it survives ``save_pretrained`` and ``SentenceTransformer`` loading; ``--gap-offset 0``
   gives the gap-free twin;
4. saves model and processor with ``save_pretrained``, plus ``omniretrieve_demo.json`` holding
   the offset and the measured metrics (held-out recall@1, the gap cosines, nDCG@10 per query
   group by plain cosine), and the model card ``README.md``.

``python -m omniretrieve.demo.train --out DIR --add-benchmark benchmarks/results/mixed_search.json``
records the numbers of ``benchmarks/mixed_search.py`` (search through omniretrieve with each
calibration) in the metadata and card of the model at ``DIR`` without training.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omniretrieve.demo.loading import GAP_OFFSET_SCALE, META_FILE
from omniretrieve.demo.model_card import add_benchmark_results, model_card, versions
from omniretrieve.demo.model_eval import _pixel_values, _torch, _training_texts, evaluate
from omniretrieve.demo.world import (
    CAPTION_TEMPLATES,
    COLORS,
    DEMO_HELDOUT_FRACTION,
    DEMO_SPLIT_SEED,
    DISTRACTOR_TEMPLATES,
    POSITIONS,
    QUERY_TEMPLATES,
    SHAPES,
    Scene,
    all_scenes,
    split_scenes,
)
from omniretrieve.errors import InvalidInputError, require

if TYPE_CHECKING:
    import torch
    from transformers import CLIPModel, CLIPProcessor, PreTrainedTokenizerFast


logger = logging.getLogger(__name__)

IMAGE_SIZE = 32
"""The side in pixels of the images the demo model sees (renders are resized to it)."""

DEFAULT_GAP_OFFSET = GAP_OFFSET_SCALE
"""The default gap offset, in multiples of the mean embedding norm (see ``GAP_OFFSET_SCALE``)."""

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>")
"""Special tokens, ids 0-3. The eos id must not be 2: CLIP's text pooling treats 2 as a legacy id."""

EXTRA_WORDS = (
    "yes no image picture photo text document query shape color colour position left right top "
    "bottom middle centre center small large big a an the of in on at with and or is are this that "
    "show find me what where which dog cat car house tree sky sea beach city person book music"
)
"""Common words added to the tokenizer's training text, so everyday queries tokenize sensibly."""


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run; the defaults reproduce the shipped model.

    Attributes:
        seed: Seed of weights, data order and renders.
        steps: Optimizer steps.
        batch_size: Distinct scenes per step (each seen in :attr:`views` texts and images).
        lr: AdamW learning rate (cosine decay to 10% with a short warm-up).
        renders_per_scene: Pre-rendered training images per training scene.
        gap_offset: Offset added to every image embedding, in multiples of the mean embedding norm
            (0 for a gap-free model).
        split_seed: Seed of the train/held-out split of scenes.
        heldout_fraction: Fraction of scenes held out from training.
        vocab_size: Maximum tokenizer vocabulary size.
        threads: Torch CPU threads (1 makes the weights reproducible across machines).
        norm_weight: Weight of a penalty on the variance of the log norms of the raw image
            embeddings. Equal norms make the gap offset leave the order of images unchanged.
        views: Texts (random templates) and images (random renders) per scene in a batch; with
            2 or more, texts and images of one scene are positives of each other in the mixed
            softmax too.
        sibling_weight: Soft-target weight of a *sibling* (same color and shape, another
            position) relative to the same scene (1); other scenes get 0.
        position_weight: Soft-target weight of a scene at the same position sharing the color
            or the shape (not relevant to a query; a little weight makes the towers learn
            position sooner). At most ``sibling_weight``.
        mixed_weight: Weight of the mixed softmax (every text and image against every other
            text and image of the batch) next to the two cross-modal terms.
    """

    seed: int = 0
    steps: int = 1200
    batch_size: int = 48
    lr: float = 1e-3
    renders_per_scene: int = 12
    gap_offset: float = DEFAULT_GAP_OFFSET
    split_seed: int = DEMO_SPLIT_SEED
    heldout_fraction: float = DEMO_HELDOUT_FRACTION
    vocab_size: int = 1000
    threads: int = 1
    norm_weight: float = 20.0
    views: int = 2
    sibling_weight: float = 0.2
    mixed_weight: float = 1.0
    position_weight: float = 0.02

    def __post_init__(self) -> None:
        if self.steps < 1 or self.renders_per_scene < 1 or self.threads < 1:
            raise InvalidInputError("TrainConfig", "steps, renders_per_scene and threads must be >= 1")
        if self.batch_size < 2:
            raise InvalidInputError("TrainConfig.batch_size", f"{self.batch_size} is below 2")
        if self.views < 1:
            raise InvalidInputError("TrainConfig.views", f"{self.views} is below 1")
        if not 0.0 <= self.sibling_weight < 1.0:
            raise InvalidInputError(
                "TrainConfig.sibling_weight",
                f"{self.sibling_weight} is outside [0, 1): a sibling must weigh less than the exact scene",
            )
        if not 0.0 <= self.position_weight <= self.sibling_weight:
            raise InvalidInputError(
                "TrainConfig.position_weight",
                f"{self.position_weight} is outside [0, sibling_weight={self.sibling_weight}]",
            )
        for name in ("lr", "gap_offset", "norm_weight", "sibling_weight", "mixed_weight"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise InvalidInputError(
                    f"TrainConfig.{name}", f"{value} must be a finite number >= 0 (lr > 0)"
                )


def tokenizer_corpus() -> list[str]:
    """The texts the tokenizer is trained on.

    Every caption and query of every scene, the distractor templates filled with every color,
    shape and position, and :data:`EXTRA_WORDS`.
    """
    texts: list[str] = []
    for scene in all_scenes():
        texts += [scene.caption(t) for t in range(len(CAPTION_TEMPLATES))]
        texts += [scene.query_text(t) for t in range(len(QUERY_TEMPLATES))]
    for template in DISTRACTOR_TEMPLATES:
        for i in range(max(len(COLORS), len(SHAPES), len(POSITIONS))):
            texts.append(
                template.format(
                    color=COLORS[i % len(COLORS)],
                    shape=SHAPES[i % len(SHAPES)],
                    position=POSITIONS[i % len(POSITIONS)],
                )
            )
    texts.append(EXTRA_WORDS)
    return texts


def build_tokenizer(vocab_size: int = 1000, texts: Sequence[str] | None = None) -> PreTrainedTokenizerFast:
    """Train the byte-level BPE tokenizer (lowercasing, bos/eos added) on ``texts``.

    ``texts`` defaults to :func:`tokenizer_corpus` (the demo model's tokenizer).
    """
    tokenizers = require("tokenizers", extra=None, purpose="Training the demo tokenizer")
    transformers = require("transformers", extra=None, purpose="Training the demo tokenizer")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="<unk>"))
    tok.normalizer = tokenizers.normalizers.Lowercase()
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts) if texts is not None else tokenizer_corpus(), trainer=trainer)
    bos, eos = tok.token_to_id("<bos>"), tok.token_to_id("<eos>")
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="<bos> $A <eos>",
        pair="<bos> $A <eos> $B:1 <eos>:1",
        special_tokens=[("<bos>", bos), ("<eos>", eos)],
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        model_max_length=64,
    )
    return fast


def build_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> CLIPModel:
    """A freshly initialised tiny CLIP whose text tower matches ``tokenizer``."""
    torch = _torch()
    transformers = require("transformers", extra=None, purpose="Building the demo model")
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 64,
        "projection_dim": 32,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        # Pooling reads the first eos: the CLIP default (49407) would read token 0 of every text.
        "eos_token_id": tokenizer.eos_token_id,
    }
    vision_config = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": IMAGE_SIZE,
        "patch_size": 8,
        "num_channels": 3,
        "projection_dim": 32,
    }
    config = transformers.CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=32)
    torch.manual_seed(seed)
    return transformers.CLIPModel(config)


def build_processor(tokenizer: PreTrainedTokenizerFast) -> CLIPProcessor:
    """The processor: ``tokenizer`` plus a CLIP image processor resizing to :data:`IMAGE_SIZE`."""
    transformers = require("transformers", extra=None, purpose="Building the demo model")
    image_processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return transformers.CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def graded_targets(
    attrs_a: torch.Tensor, attrs_b: torch.Tensor, sibling_weight: float, position_weight: float = 0.0
) -> torch.Tensor:
    """Target weights between two lists of scenes given as (color, shape, position) index rows.

    1 for the same scene; ``sibling_weight`` for a *sibling* (the same color and shape at another
    position: the world's grade 1, where the same scene is grade 2); ``position_weight`` for a
    scene at the same position that shares its color or its shape (not relevant to a query, but
    a small weight gives position a gradient of its own, so the towers learn it sooner); else 0.
    """
    a, b = attrs_a[:, None, :], attrs_b[None, :, :]
    same_color, same_shape, same_position = (a[..., k] == b[..., k] for k in range(3))
    same_cs = same_color & same_shape
    exact = same_cs & same_position
    sibling = same_cs & ~same_position
    near = same_position & (same_color ^ same_shape)
    return exact.float() + sibling_weight * sibling.float() + position_weight * near.float()


def _soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    torch = _torch()
    weights = targets / targets.sum(dim=1, keepdim=True).clamp(min=1e-12)
    return -(weights * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def graded_contrastive_loss(
    text_emb: torch.Tensor,
    image_emb: torch.Tensor,
    attrs: torch.Tensor,
    logit_scale: torch.Tensor,
    sibling_weight: float = 0.2,
    mixed_weight: float = 1.0,
    position_weight: float = 0.0,
) -> torch.Tensor:
    """A multi-positive contrastive loss whose soft targets follow the world's graded relevance.

    ``text_emb[k]`` and ``image_emb[k]`` show the scene ``attrs[k]`` (color, shape, position
    indices); a scene may occur several times. The targets come from :func:`graded_targets`.

    * Cross-modal (CLIP's two directions, soft targets): each text against all images and each
      image against all texts.
    * Mixed (weight ``mixed_weight``): each text and each image against every *other* text and
      image of the batch in one softmax, so text-text, image-image and text-image similarities
      are on one scale, as a search over a mixed corpus by plain cosine needs.
    """
    torch = _torch()
    functional = torch.nn.functional
    t = functional.normalize(text_emb, dim=-1)
    i = functional.normalize(image_emb, dim=-1)
    targets = graded_targets(attrs, attrs, sibling_weight, position_weight)
    logits = logit_scale * (t @ i.T)
    loss = (_soft_cross_entropy(logits, targets) + _soft_cross_entropy(logits.T, targets.T)) / 2
    if mixed_weight > 0:
        both = torch.cat([t, i])
        both_attrs = torch.cat([attrs, attrs])
        self_mask = torch.eye(len(both), dtype=torch.bool)
        mixed_logits = (logit_scale * (both @ both.T)).masked_fill(self_mask, -1e4)
        mixed_targets = graded_targets(both_attrs, both_attrs, sibling_weight, position_weight).masked_fill(
            self_mask, 0.0
        )
        loss = loss + mixed_weight * _soft_cross_entropy(mixed_logits, mixed_targets)
    return loss


def warmup_cosine_adamw(params: Any, lr: float, steps: int) -> tuple[Any, Any]:
    """The demo models' optimizer: AdamW (weight decay 0.01), and its schedule over ``steps``.

    A linear warm-up over the first 5% of the steps, then cosine decay to 10% of ``lr``. Shared by
    the demo CLIP (:func:`train_model`) and the demo reranker
    (:mod:`omniretrieve.demo.train_reranker`). Returns ``(optimizer, scheduler)``; call
    ``scheduler.step()`` after each ``optimizer.step()``.
    """
    torch = _torch()
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


def train_model(config: TrainConfig) -> tuple[CLIPModel, CLIPProcessor, dict[str, Any]]:
    """Train a demo model (without the gap offset) on the training scenes.

    The global torch state (RNG, thread count, deterministic-algorithms flag) is restored after.

    Returns:
        The trained model (in eval mode), its processor, and training statistics.
    """
    torch = _torch()
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            return _train(config)
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)


def _train(config: TrainConfig) -> tuple[CLIPModel, CLIPProcessor, dict[str, Any]]:
    torch = _torch()
    started, started_cpu = time.perf_counter(), time.process_time()
    train_scenes, _ = split_scenes(config.split_seed, config.heldout_fraction)
    tokenizer = build_tokenizer(config.vocab_size)
    processor = build_processor(tokenizer)
    model = build_model(tokenizer, seed=config.seed)

    renders = [
        scene.render(64, seed=int(np.random.default_rng([config.seed, 7, i, r]).integers(2**31)))
        for i, scene in enumerate(train_scenes)
        for r in range(config.renders_per_scene)
    ]
    pixels = _pixel_values(processor, renders).reshape(
        len(train_scenes), config.renders_per_scene, 3, IMAGE_SIZE, IMAGE_SIZE
    )
    texts = [_training_texts(s) for s in train_scenes]
    n_texts = len(texts[0])
    enc = tokenizer([t for ts in texts for t in ts], padding=True, return_tensors="pt")
    ids = enc["input_ids"].reshape(len(train_scenes), n_texts, -1)
    mask = enc["attention_mask"].reshape(len(train_scenes), n_texts, -1)

    attrs = torch.tensor(
        [[COLORS.index(s.color), SHAPES.index(s.shape), POSITIONS.index(s.position)] for s in train_scenes]
    )

    batch = min(config.batch_size, len(train_scenes))
    views = config.views
    gen = torch.Generator().manual_seed(config.seed)
    optimizer, scheduler = warmup_cosine_adamw(model.parameters(), config.lr, config.steps)
    model.train()
    losses: list[float] = []
    for _ in range(config.steps):
        scene_idx = torch.randperm(len(train_scenes), generator=gen)[:batch]
        render_idx = torch.randint(config.renders_per_scene, (batch, views), generator=gen)
        text_idx = torch.randint(n_texts, (batch, views), generator=gen)
        rows = scene_idx[:, None].expand(batch, views)
        text_emb = model.get_text_features(
            input_ids=ids[rows, text_idx].reshape(batch * views, -1),
            attention_mask=mask[rows, text_idx].reshape(batch * views, -1),
        ).pooler_output
        image_emb = model.get_image_features(
            pixel_values=pixels[rows, render_idx].reshape(batch * views, 3, IMAGE_SIZE, IMAGE_SIZE)
        ).pooler_output
        scene_attrs = attrs[rows.reshape(-1)]
        loss = graded_contrastive_loss(
            text_emb,
            image_emb,
            scene_attrs,
            model.logit_scale.exp().clamp(max=100.0),
            sibling_weight=config.sibling_weight,
            mixed_weight=config.mixed_weight,
            position_weight=config.position_weight,
        )
        contrastive = loss
        if config.norm_weight > 0:
            # Equal raw image norms: the gap offset then keeps the order of images for a query.
            loss = loss + config.norm_weight * torch.log(image_emb.norm(dim=-1)).var()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(contrastive.detach()))
    model.eval()
    stats = {
        "train_seconds": round(time.perf_counter() - started, 2),
        "train_cpu_seconds": round(time.process_time() - started_cpu, 2),
        "final_graded_loss": round(float(np.mean(losses[-20:])), 4),
        "train_scenes": len(train_scenes),
        "train_images": len(renders),
        "vocab_size": len(tokenizer),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return model, processor, stats


def _embeddings(model: CLIPModel, processor: CLIPProcessor, scenes: Sequence[Scene]) -> Any:
    """Raw (unnormalised) text and image embeddings of captions, queries and renders of ``scenes``."""
    torch = _torch()
    texts = [t for scene in scenes for t in _training_texts(scene)]
    images = [scene.render(64, seed=10_000 + i) for i, scene in enumerate(scenes)]
    with torch.no_grad():
        enc = processor.tokenizer(texts, padding=True, return_tensors="pt")
        text_emb = model.get_text_features(**enc).pooler_output
        image_emb = model.get_image_features(pixel_values=_pixel_values(processor, images)).pooler_output
    return text_emb, image_emb


def add_gap_offset(
    model: CLIPModel,
    processor: CLIPProcessor,
    scale: float,
    seed: int = 0,
    scenes: Sequence[Scene] = (),
    null_dims: int = 4,
) -> dict[str, Any]:
    """Add a constant offset to every image embedding, reproducing the modality gap of real CLIPs.

    The offset ``c`` (in the 32-d embedding space) has norm ``scale`` x the mean embedding norm,
    measured over the raw text and image embeddings of ``scenes`` (the training scenes by
    default). Its direction is a seeded random vector projected onto the ``null_dims`` directions
    in which those embeddings vary least (the bottom right-singular vectors of the stacked
    embeddings): every embedding has a dot product of about zero with ``c``, so

    * text-text cosines do not change (texts are untouched);
    * a text and an image meet at cosine ``t.e / (|t| sqrt(|e|^2 + |c|^2))``: every text-image
      cosine shrinks by about ``1 / sqrt(1 + scale^2)``, so in a mixed corpus texts outrank images;
    * the order of images for one query (text or image) is almost unchanged.

    The offset is written into ``vision_model.post_layernorm.bias`` as ``pinv(W) @ c``, where
    ``W`` is ``visual_projection.weight``; since image embeddings are
    ``W @ post_layernorm(x)``, every image embedding moves by exactly ``W @ pinv(W) @ c = c``,
    and the offset survives ``save_pretrained`` and ``SentenceTransformer`` loading.

    Returns:
        A JSON-ready description: ``scale``, ``mean_embedding_norm``, ``norm``,
        ``embedding_offset`` (c) and ``post_layernorm_bias_offset`` (what was added to the bias).
        Subtract the latter from the bias to remove the gap (see
        :func:`omniretrieve.demo.remove_gap_offset`).
    """
    torch = _torch()
    if scale < 0 or not math.isfinite(scale):
        raise InvalidInputError("gap_offset", f"{scale} must be a finite number >= 0")
    if not scenes:
        scenes = split_scenes()[0]
    text_emb, image_emb = _embeddings(model, processor, scenes)
    stacked = torch.cat([text_emb, image_emb]).double()
    mean_norm = float(stacked.norm(dim=1).mean())
    _, _, vh = torch.linalg.svd(stacked, full_matrices=True)
    null_basis = vh[-null_dims:]  # rows: the directions of least variation
    rand = torch.from_numpy(np.random.default_rng([seed, 0x6A9]).standard_normal(vh.shape[1]))
    direction = null_basis.T @ (null_basis @ rand)
    offset = direction / direction.norm() * (scale * mean_norm)
    weight = model.visual_projection.weight.detach().double()
    bias_offset = (torch.linalg.pinv(weight) @ offset).float()
    with torch.no_grad():
        model.vision_model.post_layernorm.bias += bias_offset
    return {
        "scale": scale,
        "mean_embedding_norm": mean_norm,
        "norm": float(offset.norm()),
        "embedding_offset": [float(x) for x in offset],
        "post_layernorm_bias_offset": [float(x) for x in bias_offset],
    }


def train(out: str | Path, config: TrainConfig | None = None) -> dict[str, Any]:
    """Train, add the gap offset, evaluate and save a demo model to ``out``.

    Writes the model and processor (``save_pretrained``), ``omniretrieve_demo.json`` (settings,
    gap offset, metrics with and without the offset) and ``README.md`` (the model card).

    Returns:
        The metadata written to ``out/omniretrieve_demo.json``.
    """
    config = config or TrainConfig()
    model, processor, stats = train_model(config)
    metrics_without = evaluate(model, processor)
    gap = add_gap_offset(model, processor, config.gap_offset, seed=config.seed)
    metrics = evaluate(model, processor) if config.gap_offset > 0 else metrics_without
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    (out_dir / "model.safetensors").chmod(0o644)  # safetensors writes it owner-only
    command = "python -m omniretrieve.demo.train --out DIR"
    defaults = TrainConfig()
    for flag, name in (
        ("--seed", "seed"),
        ("--steps", "steps"),
        ("--gap-offset", "gap_offset"),
        ("--threads", "threads"),
    ):
        if getattr(config, name) != getattr(defaults, name):
            command += f" {flag} {getattr(config, name):g}"
    meta = {
        "description": "omniretrieve demo model: a toy CLIP trained on synthetic colored shapes",
        "training_command": command,
        "versions": versions(),
        "config": asdict(config),
        "stats": stats,
        "gap_offset": gap,
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
        "metrics_without_gap_offset": {k: round(v, 4) for k, v in metrics_without.items()},
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    (out_dir / "README.md").write_text(model_card(meta), encoding="utf-8")
    logger.info("saved demo model to %s: %s", out_dir, meta["metrics"])
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: ``python -m omniretrieve.demo.train --out DIR``."""
    parser = argparse.ArgumentParser(description="Train the omniretrieve demo model (a toy CLIP).")
    parser.add_argument("--out", required=True, help="directory to save the model to")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed of weights and data")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps, help="optimizer steps")
    parser.add_argument(
        "--gap-offset",
        type=float,
        default=TrainConfig.gap_offset,
        help="image-embedding offset in multiples of the mean embedding norm (0: no modality gap)",
    )
    parser.add_argument("--threads", type=int, default=TrainConfig.threads, help="torch CPU threads")
    parser.add_argument(
        "--add-benchmark",
        metavar="REPORT",
        help="do not train: record a benchmarks/mixed_search.py report in the model at --out",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.add_benchmark:
        try:
            add_benchmark_results(args.out, args.add_benchmark)
        except InvalidInputError as exc:
            parser.error(str(exc))
        return 0
    try:
        config = TrainConfig(
            seed=args.seed, steps=args.steps, gap_offset=args.gap_offset, threads=args.threads
        )
    except InvalidInputError as exc:
        parser.error(str(exc))
    meta = train(args.out, config)
    print(json.dumps({"stats": meta["stats"], "metrics": meta["metrics"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
