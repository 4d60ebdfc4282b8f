"""Through a real Store: what a search reads from Chroma, and that each hit carries its stored record."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import omniretrieve.store._search as search_module
from omniretrieve.calibration import CALIBRATIONS, l2_normalize
from omniretrieve.documents import Document
from omniretrieve.errors import StoreError
from omniretrieve.store import Store
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.topk import first_fetch_size

DIM = 16


class _Counting:
    """A collection that counts the queries and reads made on it (and what they include)."""

    def __init__(self, col: Any, calls: Counter[str]) -> None:
        self._col = col
        self._calls = calls

    def query(self, **kwargs: Any) -> Any:
        self._calls["query" if "metadatas" in kwargs["include"] else "query-vectors"] += 1
        return self._col.query(**kwargs)

    def get(self, **kwargs: Any) -> Any:
        self._calls["get"] += 1
        return self._col.get(**kwargs)


@contextmanager
def _store(path: Path, kinds: Mapping[str, np.ndarray], *, exact_limit: int = 0) -> Iterator[Store]:
    """A store of each kind's vectors, ids ``KINDnnn``, metadata ``{"n": i, "tag": ...}``; every
    kind fetched from Chroma unless ``exact_limit`` says otherwise."""
    with Store(FakeEmbedder(dimension=DIM), path=path) as store:
        store._search.samples.exact_limit = exact_limit
        for kind, vectors in kinds.items():
            docs = [
                Document(
                    id=f"{kind}{n:03d}",
                    parts=("text", "image") if kind == "combined" else (kind,),  # type: ignore[arg-type]
                    sha256=f"{kind}{n:03d}",
                    text=f"{kind} text {n}" if kind in ("text", "combined") else None,
                    metadata={"n": n, "tag": f"{kind}-{n % 3}"},
                )
                for n in range(len(vectors))
            ]
            assert all(r.ok for r in store.add_vectors(vectors, docs))
        yield store


@contextmanager
def _counted(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Count the Chroma calls the store's search makes on its kinds' collections."""
    calls: Counter[str] = Counter()
    collections = store._search.collections
    plain = collections.kind
    counting: dict[str, _Counting] = {}

    def kind(name: str, *, create: bool = False) -> Any:
        col = plain(name, create=create)
        if col is None:
            return None
        if name not in counting:
            counting[name] = _Counting(col, calls)
        return counting[name]

    with monkeypatch.context() as patch:
        patch.setattr(collections, "kind", kind)
        yield calls


def _kinds(seed: int, n: int = 120) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        kind: l2_normalize(rng.standard_normal((n, DIM))).astype(np.float32) for kind in ("text", "image")
    }


def _far_best_match() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Images tight around their mean, the query's best match under ``"gap"`` far from it: found by widening."""
    rng = np.random.default_rng(0)
    centre = l2_normalize(rng.standard_normal(DIM)) * 3
    images = l2_normalize(centre + 0.05 * rng.standard_normal((200, DIM)))
    texts = l2_normalize(rng.standard_normal((50, DIM)))
    query = l2_normalize(rng.standard_normal(DIM))
    images[137] = l2_normalize(0.6 * l2_normalize(centre) + query)
    return {"text": texts.astype(np.float32), "image": images.astype(np.float32)}, query


@pytest.mark.parametrize("exact_limit", [0, 4096], ids=["chroma", "in-memory"])
def test_every_hit_carries_its_stored_record(tmp_path: Path, exact_limit: int) -> None:
    """Records read with the first fetch, by a read after widening, or for an in-memory kind: all
    are the stored documents (texts included: a text kind's, a combined kind's), for every
    calibration and for k beyond the first fetch."""
    kinds, query = _far_best_match()
    kinds["combined"] = l2_normalize(np.random.default_rng(5).standard_normal((30, DIM))).astype(np.float32)
    with _store(tmp_path / "s", kinds, exact_limit=exact_limit) as store:
        for calibration in CALIBRATIONS:
            for k in (1, 3, 10, 45, 280):
                hits = store.search_vector(query, k, calibration=calibration)  # type: ignore[arg-type]
                assert len(hits) == min(k, 280)
                assert [h.document for h in hits] == store.get([h.id for h in hits]), (calibration, k)
                assert all(str(h.document.metadata["tag"]).startswith(h.modality) for h in hits)
                for h in hits:
                    assert h.document.text == (
                        f"{h.id[:-3]} text {int(h.id[-3:])}" if h.modality != "image" else None
                    )
            assert {"text", "image", "combined"} <= {h.modality for h in hits}


def test_first_fetch_reads_records_and_a_widened_one_only_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kinds = _kinds(1)
    with _store(tmp_path / "s", kinds) as store:
        query = l2_normalize(np.random.default_rng(9).standard_normal(DIM))
        store.search_vector(query, 1)  # the store state's samples and bounds, computed once
        for calibration in ("none", "rrf", "auto"):
            with _counted(store, monkeypatch) as calls:
                hits = store.search_vector(query, 10, calibration=calibration)  # type: ignore[arg-type]
            cost = store._search.last_cost
            assert cost is not None and cost.rounds == 1, calibration
            # one query per kind, records included; nothing read afterwards
            assert calls == Counter({"query": 2}), calibration
            assert (
                cost.per_kind
                == {"text": 11, "image": 11}
                == {kind: first_fetch_size(calibration, 10) for kind in kinds}
            )
            assert {h.modality for h in hits} == {"text", "image"}
    widened, query = _far_best_match()
    with _store(tmp_path / "w", widened) as store:
        store.search_vector(query, 1)
        with _counted(store, monkeypatch) as calls:
            hits = store.search_vector(query, 3, calibration="gap")
        cost = store._search.last_cost
        assert cost is not None and cost.rounds > 1
        assert "image137" in [h.id for h in hits]
        assert calls["query"] == 2  # the first fetch of each kind reads records ...
        assert calls["query-vectors"] == cost.fetches - 2  # ... a widening fetch only vectors
        assert calls["get"] <= 2  # then one read per kind, of the hits not read yet
        assert [h.document for h in hits] == store.get([h.id for h in hits])


def test_a_hit_deleted_before_its_record_is_read_is_searched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kinds = _kinds(2, n=40)
    query = l2_normalize(np.random.default_rng(3).standard_normal(DIM))
    read = search_module._read
    with _store(tmp_path / "s", kinds, exact_limit=4096) as store:  # in memory: records read after
        expected = store.search_vector(query, 5)
        victim = expected[0].id
        reads = {"n": 0}

        def deleting_read(kind: str, records: Any, col: Any, ids: list[str]) -> None:
            reads["n"] += 1
            if reads["n"] == 1 and victim in ids:  # another writer deletes it now
                store.delete([victim])
            read(kind, records, col, ids)  # type: ignore[arg-type]

        monkeypatch.setattr(search_module, "_read", deleting_read)
        hits = store.search_vector(query, 5)
        assert victim not in [h.id for h in hits]
        assert [h.id for h in hits] == [h.id for h in expected[1:]] + [hits[-1].id]
        assert [h.document for h in hits] == store.get([h.id for h in hits])

        def losing_read(kind: str, records: Any, col: Any, ids: list[str]) -> None:
            read(kind, records, col, ids[1:])  # type: ignore[arg-type] # the first record is never found

        monkeypatch.setattr(search_module, "_read", losing_read)
        with pytest.raises(StoreError, match="deleted before their records could be read"):
            store.search_vector(query, 5)
