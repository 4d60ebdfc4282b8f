"""The typed errors omniretrieve raises. Every error names the input it is about and what to do.

Catch :class:`OmniretrieveError` for everything, :class:`MediaError` for anything a media input did
wrong, or a leaf class for one reason.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class OmniretrieveError(Exception):
    """Base class of every error omniretrieve raises on purpose."""


class InvalidInputError(OmniretrieveError, ValueError):
    """An input is of no accepted shape, or a parameter is out of range."""

    def __init__(self, input: str, reason: str) -> None:
        self.input = input
        self.reason = reason
        super().__init__(f"{input}: {reason}")


class MissingDependencyError(OmniretrieveError, ImportError):
    """A dependency is not installed; the message names the extra that brings it.

    ``extra`` is ``None`` for a core dependency (one every install of omniretrieve has): the advice
    is then to reinstall omniretrieve, since no extra would help.
    """

    def __init__(self, package: str, extra: str | None, purpose: str) -> None:
        self.package = package
        self.extra = extra
        if extra is None:
            advice = f"it is a core dependency of omniretrieve; reinstall it: pip install --force-reinstall '{package}'"
        else:
            advice = f"pip install 'omniretrieve[{extra}]'"
        super().__init__(f"{purpose} needs the '{package}' package: {advice}")


def require(module: str, *, extra: str | None, purpose: str, package: str | None = None) -> ModuleType:
    """Import a dependency or raise :class:`MissingDependencyError` naming the extra that brings it.

    Args:
        module: the module to import.
        extra: the omniretrieve extra that installs it; ``None`` for a core dependency.
        purpose: what needs it, in the user's words ("Decoding audio").
        package: the distribution name when it differs from the module's top-level name.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package or module.split(".")[0], extra, purpose) from exc


# ---------------------------------------------------------------------------------------------
# Media
# ---------------------------------------------------------------------------------------------


class MediaError(OmniretrieveError):
    """A media input could not be loaded. ``input`` says which, ``reason`` says why."""

    def __init__(self, input: str, reason: str) -> None:
        self.input = input
        self.reason = reason
        super().__init__(f"{input}: {reason}")


class MediaNotFoundError(MediaError):
    """The file does not exist (or is not a regular file)."""


class MediaPolicyError(MediaError):
    """The media policy refused the input before anything was read or any socket opened."""


class PathNotAllowedError(MediaPolicyError):
    """A path lies outside the allowed roots (directly, through ``..`` or through a symlink)."""


class URLNotAllowedError(MediaPolicyError):
    """URLs are disabled, or the URL's scheme or form is not allowed."""


class AddressNotAllowedError(MediaPolicyError):
    """A URL's host resolves to a loopback, private, link-local, multicast or reserved address."""


class MediaFetchError(MediaError):
    """A URL could not be fetched (connection failure, HTTP error status, bad redirect)."""


class TooManyRedirectsError(MediaFetchError):
    """A URL redirected more times than the policy allows."""


class MediaTimeoutError(MediaFetchError):
    """Connecting or reading took longer than the policy's timeout."""


class MediaTooLargeError(MediaError):
    """The input exceeds a size cap: bytes, pixels (a decompression bomb), duration or frames."""


class MediaDecodeError(MediaError):
    """The bytes are not a readable image, audio or video (corrupt, truncated, wrong kind)."""


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class UnsupportedModalityError(OmniretrieveError):
    """The model cannot embed or rerank an item of this modality."""

    def __init__(self, input: str, modality: Any, supported: Any) -> None:
        self.input = input
        self.modality = modality
        self.supported = supported
        super().__init__(
            f"{input}: modality {modality!r} is not supported by this model "
            f"(it supports {list(supported)}); use a model that reads {modality!r} or drop the item"
        )


class EmbeddingError(OmniretrieveError):
    """The embedding model failed on an item, or returned an unusable vector for it.

    The item is named and the cause chained. A reranker's failures are :class:`RerankError`.
    """

    def __init__(self, input: str, reason: str) -> None:
        self.input = input
        self.reason = reason
        super().__init__(f"{input}: {reason}")


class RerankError(OmniretrieveError):
    """The reranker failed on a candidate or returned a score that is not a number (the cause is chained)."""

    def __init__(self, input: str, reason: str) -> None:
        self.input = input
        self.reason = reason
        super().__init__(f"{input}: {reason}")


# ---------------------------------------------------------------------------------------------
# Store
# ---------------------------------------------------------------------------------------------


class InvalidVectorError(InvalidInputError):
    """A vector has the wrong shape, or holds NaN or infinite values, or is all zeros."""


class StoreError(OmniretrieveError):
    """Something went wrong in the vector store; the message says what to do."""


class StoreLockedError(StoreError):
    """Another process (or another open store object) is writing to this embedded store's directory.

    One process may write to an embedded store at a time (two writers silently lose vectors). Run a
    Chroma server on the directory (``chroma run --path DIR --port N``) and connect every writer
    with ``host``/``port`` instead.
    """

    def __init__(self, path: str, holder: str | None = None) -> None:
        self.path = path
        self.holder = holder
        by = f" (held by process {holder})" if holder else ""
        super().__init__(
            f"the embedded store at {path!r} is locked by another writer{by}. Only one process may "
            "write to an embedded store. To write from several processes, run a Chroma server on it: "
            f"`chroma run --path {path} --port 8000`, and open the store with host='localhost', "
            "port=8000 in every process; or close the other store first."
        )


class EmbeddingSpaceMismatchError(StoreError):
    """The store holds embeddings of another model (or dimension or similarity) than this embedder's.

    ``differs`` names what differs: ``"model id"``, ``"dimension"``, ``"similarity"`` or
    ``"fingerprint"`` (the embeddings of the store's probe set, see :mod:`omniretrieve.store`).
    A different model id or fingerprint can be overridden with ``Store(...,
    allow_model_change=True)``; a different dimension or similarity cannot.
    """

    def __init__(self, store: str, stored: str, given: str, differs: tuple[str, ...] = ()) -> None:
        self.store = store
        self.stored = stored
        self.given = given
        self.differs = tuple(differs)
        what = f" They differ in: {', '.join(self.differs)}." if self.differs else ""
        advice = (
            "open it with the same model, or use another store name or path for this model."
            if not self.differs or {"dimension", "similarity"} & set(self.differs)
            else "open it with the model it was built with, or use another store name or path for "
            "this model. If you are sure the stored vectors still fit this model, Store(..., "
            "allow_model_change=True) opens it anyway and records the change (nothing is re-embedded)."
        )
        super().__init__(
            f"store {store} holds embeddings of {stored}, but this embedder is {given}.{what} Vectors of "
            f"different models cannot be compared: {advice}"
        )


class StoreConnectionError(StoreError):
    """The Chroma server could not be reached (or answered with an error) within the timeout."""


class StoreNotFoundError(StoreError):
    """There is no omniretrieve store at that path or on that server (under that name)."""


__all__ = [
    "AddressNotAllowedError",
    "EmbeddingError",
    "EmbeddingSpaceMismatchError",
    "InvalidInputError",
    "InvalidVectorError",
    "MediaDecodeError",
    "MediaError",
    "MediaFetchError",
    "MediaNotFoundError",
    "MediaPolicyError",
    "MediaTimeoutError",
    "MediaTooLargeError",
    "MissingDependencyError",
    "OmniretrieveError",
    "PathNotAllowedError",
    "RerankError",
    "StoreConnectionError",
    "StoreNotFoundError",
    "StoreError",
    "StoreLockedError",
    "TooManyRedirectsError",
    "URLNotAllowedError",
    "UnsupportedModalityError",
    "require",
]
