from __future__ import annotations

import importlib
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]

EXPORTS = {
    "llama_index.embeddings.omniretrieve": ["OmniretrieveEmbedding"],
    # The public conversion layer the retriever, reranker and vector store packages depend on.
    "llama_index.embeddings.omniretrieve.convert": [
        "NODE_CONTENT_KEY",
        "REF_DOC_ID_KEY",
        "document_to_node",
        "file_source",
        "image_item",
        "join_where",
        "metadata_filters_to_where",
        "node_image_source",
        "node_item",
        "node_metadata",
        "node_parts",
        "query_item",
        "resolve_model",
    ],
}


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_all_is_pinned(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(EXPORTS[module])
    for name in mod.__all__:
        assert getattr(mod, name) is not None


def test_namespace_packages_merge_with_llama_index_core() -> None:
    """``llama_index`` and ``llama_index.embeddings`` are namespace packages shared with llama-index-core."""
    import llama_index
    import llama_index.core

    assert getattr(llama_index, "__file__", None) is None  # a namespace package has no __init__
    assert not (PACKAGE_ROOT / "llama_index" / "__init__.py").exists()
    assert not (PACKAGE_ROOT / "llama_index" / "embeddings" / "__init__.py").exists()
    portions = {Path(p).resolve() for p in llama_index.__path__}
    assert (PACKAGE_ROOT / "llama_index").resolve() in portions
    assert Path(llama_index.core.__file__).resolve().parent.parent in portions
