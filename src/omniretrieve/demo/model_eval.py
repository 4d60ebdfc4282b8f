"""Measure a demo model with plain transformers: held-out recall, the modality gap, nDCG per group.

Used by :mod:`omniretrieve.demo.train` to write the metrics into the model's metadata and card.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from omniretrieve.demo.world import CAPTION_TEMPLATES, QUERY_TEMPLATES, Scene
from omniretrieve.errors import InvalidInputError, require

if TYPE_CHECKING:
    import torch
    from transformers import CLIPModel, CLIPProcessor

    from omniretrieve.demo.world import DemoDoc, DemoWorld


def _torch() -> Any:
    return require("torch", extra=None, purpose="Training the demo model")


def _training_texts(scene: Scene) -> list[str]:
    """The captions and query texts of a scene, in template order."""
    return [scene.caption(t) for t in range(len(CAPTION_TEMPLATES))] + [
        scene.query_text(t) for t in range(len(QUERY_TEMPLATES))
    ]


def _pixel_values(processor: CLIPProcessor, images: Sequence[Any]) -> torch.Tensor:
    out = processor.image_processor(images=list(images), return_tensors="pt")
    return out["pixel_values"]


def evaluate(model: CLIPModel, processor: CLIPProcessor, seed: int = 0) -> dict[str, float]:
    """Measure the held-out recall and the modality gap on ``make_world(seed)`` (plain transformers).

    * ``heldout_text_to_image_recall_at_1``: for every held-out scene and every caption and query
      template, is the image of that scene ranked first among the images of the held-out scenes?
      (The standard cross-modal protocol: rank within the image modality.)
    * ``image_to_image_recall_at_1``: for every image query, is an image of the query's scene
      ranked first among all image documents?
    * ``matched_text_image_cosine``: mean cosine of a caption and an image of the same scene.
    * ``matched_text_text_cosine``: mean cosine of two captions of the same scene (templates 0, 1).
    * ``text_queries_without_image_in_top10``: the fraction of the text -> mixed queries whose
      top 10 over the whole mixed corpus holds no image at all.
    * ``median_rank_of_exact_image``: over the text -> mixed queries, the median rank (1 = first)
      of the query scene's image document in the whole mixed corpus.
    """
    torch = _torch()
    from omniretrieve.demo.world import make_world

    world = make_world(seed)

    def enc_text(texts: Sequence[str]) -> Any:
        with torch.no_grad():
            enc = processor.tokenizer(list(texts), padding=True, return_tensors="pt")
            e = model.get_text_features(**enc).pooler_output
        return torch.nn.functional.normalize(e, dim=-1)

    def enc_image(images: Sequence[Any]) -> Any:
        with torch.no_grad():
            e = model.get_image_features(pixel_values=_pixel_values(processor, images)).pooler_output
        return torch.nn.functional.normalize(e, dim=-1)

    text_docs = list(world.corpus("text"))
    image_docs = list(world.corpus("image"))
    text_emb = enc_text([d.text or "" for d in text_docs])
    image_emb = enc_image([d.image for d in image_docs])

    heldout = set(world.heldout_scenes)
    ho_idx = [i for i, d in enumerate(image_docs) if d.scene in heldout]
    ho_scenes = [image_docs[i].scene for i in ho_idx]
    hits = total = 0
    for scene in world.heldout_scenes:
        if not isinstance(scene, Scene):
            raise InvalidInputError("world", "is not an easy (one-object) demo world")
        sims = enc_text(_training_texts(scene)) @ image_emb[ho_idx].T
        for row in sims:
            hits += int(ho_scenes[int(row.argmax())] == scene)
            total += 1

    image_queries = [q for q in world.queries if q.image is not None]
    i2i = enc_image([q.image for q in image_queries]) @ image_emb.T
    i2i_hits = sum(
        image_docs[int(row.argmax())].scene == q.scene for q, row in zip(image_queries, i2i, strict=True)
    )

    scenes = [d.scene for d in image_docs]
    cap0 = enc_text([s.caption(0) for s in scenes if s is not None])
    cap1 = enc_text([s.caption(1) for s in scenes if s is not None])

    docs = text_docs + image_docs
    is_image = torch.tensor([d.modality == "image" for d in docs])
    mixed = [q for q in world.queries if q.target == "mixed"]
    sims = enc_text([q.text or "" for q in mixed]) @ torch.cat([text_emb, image_emb]).T
    no_image = 0
    ranks: list[int] = []
    for q, row in zip(mixed, sims, strict=True):
        order = row.argsort(descending=True)
        no_image += int(not bool(is_image[order[:10]].any()))
        exact = [pos for pos, i in enumerate(order.tolist()) if is_image[i] and docs[i].scene == q.scene]
        ranks.append(exact[0] + 1)
    graded = _graded_ndcg(world, text_docs, image_docs, text_emb, image_emb, enc_text, enc_image)
    return {
        "heldout_text_to_image_recall_at_1": hits / total,
        "image_to_image_recall_at_1": i2i_hits / max(1, len(image_queries)),
        "matched_text_image_cosine": float((cap0 * image_emb).sum(-1).mean()),
        "matched_text_text_cosine": float((cap0 * cap1).sum(-1).mean()),
        "text_queries_without_image_in_top10": no_image / max(1, len(mixed)),
        "median_rank_of_exact_image": float(np.median(ranks)),
        **graded,
    }


def _graded_ndcg(
    world: DemoWorld,
    text_docs: Sequence[DemoDoc],
    image_docs: Sequence[DemoDoc],
    text_emb: torch.Tensor,
    image_emb: torch.Tensor,
    enc_text: Callable[[Sequence[str]], torch.Tensor],
    enc_image: Callable[[Sequence[Any]], torch.Tensor],
) -> dict[str, float]:
    """Mean nDCG@10 per query group, ranking by plain cosine (no calibration) on the world's qrels."""
    from omniretrieve.demo.evaluation import DEMO_GROUPS, demo_qrels
    from omniretrieve.evaluation import ndcg_at_k

    torch = _torch()
    out: dict[str, float] = {}
    for group, (modality, target) in DEMO_GROUPS.items():
        queries = [q for q in world.queries if q.modality == modality and q.target == target]
        docs = list(text_docs) + list(image_docs) if target == "mixed" else list(image_docs)
        doc_emb = torch.cat([text_emb, image_emb]) if target == "mixed" else image_emb
        query_emb = (
            enc_image([q.image for q in queries])
            if modality == "image"
            else enc_text([q.text or "" for q in queries])
        )
        qrels = demo_qrels(world, group)
        scores, heldout_scores = [], []
        for q, row in zip(queries, query_emb @ doc_emb.T, strict=True):
            ranked = [docs[i].id for i in row.argsort(descending=True)[:10].tolist()]
            scores.append(ndcg_at_k(ranked, qrels[q.id], 10))
            if world.is_heldout(q.scene):
                heldout_scores.append(scores[-1])
        name = f"ndcg_at_10_{group.replace('->', '_to_')}"
        out[name] = float(np.mean(scores))
        if group == "text->mixed" and heldout_scores:
            out[f"{name}_heldout_queries"] = float(np.mean(heldout_scores))
    return out
