from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.embeddings.omniretrieve import OmniretrieveEmbedding
from llama_index_embeddings_testdata import SCENES, image_name

from omniretrieve.errors import AddressNotAllowedError, InvalidInputError, URLNotAllowedError
from omniretrieve.media import MediaLoader, MediaPolicy
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.types import Image, Text


@pytest.fixture(scope="module")
def embed_model(st_embedder: Any) -> OmniretrieveEmbedding:
    return OmniretrieveEmbedding(embedder=st_embedder)


def image_paths(folder: Path) -> list[str]:
    return [str(folder / image_name(*scene)) for scene in SCENES]


def test_loads_a_model_by_path(clip_path: Path, st_embedder: Any) -> None:
    model = OmniretrieveEmbedding(clip_path, device="cpu", embed_batch_size=4)
    assert isinstance(model, MultiModalEmbedding)
    assert model.model_name == str(clip_path)
    assert model.device == "cpu" and model.media_policy == MediaPolicy()
    assert model.embed_batch_size == 4
    assert model.dimension == st_embedder.dimension == 32
    assert model.class_name() == "OmniretrieveEmbedding"
    # Same weights, same vectors as the core embedder.
    got = np.array(model.get_text_embedding("a red circle"))
    want = st_embedder.embed([Text("a red circle")])[0]
    np.testing.assert_allclose(got, want, atol=1e-6)
    # The loaded embedder is private: it does not leak into LlamaIndex's serialised settings.
    settings = model.to_dict()
    assert settings["model_name"] == str(clip_path) and settings["class_name"] == "OmniretrieveEmbedding"
    assert "_embedder" not in settings and "embedder" not in settings


def test_constructor_refuses_ambiguous_settings(st_embedder: Any, clip_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="either a model name"):
        OmniretrieveEmbedding()
    with pytest.raises(InvalidInputError, match="either a model name"):
        OmniretrieveEmbedding(clip_path, embedder=st_embedder)
    with pytest.raises(InvalidInputError, match="either a model name"):
        OmniretrieveEmbedding(st_embedder, embedder=st_embedder)
    with pytest.raises(InvalidInputError, match="configure the embedder"):
        OmniretrieveEmbedding(embedder=st_embedder, media_policy=MediaPolicy(allow_urls=True))
    with pytest.raises(InvalidInputError, match="configure the embedder"):
        OmniretrieveEmbedding(st_embedder, device="cpu")
    with pytest.raises(InvalidInputError, match="Embedder protocol"):
        OmniretrieveEmbedding(embedder="not an embedder")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="Embedder protocol"):
        OmniretrieveEmbedding(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="must be an omniretrieve.MediaPolicy"):
        OmniretrieveEmbedding("fake:8", media_policy={"allow_urls": True})  # type: ignore[arg-type]


def test_a_ready_embedder_is_accepted_where_a_name_is(mixed_folder: Path) -> None:
    """A ready embedder works positionally (where a model name goes) and as ``embedder=``."""
    url_policy = MediaPolicy(allow_urls=True)
    fake = FakeEmbedder(8, media=MediaLoader(url_policy))
    for model in (OmniretrieveEmbedding(fake), OmniretrieveEmbedding(embedder=fake)):
        assert model.embedder is fake and model.model_name == "fake:8"
        assert model.media_policy is url_policy
        np.testing.assert_allclose(
            model.get_text_embedding("a red circle"), fake.embed([Text("a red circle")])[0]
        )
    assert OmniretrieveEmbedding(FakeEmbedder(8)).media_policy == MediaPolicy()


def test_query_text_and_image_embeddings_match_the_core(
    embed_model: OmniretrieveEmbedding, st_embedder: Any, mixed_folder: Path
) -> None:
    paths = image_paths(mixed_folder)
    query = embed_model.get_query_embedding("red circle top left")
    assert isinstance(query, list) and all(type(v) is float for v in query) and len(query) == 32
    np.testing.assert_allclose(query, st_embedder.embed_query(Text("red circle top left")), atol=1e-6)
    assert abs(np.linalg.norm(query) - 1.0) < 1e-5

    images = embed_model.get_image_embedding_batch(paths)
    assert len(images) == len(paths)
    want = st_embedder.embed([Image(p) for p in paths])
    np.testing.assert_allclose(np.array(images), want, atol=1e-6)
    # Different images, different vectors.
    assert not np.allclose(images[0], images[1])

    texts = embed_model.get_text_embedding_batch(["a red circle", "a blue square", "a red circle"])
    np.testing.assert_allclose(texts[0], texts[2], atol=1e-6)
    assert not np.allclose(texts[0], texts[1])


def test_image_as_path_bytesio_and_batch_agree(
    embed_model: OmniretrieveEmbedding, mixed_folder: Path
) -> None:
    path = image_paths(mixed_folder)[2]
    from_path = embed_model.get_image_embedding(path)
    from_buffer = embed_model.get_image_embedding(BytesIO(Path(path).read_bytes()))
    np.testing.assert_allclose(from_path, from_buffer, atol=1e-6)
    # The batched override gives what single calls give, in input order.
    batch = embed_model._get_image_embeddings([image_paths(mixed_folder)[0], path])
    np.testing.assert_allclose(batch[1], from_path, atol=1e-6)


def test_batched_overrides_make_one_model_call_per_batch(mixed_folder: Path) -> None:
    fake = FakeEmbedder(dimension=8, modalities=("text", "image"))
    model = OmniretrieveEmbedding(embedder=fake, embed_batch_size=3)
    model.get_text_embedding_batch([f"text {i}" for i in range(7)])
    assert [c for c in fake.calls if c[0] == "text"] == [
        ("text", 3, "document"),
        ("text", 3, "document"),
        ("text", 1, "document"),
    ]
    fake.calls.clear()
    model.get_image_embedding_batch(image_paths(mixed_folder)[:3])
    assert fake.calls == [("image", 3, "document")]
    fake.calls.clear()
    model.get_query_embedding("a query")
    assert fake.calls == [("text", 1, "query")]


def test_a_url_shaped_query_is_text_and_never_fetched(
    embed_model: OmniretrieveEmbedding, st_embedder: Any
) -> None:
    url = "https://example.com/cat.png"
    got = embed_model.get_query_embedding(url)
    np.testing.assert_allclose(got, st_embedder.embed_query(Text(url)), atol=1e-6)


def test_image_urls_are_refused_by_default(
    embed_model: OmniretrieveEmbedding, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_connect(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(MediaLoader, "_connect", no_connect)
    with pytest.raises(URLNotAllowedError):
        embed_model.get_image_embedding("https://example.com/cat.png")


def test_allowed_urls_still_refuse_private_addresses(
    clip_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_connect(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(MediaLoader, "_connect", no_connect)
    model = OmniretrieveEmbedding(clip_path, device="cpu", media_policy=MediaPolicy(allow_urls=True))
    assert model.media_policy is not None and model.media_policy.allow_urls is True
    with pytest.raises(AddressNotAllowedError):
        model.get_image_embedding("http://127.0.0.1:9/cat.png")


@pytest.fixture()
def loopback_server(mixed_folder: Path) -> Iterator[str]:
    """Serve the mixed folder over HTTP on 127.0.0.1 (loopback only)."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(mixed_folder), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_image_url_goes_through_the_media_policy(
    st_embedder: Any, mixed_folder: Path, loopback_server: str
) -> None:
    # A policy that trusts private addresses (here: our loopback test server) lets the URL be read.
    policy = MediaPolicy(allow_urls=True, allow_private_addresses=True)
    model = OmniretrieveEmbedding(st_embedder.model_id, device="cpu", media_policy=policy)
    name = image_name(*SCENES[1])
    from_url = model.get_image_embedding(f"{loopback_server}/{name}")
    from_file = model.get_image_embedding(str(mixed_folder / name))
    np.testing.assert_allclose(from_url, from_file, atol=1e-6)


async def test_async_variants_match_sync(embed_model: OmniretrieveEmbedding, mixed_folder: Path) -> None:
    paths = image_paths(mixed_folder)[:2]
    query, text, texts, image, images = await asyncio.gather(
        embed_model.aget_query_embedding("red circle"),
        embed_model.aget_text_embedding("a red circle"),
        embed_model.aget_text_embedding_batch(["a", "b c"]),
        embed_model.aget_image_embedding(paths[0]),
        embed_model.aget_image_embedding_batch(paths),
    )
    np.testing.assert_allclose(query, embed_model.get_query_embedding("red circle"), atol=1e-6)
    np.testing.assert_allclose(text, embed_model.get_text_embedding("a red circle"), atol=1e-6)
    np.testing.assert_allclose(texts, embed_model.get_text_embedding_batch(["a", "b c"]), atol=1e-6)
    np.testing.assert_allclose(image, embed_model.get_image_embedding(paths[0]), atol=1e-6)
    np.testing.assert_allclose(images, embed_model.get_image_embedding_batch(paths), atol=1e-6)


async def test_async_runs_off_the_event_loop_thread(mixed_folder: Path) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    class Recording(FakeEmbedder):
        def embed(self, *args: Any, **kwargs: Any) -> np.ndarray:
            seen.append(threading.get_ident())
            return super().embed(*args, **kwargs)

    model = OmniretrieveEmbedding(embedder=Recording(dimension=8))
    await model.aget_query_embedding("q")
    await model.aget_image_embedding(image_paths(mixed_folder)[0])
    assert seen and all(t != loop_thread for t in seen)


def test_model_names_resolve_like_the_core() -> None:
    """A model name goes through omniretrieve.load_embedder: the demo alias works offline."""
    model = OmniretrieveEmbedding("demo", device="cpu")
    assert model.embedder.model_id == "omniretrieve/demo-clip"
    assert len(model.get_text_embedding("a red circle")) == model.embedder.dimension
