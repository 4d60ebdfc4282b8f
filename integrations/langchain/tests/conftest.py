"""Fixtures for langchain-omniretrieve's tests: offline, tiny models, a small colored-shapes corpus."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIP (text + image, 32-d) saved to disk."""
    from omniretrieve.testing.models import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("models") / "clip")


@pytest.fixture(scope="session")
def tiny_reranker_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random multimodal (text + image) yes/no CrossEncoder reranker saved to disk."""
    from omniretrieve.testing.rerankers import build_tiny_llava_reranker

    return build_tiny_llava_reranker(tmp_path_factory.mktemp("models") / "reranker")


SCENES: tuple[tuple[str, str, str], ...] = (
    ("red", "circle", "top left"),
    ("blue", "square", "center"),
    ("green", "triangle", "bottom right"),
    ("yellow", "cross", "top right"),
    ("purple", "circle", "bottom left"),
    ("orange", "square", "top left"),
)
"""The scenes drawn by :func:`shape_files`: (color, shape, position)."""


@pytest.fixture(scope="session")
def shape_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One 32 px PNG per scene of :data:`SCENES`, by caption (``"a red circle at the top left"``)."""
    from omniretrieve.demo.world import Scene

    folder = tmp_path_factory.mktemp("shapes")
    out: dict[str, Path] = {}
    for color, shape, position in SCENES:
        scene = Scene(color, shape, position)
        path = folder / f"{scene.key}.png"
        scene.render(size=32).save(path, format="PNG")
        out[scene.caption()] = path
    return out


DISTRACTORS: tuple[str, ...] = ("a recipe for bread", "the weather tomorrow", "a train timetable")
"""Texts about nothing in :data:`SCENES`."""


@pytest.fixture(scope="session")
def clip_embedder(tiny_clip_path: Path) -> Any:
    """The tiny CLIP as an omniretrieve embedder (loaded once)."""
    from omniretrieve import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(tiny_clip_path, device="cpu", num_workers=1)


@pytest.fixture(scope="session")
def mixed_store(
    tmp_path_factory: pytest.TempPathFactory, clip_embedder: Any, shape_files: dict[str, Path]
) -> Iterator[Any]:
    """A store on the tiny CLIP with a caption and an image per scene, and distractor texts.

    Metadata: captions ``{"kind": "caption", "color": ...}``, images ``{"kind": "photo", "color": ...}``,
    distractors ``{"kind": "distractor"}``. Ids: ``cap-<n>``, ``img-<n>``, ``dis-<n>``.
    """
    from omniretrieve import Image, Store

    store = Store(clip_embedder, path=tmp_path_factory.mktemp("mixed") / "index")
    items: list[Any] = []
    ids: list[str] = []
    metadatas: list[dict[str, Any]] = []
    for n, (caption, path) in enumerate(shape_files.items()):
        color = SCENES[n][0]
        items += [caption, Image(str(path))]
        ids += [f"cap-{n}", f"img-{n}"]
        metadatas += [{"kind": "caption", "color": color}, {"kind": "photo", "color": color}]
    for n, text in enumerate(DISTRACTORS):
        items.append(text)
        ids.append(f"dis-{n}")
        metadatas.append({"kind": "distractor"})
    results = store.add(items, ids=ids, metadatas=metadatas)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="session")
def demo_embedder() -> Any:
    """The demo model shipped with omniretrieve (a toy CLIP with a modality gap), loaded once."""
    from omniretrieve import load_embedder

    return load_embedder("demo", device="cpu", num_workers=1)


@pytest.fixture(scope="session")
def demo_store(
    tmp_path_factory: pytest.TempPathFactory, demo_embedder: Any
) -> Iterator[tuple[Any, Any, Path]]:
    """The demo world (seed 0) indexed with the shipped demo model: ``(world, store, folder)``.

    Texts get ``{"kind": "caption"}`` or ``{"kind": "distractor"}``, pictures ``{"kind": "picture"}``;
    ids are the world's document ids; the world's files are under ``folder``.
    """
    from omniretrieve import Image, Store
    from omniretrieve.demo import make_world

    world = make_world(seed=0)
    root = tmp_path_factory.mktemp("demo")
    folder = world.write(root / "world")
    store = Store(demo_embedder, path=root / "index")
    items: list[Any] = []
    metadatas: list[dict[str, Any]] = []
    for doc in world.docs:
        if doc.image is not None:
            items.append(Image(str(folder / "corpus" / f"{doc.id}.png")))
            metadatas.append({"kind": "picture"})
        else:
            items.append(doc.text)
            metadatas.append({"kind": "caption" if doc.scene is not None else "distractor"})
    results = store.add(items, ids=[d.id for d in world.docs], metadatas=metadatas)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    try:
        yield world, store, folder
    finally:
        store.close()


REPO_TESTS = Path(__file__).resolve().parents[3] / "tests"
"""omniretrieve's own tests folder (this package's tests run from the omniretrieve repository)."""


def _load_chroma_server_helper() -> Any:
    """omniretrieve's test helper that runs a real Chroma server: ``tests/chroma_server.py``."""
    import importlib.util

    path = REPO_TESTS / "chroma_server.py"
    spec = importlib.util.spec_from_file_location("omniretrieve_tests_chroma_server", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise RuntimeError(f"no {path}: run these tests from the omniretrieve repository")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chroma_server = _load_chroma_server_helper().chroma_server
"""One real Chroma server on a free loopback port for the session (omniretrieve's own fixture)."""
