"""The store in client-server mode, against a real ``chroma run`` on a loopback port."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import httpx
import numpy as np
import pytest
from chroma_server import ChromaServer, free_port

from omniretrieve.calibration import ModalityStats
from omniretrieve.documents import content_sha256
from omniretrieve.errors import EmbeddingSpaceMismatchError, InvalidVectorError, StoreConnectionError
from omniretrieve.store import Store
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.types import Image

pytestmark = pytest.mark.server


DIM = 8


def _open(server: ChromaServer, name: str, dim: int = DIM) -> Store:
    return Store(FakeEmbedder(dimension=dim), host=server.host, port=server.port, name=name, timeout=20)


def test_server_store_basics(chroma_server: ChromaServer) -> None:
    with _open(chroma_server, "basics") as store:
        assert not store.embedded and store.path is None
        session = store._backend.client._server._session
        assert isinstance(session, httpx.Client) and session.timeout.read == 20
        img = np.full((6, 6, 3), 120, dtype=np.uint8)
        results = store.add(["a cat", "a dog", Image(img)], metadatas=[{"n": 1, "drop": "x"}, None, None])
        assert [r.status for r in results] == ["added"] * 3
        assert [r.status for r in store.upsert(["a cat"], metadatas=[{"n": 2}])] == ["updated"]
        doc = store.get([results[0].id])[0]
        assert doc is not None and doc.metadata == {"n": 2}
        hits = store.search("a cat", k=3)
        assert hits[0].id == results[0].id and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert store.search(Image(img), k=1)[0].id == results[2].id
        assert store.delete(where={"n": 2}) == 1 and store.count() == 2
        with pytest.raises(InvalidVectorError):
            store.search_vector(np.full(DIM, np.nan))


def test_server_refuses_another_embedder(chroma_server: ChromaServer) -> None:
    with _open(chroma_server, "space") as store:
        store.add(["x"])
    with pytest.raises(EmbeddingSpaceMismatchError):
        _open(chroma_server, "space", dim=4)


def test_unreachable_server_is_a_prompt_typed_error() -> None:
    port = free_port()  # nothing listens here
    start = time.monotonic()
    with pytest.raises(StoreConnectionError, match="chroma run"):
        Store(FakeEmbedder(dimension=DIM), host="127.0.0.1", port=port, timeout=2)
    assert time.monotonic() - start < 10


WRITER = textwrap.dedent(
    """
    import sys
    from omniretrieve.store import Store
    from omniretrieve.testing.fakes import FakeEmbedder
    port, prefix, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    store = Store(FakeEmbedder(dimension={dim}), host="127.0.0.1", port=port, name="writers", timeout=60)
    for start in range(0, n, 25):
        texts = [f"{{prefix}} {{i}}" for i in range(start, min(start + 25, n))]
        results = store.add(texts)
        assert all(r.status == "added" for r in results), results
    store.close()
    print("done", prefix)
    """
).format(dim=DIM)


def test_two_processes_write_through_the_server(chroma_server: ChromaServer) -> None:
    n = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(chroma_server.port), prefix, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ("alpha", "beta")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
    texts = [f"{p} {i}" for p in ("alpha", "beta") for i in range(n)]
    with _open(chroma_server, "writers") as store:
        assert store.count() == 2 * n
        docs = store.get([content_sha256(t) for t in texts])
        assert all(d is not None for d in docs) and {d.text for d in docs if d} == set(texts)
        # every writer's statistics arrived, none lost to the other
        stats = store.statistics()
        expected = ModalityStats.from_vectors(DIM, {"text": FakeEmbedder(dimension=DIM).embed(texts)})
        assert stats.count("text") == 2 * n
        np.testing.assert_allclose(stats.sums["text"], expected.sums["text"], atol=1e-4)
        # searching sees both writers' documents
        assert store.search("beta 7", k=1)[0].document.text == "beta 7"
        assert store.search("alpha 149", k=1)[0].document.text == "alpha 149"
