"""The demo world and the demo model: a toy multimodal retrieval problem that runs offline.

* :mod:`omniretrieve.demo.world`: colored shapes (images, captions, distractors, queries with
  graded judgments over a mixed corpus), deterministic by seed.
* :mod:`omniretrieve.demo.evaluation`: the world as a judged-query set (index its corpus, run
  its queries, measure them), through :mod:`omniretrieve.evaluation`.
* The demo model: a toy CLIP trained on that world (``python -m omniretrieve.demo.train``),
  shipped in the package, with a documented modality-gap offset (:data:`GAP_OFFSET_SCALE`) and a
  gap-free twin derived from it.

Example::

    from omniretrieve.demo import load_model, make_world

    world = make_world(seed=0)
    model = load_model()                 # SentenceTransformer, modalities text and image
    twin = load_model(gap=False)         # the same model without the modality gap
"""

from omniretrieve.demo.evaluation import (
    DEMO_GROUPS,
    demo_judged_queries,
    demo_qrels,
    demo_run,
    evaluate_demo,
    index_demo_world,
)
from omniretrieve.demo.loading import (
    GAP_OFFSET_SCALE,
    GAP_PARAMETER,
    META_FILE,
    GapOffset,
    gap_offset,
    load_model,
    model_path,
    remove_gap_offset,
    save_gap_free_model,
)
from omniretrieve.demo.world import DemoDoc, DemoQuery, DemoWorld, Scene, make_world

__all__ = [
    "DEMO_GROUPS",
    "GAP_OFFSET_SCALE",
    "GAP_PARAMETER",
    "META_FILE",
    "DemoDoc",
    "DemoQuery",
    "DemoWorld",
    "GapOffset",
    "Scene",
    "demo_judged_queries",
    "demo_qrels",
    "demo_run",
    "evaluate_demo",
    "gap_offset",
    "index_demo_world",
    "load_model",
    "make_world",
    "model_path",
    "remove_gap_offset",
    "save_gap_free_model",
]
