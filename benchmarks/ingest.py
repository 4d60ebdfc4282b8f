"""Ingest at scale: files and vectors into a store, each figure against its baseline in one run.

Figures (``benchmarks/results/ingest.json``; the machine's load average is recorded beside each,
since other work may share the CPUs):

- ``store_vs_plain_chroma``: ``Store.add_vectors`` of N precomputed vectors with ids and metadata,
  over plain ``collection.add`` of the same records (batches of Chroma's maximum), fresh
  directories, alternating which goes first;
- ``files_vs_naive``: N 640x480 JPEG files, demo model: ``Store.add`` (the pipeline: decoding in
  worker processes, encoding, a writer thread) over a naive loop (PIL open, ``SentenceTransformer
  .encode``, ``collection.add``, batches of 64) with the same loaded model;
- ``fake_embedder_files_per_s``: the same files through ``Store.add`` with ``FakeEmbedder`` (hashes
  the decoded pixels): the pipeline's own ceiling, decode + write;
- ``hnsw``: plain Chroma ``add`` rate for Chroma's HNSW settings (``batch_size``,
  ``sync_threshold``, ``num_threads``) on new collections;
- ``peak_rss_mb_20k_images``: peak resident memory (the process and its decoding workers) while
  ``Store.add`` ingests 20,000 images, in a child process;
- ``scale`` (``--scale``): add rate and query p50 (``Store.search_vector``, plain ``query`` beside
  it) at 10k, 100k and 1M random 512-d vectors, grown in one store;
- ``gpu``: written by ``benchmarks/ingest_gpu.py`` on a CUDA machine (a run of this script keeps
  it); null until then (see ``gpu_reason``).

Usage::

    python benchmarks/ingest.py                      # everything but scale
    python benchmarks/ingest.py --only scale --scale 10000,100000,1000000   # merged into the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, write_report  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ingest.json"
DIM = 512


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def make_jpegs(folder: Path, n: int, size: tuple[int, int] = (640, 480), seed: int = 0) -> list[Path]:
    """N distinct photo-like JPEGs (gradients, noise, a few shapes), ~80 KB each at 640x480."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = rng.normal(0, 10, (height, width, 3)).astype(np.float32)
    paths = []
    for i in range(n):
        a, b, c = rng.uniform(0.2, 1.0, 3)
        base = np.stack(
            [xx / width * 255 * a, yy / height * 255 * b, (xx + yy) / (width + height) * 255 * c], -1
        )
        shift = int(rng.integers(0, width))
        img = Image.fromarray(np.clip(base + np.roll(noise, shift, axis=1), 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(3):
            x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
            box = (x0, y0, x0 + int(rng.integers(20, 160)), y0 + int(rng.integers(20, 160)))
            draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        path = folder / f"img{i:06d}.jpg"
        img.save(path, quality=85)
        paths.append(path)
    return paths


def random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# -- store vs plain chroma ---------------------------------------------------------------------


def store_vs_plain(n: int, workdir: Path) -> dict[str, Any]:
    import chromadb

    from omniretrieve.documents import Document
    from omniretrieve.store import Store
    from omniretrieve.store._records import Records
    from omniretrieve.testing.fakes import FakeEmbedder

    rng = np.random.default_rng(1)
    vectors = random_unit(rng, n)
    docs = [
        Document(id=f"{i:064x}", parts=("image",), sha256=f"{i:064x}", image=f"/data/img{i}.jpg",
                 source=f"file:///data/img{i}.jpg", metadata={"n": i})
        for i in range(n)
    ]  # fmt: skip
    records = Records(None)
    metas = [records.metadata(d) for d in docs]
    ids = [d.id for d in docs]

    def ours(run: int) -> float:
        with Store(FakeEmbedder(DIM), path=workdir / f"ours{run}") as store:
            start = time.perf_counter()
            results = store.add_vectors(vectors, docs)
            took = time.perf_counter() - start
            assert all(r.status == "added" for r in results) and store.count() == n
        return took

    def plain(run: int) -> float:
        client = chromadb.PersistentClient(str(workdir / f"plain{run}"))
        col = client.get_or_create_collection(
            "plain.image", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
        size = client.get_max_batch_size()
        start = time.perf_counter()
        for lo in range(0, n, size):
            col.add(ids=ids[lo : lo + size], embeddings=vectors[lo : lo + size], metadatas=metas[lo : lo + size],
                    documents=[""] * len(ids[lo : lo + size]))  # fmt: skip
        took = time.perf_counter() - start
        assert col.count() == n
        return took

    before = load()
    seconds: dict[str, list[float]] = {"ours": [], "plain": []}
    for run in range(2):
        order = [("ours", ours), ("plain", plain)] if run % 2 == 0 else [("plain", plain), ("ours", ours)]
        for name, fn in order:
            seconds[name].append(fn(run))
    rates = {k: n / statistics.median(v) for k, v in seconds.items()}
    return {
        "n_vectors": n,
        "dimension": DIM,
        "ours_vectors_per_s": round(rates["ours"], 1),
        "plain_vectors_per_s": round(rates["plain"], 1),
        "ratio": round(rates["ours"] / rates["plain"], 3),
        "seconds": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
        "load_before_after": [before, load()],
    }


# -- files ---------------------------------------------------------------------------------------


def files_vs_naive(paths: list[Path], workdir: Path) -> dict[str, Any]:
    import chromadb
    from PIL import Image as PILImage

    from omniretrieve.embedding import DEMO_ALIAS, load_embedder
    from omniretrieve.store import Store
    from omniretrieve.types import Image

    ours_embedder = load_embedder(DEMO_ALIAS)
    model = ours_embedder.model  # type: ignore[attr-defined]

    def naive(run: int) -> float:
        client = chromadb.PersistentClient(str(workdir / f"naive{run}"))
        col = client.get_or_create_collection("naive", embedding_function=None)
        start = time.perf_counter()
        for lo in range(0, len(paths), 64):
            batch = paths[lo : lo + 64]
            images = []
            for p in batch:
                with PILImage.open(p) as img:
                    images.append(img.convert("RGB"))
            vectors = model.encode(images, batch_size=64, show_progress_bar=False)
            col.add(
                ids=[str(p) for p in batch], embeddings=vectors, metadatas=[{"path": str(p)} for p in batch]
            )
        took = time.perf_counter() - start
        assert col.count() == len(paths)
        return took

    def ours(run: int) -> float:
        with Store(ours_embedder, path=workdir / f"files{run}") as store:
            start = time.perf_counter()
            results = store.add([Image(p) for p in paths])
            took = time.perf_counter() - start
            assert all(r.status == "added" for r in results), [r.error for r in results if not r.ok][:3]
        return took

    ours(99)  # warm-up: starts the decoding processes, first-call costs
    before = load()
    seconds: dict[str, list[float]] = {"ours": [], "naive": []}
    for run in range(3):
        order = [("naive", naive), ("ours", ours)] if run % 2 == 0 else [("ours", ours), ("naive", naive)]
        for name, fn in order:
            seconds[name].append(fn(run))
    rates = {k: len(paths) / statistics.median(v) for k, v in seconds.items()}
    workers = ours_embedder._decode_pool.workers if ours_embedder._decode_pool else 0  # type: ignore[attr-defined]
    ours_embedder.close_workers()  # type: ignore[attr-defined]
    return {
        "n_files": len(paths),
        "image_size": [640, 480],
        "mean_file_kb": round(sum(p.stat().st_size for p in paths) / len(paths) / 1024, 1),
        "model": "omniretrieve demo model",
        "decode_workers": workers,
        "ours_files_per_s": round(rates["ours"], 1),
        "naive_files_per_s": round(rates["naive"], 1),
        "ratio": round(rates["ours"] / rates["naive"], 3),
        "seconds": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
        "load_before_after": [before, load()],
    }


def fake_files(paths: list[Path], workdir: Path) -> dict[str, Any]:
    from omniretrieve.store import Store
    from omniretrieve.testing.fakes import FakeEmbedder
    from omniretrieve.types import Image

    class DraftFake(FakeEmbedder):
        """The fake, decoding JPEGs as the demo model asks (draft mode down to 32 px a side)."""

        @property
        def image_min_side(self) -> int | None:
            return 32

    fake = DraftFake(32)
    with Store(fake, path=workdir / "fake-warm") as store:
        store.add([Image(p) for p in paths[:128]])
    before = load()
    with Store(fake, path=workdir / "fake") as store:
        start = time.perf_counter()
        results = store.add([Image(p) for p in paths])
        took = time.perf_counter() - start
        assert all(r.status == "added" for r in results)
    workers = fake._decode_pool.workers if fake._decode_pool else 0
    fake.close_workers()
    return {
        "n_files": len(paths),
        "files_per_s": round(len(paths) / took, 1),
        "decode_workers": workers,
        "note": "FakeEmbedder (hashes the decoded pixels) decoding like the demo model (JPEG draft to >= 32 px): "
        "read + hash + decode in workers + existence check + write, no model",
        "load_before_after": [before, load()],
    }


# -- hnsw settings -------------------------------------------------------------------------------


def hnsw(n: int, workdir: Path) -> dict[str, Any]:
    import chromadb

    configs: dict[str, dict[str, Any]] = {
        "default (batch_size 100, sync_threshold 1000)": {},
        "batch_size 1000, sync_threshold 5000": {"batch_size": 1000, "sync_threshold": 5000},
        "batch_size 500, sync_threshold 2000": {"batch_size": 500, "sync_threshold": 2000},
        "num_threads 1": {"num_threads": 1},
    }
    rng = np.random.default_rng(2)
    vectors = random_unit(rng, n)
    ids = [f"{i:064x}" for i in range(n)]
    out: dict[str, Any] = {"n_vectors": n, "load_before": load()}
    for k, (label, cfg) in enumerate(configs.items()):
        client = chromadb.PersistentClient(str(workdir / f"hnsw{k}"))
        col = client.get_or_create_collection(
            "hnsw", embedding_function=None, configuration={"hnsw": {"space": "cosine", **cfg}}
        )
        size = client.get_max_batch_size()
        start = time.perf_counter()
        for lo in range(0, n, size):
            col.add(ids=ids[lo : lo + size], embeddings=vectors[lo : lo + size])
        took = time.perf_counter() - start
        lat = []
        for i in range(50):
            s = time.perf_counter()
            col.query(query_embeddings=vectors[i : i + 1], n_results=10)
            lat.append(time.perf_counter() - s)
        out[label] = {
            "add_vectors_per_s": round(n / took, 1),
            "query_p50_ms": round(1000 * statistics.median(lat), 2),
        }
    out["load_after"] = load()
    return out


# -- peak memory ---------------------------------------------------------------------------------

_RSS_CHILD = """
import sys
from pathlib import Path
from omniretrieve.embedding import DEMO_ALIAS, load_embedder
from omniretrieve.store import Store
from omniretrieve.types import Image
if __name__ == "__main__":
    folder, store_dir = sys.argv[1:3]
    paths = sorted(Path(folder).glob("*.jpg"))
    with Store(load_embedder(DEMO_ALIAS), path=store_dir) as store:
        for lo in range(0, len(paths), 2048):  # as `omniretrieve index` does
            results = store.add([Image(p) for p in paths[lo : lo + 2048]])
            assert all(r.ok for r in results)
    print(len(paths))
"""


def _tree_rss_mb(pid: int) -> tuple[float, float]:
    """(the process's RSS, the RSS of it and its children) in MB, from /proc."""

    def rss(p: int) -> float:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return 0.0
        return 0.0

    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            children += [int(c) for c in text]
    except OSError:
        pass
    own = rss(pid)
    return own, own + sum(rss(c) for c in children)


def peak_rss(n: int, workdir: Path) -> dict[str, Any]:
    folder = workdir / "rss-images"
    make_jpegs(folder, n, seed=3)
    script = workdir / "rss_child.py"
    script.write_text(_RSS_CHILD)
    before = load()
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, str(script), str(folder), str(workdir / "rss-store")])
    peak_main = peak_tree = 0.0
    while child.poll() is None:
        own, tree = _tree_rss_mb(child.pid)
        peak_main, peak_tree = max(peak_main, own), max(peak_tree, tree)
        time.sleep(0.2)
    assert child.returncode == 0
    took = time.perf_counter() - start
    return {
        "n_images": n,
        "peak_rss_mb_main": round(peak_main, 1),
        "peak_rss_mb_with_workers": round(peak_tree, 1),
        "seconds": round(took, 1),
        "files_per_s_incl_startup": round(n / took, 1),
        "load_before_after": [before, load()],
    }


# -- scale ---------------------------------------------------------------------------------------


def scale(marks: list[int], workdir: Path, out: Path) -> dict[str, Any]:
    import chromadb

    from omniretrieve.documents import Document
    from omniretrieve.store import Store
    from omniretrieve.testing.fakes import FakeEmbedder

    rng = np.random.default_rng(4)
    queries = random_unit(rng, 100)
    rows: list[dict[str, Any]] = []
    began = time.perf_counter()
    chunk = 5000
    with Store(FakeEmbedder(DIM), path=workdir / "scale") as store:
        done = 0
        for mark in marks:
            before = load()
            start = time.perf_counter()
            while done < mark:
                k = min(chunk, mark - done)
                docs = [
                    Document(id=f"{done + i:064x}", parts=("image",), sha256=f"{done + i:064x}")
                    for i in range(k)
                ]
                results = store.add_vectors(random_unit(rng, k), docs)
                assert all(r.status == "added" for r in results)
                done += k
            took = time.perf_counter() - start
            lat = []
            for q in queries:
                s = time.perf_counter()
                store.search_vector(q, 10, query_modality="text")
                lat.append(time.perf_counter() - s)
            col = store._collections.kind("image")
            raw = []
            for q in queries:
                s = time.perf_counter()
                col.query(query_embeddings=q[None, :], n_results=10)
                raw.append(time.perf_counter() - s)
            row = {
                "vectors": mark,
                "add_vectors_per_s_this_step": round((mark - (rows[-1]["vectors"] if rows else 0)) / took, 1),
                "step_seconds": round(took, 1),
                "store_search_p50_ms": round(1000 * statistics.median(lat), 2),
                "chroma_query_p50_ms": round(1000 * statistics.median(raw), 2),
                "elapsed_minutes": round((time.perf_counter() - began) / 60, 1),
                "load_before_after": [before, load()],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            _merge(out, {"scale": {"dimension": DIM, "rows": rows, "complete": mark == marks[-1]}})
    del chromadb
    return {
        "dimension": DIM,
        "rows": rows,
        "complete": True,
        "total_minutes": round((time.perf_counter() - began) / 60, 1),
    }


def _merge(out: Path, part: dict[str, Any]) -> None:
    report = json.loads(out.read_text()) if out.exists() else {}
    report.update(part)
    write_report(out, report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-vectors", type=int, default=20_000)
    parser.add_argument("--n-files", type=int, default=2_000)
    parser.add_argument("--n-rss", type=int, default=20_000)
    parser.add_argument("--scale", default="10000,100000,1000000")
    parser.add_argument("--only", default=None, help="comma-separated figures to run (merged into the JSON)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    wanted = set(args.only.split(",")) if args.only else {"vectors", "files", "hnsw", "rss"}
    header: dict[str, Any] = {
        "benchmark": "ingest: files and vectors into a store (benchmarks/ingest.py)",
        "machine": machine(),
    }
    if not (json.loads(args.out.read_text()) if args.out.exists() else {}).get("gpu"):  # keep a measured one
        header["gpu"] = None
        header["gpu_reason"] = (
            "not measured yet: needs a CUDA machine (benchmarks/ingest_gpu.py, one prepared command in its docstring)"
        )
    _merge(args.out, header)
    with tempfile.TemporaryDirectory(prefix="omniretrieve-ingest-") as tmp:
        workdir = Path(tmp)
        if "vectors" in wanted:
            _merge(args.out, {"store_vs_plain_chroma": store_vs_plain(args.n_vectors, workdir)})
            print("vectors done", flush=True)
        if "files" in wanted or "fake" in wanted:
            paths = make_jpegs(workdir / "images", args.n_files)
            if "files" in wanted:
                _merge(args.out, {"files_vs_naive": files_vs_naive(paths, workdir)})
                print("files done", flush=True)
            _merge(args.out, {"fake_embedder_files_per_s": fake_files(paths, workdir)})
            print("fake done", flush=True)
        if "hnsw" in wanted:
            _merge(args.out, {"hnsw": hnsw(args.n_vectors, workdir)})
            print("hnsw done", flush=True)
        if "rss" in wanted:
            rss = peak_rss(args.n_rss, workdir)
            _merge(args.out, {"peak_rss_mb_20k_images": rss["peak_rss_mb_with_workers"], "peak_rss": rss})
            print("rss done", flush=True)
        if "scale" in wanted:
            marks = [int(x) for x in args.scale.split(",")]
            _merge(args.out, {"scale": scale(marks, workdir, args.out)})
            print("scale done", flush=True)


if __name__ == "__main__":  # spawned decoding processes re-import this module: keep the guard
    main()
