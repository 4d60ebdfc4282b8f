"""The public surface is pinned: a change to it is a deliberate, visible change."""

from __future__ import annotations

import subprocess
import sys

import omniretrieve
import omniretrieve.testing

EXPECTED_ALL = [
    "AddressNotAllowedError",
    "Audio",
    "BaseEmbedder",
    "Calibration",
    "Combined",
    "CrossEncoderReranker",
    "Document",
    "Embedder",
    "EmbeddingError",
    "EmbeddingResult",
    "EmbeddingSpaceMismatchError",
    "Image",
    "InvalidInputError",
    "InvalidVectorError",
    "ItemInput",
    "Kind",
    "MediaDecodeError",
    "MediaError",
    "MediaFetchError",
    "MediaLoader",
    "MediaNotFoundError",
    "MediaPolicy",
    "MediaPolicyError",
    "MediaTimeoutError",
    "MediaTooLargeError",
    "MissingDependencyError",
    "Modality",
    "OmniretrieveError",
    "PathNotAllowedError",
    "RerankError",
    "RerankResult",
    "Reranker",
    "Role",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "Store",
    "StoreConnectionError",
    "StoreError",
    "StoreInfo",
    "StoreLockedError",
    "StoreNotFoundError",
    "Text",
    "TooManyRedirectsError",
    "URLNotAllowedError",
    "UnsupportedModalityError",
    "Video",
    "WriteResult",
    "__version__",
    "as_item",
    "evaluate",
    "from_path",
    "load_embedder",
    "load_reranker",
    "ndcg_at_k",
    "recall_at_k",
    "reciprocal_rank",
]

# What `from omniretrieve.embedding import X` / `from omniretrieve.rerank import X` took before the
# modules became packages, plus what was added since: these import paths keep working.
EMBEDDING_NAMES = [
    "DEMO_ALIAS",
    "DEMO_MODEL_ID",
    "DEMO_NOGAP_MODEL_ID",
    "FAKE_PREFIX",
    "ROLES",
    "BaseEmbedder",
    "CombineStrategy",
    "Embedder",
    "EmbedderFactory",
    "EmbeddingResult",
    "RouteKey",
    "SentenceTransformerEmbedder",
    "canonical_modalities",
    "load_embedder",
    "register_embedder_scheme",
    "split_revision",
]
RERANK_NAMES = [
    "CrossEncoderReranker",
    "RerankResult",
    "Reranker",
    "UnsupportedPolicy",
    "load_reranker",
    "rerank_candidates",
]


def test_all_is_pinned_exactly_and_every_name_resolves() -> None:
    assert sorted(omniretrieve.__all__) == sorted(EXPECTED_ALL)
    assert len(set(omniretrieve.__all__)) == len(omniretrieve.__all__)
    for name in omniretrieve.__all__:
        assert getattr(omniretrieve, name) is not None, name
    assert sorted(dir(omniretrieve)) == sorted(EXPECTED_ALL)


def test_kind_is_the_type_of_a_hits_modality() -> None:
    from typing import get_args, get_type_hints

    from omniretrieve.documents import KINDS, SearchHit
    from omniretrieve.types import MODALITIES

    assert get_args(omniretrieve.Kind) == KINDS == (*MODALITIES, "combined")
    assert get_type_hints(SearchHit)["modality"] == omniretrieve.Kind


def test_package_import_paths_keep_working() -> None:
    import omniretrieve.embedding
    import omniretrieve.rerank

    assert sorted(omniretrieve.embedding.__all__) == sorted(EMBEDDING_NAMES)
    assert sorted(omniretrieve.rerank.__all__) == sorted(RERANK_NAMES)
    for module, names in ((omniretrieve.embedding, EMBEDDING_NAMES), (omniretrieve.rerank, RERANK_NAMES)):
        for name in names:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
    for name in (
        "Embedder",
        "EmbeddingResult",
        "BaseEmbedder",
        "SentenceTransformerEmbedder",
        "load_embedder",
    ):
        assert getattr(omniretrieve, name) is getattr(omniretrieve.embedding, name)
    for name in ("CrossEncoderReranker", "RerankResult", "Reranker", "load_reranker"):
        assert getattr(omniretrieve, name) is getattr(omniretrieve.rerank, name)


def test_testing_all_resolves() -> None:
    assert set(omniretrieve.testing.__all__) == {
        "FakeEmbedder", "FakeReranker", "build_tiny_clap", "build_tiny_clip",
        "build_tiny_llava_reranker", "build_tiny_text_reranker", "build_tiny_xclip", "build_tokenizer",
    }  # fmt: skip
    for name in omniretrieve.testing.__all__:
        assert callable(getattr(omniretrieve.testing, name))


def test_import_is_light() -> None:
    """`import omniretrieve` must not pull in torch, sentence-transformers or chromadb."""
    code = (
        "import sys, omniretrieve; "
        "heavy = [m for m in ('torch', 'sentence_transformers', 'chromadb', 'transformers') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
