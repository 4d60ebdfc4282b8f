"""What a model's processor expects of loaded media, read off a loaded sentence-transformers model.

Media are loaded by :class:`~omniretrieve.media.MediaLoader` before they reach the model, so the
loader must know what the model will do with them: the sampling rate audio is resampled to, how
many frames of a video are sampled, how small an image may be decoded (a speed hint), and how long
an audio clip may be. Every answer comes from the model's processor (the first module's
``processor``: a tokenizer, an image or video processor, a feature extractor, or a multimodal
processor holding several), or its transformers config, with one documented default when the
model names nothing.

Each function takes the loaded model (``SentenceTransformer``, ``CrossEncoder``, or anything shaped
like them) and never raises on a model without a processor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

DEFAULT_AUDIO_SAMPLING_RATE = 16_000
"""The sampling rate (Hz) audio is resampled to when the model's processor names none."""

DEFAULT_VIDEO_FRAMES = 8
"""Frames sampled (evenly) from each video when neither the model's processor nor its config names a number."""

CHARS_PER_TOKEN_BOUND = 32
"""Characters a single token covers at most, generously: a text is cut to the model's max tokens
times this before it is tokenised. Tokenisers process the whole string before truncating (a 5 MB
text cost seconds and over a GiB for a model reading 64 tokens); no real tokeniser makes a token
of more than a few dozen characters, so the cut never changes what the model reads."""

DEFAULT_MAX_TEXT_CHARS = 1 << 20
"""The character cut when the model names no token limit (1 Mi characters)."""

_SIZE_FIELDS = (
    "shortest_edge",
    "height",
    "width",
    "longest_edge",
    "max_height",
    "max_width",
    "min_pixels",
    "max_pixels",
)


def processor_of(model: Any) -> Any:
    """The processor of the model's first module, or ``None`` when it has none."""
    try:
        first = model[0]
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    return getattr(first, "processor", None)


def _feature_extractor(model: Any) -> Any:
    processor = processor_of(model)
    return getattr(processor, "feature_extractor", None) or processor


def _image_processor(model: Any) -> Any:
    processor = processor_of(model)
    return getattr(processor, "image_processor", None) or processor


def audio_sampling_rate(model: Any) -> int:
    """The sampling rate (Hz) of the model's feature extractor, :data:`DEFAULT_AUDIO_SAMPLING_RATE` if it names none."""
    rate = getattr(_feature_extractor(model), "sampling_rate", None)
    return (
        rate
        if isinstance(rate, int) and not isinstance(rate, bool) and rate > 0
        else DEFAULT_AUDIO_SAMPLING_RATE
    )


def video_num_frames(model: Any) -> int:
    """Frames per video the model reads: from its video processor, processor or config.

    :data:`DEFAULT_VIDEO_FRAMES` when none of them names a positive number.
    """
    processor = processor_of(model)
    try:
        config = getattr(model, "config", None)
    except Exception:  # pragma: no cover - a model without a transformers backbone
        config = None
    candidates = (
        getattr(getattr(processor, "video_processor", None), "num_frames", None),
        getattr(processor, "num_frames", None),
        getattr(config, "num_frames", None),
        getattr(getattr(config, "vision_config", None), "num_frames", None),
    )
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_VIDEO_FRAMES


def image_min_side(model: Any) -> int | None:
    """How many pixels a side the model's image processor keeps at least (see :func:`processor_min_side`)."""
    return processor_min_side(_image_processor(model))


def processor_min_side(image_processor: Any) -> int | None:
    """How many pixels a side an image processor keeps at least, when that is certain; else ``None``.

    Known for processors that resize to a shortest edge (CLIP-style) or to a fixed height and width
    (SigLIP-style); any other scheme (longest edge, dynamic tiling, no resizing) gives ``None``.
    """
    if image_processor is None or getattr(image_processor, "do_resize", True) is False:
        return None
    size = getattr(image_processor, "size", None)
    if isinstance(size, int) and not isinstance(size, bool):
        return size if size > 0 else None
    if isinstance(size, Mapping):
        given = {k: v for k, v in size.items() if v is not None}
    elif size is not None:  # transformers' SizeDict: every field an attribute, unused ones None
        given = {k: getattr(size, k) for k in _SIZE_FIELDS if getattr(size, k, None) is not None}
    else:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in given.values()):
        return None
    if set(given) == {"shortest_edge"}:
        return int(given["shortest_edge"])
    if set(given) == {"height", "width"}:
        return int(max(given["height"], given["width"]))
    return None


def max_tokens(model: Any) -> int | None:
    """The most tokens the model reads of a text: ``max_seq_length``, else the tokenizer's limit."""
    processor = processor_of(model)
    tokenizer = getattr(processor, "tokenizer", None) or processor
    # Read lazily, in order: CrossEncoder's ``max_length`` is a deprecated alias that warns when read.
    for owner, name in ((model, "max_seq_length"), (model, "max_length"), (tokenizer, "model_max_length")):
        value = getattr(owner, name, None)
        # transformers uses a huge sentinel (1e30) for "no limit"
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1_000_000:
            return value
    return None


def max_text_chars(model: Any) -> int:
    """How many characters of a text can matter to the model (:data:`CHARS_PER_TOKEN_BOUND` per token)."""
    tokens = max_tokens(model)
    return DEFAULT_MAX_TEXT_CHARS if tokens is None else tokens * CHARS_PER_TOKEN_BOUND


def truncate_text(model: Any, text: str, limit: int | None = None) -> str:
    """``text`` cut to the characters the model can read (see :func:`max_text_chars`), before tokenising.

    Args:
        model: The loaded model.
        text: The text.
        limit: The cut, when already known (:func:`max_text_chars`).
    """
    cut = max_text_chars(model) if limit is None else limit
    return text if len(text) <= cut else text[:cut]


def crop_audio_to_window(model: Any, samples: np.ndarray) -> np.ndarray:
    """Crop a clip longer than the model's audio window to its start; other clips are returned as they are.

    Feature extractors that truncate long clips at random (CLAP's ``rand_trunc`` and ``fusion``)
    would otherwise give the same clip a different embedding or score on every call.
    """
    extractor = _feature_extractor(model)
    limit = getattr(extractor, "nb_max_samples", None)
    if getattr(extractor, "truncation", None) in ("rand_trunc", "fusion") and isinstance(limit, int):
        if samples.shape[0] > limit:
            return samples[:limit]
    return samples


__all__ = [
    "CHARS_PER_TOKEN_BOUND",
    "DEFAULT_AUDIO_SAMPLING_RATE",
    "DEFAULT_MAX_TEXT_CHARS",
    "DEFAULT_VIDEO_FRAMES",
    "audio_sampling_rate",
    "crop_audio_to_window",
    "image_min_side",
    "max_text_chars",
    "max_tokens",
    "processor_min_side",
    "processor_of",
    "truncate_text",
    "video_num_frames",
]
