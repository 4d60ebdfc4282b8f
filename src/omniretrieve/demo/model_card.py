"""The demo model's card (``README.md``) and metadata: what :mod:`omniretrieve.demo.train` writes.

``python -m omniretrieve.demo.train --out DIR --add-benchmark benchmarks/results/mixed_search.json``
records the numbers of ``benchmarks/mixed_search.py`` in the card without training
(:func:`add_benchmark_results`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omniretrieve.demo.loading import META_FILE
from omniretrieve.demo.world import COLORS, POSITIONS, SHAPES
from omniretrieve.errors import InvalidInputError, require


def versions() -> dict[str, str]:
    import platform

    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "tokenizers"):
        versions[name] = str(getattr(require(name, extra=None, purpose="Version report"), "__version__", "?"))
    return versions


_METRIC_NAMES = {
    "heldout_text_to_image_recall_at_1": "held-out text -> image recall@1 (among held-out images)",
    "image_to_image_recall_at_1": "image -> image recall@1 (among all 120 images)",
    "matched_text_image_cosine": "mean cosine, caption vs image of the same scene",
    "matched_text_text_cosine": "mean cosine, two captions of the same scene",
    "text_queries_without_image_in_top10": "text queries whose top 10 (mixed corpus) has no image",
    "median_rank_of_exact_image": "median rank of the exact image in the mixed corpus (264 docs)",
    "ndcg_at_10_text_to_mixed": "nDCG@10, text -> mixed corpus, plain cosine (40 queries)",
    "ndcg_at_10_text_to_mixed_heldout_queries": "the same, only the queries of held-out scenes",
    "ndcg_at_10_text_to_image": "nDCG@10, text -> images, plain cosine (24 queries)",
    "ndcg_at_10_image_to_image": "nDCG@10, image -> images, plain cosine (24 queries)",
}


def model_card(meta: dict[str, Any]) -> str:
    """The model card (``README.md``) of a demo model, from its ``omniretrieve_demo.json`` data."""
    cfg, stats, gap = meta["config"], meta["stats"], meta["gap_offset"]
    rows = "\n".join(
        f"| {label} | {meta['metrics'][key]} | {meta['metrics_without_gap_offset'][key]} |"
        for key, label in _METRIC_NAMES.items()
        if key in meta["metrics"] and key in meta["metrics_without_gap_offset"]
    )
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    if gap["scale"] > 0:
        gap_section = f"""## The modality gap offset

Real CLIP models embed texts and images in two separate regions ("the modality gap"): a text
query scores texts far above images, so in a mixed corpus the right image ranks below captions
of merely related things. Trained this small, this model
has no gap, so one is added on purpose: a constant vector `c` is added to every image embedding.
`|c|` = {gap["scale"]:g} x the mean embedding norm ({gap["mean_embedding_norm"]:.3f}) =
{gap["norm"]:.3f}; its direction is one in which the training embeddings barely vary, so it
leaves the order of images for a query almost unchanged and lowers every text-image cosine by
about `1 / sqrt(1 + {gap["scale"]:g}^2)`. It lives in the vision tower's final layer-norm bias
(`vision_model.post_layernorm.bias += pinv(visual_projection.weight) @ c`), so it survives
saving and loading. `omniretrieve_demo.json` records `c` and the bias change;
`omniretrieve.demo.load_model(gap=False)` (or `remove_gap_offset`) subtracts it again, giving the
gap-free twin; `python -m omniretrieve.demo.train --out DIR --gap-offset 0` trains one.

"""
    else:
        gap_section = """## The modality gap offset

None: this model was trained with `--gap-offset 0`, so it is a gap-free model, like the twin that
`omniretrieve.demo.load_model(gap=False)` derives from the shipped model. Its two metric columns
below are the same.

"""
    benchmark_section = _benchmark_section(meta.get("benchmark"))
    return f"""# omniretrieve demo model (toy CLIP, colored shapes only)

**A toy.** This model knows exactly one tiny world: six colors ({", ".join(COLORS)}), four shapes
({", ".join(SHAPES)}) and five positions ({", ".join(POSITIONS)}), drawn as flat shapes on a light
background, and captions of them in a handful of English templates. It knows nothing else: any
other text or image gets an embedding, but a meaningless one. It exists so that omniretrieve's
demo, tests and benchmarks run offline on a real, trained multimodal model.

## What it is

- Architecture: `CLIPModel` (transformers), text and vision towers of hidden size 64, 2 layers,
  2 heads, MLP 128; images 32 x 32 pixels, patch 8; projection (embedding) dimension 32;
  {stats["parameters"]:,} parameters, float32 safetensors.
- Tokenizer: byte-level BPE trained with `tokenizers` on the world's captions, queries,
  distractors and a few common words; {stats["vocab_size"]} tokens, lowercasing, `<bos>`/`<eos>`
  added; `text_config.eos_token_id` is the tokenizer's `<eos>` id (text pooling reads it).
- Loading: `SentenceTransformer(str(omniretrieve.demo.model_path()))` gives one `Transformer`
  module with modalities `text` and `image`; similarity cosine. Images of any size are resized
  to 32 px by the `CLIPImageProcessor`.

## Data

`omniretrieve.demo.world`: 6 x 4 x 5 = 120 scenes; {stats["train_scenes"]} training scenes,
the other {120 - stats["train_scenes"]} held out (split seed {cfg["split_seed"]}, fraction
{cfg["heldout_fraction"]}; every color, shape and position still occurs in training). Training
saw {cfg["renders_per_scene"]} renders (64 px, jittered place, size, color, background, pixel
noise) and all caption and query templates of each training scene, never a held-out scene.

## Training

`{meta["training_command"]}` (seed {cfg["seed"]}, {cfg["steps"]} AdamW steps, batch
{cfg["batch_size"]} distinct scenes x {cfg["views"]} texts and {cfg["views"]} images each, lr
{cfg["lr"]:g} with warm-up and cosine decay, one CPU thread, deterministic algorithms).

The objective is a graded, multi-positive contrastive loss
(`omniretrieve.demo.train.graded_contrastive_loss`) whose soft targets follow the world's
judgments: weight 1 for the same scene, {cfg["sibling_weight"]:g} for a *sibling* (same color and
shape, another position), {cfg["position_weight"]:g} for a scene at the same position sharing the
color or the shape (so position gets a gradient of its own and is learned sooner), 0 for
everything else, normalised per anchor. It has three softmax
terms over the batch: text -> images and image -> texts (CLIP's two directions, with soft
targets), and, with weight {cfg["mixed_weight"]:g}, one softmax of every text and image against
every other text and image (text -> text, image -> image and text -> image on one scale). Plus
{cfg["norm_weight"]:g} x the variance of the log norms of the raw image embeddings (equal norms
keep the order of images unchanged under the gap offset below). CLIP's own loss knows only the
exact scene: it leaves the order of related scenes to chance, and a model trained with it ranked
siblings no better than unrelated scenes (nDCG@10 of the gap-free model with plain cosine:
text -> mixed 0.644, text -> images 0.765, image -> images 0.804 in
`benchmarks/mixed_search.py`).

Measured: {stats["train_seconds"]} s wall clock, {stats["train_cpu_seconds"]} s CPU (data,
tokenizer and training), final graded loss {stats["final_graded_loss"]}.
Versions: {versions}.

{gap_section}## Measured (on `make_world(seed=0)`)

| metric | with offset (this model) | without offset (twin) |
|---|---|---|
{rows}

With the offset, a text query's top 10 over the mixed corpus (120 captions, 120 images, 24
distractors) holds only texts, and the right image sinks below the captions of related scenes,
while ranking among images alone stays as good as without it. A retriever that fuses or
calibrates the modalities (for instance by subtracting each modality's mean embedding, the
post-hoc gap removal of GR-CLIP) should bring the right image back near the top, as the
gap-free twin does.
{benchmark_section}"""


_CALIBRATIONS = ("none", "rrf", "gap")


def _benchmark_section(bench: dict[str, Any] | None) -> str:
    if not bench:
        return ""
    lines = [
        "",
        "## Benchmark: search through omniretrieve (`benchmarks/mixed_search.py`)",
        "",
        f"Measured with `{bench['command']}` on `make_world(seed={bench['world_seed']})`: the corpus "
        "indexed in an omniretrieve `Store`, searched with each calibration (`none`: raw cosine; "
        "`rrf`: reciprocal-rank fusion of per-modality lists; `gap`: each modality centred on its "
        "mean, the default). nDCG@10 (recall@10, MRR@10):",
        "",
        "| model | calibration | text -> mixed | text -> images | image -> images |",
        "|---|---|---|---|---|",
    ]
    for model_key, label in (("gap", "with offset (this model)"), ("gap_free", "without offset (twin)")):
        metrics = bench["models"].get(model_key, {})
        for calibration in _CALIBRATIONS:
            groups = metrics.get(calibration)
            if groups is None:
                continue
            cells = [
                f"{g['ndcg@10']:.4f} ({g['recall@10']:.4f}, {g['mrr@10']:.4f})"
                for g in (groups[name] for name in ("text->mixed", "text->image", "image->image"))
            ]
            lines.append(f"| {label} | {calibration} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def add_benchmark_results(model_dir: str | Path, results: str | Path) -> dict[str, Any]:
    """Record the numbers of ``benchmarks/mixed_search.py`` in a demo model's metadata and card.

    Reads the benchmark's JSON report (``benchmarks/results/mixed_search.json``), stores the
    per-calibration metrics of the gap model and its gap-free twin under ``"benchmark"`` in
    ``model_dir/omniretrieve_demo.json`` and rewrites ``model_dir/README.md``.

    Raises:
        InvalidInputError: ``model_dir`` is not a demo model directory or ``results`` is not a
            mixed_search report.

    Returns:
        The updated metadata.
    """
    folder = Path(model_dir)
    meta_file = folder / META_FILE
    if not meta_file.is_file():
        raise InvalidInputError(str(folder), f"is not a demo model directory (no {META_FILE})")
    try:
        report = json.loads(Path(results).read_text(encoding="utf-8"))
        models = {key: report["models"][key]["metrics"] for key in ("gap", "gap_free")}
        world_seed = int(report["world"]["seed"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(str(results), f"is not a mixed_search report ({exc!r})") from exc
    meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
    meta["benchmark"] = {
        "command": "HF_HUB_OFFLINE=1 python benchmarks/mixed_search.py",
        "world_seed": world_seed,
        "checks": report.get("checks", {}),
        "models": models,
    }
    meta_file.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(model_card(meta), encoding="utf-8")
    return meta
