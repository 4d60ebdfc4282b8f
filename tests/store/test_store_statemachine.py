"""The store against a plain Python model: add, re-add, update, delete, reopen."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from omniretrieve.calibration import ModalityStats
from omniretrieve.documents import content_sha256
from omniretrieve.store import FLOAT_TOLERANCE, Store
from omniretrieve.testing.fakes import FakeEmbedder

DIM = 8
# Chroma syncs every write to disk; on a RAM disk the machine runs ~5x faster.
FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
TEXTS = [f"text number {i}" for i in range(6)]

metadata_values = st.one_of(
    st.text(max_size=4),
    st.integers(-5, 5),
    st.floats(-2, 2, allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.lists(st.integers(0, 3), min_size=1, max_size=2),
    st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2),
)
metadatas = st.dictionaries(st.sampled_from(["k1", "k2", "k3", "tag"]), metadata_values, max_size=3)


def _same(got: Any, want: Any) -> bool:
    """Equal, types included; floats to within Chroma's round-trip error."""
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_same, got, want))
    if type(got) is not type(want):
        return False
    if isinstance(want, float):
        return math.isclose(got, want, rel_tol=FLOAT_TOLERANCE)
    return bool(got == want)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="omni-sm-", dir=FAST_TMP)
        self.embedder = FakeEmbedder(dimension=DIM)
        self.store = Store(self.embedder, path=self.dir)
        # model: id -> (text, metadata)
        self.model: dict[str, tuple[str, dict[str, Any]]] = {}
        self.ids: dict[str, str] = {}  # text -> content id

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _id(self, text: str) -> str:
        return self.ids.setdefault(text, content_sha256(text))

    @rule(text=st.sampled_from(TEXTS), meta=metadatas)
    def add(self, text: str, meta: dict[str, Any]) -> None:
        (r,) = self.store.add([text], metadatas=[meta])
        doc_id = self._id(text)
        assert r.id == doc_id
        if doc_id in self.model:
            assert r.status == "exists"
        else:
            assert r.status == "added"
            self.model[doc_id] = (text, dict(meta))

    @rule(text=st.sampled_from(TEXTS), meta=metadatas)
    def upsert(self, text: str, meta: dict[str, Any]) -> None:
        (r,) = self.store.upsert([text], metadatas=[meta])
        doc_id = self._id(text)
        if doc_id not in self.model:
            assert r.status == "added"
        else:
            assert r.status in ("updated", "unchanged")
            if r.status == "unchanged":
                assert self.model[doc_id][1] == meta
        self.model[doc_id] = (text, dict(meta))

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def readd_existing(self, data: st.DataObject) -> None:
        doc_id = data.draw(st.sampled_from(sorted(self.model)))
        text, meta = self.model[doc_id]
        (r,) = self.store.add([text], metadatas=[{"ignored": 1}])
        assert r.status == "exists"

    @rule(text=st.sampled_from(TEXTS))
    def delete_by_id(self, text: str) -> None:
        doc_id = self._id(text)
        n = self.store.delete(ids=[doc_id])
        assert n == (1 if doc_id in self.model else 0)
        self.model.pop(doc_id, None)

    @rule(tag=st.sampled_from(["a", "b"]))
    def delete_by_filter(self, tag: str) -> None:
        n = self.store.delete(where={"tag": tag})
        gone = [i for i, (_, m) in self.model.items() if m.get("tag") == tag]
        assert n == len(gone)
        for i in gone:
            del self.model[i]

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store(self.embedder, path=self.dir)

    @invariant()
    def contents_match(self) -> None:
        assert self.store.count() == len(self.model)
        ids = sorted(self.model)
        docs = self.store.get(ids) if ids else []
        for doc_id, doc in zip(ids, docs, strict=True):
            text, meta = self.model[doc_id]
            assert doc is not None and doc.text == text
            # exact, except that Chroma returns floats to within an ulp or two
            assert doc.metadata.keys() == meta.keys(), (doc.metadata, meta)
            for key, value in meta.items():
                assert _same(doc.metadata[key], value), (key, doc.metadata[key], value)
        # no duplicates: every stored record is one model entry
        col = self.store._collections.kind("text")
        stored = list(col.get(include=[])["ids"]) if col is not None else []
        assert sorted(stored) == ids

    @invariant()
    def statistics_match(self) -> None:
        stats = self.store.statistics()
        assert stats.count("text") == len(self.model)
        if self.model:
            vectors = self.embedder.embed([t for t, _ in self.model.values()])
            expected = ModalityStats.from_vectors(DIM, {"text": vectors})
            np.testing.assert_allclose(stats.sums["text"], expected.sums["text"], atol=1e-5)


StoreMachine.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreMachine = StoreMachine.TestCase
