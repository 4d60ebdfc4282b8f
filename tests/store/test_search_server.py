"""Search on a server store with two writers: the per-state samples follow the other writer's writes."""

from __future__ import annotations

import numpy as np
import pytest
from chroma_server import ChromaServer

from omniretrieve.calibration import (
    CALIBRATIONS,
    KindCandidates,
    auto_choice,
    fuse,
    gap_statistic,
    l2_normalize,
)
from omniretrieve.documents import Document
from omniretrieve.store import Store
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.vectors import check_vector

pytestmark = pytest.mark.server

DIM = 8


def _open(server: ChromaServer) -> Store:
    return Store(
        FakeEmbedder(dimension=DIM), host=server.host, port=server.port, name="twowriters", timeout=20
    )


def _write(store: Store, kind: str, start: int, vectors: np.ndarray) -> None:
    docs = [
        Document(
            id=f"{kind}{start + i:03d}",
            parts=(kind,),  # type: ignore[arg-type]
            sha256=f"{kind}{start + i}",
            text="t" if kind == "text" else None,
        )
        for i in range(len(vectors))
    ]
    assert all(r.ok for r in store.add_vectors(vectors, docs))


def _brute_force(store: Store, query: np.ndarray, calibration: str) -> list[str]:
    stats = store.statistics()
    cands = []
    for kind in ("text", "image"):
        col = store._collections.kind(kind)
        assert col is not None
        ids = sorted(col.get(include=[])["ids"])
        cands.append(KindCandidates(kind, ids, np.asarray(store.get_vectors(ids), dtype=np.float32)))
    auto = auto_choice(gap_statistic({c.kind: c.vectors for c in cands}))  # kinds < SAMPLE_SIZE
    q = check_vector(query).astype(np.float64)
    hits = fuse(q, cands, 10, calibration=calibration, stats=stats, auto=auto, query_parts=("text",))  # type: ignore[arg-type]
    return [h.id for h in hits]


def test_samples_follow_another_writer(chroma_server: ChromaServer) -> None:
    rng = np.random.default_rng(0)
    query = l2_normalize(rng.standard_normal(DIM))
    with _open(chroma_server) as reader, _open(chroma_server) as writer:
        _write(writer, "text", 0, l2_normalize(rng.standard_normal((30, DIM)) + 1).astype(np.float32))
        _write(writer, "image", 0, l2_normalize(rng.standard_normal((20, DIM)) - 1).astype(np.float32))
        samples = reader._search.samples
        for calibration in CALIBRATIONS:
            assert [h.id for h in reader.search_vector(query, 10, calibration=calibration)] == _brute_force(  # type: ignore[arg-type]
                reader, query, calibration
            )
        assert samples.computed == 1  # once for the state, not per query or calibration
        first = samples.current(reader._statistics.current())
        # the other writer adds images right next to the query: the reader's next search sees them
        _write(
            writer, "image", 20, l2_normalize(query + 0.05 * rng.standard_normal((5, DIM))).astype(np.float32)
        )
        for calibration in CALIBRATIONS:
            hits = [h.id for h in reader.search_vector(query, 10, calibration=calibration)]  # type: ignore[arg-type]
            assert hits == _brute_force(reader, query, calibration)
            if calibration == "none":  # raw cosine ~1: they lead
                assert {f"image{i:03d}" for i in range(20, 25)} <= set(hits), calibration
        assert samples.computed == 2
        assert samples.current(reader._statistics.current()).gap_statistic != first.gap_statistic
