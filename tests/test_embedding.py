"""The embedder: routing, order, roles, error isolation, safety of text, reported facts, the fake."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from models_fixtures import tiny_clip, tiny_clip_path  # noqa: F401
from PIL import Image as PILImage

from omniretrieve.embedding import (
    DEMO_MODEL_ID,
    DEMO_NOGAP_MODEL_ID,
    Embedder,
    EmbeddingResult,
    SentenceTransformerEmbedder,
    load_embedder,
    register_embedder_scheme,
)
from omniretrieve.errors import (
    EmbeddingError,
    InvalidInputError,
    MediaNotFoundError,
    UnsupportedModalityError,
)
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.types import Audio, Combined, Image, Text, Video

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Path:
    PILImage.new("RGB", size, color).save(path)
    return path


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _pattern(seed: int, size: tuple[int, int] = (48, 36)) -> PILImage.Image:
    rng = np.random.default_rng(seed)
    return PILImage.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


class _Counting(BaseHTTPRequestHandler):
    hits: list[str]
    body: bytes

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def counting_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that serves a PNG for any path and records every request."""
    png = _png(tmp_path / "served.png", (0, 255, 0)).read_bytes()
    hits: list[str] = []
    handler = type("Handler", (_Counting,), {"hits": hits, "body": png})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Make every socket connect fail the test's expectations: record the address and refuse."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise ConnectionRefusedError(f"test: no connection allowed (to {address!r})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


# ---------------------------------------------------------------------------------------------
# order, equality with the item alone, dtype and norm
# ---------------------------------------------------------------------------------------------


def test_mixed_batch_in_input_order_equal_to_each_item_alone(
    tiny_clip_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    embedder = SentenceTransformerEmbedder(tiny_clip_path, device="cpu", batch_size=2)
    red_file = _png(tmp_path / "red.png", (255, 0, 0))
    items: list[Any] = [
        "a red circle",
        Image(_pattern(1)),
        {"text": "a blue square", "image": _pattern(2)},
        "a much longer caption about a green triangle at the top left corner",
        Image(red_file),
        _pattern(3),  # a bare PIL image is an image
        Text("b"),
        Combined(text="one", image=Image(_pattern(4))),
    ]
    vectors = embedder.embed(items)
    assert vectors.shape == (len(items), embedder.dimension)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for i, item in enumerate(items):
        alone = embedder.embed([item])[0]
        np.testing.assert_allclose(vectors[i], alone, atol=1e-5, err_msg=f"item {i}")
    # Rows are not all the same (the test above would pass trivially on a constant model).
    assert len({tuple(np.round(v, 4)) for v in vectors}) == len(items)


def test_vectors_equal_the_model_itself(tiny_clip: SentenceTransformerEmbedder) -> None:  # noqa: F811
    model = tiny_clip.model
    image = _pattern(5)
    ours = tiny_clip.embed(["a red circle", Image(image)])
    text_ref = _unit(model.encode_document([{"text": "a red circle"}]))[0]
    image_ref = _unit(model.encode_document([image]))[0]
    np.testing.assert_allclose(ours[0], text_ref, atol=1e-5)
    np.testing.assert_allclose(ours[1], image_ref, atol=1e-5)


def test_combined_item_on_a_model_without_native_support_is_the_mean_of_its_parts(
    tiny_clip: SentenceTransformerEmbedder,  # noqa: F811
) -> None:
    image = _pattern(6)
    combined = tiny_clip.embed([{"text": "a caption", "image": image}])[0]
    text, img = tiny_clip.embed(["a caption", Image(image)])
    np.testing.assert_allclose(combined, _unit(text + img), atol=1e-5)
    assert tiny_clip.supports(("text", "image")) and tiny_clip.supports(("image", "text"))
    assert not tiny_clip.supports(("text", "audio"))


def test_combine_native_refuses_what_the_model_cannot_read_as_one_input(tiny_clip_path: Path) -> None:  # noqa: F811
    embedder = SentenceTransformerEmbedder(tiny_clip_path, device="cpu", combine="native")
    assert not embedder.supports(("text", "image"))
    results = embedder.embed_each(["ok", {"text": "a", "image": _pattern(7)}])
    assert results[0].ok
    assert isinstance(results[1].error, UnsupportedModalityError)


def test_native_combination_passes_one_dict_per_item(
    tiny_clip_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedder = SentenceTransformerEmbedder(tiny_clip_path, device="cpu")
    model = embedder.model
    seen: list[list[Any]] = []
    real_supports = model.supports

    def supports(modality: Any) -> bool:
        return modality == ("image", "text") or real_supports(modality)

    def encode_document(inputs: list[Any], **kwargs: Any) -> np.ndarray:
        seen.append(inputs)
        return np.ones((len(inputs), embedder.dimension), dtype=np.float32)

    monkeypatch.setattr(model, "supports", supports)
    monkeypatch.setattr(model, "encode_document", encode_document)
    image = _pattern(8)
    embedder.embed([{"text": "https://example.com/a.png", "image": image}])
    assert len(seen) == 1 and len(seen[0]) == 1
    sent = seen[0][0]
    assert set(sent) == {"text", "image"}
    assert sent["text"] == "https://example.com/a.png"
    assert isinstance(sent["image"], PILImage.Image) and sent["image"].tobytes() == image.tobytes()


def test_empty_input_gives_an_empty_matrix(tiny_clip: SentenceTransformerEmbedder) -> None:  # noqa: F811
    out = tiny_clip.embed([])
    assert out.shape == (0, tiny_clip.dimension) and out.dtype == np.float32
    assert tiny_clip.embed_each([]) == []


def test_a_single_string_is_not_a_batch(tiny_clip: SentenceTransformerEmbedder) -> None:  # noqa: F811
    with pytest.raises(InvalidInputError, match="embed_query"):
        tiny_clip.embed("a red circle")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="role"):
        tiny_clip.embed(["x"], role="passage")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="list of items"):
        tiny_clip.embed(_pattern(21))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="list of items"):
        tiny_clip.embed(np.zeros((4, 4, 3), np.uint8))  # type: ignore[arg-type]
    from_generator = tiny_clip.embed(text for text in ("a", "b"))  # type: ignore[arg-type]
    np.testing.assert_allclose(from_generator, tiny_clip.embed(["a", "b"]), atol=1e-6)


def test_loader_threads_change_nothing_but_speed(tiny_clip_path: Path, tmp_path: Path) -> None:  # noqa: F811
    items: list[Any] = []
    for i in range(7):
        items.append(Image(_png(tmp_path / f"{i}.png", (30 * i, 255 - 30 * i, 90))))
        items.append(f"caption {i}")
    items.append(Image(tmp_path / "missing.png"))
    serial = SentenceTransformerEmbedder(tiny_clip_path, device="cpu", batch_size=3, num_workers=0)
    threaded = SentenceTransformerEmbedder(serial.model, batch_size=3, num_workers=3)
    a, b = serial.embed_each(items), threaded.embed_each(items)
    assert [r.ok for r in a] == [r.ok for r in b] == [True] * 14 + [False]
    for x, y in zip(a[:-1], b[:-1], strict=True):
        np.testing.assert_array_equal(x.vector, y.vector)
    assert type(a[-1].error) is type(b[-1].error) is MediaNotFoundError


def test_progress_bar_is_opt_in_and_nothing_is_printed(
    tiny_clip: SentenceTransformerEmbedder,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    tiny_clip.embed(["quiet", Image(_pattern(19))])
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    tiny_clip.embed(["loud", Image(_pattern(20))], show_progress=True)
    out = capsys.readouterr()
    assert out.out == "" and "Embedding" in out.err


# ---------------------------------------------------------------------------------------------
# roles
# ---------------------------------------------------------------------------------------------


def test_query_and_document_roles_use_the_models_prompts(tiny_clip_path: Path) -> None:  # noqa: F811
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_clip_path), device="cpu", prompts={"query": "find me "})
    embedder = SentenceTransformerEmbedder(model)
    query = embedder.embed_query("a red circle")
    assert query.shape == (embedder.dimension,) and query.dtype == np.float32
    as_document = embedder.embed(["a red circle"])[0]
    prompted_document = embedder.embed(["find me a red circle"])[0]
    np.testing.assert_allclose(query, prompted_document, atol=1e-5)
    assert not np.allclose(query, as_document, atol=1e-3)
    np.testing.assert_allclose(embedder.embed(["a red circle"], role="query")[0], query, atol=1e-6)


def test_roles_call_encode_query_and_encode_document(
    tiny_clip_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedder = SentenceTransformerEmbedder(tiny_clip_path, device="cpu")
    model = embedder.model
    calls: list[str] = []
    for name in ("encode_query", "encode_document", "encode"):
        real = getattr(model, name)

        def spy(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(model, name, spy)
    embedder.embed_query("q")
    assert calls[0] == "encode_query"
    calls.clear()
    embedder.embed(["d", Image(_pattern(9))])
    assert calls and calls[0] == "encode_document" and "encode_query" not in calls


# ---------------------------------------------------------------------------------------------
# unsupported modalities and error isolation
# ---------------------------------------------------------------------------------------------


def test_audio_on_clip_is_unsupported_and_named(tiny_clip: SentenceTransformerEmbedder) -> None:  # noqa: F811
    clip = Audio(np.zeros(1600, dtype=np.float32), sampling_rate=16_000)
    with pytest.raises(UnsupportedModalityError) as info:
        tiny_clip.embed(["fine", clip])
    message = str(info.value)
    assert "audio" in message and "'text'" in message and "'image'" in message
    assert "Audio(<array shape=(1600,)" in message
    assert not tiny_clip.supports("audio") and tiny_clip.supports("text") and tiny_clip.supports("image")
    results = tiny_clip.embed_each([Video(np.zeros((2, 8, 8, 3), np.uint8)), "fine"])
    assert isinstance(results[0].error, UnsupportedModalityError) and results[1].ok


def test_embed_raises_the_first_failure_and_embed_each_isolates_it(
    tiny_clip: SentenceTransformerEmbedder,  # noqa: F811
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing.png"
    items: list[Any] = [
        "good text",
        Image(missing),
        Audio(np.zeros(100, np.float32), sampling_rate=8000),
        Image(_pattern(10)),
        42,
    ]
    with pytest.raises(MediaNotFoundError):
        tiny_clip.embed(items)
    results = tiny_clip.embed_each(items)
    assert [r.index for r in results] == list(range(len(items)))
    assert all(isinstance(r, EmbeddingResult) for r in results)
    assert results[0].ok and results[3].ok
    assert isinstance(results[1].error, MediaNotFoundError) and results[1].vector is None
    assert isinstance(results[2].error, UnsupportedModalityError)
    assert isinstance(results[4].error, InvalidInputError) and results[4].item is None
    np.testing.assert_allclose(results[0].vector, tiny_clip.embed(["good text"])[0], atol=1e-5)
    np.testing.assert_allclose(results[3].vector, tiny_clip.embed([items[3]])[0], atol=1e-5)


def test_a_model_failure_on_one_item_costs_only_that_item(
    tiny_clip_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedder = SentenceTransformerEmbedder(tiny_clip_path, device="cpu", batch_size=8)
    model = embedder.model
    real = model.encode_document
    batches: list[int] = []

    def flaky(inputs: list[Any], **kwargs: Any) -> np.ndarray:
        batches.append(len(inputs))
        texts = [x.get("text") for x in inputs]
        if "boom" in texts:
            raise RuntimeError("simulated model crash")
        out = np.asarray(real(inputs, **kwargs), dtype=np.float32)
        for i, text in enumerate(texts):
            if text == "nan":
                out[i, 0] = np.nan
            if text == "zero":
                out[i] = 0.0
        return out

    monkeypatch.setattr(model, "encode_document", flaky)
    items = ["alpha", "boom", "beta", "nan", "zero", "gamma"]
    results = embedder.embed_each(items)
    assert batches[0] == len(items)  # one call for the whole text batch first, then one per item
    assert [r.ok for r in results] == [True, False, True, False, False, True]
    assert isinstance(results[1].error, EmbeddingError) and "simulated model crash" in str(results[1].error)
    assert isinstance(results[1].error.__cause__, RuntimeError)
    assert isinstance(results[3].error, EmbeddingError) and "NaN or infinite" in str(results[3].error)
    assert isinstance(results[4].error, EmbeddingError) and "all-zero" in str(results[4].error)
    monkeypatch.setattr(model, "encode_document", real)
    for r in results:
        if r.ok:
            np.testing.assert_allclose(r.vector, embedder.embed([items[r.index]])[0], atol=1e-5)
    with pytest.raises(EmbeddingError):
        monkeypatch.setattr(model, "encode_document", flaky)
        embedder.embed(items)


# ---------------------------------------------------------------------------------------------
# strings are text: never fetched, never opened
# ---------------------------------------------------------------------------------------------


def test_url_shaped_query_is_text_and_makes_no_request(
    tiny_clip: SentenceTransformerEmbedder,  # noqa: F811
    counting_server: tuple[str, list[str]],
) -> None:
    base, hits = counting_server
    url = f"{base}/cat.png"
    query = tiny_clip.embed_query(url)
    documents = tiny_clip.embed([url, {"text": url, "image": _pattern(11)}])
    assert hits == []
    np.testing.assert_allclose(query, tiny_clip.embed([Text(url)], role="query")[0], atol=1e-6)
    np.testing.assert_allclose(
        documents[0], _unit(tiny_clip.model.encode_document([{"text": url}]))[0], atol=1e-5
    )
    # The hazard is real: handed the raw string, sentence-transformers fetches it.
    tiny_clip.model.encode_query([url])
    assert hits == ["/cat.png"]


def test_url_shaped_query_opens_no_socket(
    tiny_clip: SentenceTransformerEmbedder,  # noqa: F811
    no_connect: list[Any],
) -> None:
    url = "http://127.0.0.1:9/cat.png"
    vector = tiny_clip.embed_query(url)
    assert no_connect == [] and vector.shape == (tiny_clip.dimension,)
    assert np.isfinite(vector).all()
    with pytest.raises(Exception):  # noqa: B017 - whatever the library raises, it tried to connect
        tiny_clip.model.encode_query([url])
    assert no_connect, "the raw library call should have tried to connect (the test would be blind otherwise)"


def test_a_string_naming_an_existing_image_file_is_text(
    tiny_clip: SentenceTransformerEmbedder,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = _pattern(12)
    image.save(tmp_path / "cat.png")
    monkeypatch.chdir(tmp_path)
    as_string = tiny_clip.embed(["cat.png"])[0]
    as_text = tiny_clip.embed([Text("cat.png")])[0]
    as_image = tiny_clip.embed([Image("cat.png")])[0]
    np.testing.assert_allclose(as_string, as_text, atol=1e-6)
    np.testing.assert_allclose(as_image, tiny_clip.embed([image])[0], atol=1e-5)
    assert not np.allclose(as_string, as_image, atol=1e-3)
    # Handed the raw string, sentence-transformers would have opened the file as an image.
    raw = _unit(tiny_clip.model.encode_document(["cat.png"]))[0]
    np.testing.assert_allclose(raw, as_image, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# reported facts and loading
# ---------------------------------------------------------------------------------------------


def test_reported_facts(tiny_clip: SentenceTransformerEmbedder, tiny_clip_path: Path) -> None:  # noqa: F811
    assert isinstance(tiny_clip, Embedder)
    assert tiny_clip.model_id == os.fspath(tiny_clip_path)
    assert tiny_clip.dimension == 32
    assert tiny_clip.modalities == frozenset({"text", "image"})
    assert tiny_clip.similarity == "cosine"
    assert tiny_clip.embed(["x"]).shape == (1, tiny_clip.dimension)


def test_a_loaded_model_instance_is_accepted(tiny_clip_path: Path) -> None:  # noqa: F811
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_clip_path), device="cpu")
    embedder = SentenceTransformerEmbedder(model)
    assert embedder.model is model
    assert embedder.model_id == os.fspath(tiny_clip_path)  # from the transformers config's name_or_path
    assert embedder.dimension == 32 and embedder.modalities == frozenset({"text", "image"})
    with pytest.raises(InvalidInputError, match="loaded model"):
        SentenceTransformerEmbedder(model, dtype="float16")


def test_trust_remote_code_defaults_to_false_and_is_passed_through(
    tiny_clip_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sentence_transformers

    seen: list[dict[str, Any]] = []
    real_init = sentence_transformers.SentenceTransformer.__init__

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        seen.append(kwargs)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(sentence_transformers.SentenceTransformer, "__init__", spy)
    SentenceTransformerEmbedder(tiny_clip_path, device="cpu")
    SentenceTransformerEmbedder(tiny_clip_path, device="cpu", trust_remote_code=True, dtype="bfloat16")
    assert seen[0]["trust_remote_code"] is False
    assert seen[1]["trust_remote_code"] is True
    import torch

    assert seen[1]["model_kwargs"]["dtype"] is torch.bfloat16


def test_dtype_loads_the_weights_in_that_dtype_and_vectors_stay_float32(tiny_clip_path: Path) -> None:  # noqa: F811
    import torch

    embedder = SentenceTransformerEmbedder(tiny_clip_path, device="cpu", dtype="bfloat16")
    assert embedder.model.dtype == torch.bfloat16
    out = embedder.embed(["a red circle", Image(_pattern(13))])
    assert out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    with pytest.raises(InvalidInputError, match="dtype"):
        SentenceTransformerEmbedder(tiny_clip_path, device="cpu", dtype="float17")


def test_local_directory_loads_offline_without_any_connection(
    tiny_clip_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    no_connect: list[Any],
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = SentenceTransformerEmbedder(str(tiny_clip_path), device="cpu")
    assert embedder.embed(["offline"]).shape == (1, 32)
    assert no_connect == []


def test_bad_settings_are_refused(tiny_clip_path: Path) -> None:  # noqa: F811
    with pytest.raises(InvalidInputError, match="batch_size"):
        SentenceTransformerEmbedder(tiny_clip_path, batch_size=0)
    with pytest.raises(InvalidInputError, match="combine"):
        SentenceTransformerEmbedder(tiny_clip_path, combine="sum")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# the fake
# ---------------------------------------------------------------------------------------------


def test_fake_is_deterministic_and_content_based(tmp_path: Path) -> None:
    fake = FakeEmbedder()
    assert isinstance(fake, Embedder)
    assert (fake.model_id, fake.dimension, fake.similarity) == ("fake:32", 32, "cosine")
    assert fake.modalities == frozenset({"text", "image", "audio", "video"})
    image = _pattern(14)
    same_pixels = PILImage.fromarray(np.asarray(image).copy())
    path = tmp_path / "p.png"
    image.save(path)
    a = fake.embed(["a cat", "a dog", Image(image), Image(same_pixels), Image(path)])
    b = FakeEmbedder().embed(["a cat", "a dog", Image(image), Image(same_pixels), Image(path)])
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(a[2], a[3])
    np.testing.assert_array_equal(a[2], a[4])  # a PNG round trip keeps the pixels
    assert not np.allclose(a[0], a[1])
    assert not np.allclose(FakeEmbedder(seed=1).embed(["a cat"])[0], a[0])
    np.testing.assert_array_equal(fake.embed_query("a cat"), a[0])


def test_fake_goes_through_the_same_routing(tmp_path: Path) -> None:
    fake = FakeEmbedder(8, batch_size=2)
    items: list[Any] = [
        "t1",
        Image(_pattern(15)),
        "t2",
        {"text": "t3", "image": _pattern(16)},
        "t4",
        Audio(np.zeros(800, np.float32), sampling_rate=8000),
    ]
    out = fake.embed(items)
    assert out.shape == (6, 8)
    # texts t1 t2 t4 + the caption part t3 -> 4 texts in batches of 2; 2 images; 1 audio
    assert sorted(fake.calls, key=str) == sorted(
        [
            ("text", 2, "document"),
            ("text", 2, "document"),
            ("image", 2, "document"),
            ("audio", 1, "document"),
        ],
        key=str,
    )
    mean = _unit(fake.embed(["t3"])[0] + fake.embed([_pattern(16)])[0])
    np.testing.assert_allclose(out[3], mean, atol=1e-6)
    text_only = FakeEmbedder(8, modalities=["text"])
    results = text_only.embed_each(["x", Image(_pattern(17))])
    assert results[0].ok and isinstance(results[1].error, UnsupportedModalityError)
    native = FakeEmbedder(8, native=[("image", "text")])
    native.embed([{"text": "a", "image": _pattern(18)}])
    assert native.calls == [(("text", "image"), 1, "document")]
    missing = fake.embed_each([Image(tmp_path / "nope.png"), "fine"])
    assert isinstance(missing[0].error, MediaNotFoundError) and missing[1].ok


# ---------------------------------------------------------------------------------------------
# models by name: load_embedder, stable ids
# ---------------------------------------------------------------------------------------------


def test_model_id_overrides_the_reported_id(tiny_clip_path: Path) -> None:  # noqa: F811
    named = SentenceTransformerEmbedder(tiny_clip_path, device="cpu", model_id="team/clip-v1")
    assert named.model_id == "team/clip-v1"
    again = SentenceTransformerEmbedder(named.model, model_id="team/clip-v1")
    assert again.model_id == "team/clip-v1"
    np.testing.assert_array_equal(named.embed(["same vectors"]), again.embed(["same vectors"]))
    for bad in ("", "   ", 7):
        with pytest.raises(InvalidInputError, match="model_id"):
            SentenceTransformerEmbedder(named.model, model_id=bad)  # type: ignore[arg-type]


def test_demo_id_is_stable_when_the_installation_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import omniretrieve.demo.loading as demo_loading
    from omniretrieve.store import Store

    embedder = load_embedder("demo", num_workers=0)
    assert embedder.model_id == DEMO_MODEL_ID == load_embedder(DEMO_MODEL_ID, num_workers=0).model_id
    picture = Image(_pattern(21))
    with Store(embedder, path=tmp_path / "store") as store:
        store.add(["a red circle", "a blue square", picture])
        before = store.search("a red circle", k=3)

    # The package now lives elsewhere (a moved virtualenv or checkout): the same model, another path.
    moved = Path(shutil.copytree(demo_loading.model_path(), tmp_path / "elsewhere" / "model"))
    used: list[Path] = []

    def moved_model_path() -> Path:
        used.append(moved)
        return moved

    monkeypatch.setattr(demo_loading, "model_path", moved_model_path)
    relocated = load_embedder("demo", num_workers=0)
    assert used and relocated.model_id == DEMO_MODEL_ID
    with Store(relocated, path=tmp_path / "store") as store:  # no EmbeddingSpaceMismatchError
        after = store.search("a red circle", k=3)
    assert [h.id for h in after] == [h.id for h in before]
    assert [h.score for h in after] == pytest.approx([h.score for h in before], abs=1e-6)


def test_demo_twin_has_its_own_id_and_a_store_refuses_to_mix_them(tmp_path: Path) -> None:
    from omniretrieve.errors import EmbeddingSpaceMismatchError
    from omniretrieve.store import Store

    demo = load_embedder("demo", num_workers=0)
    twin = load_embedder(DEMO_NOGAP_MODEL_ID, num_workers=0)
    assert twin.model_id == DEMO_NOGAP_MODEL_ID != demo.model_id
    picture = Image(_pattern(22))
    # Same text tower; the image tower differs by the gap offset: different vectors, different space.
    np.testing.assert_allclose(demo.embed(["a red circle"]), twin.embed(["a red circle"]), atol=1e-6)
    assert float(demo.embed([picture])[0] @ twin.embed([picture])[0]) < 0.9
    for first, second, path in ((demo, twin, tmp_path / "a"), (twin, demo, tmp_path / "b")):
        with Store(first, path=path) as store:
            store.add(["a red circle", picture])
        with pytest.raises(EmbeddingSpaceMismatchError, match=second.model_id):
            Store(second, path=path)


def test_fake_spec() -> None:
    fake = load_embedder("fake:12", seed=3, batch_size=4)
    assert isinstance(fake, FakeEmbedder) and fake.model_id == "fake:12" and fake.dimension == 12
    np.testing.assert_array_equal(fake.embed(["x"]), FakeEmbedder(12, seed=3).embed(["x"]))
    assert load_embedder(fake.model_id).model_id == "fake:12"  # the id loads again
    for bad in ("fake:", "fake:x", "fake:0", "fake:-3", "fake:1.5", "fake:\uff11\uff12"):
        with pytest.raises(InvalidInputError, match="fake:<dimension>") as info:
            load_embedder(bad)
        assert info.value.input == bad
    with pytest.raises(InvalidInputError, match="device") as info:
        load_embedder("fake:8", device="cpu")
    assert info.value.input == "fake:8"


@pytest.fixture
def schemes(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The scheme registry, restored after the test."""
    import omniretrieve.embedding.loading as loading

    registry = dict(loading._SCHEMES)
    monkeypatch.setattr(loading, "_SCHEMES", registry)
    return registry


def test_a_registered_scheme_builds_its_names(schemes: dict[str, Any]) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def factory(spec: str, options: dict[str, Any]) -> FakeEmbedder:
        seen.append((spec, options))
        return FakeEmbedder(int(spec.split(":", 1)[1]), **options)

    register_embedder_scheme("mine", factory)
    embedder = load_embedder("mine:6", seed=2, batch_size=None)  # None: the default, not passed
    assert isinstance(embedder, FakeEmbedder) and embedder.dimension == 6
    assert seen == [("mine:6", {"seed": 2})]
    assert schemes["fake"] == "omniretrieve.testing.fakes:load_fake_embedder"  # lazy: a string


def test_a_scheme_given_as_a_string_is_imported_on_first_use(
    schemes: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    (tmp_path / "my_lazy_embedders.py").write_text(
        "from omniretrieve.testing.fakes import FakeEmbedder\n"
        "def build(spec, options):\n"
        "    return FakeEmbedder(3, **options)\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_lazy_embedders", raising=False)
    register_embedder_scheme("lazy-one", "my_lazy_embedders:build")
    assert "my_lazy_embedders" not in sys.modules
    assert load_embedder("lazy-one:anything").dimension == 3
    assert "my_lazy_embedders" in sys.modules
    register_embedder_scheme("broken", "my_lazy_embedders:no_such_factory")
    with pytest.raises(InvalidInputError, match="could not be imported") as info:
        load_embedder("broken:1")
    assert info.value.input == "broken:1" and isinstance(info.value.__cause__, AttributeError)


def test_bad_schemes_and_factories_are_refused(schemes: dict[str, Any]) -> None:
    before = dict(schemes)
    for scheme in ("", "c", "C:", "Big", "9lives", "has space", None):
        with pytest.raises(InvalidInputError, match="scheme"):
            register_embedder_scheme(scheme, lambda spec, options: FakeEmbedder())  # type: ignore[arg-type]
    for factory in ("no_colon_here", ":attr", "module:", 42):
        with pytest.raises(InvalidInputError, match="factory"):
            register_embedder_scheme("ok", factory)  # type: ignore[arg-type]
    assert schemes == before
    # a one-letter "scheme" is a Windows drive, never a registered name: it stays a path
    with pytest.raises(InvalidInputError, match="could not load"):
        load_embedder("c:/no/such/model")


def test_a_bad_spec_is_a_typed_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = str(tmp_path / "no-such-model")
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text("{ this is not json", encoding="utf-8")
    for spec in (missing, str(not_a_model), not_a_model):
        with pytest.raises(InvalidInputError) as info:
            load_embedder(spec)
        assert info.value.input == os.fspath(spec) and os.fspath(spec) in str(info.value)
        assert info.value.__cause__ is not None  # the loader's own error is chained
    for spec in ("", None, 3):
        with pytest.raises(InvalidInputError, match="name a model"):
            load_embedder(spec)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="no model_kwargs") as info:
        load_embedder("demo", model_kwargs={"attn_implementation": "eager"})
    assert info.value.input == "demo"
    with pytest.raises(InvalidInputError, match="fixed id"):
        load_embedder("demo", model_id="mine")
    with pytest.raises(InvalidInputError, match="colour") as info:
        load_embedder(DEMO_NOGAP_MODEL_ID, colour="red")
    assert info.value.input == DEMO_NOGAP_MODEL_ID
    # A path object always names a directory: Path("demo") is a folder, not the demo model.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError) as info:
        load_embedder(Path("demo"))
    assert info.value.input == "demo" and "could not load" in info.value.reason

    import omniretrieve.demo.loading as demo_loading

    def gone() -> Path:
        raise FileNotFoundError("the demo model is missing from this installation")

    monkeypatch.setattr(demo_loading, "model_path", gone)
    with pytest.raises(InvalidInputError, match="missing from this installation") as info:
        load_embedder("demo")
    assert info.value.input == "demo"


def test_a_directory_spec_is_a_sentence_transformer_with_its_path_as_id(tiny_clip_path: Path) -> None:  # noqa: F811
    by_str = load_embedder(str(tiny_clip_path), device="cpu", model_id=None, batch_size=5)
    by_path = load_embedder(tiny_clip_path, device="cpu")
    assert isinstance(by_str, SentenceTransformerEmbedder) and by_str.batch_size == 5
    assert by_str.model_id == by_path.model_id == os.fspath(tiny_clip_path)
    named = load_embedder(str(tiny_clip_path), device="cpu", model_id="team/clip")
    assert named.model_id == "team/clip"
