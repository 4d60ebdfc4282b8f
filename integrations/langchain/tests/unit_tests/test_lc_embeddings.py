from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import numpy as np
import pytest
from omniretrieve.errors import MediaNotFoundError, MediaPolicyError
from omniretrieve.media import MediaLoader, MediaPolicy
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.types import Image
from pydantic import ValidationError

from langchain_omniretrieve import OmniretrieveEmbeddings


@pytest.fixture
def fake() -> FakeEmbedder:
    return FakeEmbedder(dimension=8)


def test_vectors_are_python_floats_equal_to_the_core(fake: FakeEmbedder) -> None:
    embeddings = OmniretrieveEmbeddings(embedder=fake)
    docs = embeddings.embed_documents(["a red circle", "a blue square"])
    assert all(type(x) is float for row in docs for x in row)
    np.testing.assert_allclose(docs, fake.embed(["a red circle", "a blue square"]), rtol=1e-6)
    query = embeddings.embed_query("a red circle")
    assert all(type(x) is float for x in query)
    np.testing.assert_allclose(query, fake.embed_query("a red circle"), rtol=1e-6)
    assert fake.calls[-1][2] == "query"


def test_texts_that_look_like_paths_stay_text(fake: FakeEmbedder, shape_files: dict[str, Path]) -> None:
    embeddings = OmniretrieveEmbeddings(embedder=fake)
    path = str(next(iter(shape_files.values())))
    as_text = embeddings.embed_documents([path])[0]
    as_image = embeddings.embed_image(uris=[path])[0]
    assert fake.calls[0][0] == "text" and fake.calls[1][0] == "image"
    assert not np.allclose(as_text, as_image)


def test_embed_image_paths_and_data_uris(fake: FakeEmbedder, shape_files: dict[str, Path]) -> None:
    embeddings = OmniretrieveEmbeddings(embedder=fake)
    path = next(iter(shape_files.values()))
    data_uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    from_path, from_uri = embeddings.embed_image(uris=[str(path), data_uri])
    np.testing.assert_allclose(from_path, from_uri, rtol=1e-6)
    np.testing.assert_allclose(from_path, fake.embed([Image(str(path))])[0], rtol=1e-6)


def test_embed_image_goes_through_the_media_policy(tmp_path: Path, shape_files: dict[str, Path]) -> None:
    embeddings = OmniretrieveEmbeddings(
        embedder=FakeEmbedder(dimension=8, media=MediaLoader(MediaPolicy(allowed_roots=(str(tmp_path),))))
    )
    with pytest.raises(MediaPolicyError):
        embeddings.embed_image(uris=[str(next(iter(shape_files.values())))])
    with pytest.raises(MediaNotFoundError):
        embeddings.embed_image(uris=[str(tmp_path / "missing.png")])
    with pytest.raises(MediaPolicyError):
        OmniretrieveEmbeddings(embedder=FakeEmbedder(dimension=8)).embed_image(
            uris=["http://127.0.0.1:9/x.png"]
        )


async def test_async_matches_sync(fake: FakeEmbedder, shape_files: dict[str, Path]) -> None:
    embeddings = OmniretrieveEmbeddings(embedder=fake)
    uris = [str(p) for p in shape_files.values()][:2]
    docs, query, images = await asyncio.gather(
        embeddings.aembed_documents(["a", "b"]), embeddings.aembed_query("a"), embeddings.aembed_image(uris)
    )
    assert docs == embeddings.embed_documents(["a", "b"])
    assert query == embeddings.embed_query("a")
    assert images == embeddings.embed_image(uris)


def test_model_or_embedder_exactly_one(fake: FakeEmbedder) -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        OmniretrieveEmbeddings()
    with pytest.raises(ValidationError, match="exactly one"):
        OmniretrieveEmbeddings(model="x", embedder=fake)
    with pytest.raises(ValidationError, match="must be an omniretrieve Embedder"):
        OmniretrieveEmbeddings(embedder=object())
    with pytest.raises(ValidationError, match="configure the embedder itself"):
        OmniretrieveEmbeddings(embedder=fake, media_policy=MediaPolicy())


def test_model_path_loads_a_sentence_transformer(tiny_clip_path: Path, shape_files: dict[str, Path]) -> None:
    embeddings = OmniretrieveEmbeddings(model=str(tiny_clip_path), device="cpu")
    assert embeddings.omniretrieve_embedder.modalities == frozenset({"text", "image"})
    text = embeddings.embed_query("a red circle")
    image = embeddings.embed_image(uris=[str(next(iter(shape_files.values())))])[0]
    assert len(text) == len(image) == embeddings.omniretrieve_embedder.dimension
    assert abs(float(np.linalg.norm(image)) - 1.0) < 1e-5


def test_model_names_resolve_like_the_core() -> None:
    """`model=` takes what omniretrieve.load_embedder takes: the demo alias, a fake, an id or a dir."""
    demo = OmniretrieveEmbeddings(model="demo")
    assert demo.omniretrieve_embedder.model_id == "omniretrieve/demo-clip"
    vector = demo.embed_query("a red circle in the top left")
    assert len(vector) == demo.omniretrieve_embedder.dimension and all(type(x) is float for x in vector)
    assert OmniretrieveEmbeddings(model="fake:8").omniretrieve_embedder.dimension == 8
