"""omniretrieve: one calibrated, reranked list over texts, images, audio and video for RAG.

The pipeline, one module each: :mod:`~omniretrieve.media` (the only code that reads files or URLs)
-> :mod:`~omniretrieve.embedding` -> :mod:`~omniretrieve.store` (Chroma) ->
:mod:`~omniretrieve.calibration` -> :mod:`~omniretrieve.rerank`; :mod:`~omniretrieve.evaluation`
measures it. The embedder and the reranker share one model layer, :mod:`~omniretrieve.models`.
Heavy modules (torch, sentence-transformers, chromadb) load on first use of a name.
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from omniretrieve.errors import (
    AddressNotAllowedError,
    EmbeddingError,
    EmbeddingSpaceMismatchError,
    InvalidInputError,
    InvalidVectorError,
    MediaDecodeError,
    MediaError,
    MediaFetchError,
    MediaNotFoundError,
    MediaPolicyError,
    MediaTimeoutError,
    MediaTooLargeError,
    MissingDependencyError,
    OmniretrieveError,
    PathNotAllowedError,
    RerankError,
    StoreConnectionError,
    StoreError,
    StoreLockedError,
    StoreNotFoundError,
    TooManyRedirectsError,
    UnsupportedModalityError,
    URLNotAllowedError,
)
from omniretrieve.types import (
    Audio,
    Combined,
    Image,
    ItemInput,
    Modality,
    Role,
    Text,
    Video,
    as_item,
)

if TYPE_CHECKING:
    from omniretrieve.calibration import Calibration
    from omniretrieve.documents import Document, Kind, SearchHit
    from omniretrieve.embedding import (
        BaseEmbedder,
        Embedder,
        EmbeddingResult,
        SentenceTransformerEmbedder,
        load_embedder,
    )
    from omniretrieve.evaluation import evaluate, ndcg_at_k, recall_at_k, reciprocal_rank
    from omniretrieve.media import MediaLoader, MediaPolicy, from_path
    from omniretrieve.rerank import CrossEncoderReranker, Reranker, RerankResult, load_reranker
    from omniretrieve.store import Store, StoreInfo, WriteResult

try:
    __version__ = _metadata.version("omniretrieve")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

_LAZY: dict[str, str] = {
    "Calibration": "omniretrieve.calibration",
    "Document": "omniretrieve.documents",
    "Kind": "omniretrieve.documents",
    "SearchHit": "omniretrieve.documents",
    "BaseEmbedder": "omniretrieve.embedding",
    "Embedder": "omniretrieve.embedding",
    "EmbeddingResult": "omniretrieve.embedding",
    "SentenceTransformerEmbedder": "omniretrieve.embedding",
    "load_embedder": "omniretrieve.embedding",
    "evaluate": "omniretrieve.evaluation",
    "ndcg_at_k": "omniretrieve.evaluation",
    "recall_at_k": "omniretrieve.evaluation",
    "reciprocal_rank": "omniretrieve.evaluation",
    "MediaLoader": "omniretrieve.media",
    "MediaPolicy": "omniretrieve.media",
    "from_path": "omniretrieve.media",
    "CrossEncoderReranker": "omniretrieve.rerank",
    "Reranker": "omniretrieve.rerank",
    "RerankResult": "omniretrieve.rerank",
    "load_reranker": "omniretrieve.rerank",
    "Store": "omniretrieve.store",
    "StoreInfo": "omniretrieve.store",
    "WriteResult": "omniretrieve.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'omniretrieve' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
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
