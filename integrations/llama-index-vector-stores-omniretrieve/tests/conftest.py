"""Fixtures for the LlamaIndex vector store: the shipped demo model and a small demo world, no network."""

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


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    """The tiny models run fastest on one thread on a shared 2-core machine; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def demo_embedder() -> Any:
    """The demo model shipped with omniretrieve (a toy CLIP with a real modality gap), loaded once."""
    from omniretrieve import load_embedder

    return load_embedder("demo")


@pytest.fixture(scope="session")
def world_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo world written as files: shape images (PNG), their captions and distractor notes."""
    from omniretrieve.demo import make_world

    world = make_world(
        seed=0,
        n_images=12,
        n_captions=12,
        n_distractors=4,
        n_text_queries=2,
        n_text_to_image_queries=2,
        n_image_queries=2,
    )
    return world.write(tmp_path_factory.mktemp("world")) / "corpus"
