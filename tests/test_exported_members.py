"""The public surface is pinned: a change to it is a deliberate, visible change."""

from __future__ import annotations

import subprocess
import sys

import omniretrieve
import omniretrieve.testing

EXPECTED = {
    "AddressNotAllowedError", "Audio", "BaseEmbedder", "Calibration", "Combined",
    "CrossEncoderReranker", "Document", "Embedder", "EmbeddingError", "EmbeddingResult", "Image",
    "InvalidInputError", "ItemInput", "MediaDecodeError", "MediaError", "MediaFetchError",
    "MediaLoader", "MediaNotFoundError", "MediaPolicy", "MediaPolicyError", "MediaTimeoutError",
    "MediaTooLargeError", "MissingDependencyError", "Modality", "OmniretrieveError",
    "PathNotAllowedError", "RerankResult", "Reranker", "Role", "SearchHit",
    "SentenceTransformerEmbedder", "Store", "StoreConnectionError", "StoreError", "StoreLockedError", "StoreNotFoundError",
    "EmbeddingSpaceMismatchError", "InvalidVectorError", "Text", "TooManyRedirectsError", "URLNotAllowedError",
    "UnsupportedModalityError", "Video", "WriteResult", "__version__", "as_item", "evaluate",
    "from_path", "ndcg_at_k", "recall_at_k", "reciprocal_rank", "load_embedder", "StoreInfo",
}  # fmt: skip


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert set(omniretrieve.__all__) == EXPECTED
    for name in omniretrieve.__all__:
        assert getattr(omniretrieve, name) is not None, name


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
