"""The demo reranker's metadata file and model card (``README.md``), written from its metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omniretrieve.errors import InvalidInputError

RERANKER_META_FILE = "omniretrieve_reranker.json"
"""The file in a demo reranker directory recording its training settings and measured effect."""


def _measured(meta: dict[str, Any]) -> str:
    bench = meta.get("benchmark")
    if not bench:
        return (
            "Not measured yet: run `HF_HUB_OFFLINE=1 python benchmarks/rerank.py`, then "
            "`python -m omniretrieve.demo.train_reranker --out DIR --add-benchmark benchmarks/results/rerank.json`.\n"
        )
    weight = bench.get("first_stage_weight")
    rows = [
        "| split | queries | raw | calibrated | calibrated + reranked | calibrated + reranked, fused |",
        "|---|---|---|---|---|---|",
    ]
    nan = float("nan")
    for name, split in bench["splits"].items():
        rows.append(
            f"| {name} | {split['queries']} | {split.get('raw_ndcg@10', nan):.4f} | "
            f"{split['calibrated_ndcg@10']:.4f} | {split['reranked_ndcg@10']:.4f} | "
            f"{split.get('fused_ndcg@10', nan):.4f} |"
        )
        for group, cols in split.get("groups", {}).items():
            rows.append(
                f"| {name}: {group} | | {cols['raw']:.4f} | {cols['calibrated']:.4f} | "
                f"{cols['reranked']:.4f} | {cols.get('fused', nan):.4f} |"
            )
    pairs = bench.get("hard_pairs")
    if pairs:
        rows.append(
            f"\nAlone, on the {pairs['scenes']} held-out hard scenes, the right picture scores above its "
            f"colours-swapped confuser {pairs['colors_swapped']:.0%} of the time and above its "
            f"sides-swapped one {pairs['sides_swapped']:.0%}, and above the same objects in the other "
            f"layout {pairs.get('other_layout', float('nan')):.0%} (chance: 50%)."
        )
    latency = bench.get("latency_ms", {})
    lat = ", ".join(f"{k[3:]} candidates {v:.0f} ms" for k, v in latency.items())
    return (
        f"`{bench.get('command', 'python benchmarks/rerank.py')}` (`benchmarks/results/rerank.json`): "
        f"nDCG@10 on held-out queries through an omniretrieve `Store` with the demo CLIP, calibration "
        f"`{bench.get('calibration', 'gap')}`, the reranker reading the first {bench.get('rerank_top_n', 30)} "
        "calibrated hits; *fused*: the same candidates by "
        f"`{weight} * minmax(calibrated) + {1 - (weight or 0):.1f} * minmax(reranker)` "
        "(`CrossEncoderReranker(..., first_stage_weight=...)`).\n\n" + "\n".join(rows) + "\n\n"
        f"Rerank latency per query (CPU, {bench.get('torch_threads', 2)} torch threads, median): {lat}.\n"
    )


def reranker_card(meta: dict[str, Any]) -> str:
    """The model card (``README.md``) of a demo reranker, from its metadata."""
    cfg, stats = meta["config"], meta["stats"]
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
    return f"""# omniretrieve demo reranker (tiny multimodal cross-encoder, colored shapes only)

**A toy.** It knows the two demo worlds of colored shapes and nothing else: one object per
picture (`omniretrieve.demo.world`) and two objects per picture (`omniretrieve.demo.hard_world`,
queries such as "a red circle left of a blue square"). It exists so that omniretrieve's demo, tests
and benchmarks show a second stage that fixes what vector search gets wrong, offline.

Load it with plain sentence-transformers or by name:

```python
from sentence_transformers import CrossEncoder
from omniretrieve import load_reranker
from omniretrieve.demo.loading import reranker_path

model = CrossEncoder(str(reranker_path()))  # rank(text, [PIL images | texts | {{"text", "image"}}])
reranker = load_reranker("demo")  # an omniretrieve CrossEncoderReranker
fused = load_reranker("demo", first_stage_weight=0.2)  # scores fused with the first stage's
fused.rerank(query, candidates, first_stage_scores=[hit.score for hit in hits])
```

Use it fused with the first stage (above, and "Measured"): alone it fixes part of the two-object
queries a bi-encoder confuses, but ranks the one-object world, which the demo CLIP already
solves, worse than the first stage.

## What it is

- A sentence-transformers `CrossEncoder` of two modules: `Transformer(transformer_task="any-to-any")`
  over a `LlavaForConditionalGeneration`, and `LogitScore` (score = logit("yes") - logit("no")
  at the last position).
- Vision: the shipped demo CLIP's vision tower (32 px, patch 8: 16 image tokens per picture),
  frozen. Text: a Llama of width {cfg["hidden_size"]}, {cfg["num_layers"]} layers,
  {cfg["num_heads"]} heads, from random weights; a two-layer projector between them.
  {stats.get("parameters", "?")} parameters ({stats.get("trained_parameters", "?")} trained), float32.
- Input: the chat template renders a `query` turn and a `document` turn (text and image parts, in
  order) and ends in `<|relevant|>`; texts, pictures and combined (text + picture) items, as query
  or document. Padding on the left.
- Tokenizer: byte-level BPE trained on both worlds' words (plus `yes`, `no`), lowercasing.

## Recipe

`{meta.get("training_command", "python -m omniretrieve.demo.train_reranker --out DIR")}`: seed {cfg["seed"]},
{cfg["steps"]} AdamW steps, lr {cfg["lr"]} (warm-up, cosine decay to 10%), {cfg["queries_per_step"]} lists of
{cfg["list_size"]} candidates per step, {cfg["threads"]} CPU thread(s),
`torch.use_deterministic_algorithms(True)`; initial weights of standard deviation {cfg["init_range"]}
(the transformers default, 0.02, left the tiny model on a long plateau).

Listwise loss (ListNet): the cross-entropy between the softmax of a list's scores and the targets
`2^grade - 1`, normalised. Lists hold the right documents among those a bi-encoder confuses with
them. A curriculum: the first {cfg.get("easy_first_steps", 0)} steps draw one-object (easy) lists only,
so colour, shape and position are learned before the two-object relations. Hard world
({cfg["hard_fraction"]:.0%} of the lists after that): a text query, its scene's picture or caption (or
both, or one combined item), the other scenes of its *bag* (same two colors and shapes: colors
swapped, sides swapped, the other layout), two scenes sharing one object, and unrelated scenes.
Easy world: text -> mixed, text -> pictures and picture -> pictures lists with the exact scene
(grade 2), the same object elsewhere (grade 1), objects sharing a color or a shape, unrelated ones.
Mixed lists of either world hold, {cfg.get("distractor_fraction", 0):.0%} of the time, a distractor text
naming the query's words (as the worlds' distractor documents do).

Measured: {stats.get("train_seconds", "?")} s wall clock, {stats.get("train_cpu_seconds", "?")} s CPU
(data and training), final listwise loss {stats.get("final_listwise_loss", "?")}. Versions: {versions}.

## Data

Training scenes only: the easy world's {stats.get("easy_train_scenes", "?")} training scenes (the demo
CLIP's split: split seed 0, 20% held out) and the hard world's {stats.get("hard_train_bags", "?")} training
bags of 90 (`omniretrieve.demo.hard_world.split_bags`: 20% held out, every color pair and shape pair
still in training), {cfg["renders"]} renders per scene ({stats.get("pictures", "?")} pictures), every
caption and query template. Held-out scenes and bags never appear, neither as pictures nor as texts.

## Measured

{_measured(meta)}
## Limits

- Colored shapes only: any other text or picture gets a score, but a meaningless one.
- On the hard split it reads the layout (side by side or one above the other) and the texts,
  but barely binding or the order of a relation: see the confuser pairs under "Measured".
  Telling "a red circle left of a blue square" from its colours-swapped or sides-swapped twin
  picture needs more training than the 10-CPU-minute budget gives.
- It reads 32 px pictures; the hard world's relations are left/right and above/below only;
  counting is not covered.
- It reranks what the first stage found: a right document outside the reranked top n stays lost
  (on the hard split, the calibrated top 30 misses some).
- Scores are comparable within one query, not across queries (a listwise loss fixes no scale).
- Alone it ranks the one-object world (colour, shape and position: see the `easy` row) worse
  than the demo CLIP does: trained within 10 CPU minutes, it does not learn the single attributes
  as sharply as the contrastive first stage. Fused with the first stage (`first_stage_weight`),
  each stage decides where its scores are far apart. The fusion weight was chosen on the same
  held-out queries (see `fusion_sweep` in `benchmarks/results/rerank.json`).
"""


def add_rerank_benchmark(folder: str | os.PathLike[str], report: str | os.PathLike[str]) -> None:
    """Record a ``benchmarks/rerank.py`` report in the metadata and card of the reranker at ``folder``.

    Raises:
        InvalidInputError: ``folder`` is not a demo reranker directory, or the report is unreadable.
    """
    target = Path(folder)
    meta_file = target / RERANKER_META_FILE
    if not meta_file.is_file():
        raise InvalidInputError(str(folder), f"is not a demo reranker (no {RERANKER_META_FILE})")
    try:
        bench = json.loads(Path(report).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(str(report), f"is not a readable benchmark report ({exc})") from exc
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    meta["benchmark"] = {k: bench[k] for k in bench if k != "machine"} | {"machine": bench.get("machine")}
    meta_file.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    (target / "README.md").write_text(reranker_card(meta), encoding="utf-8")


__all__ = ["RERANKER_META_FILE", "add_rerank_benchmark", "reranker_card"]
