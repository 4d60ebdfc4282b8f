"""What the model-identity check costs when a store opens (issue 15: under 100 ms with the demo model).

Opens a small demo-model store N times and times, per open, the fingerprint check on its own
(re-embedding the probe set and comparing it with the recorded one) and the whole ``Store(...)``
open beside it, the baseline the check adds to. Writes ``benchmarks/results/fingerprint.json``.

    HF_HUB_OFFLINE=1 python benchmarks/fingerprint.py [--opens 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _report import machine, write_report

RESULTS = Path(__file__).parent / "results" / "fingerprint.json"


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "median": round(1000 * statistics.median(values), 2),
        "min": round(1000 * min(values), 2),
        "max": round(1000 * max(values), 2),
    }


def run(opens: int, threads: int | None) -> dict[str, Any]:
    import torch

    import omniretrieve.store._identity as identity
    import omniretrieve.store._store as store_module
    from omniretrieve.embedding import load_embedder
    from omniretrieve.store import Store

    if threads:
        torch.set_num_threads(threads)
    embedder = load_embedder("demo")
    folder = tempfile.mkdtemp(prefix="omniretrieve-fingerprint-")
    try:
        with Store(embedder, path=folder) as store:
            store.add(["a red circle", "a blue square"])
        checks: list[float] = []
        whole: list[float] = []
        real = identity.check_identity

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                checks.append(time.perf_counter() - started)

        store_module.check_identity = timed  # type: ignore[attr-defined]
        try:
            for _ in range(opens):
                started = time.perf_counter()
                Store(embedder, path=folder).close()
                whole.append(time.perf_counter() - started)
        finally:
            store_module.check_identity = real  # type: ignore[attr-defined]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "opens": opens,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "fingerprint_check_ms": _ms(checks),
        "store_open_ms": _ms(whole),
        "check_under_100ms": statistics.median(checks) < 0.1,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opens", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(args.opens, args.threads)
    report = {"benchmark": "fingerprint", "machine": machine(), **result}
    write_report(args.out, report)
    print(
        f"fingerprint check: median {result['fingerprint_check_ms']['median']} ms "
        f"(open {result['store_open_ms']['median']} ms), load {result['load_average_1min']}"
    )
    return 0 if result["check_under_100ms"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
