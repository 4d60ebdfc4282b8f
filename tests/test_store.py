from __future__ import annotations

import subprocess
import sys
import textwrap
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
    monkeypatch.setattr(store, "_max_batch", 3)
    col_calls: list[int] = []
    results = store.add([f"text {i}" for i in range(10)], batch_size=7)
    assert all(r.status == "added" for r in results) and store.count() == 10
    col = store._collections["text"]
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
    col = store._collections["text"]
    original = col.add

    def flaky(**kwargs: Any) -> Any:
        if "poison" in kwargs["documents"]:
            raise RuntimeError("refused")
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
