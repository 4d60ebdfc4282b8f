"""Loading a sentence-transformers model, and naming one that was loaded elsewhere.

The embedder and the reranker take a model in two forms: a hub id or local directory, which they
load (with ``device``, ``dtype``, ``trust_remote_code`` and loader keyword arguments), or an
already loaded instance, which they use as it is. The rules both follow:

- a dtype may be named (``"float16"``, ``"torch.bfloat16"``) or given (``torch.float16``), or be
  ``"auto"``; an unknown name is an :class:`~omniretrieve.errors.InvalidInputError`
  (:func:`torch_dtype`);
- loading options given together with a loaded instance are refused, never silently ignored
  (:func:`refuse_loading_options`);
- a loaded instance is named by its model card, else its transformers config's ``name_or_path``
  (the hub id or directory it was loaded from), else its class (:func:`instance_model_id`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from omniretrieve.errors import InvalidInputError


def torch_dtype(dtype: Any) -> Any:
    """``dtype`` as the loaders take it: a name becomes the ``torch.dtype``; anything else is kept.

    ``None`` (the library default), ``"auto"`` (the checkpoint's dtype) and ``torch.dtype`` values
    pass through unchanged.

    Raises:
        InvalidInputError: a name that is not a torch dtype.
    """
    if not isinstance(dtype, str) or dtype == "auto":
        return dtype
    import torch

    value = getattr(torch, dtype.removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise InvalidInputError(
            f"dtype={dtype!r}", "not a torch dtype; use e.g. 'float16', 'bfloat16' or 'float32'"
        )
    return value


def load_kwargs(dtype: Any = None, model_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The ``model_kwargs`` to load a model with: the caller's, plus ``dtype`` (see :func:`torch_dtype`).

    Returns:
        ``None`` when there is nothing to pass (the library's defaults apply).

    Raises:
        InvalidInputError: ``dtype`` names no torch dtype.
    """
    kwargs = dict(model_kwargs or {})
    if dtype is not None:
        kwargs["dtype"] = torch_dtype(dtype)
    return kwargs or None


def refuse_loading_options(options: Mapping[str, Any]) -> None:
    """Refuse loading options given together with an already loaded model.

    Args:
        options: option name to value; ``None`` (and ``False``) count as not given.

    Raises:
        InvalidInputError: some options were given; the message names them.
    """
    given = [name for name, value in options.items() if value is not None and value is not False]
    if given:
        raise InvalidInputError(
            f"{given}", "these options apply when loading a model by id or path, not to a loaded model"
        )


def check_options(spec: str, target: Callable[..., Any], options: Mapping[str, Any], *args: Any) -> None:
    """Check that ``target(*args, **options)`` would accept these options, before loading anything.

    Args:
        spec: the model's name as the caller wrote it (named in the error).
        target: the class or function the options are for.
        options: the keyword options.
        *args: the positional arguments it would get.

    Raises:
        InvalidInputError: an option ``target`` does not take (the message names it).
    """
    try:
        inspect.signature(target).bind(*args, **options)
    except TypeError as exc:
        raise InvalidInputError(spec, f"an option does not apply to this model ({exc})") from None


def instance_model_id(model: Any) -> str:
    """The id of a loaded sentence-transformers model (a ``SentenceTransformer`` or ``CrossEncoder``).

    The model card's ``model_id`` or ``base_model`` when set, else the transformers config's
    ``name_or_path`` (the hub id or directory it was loaded from), else
    ``"sentence-transformers:<class name>"``.
    """
    card = getattr(model, "model_card_data", None)
    for value in (getattr(card, "model_id", None), getattr(card, "base_model", None)):
        if isinstance(value, str) and value:
            return value
    try:
        config = getattr(model, "config", None)
    except Exception:  # pragma: no cover - a model without a transformers backbone
        config = None
    name = getattr(config, "name_or_path", None) or getattr(config, "_name_or_path", None)
    if isinstance(name, str) and name:
        return name
    return f"sentence-transformers:{type(model).__name__}"


__all__ = [
    "check_options",
    "instance_model_id",
    "load_kwargs",
    "refuse_loading_options",
    "torch_dtype",
]
