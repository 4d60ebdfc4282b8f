"""The shipped demo model: where it is, how to load it, and how to take its modality gap away.

The demo model (``src/omniretrieve/demo/model/``) is a toy CLIP trained by
:mod:`omniretrieve.demo.train` on the colored-shapes world. Its image embeddings carry a constant
offset (see :data:`GAP_OFFSET_SCALE`) that reproduces the modality gap of real CLIP models. The
gap-free twin is derived from it, in memory (:func:`load_model` with ``gap=False``,
:func:`remove_gap_offset`) or as a directory (:func:`save_gap_free_model`), rather than shipped.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omniretrieve.errors import InvalidInputError, require

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

GAP_OFFSET_SCALE = 3.0
"""The modality-gap offset of the shipped demo model, in multiples of the mean embedding norm.

Every image embedding of the shipped model is its trained embedding plus one constant vector
``c`` with ``|c| = GAP_OFFSET_SCALE x`` the mean norm of the trained text and image embeddings.
``c`` points in a direction in which the embeddings barely vary, so the order of images for a
query is kept while every text-image cosine drops by about ``1 / sqrt(1 + 3^2)`` (0.98 -> 0.33
for matched pairs): a text query over a mixed corpus ranks captions above images, like real CLIP
models do. The offset lives in ``vision_model.post_layernorm.bias``; :class:`GapOffset` holds
its exact value.
"""

META_FILE = "omniretrieve_demo.json"
"""The file in a demo model directory recording the gap offset, training settings and metrics."""

GAP_PARAMETER = "vision_model.post_layernorm.bias"
"""The weight of the CLIP model that carries the gap offset."""


@dataclass(frozen=True)
class GapOffset:
    """The modality-gap offset of a demo model, as recorded in its :data:`META_FILE`.

    Attributes:
        scale: ``|c|`` in multiples of the mean embedding norm (0: no offset).
        norm: ``|c|``.
        mean_embedding_norm: The mean raw embedding norm the scale refers to.
        embedding_offset: ``c``, added to every (raw, unnormalised) image embedding.
        bias_offset: What was added to :data:`GAP_PARAMETER` to produce ``c``.
    """

    scale: float
    norm: float
    mean_embedding_norm: float
    embedding_offset: tuple[float, ...]
    bias_offset: tuple[float, ...]


def model_path() -> Path:
    """The directory of the shipped demo model (load it with ``SentenceTransformer(str(path))``).

    Raises:
        FileNotFoundError: The package was installed without the model files; reinstall it or
            train one with ``python -m omniretrieve.demo.train --out DIR``.
    """
    path = Path(__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path}: the demo model is missing from this installation; reinstall omniretrieve or "
            "train one with `python -m omniretrieve.demo.train --out DIR`"
        )
    return path


DEMO_RERANKER_ID = "omniretrieve/demo-reranker"
"""The id of the demo reranker shipped in the package (``load_reranker("demo")``); not a hub id."""


def reranker_path() -> Path:
    """The directory of the shipped demo reranker (load it with ``CrossEncoder(str(path))``).

    Raises:
        FileNotFoundError: The package was installed without the reranker files; reinstall it or
            train one with ``python -m omniretrieve.demo.train_reranker --out DIR``.
    """
    path = Path(__file__).resolve().parent / "reranker"
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(
            f"{path}: the demo reranker is missing from this installation; reinstall omniretrieve or "
            "train one with `python -m omniretrieve.demo.train_reranker --out DIR`"
        )
    return path


def _meta(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    folder = Path(path) if path is not None else model_path()
    meta_file = folder / META_FILE
    if not meta_file.is_file():
        raise InvalidInputError(str(folder), f"is not an omniretrieve demo model (no {META_FILE})")
    data: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
    return data


def gap_offset(path: str | os.PathLike[str] | None = None) -> GapOffset:
    """The gap offset of the demo model at ``path`` (default: the shipped one).

    Raises:
        InvalidInputError: ``path`` is not a demo model directory.
    """
    g = _meta(path)["gap_offset"]
    return GapOffset(
        scale=float(g["scale"]),
        norm=float(g["norm"]),
        mean_embedding_norm=float(g["mean_embedding_norm"]),
        embedding_offset=tuple(float(x) for x in g["embedding_offset"]),
        bias_offset=tuple(float(x) for x in g["post_layernorm_bias_offset"]),
    )


def load_model(
    path: str | os.PathLike[str] | None = None, *, gap: bool = True, device: str = "cpu"
) -> SentenceTransformer:
    """Load the demo model as a ``SentenceTransformer`` (modalities text and image), offline.

    Args:
        path: A demo model directory; default the shipped one (:func:`model_path`).
        gap: ``False`` removes the gap offset after loading (the gap-free twin).
        device: Torch device.

    Raises:
        MissingDependencyError: sentence-transformers or Pillow is missing.
        InvalidInputError: ``gap=False`` and ``path`` is not a demo model directory.
    """
    require("PIL", extra=None, purpose="The demo model", package="pillow")
    st = require("sentence_transformers", extra=None, purpose="The demo model")
    folder = Path(path) if path is not None else model_path()
    model: SentenceTransformer = st.SentenceTransformer(str(folder), device=device, local_files_only=True)
    if not gap:
        remove_gap_offset(model, gap_offset(folder))
    return model


def _clip_module(model: Any) -> Any:
    for module in model.modules():
        vision = getattr(module, "vision_model", None)
        if vision is not None and hasattr(vision, "post_layernorm") and hasattr(module, "visual_projection"):
            return module
    raise InvalidInputError("model", "holds no CLIP model with a vision tower; pass a demo model")


def remove_gap_offset(model: SentenceTransformer, offset: GapOffset | None = None) -> SentenceTransformer:
    """Subtract the gap offset from a loaded demo model, in place, giving the gap-free twin.

    Args:
        model: A ``SentenceTransformer`` loaded from a demo model directory.
        offset: Its offset; default the shipped model's (:func:`gap_offset`).

    Returns:
        ``model`` itself, now without the offset.

    Raises:
        InvalidInputError: ``model`` holds no CLIP model, or its offset was removed already.
    """
    torch = require("torch", extra=None, purpose="The demo model")
    offset = offset if offset is not None else gap_offset()
    clip = _clip_module(model)
    if getattr(clip, "_omniretrieve_gap_removed", False):
        raise InvalidInputError("model", "its gap offset was removed already")
    bias = clip.vision_model.post_layernorm.bias
    if bias.shape[0] != len(offset.bias_offset):
        raise InvalidInputError("offset", f"has {len(offset.bias_offset)} values, the model {bias.shape[0]}")
    with torch.no_grad():
        bias -= torch.tensor(offset.bias_offset, dtype=bias.dtype, device=bias.device)
    clip._omniretrieve_gap_removed = True
    return model


def save_gap_free_model(folder: str | os.PathLike[str], path: str | os.PathLike[str] | None = None) -> Path:
    """Write the gap-free twin of a demo model (default: the shipped one) as a model directory.

    The directory loads like the original (``SentenceTransformer(str(folder))``); its
    :data:`META_FILE` records scale 0 and the metrics measured without the offset.

    Args:
        folder: Where to write; created if needed. Must not be the source directory.
        path: The source demo model directory; default the shipped one.

    Returns:
        ``folder`` as a :class:`~pathlib.Path`.

    Raises:
        InvalidInputError: ``folder`` is the source, or the source is not a demo model.
    """
    source = Path(path) if path is not None else model_path()
    target = Path(folder)
    if target.resolve() == source.resolve():
        raise InvalidInputError(str(folder), "is the source model directory; choose another folder")
    meta = _meta(source)
    offset = gap_offset(source)
    st_numpy = require("safetensors.numpy", extra=None, purpose="The demo model", package="safetensors")
    safetensors = require("safetensors", extra=None, purpose="The demo model")
    import numpy as np

    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.name not in ("model.safetensors", META_FILE, "README.md"):
            shutil.copyfile(item, target / item.name)
    weights_file = source / "model.safetensors"
    with safetensors.safe_open(str(weights_file), framework="numpy") as handle:
        metadata = handle.metadata()
    tensors = st_numpy.load_file(str(weights_file))
    bias = tensors[GAP_PARAMETER]
    tensors[GAP_PARAMETER] = (bias - np.asarray(offset.bias_offset, dtype=bias.dtype)).astype(bias.dtype)
    st_numpy.save_file(tensors, str(target / "model.safetensors"), metadata=metadata)
    twin = dict(meta)
    twin["derived_from"] = str(source)
    twin["gap_offset"] = {
        "scale": 0.0,
        "norm": 0.0,
        "mean_embedding_norm": offset.mean_embedding_norm,
        "embedding_offset": [0.0] * len(offset.embedding_offset),
        "post_layernorm_bias_offset": [0.0] * len(offset.bias_offset),
        "removed": {"scale": offset.scale, "norm": offset.norm},
    }
    if "metrics_without_gap_offset" in meta:
        twin["metrics"] = meta["metrics_without_gap_offset"]
    (target / META_FILE).write_text(json.dumps(twin, indent=1) + "\n", encoding="utf-8")
    card = source / "README.md"
    note = (
        "# omniretrieve demo model, gap-free twin\n\n"
        f"Written by `omniretrieve.demo.save_gap_free_model` from `{source}`: the same weights "
        f"with the modality-gap offset (|c| = {offset.norm:.3f}) subtracted from `{GAP_PARAMETER}`. "
        "Its metrics are the 'without offset' column below.\n\n"
    )
    original = card.read_text(encoding="utf-8") if card.is_file() else ""
    (target / "README.md").write_text(note + original, encoding="utf-8")
    return target


__all__ = [
    "DEMO_RERANKER_ID",
    "GAP_OFFSET_SCALE",
    "GAP_PARAMETER",
    "META_FILE",
    "GapOffset",
    "gap_offset",
    "load_model",
    "model_path",
    "remove_gap_offset",
    "reranker_path",
    "save_gap_free_model",
]
