"""LangChain's standard embeddings integration suite for OmniretrieveEmbeddings on a real (tiny) CLIP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from langchain_omniretrieve import OmniretrieveEmbeddings


class TestOmniretrieveEmbeddingsStandard(EmbeddingsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _model(self, tiny_clip_path: Path) -> None:
        self._model_path = str(tiny_clip_path)

    @property
    def embeddings_class(self) -> type[OmniretrieveEmbeddings]:
        return OmniretrieveEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": self._model_path, "device": "cpu"}
