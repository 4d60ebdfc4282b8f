"""Mixed-modality search quality on the demo world: none vs rrf vs gap calibration.

For the shipped demo model (a toy CLIP whose image embeddings carry a modality-gap offset) and its
gap-free twin, index the demo world's mixed corpus (captions, images, distractor texts) in an
embedded store and run the world's queries with each calibration. Reports nDCG@10, recall@10 and
MRR@10 per query group, plus two measurements that explain the numbers:

* ``fusion_ceiling``: the best nDCG@10 that ANY merge of the per-kind ranked lists could reach
  (the within-kind order is the model's; calibration only decides the interleaving). A
  calibration at the ceiling leaves nothing on the table; the rest is the model.
* ``combined``: a corpus where half the scenes are combined documents (caption + image in one
  document) and how each way of scoring a combined document ranks them.

Run: ``python benchmarks/mixed_search.py`` (about a minute on 2 CPU cores); writes
``benchmarks/results/mixed_search.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _oracle import oracle_interleave
from _report import machine, write_report

from omniretrieve.calibration import center
from omniretrieve.demo import gap_offset, make_world
from omniretrieve.demo.evaluation import DEMO_GROUPS, demo_qrels, evaluate_demo, index_demo_world
from omniretrieve.demo.world import DemoWorld, Scene
from omniretrieve.embedding import DEMO_MODEL_ID, DEMO_NOGAP_MODEL_ID, Embedder, load_embedder
from omniretrieve.evaluation import (
    JudgedQueries,
    JudgedQuery,
    embed_judged_queries,
    evaluate,
    run_judged_queries,
)
from omniretrieve.store import Store
from omniretrieve.types import Combined, Image

RESULTS = Path(__file__).resolve().parent / "results" / "mixed_search.json"
K = 10


def _tmp_dir() -> str:
    shm = "/dev/shm"
    return tempfile.mkdtemp(
        prefix="omni-bench-", dir=shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    )


def _grade(query: Scene, doc: Scene | None) -> int:
    if doc is None or doc.color != query.color or doc.shape != query.shape:
        return 0
    return 2 if doc.position == query.position else 1


def measure_model(world: DemoWorld, gap: bool) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    embedder = load_embedder(DEMO_MODEL_ID if gap else DEMO_NOGAP_MODEL_ID)
    folder = _tmp_dir()
    try:
        with Store(embedder, path=folder) as store:
            results = index_demo_world(store, world)
            assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
            indexed = time.perf_counter() - start
            metrics = evaluate_demo(store, world, k=K)
            # the ceiling of any fusion of the gap-calibrated per-kind lists, text -> mixed
            ceilings = []
            for q in world.queries:
                if q.target != "mixed":
                    continue
                lists = [
                    [h.id for h in store.search(q.text or "", K, modalities=(kind,))]
                    for kind in ("text", "image")
                ]
                ceilings.append(oracle_interleave(lists, dict(q.judgments), K))
            stats = store.statistics()
            text_mean, image_mean = stats.mean("text", prior_count=0), stats.mean("image", prior_count=0)
            combined = measure_combined(store, embedder, world) if gap else None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert text_mean is not None and image_mean is not None
    out: dict[str, Any] = {
        "model": "demo model" + ("" if gap else " without its gap offset (gap-free twin)"),
        "gap_offset_scale": gap_offset().scale if gap else 0.0,
        "mean_text_image_distance": round(float(np.linalg.norm(text_mean - image_mean)), 4),
        "metrics": _rounded(metrics),
        "fusion_ceiling": {"text->mixed": {f"ndcg@{K}": round(float(np.mean(ceilings)), 4)}},
        "seconds": {"index": round(indexed, 2), "total": round(time.perf_counter() - start, 2)},
    }
    if combined is not None:
        out["combined"] = combined
    return out


def measure_combined(store: Store, embedder: Embedder, world: DemoWorld) -> dict[str, Any]:
    """Half the scenes as combined documents (caption + image); how should those be scored?

    Builds a second corpus in the same store under another name: distractors, captions and images
    of the even-numbered scenes as separate documents, and one combined document (caption + image)
    per odd-numbered scene. Text -> mixed queries are judged by scene as in the world (grade 2 for
    the query's scene, 1 for the same color and shape elsewhere). The store scores a combined
    document by its own vector centred on the combined mean ("vector", what search does); the
    alternatives score its parts separately, each centred on its modality's mean, and take the
    max or the mean of the two part scores.
    """
    captions = [d for d in world.docs if d.modality == "text" and d.scene is not None]
    images = {d.scene: d for d in world.docs if d.modality == "image" and d.scene is not None}
    distractors = [d for d in world.docs if d.scene is None]
    scenes = sorted({d.scene for d in captions if d.scene in images})  # type: ignore[type-var]
    combined_scenes = set(scenes[1::2])
    items: list[Any] = []
    ids: list[str | None] = []
    doc_scene: dict[str, Scene | None] = {}
    parts: dict[str, tuple[str, Any]] = {}
    for d in distractors:
        items.append(d.text)
        ids.append(d.id)
        doc_scene[d.id] = None
    for cap in captions:
        assert cap.scene is not None and cap.text is not None
        img = images[cap.scene]
        assert img.image is not None
        if cap.scene in combined_scenes:
            doc_id = f"cmb-{cap.id[4:]}"
            items.append(Combined(text=cap.text, image=Image(img.image)))
            parts[doc_id] = (cap.text, img.image)
            ids.append(doc_id)
            doc_scene[doc_id] = cap.scene
        else:
            items.extend([cap.text, Image(img.image)])
            ids.extend([cap.id, img.id])
            doc_scene[cap.id] = cap.scene
            doc_scene[img.id] = cap.scene
    folder = _tmp_dir()
    try:
        with Store(embedder, path=folder, name="combined") as cstore:
            results = cstore.add(items, ids=ids)
            assert all(r.ok for r in results)
            stats = cstore.statistics()
            queries = [q for q in world.queries if q.target == "mixed"]
            qrels = {
                q.id: {d: g for d, s in doc_scene.items() if (g := _grade(q.scene, s)) > 0} for q in queries
            }
            judged = JudgedQueries(tuple(JudgedQuery(q.id, q.text or "", "text") for q in queries), qrels)
            query_vectors = embed_judged_queries(cstore, judged)
            out: dict[str, Any] = {
                "documents": {kind: cstore.count(kind) for kind in ("text", "image", "combined")},
                "store": {},
            }
            for calibration in ("none", "rrf", "gap"):
                found = run_judged_queries(
                    cstore, judged, calibration=calibration, k=K, query_vectors=query_vectors
                )
                out["store"][calibration] = _rounded(evaluate(found.run, qrels, K))
            # exhaustive alternatives for combined documents, everything else scored as the store does
            all_ids = [i for i in ids if i is not None]
            vectors = dict(zip(all_ids, cstore.get_vectors(all_ids), strict=True))
            cmb_ids = list(parts)
            text_parts = embedder.embed([parts[i][0] for i in cmb_ids])
            image_parts = embedder.embed([Image(parts[i][1]) for i in cmb_ids])
            mt, mi, mc = (stats.mean(k) for k in ("text", "image", "combined"))
            kinds = {
                i: ("combined" if i in parts else ("image" if i.startswith("img-") else "text"))
                for i in all_ids
            }
            variants: dict[str, dict[str, list[str]]] = {
                "vector": {},
                "max_of_parts": {},
                "mean_of_parts": {},
            }
            for q in queries:
                qc = center(query_vectors[q.id], mt)
                base = {
                    i: float(center(vectors[i], {"text": mt, "image": mi}[kinds[i]]) @ qc)  # type: ignore[arg-type]
                    for i in all_ids
                    if kinds[i] != "combined"
                }
                text_scores = center(text_parts, mt) @ qc
                image_scores = center(image_parts, mi) @ qc
                vector_scores = center(np.stack([vectors[i] for i in cmb_ids]), mc) @ qc  # type: ignore[misc]
                for name, scores in (
                    ("vector", vector_scores),
                    ("max_of_parts", np.maximum(text_scores, image_scores)),
                    ("mean_of_parts", (text_scores + image_scores) / 2),
                ):
                    merged = dict(base)
                    merged.update(zip(cmb_ids, scores.tolist(), strict=True))
                    variants[name][q.id] = sorted(merged, key=lambda i: -merged[i])[:K]
            out["exhaustive"] = {name: _rounded(evaluate(run, qrels, K)) for name, run in variants.items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 4)
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=0, help="seed of the demo world")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    world = make_world(seed=args.seed)
    started = time.perf_counter()
    models = {"gap": measure_model(world, gap=True), "gap_free": measure_model(world, gap=False)}
    g, f = models["gap"]["metrics"], models["gap_free"]["metrics"]
    key = f"ndcg@{K}"
    mixed = "text->mixed"
    checks = {
        "gap model: default (gap) nDCG@10 >= 0.9": g["gap"][mixed][key] >= 0.9,
        "gap model: gap beats none by >= 0.2": g["gap"][mixed][key] >= g["none"][mixed][key] + 0.2,
        "gap-free model: gap >= none - 0.01": f["gap"][mixed][key] >= f["none"][mixed][key] - 0.01,
        "gap model: gap within 0.01 of the gap-free model's none": g["gap"][mixed][key]
        >= f["none"][mixed][key] - 0.01,
    }
    lost = f["none"][mixed][key] - g["none"][mixed][key]
    analysis = {
        # how much of what the gap costs raw cosine (gap model vs its gap-free twin) "gap" wins back
        "gap_recovered_fraction": round((g["gap"][mixed][key] - g["none"][mixed][key]) / lost, 3)
        if lost
        else None,
        # the best any fusion of the per-kind lists could do: the rest is the model's own ranking
        "gap_model_fusion_ceiling": models["gap"]["fusion_ceiling"][mixed][key],
    }
    report = {
        "benchmark": "mixed_search",
        "description": "nDCG@10, recall@10, MRR@10 on the demo world; text->mixed is the mixed corpus",
        "world": {
            "seed": args.seed,
            "documents": len(world.docs),
            "queries": {group: len(demo_qrels(world, group)) for group in DEMO_GROUPS},
            "judgments": "grade 2 same scene (caption and image), grade 1 same color and shape elsewhere",
        },
        "k": K,
        "models": models,
        "checks": checks,
        "analysis": analysis,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    write_report(args.out, report)
    for name, m in models.items():
        line = "  ".join(f"{c}={m['metrics'][c][mixed][key]:.3f}" for c in ("none", "rrf", "gap"))
        print(f"{name:9s} text->mixed nDCG@10: {line}  ceiling={m['fusion_ceiling'][mixed][key]:.3f}")
    for check, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {check}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
