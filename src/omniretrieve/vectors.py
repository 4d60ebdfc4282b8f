"""The one check every vector passes before it is stored, searched with, or returned.

A vector is usable when it has the expected dimension, holds only finite values and has a direction
(a norm above :data:`ZERO_NORM`). :func:`vector_problem` says what is wrong in words (the embedder
wraps it in an :class:`~omniretrieve.errors.EmbeddingError` naming the item); :func:`check_vector`
raises :class:`~omniretrieve.errors.InvalidVectorError` naming the input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from omniretrieve.errors import InvalidVectorError

ZERO_NORM = 1e-12
"""Below this L2 norm a vector has no usable direction."""


def vector_problem(vector: np.ndarray, dimension: int | None = None) -> str | None:
    """What makes ``vector`` unusable, in words, or ``None`` when it is fine.

    Args:
        vector: a float array.
        dimension: the expected length; ``None`` accepts any 1-D vector.
    """
    expected = (dimension,) if dimension is not None else None
    if vector.ndim != 1 or (expected is not None and vector.shape != expected):
        want = f"({dimension},)" if dimension is not None else "a 1-D vector"
        return f"a vector of shape {vector.shape}, expected {want}"
    if not np.isfinite(vector).all():
        return "NaN or infinite values"
    if float(np.linalg.norm(vector)) < ZERO_NORM:
        return "an all-zero vector, which has no direction"
    return None


def check_vector(vector: Any, dimension: int | None = None, name: str = "vector") -> np.ndarray:
    """``vector`` as a finite, non-zero, L2-normalised float32 array of the right dimension.

    Raises:
        InvalidVectorError: not numeric, wrong shape, NaN or infinite values, or all zeros.
    """
    try:
        arr = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidVectorError(name, f"not a numeric vector ({exc})") from exc
    problem = vector_problem(arr, dimension)
    if problem is not None:
        raise InvalidVectorError(name, f"{problem}; check the model or the input")
    return (arr / np.linalg.norm(arr)).astype(np.float32)


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` (already checked) scaled to unit length, float64."""
    arr = np.asarray(vector, dtype=np.float64)
    return arr / np.linalg.norm(arr)


__all__ = ["ZERO_NORM", "check_vector", "unit", "vector_problem"]
