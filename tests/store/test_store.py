from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImageModule

from omniretrieve.documents import Document
from omniretrieve.errors import (
    EmbeddingSpaceMismatchError,
    InvalidInputError,
    InvalidVectorError,
    MediaNotFoundError,
    StoreError,
    StoreLockedError,
    StoreNotFoundError,
)
from omniretrieve.store import LOCK_FILE, Store, check_vector, chroma_where
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.types import Audio, Image

DIM = 8


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder(dimension=DIM)


@pytest.fixture
def store(tmp_path: Path, embedder: FakeEmbedder) -> Any:
    with Store(embedder, path=tmp_path / "store") as s:
        yield s


def _png(path: Path, color: tuple[int, int, int] = (200, 10, 10)) -> Path:
    PILImageModule.new("RGB", (8, 8), color).save(path)
    return path


def test_add_is_idempotent_by_content(store: Store, embedder: FakeEmbedder) -> None:
    results = store.add(["a cat", "a dog"], metadatas=[{"n": 1}, None])
    assert [r.status for r in results] == ["added", "added"] and all(r.ok for r in results)
    calls = len(embedder.calls)
    again = store.add(["a cat", "a cat", "a bird"])
    assert [r.status for r in again] == ["exists", "exists", "added"]
    assert again[0].id == results[0].id
    assert sum(n for _, n, _ in embedder.calls[calls:]) == 1  # only the new text was embedded
    assert store.count() == 3 and store.count("text") == 3 and len(store) == 3
    # add never changes an existing document
    store.add(["a cat"], metadatas=[{"n": 2}])
    doc = store.get([results[0].id])[0]
    assert doc is not None and doc.metadata == {"n": 1}


def test_upsert_replaces_metadata_entirely(store: Store) -> None:
    (r,) = store.add(["a cat"], metadatas=[{"a": 1, "b": "x", "l": [1, 2]}])
    assert [x.status for x in store.upsert(["a cat"], metadatas=[{"a": 1, "b": "x", "l": [1, 2]}])] == [
        "unchanged"
    ]
    assert [x.status for x in store.upsert(["a cat"], metadatas=[{"a": 2}])] == ["updated"]
    doc = store.get([r.id])[0]
    assert doc is not None and doc.metadata == {"a": 2}  # b and l are gone, not merged
    # a type change is a change
    assert [x.status for x in store.upsert(["a cat"], metadatas=[{"a": 2.0}])] == ["updated"]
    got = store.get([r.id])[0]
    assert got is not None and type(got.metadata["a"]) is float
    assert [x.status for x in store.upsert(["a cat"])] == ["updated"]
    got = store.get([r.id])[0]
    assert got is not None and got.metadata == {}
    assert store.count() == 1


def test_duplicate_ids_in_one_call_apply_in_order(store: Store) -> None:
    results = store.upsert(["one", "two"], ids=["x", "x"], metadatas=[{"v": 1}, {"v": 2}])
    assert [r.status for r in results] == ["added", "updated"]
    doc = store.get(["x"])[0]
    assert doc is not None and doc.text == "two" and doc.metadata == {"v": 2}
    results = store.add(["three", "four"], ids=["y", "y"])
    assert [r.status for r in results] == ["added", "exists"]
    assert store.count() == 2


def test_bad_items_fail_alone(store: Store, tmp_path: Path) -> None:
    good = _png(tmp_path / "ok.png")
    results = store.add(
        ["fine", Image(tmp_path / "missing.png"), Image(good), "bad meta", np.zeros(3)],
        metadatas=[None, None, None, {"omni:x": 1}, None],
    )
    assert [r.status for r in results] == ["added", "failed", "added", "failed", "failed"]
    assert isinstance(results[1].error, MediaNotFoundError)
    assert isinstance(results[3].error, InvalidInputError) and isinstance(results[4].error, InvalidInputError)
    assert store.count() == 2 and store.count("image") == 1


def test_unsupported_modality_fails_alone(tmp_path: Path) -> None:
    with Store(FakeEmbedder(dimension=DIM, modalities=("text",)), path=tmp_path / "s") as store:
        results = store.add(["text", Audio(np.zeros(160, np.float32), sampling_rate=16_000)])
        assert [r.status for r in results] == ["added", "failed"]
        assert store.count() == 1


def test_vectors_are_checked_before_writing(store: Store) -> None:
    docs = [Document.from_item(f"d{i}") for i in range(5)]
    good = np.eye(DIM, dtype=np.float32)
    vectors = [good[0], np.full(DIM, np.nan), good[1][:4], np.zeros(DIM), good[2] * 3]
    results = store.add_vectors(vectors, docs)
    assert [r.status for r in results] == ["added", "failed", "failed", "failed", "added"]
    assert all(isinstance(r.error, InvalidVectorError) for r in results[1:4])
    stored = store.get_vectors([docs[4].id])[0]
    assert stored is not None and np.linalg.norm(stored) == pytest.approx(1.0)  # normalised
    with pytest.raises(InvalidInputError):
        store.add_vectors(good[:2], docs[:1])
    with pytest.raises(InvalidVectorError):
        check_vector([np.inf] + [0.0] * (DIM - 1), DIM)


def test_batches_are_split_by_chroma_max_batch_size(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store._collections, "max_batch", 3)
    col_calls: list[int] = []
    results = store.add([f"text {i}" for i in range(10)], batch_size=7)
    assert all(r.status == "added" for r in results) and store.count() == 10
    col = store._collections.kind("text")
    original = col.add

    def spy(**kwargs: Any) -> Any:
        col_calls.append(len(kwargs["ids"]))
        return original(**kwargs)

    monkeypatch.setattr(col, "add", spy)
    docs = [Document.from_item(f"vec {i}") for i in range(8)]
    store.add_vectors(np.eye(DIM, dtype=np.float32)[np.arange(8) % DIM] + 0.1, docs)
    assert col_calls == [3, 3, 2] and store.count() == 18


def test_chroma_failure_is_isolated_to_the_bad_item(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.add(["seed"])
    col = store._collections.kind("text")
    original = col.add

    def flaky(**kwargs: Any) -> Any:
        if "poison" in kwargs["documents"]:
            raise ValueError("refused")  # a validation refusal: only this item fails
        return original(**kwargs)

    monkeypatch.setattr(col, "add", flaky)
    results = store.add(["a", "poison", "b"])
    assert [r.status for r in results] == ["added", "failed", "added"]
    assert isinstance(results[1].error, StoreError)
    assert store.count() == 3
    stats = store.statistics()
    assert stats.count("text") == 3


def test_delete_get_count(store: Store) -> None:
    results = store.add(["a", "b", "c", "d"], metadatas=[{"g": 1}, {"g": 1}, {"g": 2}, {"g": 3, "h": True}])
    ids = [r.id for r in results]
    assert store.delete(ids=[ids[0], "missing"]) == 1
    assert store.delete(where={"g": 1}) == 1
    assert store.delete(where={"g": {"$in": [2, 3]}, "h": True}) == 1  # several keys: all must hold
    assert [d.text if d else None for d in store.get(ids)] == [None, None, "c", None]
    assert store.count() == 1
    assert store.delete(ids=[]) == 0
    with pytest.raises(InvalidInputError):
        store.delete()
    with pytest.raises(InvalidInputError):
        store.delete(where={"omni:sha256": "x"})
    with pytest.raises(InvalidInputError):
        store.get("abc")  # type: ignore[arg-type]


def test_kind_change_moves_between_collections(store: Store, tmp_path: Path) -> None:
    store.add(["caption"], ids=["doc"])
    (r,) = store.upsert([Image(_png(tmp_path / "a.png"))], ids=["doc"])
    assert r.status == "updated"
    assert store.count("text") == 0 and store.count("image") == 1
    doc = store.get(["doc"])[0]
    assert doc is not None and doc.kind == "image" and doc.text is None


def test_documents_round_trip(store: Store, tmp_path: Path) -> None:
    path = _png(tmp_path / "slide.png")
    meta = {"s": "x", "i": 3, "f": 1.5, "b": False, "ls": ["a"], "li": [1, 2], "lf": [0.5, 1.0], "lb": [True]}
    (r,) = store.add(
        [{"text": "slide", "image": str(path)}], metadatas=[meta], sources=["https://example.com/deck"]
    )
    doc = store.get([r.id])[0]
    assert doc is not None
    assert doc.kind == "combined" and doc.parts == ("text", "image")
    assert doc.text == "slide" and doc.image == str(path.absolute())
    assert doc.metadata == meta and all(type(doc.metadata[k]) is type(v) for k, v in meta.items())
    assert doc.source == "https://example.com/deck" and doc.sha256 == r.id


def test_copy_media_keeps_results_viewable(tmp_path: Path, embedder: FakeEmbedder) -> None:
    original = _png(tmp_path / "photo.png")
    data = original.read_bytes()
    with Store(embedder, path=tmp_path / "s", copy_media=True) as store:
        (r1, r2) = store.add([Image(original), PILImageModule.new("RGB", (4, 4), (0, 9, 0))])
        original.unlink()  # the original moves away
        doc = store.get([r1.id])[0]
        assert doc is not None and doc.image is not None
        copy = Path(doc.image)
        assert copy.read_bytes() == data and copy.is_relative_to(tmp_path / "s" / "media")
        assert copy.suffix == ".png"
        assert doc.source == original.resolve().as_uri()
        mem = store.get([r2.id])[0]
        assert mem is not None and mem.image is not None and Path(mem.image).exists()
        assert PILImageModule.open(mem.image).getpixel((0, 0)) == (0, 9, 0)
    # the store directory can move: copies are referenced relative to it
    moved = tmp_path / "moved"
    (tmp_path / "s").rename(moved)
    with Store(embedder, path=moved) as store:
        doc = store.get([r1.id])[0]
        assert doc is not None and doc.image is not None and Path(doc.image).read_bytes() == data


def test_without_copy_in_memory_media_have_no_reference(store: Store) -> None:
    (r,) = store.add([PILImageModule.new("RGB", (4, 4), (0, 9, 0))])
    doc = store.get([r.id])[0]
    assert doc is not None and doc.image is None and doc.missing_media == ("image",)


def test_embedder_mismatch_is_refused(tmp_path: Path, embedder: FakeEmbedder) -> None:
    with Store(embedder, path=tmp_path / "s") as store:
        store.add(["x"])
    with pytest.raises(EmbeddingSpaceMismatchError, match="fake:8"):
        Store(FakeEmbedder(dimension=4), path=tmp_path / "s")
    # the failed open released the lock: the right embedder still opens it
    with Store(embedder, path=tmp_path / "s") as store:
        assert store.count() == 1
    # another store name in the same directory is another space
    with Store(FakeEmbedder(dimension=4), path=tmp_path / "s", name="small") as other:
        assert other.count() == 0


def test_nan_query_is_refused(store: Store) -> None:
    store.add(["x"])
    with pytest.raises(InvalidVectorError):
        store.search_vector(np.full(DIM, np.nan))
    with pytest.raises(InvalidVectorError):
        store.search_vector(np.array([np.inf] + [0.0] * (DIM - 1)))
    with pytest.raises(InvalidVectorError):
        store.search_vector(np.ones(DIM + 1))


def test_lock_is_held_for_the_store_life(tmp_path: Path, embedder: FakeEmbedder) -> None:
    path = tmp_path / "s"
    store = Store(embedder, path=path)
    with pytest.raises(StoreLockedError, match="chroma run --path"):
        Store(embedder, path=path)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError):
        store.add(["x"])
    with Store(embedder, path=path):
        pass
    with Store(embedder, path=path):  # released on context exit
        pass
    assert (path / LOCK_FILE).exists()


def test_second_writing_process_gets_the_error(tmp_path: Path, embedder: FakeEmbedder) -> None:
    path = tmp_path / "s"
    script = textwrap.dedent(
        f"""
        import sys
        from omniretrieve.errors import StoreLockedError
        from omniretrieve.store import Store
        from omniretrieve.testing.fakes import FakeEmbedder
        try:
            Store(FakeEmbedder(dimension={DIM}), path={str(path)!r})
        except StoreLockedError as exc:
            print("LOCKED", exc)
            sys.exit(3)
        print("OPENED")
        """
    )
    with Store(embedder, path=path) as store:
        store.add(["held"])
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "chroma run --path" in proc.stdout and "port" in proc.stdout
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "OPENED" in proc.stdout, proc.stderr


def test_bad_arguments(tmp_path: Path, embedder: FakeEmbedder) -> None:
    with pytest.raises(InvalidInputError):
        Store(embedder, path=tmp_path / "a", name="bad.name")
    with pytest.raises(InvalidInputError):
        Store(embedder, path=tmp_path / "a", host="127.0.0.1")
    with pytest.raises(InvalidInputError):
        Store(embedder, path=tmp_path / "a", timeout=0)
    with Store(embedder, path=tmp_path / "a") as store:
        with pytest.raises(InvalidInputError):
            store.add("not a list")  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            store.add(["a"], ids=["x", "y"])
        with pytest.raises(InvalidInputError):
            store.count("pictures")  # type: ignore[arg-type]


def test_default_path_is_in_the_working_directory(
    tmp_path: Path, embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Store(embedder) as store:
        assert store.path == tmp_path / "omniretrieve-store" and store.embedded


def test_chroma_where_translation() -> None:
    assert chroma_where(None) is None and chroma_where({}) is None
    assert chroma_where({"a": 1}) == {"a": 1}
    assert chroma_where({"a": 1, "b": {"$gte": 2}}) == {"$and": [{"a": 1}, {"b": {"$gte": 2}}]}
    assert chroma_where({"$or": [{"a": 1}, {"b": "x", "c": True}]}) == {
        "$or": [{"a": 1}, {"$and": [{"b": "x"}, {"c": True}]}]
    }
    assert chroma_where({"tags": {"$contains": "red"}}) == {"tags": {"$contains": "red"}}
    assert chroma_where({"a": {"$in": (1, 2)}}) == {"a": {"$in": [1, 2]}}
    for bad in (
        {"omni:parts": "text"},
        {"$foo": 1},
        {"a": {"$regex": "x"}},
        {"a": {"$gt": 1, "$lt": 3}},
        {"a": None},
        {"a": {"$in": []}},
        {"$and": []},
        {"$or": "x"},
    ):
        with pytest.raises(InvalidInputError):
            chroma_where(bad)


def test_urls_are_refused_by_the_media_policy_before_any_connection(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from omniretrieve.errors import MediaPolicyError

    def no_connect(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(socket, "create_connection", no_connect)
    results = store.add([Image("https://example.com/cat.png"), "https://example.com/cat.png"])
    assert results[0].status == "failed" and isinstance(results[0].error, MediaPolicyError)
    assert results[1].status == "added"  # a plain str is text, never fetched
    doc = store.get([results[1].id])[0]
    assert doc is not None and doc.kind == "text" and doc.text == "https://example.com/cat.png"


# ---------------------------------------------------------------------------------------------
# Store.inspect: what a store holds, without its model
# ---------------------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under folder: its content and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _expected_gap(stats: Any) -> tuple[dict[str, float], dict[str, float]]:
    means = {k: stats.mean(k) for k in ("text", "image", "audio", "video", "combined") if stats.count(k) > 0}
    kinds = list(means)
    norms = {k: float(np.linalg.norm(m)) for k, m in means.items()}
    gaps = {
        f"{a}-{b}": float(np.linalg.norm(means[a] - means[b]))
        for i, a in enumerate(kinds)
        for b in kinds[i + 1 :]
    }
    return norms, gaps


def test_inspect_reads_an_embedded_store_without_its_model_and_writes_nothing(
    tmp_path: Path, embedder: FakeEmbedder
) -> None:
    from omniretrieve.store import SCHEMA_VERSION, StoreInfo

    path = tmp_path / "s"
    with Store(embedder, path=path) as store:
        results = store.add(
            ["a", "b", "c", Image(_png(tmp_path / "r.png")), Image(_png(tmp_path / "g.png", (0, 200, 0)))]
        )
        store.add([{"text": "slide", "image": str(tmp_path / "r.png")}])
        store.delete(ids=[results[0].id])
        stats = store.statistics()
    before = _snapshot(path)
    info = Store.inspect(path=path)
    assert isinstance(info, StoreInfo)
    assert (info.name, info.location, info.model_id, info.dimension) == (
        "omniretrieve",
        str(path),
        "fake:8",
        DIM,
    )
    assert info.similarity == "cosine" and info.schema_version == SCHEMA_VERSION
    assert info.counts == {"text": 2, "image": 2, "audio": 0, "video": 0, "combined": 1} and info.total == 5
    assert info.statistics_counts == info.counts
    norms, gaps = _expected_gap(stats)
    assert info.mean_norms == pytest.approx(norms, rel=1e-12) and set(info.mean_norms) == {
        "text",
        "image",
        "combined",
    }
    assert info.mean_distances == pytest.approx(gaps, rel=1e-12)
    assert set(info.mean_distances) == {"text-image", "text-combined", "image-combined"}
    assert _snapshot(path) == before  # read-only: no file written, touched or created
    # The id it reports is the one that reopens the store.
    with Store(FakeEmbedder(dimension=info.dimension), path=path) as store:
        assert store.embedder.model_id == info.model_id and store.count() == info.total


def test_inspect_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "s"
    writer = textwrap.dedent(
        f"""
        import sys
        import time
        from omniretrieve.store import Store
        from omniretrieve.testing.fakes import FakeEmbedder
        with Store(FakeEmbedder(dimension={DIM}), path={str(path)!r}) as store:
            for i in range(5):
                store.add([f"first {{i}} {{j}}" for j in range(20)])
            print("HALF", flush=True)
            sys.stdin.readline()
            for i in range(10):
                store.add([f"second {{i}} {{j}}" for j in range(20)])
                time.sleep(0.02)  # leaves the reader time to read between batches, even on a busy machine
            hits = store.search("second 9 19", k=1)
            assert store.count() == 300 and hits[0].document.text == "second 9 19", (store.count(), hits)
            print("DONE", store.count(), flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", writer],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = proc.stdout.readline().strip()
        assert line == "HALF", f"the writer did not start: {line!r} {proc.communicate(timeout=60)}"
        info = Store.inspect(path=path)
        assert info.counts["text"] == 100 and info.statistics_counts["text"] == 100
        with pytest.raises(StoreLockedError):  # the writer still holds its lock: inspect took none
            Store(FakeEmbedder(dimension=DIM), path=path)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        seen: list[tuple[int, int]] = []
        while proc.poll() is None:  # read again and again while the writer writes
            now = Store.inspect(path=path)
            seen.append((now.counts["text"], now.statistics_counts["text"]))
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0 and "DONE 300" in out, out + err
    counts = [c for c, _ in seen]
    assert counts == sorted(counts) and all(100 <= c <= 300 and c % 20 == 0 for c in counts), seen
    assert any(100 < c < 300 for c in counts), seen  # some reads fell while the writer was writing
    # the statistics are written just after the documents: a read between the two sees one batch less
    assert all(c - s in (0, 20) for c, s in seen), seen
    final = Store.inspect(path=path)
    assert final.counts["text"] == final.statistics_counts["text"] == 300
    with Store(FakeEmbedder(dimension=DIM), path=path) as store:  # intact for the next writer
        assert store.count() == 300 and store.search("first 0 0", k=1)[0].document.text == "first 0 0"


def test_inspect_in_the_process_that_holds_the_store_reads_through_it(
    tmp_path: Path, embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omniretrieve.store import _inspect

    calls: list[Path] = []
    real = _inspect.inspect_sqlite

    def spy(folder: Path, name: str, timeout: float | None) -> Any:
        calls.append(folder)
        return real(folder, name, timeout)

    monkeypatch.setattr(_inspect, "inspect_sqlite", spy)
    path = tmp_path / "s"
    with Store(embedder, path=path) as store:
        store.add(["a", "b"])
        assert Store.inspect(path=path).counts["text"] == 2
        store.add(["c"])
        live = Store.inspect(path=tmp_path / "." / "s")
        assert live.counts["text"] == live.statistics_counts["text"] == 3
        assert calls == []  # read through the open store's own client
        store.add(["d"])  # the store is undisturbed
        assert store.count() == 4
        held = Store.inspect(path=path)
        stats = store.statistics()
    closed = Store.inspect(path=path)  # from the database once the store is closed: the same answer
    assert calls == [path]
    assert closed == replace(held, mean_norms=closed.mean_norms) and closed.counts["text"] == 4
    assert closed.mean_norms == pytest.approx(held.mean_norms, rel=1e-12)
    assert closed.mean_norms == pytest.approx(_expected_gap(stats)[0], rel=1e-12)


def test_inspect_refuses_what_is_not_a_store(tmp_path: Path, embedder: FakeEmbedder) -> None:
    import chromadb
    from chromadb.config import Settings

    missing = tmp_path / "missing"
    with pytest.raises(StoreNotFoundError, match="no omniretrieve store") as info:
        Store.inspect(path=missing)
    assert str(missing) in str(info.value) and not missing.exists()  # nothing created
    assert not isinstance(info.value, ValueError)  # a store error, not a bad argument
    a_file = tmp_path / "file"
    a_file.write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    for path in (a_file, empty):
        with pytest.raises(StoreNotFoundError, match="no omniretrieve store"):
            Store.inspect(path=path)
    assert list(empty.iterdir()) == []

    # A Chroma directory with other collections, and a store of another name.
    other = tmp_path / "other"
    client = chromadb.PersistentClient(path=str(other), settings=Settings(anonymized_telemetry=False))
    client.create_collection("photos", embedding_function=None)
    client.create_collection("omniretrieve.text", embedding_function=None)  # not made by omniretrieve
    client.close()
    with pytest.raises(StoreError, match="not made by omniretrieve"):
        Store.inspect(path=other)
    with Store(embedder, path=other, name="mine") as store:
        store.add(["x"])
    with pytest.raises(StoreNotFoundError, match=r"named 'nope' \(stores found there: mine"):
        Store.inspect(path=other, name="nope")
    assert Store.inspect(path=other, name="mine").counts["text"] == 1
    with pytest.raises(InvalidInputError, match="name"):
        Store.inspect(path=other, name="bad name!")
    with pytest.raises(InvalidInputError, match="path/host"):
        Store.inspect(path=other, host="127.0.0.1")

    # Not a database at all.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="could not read"):
        Store.inspect(path=broken)


def test_inspect_without_stored_sums_reports_counts_and_reopening_adds_them(
    tmp_path: Path, embedder: FakeEmbedder
) -> None:
    path = tmp_path / "s"
    with Store(embedder, path=path) as store:
        store.add(["a", "b", Image(_png(tmp_path / "r.png"))])
        stats = store.statistics()
        # Statistics records as an omniretrieve without float64 sums in their metadata wrote them.
        stats_col = store._collections.stats
        got = stats_col.get(include=["embeddings", "metadatas"])
        stats_col.delete(ids=got["ids"])
        stats_col.add(
            ids=got["ids"],
            embeddings=got["embeddings"],
            metadatas=[{k: v for k, v in m.items() if k != "omni:sum"} for m in got["metadatas"]],
        )
    old = Store.inspect(path=path)
    assert old.statistics_counts["text"] == 2 and old.statistics_counts["image"] == 1
    assert old.mean_norms == {} and old.mean_distances == {}  # unknown, not made up
    with Store(embedder, path=path):  # the writer rewrites its statistics with the sums
        pass
    norms, gaps = _expected_gap(stats)
    new = Store.inspect(path=path)  # rebuilt from the float32 embeddings: float32 precision
    assert new.mean_norms == pytest.approx(norms, rel=1e-6) and new.mean_distances == pytest.approx(
        gaps, rel=1e-6
    )


@pytest.mark.server
def test_inspect_through_a_chroma_server(chroma_server: Any) -> None:
    from chroma_server import free_port

    from omniretrieve.errors import StoreConnectionError

    where = {"host": chroma_server.host, "port": chroma_server.port, "timeout": 20}
    one = Store(FakeEmbedder(dimension=DIM), name="inspected", **where)
    two = Store(FakeEmbedder(dimension=DIM), name="inspected", **where)
    try:
        one.add(["a", "b", Image(np.full((6, 6, 3), 9, dtype=np.uint8))])
        two.add(["c", Image(np.full((6, 6, 3), 200, dtype=np.uint8))])
        stats = one.statistics()  # both writers' records
        info = Store.inspect(name="inspected", **where)
        assert info.location == f"http://{chroma_server.host}:{chroma_server.port}"
        assert (info.model_id, info.dimension, info.similarity) == ("fake:8", DIM, "cosine")
        assert info.counts == {"text": 3, "image": 2, "audio": 0, "video": 0, "combined": 0}
        assert info.statistics_counts == info.counts
        norms, gaps = _expected_gap(stats)
        assert info.mean_norms == pytest.approx(norms, rel=1e-6)  # statistics() reads float32 sums
        assert info.mean_distances == pytest.approx(gaps, rel=1e-6) and set(gaps) == {"text-image"}
        two.add(["d"])  # the writers keep writing
        assert Store.inspect(name="inspected", **where).counts["text"] == 4
    finally:
        one.close()
        two.close()
    with pytest.raises(StoreNotFoundError, match=r"no omniretrieve store named 'absent'.*inspected"):
        Store.inspect(name="absent", **where)
    with pytest.raises(StoreConnectionError):
        Store.inspect(host="127.0.0.1", port=free_port(), timeout=5)
