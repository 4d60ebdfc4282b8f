"""The model layer the embedder and the reranker share (``omniretrieve.models``)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from omniretrieve.embedding import BaseEmbedder
from omniretrieve.errors import InvalidInputError
from omniretrieve.models import (
    DEFAULT_AUDIO_SAMPLING_RATE,
    DEFAULT_VIDEO_FRAMES,
    audio_sampling_rate,
    batch_then_isolate,
    check_options,
    crop_audio_to_window,
    image_min_side,
    instance_model_id,
    load_kwargs,
    processor_of,
    refuse_loading_options,
    torch_dtype,
    video_num_frames,
)
from omniretrieve.testing.fakes import FakeEmbedder

# ---------------------------------------------------------------------------------------------
# batch_then_isolate
# ---------------------------------------------------------------------------------------------


class _Model:
    """Doubles each input; fails on any batch holding a negative number."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, batch: list[int]) -> list[int]:
        self.calls.append(list(batch))
        if any(x < 0 for x in batch):
            raise RuntimeError(f"bad input in {batch}")
        return [2 * x for x in batch]


def test_a_batch_that_works_is_one_call() -> None:
    model = _Model()
    assert batch_then_isolate([1, 2, 3], model) == [2, 4, 6]
    assert model.calls == [[1, 2, 3]]
    assert batch_then_isolate([], model) == [] and len(model.calls) == 1


def test_a_failing_batch_is_retried_item_by_item(caplog: pytest.LogCaptureFixture) -> None:
    model = _Model()
    with caplog.at_level(logging.DEBUG, logger="omniretrieve.models.batching"):
        outcomes = batch_then_isolate([1, -2, 3, -4], model, what="numbers")
    assert outcomes[0] == 2 and outcomes[2] == 6
    assert isinstance(outcomes[1], RuntimeError) and "[-2]" in str(outcomes[1])
    assert isinstance(outcomes[3], RuntimeError) and "[-4]" in str(outcomes[3])
    assert model.calls == [[1, -2, 3, -4], [1], [-2], [3], [-4]]
    assert "a batch of 4 numbers failed" in caplog.text


def test_a_batch_of_one_returns_its_own_error_without_a_retry() -> None:
    model = _Model()
    (outcome,) = batch_then_isolate([-1], model)
    assert isinstance(outcome, RuntimeError) and model.calls == [[-1]]


def test_a_wrong_number_of_outputs_counts_as_a_failure() -> None:
    def short(batch: list[int]) -> np.ndarray:
        return np.zeros((1 if len(batch) > 1 else len(batch), 2))  # drops rows for a batch

    outcomes = batch_then_isolate([1, 2], short)
    assert [type(o) for o in outcomes] == [np.ndarray, np.ndarray]
    assert all(np.asarray(o).shape == (2,) for o in outcomes)  # one row each, retried alone
    (alone,) = batch_then_isolate([1], lambda batch: [])
    assert isinstance(alone, ValueError) and "0 outputs for 1 inputs" in str(alone)


def test_an_interrupt_is_not_swallowed() -> None:
    def interrupted(batch: list[int]) -> list[int]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch_then_isolate([1, 2], interrupted)


# ---------------------------------------------------------------------------------------------
# loading: dtype, options, ids
# ---------------------------------------------------------------------------------------------


def test_dtype_names_become_torch_dtypes() -> None:
    torch = pytest.importorskip("torch")
    assert torch_dtype("float16") is torch.float16
    assert torch_dtype("torch.bfloat16") is torch.bfloat16
    assert torch_dtype(torch.float32) is torch.float32
    assert torch_dtype("auto") == "auto" and torch_dtype(None) is None
    for bad in ("float17", "nn", "Tensor"):
        with pytest.raises(InvalidInputError, match="not a torch dtype"):
            torch_dtype(bad)
    assert load_kwargs() is None and load_kwargs(None, {}) is None
    assert load_kwargs("float16", {"attn_implementation": "eager"}) == {
        "attn_implementation": "eager",
        "dtype": torch.float16,
    }


def test_loading_options_with_a_loaded_model_are_refused_by_name() -> None:
    refuse_loading_options({"device": None, "dtype": None, "trust_remote_code": False})
    with pytest.raises(InvalidInputError, match="loaded model") as info:
        refuse_loading_options({"device": "cpu", "dtype": None, "trust_remote_code": True})
    assert info.value.input == "['device', 'trust_remote_code']"


def test_options_are_checked_against_the_target_signature() -> None:
    check_options("fake:3", FakeEmbedder, {"seed": 1}, 3)
    with pytest.raises(InvalidInputError, match="colour") as info:
        check_options("fake:3", FakeEmbedder, {"colour": "red"}, 3)
    assert info.value.input == "fake:3" and info.value.__cause__ is None


def test_a_loaded_models_id_comes_from_its_card_then_its_config_then_its_class() -> None:
    card = SimpleNamespace(model_id="team/model", base_model="base/model")
    config = SimpleNamespace(name_or_path="/models/local")
    assert instance_model_id(SimpleNamespace(model_card_data=card, config=config)) == "team/model"
    card.model_id = None
    assert instance_model_id(SimpleNamespace(model_card_data=card, config=config)) == "base/model"
    assert instance_model_id(SimpleNamespace(config=config)) == "/models/local"
    assert instance_model_id(SimpleNamespace(config=SimpleNamespace(_name_or_path="x/y"))) == "x/y"
    assert instance_model_id(object()) == "sentence-transformers:object"


# ---------------------------------------------------------------------------------------------
# preprocessing: what the processor expects
# ---------------------------------------------------------------------------------------------


def _model(processor: Any = None, config: Any = None) -> Any:
    """A stand-in shaped like a sentence-transformers model: indexable modules, a config."""

    class Model(list[Any]):
        pass

    model = Model([SimpleNamespace(processor=processor)] if processor is not None else [])
    if config is not None:
        model.config = config  # type: ignore[attr-defined]
    return model


def test_audio_rate_comes_from_the_feature_extractor() -> None:
    clap = _model(SimpleNamespace(feature_extractor=SimpleNamespace(sampling_rate=48_000)))
    assert audio_sampling_rate(clap) == 48_000
    assert audio_sampling_rate(_model(SimpleNamespace(sampling_rate=22_050))) == 22_050
    for silent in (_model(), _model(SimpleNamespace()), _model(SimpleNamespace(sampling_rate=True))):
        assert audio_sampling_rate(silent) == DEFAULT_AUDIO_SAMPLING_RATE == 16_000


def test_video_frames_come_from_the_processor_then_the_config() -> None:
    video = SimpleNamespace(video_processor=SimpleNamespace(num_frames=16), num_frames=4)
    assert video_num_frames(_model(video)) == 16
    assert video_num_frames(_model(SimpleNamespace(num_frames=4))) == 4
    assert video_num_frames(_model(None, SimpleNamespace(num_frames=6))) == 6
    assert video_num_frames(_model(None, SimpleNamespace(vision_config=SimpleNamespace(num_frames=2)))) == 2
    assert video_num_frames(_model()) == DEFAULT_VIDEO_FRAMES == 8
    assert video_num_frames(_model(SimpleNamespace(num_frames=0))) == DEFAULT_VIDEO_FRAMES


def test_the_default_frame_count_and_rate_are_one_constant_each() -> None:
    fake = FakeEmbedder(4)
    assert (
        fake.video_num_frames == DEFAULT_VIDEO_FRAMES
        and fake.audio_sampling_rate == DEFAULT_AUDIO_SAMPLING_RATE
    )
    assert BaseEmbedder.video_num_frames.fget(fake) == DEFAULT_VIDEO_FRAMES  # type: ignore[attr-defined]
    assert BaseEmbedder.audio_sampling_rate.fget(fake) == DEFAULT_AUDIO_SAMPLING_RATE  # type: ignore[attr-defined]


def test_processor_lookup_never_raises() -> None:
    assert processor_of(object()) is None and processor_of([]) is None and processor_of({}) is None
    processor = SimpleNamespace(image_processor=SimpleNamespace(size={"shortest_edge": 224}))
    assert processor_of(_model(processor)) is processor
    assert image_min_side(_model(processor)) == 224
    assert image_min_side(_model()) is None


def test_long_clips_are_cropped_to_the_window_only_for_random_truncation() -> None:
    samples = np.arange(10, dtype=np.float32)
    random_crop = _model(SimpleNamespace(nb_max_samples=4, truncation="rand_trunc"))
    np.testing.assert_array_equal(crop_audio_to_window(random_crop, samples), samples[:4])
    np.testing.assert_array_equal(crop_audio_to_window(random_crop, samples[:3]), samples[:3])
    fixed = _model(SimpleNamespace(nb_max_samples=4, truncation="max_length"))
    assert crop_audio_to_window(fixed, samples) is samples
    assert crop_audio_to_window(_model(), samples) is samples
