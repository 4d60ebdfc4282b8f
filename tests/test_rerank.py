"""Reranking mixed candidate lists with a tiny multimodal CrossEncoder, a text one, and the fake."""

from __future__ import annotations

import io
import math
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from omniretrieve.errors import (
    InvalidInputError,
    MediaDecodeError,
    MediaError,
    RerankError,
    UnsupportedModalityError,
)
from omniretrieve.rerank import CrossEncoderReranker, Reranker, RerankResult
from omniretrieve.testing.rerankers import (
    FakeReranker,
    build_tiny_llava_reranker,
    build_tiny_text_reranker,
    word_overlap,
)
from omniretrieve.types import Audio, Combined, Image, Text, as_item

torch = pytest.importorskip("torch")
PIL_Image = pytest.importorskip("PIL.Image")


def _image(seed: int, size: tuple[int, int] = (40, 30)) -> Any:
    rng = np.random.default_rng(seed)
    return PIL_Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _png_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    _image(seed).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava_reranker(tmp_path_factory.mktemp("llava") / "reranker")


@pytest.fixture(scope="module")
def reranker(llava_dir: Path) -> CrossEncoderReranker:
    return CrossEncoderReranker(llava_dir, device="cpu")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Make any name lookup or socket connection fail the test (and record the attempt)."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise AssertionError(f"unexpected connection to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))  # type: ignore[arg-type,misc]
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: refuse(None, (host, port)))  # type: ignore[arg-type,misc]
    return attempts


def _pair_score(reranker: CrossEncoderReranker, query: Any, doc: Any) -> float:
    """The model's score of one (query, doc) pair alone, straight from CrossEncoder.predict."""
    return float(reranker.model.predict([(query, doc)], convert_to_numpy=True)[0])


def _expected_order(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def _assert_distinct(scores: list[float], gap: float = 1e-4) -> None:
    ordered = sorted(scores)
    assert min(b - a for a, b in zip(ordered[:-1], ordered[1:], strict=True)) > gap, (
        "scores too close for an order test"
    )


# ------------------------------------------------------------------------------------------------
# The tiny multimodal CrossEncoder
# ------------------------------------------------------------------------------------------------


def test_mixed_list_sorted_by_the_models_own_pair_scores(reranker: CrossEncoderReranker) -> None:
    images = [_image(i) for i in range(4)]
    candidates: list[Any] = [
        "a red circle at the left",
        images[0],
        Combined(text="a green star", image=Image(images[1])),
        "blue square",
        Image(_png_bytes(7)),
        {"text": "a yellow heart", "image": images[2]},
        Text("two dogs in the sea"),
        images[3],
    ]
    query = "a red circle"
    results = reranker.rerank(query, candidates)

    # Independent scores: each (query, doc) pair alone, in the model's own input form
    loaded_png = PIL_Image.open(io.BytesIO(_png_bytes(7))).convert("RGB")
    docs_alone: list[Any] = [
        {"text": "a red circle at the left"},
        images[0],
        {"text": "a green star", "image": images[1]},
        {"text": "blue square"},
        loaded_png,
        {"text": "a yellow heart", "image": images[2]},
        {"text": "two dogs in the sea"},
        images[3],
    ]
    alone = [_pair_score(reranker, {"text": query}, doc) for doc in docs_alone]
    _assert_distinct(alone)

    assert all(isinstance(r, RerankResult) and r.scored and r.error is None for r in results)
    assert [r.index for r in results] == _expected_order(alone)
    assert [r.index for r in results] != list(range(len(candidates)))  # it really reorders
    for r in results:
        assert r.score == pytest.approx(alone[r.index], abs=1e-5)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


@pytest.mark.parametrize("kind", ["image", "combined"])
def test_image_and_combined_queries(reranker: CrossEncoderReranker, kind: str) -> None:
    q_image = _image(100)
    query: Any = q_image if kind == "image" else {"text": "a red circle", "image": q_image}
    q_alone: Any = q_image if kind == "image" else {"text": "a red circle", "image": q_image}
    candidates: list[Any] = ["a red circle", _image(1), "a blue square", _image(2), "green"]
    alone = [_pair_score(reranker, q_alone, {"text": c} if isinstance(c, str) else c) for c in candidates]
    _assert_distinct(alone)
    results = reranker.rerank(query, candidates)
    assert [r.index for r in results] == _expected_order(alone)
    assert [r.score for r in results] == pytest.approx([alone[i] for i in _expected_order(alone)], abs=1e-5)


def test_top_n_applies_after_sorting(reranker: CrossEncoderReranker) -> None:
    candidates: list[Any] = ["red", _image(3), "a blue square", _image(4), "a green star at the top"]
    full = reranker.rerank("a red circle", candidates)
    assert reranker.rerank("a red circle", candidates, top_n=2) == full[:2]
    assert reranker.rerank("a red circle", candidates, top_n=10) == full
    assert reranker.rerank("a red circle", candidates, top_n=0) == []
    assert reranker.rerank("a red circle", []) == []
    for bad in (-1, 1.5, True):
        with pytest.raises(InvalidInputError, match="top_n"):
            reranker.rerank("a red circle", candidates, top_n=bad)  # type: ignore[arg-type]


def test_batches_and_modality_groups_restore_order(llava_dir: Path, reranker: CrossEncoderReranker) -> None:
    small = CrossEncoderReranker(reranker.model, batch_size=2)
    candidates: list[Any] = [
        _image(i)
        if i % 3 == 0
        else ({"text": f"a red {i}", "image": _image(i)} if i % 3 == 1 else f"blue {i}")
        for i in range(9)
    ]
    big = reranker.rerank("a red circle", candidates)
    chunked = small.rerank("a red circle", candidates)
    assert [r.index for r in chunked] == [r.index for r in big]
    assert [r.score for r in chunked] == pytest.approx([r.score for r in big], abs=1e-5)


AUDIO = Audio(np.zeros(1600, dtype=np.float32), sampling_rate=16_000)


def test_unsupported_keep_last(reranker: CrossEncoderReranker) -> None:
    assert reranker.modalities == frozenset({"text", "image"})
    assert reranker.supports(("text", "image")) and not reranker.supports("audio")
    candidates: list[Any] = ["a red circle", AUDIO, _image(5), {"text": "sound", "audio": AUDIO}, "blue"]
    results = reranker.rerank("a red circle", candidates)
    assert len(results) == 5
    assert sorted(r.index for r in results[:3]) == [0, 2, 4] and all(r.scored for r in results[:3])
    assert [r.index for r in results[3:]] == [1, 3]  # after all scored ones, incoming order
    for r in results[3:]:
        assert not r.scored and r.score == float("-inf")
        assert isinstance(r.error, UnsupportedModalityError)
        assert f"candidate {r.index}" in str(r.error) and "audio" in str(r.error)
    assert [r.index for r in reranker.rerank("a red circle", candidates, top_n=4)] == [
        r.index for r in results[:4]
    ]


def test_unsupported_drop(reranker: CrossEncoderReranker) -> None:
    dropper = CrossEncoderReranker(reranker.model, unsupported="drop")
    candidates: list[Any] = ["a red circle", AUDIO, _image(5), "blue"]
    results = dropper.rerank("a red circle", candidates)
    assert sorted(r.index for r in results) == [0, 2, 3]
    assert all(r.scored for r in results)
    assert [r.index for r in results] == [r.index for r in reranker.rerank("a red circle", candidates)[:3]]


def test_unsupported_error_raises_before_scoring(
    reranker: CrossEncoderReranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = CrossEncoderReranker(reranker.model, unsupported="error")
    calls: list[int] = []
    original = strict.model.predict
    monkeypatch.setattr(strict.model, "predict", lambda *a, **k: calls.append(1) or original(*a, **k))
    with pytest.raises(UnsupportedModalityError, match=r"candidate 2 Audio"):
        strict.rerank("a red circle", ["a red circle", _image(1), AUDIO])
    assert calls == []
    assert len(strict.rerank("a red circle", ["a red circle", _image(1)])) == 2


def test_unreadable_query_and_bad_policy(reranker: CrossEncoderReranker) -> None:
    with pytest.raises(UnsupportedModalityError, match="query"):
        reranker.rerank(AUDIO, ["a red circle"])
    with pytest.raises(InvalidInputError):
        CrossEncoderReranker(reranker.model, unsupported="ignore")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        CrossEncoderReranker(reranker.model, batch_size=0)
    with pytest.raises(InvalidInputError):
        reranker.rerank("a red circle", "not a list")  # type: ignore[arg-type]


def test_bad_media_costs_no_other_candidate(reranker: CrossEncoderReranker, tmp_path: Path) -> None:
    good: list[Any] = ["a red circle", _image(1), {"text": "a star", "image": _image(2)}, "blue"]
    clean = reranker.rerank("a red circle", good)

    bad_bytes = Image(b"this is not an image")
    missing = Image(tmp_path / "missing.png")
    mixed = [good[0], bad_bytes, good[1], {"text": "x", "image": missing}, good[2], good[3], 42]
    results = reranker.rerank("a red circle", mixed)

    # the good ones: same order and scores as without the bad ones (indices mapped)
    position = {0: 0, 2: 1, 4: 2, 5: 3}
    scored = [r for r in results if r.scored]
    assert [position[r.index] for r in scored] == [r.index for r in clean]
    assert [r.score for r in scored] == pytest.approx([r.score for r in clean], abs=1e-5)
    # the bad ones: last, incoming order, typed errors
    tail = results[len(scored) :]
    assert [r.index for r in tail] == [1, 3, 6]
    assert isinstance(tail[0].error, MediaDecodeError)
    assert isinstance(tail[1].error, MediaError)
    assert isinstance(tail[2].error, InvalidInputError)
    assert all(r.score == float("-inf") for r in tail)


def test_a_model_failure_on_one_item_is_isolated(
    reranker: CrossEncoderReranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = _image(9, size=(13, 17))
    original = reranker.model.predict

    def predict(pairs: Any, *args: Any, **kwargs: Any) -> Any:
        if any(getattr(doc, "size", None) == (13, 17) for _, doc in pairs):
            raise RuntimeError("boom")
        return original(pairs, *args, **kwargs)

    monkeypatch.setattr(reranker.model, "predict", predict)
    results = reranker.rerank("a red circle", [_image(1), poison, _image(2), "text"])
    assert [r.scored for r in results] == [True, True, True, False]
    assert results[-1].index == 1 and isinstance(results[-1].error, RerankError)
    assert isinstance(results[-1].error.__cause__, RuntimeError)
    assert "boom" in str(results[-1].error)


def test_url_shaped_text_is_text_and_never_fetched(
    reranker: CrossEncoderReranker, no_network: list[Any]
) -> None:
    urls = ["https://example.com/cat.png", "http://127.0.0.1:9/x.jpg", "data:image/png;base64,AAAA"]
    candidates: list[Any] = [*urls, "a red circle"]
    results = reranker.rerank("https://example.com/query.png", candidates)
    assert no_network == []
    assert all(r.scored for r in results) and len(results) == 4
    alone = [
        _pair_score(reranker, {"text": "https://example.com/query.png"}, {"text": c}) for c in candidates
    ]
    assert no_network == []
    assert {r.index: r.score for r in results} == pytest.approx(dict(enumerate(alone)), abs=1e-5)


def test_loads_local_directory_offline(
    llava_dir: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[Any]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = CrossEncoderReranker(llava_dir, device="cpu", max_length=128)
    assert isinstance(loaded, Reranker)
    assert loaded.model_id == str(llava_dir)
    assert loaded.modalities == frozenset({"text", "image"})
    assert loaded.model.max_seq_length == 128
    assert [r.scored for r in loaded.rerank("a red circle", ["a red circle", _image(1)])] == [True, True]
    assert no_network == []
    with pytest.raises(InvalidInputError, match="no model directory"):
        CrossEncoderReranker(llava_dir.parent / "nope")


# ------------------------------------------------------------------------------------------------
# A text-only CrossEncoder (no chat template)
# ------------------------------------------------------------------------------------------------


def test_text_only_cross_encoder(tmp_path: Path, no_network: list[Any]) -> None:
    text = CrossEncoderReranker(build_tiny_text_reranker(tmp_path / "bert"), device="cpu")
    assert text.modalities == frozenset({"text"})
    assert not text.supports("image") and not text.supports(("text", "image"))
    candidates: list[Any] = [
        "a red circle",
        "https://example.com/cat.png",
        _image(1),
        "blue square",
        "the sea",
    ]
    results = text.rerank("red circle", candidates)
    docs = [c for c in candidates if isinstance(c, str)]
    alone = {
        i: float(text.model.predict([("red circle", c)])[0])
        for i, c in enumerate(candidates)
        if isinstance(c, str)
    }
    _assert_distinct(list(alone.values()))
    assert len(docs) == 4
    assert [r.index for r in results[:4]] == sorted(alone, key=lambda i: (-alone[i], i))
    assert results[-1].index == 2 and isinstance(results[-1].error, UnsupportedModalityError)
    with pytest.raises(UnsupportedModalityError):
        text.rerank(_image(1), ["a red circle"])
    assert no_network == []


# ------------------------------------------------------------------------------------------------
# FakeReranker
# ------------------------------------------------------------------------------------------------


def test_fake_reranker_word_overlap() -> None:
    fake = FakeReranker()
    assert isinstance(fake, Reranker)
    candidates: list[Any] = ["a blue square", "a red circle", "red", "circle red a", _image(1)]
    results = fake.rerank("a red circle", candidates)
    assert [r.index for r in results] == [1, 3, 2, 0, 4]  # ties (1 and 3) keep incoming order
    assert results[0].score == pytest.approx(1.0) and results[-1].score == 0.0
    assert all(r.scored for r in results)
    assert fake.rerank("a red circle", candidates, top_n=2) == results[:2]
    assert word_overlap(as_item("a b"), as_item("c d")) == 0.0
    assert len(fake.calls) == 2 and isinstance(fake.calls[0][0], Text)


def test_fake_reranker_policies_and_failures() -> None:
    def score(query: Any, doc: Any) -> float:
        if isinstance(doc, Text) and doc.text == "broken":
            raise MediaDecodeError("broken", "simulated")
        return float(len(doc.text)) if isinstance(doc, Text) else 0.5

    candidates: list[Any] = ["abc", "broken", _image(1), "a", AUDIO]
    fake = FakeReranker(score, modalities=("text", "image"))
    results = fake.rerank("q", candidates)
    assert [r.index for r in results] == [0, 3, 2, 1, 4]
    assert isinstance(results[3].error, MediaDecodeError)
    assert isinstance(results[4].error, UnsupportedModalityError)
    assert [r.index for r in FakeReranker(score, unsupported="drop").rerank("q", candidates)] == [0, 3, 2, 1]
    with pytest.raises(UnsupportedModalityError):
        FakeReranker(score, unsupported="error").rerank("q", candidates)
    with pytest.raises(UnsupportedModalityError, match="query"):
        FakeReranker(modalities=("text",)).rerank(_image(1), ["a"])
    assert math.isinf(results[-1].score)


# ------------------------------------------------------------------------------------------------
# What reaches the model, for audio and video (a recording stand-in for an audio/video reranker)
# ------------------------------------------------------------------------------------------------


class _RecordingCrossEncoder:
    """Duck-typed CrossEncoder reading text, audio and video through a chat template."""

    modalities = ["text", "audio", "video", "message"]
    num_labels = 1

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.processor = SimpleNamespace(
            feature_extractor=SimpleNamespace(sampling_rate=8_000),
            video_processor=SimpleNamespace(num_frames=4),
        )
        self.module = SimpleNamespace(processor=self.processor)
        self.pairs: list[Any] = []

    def __getitem__(self, index: int) -> Any:
        return self.module

    def predict(self, pairs: list[Any], **kwargs: Any) -> np.ndarray:
        self.pairs.extend(pairs)

        def size(doc: Any) -> float:
            parts = doc.values() if isinstance(doc, dict) else [doc]
            return float(sum(np.asarray(p).size if not isinstance(p, str) else len(p) for p in parts))

        return np.array([size(doc) for _, doc in pairs], dtype=np.float32)


def test_audio_and_video_reach_the_model_loaded_and_never_as_strings() -> None:
    from omniretrieve.types import Video

    model = _RecordingCrossEncoder()
    reranker = CrossEncoderReranker(model)  # type: ignore[arg-type]
    assert reranker.modalities == frozenset({"text", "audio", "video"})
    audio = Audio(np.zeros(16_000, dtype=np.float32), sampling_rate=16_000)  # 1 s at 16 kHz
    video = Video(np.zeros((10, 8, 8, 3), dtype=np.uint8))
    candidates: list[Any] = ["abc", audio, video, {"text": "ab", "audio": audio}, _image(1)]
    results = reranker.rerank("https://example.com/q.wav", candidates)

    assert all(q == {"text": "https://example.com/q.wav"} for q, _ in model.pairs)
    arrays = [doc for _, doc in model.pairs if isinstance(doc, np.ndarray)]
    waves = [a for a in arrays if a.ndim == 1]
    clips = [a for a in arrays if a.ndim == 4]
    assert len(waves) == 1 and waves[0].dtype == np.float32 and waves[0].shape == (8_000,)
    assert len(clips) == 1 and clips[0].dtype == np.uint8 and clips[0].shape == (4, 8, 8, 3)
    (combined,) = [doc for _, doc in model.pairs if isinstance(doc, dict) and "audio" in doc]
    assert sorted(combined) == ["audio", "text"]
    assert combined["text"] == "ab" and combined["audio"].shape == (8_000,)
    assert {"text": "abc"} in [doc for _, doc in model.pairs]
    # scores (sizes) sorted; the image candidate is unreadable by this model and kept last
    assert [r.index for r in results] == [3, 1, 2, 0, 4]
    assert isinstance(results[-1].error, UnsupportedModalityError)


def test_query_media_that_will_not_load_raises(reranker: CrossEncoderReranker) -> None:
    with pytest.raises(MediaDecodeError):
        reranker.rerank(Image(b"not an image"), ["a red circle"])


# ------------------------------------------------------------------------------------------------
# Names, errors and the model layer shared with the embedder
# ------------------------------------------------------------------------------------------------


def test_ok_is_the_name_and_scored_its_alias() -> None:
    good, bad = RerankResult(0, 0.5), RerankResult(1, float("-inf"), RerankError("candidate 1", "x"))
    assert good.ok and good.scored and not bad.ok and not bad.scored


class _NaNCrossEncoder(_RecordingCrossEncoder):
    """Scores NaN for the text "nan"."""

    def predict(self, pairs: list[Any], **kwargs: Any) -> np.ndarray:
        scores = super().predict(pairs, **kwargs)
        return np.array(
            [math.nan if doc == {"text": "nan"} else s for (_, doc), s in zip(pairs, scores, strict=True)],
            dtype=np.float32,
        )


def test_a_nan_score_is_a_rerank_error_for_that_candidate_only() -> None:
    reranker = CrossEncoderReranker(_NaNCrossEncoder())  # type: ignore[arg-type]
    results = reranker.rerank("q", ["abc", "nan", "a"])
    assert [r.index for r in results] == [0, 2, 1]
    assert [r.ok for r in results] == [True, True, False]
    assert isinstance(results[-1].error, RerankError) and "NaN" in str(results[-1].error)
    assert results[-1].score == float("-inf")


def test_a_loaded_model_is_named_by_the_shared_rule_and_takes_no_loading_options(
    reranker: CrossEncoderReranker, llava_dir: Path
) -> None:
    again = CrossEncoderReranker(reranker.model)
    assert again.model_id == str(llava_dir)  # its transformers config's name_or_path
    assert CrossEncoderReranker(_RecordingCrossEncoder()).model_id == (  # type: ignore[arg-type]
        "sentence-transformers:_RecordingCrossEncoder"
    )
    for options in ({"device": "cpu"}, {"dtype": "float16"}, {"trust_remote_code": True}):
        with pytest.raises(InvalidInputError, match="loaded model"):
            CrossEncoderReranker(reranker.model, **options)
    with pytest.raises(InvalidInputError, match="dtype"):
        CrossEncoderReranker(llava_dir, device="cpu", dtype="float17")


def test_audio_rate_and_video_frames_follow_the_shared_defaults() -> None:
    """A model whose processor names no rate or frame count gets the embedder's defaults."""
    from types import SimpleNamespace

    from omniretrieve.models import DEFAULT_AUDIO_SAMPLING_RATE, DEFAULT_VIDEO_FRAMES
    from omniretrieve.types import Video

    model = _RecordingCrossEncoder()
    model.module = SimpleNamespace(processor=SimpleNamespace())
    reranker = CrossEncoderReranker(model)  # type: ignore[arg-type]
    audio = Audio(np.zeros(8_000, dtype=np.float32), sampling_rate=8_000)  # 1 s at 8 kHz
    video = Video(np.zeros((20, 8, 8, 3), dtype=np.uint8))
    assert all(r.ok for r in reranker.rerank("q", [audio, video]))
    shapes = sorted((np.asarray(doc).shape for _, doc in model.pairs), key=len)
    assert shapes == [(DEFAULT_AUDIO_SAMPLING_RATE,), (DEFAULT_VIDEO_FRAMES, 8, 8, 3)]
