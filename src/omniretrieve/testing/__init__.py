"""Test doubles and tiny-model builders, for testing code that uses omniretrieve offline.

``FakeEmbedder`` and ``FakeReranker`` are deterministic doubles that go through the same routing,
media loading and ordering rules as the real classes, so a test written against them holds for a
real model. The ``build_tiny_*`` functions write small random-weight models to a directory in
seconds, for exercising the real sentence-transformers path without a hub.
"""

from __future__ import annotations

from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.testing.models import build_tiny_clap, build_tiny_clip, build_tiny_xclip, build_tokenizer
from omniretrieve.testing.rerankers import (
    FakeReranker,
    build_tiny_llava_reranker,
    build_tiny_text_reranker,
)

__all__ = [
    "FakeEmbedder",
    "FakeReranker",
    "build_tiny_clap",
    "build_tiny_clip",
    "build_tiny_llava_reranker",
    "build_tiny_text_reranker",
    "build_tiny_xclip",
    "build_tokenizer",
]
