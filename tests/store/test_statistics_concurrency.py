"""Server-store statistics stay exact: failing statistics writes, late requests, concurrent writers.

The class of failure (issue 14, item 5): the statistics a server store keeps drifted from what it
stores. Found cause: a writer read its own statistics record back (with embeddings) before writing
it, a Chroma server fails such a read while another client's first write to the collection is in
flight ("Error creating hnsw segment reader: Nothing found on disk"), and the failure was logged and
the batch's change dropped. The tests inject that failure and the others a server gives (a write
failing once, failing for a while, applied but answered with an error), run several real writer
processes on overlapping content, and check that compaction and the per-query read stay cheap.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chroma_server import ChromaServer

from omniretrieve.calibration import ModalityStats
from omniretrieve.errors import StoreError
from omniretrieve.store import Store, _statistics
from omniretrieve.store._statistics import (
    ATTEMPTS,
    COMPACT_AFTER,
    SharedStatistics,
    StatRecord,
    fold,
    live_records,
)
from omniretrieve.testing.fakes import FakeEmbedder

pytestmark = pytest.mark.server

DIM = 8
HNSW_FAILURE = (
    "Error executing plan: Internal error: Error creating hnsw segment reader: Nothing found on disk"
)


class FlakyStats:
    """A store's statistics collection that fails the way a Chroma server does, on demand.

    Attributes:
        fail_upserts: Upserts still to fail (nothing written).
        land_then_fail: Upserts still to apply and then fail (a request that lands, answered late).
        fail_embedding_reads: Fail every ``get`` that asks for embeddings (the server's HNSW race).
        calls: ``(method, include)`` of every call.
    """

    def __init__(self, target: Any) -> None:
        self.target = target
        self.fail_upserts = 0
        self.land_then_fail = 0
        self.fail_embedding_reads = False
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)

    def upsert(self, **kwargs: Any) -> Any:
        self.calls.append(("upsert", ()))
        if self.land_then_fail:
            self.land_then_fail -= 1
            self.target.upsert(**kwargs)
            raise StoreError("Chroma failed on upsert(): InternalError: injected after the write landed")
        if self.fail_upserts:
            self.fail_upserts -= 1
            raise StoreError("Chroma failed on upsert(): InternalError: injected")
        return self.target.upsert(**kwargs)

    def get(self, **kwargs: Any) -> Any:
        include = tuple(kwargs.get("include") or ())
        self.calls.append(("get", include))
        if self.fail_embedding_reads and "embeddings" in include:
            raise StoreError(f"Chroma failed on get(): InternalError: {HNSW_FAILURE}")
        return self.target.get(**kwargs)


def _open(server: ChromaServer, name: str) -> Store:
    return Store(FakeEmbedder(dimension=DIM), host=server.host, port=server.port, name=name, timeout=20)


@pytest.fixture
def name() -> str:
    return f"st{uuid.uuid4().hex[:10]}"


@pytest.fixture
def flaky(chroma_server: ChromaServer, name: str) -> Iterator[tuple[Store, FlakyStats]]:
    store = _open(chroma_server, name)
    wrapped = FlakyStats(store._collections.stats)
    store._collections.stats = wrapped
    try:
        yield store, wrapped
    finally:
        store.close()


def _assert_exact(store: Store, live: ModalityStats | None = None) -> None:
    """Live statistics (another store's, by default this one's) equal a recount of the vectors.

    Sums up to two float32 ulps per vector: Chroma re-normalises the vectors of a cosine collection
    as it stores them, so a stored vector may differ from the one written in its last bits.
    """
    live = live if live is not None else store.statistics()
    exact = store._statistics.scan()
    for kind in set(live.kinds()) | set(exact.kinds()):
        assert live.count(kind) == exact.count(kind), (kind, live.counts, exact.counts)
        np.testing.assert_allclose(live.sums[kind], exact.sums[kind], rtol=0, atol=2.5e-7 * exact.count(kind))


def _texts(prefix: str, n: int) -> list[str]:
    return [f"{prefix} {i}" for i in range(n)]


# -- the records' arithmetic ----------------------------------------------------------------------


def _rec(seq: int, low: int, count: int, writer: str = "w", kind: str = "text") -> StatRecord:
    return StatRecord(f"{kind}:{writer}:{seq}", kind, count, np.full(2, float(count)), writer, seq, low)


def test_a_compacted_record_covers_the_records_it_summed_and_late_copies_of_them() -> None:
    deltas = [_rec(1, 1, 3), _rec(2, 2, 4), _rec(3, 3, -1)]
    summary = _rec(4, 1, 6)
    later = _rec(5, 5, 2)
    legacy = StatRecord("text:old", "text", 10, np.full(2, 10.0), "old")  # no seq: always counted
    other = _rec(2, 2, 7, writer="v")  # another writer's numbers are its own
    assert {r.id for r in live_records([*deltas, summary, later, legacy, other])} == {
        summary.id,
        later.id,
        legacy.id,
        other.id,
    }
    stats = fold([*deltas, summary, later, legacy, other], 2)
    assert stats.count("text") == 6 + 2 + 10 + 7
    np.testing.assert_allclose(stats.sums["text"], np.full(2, 25.0))
    # A pending change merged with a newer one covers it, should the older request land late.
    assert fold([_rec(7, 7, 1), _rec(8, 7, 3)], 2).count("text") == 3


# -- failing statistics writes on a server ----------------------------------------------------------


def test_a_failing_read_of_the_statistics_embeddings_loses_nothing(
    flaky: tuple[Store, FlakyStats],
) -> None:
    """The failure behind the lost batch: Chroma refusing to read the statistics' embeddings."""
    store, stats = flaky
    stats.fail_embedding_reads = True
    for part in range(3):
        results = store.add(_texts(f"read-{part}", 10), batch_size=4)
        assert [r.status for r in results] == ["added"] * 10
    assert store.statistics().count("text") == 30
    _assert_exact(store)
    assert not any("embeddings" in include for _, include in stats.calls)


def test_a_statistics_write_that_fails_once_is_written_again(flaky: tuple[Store, FlakyStats]) -> None:
    store, stats = flaky
    stats.fail_upserts = 1
    assert [r.status for r in store.add(_texts("once", 12), batch_size=5)] == ["added"] * 12
    assert stats.fail_upserts == 0
    _assert_exact(store)
    assert store._statistics.pending == 0  # type: ignore[attr-defined]


def test_statistics_that_cannot_be_written_are_kept_and_written_later(
    flaky: tuple[Store, FlakyStats], chroma_server: ChromaServer, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    store, stats = flaky
    store.add(_texts("before", 5))
    stats.fail_upserts = 10**6  # the server fails every statistics write for a while
    with caplog.at_level(logging.WARNING, logger="omniretrieve.store._statistics"):
        results = store.add(_texts("during", 9), batch_size=4)
        assert store.delete(ids=[results[0].id]) == 1
    assert [r.status for r in results] == ["added"] * 9  # the documents are written and reported
    _assert_exact(store)  # this process counts what it could not write yet
    assert "kept in memory" in caplog.text
    assert store._statistics.pending == 1  # type: ignore[attr-defined]
    with _open(chroma_server, name) as other:
        assert other.statistics().count("text") == 5  # others see the last written statistics
        stats.fail_upserts = 0
        assert store._statistics.flush()  # the next write, or closing the store, writes them
        _assert_exact(store, other.statistics())


def test_a_write_that_landed_but_failed_is_not_counted_twice(
    flaky: tuple[Store, FlakyStats], chroma_server: ChromaServer, name: str
) -> None:
    store, stats = flaky
    stats.land_then_fail = 2 * ATTEMPTS  # every try lands, every answer is an error (and the flush's)
    store.add(_texts("late", 6), batch_size=6)
    assert store._statistics.pending == 1  # type: ignore[attr-defined]
    store.add(_texts("next", 4))  # written with the pending change, which covers the landed one
    with _open(chroma_server, name) as other:
        _assert_exact(store, other.statistics())
        assert other.statistics().count("text") == 10


def test_unreachable_server_statistics_write_is_not_retried(
    flaky: tuple[Store, FlakyStats], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead server costs one timeout per statistics write, not one per try."""
    from omniretrieve.errors import StoreConnectionError

    store, stats = flaky
    tries = []

    def down(**kwargs: Any) -> None:
        tries.append(1)
        raise StoreConnectionError("the Chroma server failed on upsert()")

    monkeypatch.setattr(stats, "upsert", down)
    delta = ModalityStats(DIM)
    delta.add("text", np.ones((2, DIM)))
    store._statistics.changed(delta)
    assert len(tries) == 1 and store._statistics.pending == 1  # type: ignore[attr-defined]


# -- compaction and the per-query read --------------------------------------------------------------


@pytest.mark.parametrize("few", [0, _statistics.FEW_RECORDS])
def test_a_writer_compacts_its_records_and_late_records_are_covered(
    flaky: tuple[Store, FlakyStats],
    chroma_server: ChromaServer,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    few: int,
) -> None:
    """Compaction keeps every reader exact, the one listing ids first (``few=0``) included."""
    monkeypatch.setattr(_statistics, "FEW_RECORDS", few)
    store, stats = flaky
    statistics = store._statistics
    assert isinstance(statistics, SharedStatistics)
    first = None
    with _open(chroma_server, name) as reader:
        for i in range(3 * COMPACT_AFTER):
            store.add([f"one by one {i}"])
            if first is None:
                first = stats.target.get(include=["metadatas", "embeddings"])
            assert reader.statistics().count("text") == i + 1
        _assert_exact(store, reader.statistics())
    assert statistics.compacted >= 2
    mine = stats.target.get(where={"omni:writer": statistics.writer}, include=[])["ids"]
    assert len(mine) <= COMPACT_AFTER + 1
    store.delete(ids=[store.add(["then deleted"])[0].id])
    statistics.close()  # what Store.close() does: one record per kind is left
    assert len(stats.target.get(where={"omni:writer": statistics.writer}, include=[])["ids"]) == 1
    # A request of the first write that lands only now (a retry answered late) is not counted again.
    assert first is not None
    stats.target.upsert(ids=first["ids"], embeddings=first["embeddings"], metadatas=first["metadatas"])
    with _open(chroma_server, name) as other:
        assert other.statistics().count("text") == 3 * COMPACT_AFTER
        _assert_exact(store, other.statistics())
    # Store.inspect (omniretrieve info) counts the records the live reader counts.
    info = Store.inspect(host=chroma_server.host, port=chroma_server.port, name=name)
    assert info.statistics_counts["text"] == info.counts["text"] == 3 * COMPACT_AFTER


@pytest.mark.parametrize("few", [0, _statistics.FEW_RECORDS])
def test_a_search_reads_the_statistics_once_and_only_new_records(
    flaky: tuple[Store, FlakyStats],
    chroma_server: ChromaServer,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    few: int,
) -> None:
    """One request per query: all records when few, else their ids (and then only the new ones)."""
    monkeypatch.setattr(_statistics, "FEW_RECORDS", few)
    store, stats = flaky
    store.add(_texts("query", 20), batch_size=5)
    store.search("query 3", k=3)
    stats.calls.clear()
    for _ in range(5):
        store.search("query 3", k=3)
    listing = ("get", ()) if few == 0 else ("get", ("metadatas",))
    assert stats.calls == [listing] * 5
    with _open(chroma_server, name) as other:
        other.add(["written elsewhere"])
    stats.calls.clear()
    assert store.statistics().count("text") == 21
    assert stats.calls == [listing, ("get", ("metadatas",))] if few == 0 else [listing]
    _assert_exact(store)


def test_recompute_while_a_writer_stays_open(chroma_server: ChromaServer, name: str) -> None:
    with _open(chroma_server, name) as writer, _open(chroma_server, name) as admin:
        writer.add(_texts("kept", 7), batch_size=3)
        assert admin.recompute_statistics().count("text") == 7
        writer.add(_texts("after", 5), batch_size=3)
        writer.delete(ids=[writer.add(["gone"])[0].id])
        _assert_exact(admin)
        assert admin.statistics().count("text") == 12


# -- real writer processes --------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import json, sys
    from omniretrieve.store import Store
    from omniretrieve.testing.fakes import FakeEmbedder
    host, port, name, w, start = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    s = Store(FakeEmbedder(dimension=8), host=host, port=port, name=name, timeout=60)
    shared = [f"doc {i}" for i in range(start, start + 120)]
    added = [r.id for r in s.add(shared, batch_size=5) if r.status == "added"]
    own = s.add([f"{w} own {i}" for i in range(30)], ids=[f"{w}-{i}" for i in range(30)], batch_size=4)
    added += [r.id for r in own if r.status == "added"]
    up = s.upsert([f"{w} changed {i}" for i in range(10)], ids=[f"{w}-{i}" for i in range(10)], batch_size=3)
    assert all(r.status == "updated" for r in up), up
    s.delete(ids=[f"{w}-{i}" for i in range(20, 30)])
    added += [r.id for r in s.add(shared, batch_size=7) if r.status == "added"]
    s.close()
    print(json.dumps(added))
    """
)


def test_writer_processes_on_overlapping_content_keep_exact_statistics(tmp_path: Path) -> None:
    """Four processes: 120 shared texts each (overlapping), own ids upserted and deleted, small batches."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    name = "race"
    with ChromaServer(tmp_path / "db") as server:
        _open(server, name).close()  # the statistics collection exists, empty: its first write races
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _WRITER, server.host, str(server.port), name, f"w{w}", str(40 * w)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for w in range(4)
        ]
        outs = [p.communicate(timeout=600) for p in procs]
        assert all(p.returncode == 0 for p in procs), [e[-3000:] for _, e in outs]
        added = [i for out, _ in outs for i in json.loads(out.strip().splitlines()[-1])]
        shared = 120 + 3 * 40
        assert len(added) == len(set(added)) == shared + 4 * 30  # "added" once per document
        with _open(server, name) as store:
            assert store.count() == shared + 4 * 20
            live = store.statistics()
            assert live.count("text") == shared + 4 * 20, [e[-3000:] for _, e in outs]
            _assert_exact(store, live)
            records = store._collections.stats.get(include=[])["ids"]
            assert len(records) <= 4 * (COMPACT_AFTER + 1), records  # each writer compacted its own
