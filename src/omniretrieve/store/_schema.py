"""The store's layout in Chroma: collection names, the keys omniretrieve writes, the embedding space.

A store named ``NAME`` keeps one collection per document kind (``NAME.text``, ``NAME.image``,
``NAME.audio``, ``NAME.video``, ``NAME.combined``, created on first use) plus ``NAME.stats`` (the
calibration statistics, :mod:`._statistics`). Every collection's metadata records the schema
version, its kind and the embedding space: model id, dimension and similarity. Opening a store with
another embedder raises :class:`~omniretrieve.errors.EmbeddingSpaceMismatchError` (another model id
can be allowed, ``allow_model_change=True``; another dimension or similarity never). The statistics
collection's metadata also records the model's revision, probe fingerprint and history
(:mod:`._identity`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from omniretrieve.documents import KINDS, Kind
from omniretrieve.errors import EmbeddingSpaceMismatchError, InvalidInputError, OmniretrieveError, StoreError
from omniretrieve.store._backend import Backend

DEFAULT_NAME = "omniretrieve"
"""The default store name (prefix of its Chroma collections)."""

SCHEMA_VERSION = 1
"""Version of the layout this package writes (collections, metadata keys, statistics)."""

STATS = "stats"
"""The suffix of the statistics collection: ``NAME.stats``."""

# Collection metadata.
K_SCHEMA = "omni:schema"
K_MODEL = "omni:model"
K_DIM = "omni:dimension"
K_SIM = "omni:similarity"
K_KIND = "omni:kind"
SPACE_KEYS = (K_MODEL, K_DIM, K_SIM)

# Document records.
K_SHA = "omni:sha256"
K_PARTS = "omni:parts"
K_SOURCE = "omni:source"
K_WRITE = "omni:write"  # the token of the server write that added a record (see _ingest)

# Statistics records (plus K_KIND).
K_COUNT = "omni:count"
K_WRITER = "omni:writer"
K_SUM = "omni:sum"  # the sum again, float64 little-endian, base64: readable without Chroma

_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$")


def check_name(name: Any) -> str:
    """A valid store name.

    Raises:
        InvalidInputError: not 1-64 letters, digits, ``-`` or ``_``, starting and ending alphanumeric.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInputError(
            f"name={name!r}",
            "a store name is 1-64 letters, digits, '-' or '_' (starting and ending alphanumeric)",
        )
    return name


def space_of(embedder: Any) -> dict[str, Any]:
    """The embedding space an embedder writes: model id, dimension, similarity."""
    return {
        K_MODEL: str(embedder.model_id),
        K_DIM: int(embedder.dimension),
        K_SIM: str(getattr(embedder, "similarity", "cosine")),
    }


def space_text(meta: Mapping[str, Any]) -> str:
    """An embedding space in words, for messages."""
    return f"model {meta.get(K_MODEL)!r} (dimension {meta.get(K_DIM)}, {meta.get(K_SIM)})"


def store_names(metas: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The names of the omniretrieve stores among Chroma collections (full name -> metadata)."""
    return sorted(
        {full.rsplit(".", 1)[0] for full, meta in metas.items() if "." in full and K_SCHEMA in meta}
    )


def collections_of(metas: Mapping[str, Mapping[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    """Kind (or ``stats``) -> metadata of the collections of store ``name`` among these."""
    prefix = f"{name}."
    return {full[len(prefix) :]: dict(meta) for full, meta in metas.items() if full.startswith(prefix)}


def check_recorded(name: str, kind: str, meta: Mapping[str, Any], where: str) -> int:
    """Check a collection of store ``name`` was made by an omniretrieve that this one can read.

    Args:
        name: The store's name.
        kind: The collection's suffix (a kind, or ``stats``).
        meta: The collection's metadata.
        where: The store in words, for messages.

    Returns:
        The schema version it records.

    Raises:
        StoreError: omniretrieve did not make it, or a newer omniretrieve did.
    """
    if kind not in (*KINDS, STATS) or any(key not in meta for key in (K_SCHEMA, *SPACE_KEYS)):
        raise StoreError(
            f"collection {name}.{kind} of store {where} was not made by omniretrieve; choose another store name"
        )
    version = int(meta[K_SCHEMA])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {where} was written by a newer omniretrieve (schema {version} > {SCHEMA_VERSION}); "
            "upgrade omniretrieve"
        )
    return version


class Collections:
    """The Chroma collections of one store, checked against the embedder's space and cached.

    Args:
        backend: Where they live.
        name: The store's name.
        space: The embedder's space (:func:`space_of`).
        allow_model_change: Accept collections that record another model id (same dimension and
            similarity); :mod:`._identity` records the change.

    Attributes:
        created: No collection of the store existed before (a new store).

    Raises:
        StoreError: the collections could not be listed or created, or were not made by omniretrieve.
        EmbeddingSpaceMismatchError: they hold another model's embeddings.
    """

    def __init__(
        self, backend: Backend, name: str, space: Mapping[str, Any], *, allow_model_change: bool = False
    ) -> None:
        self.backend = backend
        self.name = name
        self.space = dict(space)
        self.dimension = int(space[K_DIM])
        self.max_batch = backend.max_batch
        self._cache: dict[str, Any] = {}
        self.created = self._check_space(allow_model_change)
        self.stats = self._create(STATS, space="l2")

    def describe(self) -> str:
        """The store in words: ``'NAME' at 'DIR'`` or ``'NAME' on HOST:PORT``."""
        return self.backend.describe(self.name)

    def full_name(self, kind: str) -> str:
        """The Chroma name of a kind's collection."""
        return f"{self.name}.{kind}"

    def kind(self, kind: str, *, create: bool = False) -> Any | None:
        """The collection of ``kind``: created when missing and ``create``, else ``None`` when missing."""
        col = self._cache.get(kind)
        if col is None:
            col = self._create(kind) if create else self.backend.get_collection(self.full_name(kind))
            if col is None:
                return None
            self._cache[kind] = col
        return col

    def existing(self) -> dict[Kind, Any]:
        """Every kind's collection that exists."""
        found = {kind: self.kind(kind) for kind in KINDS}
        return {kind: col for kind, col in found.items() if col is not None}

    def slices(self, n: int) -> Iterator[slice]:
        """``range(n)`` in slices Chroma takes in one call."""
        size = max(self.max_batch, 1)
        for start in range(0, n, size):
            yield slice(start, min(start + size, n))

    def _check_space(self, allow_model_change: bool) -> bool:
        """Check the recorded space of every collection; return whether there is none (a new store)."""
        where = self.describe()
        try:
            metas = self.backend.list_collections()
        except OmniretrieveError:
            raise
        except Exception as exc:
            raise StoreError(f"could not list the collections of store {where}: {exc}") from exc
        mine = collections_of(metas, self.name)
        for kind, meta in mine.items():
            check_recorded(self.name, kind, meta, where)
            differs = tuple(
                what
                for what, key in (("model id", K_MODEL), ("dimension", K_DIM), ("similarity", K_SIM))
                if meta.get(key) != self.space[key]
            )
            if differs and not (allow_model_change and differs == ("model id",)):
                raise EmbeddingSpaceMismatchError(where, space_text(meta), space_text(self.space), differs)
        return not mine

    def _create(self, kind: str, *, space: str = "cosine") -> Any:
        full = self.full_name(kind)
        metadata = {K_SCHEMA: SCHEMA_VERSION, K_KIND: kind, **self.space}
        try:
            return self.backend.get_or_create_collection(full, metadata, space)
        except OmniretrieveError:
            raise
        except Exception as exc:
            raise StoreError(f"could not create collection {full!r}: {exc}") from exc


__all__ = [
    "DEFAULT_NAME",
    "SCHEMA_VERSION",
    "STATS",
    "Collections",
    "check_name",
    "check_recorded",
    "collections_of",
    "space_of",
    "space_text",
    "store_names",
]
