"""The model layer shared by :mod:`omniretrieve.embedding` and :mod:`omniretrieve.rerank`.

Both run a sentence-transformers model (a ``SentenceTransformer`` or a ``CrossEncoder``) on inputs
that :class:`~omniretrieve.media.MediaLoader` has already loaded, and both need the same few
answers about it. Each module holds one idea:

- :mod:`~omniretrieve.models.loading`: loading a model and naming it: dtype names
  (:func:`torch_dtype`), options that only apply when loading (:func:`refuse_loading_options`),
  options a loader takes (:func:`check_options`), and the id of a loaded instance
  (:func:`instance_model_id`); every ``SentenceTransformer`` / ``CrossEncoder`` loading option by
  name (:data:`SENTENCE_TRANSFORMER_OPTIONS`, :data:`CROSS_ENCODER_OPTIONS`, :func:`loader_options`).
- :mod:`~omniretrieve.models.revision`: which version of a model was loaded: its hub commit or a
  content hash of its directory (:func:`model_revision`).
- :mod:`~omniretrieve.models.preprocessing`: what the model's processor expects of loaded media:
  the audio sampling rate, the number of video frames, the image size (a decoding hint), the audio
  window.
- :mod:`~omniretrieve.models.batching`: run a batch; when it fails, run each input alone so one bad
  input never costs the others (:func:`batch_then_isolate`).

Nothing here imports torch or sentence-transformers at import time.
"""

from __future__ import annotations

from omniretrieve.models.batching import batch_then_isolate
from omniretrieve.models.loading import (
    CROSS_ENCODER_OPTIONS,
    NOT_LOADING_OPTIONS,
    SENTENCE_TRANSFORMER_OPTIONS,
    check_options,
    instance_model_id,
    load_kwargs,
    loader_options,
    refuse_loading_options,
    torch_dtype,
)
from omniretrieve.models.preprocessing import (
    CHARS_PER_TOKEN_BOUND,
    DEFAULT_AUDIO_SAMPLING_RATE,
    DEFAULT_VIDEO_FRAMES,
    audio_sampling_rate,
    crop_audio_to_window,
    image_min_side,
    max_text_chars,
    processor_min_side,
    processor_of,
    truncate_text,
    video_num_frames,
)
from omniretrieve.models.revision import directory_revision, is_commit, model_directory, model_revision

__all__ = [
    "CROSS_ENCODER_OPTIONS",
    "NOT_LOADING_OPTIONS",
    "SENTENCE_TRANSFORMER_OPTIONS",
    "directory_revision",
    "is_commit",
    "loader_options",
    "model_directory",
    "model_revision",
    "CHARS_PER_TOKEN_BOUND",
    "max_text_chars",
    "truncate_text",
    "DEFAULT_AUDIO_SAMPLING_RATE",
    "DEFAULT_VIDEO_FRAMES",
    "audio_sampling_rate",
    "batch_then_isolate",
    "check_options",
    "crop_audio_to_window",
    "image_min_side",
    "instance_model_id",
    "load_kwargs",
    "processor_min_side",
    "processor_of",
    "refuse_loading_options",
    "torch_dtype",
    "video_num_frames",
]
