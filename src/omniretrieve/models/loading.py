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
  (the hub id or directory it was loaded from), else its class (:func:`instance_model_id`);
- every loading option of ``SentenceTransformer(...)`` and ``CrossEncoder(...)`` is one of ours, by
  the same name (:data:`SENTENCE_TRANSFORMER_OPTIONS`, :data:`CROSS_ENCODER_OPTIONS`), except the
  few in :data:`NOT_LOADING_OPTIONS`; ``tests/test_embedding_options.py`` compares these lists with
  the installed sentence-transformers' signatures, so an option a new release adds is caught;
  :func:`loader_options` builds the keyword arguments the loader gets.
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


SENTENCE_TRANSFORMER_OPTIONS: tuple[str, ...] = (
    "device",
    "prompts",
    "default_prompt_name",
    "cache_folder",
    "trust_remote_code",
    "revision",
    "local_files_only",
    "token",
    "model_kwargs",
    "processor_kwargs",
    "config_kwargs",
    "model_card_data",
    "backend",
    "similarity_fn_name",
    "truncate_dim",
)
"""The keyword options of ``SentenceTransformer.__init__`` (sentence-transformers 6.2) that
:class:`~omniretrieve.embedding.SentenceTransformerEmbedder` and
:func:`~omniretrieve.embedding.load_embedder` take by the same name and pass through."""

CROSS_ENCODER_OPTIONS: tuple[str, ...] = (
    "device",
    "prompts",
    "default_prompt_name",
    "cache_folder",
    "trust_remote_code",
    "revision",
    "local_files_only",
    "token",
    "model_kwargs",
    "processor_kwargs",
    "config_kwargs",
    "model_card_data",
    "backend",
    "num_labels",
    "max_length",
    "activation_fn",
    "keep_in_fp32_modules",
)
"""The keyword options of ``CrossEncoder.__init__`` (sentence-transformers 6.2) that
:class:`~omniretrieve.rerank.CrossEncoderReranker` takes by the same name and passes through."""

NOT_LOADING_OPTIONS: dict[str, str] = {
    "self": "the instance",
    "model_name_or_path": "our `model` argument (a hub id, a directory, or a loaded model)",
    "modules": "a model built from modules: build it, then pass the loaded model",
    "use_auth_token": "the deprecated spelling of `token`",
}
"""Parameters of the sentence-transformers constructors that are not passed through, and why."""


def loader_options(dtype: Any = None, **options: Any) -> dict[str, Any]:
    """The keyword arguments for ``SentenceTransformer(...)`` / ``CrossEncoder(...)``.

    Options set to ``None`` are left out (the library's default applies); ``dtype`` (see
    :func:`torch_dtype`) goes into ``model_kwargs``; mappings are copied.

    Raises:
        InvalidInputError: ``dtype`` names no torch dtype, or a mapping option is not a mapping.
    """
    kwargs: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name.endswith("_kwargs") or name == "prompts":
            if not isinstance(value, Mapping):
                raise InvalidInputError(f"{name}={value!r}", "must be a mapping (a dict) or None")
            value = dict(value)
        kwargs[name] = value
    model_kwargs = load_kwargs(dtype, kwargs.pop("model_kwargs", None))
    if model_kwargs:
        kwargs["model_kwargs"] = model_kwargs
    return kwargs


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
    "CROSS_ENCODER_OPTIONS",
    "NOT_LOADING_OPTIONS",
    "SENTENCE_TRANSFORMER_OPTIONS",
    "check_options",
    "instance_model_id",
    "load_kwargs",
    "loader_options",
    "refuse_loading_options",
    "torch_dtype",
]
