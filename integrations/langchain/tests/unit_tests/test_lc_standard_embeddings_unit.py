"""LangChain's standard unit suite for OmniretrieveEmbeddings (bare subclass), on the fake embedder."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import EmbeddingsUnitTests
from omniretrieve.testing.fakes import FakeEmbedder

from langchain_omniretrieve import OmniretrieveEmbeddings


class TestOmniretrieveEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[OmniretrieveEmbeddings]:
        return OmniretrieveEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"embedder": FakeEmbedder(dimension=16)}
