"""LangChain's standard vector store suite (sync and async) for OmniretrieveVectorStore (bare subclass)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests
from omniretrieve.testing.fakes import FakeEmbedder

from langchain_omniretrieve import OmniretrieveVectorStore


class TestOmniretrieveVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path: Path) -> Iterator[OmniretrieveVectorStore]:  # type: ignore[override]
        """A fresh, empty store per test, on the deterministic fake embedder."""
        store = OmniretrieveVectorStore(
            embedding=FakeEmbedder(dimension=6), persist_directory=tmp_path / "index"
        )
        try:
            yield store
        finally:
            store.close()
