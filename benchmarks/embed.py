"""Image embedding throughput: omniretrieve's embedder against plain sentence-transformers.

Writes N image files (~320x240, JPEG and PNG alternating) to a temporary folder and embeds them
twice with the SAME loaded model and batch size:

- ours: ``SentenceTransformerEmbedder.embed([Image(path), ...])`` (safe media loading, decoding
  in a small thread pool ahead of the model, per-item error isolation, checks, normalisation),
  with its default JPEG draft decoding (DCT scaling down to the model's input size), and again
  with ``draft_images=False`` (the exact pixels of a full decode);
- baseline: ``SentenceTransformer.encode([path, ...])`` (the library opens the paths itself).

Each side is warmed up, then timed ``--repeats`` times, alternating which side goes first; the
median is reported. Also reported: how far our vectors are from the baseline's (normalised)
vectors. Results go to ``benchmarks/results/embed.json``.

Usage::

    python benchmarks/embed.py                       # demo model if shipped, else a tiny CLIP
    python benchmarks/embed.py --n 512 --batch-size 64 --model path/or/hub-id --device cuda

``--model`` takes what :func:`omniretrieve.embedding.load_embedder` takes (``demo``, a hub id, a
local directory); both sides use the model it loads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "embed.json"


def make_images(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[str]:
    """N photo-like images (smooth gradients, shapes and noise), JPEG and PNG alternating."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for i in range(n):
        a, b, c = rng.uniform(0.2, 1.0, 3)
        base = np.stack(
            [xx / width * 255 * a, yy / height * 255 * b, (xx + yy) / (width + height) * 255 * c], -1
        )
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        img = Image.fromarray(noisy)
        draw = ImageDraw.Draw(img)
        for _ in range(3):
            x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
            box = (x0, y0, x0 + int(rng.integers(20, 120)), y0 + int(rng.integers(20, 120)))
            draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        path = folder / (f"img{i:05d}.jpg" if i % 2 == 0 else f"img{i:05d}.png")
        img.save(path, quality=90) if path.suffix == ".jpg" else img.save(path)
        paths.append(str(path))
    return paths


def default_model(workdir: Path) -> tuple[str, str]:
    """The demo model if it ships, else a tiny random CLIP built now: (load_embedder spec, description)."""
    try:
        from omniretrieve.demo import model_path
        from omniretrieve.embedding import DEMO_ALIAS

        model_path()  # raises when the package was installed without it
        return DEMO_ALIAS, "omniretrieve demo model"
    except (ImportError, OSError):
        pass
    from omniretrieve.testing.models import build_tiny_clip

    return str(build_tiny_clip(workdir / "tiny-clip")), "tiny random CLIP (omniretrieve.testing.models)"


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=256, help="number of images")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--model", default=None, help="hub id or local directory (default: demo model or tiny CLIP)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="e.g. float16 (both sides load the same weights)")
    parser.add_argument("--num-workers", type=int, default=None, help="our decoding threads (default: ours)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import sentence_transformers
    import torch

    from omniretrieve.embedding import SentenceTransformerEmbedder, load_embedder
    from omniretrieve.types import Image

    with tempfile.TemporaryDirectory(prefix="omniretrieve-bench-") as tmp:
        workdir = Path(tmp)
        if args.model == "random-clip-b32":
            from omniretrieve.testing.models import build_tiny_clip

            model_ref = str(
                build_tiny_clip(
                    workdir / "clip-b32",
                    image_size=224,
                    patch_size=32,
                    projection_dim=512,
                    hidden_size=768,
                    num_layers=12,
                    num_heads=12,
                )
            )
            model_desc = "ViT-B/32-shaped CLIP, random weights"
        elif args.model:
            model_ref, model_desc = args.model, args.model
        else:
            model_ref, model_desc = default_model(workdir)
        (workdir / "images").mkdir()
        paths = make_images(workdir / "images", args.n, (args.width, args.height))
        mean_kb = sum(os.path.getsize(p) for p in paths) / len(paths) / 1024

        ours = load_embedder(
            model_ref,
            device=args.device,
            dtype=args.dtype,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
        )
        assert isinstance(ours, SentenceTransformerEmbedder), (
            f"{model_ref} is not a sentence-transformers model"
        )
        model = ours.model  # the baseline runs the very same loaded model
        exact = SentenceTransformerEmbedder(
            model,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            draft_images=False,
            model_id=ours.model_id,
        )
        items = [Image(p) for p in paths]
        runners = {
            "ours": lambda: ours.embed(items),
            "ours_exact": lambda: exact.embed(items),
            "baseline": lambda: np.asarray(
                model.encode(paths, batch_size=args.batch_size, show_progress_bar=False)
            ),
        }

        # Warm-up: one full pass each (first-call costs, page cache, allocator).
        for fn in runners.values():
            fn()
        seconds: dict[str, list[float]] = {name: [] for name in runners}
        vectors: dict[str, np.ndarray] = {}
        names = list(runners)
        for r in range(args.repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate who goes first
                took, vectors[name] = timed(runners[name])
                seconds[name].append(took)
        base_unit = vectors["baseline"] / np.linalg.norm(vectors["baseline"], axis=1, keepdims=True)
        rates = {name: args.n / statistics.median(s) for name, s in seconds.items()}
        best = {name: args.n / min(s) for name, s in seconds.items()}

        def closeness(name: str) -> dict[str, float]:
            ours_vec = vectors[name].astype(np.float64)
            return {
                "max_abs_diff_vs_baseline": float(np.max(np.abs(ours_vec - base_unit))),
                "min_cosine_vs_baseline": float(np.min(np.sum(ours_vec * base_unit, axis=1))),
                "mean_cosine_vs_baseline": float(np.mean(np.sum(ours_vec * base_unit, axis=1))),
            }

        result: dict[str, Any] = {
            "benchmark": "image embedding throughput, files on disk",
            "model": model_desc,
            "embedding_dimension": ours.dimension,
            "n_images": args.n,
            "image_size": [args.width, args.height],
            "formats": "JPEG (quality 90) and PNG, alternating",
            "mean_file_kb": round(mean_kb, 1),
            "batch_size": args.batch_size,
            "dtype": str(model.dtype),
            "repeats": args.repeats,
            "ours_num_workers": ours.num_workers,
            "ours_image_min_side": ours.image_min_side,
            "ours_items_per_s": round(rates["ours"], 1),
            "ours_exact_items_per_s": round(rates["ours_exact"], 1),
            "baseline_items_per_s": round(rates["baseline"], 1),
            "ratio_ours_over_baseline": round(rates["ours"] / rates["baseline"], 3),
            "ratio_ours_exact_over_baseline": round(rates["ours_exact"] / rates["baseline"], 3),
            "best_items_per_s": {name: round(rate, 1) for name, rate in best.items()},
            "seconds": {name: [round(x, 4) for x in s] for name, s in seconds.items()},
            "ours": closeness("ours"),
            "ours_exact": closeness("ours_exact"),
            "machine": {
                "platform": platform.platform(),
                "python": sys.version.split()[0],
                "cpu_count": os.cpu_count(),
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "sentence_transformers": sentence_transformers.__version__,
                "device": str(model.device),
                "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            },
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{result['model']}, {args.n} images {args.width}x{args.height}, batch {args.batch_size}:\n"
        f"  ours (JPEG draft decoding) {result['ours_items_per_s']} img/s, "
        f"ratio {result['ratio_ours_over_baseline']}, min cosine {result['ours']['min_cosine_vs_baseline']:.6f}\n"
        f"  ours (exact decoding)      {result['ours_exact_items_per_s']} img/s, "
        f"ratio {result['ratio_ours_exact_over_baseline']}, "
        f"max |diff| {result['ours_exact']['max_abs_diff_vs_baseline']:.1e}\n"
        f"  sentence-transformers      {result['baseline_items_per_s']} img/s\n"
        f"  best of {args.repeats}: {result['best_items_per_s']}"
    )
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
