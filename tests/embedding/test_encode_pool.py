"""``devices=``: encoding through sentence-transformers' multi-process pool (embedding/_pool.py).

One pooled demo embedder on two CPU processes for the whole module (starting the pool costs
seconds): the same vectors as in one process, in input order; a failing item fails alone, whether
it fails while loading or inside a pool process; the pool starts once and stops on close.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from omniretrieve.embedding import SentenceTransformerEmbedder, load_embedder
from omniretrieve.embedding._device_images import probe_images
from omniretrieve.errors import EmbeddingError, InvalidInputError, MediaDecodeError
from omniretrieve.types import Image


@pytest.fixture(scope="module")
def pooled() -> Iterator[SentenceTransformerEmbedder]:
    embedder = load_embedder("demo", devices=["cpu", "cpu"], batch_size=4)
    assert isinstance(embedder, SentenceTransformerEmbedder)
    yield embedder
    embedder.close()


@pytest.fixture(scope="module")
def single() -> SentenceTransformerEmbedder:
    embedder = load_embedder("demo", batch_size=4)
    assert isinstance(embedder, SentenceTransformerEmbedder)
    return embedder


def _items(folder: Path) -> list[Any]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(5):
        path = folder / f"shape{i}.jpg"
        PILImage.new("RGB", (40 + 9 * i, 30), (50 * i, 255 - 40 * i, 90)).save(path)
        files.append(Image(path))
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a whole JPEG")
    images = probe_images(seed=3)
    return [
        "a red circle on the left",
        files[0],
        images[0],
        "a small blue square",
        Image(broken),
        *files[1:],
        images[1],
        "three green triangles",
        images[2],
    ]


def test_pool_gives_the_single_process_vectors_in_order(
    pooled: SentenceTransformerEmbedder, single: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    items = _items(tmp_path / "media")
    ours = pooled.embed_each(items)
    theirs = single.embed_each(items)
    assert [r.index for r in ours] == list(range(len(items)))
    assert [r.ok for r in ours] == [r.ok for r in theirs]
    assert isinstance(ours[4].error, MediaDecodeError) and "broken.jpg" in str(ours[4].error)
    for mine, reference in zip(ours, theirs, strict=True):
        if mine.ok:
            assert mine.vector is not None and reference.vector is not None
            np.testing.assert_allclose(mine.vector, reference.vector, atol=1e-5)
    pool = pooled._pool
    assert pool is not None and pool.starts == 1 and len(pool.processes) == 2
    assert all(p.is_alive() for p in pool.processes)
    assert single._pool is None


def test_an_input_that_fails_in_a_pool_process_fails_alone(
    pooled: SentenceTransformerEmbedder, single: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrap = pooled._wrap

    def poisoned(route: Any, value: Any) -> Any:
        # A text the tokenizer rejects, reaching the model only inside a pool process.
        return {"text": 12345} if value == "POISON" else wrap(route, value)

    monkeypatch.setattr(pooled, "_wrap", poisoned)
    texts = ["a red circle", "POISON", "a blue square", "two yellow stars", "a green triangle"]
    results = pooled.embed_each(texts)
    assert [r.ok for r in results] == [True, False, True, True, True]
    assert isinstance(results[1].error, EmbeddingError)
    expected = single.embed([t for t in texts if t != "POISON"])
    got = np.stack([r.vector for r in results if r.vector is not None])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert pooled._pool is not None and pooled._pool.starts == 1  # a raised chunk kills no process


def test_leaving_the_with_block_stops_the_pool(pooled: SentenceTransformerEmbedder) -> None:
    pool = pooled._pool
    assert pool is not None
    if not pool.processes:
        pooled.embed(["start it"])
    pids = [p.pid for p in pool.processes]
    assert len(pids) == 2 and pool._finalizer is not None and pool._finalizer.atexit  # stopped at exit too
    with pooled:
        pass
    assert pool.processes == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    pooled.close()  # idempotent


def test_devices_are_checked(single: SentenceTransformerEmbedder) -> None:
    from omniretrieve.demo import model_path

    with pytest.raises(InvalidInputError, match="devices"):
        load_embedder("demo", devices=[])
    with pytest.raises(InvalidInputError, match="not a torch device"):
        load_embedder("demo", devices="cpu,nonsense:x")
    with pytest.raises(InvalidInputError, match="not both"):
        SentenceTransformerEmbedder(str(model_path()), device="cpu", devices=["cpu"])
    with pytest.raises(InvalidInputError, match="one device"):
        load_embedder("demo", devices="cpu,cpu", device_preprocessing=True)
    one = load_embedder("demo", devices="cpu")
    assert isinstance(one, SentenceTransformerEmbedder)
    assert one.devices == ("cpu",) and one._pool is None  # one device: no pool, the model is there
