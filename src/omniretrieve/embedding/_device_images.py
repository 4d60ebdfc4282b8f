"""Device preprocessing: images resized and normalised in torch on the model's device, when proven equal.

:class:`DeviceImages` is the image path of
:class:`~omniretrieve.embedding.SentenceTransformerEmbedder` when ``device_preprocessing`` is on
(by default: when the model runs on CUDA). Decoded images (RGB PIL images from the loader or its
worker processes, or JPEG files decoded on the GPU) become ``pixel_values`` in one batch on the
model's device (:class:`~omniretrieve.models.tensor_preprocess.TensorPreprocessor`), and the model
is called on them directly, skipping the processor's per-image CPU work.

It is used only where it is proven to give the processor's embeddings. On first use, a probe
embeds :func:`probe_images` (synthetic photos of several sizes and aspect ratios, small ones
upscaled) through the processor (``encode_document``) and through the tensor path; every cosine
must reach :data:`PROBE_MIN_COSINE`. Before that, the model's form is checked: its first module a
sentence-transformers ``Transformer`` reading images, its processor's steps reproducible
(:func:`~omniretrieve.models.tensor_preprocess.plan_for`), its features ``pixel_values`` alone.
Otherwise the processor is used, and the reason is logged once (:attr:`DeviceImages.probe`).

JPEG files are also decoded on the GPU (nvJPEG, :mod:`omniretrieve.media._gpu_decode`) when the
device is CUDA and torchvision is importable, after a second probe: the probe images as JPEG
bytes, decoded by nvJPEG and preprocessed on the device, against Pillow's decode through the
processor, at the same threshold. Measured only on a CUDA machine (``benchmarks/ingest_gpu.py``).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from omniretrieve.errors import InvalidInputError
from omniretrieve.media._gpu_decode import EncodedJpeg, decode_on_device, gpu_jpeg_available
from omniretrieve.media._image import decode_image
from omniretrieve.models.preprocessing import processor_of
from omniretrieve.models.tensor_preprocess import TensorPreprocessor, plan_for

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from omniretrieve.media import MediaPolicy

logger = logging.getLogger(__name__)

PROBE_MIN_COSINE = 0.999
"""The least cosine, on every probe image, between the processor's embedding and the tensor path's."""

PROBE_SIZES: tuple[tuple[int, int], ...] = ((640, 480), (300, 500), (1000, 250), (50, 37), (33, 97))
"""``(width, height)`` of the probe images: landscape, portrait, wide, and small ones (upscaled)."""


def probe_images(seed: int = 0) -> list[PILImage]:
    """Deterministic photo-like RGB images (gradients, noise, filled ellipses) of :data:`PROBE_SIZES`."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    images = []
    for width, height in PROBE_SIZES:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        base = np.stack([xx / width * 255, yy / height * 255, (xx + yy) / (width + height) * 255], -1)
        pixels = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x0, y0 = int(rng.integers(0, width - 4)), int(rng.integers(0, height - 4))
            x1, y1 = x0 + int(rng.integers(3, width // 2 + 4)), y0 + int(rng.integers(3, height // 2 + 4))
            draw.ellipse((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        images.append(image)
    return images


@dataclass(frozen=True)
class Probe:
    """What the probe found (see the module docstring).

    Attributes:
        accepted: Whether the tensor path is used.
        reason: Why not, when it is not.
        min_cosine: The least probe cosine measured (``None`` when the form check refused first).
        gpu_jpeg: Whether JPEG files are decoded on the GPU.
        gpu_jpeg_reason: Why not, when the device is CUDA but they are not.
        gpu_jpeg_min_cosine: The least cosine of the nvJPEG probe, when it ran.
    """

    accepted: bool
    reason: str | None = None
    min_cosine: float | None = None
    gpu_jpeg: bool = False
    gpu_jpeg_reason: str | None = None
    gpu_jpeg_min_cosine: float | None = None


@dataclass
class StageSeconds:
    """Time spent per stage by the tensor path (with ``sync``, GPU work is waited for at each stage's end)."""

    decode: float = 0.0
    preprocess: float = 0.0
    encode: float = 0.0
    images: int = 0
    sync: bool = False
    _marks: list[float] = field(default_factory=list, repr=False)


class DeviceImages:
    """The tensor image path of one sentence-transformers model (see the module docstring).

    Args:
        model: The ``SentenceTransformer``.
        setting: ``True`` use it (after the probe) on any device; ``False`` never; ``None`` when
            the model is on CUDA.
        decode: ``False`` never decode JPEGs on the GPU; ``None``/``True`` when possible.
        policy: Gives the media policy (for files nvJPEG cannot decode, decoded on the CPU).
    """

    def __init__(
        self, model: Any, setting: bool | None, decode: bool | None, policy: Callable[[], MediaPolicy]
    ) -> None:
        for name, value in (("device_preprocessing", setting), ("decode_on_device", decode)):
            if value is not None and not isinstance(value, bool):
                raise InvalidInputError(f"{name}={value!r}", "must be True, False or None (automatic)")
        self._model = model
        self.setting = setting
        self.decode = decode
        self._policy = policy
        self._probe: Probe | None = None
        self._pre: TensorPreprocessor | None = None
        self.seconds = StageSeconds()

    def reset(self, setting: bool | None) -> None:
        """Forget the probe (the model moved): it runs again, on the model's new device, when needed."""
        self.setting = setting
        self._probe = None
        self._pre = None

    @property
    def wanted(self) -> bool:
        """Whether the tensor path is asked for (it is used only once the probe accepts it)."""
        if self.setting is None:
            return bool(self._device().type == "cuda")
        return self.setting

    def active(self) -> bool:
        """Whether images go through the tensor path (runs the probe on first call)."""
        return self.wanted and self.probe.accepted

    def jpeg_on_device(self) -> bool:
        """Whether JPEG files reach the model undecoded, to be decoded on its device."""
        return self.active() and self.probe.gpu_jpeg

    @property
    def probe(self) -> Probe:
        """The probe's outcome (run once, on first use while the tensor path is wanted)."""
        if not self.wanted:
            return Probe(False, "it is off (device_preprocessing=False, or the model is not on CUDA)")
        if self._probe is None:
            self._probe = self._run_probe()
            if not self._probe.accepted:
                log = logger.warning if self.setting else logger.info
                log("device preprocessing is off for this model: %s; using its processor", self._probe.reason)
            elif self._probe.gpu_jpeg_reason:
                logger.info("JPEG files are decoded on the CPU: %s", self._probe.gpu_jpeg_reason)
        return self._probe

    def encode(self, images: list[Any]) -> np.ndarray:
        """Embeddings ``(N, dim)`` of RGB PIL images and :class:`EncodedJpeg` files, in order."""
        assert self._pre is not None, "the probe accepted no tensor path"
        stages = self.seconds
        stages._marks = [time.perf_counter()]
        jpegs = [i for i, image in enumerate(images) if isinstance(image, EncodedJpeg)]
        if jpegs:
            decoded = decode_on_device([images[i] for i in jpegs], self._pre.device, self._policy())
            images = list(images)
            for i, value in zip(jpegs, decoded, strict=True):
                images[i] = value
        self._mark("decode")
        pixel_values = self._pre(images)
        self._mark("preprocess")
        out = self._forward(pixel_values)
        self._mark("encode")
        stages.images += len(images)
        return out

    def _mark(self, stage: str) -> None:
        stages = self.seconds
        if stages.sync and self._device().type == "cuda":
            import torch

            torch.cuda.synchronize(self._device())
        now = time.perf_counter()
        setattr(stages, stage, getattr(stages, stage) + now - stages._marks[-1])
        stages._marks.append(now)

    # -- internals -----------------------------------------------------------------------------

    def _device(self) -> Any:
        return self._model.device

    def _forward(self, pixel_values: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self._model({"pixel_values": pixel_values, "modality": "image"})["sentence_embedding"]
        dim = getattr(self._model, "truncate_dim", None)
        if dim:
            out = out[:, :dim]
        return np.asarray(out.float().cpu().numpy(), dtype=np.float32)

    def _reference(self, images: list[Any]) -> np.ndarray:
        """The processor path's embeddings (what the embedder would compute without this path)."""
        out = self._model.encode_document(
            [{"image": image} for image in images],
            batch_size=len(images),
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(out, dtype=np.float32)

    def _form_problem(self) -> str | TensorPreprocessor:
        """The preprocessor for this model, or why its form rules the tensor path out."""
        try:
            first = self._model[0]
        except (IndexError, KeyError, TypeError):
            return "the model has no modules"
        # sentence-transformers' Transformer (its import path moves between releases): a modality
        # config reading images, no routing by role (a Router would be the first module)
        config = getattr(first, "modality_config", None)
        if type(first).__name__ != "Transformer" or not isinstance(config, dict) or "image" not in config:
            return f"its first module ({type(first).__name__}) is not a Transformer reading images"
        processor = processor_of(self._model)
        plan = plan_for(getattr(processor, "image_processor", None) or processor)
        if isinstance(plan, str):
            return f"its image processor cannot be reproduced on tensors: {plan}"
        features = self._model.preprocess([{"image": probe_images()[-1]}])
        extra = sorted(set(features) - {"pixel_values", "modality"})
        if extra:
            return f"its processor gives more than pixel_values ({extra})"
        dtype = next(self._model.parameters()).dtype
        return TensorPreprocessor(plan, self._device(), dtype)

    def _run_probe(self) -> Probe:
        try:
            pre = self._form_problem()
            if isinstance(pre, str):
                return Probe(False, pre)
            images = probe_images()
            reference = self._reference(images)
            ours = self._forward(pre(images))
        except Exception as exc:  # a model the tensor path does not fit: the processor stays
            return Probe(False, f"the probe failed ({type(exc).__name__}: {exc})")
        low = _min_cosine(reference, ours)
        if not low >= PROBE_MIN_COSINE:
            return Probe(False, f"probe cosine {low:.6f} < {PROBE_MIN_COSINE} against the processor", low)
        self._pre = pre
        gpu, reason, gpu_low = self._probe_gpu_jpeg(images)
        return Probe(True, None, low, gpu, reason, gpu_low)

    def _probe_gpu_jpeg(self, images: list[Any]) -> tuple[bool, str | None, float | None]:
        """Whether nvJPEG decoding plus the tensor path matches Pillow plus the processor."""
        if self.decode is False:
            return False, None, None
        if not gpu_jpeg_available(self._device()):
            reason = "no CUDA device or no torchvision" if self.decode else None
            return False, reason, None
        assert self._pre is not None
        policy = self._policy()
        jpegs = []
        for k, image in enumerate(images):
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            data = buffer.getvalue()
            jpegs.append(EncodedJpeg(data, image.width, image.height, f"probe{k}.jpg"))
        try:
            reference = self._reference([decode_image(j.data, policy, j.name) for j in jpegs])
            ours = self._forward(self._pre(decode_on_device(jpegs, self._pre.device, policy)))
        except Exception as exc:
            return False, f"the nvJPEG probe failed ({type(exc).__name__}: {exc})", None
        low = _min_cosine(reference, ours)
        if not low >= PROBE_MIN_COSINE:
            return False, f"nvJPEG probe cosine {low:.6f} < {PROBE_MIN_COSINE}", low
        return True, None, low


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))
    return float(np.min(cos)) if cos.size else float("nan")


__all__ = ["PROBE_MIN_COSINE", "PROBE_SIZES", "DeviceImages", "Probe", "StageSeconds", "probe_images"]
