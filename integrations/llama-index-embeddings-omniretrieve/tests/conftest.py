"""Fixtures for the LlamaIndex embeddings package: tiny models built here, a small mixed folder, no network."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from llama_index_embeddings_testdata import SCENES, TEXTS, image_name  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    """The tiny models run fastest on one thread on a shared 2-core machine; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from omniretrieve.testing.models import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("models") / "clip")


@pytest.fixture(scope="session")
def st_embedder(clip_path: Path) -> Any:
    from omniretrieve.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(clip_path, device="cpu", num_workers=1)


@pytest.fixture(scope="session")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of PNG images (demo-world renders) and text files, as a user would point a reader at."""
    from omniretrieve.demo.world import Scene

    folder = tmp_path_factory.mktemp("mixed")
    for i, (color, shape, position) in enumerate(SCENES):
        Scene(color, shape, position).render(32, seed=i).save(folder / image_name(color, shape, position))
    for name, text in TEXTS.items():
        (folder / name).write_text(text + "\n", encoding="utf-8")
    return folder
