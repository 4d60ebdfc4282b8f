"""Tiny random-weight models, built once per test session, and embedders over them.

Import the fixtures you need into a test module (``from models_fixtures import tiny_clip``; ``tests/`` is on ``sys.path``).
The directories are cached at module level, so a model is built once per session even when several
modules import its fixture.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from omniretrieve.embedding import SentenceTransformerEmbedder
from omniretrieve.testing.models import build_tiny_clap, build_tiny_clip, build_tiny_xclip

_PATHS: dict[str, Path] = {}
_EMBEDDERS: dict[str, SentenceTransformerEmbedder] = {}


def _built(name: str, builder: Callable[[Path], Path], factory: pytest.TempPathFactory) -> Path:
    if name not in _PATHS:
        _PATHS[name] = builder(factory.mktemp(f"tiny-{name}"))
    return _PATHS[name]


def _embedder(name: str, path: Path) -> SentenceTransformerEmbedder:
    if name not in _EMBEDDERS:
        _EMBEDDERS[name] = SentenceTransformerEmbedder(path, device="cpu", batch_size=4)
    return _EMBEDDERS[name]


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _built("clip", build_tiny_clip, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_clap_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _built("clap", build_tiny_clap, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_xclip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _built("xclip", build_tiny_xclip, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_path: Path) -> SentenceTransformerEmbedder:
    """A shared text+image embedder (batch size 4). Don't mutate it: make your own for that."""
    return _embedder("clip", tiny_clip_path)


@pytest.fixture(scope="session")
def tiny_clap(tiny_clap_path: Path) -> SentenceTransformerEmbedder:
    """A shared text+audio embedder (16 kHz, 2 s window, batch size 4)."""
    return _embedder("clap", tiny_clap_path)


@pytest.fixture(scope="session")
def tiny_xclip(tiny_xclip_path: Path) -> SentenceTransformerEmbedder:
    """A shared text+video embedder (4 frames of 32 px, batch size 4)."""
    return _embedder("xclip", tiny_xclip_path)
