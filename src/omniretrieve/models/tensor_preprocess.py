"""Image preprocessing in torch, on the model's device, reproducing a transformers image processor.

A CLIP-style image processor resizes (bicubic, antialiased), centre-crops, rescales and normalises
each image on the CPU, one image at a time: on a GPU machine that, not the model, bounds the ingest
rate (``benchmarks/results/ingest.json``, and the measurements in ``FACTS.md``). The same steps on
uint8 tensors on the model's device take a fraction of the time. :func:`plan_for` reads the steps
off the processor's configuration, or says why they cannot be reproduced;
:class:`TensorPreprocessor` runs them on batches:

1. images are grouped by size; each group is stacked (through a pinned host buffer and a
   ``non_blocking`` copy when the device is CUDA) into one ``(N, 3, H, W)`` tensor;
2. resized with ``torch.nn.functional.interpolate(..., antialias=True)`` (Pillow's bilinear and
   bicubic filters, which the antialiased kernels follow), rounded to 8-bit levels as Pillow does;
3. centre-cropped, rescaled and normalised, and cast to the model's dtype.

What is reproduced: ``do_resize`` with ``size={"shortest_edge"}`` or ``{"height", "width"}`` and
``resample`` bilinear or bicubic; ``do_center_crop`` (no padding); ``do_rescale``;
``do_normalize``; ``do_convert_rgb`` (inputs are RGB already). Anything else (another resampling
filter, a longest-edge or tiling scheme, padding, any other ``do_*`` step set) is refused with its
reason. A configuration that reads well is still only a claim about the processor's code: the
embedder compares embeddings through both paths on probe images before it uses this one
(:mod:`omniretrieve.embedding._device_images`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

RESAMPLE_MODES: dict[int, str] = {2: "bilinear", 3: "bicubic"}
"""Pillow resampling codes reproduced here (``PILImageResampling.BILINEAR``, ``.BICUBIC``);
nearest, box, Hamming and Lanczos are refused."""

KNOWN_STEPS = frozenset({"do_resize", "do_center_crop", "do_rescale", "do_normalize", "do_convert_rgb"})
"""The processor steps reproduced; any other ``do_*`` option set to true refuses the processor."""


@dataclass(frozen=True)
class TensorPlan:
    """The steps of an image processor, as :class:`TensorPreprocessor` runs them.

    Attributes:
        shortest_edge: Resize so the short side has this length (aspect kept), or ``None``.
        resize_to: Resize to this ``(height, width)``, or ``None``.
        mode: ``"bilinear"`` or ``"bicubic"``.
        crop: Centre-crop to this ``(height, width)``, or ``None``.
        scale: The rescale factor (1.0: none).
        mean: Per-channel mean subtracted after rescaling (zeros: none).
        std: Per-channel divisor after that (ones: none).
    """

    shortest_edge: int | None
    resize_to: tuple[int, int] | None
    mode: str
    crop: tuple[int, int] | None
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` an image of this size is resized to (as transformers computes it)."""
        if self.resize_to is not None:
            return self.resize_to
        if self.shortest_edge is None:
            return height, width
        edge = self.shortest_edge
        if width <= height:
            return int(edge * height / width), edge
        return edge, int(edge * width / height)


def _size_fields(value: Any, names: Sequence[str]) -> dict[str, Any] | None:
    """The non-``None`` fields of a size given as a dict or a transformers ``SizeDict``."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if v is not None}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"shortest_edge": value}
    return {k: getattr(value, k) for k in names if getattr(value, k, None) is not None}


_SIZE_NAMES = ("shortest_edge", "longest_edge", "height", "width", "max_height", "max_width")


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _resize_step(processor: Any) -> tuple[int | None, tuple[int, int] | None, str] | str:
    """``(shortest_edge, resize_to, mode)`` of the processor's resize, or why it is not reproduced."""
    if not getattr(processor, "do_resize", False):
        return None, None, "bilinear"
    resample = getattr(processor, "resample", None)
    code = getattr(resample, "value", resample)
    if isinstance(code, str):  # a torchvision InterpolationMode
        mode = code if code in ("bilinear", "bicubic") else None
    else:
        mode = RESAMPLE_MODES.get(int(code)) if isinstance(code, int) else None
    if mode is None:
        return f"its resampling filter ({resample!r}) is not bilinear or bicubic"
    size = _size_fields(getattr(processor, "size", None), _SIZE_NAMES) or {}
    if set(size) == {"shortest_edge"} and _positive(size["shortest_edge"]):
        return int(size["shortest_edge"]), None, mode
    if set(size) == {"height", "width"} and _positive(size["height"]) and _positive(size["width"]):
        return None, (int(size["height"]), int(size["width"])), mode
    return f"its resize target {size!r} is not a shortest edge or a fixed height and width"


def _crop_step(processor: Any, shortest_edge: int | None, resize_to: tuple[int, int] | None) -> Any:
    """The centre crop ``(height, width)`` or ``None``, or why it is not reproduced."""
    if not getattr(processor, "do_center_crop", False):
        return None
    crop = _size_fields(getattr(processor, "crop_size", None), ("height", "width")) or {}
    if not (set(crop) == {"height", "width"} and _positive(crop["height"]) and _positive(crop["width"])):
        return f"its crop size {crop!r} is not a height and width"
    height, width = int(crop["height"]), int(crop["width"])
    smallest = (shortest_edge, shortest_edge) if shortest_edge is not None else resize_to
    if smallest is None or smallest[0] < height or smallest[1] < width:
        return "its centre crop can be larger than the resized image (the processor would pad)"
    return height, width


def _triple(value: Any) -> tuple[float, float, float] | None:
    values = [value] * 3 if isinstance(value, int | float) else list(value or [])
    if len(values) != 3 or not all(isinstance(v, int | float) for v in values):
        return None
    return float(values[0]), float(values[1]), float(values[2])


def _value_steps(processor: Any) -> tuple[float, tuple[float, ...], tuple[float, ...]] | str:
    """``(scale, mean, std)`` of the processor's rescale and normalisation, or why not reproduced."""
    scale = 1.0
    if getattr(processor, "do_rescale", False):
        factor = getattr(processor, "rescale_factor", None)
        if not isinstance(factor, int | float) or isinstance(factor, bool) or factor <= 0:
            return f"its rescale factor {factor!r} is not a positive number"
        scale = float(factor)
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    if getattr(processor, "do_normalize", False):
        m, s = _triple(getattr(processor, "image_mean", None)), _triple(getattr(processor, "image_std", None))
        if m is None or s is None or not all(v > 0 for v in s):
            return "its image mean or std is not three numbers (std positive)"
        mean, std = m, s
    return scale, mean, std


def _unknown_steps(processor: Any) -> list[str]:
    try:
        config = processor.to_dict()
    except Exception:  # pragma: no cover - a processor that cannot describe itself
        config = dict(vars(processor))
    return sorted(k for k, v in config.items() if k.startswith("do_") and v and k not in KNOWN_STEPS)


def plan_for(processor: Any) -> TensorPlan | str:
    """The steps of an image processor as a :class:`TensorPlan`, or the reason they are not reproduced.

    The output must have one size for every input (a crop, or a resize to a fixed height and
    width), as the model takes one tensor per batch.
    """
    if processor is None:
        return "the model has no image processor"
    unknown = _unknown_steps(processor)
    if unknown:
        return f"its steps {unknown} are not reproduced on tensors"
    resize = _resize_step(processor)
    if isinstance(resize, str):
        return resize
    shortest_edge, resize_to, mode = resize
    crop = _crop_step(processor, shortest_edge, resize_to)
    if isinstance(crop, str):
        return crop
    if crop is None and resize_to is None:
        return "its output size varies with the input (no centre crop and no fixed resize)"
    values = _value_steps(processor)
    if isinstance(values, str):
        return values
    scale, mean, std = values
    return TensorPlan(shortest_edge, resize_to, mode, crop, scale, mean, std)  # type: ignore[arg-type]


class TensorPreprocessor:
    """Runs a :class:`TensorPlan` on batches of RGB images, on ``device``, returning ``pixel_values``.

    Args:
        plan: The processor's steps (:func:`plan_for`).
        device: Where the work runs (the model's device).
        dtype: The dtype of the returned tensor (the model's).
    """

    def __init__(self, plan: TensorPlan, device: torch.device, dtype: torch.dtype) -> None:
        import torch

        self.plan = plan
        self.device = device
        self.dtype = dtype
        self._pinned: torch.Tensor | None = None
        self._copied: Any = None  # a CUDA event: the last copy out of the pinned buffer is done
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(plan.mean, dtype=torch.float32, device=device).view(shape)
        self._std = torch.tensor(plan.std, dtype=torch.float32, device=device).view(shape)

    def __call__(self, images: Sequence[Any]) -> torch.Tensor:
        """``pixel_values`` ``(N, 3, H, W)`` in the model's dtype on the device, in input order.

        ``images``: uint8 ``(H, W, 3)`` arrays or RGB PIL images on the host, or uint8
        ``(3, H, W)`` tensors already on the device.
        """
        import torch

        groups: dict[tuple[bool, int, int], list[int]] = {}
        hosted = [self._as_input(image) for image in images]
        for i, image in enumerate(hosted):  # one batch per size, and per place (host or device)
            groups.setdefault((isinstance(image, np.ndarray), *_hw(image)), []).append(i)
        out: torch.Tensor | None = None
        for (_, height, width), members in groups.items():
            batch = self._to_device([hosted[i] for i in members], height, width)
            done = self._geometry(batch)
            if out is None:
                out = torch.empty((len(hosted), *done.shape[1:]), dtype=torch.float32, device=self.device)
            out[torch.tensor(members, device=self.device)] = done
        assert out is not None, "no images"
        out = (out * self.plan.scale - self._mean) / self._std
        return out.to(self.dtype)

    @staticmethod
    def _as_input(image: Any) -> Any:
        import torch

        if isinstance(image, np.ndarray | torch.Tensor):
            return image
        return np.asarray(image)  # a PIL image: its pixels, (H, W, 3) uint8

    def _to_device(self, images: list[Any], height: int, width: int) -> torch.Tensor:
        """The images as one float ``(N, 3, H, W)`` tensor on the device."""
        import torch

        if isinstance(images[0], torch.Tensor):  # already decoded there, (3, H, W)
            return torch.stack(images).float()
        n = len(images)
        if self.device.type == "cuda":
            staging = self._staging(n * height * width * 3).view(n, height, width, 3)
            host = staging.numpy()
            for k, image in enumerate(images):
                host[k] = image
            batch = staging.to(self.device, non_blocking=True)
            self._copied = torch.cuda.Event()
            self._copied.record()
        else:
            batch = torch.from_numpy(np.stack(images))
        return batch.permute(0, 3, 1, 2).float()

    def _staging(self, size: int) -> torch.Tensor:
        """A pinned host buffer of at least ``size`` bytes, kept between batches.

        Before it is written again, the last asynchronous copy out of it is waited for.
        """
        import torch

        if self._copied is not None:
            self._copied.synchronize()
            self._copied = None
        if self._pinned is None or self._pinned.numel() < size:
            self._pinned = torch.empty(size, dtype=torch.uint8, pin_memory=True)
        return self._pinned[:size]

    def _geometry(self, batch: torch.Tensor) -> torch.Tensor:
        """Resize (rounded to 8-bit levels, as Pillow's uint8 output is) and centre-crop."""
        import torch

        plan = self.plan
        height, width = int(batch.shape[-2]), int(batch.shape[-1])
        target = plan.resized_size(height, width)
        if target != (height, width):
            batch = torch.nn.functional.interpolate(
                batch, size=target, mode=plan.mode, antialias=True, align_corners=False
            )
            batch = batch.round_().clamp_(0, 255)
        if plan.crop is not None:
            crop_h, crop_w = plan.crop
            top, left = (target[0] - crop_h) // 2, (target[1] - crop_w) // 2
            batch = batch[:, :, top : top + crop_h, left : left + crop_w]
        return batch


def _hw(image: Any) -> tuple[int, int]:
    """``(height, width)`` of a host ``(H, W, 3)`` array or a device ``(3, H, W)`` tensor."""
    shape = tuple(image.shape)
    return (
        (int(shape[0]), int(shape[1])) if isinstance(image, np.ndarray) else (int(shape[-2]), int(shape[-1]))
    )


__all__ = ["KNOWN_STEPS", "RESAMPLE_MODES", "TensorPlan", "TensorPreprocessor", "plan_for"]
