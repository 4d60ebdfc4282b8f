"""The pipelined ingest (store/_pipeline.py, embedding load_ahead, media/_workers.py): its semantics.

Order of results, a bad file among good ones, repeated ids across batches in flight, bounded
memory, decoding in worker processes under the caller's MediaPolicy, and kill -9 then resume.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from omniretrieve.embedding.base import LOAD_AHEAD_CHUNKS
from omniretrieve.errors import MediaDecodeError, MediaTooLargeError, PathNotAllowedError
from omniretrieve.media import MediaLoader, MediaPolicy
from omniretrieve.store import Store
from omniretrieve.store import _ingest as ingest_module
from omniretrieve.store._pipeline import AHEAD, QUEUE, Pipeline
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.types import Image


def _jpegs(folder: Path, n: int, size: tuple[int, int] = (64, 48), start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = folder / f"img{i:04d}.jpg"
        PILImage.new("RGB", size, (i % 256, (7 * i) % 256, (13 * i) % 256)).save(path, quality=95)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def embedder() -> Any:
    """One fake with two decoding processes for the module (starting processes costs a second)."""
    fake = FakeEmbedder(16)
    fake.decode_workers = 2
    yield fake
    fake.close_workers()


class _Counting(FakeEmbedder):
    """A fake that counts the items whose media are loading or loaded but not yet encoded."""

    def __init__(self) -> None:
        super().__init__(16)
        self.decode_workers = 0
        self.held = 0
        self.max_held = 0

    def load_ahead(self, items: Any, **kwargs: Any) -> Any:
        self.held += len(items)
        self.max_held = max(self.max_held, self.held)
        loading = super().load_ahead(items, **kwargs)
        loading.count = len(items)
        return loading

    def encode_loaded(self, loading: Any, **kwargs: Any) -> Any:
        try:
            return super().encode_loaded(loading, **kwargs)
        finally:
            self.held -= loading.count


def test_results_in_input_order_with_a_bad_file_failing_alone(tmp_path: Path, embedder: Any) -> None:
    paths = _jpegs(tmp_path / "imgs", 40)
    bad = tmp_path / "imgs" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff this is not a whole JPEG")
    items: list[Any] = [Image(p) for p in paths]
    items.insert(17, Image(bad))
    items.insert(5, "a caption among the images")
    with Store(embedder, path=tmp_path / "store") as store:
        results = store.add(items, batch_size=4)
        assert [r.index for r in results] == list(range(len(items)))
        statuses = [r.status for r in results]
        bad_at = 18  # 17, shifted by the caption inserted before it
        assert statuses[bad_at] == "failed"
        assert isinstance(results[bad_at].error, MediaDecodeError)
        assert "broken.jpg" in str(results[bad_at].error)
        assert statuses.count("added") == len(items) - 1
        assert store.count() == len(items) - 1
        # Each id is the content hash, in input order: the same as embedding one by one says.
        expected = [embedder.embed([item])[0] for item in items if item is not items[bad_at]]
        got = store.get_vectors([r.id for r in results if r.ok])
        for want, have in zip(expected, got, strict=True):
            assert have is not None
            np.testing.assert_allclose(have, want, atol=1e-6)
        assert store.statistics().counts["image"] == 40


def test_repeated_content_across_batches_in_flight_is_written_once(tmp_path: Path, embedder: Any) -> None:
    paths = _jpegs(tmp_path / "imgs", 12)
    items = [Image(p) for p in paths] + [Image(paths[0]), Image(paths[3])]  # repeats, later batches
    items.insert(2, Image(paths[1]))  # a repeat inside one batch
    with Store(embedder, path=tmp_path / "store") as store:
        results = store.add(items, batch_size=3)
        statuses = [r.status for r in results]
        assert statuses.count("added") == 12
        assert statuses.count("exists") == 3
        assert statuses[2] == "exists" and statuses[-1] == "exists" and statuses[-2] == "exists"
        assert store.count() == 12
        assert store.statistics().counts["image"] == 12
        again = store.upsert([Image(p) for p in paths], batch_size=5)
        assert {r.status for r in again} == {"unchanged"}


def test_upsert_through_the_pipeline_replaces_and_keeps_counts(tmp_path: Path, embedder: Any) -> None:
    paths = _jpegs(tmp_path / "imgs", 10)
    ids = [f"doc{i}" for i in range(10)]
    with Store(embedder, path=tmp_path / "store") as store:
        store.add([Image(p) for p in paths], ids=ids, batch_size=3)
        swapped = [Image(p) for p in reversed(paths)]
        results = store.upsert(swapped, ids=ids, batch_size=3)
        assert [r.status for r in results] == ["updated"] * 10
        assert store.count() == 10
        stats = store.statistics()
        assert stats.counts["image"] == 10
        vectors = np.stack([v for v in store.get_vectors(ids) if v is not None])
        np.testing.assert_allclose(stats.sums["image"], vectors.sum(axis=0), atol=1e-4)


def test_memory_is_bounded_by_the_window_not_the_corpus(tmp_path: Path, monkeypatch: Any) -> None:
    fake = _Counting()
    seen: list[Pipeline] = []

    class Spy(Pipeline):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            seen.append(self)

    monkeypatch.setattr(ingest_module, "Pipeline", Spy)
    batch = 4
    items = [f"text number {i}" for i in range(200)]
    done: list[int] = []
    with Store(fake, path=tmp_path / "store") as store:
        results = store.add(items, batch_size=batch, progress=done.append)
    assert all(r.status == "added" for r in results) and len(results) == 200
    assert done[-1] == 200 and done == sorted(done)
    # Loaded but not encoded: the batch being encoded and AHEAD more.
    assert 0 < fake.max_held <= (AHEAD + 1) * batch
    # Between planning and written: the window (+1 being planned), the writer's queue, what it merged.
    assert 0 < seen[0].max_in_flight <= (AHEAD + 2 * QUEUE + 2) * batch


def test_embed_each_loads_a_bounded_number_of_chunks_ahead(tmp_path: Path, monkeypatch: Any) -> None:
    from omniretrieve.embedding import jobs

    made: list[Any] = []

    class SpyLoads(jobs.Loads):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr("omniretrieve.embedding.base.Loads", SpyLoads)
    fake = FakeEmbedder(8, batch_size=4)
    fake.decode_workers = 0
    paths = _jpegs(tmp_path, 40)
    assert len(fake.embed([Image(p) for p in paths])) == 40
    assert made[0].started_max == LOAD_AHEAD_CHUNKS + 1


def test_worker_processes_decode_like_this_process_under_its_policy(tmp_path: Path, embedder: Any) -> None:
    paths = _jpegs(tmp_path / "imgs", 6, size=(640, 480))
    here = FakeEmbedder(16)
    here.decode_workers = 0
    items = [Image(p) for p in paths]
    np.testing.assert_array_equal(embedder.embed(items), here.embed(items))

    strict = FakeEmbedder(16, media=MediaLoader(MediaPolicy(allowed_roots=(str(tmp_path / "elsewhere"),))))
    strict.decode_workers = 1
    try:
        refused = strict.embed_each(items[:2])
        assert all(isinstance(r.error, PathNotAllowedError) for r in refused)
        small = FakeEmbedder(16, media=MediaLoader(MediaPolicy(max_image_pixels=1000)))
        small.decode_workers = 1
        too_big = small.embed_each(items[:2])
        assert all(isinstance(r.error, MediaTooLargeError) for r in too_big)
        assert "img0000.jpg" in str(too_big[0].error)
    finally:
        strict.close_workers()


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from omniretrieve.store import Store
    from omniretrieve.testing.fakes import FakeEmbedder
    from omniretrieve.types import Image

    class Slow(FakeEmbedder):
        def _encode(self, route, inputs, role):
            time.sleep(0.05)
            return super()._encode(route, inputs, role)

    if __name__ == "__main__":
        store_dir, folder, marker = sys.argv[1:4]
        paths = sorted(Path(folder).glob("*.jpg"))
        fake = Slow(16, batch_size=4)
        with Store(fake, path=store_dir) as store:
            store.add(
                [Image(p) for p in paths], batch_size=4, workers=1,
                progress=lambda done: Path(marker).write_text(str(done)),
            )
        Path(marker).write_text("finished")
    """
)


def test_kill_9_mid_ingest_then_resume_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    paths = _jpegs(tmp_path / "imgs", 160)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    marker = tmp_path / "done.txt"
    store_dir = tmp_path / "store"
    child = subprocess.Popen(
        [sys.executable, str(script), str(store_dir), str(tmp_path / "imgs"), str(marker)],
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = marker.read_text() if marker.exists() else "0"
            if text == "finished" or int(text or 0) >= 40:
                break
            assert child.poll() is None, "the child died before it was killed"
            time.sleep(0.05)
        assert marker.read_text() != "finished", "the ingest ended before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        try:
            os.killpg(child.pid, signal.SIGKILL)  # the child's decoding process, if it outlived it
        except ProcessLookupError:
            pass
    fake = FakeEmbedder(16, batch_size=4)
    fake.decode_workers = 0
    with Store(fake, path=store_dir) as store:
        before = store.count()
        assert 0 < before < 160
        results = store.add([Image(p) for p in paths], batch_size=16)
        statuses = [r.status for r in results]
        assert statuses.count("exists") == before
        assert statuses.count("added") == 160 - before
        assert store.count() == 160
        assert len({r.id for r in results}) == 160
        assert store.statistics().counts["image"] == 160
        assert all(v is not None for v in store.get_vectors([r.id for r in results]))


_UNGUARDED = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from omniretrieve.testing.fakes import FakeEmbedder
    from omniretrieve.types import Image

    # No `if __name__ == "__main__":` guard: spawned processes re-run this and cannot start.
    fake = FakeEmbedder(8)
    fake.decode_workers = 1
    results = fake.embed_each([Image(p) for p in sorted(Path(sys.argv[1]).glob("*.jpg"))])
    print("ok", sum(r.ok for r in results), "unusable", fake._decode_pool.unusable)
    """
)


def test_an_unguarded_main_module_falls_back_to_decoding_in_process(tmp_path: Path) -> None:
    _jpegs(tmp_path / "imgs", 5)
    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "imgs")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "ok 5 unusable True"
    assert "guard it with" in done.stderr
