"""Embedders by name: :func:`load_embedder`, the demo model's names, and the registry of name schemes.

A name is resolved in this order:

1. a path object: a local model directory;
2. the demo names (:data:`DEMO_ALIAS`, :data:`DEMO_MODEL_ID`, :data:`DEMO_NOGAP_MODEL_ID`): the toy
   CLIP shipped in the package;
3. ``"<scheme>:<rest>"`` for a registered scheme (:func:`register_embedder_scheme`): the scheme's
   factory builds it. ``"fake"`` is registered here, as the string
   ``"omniretrieve.testing.fakes:load_fake_embedder"``, so the test double's module is imported only
   when a ``"fake:<dim>"`` name is loaded, never by the runtime otherwise;
4. anything else: a sentence-transformers hub id or local directory.

A name may pin a revision: ``"ORG/NAME@REVISION"`` (a branch, tag or commit hash) loads that
revision, like ``revision="REVISION"`` (:func:`split_revision`). A path that exists is always a
path, even with an ``@`` in it.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from typing import Any, TypeAlias

from omniretrieve.embedding.protocol import Embedder
from omniretrieve.embedding.sentence_transformer import SentenceTransformerEmbedder
from omniretrieve.errors import InvalidInputError, MissingDependencyError, OmniretrieveError
from omniretrieve.models import SENTENCE_TRANSFORMER_OPTIONS, check_options, torch_dtype
from omniretrieve.types import describe

DEMO_ALIAS = "demo"
"""The short name :func:`load_embedder` takes for the demo model (:data:`DEMO_MODEL_ID`)."""

DEMO_MODEL_ID = "omniretrieve/demo-clip"
"""The id of the demo model shipped in the package (a toy CLIP, text and image, with a modality gap).

The same wherever the package is installed, so a store built with the demo model opens after the
virtualenv or the checkout moves. Not a hub id: :func:`load_embedder` loads it from the package."""

DEMO_NOGAP_MODEL_ID = "omniretrieve/demo-clip-nogap"
"""The id of the demo model's gap-free twin (``omniretrieve.demo.load_model(gap=False)``).

It differs from :data:`DEMO_MODEL_ID` because its image vectors differ (the gap offset is removed):
a store built with one model refuses the other."""

FAKE_PREFIX = "fake:"
"""``"fake:<dim>"`` names the model-free :class:`~omniretrieve.testing.fakes.FakeEmbedder`."""

EmbedderFactory: TypeAlias = Callable[[str, dict[str, Any]], Embedder]
"""``factory(spec, options) -> Embedder`` for a name scheme (see :func:`register_embedder_scheme`).

``spec`` is the whole name (``"fake:32"``), ``options`` the keyword options given to
:func:`load_embedder` (those set to ``None`` left out). A factory raises
:class:`~omniretrieve.errors.InvalidInputError` naming ``spec`` for a malformed name or an option
that does not apply."""

_SCHEME = re.compile(r"[a-z][a-z0-9_-]+")

_SCHEMES: dict[str, EmbedderFactory | str] = {
    "fake": "omniretrieve.testing.fakes:load_fake_embedder",
}

_DEMO_SPECS: dict[str, tuple[str, bool]] = {
    DEMO_ALIAS: (DEMO_MODEL_ID, True),
    DEMO_MODEL_ID: (DEMO_MODEL_ID, True),
    DEMO_NOGAP_MODEL_ID: (DEMO_NOGAP_MODEL_ID, False),
}
_DEMO_REFUSED = (
    *(name for name in SENTENCE_TRANSFORMER_OPTIONS if name not in ("device", "local_files_only")),
    "model_id",
)
"""What the demo models refuse: every loading option but ``device`` (it loads from the package)."""


def split_revision(spec: str) -> tuple[str, str | None]:
    """A model name and the revision it pins: ``"org/name@abc123"`` -> ``("org/name", "abc123")``.

    A name without ``@``, or a path that exists (a directory may have ``@`` in its name), pins
    nothing: ``(spec, None)``. Hub ids hold no ``@``, so the first one splits.

    Raises:
        InvalidInputError: an ``@`` with nothing before or after it.
    """
    if "@" not in spec or os.path.exists(spec):
        return spec, None
    name, _, revision = spec.partition("@")
    if not name or not revision:
        raise InvalidInputError(
            spec, "pin a revision as 'ID@REVISION', e.g. 'org/model@v1.0' or a commit hash"
        )
    return name, revision


def register_embedder_scheme(scheme: str, factory: EmbedderFactory | str) -> None:
    """Make ``load_embedder("<scheme>:<rest>")`` build its embedder with ``factory``.

    Registering a scheme again replaces its factory. Example::

        register_embedder_scheme("mine", lambda spec, options: MyEmbedder(spec.split(":", 1)[1], **options))
        load_embedder("mine:large")
        register_embedder_scheme("lazy", "my_package.embedders:from_spec")   # imported on first use

    Args:
        scheme: two or more lowercase letters, digits, ``-`` or ``_``, starting with a letter (one
            letter would take Windows drive paths such as ``C:/models``).
        factory: an :data:`EmbedderFactory`, or ``"module:attribute"`` naming one; the module is
            imported only when a name of this scheme is loaded.

    Raises:
        InvalidInputError: ``scheme`` or ``factory`` is malformed.
    """
    if not isinstance(scheme, str) or not _SCHEME.fullmatch(scheme):
        raise InvalidInputError(
            describe(scheme), "a scheme is 2+ lowercase letters, digits, '-' or '_', starting with a letter"
        )
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        if not module or not attribute:
            raise InvalidInputError(describe(factory), "name a factory as 'module:attribute'")
    elif not callable(factory):
        raise InvalidInputError(describe(factory), "a factory is a callable or a 'module:attribute' string")
    _SCHEMES[scheme] = factory


def _scheme_factory(spec: str) -> EmbedderFactory | None:
    """The factory registered for ``spec``'s scheme (imported now if registered by name), or ``None``."""
    scheme, colon, _ = spec.partition(":")
    factory = _SCHEMES.get(scheme) if colon else None
    if not isinstance(factory, str):
        return factory
    module, _, attribute = factory.partition(":")
    try:
        resolved: EmbedderFactory = getattr(importlib.import_module(module), attribute)
    except MissingDependencyError:
        raise
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(
            spec, f"the factory {factory!r} registered for {scheme!r} names could not be imported ({exc})"
        ) from exc
    return resolved


def load_embedder(spec: str | os.PathLike[str], **kwargs: Any) -> Embedder:
    """The embedder a model name or directory stands for.

    ========================================== ===================================================
    ``spec``                                   embedder (its ``model_id``)
    ========================================== ===================================================
    ``"demo"``, ``"omniretrieve/demo-clip"``   the demo model shipped in the package
                                               (:data:`DEMO_MODEL_ID`, the same on every install)
    ``"omniretrieve/demo-clip-nogap"``         its gap-free twin (:data:`DEMO_NOGAP_MODEL_ID`)
    ``"fake:<dim>"``                           :class:`~omniretrieve.testing.fakes.FakeEmbedder`
                                               (``"fake:<dim>"``): content-hash vectors, no model
    ``"<scheme>:<rest>"``                      what the factory registered for ``<scheme>`` builds
                                               (:func:`register_embedder_scheme`)
    ``"<id>@<revision>"``                      ``<id>`` at that revision (``revision=``)
    anything else                              ``SentenceTransformerEmbedder(spec, **kwargs)``: a
                                               hub id or a local directory (the id as given)
    ========================================== ===================================================

    A path object always names a directory (``Path("demo")`` is a folder called ``demo``). Every
    ``model_id`` this returns is a valid ``spec``, so the id a store records reopens it::

        info = Store.inspect(path="my-store")
        store = Store(load_embedder(info.model_id), path="my-store")

    Args:
        spec: The model's name or directory, see above.
        **kwargs: Options of the embedder built (an option set to ``None`` means its default, so
            adapters can pass their settings through unchanged). A sentence-transformers model takes every option
            of :class:`SentenceTransformerEmbedder`, which include every loading option of
            ``SentenceTransformer(...)`` by its name (``revision``, ``cache_folder``,
            ``local_files_only``, ``token``, ``backend``, ``truncate_dim``, ``prompts``,
            ``model_kwargs``, ...); the demo models take ``device`` (default
            ``"cpu"``), ``dtype`` and the embedding options (``batch_size``, ``media``,
            ``combine``, ``show_progress``, ``num_workers``, ``draft_images``, ``devices``,
            ``device_preprocessing``, ``decode_on_device``); the fake takes those of
            :class:`~omniretrieve.testing.fakes.FakeEmbedder`.

    Raises:
        InvalidInputError: ``spec`` names nothing that loads: a malformed ``fake:`` spec, a demo
            model missing from the installation, a model that fails to load (the message names
            ``spec`` and the cause is chained); or an option that does not apply to it.
        MissingDependencyError: sentence-transformers is missing.

    Example::

        embedder = load_embedder("demo")                       # offline, seconds
        embedder.model_id                                      # "omniretrieve/demo-clip"
        clip = load_embedder("sentence-transformers/clip-ViT-B-32", device="cuda", dtype="float16")
        two_gpus = load_embedder("sentence-transformers/clip-ViT-B-32", devices="cuda:0,cuda:1")
        pinned = load_embedder("sentence-transformers/clip-ViT-B-32@<commit>")   # that revision only
    """
    kwargs = {name: value for name, value in kwargs.items() if value is not None}  # None: the default
    if isinstance(spec, os.PathLike):
        return _load_sentence_transformer(os.fspath(spec), kwargs)
    if not isinstance(spec, str) or not spec:
        raise InvalidInputError(
            describe(spec), "name a model: 'demo', 'fake:<dim>', a hub id or a local model directory"
        )
    spec, revision = split_revision(spec)
    if revision is not None:
        if kwargs.setdefault("revision", revision) != revision:
            raise InvalidInputError(
                f"{spec}@{revision}",
                f"pins revision {revision!r} but revision={kwargs['revision']!r} was given",
            )
    if spec in _DEMO_SPECS:
        model_id, gap = _DEMO_SPECS[spec]
        return _load_demo(spec, model_id, gap, kwargs)
    factory = _scheme_factory(spec)
    if factory is not None:
        return factory(spec, kwargs)
    return _load_sentence_transformer(spec, kwargs)


def _load_demo(spec: str, model_id: str, gap: bool, kwargs: dict[str, Any]) -> Embedder:
    options = dict(kwargs)
    refused = [
        name
        for name in _DEMO_REFUSED
        if name in options and (options[name] if name != "model_id" else options[name] is not None)
    ]
    if refused:
        raise InvalidInputError(
            spec, f"the demo model takes no {', '.join(refused)} (it loads from the package, with a fixed id)"
        )
    for name in (*_DEMO_REFUSED, "local_files_only"):
        options.pop(name, None)
    device = options.pop("device", None) or "cpu"
    dtype = options.pop("dtype", None)
    weights_dtype = torch_dtype(dtype) if dtype is not None and dtype != "auto" else None
    check_options(spec, SentenceTransformerEmbedder, options, None)
    from omniretrieve.demo import load_model

    try:
        model = load_model(gap=gap, device=device)
        if weights_dtype is not None:
            model.to(weights_dtype)
    except MissingDependencyError:
        raise
    except Exception as exc:  # a missing or broken model directory, an unknown device
        raise InvalidInputError(
            spec,
            f"could not load the demo model ({type(exc).__name__}: {exc}); reinstall omniretrieve, or train "
            "one with `python -m omniretrieve.demo.train --out DIR` and load that directory",
        ) from exc
    return SentenceTransformerEmbedder(model, model_id=model_id, **options)


def _load_sentence_transformer(spec: str, kwargs: dict[str, Any]) -> Embedder:
    check_options(spec, SentenceTransformerEmbedder, kwargs, spec)
    try:
        return SentenceTransformerEmbedder(spec, **kwargs)
    except OmniretrieveError:
        raise
    except Exception as exc:
        raise InvalidInputError(
            spec,
            f"could not load it ({type(exc).__name__}: {exc}); give a sentence-transformers model id, a "
            f"local model directory, {DEMO_ALIAS!r} or 'fake:<dim>'",
        ) from exc


__all__ = [
    "DEMO_ALIAS",
    "DEMO_MODEL_ID",
    "DEMO_NOGAP_MODEL_ID",
    "FAKE_PREFIX",
    "EmbedderFactory",
    "load_embedder",
    "register_embedder_scheme",
    "split_revision",
]
