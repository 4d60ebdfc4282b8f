"""GPU ingest: JPEG files to Chroma on one CUDA device, images/s end to end and per stage.

Writes the ``gpu`` entry of ``benchmarks/results/ingest.json`` (issue 13: milestone 5,000 images/s,
goal 10,000 on one H100/H200). The model is CLIP ViT-B/32-shaped, built from ``CLIPConfig``
defaults (random weights, no hub) with the demo's tokenizer, saved with its processor and loaded
as a sentence-transformers model in fp16, like the demo model is wrapped. N photo-like 640x480
JPEG files (``benchmarks/ingest.py``'s ``make_jpegs``) are written first, then measured:

- ``end_to_end``: ``Store.add`` of the files, the whole pipeline: reading and header checks in
  worker processes, nvJPEG decoding, device preprocessing, the fp16 model, the writer thread into
  Chroma (the embedder's probe decides whether the tensor path and nvJPEG are used: see ``probe``);
- ``end_to_end_processor_path``: the same with device preprocessing off (the processor on the
  CPU, decoding in worker processes), on part of the files;
- ``stages_images_per_s``, each stage alone: CPU decoding in worker processes (JPEG draft mode, as
  the CPU path decodes), nvJPEG decoding of files already in memory, the tensor preprocessing, the
  processor's CPU preprocessing in one process, the fp16 model on preprocessed batches, and the
  store's write of N precomputed 512-d vectors.

Prepared device run (a later session with a CUDA machine; a few minutes of device time, well
under 8). The device image has torch, torchvision, transformers, sentence-transformers and Pillow
but not chromadb, so chromadb and the packages it imports travel as wheels::

    # 1. here, once: cp312 wheels of chromadb and what it imports, into .whl/chroma (git-ignored)
    .venv/bin/python benchmarks/ingest_gpu.py --fetch-wheels
    # 2. on the device: the run tool with carry=[".whl/chroma"], timeout_s=540, command:
    python -m pip install -q --no-deps --no-index --target /tmp/xs .whl/chroma/*.whl && PYTHONPATH=src python benchmarks/ingest_gpu.py --extra-site /tmp/xs --json $OUT/gpu.json
    # 3. here, after: merge what came back into benchmarks/results/ingest.json
    .venv/bin/python benchmarks/ingest_gpu.py --merge <files_at>/gpu.json

``--extra-site`` appends the unpacked wheels to ``sys.path`` after the device's own packages, so
none of those is replaced (should chromadb then fail on an older package of the device's, rerun
with ``--extra-site-first``). Partial results are written to ``--json`` after every stage, and a
stage that fails records its error there while the others still run.

On a machine without CUDA the script says so and exits with status 2, leaving ``gpu`` null;
``--dry-run-cpu`` runs every CPU-side part (model building and wrapping, files, the probe, the
tensor path, the stages but nvJPEG, Chroma) on a tiny model and prints the entry it would write.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, write_report  # noqa: E402
from ingest import RESULTS, make_jpegs  # noqa: E402

WHEELS = Path(__file__).resolve().parent.parent / ".whl" / "chroma"
DEVICE_PYTHON = "3.12"
"""The device image's Python (``benchmarks/results/embed_gpu_h200.json``): wheels are fetched for it."""

COMMAND = (
    "python -m pip install -q --no-deps --no-index --target /tmp/xs .whl/chroma/*.whl && "
    "PYTHONPATH=src python benchmarks/ingest_gpu.py --extra-site /tmp/xs --json $OUT/gpu.json"
)


# -- the model ---------------------------------------------------------------------------------


def build_model(out: Path, tiny: bool) -> Path:
    """A CLIP saved with its processor at ``out``: ViT-B/32-shaped (``CLIPConfig`` defaults), or the demo's size."""
    import transformers

    from omniretrieve.demo.train import build_model as build_tiny
    from omniretrieve.demo.train import build_processor, build_tokenizer

    tokenizer = build_tokenizer()
    if tiny:
        model, processor = build_tiny(tokenizer), build_processor(tokenizer)
    else:
        text_config = {
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 77,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,  # pooling reads the first eos
        }
        config = transformers.CLIPConfig(text_config=text_config)  # vision: 224 px, patch 32, 768 wide
        model = transformers.CLIPModel(config)
        processor = transformers.CLIPProcessor(
            image_processor=transformers.CLIPImageProcessor(), tokenizer=tokenizer
        )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


# -- files -------------------------------------------------------------------------------------


def write_jpegs(folder: Path, n: int, workers: int) -> list[Path]:
    """N distinct 640x480 JPEGs, written by ``workers`` processes (one seed per part)."""
    parts = max(1, min(workers, n // 64 or 1))
    sizes = [n // parts + (1 if k < n % parts else 0) for k in range(parts)]
    with ProcessPoolExecutor(parts, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(make_jpegs, folder / f"part{k}", size, (640, 480), 100 + k)
            for k, size in enumerate(sizes)
        ]
        return [p for f in futures for p in f.result()]


# -- stages --------------------------------------------------------------------------------------


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("inf")


def _sync(device: Any) -> None:
    if getattr(device, "type", None) == "cuda":
        import torch

        torch.cuda.synchronize(device)


def decode_cpu(embedder: Any, paths: list[Path]) -> dict[str, Any]:
    """CPU decoding in worker processes, as the CPU path decodes (JPEG draft to the model's size)."""
    from dataclasses import replace

    from omniretrieve.media._workers import DecodePool, default_workers

    spec = replace(embedder.decode_spec(), jpeg_passthrough=False)
    pool = DecodePool(default_workers())
    try:
        pool.submit(spec, "image", str(paths[0]), "warm-up").result()
        [f.result() for f in [pool.submit(spec, "image", str(p), p.name) for p in paths[: pool.workers * 2]]]
        start = time.perf_counter()
        futures = [pool.submit(spec, "image", str(p), p.name) for p in paths]
        assert all(not hasattr(f.result(), "reason") for f in futures)
        took = time.perf_counter() - start
    finally:
        pool.close()
    return {
        "images_per_s": _rate(len(paths), took),
        "workers": pool.workers,
        "image_min_side": spec.image_min_side,
    }


def decode_gpu(embedder: Any, paths: list[Path], batch: int, out: list[Any]) -> dict[str, Any]:
    """nvJPEG decoding of files already read into memory (the decoded tensors go to ``out``)."""
    from omniretrieve.media._gpu_decode import EncodedJpeg, decode_on_device

    device, policy = embedder.model.device, embedder.media.policy
    jpegs = [EncodedJpeg(p.read_bytes(), 640, 480, p.name) for p in paths]
    decode_on_device(jpegs[:batch], device, policy)  # warm-up
    _sync(device)
    start = time.perf_counter()
    for lo in range(0, len(jpegs), batch):
        out += decode_on_device(jpegs[lo : lo + batch], device, policy)
    _sync(device)
    return {"images_per_s": _rate(len(jpegs), time.perf_counter() - start), "batch": batch}


def tensor_stages(embedder: Any, images: list[Any], batch: int) -> dict[str, Any]:
    """The tensor preprocessing and the model alone, on decoded images (device tensors or PIL)."""
    path = embedder.device_images
    pre = path._pre
    device = embedder.model.device
    pre(images[:batch])
    _sync(device)
    start = time.perf_counter()
    pixels = [pre(images[lo : lo + batch]) for lo in range(0, len(images), batch)]
    _sync(device)
    preprocess = time.perf_counter() - start
    path._forward(pixels[0])
    start = time.perf_counter()
    for chunk in pixels:
        path._forward(chunk)  # reads the vectors back: synchronises
    encode = time.perf_counter() - start
    return {"preprocess_tensor": _rate(len(images), preprocess), "encode_model": _rate(len(images), encode)}


def processor_preprocess(embedder: Any, images: list[Any]) -> float:
    """The processor's CPU preprocessing in this one process (what the tensor path replaces)."""
    model = embedder.model
    model.preprocess([{"image": images[0]}])
    start = time.perf_counter()
    for lo in range(0, len(images), 64):
        model.preprocess([{"image": image} for image in images[lo : lo + 64]])
    return _rate(len(images), time.perf_counter() - start)


def write_vectors(n: int, workdir: Path) -> dict[str, Any]:
    """The store's write path alone: N precomputed 512-d vectors with ids and metadata."""
    from omniretrieve.documents import Document
    from omniretrieve.store import Store
    from omniretrieve.testing.fakes import FakeEmbedder

    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((n, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = [
        Document(id=f"{i:064x}", parts=("image",), sha256=f"{i:064x}", image=f"/data/img{i}.jpg")
        for i in range(n)
    ]
    with Store(FakeEmbedder(512), path=workdir / "vectors") as store:
        start = time.perf_counter()
        results = store.add_vectors(vectors, docs)
        took = time.perf_counter() - start
    assert all(r.status == "added" for r in results)
    return {"images_per_s": _rate(n, took), "n_vectors": n}


def end_to_end(embedder: Any, paths: list[Path], folder: Path, batch: int) -> dict[str, Any]:
    """``Store.add`` of the files into a new store: the whole pipeline, images/s."""
    from omniretrieve.store import Store
    from omniretrieve.types import Image

    stages = embedder.device_images.seconds
    before = (stages.decode, stages.preprocess, stages.encode, stages.images)
    with Store(embedder, path=folder) as store:
        start = time.perf_counter()
        results = store.add([Image(p) for p in paths], batch_size=batch)
        took = time.perf_counter() - start
        failed = [r.error for r in results if not r.ok]
        assert not failed, failed[:3]
    out: dict[str, Any] = {
        "n_files": len(paths),
        "seconds": round(took, 2),
        "images_per_s": _rate(len(paths), took),
    }
    if stages.images > before[3]:
        out["tensor_path_busy_seconds_unsynchronised"] = {
            name: round(getattr(stages, name) - before[k], 2)
            for k, name in enumerate(("decode", "preprocess", "encode"))
        }
    return out


# -- the run ---------------------------------------------------------------------------------------


def _open(path: Path) -> Any:
    from PIL import Image as PILImage

    with PILImage.open(path) as image:
        return image.convert("RGB")


class Report:
    """The ``gpu`` entry, written to ``--json`` after every stage (a stage that fails records its error)."""

    def __init__(self, out: Path | None, entry: dict[str, Any]) -> None:
        self.out = out
        self.entry = entry
        self.save()

    def save(self) -> None:
        if self.out is not None:
            write_report(self.out, self.entry)

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # keep what the other stages measure
            self.entry.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
            value = None
        else:
            if value is not None:
                self.entry[name] = value
        print(
            f"{name}: {round(time.perf_counter() - start, 1)} s", json.dumps(self.entry.get(name)), flush=True
        )
        self.save()
        return value


def _versions() -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    found: dict[str, Any] = {}
    for dist in ("torch", "torchvision", "transformers", "sentence-transformers", "chromadb", "pillow"):
        try:
            found[dist] = md.version(dist)
        except md.PackageNotFoundError:
            found[dist] = None
    found["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return found


def run(args: argparse.Namespace) -> dict[str, Any]:
    from omniretrieve.embedding import SentenceTransformerEmbedder

    tiny = args.dry_run_cpu
    n = args.n if not tiny else min(args.n, 96)
    batch = args.batch_size if not tiny else 32
    began = time.perf_counter()
    report = Report(args.json, {
        "benchmark": "JPEG files to Chroma on one CUDA device (benchmarks/ingest_gpu.py)",
        "dry_run_cpu": tiny,
        "model": "tiny demo-sized CLIP" if tiny else "CLIP ViT-B/32-shaped (CLIPConfig defaults, random weights), fp16",
        "machine": machine(),
        "versions": _versions(),
        "n_files": n,
        "image_size": [640, 480],
        "batch_size": batch,
    })  # fmt: skip
    entry = report.entry
    with tempfile.TemporaryDirectory(prefix="omniretrieve-ingest-gpu-") as tmp:
        workdir = Path(tmp)
        paths = write_jpegs(workdir / "images", n, os.cpu_count() or 1)
        entry["files_written_seconds"] = round(time.perf_counter() - began, 1)
        entry["mean_file_kb"] = round(sum(p.stat().st_size for p in paths) / len(paths) / 1024, 1)
        model_dir = build_model(workdir / "model", tiny)
        embedder = SentenceTransformerEmbedder(
            str(model_dir),
            device="cpu" if tiny else "cuda",
            dtype=None if tiny else "float16",
            batch_size=batch,
            model_id="bench/clip-b32-random",
            device_preprocessing=True if tiny else None,
        )
        probe = embedder.device_images.probe
        entry["probe"] = {k: getattr(probe, k) for k in probe.__dataclass_fields__}
        report.save()
        sample = paths[: min(len(paths), args.stage_images)]
        stages: dict[str, Any] = {}
        entry["stages_images_per_s"] = stages
        report.stage("decode_cpu_workers", lambda: decode_cpu(embedder, sample))
        decoded: list[Any] = []  # nvJPEG's tensors on the device, else Pillow's images
        if probe.gpu_jpeg:
            report.stage("decode_nvjpeg", lambda: decode_gpu(embedder, sample, batch, decoded))
        pil_images = [_open(p) for p in (sample if not decoded else sample[:256])]
        if probe.accepted:
            report.stage("tensor_stages", lambda: tensor_stages(embedder, decoded or pil_images, batch))
        report.stage(
            "processor_preprocess_one_process", lambda: processor_preprocess(embedder, pil_images[:256])
        )
        decoded.clear()  # free the memory before the end-to-end runs
        pil_images.clear()
        report.stage("write_store", lambda: write_vectors(n, workdir))
        for name in ("decode_cpu_workers", "decode_nvjpeg", "write_store"):
            if isinstance(entry.get(name), dict):
                stages[name] = entry[name]["images_per_s"]
        stages.update(entry.get("tensor_stages") or {})
        if "processor_preprocess_one_process" in entry:
            stages["preprocess_processor_one_process"] = entry["processor_preprocess_one_process"]
        warm = paths[: min(len(paths), 2 * batch)]
        report.stage("warm_up", lambda: end_to_end(embedder, warm, workdir / "warm", batch))
        report.stage("end_to_end", lambda: end_to_end(embedder, paths, workdir / "store", batch))
        embedder.device_images.setting = False  # the processor path, for comparison
        part = paths[: min(len(paths), args.processor_files)]
        report.stage(
            "end_to_end_processor_path", lambda: end_to_end(embedder, part, workdir / "plain", batch)
        )
        embedder.close()
    rate = (entry.get("end_to_end") or {}).get("images_per_s")
    entry["images_per_s"] = rate
    entry["milestone_5000_reached"] = bool(rate and rate >= 5000)
    entry["goal_10000_reached"] = bool(rate and rate >= 10000)
    entry["total_seconds"] = round(time.perf_counter() - began, 1)
    entry["command"] = COMMAND
    report.save()
    return entry


# -- wheels for the device, and merging its result -----------------------------------------------

_IMPORTS_PROBE = """
import importlib.metadata as md, sys, tempfile
new = set()
before = set(sys.modules)  # 1. a store's write and search, from a bare interpreter: chromadb's imports
import numpy as np
from omniretrieve.documents import Document
from omniretrieve.store import Store
from omniretrieve.testing.fakes import FakeEmbedder
with Store(FakeEmbedder(8), path=tempfile.mkdtemp()) as store:
    docs = [Document(id=f"{i:064x}", parts=("image",), sha256=f"{i:064x}") for i in range(2)]
    store.add_vectors(np.eye(8, dtype=np.float32)[:2], docs)
    store.search_vector(np.eye(8, dtype=np.float32)[0], 1, query_modality="text")
new |= set(sys.modules) - before
import sentence_transformers, torch, transformers  # 2. what the device does without this project
from PIL import Image as PILImage
from omniretrieve.demo import load_model
demo = load_model()
demo.encode([{"image": PILImage.new("RGB", (64, 48))}]), demo.encode([{"text": "a red square"}])
before = set(sys.modules)  # 3. what this project adds to that
from omniretrieve.embedding import load_embedder
import omniretrieve.demo.train, omniretrieve.media._gpu_decode, omniretrieve.media._workers
with Store(load_embedder("demo", device_preprocessing=True), path=tempfile.mkdtemp()) as store:
    store.add([PILImage.new("RGB", (64, 48), (200, 10, 10)), "a red square"])
new |= set(sys.modules) - before
names = md.packages_distributions()
tops = {m.split(".")[0] for m in new}
print("\\n".join(sorted({f"{d}=={md.version(d)}" for t in tops for d in names.get(t, [])})))
"""

NOT_FETCHED = {
    "omniretrieve", "torch", "torchvision", "transformers", "sentence-transformers", "tokenizers", "safetensors",
    "huggingface-hub", "hf-xet", "numpy", "scipy", "scikit-learn", "pillow", "sympy", "mpmath", "networkx",
    "regex", "tqdm", "fsspec", "jinja2", "markupsafe", "packaging", "pyyaml", "typing-extensions",
    "filelock", "joblib", "threadpoolctl", "triton",
}  # fmt: skip
"""This project (it runs from ``src``) and what the device image has with torch, torchvision,
transformers, sentence-transformers and Pillow. Anything else a run imports is fetched; a fetched
package the device also has is harmless (``--extra-site`` comes after its own packages)."""


def fetch_wheels(dest: Path, python_version: str) -> None:
    """Download wheels of every distribution a store's write and search import (this venv's versions)."""
    probe = subprocess.run([sys.executable, "-c", _IMPORTS_PROBE], capture_output=True, text=True, check=True,
                           env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})  # fmt: skip
    pins = [
        line
        for line in probe.stdout.split()
        if line.split("==")[0].lower().replace("_", "-") not in NOT_FETCHED
        and not line.lower().startswith("nvidia")
    ]
    pins += ["httpcore", "h11", "anyio", "sniffio", "certifi"]  # httpx's, imported on first request
    pins = [p if "==" in p else _pinned(p) for p in pins]
    dest.mkdir(parents=True, exist_ok=True)
    platforms = ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(dest),
               "--python-version", python_version, "--implementation", "cp",
               *[arg for p in platforms for arg in ("--platform", p)], *pins]  # fmt: skip
    print(" ".join(command[3:]), flush=True)
    subprocess.run(command, check=True)
    size = sum(p.stat().st_size for p in dest.glob("*.whl")) / 2**20
    print(f"{len(list(dest.glob('*.whl')))} wheels, {size:.1f} MiB in {dest}")


def _pinned(dist: str) -> str:
    import importlib.metadata as md

    try:
        return f"{dist}=={md.version(dist)}"
    except md.PackageNotFoundError:
        return dist


def merge(entry_file: Path, out: Path) -> None:
    """Put a device run's entry under ``gpu`` in the results (dropping ``gpu_reason``)."""
    entry = json.loads(entry_file.read_text(encoding="utf-8"))
    if entry.get("dry_run_cpu"):
        raise SystemExit(f"{entry_file} is a --dry-run-cpu entry, not a GPU measurement")
    report = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    report["gpu"] = entry
    report.pop("gpu_reason", None)
    write_report(out, report)
    print(f"merged the gpu entry ({entry.get('images_per_s')} images/s end to end) into {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="JPEG files for the end-to-end run")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--stage-images", type=int, default=4096, help="files for each stage alone")
    parser.add_argument("--processor-files", type=int, default=4096, help="files for the processor path")
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the entry here (e.g. $OUT/gpu.json)"
    )
    parser.add_argument("--extra-site", type=Path, default=None, help="unpacked wheels, appended to sys.path")
    parser.add_argument("--extra-site-first", action="store_true", help="put --extra-site first on sys.path")
    parser.add_argument(
        "--dry-run-cpu", action="store_true", help="CPU-side parts on a tiny model, no results"
    )
    parser.add_argument(
        "--fetch-wheels", action="store_true", help=f"download the device's wheels to {WHEELS}"
    )
    parser.add_argument("--python-version", default=DEVICE_PYTHON)
    parser.add_argument(
        "--merge", type=Path, default=None, help="merge a device run's entry into the results"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    if args.extra_site is not None:  # after the device's own packages (none is replaced), or first
        sys.path.insert(len(sys.path) if not args.extra_site_first else 0, str(args.extra_site))
    if args.fetch_wheels:
        fetch_wheels(WHEELS, args.python_version)
        return
    if args.merge is not None:
        merge(args.merge, args.out)
        return
    import torch

    if not args.dry_run_cpu and not torch.cuda.is_available():
        print(
            "no CUDA device here: the gpu entry of ingest.json stays null (--dry-run-cpu checks the CPU parts)"
        )
        raise SystemExit(2)
    entry = run(args)
    print(json.dumps(entry, indent=1))


if __name__ == "__main__":  # spawned processes re-import this module: keep the guard
    main()
