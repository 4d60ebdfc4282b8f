"""The backend's error boundary retries the one transient read failure a Chroma server gives, and only it."""

from __future__ import annotations

from typing import Any

import pytest

from omniretrieve.errors import StoreError
from omniretrieve.store import _backend
from omniretrieve.store._backend import READ_ATTEMPTS, Guarded

HNSW = "Error executing plan: Internal error: Error creating hnsw segment reader: Nothing found on disk"


class InternalError(Exception):
    """Stands for chromadb.errors.InternalError (what the server's answer becomes)."""


class Collection:
    """A collection whose reads and writes fail ``failures`` times with ``message``, then answer."""

    def __init__(self, failures: int, message: str = HNSW) -> None:
        self.failures = failures
        self.message = message
        self.calls: list[str] = []

    def _maybe_fail(self, name: str) -> None:
        self.calls.append(name)
        if self.failures > 0:
            self.failures -= 1
            raise InternalError(self.message)

    def get(self, **kwargs: Any) -> dict[str, Any]:
        self._maybe_fail("get")
        return {"ids": ["a"]}

    def query(self, **kwargs: Any) -> dict[str, Any]:
        self._maybe_fail("query")
        return {"ids": [["a"]]}

    def upsert(self, **kwargs: Any) -> None:
        self._maybe_fail("upsert")


def _guarded(target: Collection) -> Any:
    return Guarded(target, lambda exc, call: StoreError(f"Chroma failed on {call}(): {exc}"))


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_backend, "READ_BACKOFF", 0.0)


@pytest.mark.parametrize("method", ["get", "query"])
def test_a_read_that_fails_while_another_client_first_writes_is_tried_again(method: str) -> None:
    target = Collection(failures=READ_ATTEMPTS - 1)
    assert getattr(_guarded(target), method)(include=["embeddings"])["ids"]
    assert target.calls == [method] * READ_ATTEMPTS


def test_a_read_that_keeps_failing_raises_the_typed_error_after_the_last_try() -> None:
    target = Collection(failures=READ_ATTEMPTS)
    with pytest.raises(StoreError, match="Nothing found on disk"):
        _guarded(target).get(include=["embeddings"])
    assert len(target.calls) == READ_ATTEMPTS


def test_other_failures_and_writes_are_not_tried_again() -> None:
    other = Collection(failures=1, message="Error executing plan: something else")
    with pytest.raises(StoreError, match="something else"):
        _guarded(other).get()
    assert other.calls == ["get"]
    write = Collection(failures=1)  # a write is never repeated here: ingest decides what to retry
    with pytest.raises(StoreError, match="Nothing found on disk"):
        _guarded(write).upsert(ids=["a"])
    assert write.calls == ["upsert"]
