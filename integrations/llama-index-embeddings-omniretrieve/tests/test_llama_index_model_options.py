"""Loading options reach sentence-transformers through ``OmniretrieveEmbedding``, by name."""

from __future__ import annotations

import pytest
from llama_index.embeddings.omniretrieve import OmniretrieveEmbedding

from omniretrieve import InvalidInputError
from omniretrieve.demo import model_path
from omniretrieve.models import directory_revision
from omniretrieve.testing.fakes import FakeEmbedder


def test_loading_options_by_name_reach_the_model() -> None:
    embed_model = OmniretrieveEmbedding(
        str(model_path()), device="cpu", truncate_dim=16, local_files_only=True
    )
    assert embed_model.dimension == 16 and len(embed_model.get_query_embedding("a red circle")) == 16
    assert embed_model.embedder.revision == directory_revision(model_path())  # type: ignore[attr-defined]
    assert embed_model.embed_batch_size > 0  # the other keyword arguments are still LlamaIndex's


def test_loading_options_with_a_ready_embedder_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="revision"):
        OmniretrieveEmbedding(FakeEmbedder(8), revision="main")
