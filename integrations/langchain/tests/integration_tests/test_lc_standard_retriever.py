"""LangChain's standard retriever suite for OmniretrieveRetriever (bare subclass) over a mixed corpus."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_omniretrieve import OmniretrieveRetriever


class TestOmniretrieveRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _corpus(self, mixed_store: Any) -> None:
        self._store = mixed_store

    @property
    def retriever_constructor(self) -> type[OmniretrieveRetriever]:
        return OmniretrieveRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"store": self._store, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "a red circle in the top left"
