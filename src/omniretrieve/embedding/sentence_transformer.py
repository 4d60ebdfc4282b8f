"""Embedding with any sentence-transformers model: :class:`SentenceTransformerEmbedder`."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from omniretrieve.embedding._device_images import DeviceImages
from omniretrieve.embedding._pool import EncodePool, parse_devices
from omniretrieve.embedding.base import BaseEmbedder
from omniretrieve.embedding.protocol import CombineStrategy, RouteKey
from omniretrieve.errors import InvalidInputError, require
from omniretrieve.media._gpu_decode import EncodedJpeg
from omniretrieve.media._image import decode_image
from omniretrieve.models import (
    audio_sampling_rate,
    crop_audio_to_window,
    image_min_side,
    instance_model_id,
    loader_options,
    max_text_chars,
    model_revision,
    refuse_loading_options,
    truncate_text,
    video_num_frames,
)
from omniretrieve.types import MODALITIES, Modality, Role, describe

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from omniretrieve.media import MediaLoader
    from omniretrieve.media._workers import DecodeSpec

logger = logging.getLogger(__name__)


class SentenceTransformerEmbedder(BaseEmbedder):
    """Embed text, images, audio and video with any sentence-transformers model.

    Load a model by hub id or local directory (or pass a loaded ``SentenceTransformer``); the
    embedder reports what the model reads and routes every item to it, one modality per call.
    Queries go through ``encode_query`` and documents through ``encode_document``, so models with
    query/document prompts use them.

    Inputs are handed to sentence-transformers in forms it can never mistake for something to
    fetch: text as ``{"text": s}`` (a bare string that looks like an image path or URL would be
    opened or downloaded by the library), images as decoded PIL images, audio as
    ``{"array", "sampling_rate"}`` at the model's rate, video as uint8 frame arrays with the model's
    number of frames. Every file and URL is read by the :class:`~omniretrieve.media.MediaLoader`
    under its policy.

    Example::

        embedder = SentenceTransformerEmbedder("path/to/clip-model")
        vectors = embedder.embed(["a red circle", Image("circle.png"),
                                  {"text": "a caption", "image": "photo.jpg"}])
        query = embedder.embed_query("https://example.com/x.png")   # embedded as text, never fetched

    Args:
        model: a hub id, a local model directory, or a loaded ``SentenceTransformer``.
        device: e.g. ``"cpu"``, ``"cuda"``; default: the best available.
        dtype: the weights' dtype, e.g. ``"float16"``, ``"bfloat16"``, ``torch.float16`` or ``"auto"``.
        trust_remote_code: allow model code from the hub (only for models you trust).
        batch_size: inputs per model call.
        media: the media loader; default ``MediaLoader()`` with the default safe policy.
        combine: how combined items are embedded, see :data:`CombineStrategy`.
        show_progress: whether ``embed`` shows a progress bar by default.
        model_kwargs: extra keyword arguments for loading the transformers model.
        processor_kwargs: extra keyword arguments for loading the processor/tokenizer.
        num_workers: threads that load and decode media ahead of the model (0: none).
        draft_images: let the loader decode JPEGs at a reduced scale (1/2, 1/4, 1/8, by DCT
            scaling) when the model's processor downsizes them further anyway: several times
            faster on large photos, with embeddings a hair from those of a full-size decode. False
            gives the model exactly the pixels a full decode gives.
        model_id: The id this embedder reports, which is what a :class:`~omniretrieve.store.Store`
            records and checks: a store refuses an embedder of another id
            (:class:`~omniretrieve.errors.EmbeddingSpaceMismatchError`). Default: the hub id or the
            path as given (for a loaded model, the name it was loaded under). Give a stable name
            when the directory may move (a model inside a virtualenv or a checkout), or when two
            models loaded from one directory make different vectors and must not share a store.
        revision: The hub revision to load (a branch, tag or commit hash); pin a commit so the
            model cannot change under its id. The store records the commit actually loaded
            (:attr:`revision`).
        cache_folder: Where hub models are cached (default: the Hugging Face cache).
        local_files_only: Never download; load from the cache or directory only.
        token: A Hugging Face token for private or gated models (``True``: the saved one).
        backend: ``"torch"`` (the library's default), ``"onnx"`` or ``"openvino"``.
        truncate_dim: Keep only the first ``truncate_dim`` dimensions of every vector (Matryoshka
            models); the embedder's :attr:`dimension` follows.
        prompts: Prompt names to prompt texts (e.g. ``{"query": "query: "}``).
        default_prompt_name: The prompt used when none is named.
        config_kwargs: Extra keyword arguments for loading the transformers config.
        model_card_data: The model card's data (sentence-transformers' ``SentenceTransformerModelCardData``).
        similarity_fn_name: The model's similarity function; omniretrieve compares by cosine anyway.
        devices: Encode on these devices (``["cuda:0", "cuda:1"]``, or ``"cuda:0,cuda:1"``). Two or
            more go through sentence-transformers' multi-process pool, one process per device,
            started on the first model call and stopped by :meth:`close` (see
            :mod:`omniretrieve.embedding._pool`); one is the same as ``device``. Not together with
            ``device``.
        device_preprocessing: Resize, crop and normalise images in torch on the model's device
            instead of in the processor on the CPU, where a probe proves it gives the processor's
            embeddings (cosine >= 0.999 on probe images; otherwise the processor is used and the
            reason logged; see :mod:`omniretrieve.embedding._device_images`). ``None``: when the
            model is on CUDA; ``True``: on any device (after the probe); ``False``: never. Not
            with several ``devices``.
        decode_on_device: With device preprocessing on a CUDA device and torchvision installed,
            JPEG files are decoded on the GPU (nvJPEG) after a probe of their own (``None``/``True``);
            ``False`` decodes them on the CPU.

        Every ``SentenceTransformer(...)`` loading option is one of these (the list is
        :data:`omniretrieve.models.SENTENCE_TRANSFORMER_OPTIONS`) and applies only when ``model``
        is loaded here.

    Raises:
        InvalidInputError: loading options were given together with a loaded model, ``model_id`` is
            empty, or the model reads none of text, image, audio and video.
        MissingDependencyError: sentence-transformers is not installed.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | SentenceTransformer,
        *,
        device: str | None = None,
        dtype: Any = None,
        trust_remote_code: bool = False,
        batch_size: int = 32,
        media: MediaLoader | None = None,
        combine: CombineStrategy = "auto",
        show_progress: bool = False,
        model_kwargs: Mapping[str, Any] | None = None,
        processor_kwargs: Mapping[str, Any] | None = None,
        num_workers: int | None = None,
        draft_images: bool = True,
        model_id: str | None = None,
        revision: str | None = None,
        cache_folder: str | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        backend: str | None = None,
        truncate_dim: int | None = None,
        prompts: Mapping[str, str] | None = None,
        default_prompt_name: str | None = None,
        config_kwargs: Mapping[str, Any] | None = None,
        model_card_data: Any = None,
        similarity_fn_name: str | None = None,
        devices: str | Sequence[str] | None = None,
        device_preprocessing: bool | None = None,
        decode_on_device: bool | None = None,
    ) -> None:
        if model_id is not None and (not isinstance(model_id, str) or not model_id.strip()):
            raise InvalidInputError(
                f"model_id={model_id!r}", "must be a non-empty str, or None for the default"
            )
        super().__init__(
            media=media,
            batch_size=batch_size,
            combine=combine,
            show_progress=show_progress,
            num_workers=num_workers,
        )
        self.draft_images = draft_images
        wanted = parse_devices(devices)
        if wanted is not None and device is not None:
            raise InvalidInputError(
                f"device={device!r}, devices={devices!r}", "give device or devices, not both"
            )
        if wanted is not None and isinstance(model, str | os.PathLike):  # load where it will run
            device = wanted[0] if len(wanted) == 1 else "cpu"
        options = {
            "device": device,
            "trust_remote_code": trust_remote_code,
            "revision": revision,
            "cache_folder": cache_folder,
            "local_files_only": local_files_only,
            "token": token,
            "backend": backend,
            "truncate_dim": truncate_dim,
            "prompts": prompts,
            "default_prompt_name": default_prompt_name,
            "model_kwargs": model_kwargs,
            "processor_kwargs": processor_kwargs,
            "config_kwargs": config_kwargs,
            "model_card_data": model_card_data,
            "similarity_fn_name": similarity_fn_name,
        }
        self._model, self._model_id = _load(model, dtype, options)
        self._source: str | None = None if model is self._model else self._model_id  # loaded here, by name
        self._asked = (revision, cache_folder)
        if model_id is not None:
            self._model_id = model_id
        self._pool: EncodePool | None = None
        self._devices: tuple[str, ...] | None = None
        self._preprocessing = device_preprocessing
        self._images = DeviceImages(
            self._model, device_preprocessing, decode_on_device, lambda: self.media.policy
        )
        self.devices = wanted

        raw = list(self._model.modalities)
        self._modalities = frozenset(m for m in raw if isinstance(m, str) and m in MODALITIES)
        if not self._modalities:
            raise InvalidInputError(
                self._model_id, f"the model reads none of {list(MODALITIES)} (it reads {raw})"
            )
        self._dimension = self._find_dimension()
        fn = getattr(self._model, "similarity_fn_name", None) or "cosine"
        if fn != "cosine":
            logger.warning(
                "%s is configured for %r similarity; omniretrieve L2-normalises every vector and compares "
                "by cosine",
                self._model_id,
                fn,
            )
        self._native: dict[tuple[Modality, ...], bool] = {}
        self._text_limit: int | None = None

    # -- devices -------------------------------------------------------------------------------

    @property
    def devices(self) -> tuple[str, ...] | None:
        """The devices the model encodes on (see ``devices=``), or ``None`` for its own device.

        Settable between calls (``omniretrieve index --devices``): a running pool is stopped; two
        or more devices start a new one on the next model call; one moves the model there.

        Raises:
            InvalidInputError: a name that is not a device, or several devices with
                ``device_preprocessing=True``.
        """
        return self._devices

    @devices.setter
    def devices(self, value: str | Sequence[str] | None) -> None:
        wanted = parse_devices(value)
        if wanted is not None and len(wanted) > 1 and self._images.setting:
            raise InvalidInputError(
                f"devices={value!r}", "device_preprocessing runs in this process: use one device for it"
            )
        if self._pool is not None:
            self._pool.close()
        self._pool = None
        self._images.reset(self._preprocessing)
        if wanted is not None and len(wanted) == 1:
            self._model.to(wanted[0])
        elif wanted is not None:
            self._images.setting = False  # each pool process runs the processor itself
            self._pool = EncodePool(self._model, wanted)
        self._devices = wanted

    @property
    def device_images(self) -> DeviceImages:
        """The device preprocessing path: its probe's outcome (``.probe``) and time per stage (``.seconds``)."""
        return self._images

    def decode_spec(self) -> DecodeSpec:
        """As :meth:`BaseEmbedder.decode_spec`; JPEG files come back undecoded when the GPU decodes them."""
        spec = super().decode_spec()
        if self._pool is None and self._images.jpeg_on_device():
            return dataclasses.replace(spec, jpeg_passthrough=True)
        return spec

    def close_workers(self) -> None:
        """Stop the decoding processes and the encoding pool, if any run (later calls restart them)."""
        super().close_workers()
        if self._pool is not None:
            self._pool.close()

    def close(self) -> None:
        """Stop every process this embedder started (:meth:`close_workers`); it stays usable."""
        self.close_workers()

    def __enter__(self) -> SentenceTransformerEmbedder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- description ---------------------------------------------------------------------------

    @property
    def model(self) -> SentenceTransformer:
        """The underlying ``SentenceTransformer``."""
        return self._model

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def revision(self) -> str | None:
        """The version of the model loaded: its hub commit, or ``"sha256:..."`` for a local directory.

        Computed once, cheaply (:func:`omniretrieve.models.model_revision`: the hub cache's
        snapshot, or a hash of the directory's configuration and weight headers, never of the
        weights); ``None`` for a model built in memory. A store records it.
        """
        if not hasattr(self, "_revision"):
            revision, cache_folder = self._asked
            self._revision = model_revision(
                self._model, name=self._source, revision=revision, cache_folder=cache_folder
            )
        return self._revision

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def modalities(self) -> frozenset[Modality]:
        return self._modalities

    @property
    def audio_sampling_rate(self) -> int:
        """The model's audio sampling rate (from its feature extractor), 16 kHz if it names none."""
        return audio_sampling_rate(self._model)

    @property
    def video_num_frames(self) -> int:
        """Frames per video the model reads (from its processor or config), 8 if it names none."""
        return video_num_frames(self._model)

    @property
    def image_min_side(self) -> int | None:
        """The side the model's image processor resizes to (if ``draft_images``), else ``None``."""
        if not self.draft_images:
            return None
        if not hasattr(self, "_image_min_side"):
            self._image_min_side = image_min_side(self._model)
        return self._image_min_side

    def _find_dimension(self) -> int:
        getter = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = getter()
        if isinstance(dim, int) and dim > 0:
            return dim
        probe: tuple[RouteKey, Any] = ("text", "dimension probe")
        if "text" not in self._modalities:
            from PIL import Image as PILImage

            probe = ("image", PILImage.new("RGB", (32, 32)))
        return int(self._call_encode(probe[0], [probe[1]], "document").shape[1])

    def _supports_native(self, modalities: tuple[Modality, ...]) -> bool:
        if modalities not in self._native:
            # sentence-transformers names combinations in sorted order, e.g. ("image", "text").
            key = tuple(sorted(modalities))
            try:
                self._native[modalities] = bool(self._model.supports(key))
            except Exception:  # pragma: no cover - defensive: an odd model answers no
                self._native[modalities] = False
        return self._native[modalities]

    # -- encoding ------------------------------------------------------------------------------

    def _prepare_text(self, text: str) -> str:
        """Cut a text to what the model can read before it is tokenised (see :func:`~omniretrieve.models.truncate_text`).

        Tokenisers process the whole string before truncating; the cut bounds their time and memory
        by the model's input size, not the text's.
        """
        if self._text_limit is None:
            self._text_limit = max_text_chars(self._model)
        return truncate_text(self._model, text, self._text_limit)

    def _prepare_audio(self, samples: np.ndarray) -> np.ndarray:
        """Crop clips longer than the model's window to their start (see :func:`~omniretrieve.models.crop_audio_to_window`)."""
        return crop_audio_to_window(self._model, samples)

    def _wrap(self, route: RouteKey, value: Any) -> Any:
        """One prepared input in the form sentence-transformers reads unambiguously."""
        if isinstance(route, tuple):
            return {m: self._wrap_part(m, value[m]) for m in route}
        return {route: self._wrap_part(route, value)}

    def _wrap_part(self, modality: Modality, value: Any) -> Any:
        if modality == "audio":
            return {"array": value, "sampling_rate": self.audio_sampling_rate}
        if isinstance(value, EncodedJpeg):  # sent undecoded for the GPU, needed here as pixels
            return decode_image(value.data, self.media.policy, value.name, self.image_min_side)
        return value

    def _encode(self, route: RouteKey, inputs: list[Any], role: Role) -> np.ndarray:
        import torch

        if route == "image" and self._pool is None and self._images.active():
            return self._images.encode(inputs)
        wrapped = [self._wrap(route, value) for value in inputs]
        encode: Callable[..., Any] = (
            self._model.encode_query if role == "query" else self._model.encode_document
        )
        options = {
            "batch_size": self.batch_size,
            "show_progress_bar": False,
            "convert_to_numpy": True,
            "normalize_embeddings": False,
        }
        if self._pool is not None:
            out = self._pool.encode(encode, wrapped, **options)
        else:
            with torch.inference_mode():
                out = encode(wrapped, **options)
        return np.asarray(out, dtype=np.float32)


def _load(
    model: str | os.PathLike[str] | SentenceTransformer, dtype: Any, options: dict[str, Any]
) -> tuple[SentenceTransformer, str]:
    """The model (loaded with ``options`` when given by name) and its default id."""
    st = require("sentence_transformers", extra=None, purpose="SentenceTransformerEmbedder")
    if isinstance(model, st.SentenceTransformer):
        refuse_loading_options({"dtype": dtype, **options})
        return model, instance_model_id(model)
    if isinstance(model, (str, os.PathLike)):
        name = os.fspath(model)
        return st.SentenceTransformer(name, **loader_options(dtype, **options)), name
    raise InvalidInputError(
        describe(model), "model must be a hub id, a local directory or a SentenceTransformer"
    )


__all__ = ["SentenceTransformerEmbedder"]
