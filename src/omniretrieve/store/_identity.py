"""What defines a store's embedding space, recorded at creation and checked at every open.

A store records, in the metadata of its ``NAME.stats`` collection:

- the model id (also on every collection, :mod:`._schema`), dimension and similarity;
- the model's **revision** (``embedder.revision`` when the embedder has one: the hub commit, or a
  hash of a local directory's configuration and weight headers, see
  :func:`omniretrieve.models.model_revision`);
- a **fingerprint**: the embeddings of a small fixed probe set (:data:`PROBE_TEXTS`, one generated
  image, a generated audio clip and video clip: those of the model's modalities), as float16;
- the **history** of its model: created, fingerprint recorded (a store made before fingerprints
  existed), model changed, revision changed.

Opening a store embeds the probe set again (a few milliseconds with the demo model) and compares
each probe's vector with the recorded one. A cosine below :data:`FINGERPRINT_MIN_COSINE` on any
probe means the model makes other vectors than the ones stored (other weights, prompts or pooling
under the same id; another ``truncate_dim`` changes the dimension, refused before), and the store refuses it with
:class:`~omniretrieve.errors.EmbeddingSpaceMismatchError` naming the fingerprint. ``Store(...,
allow_model_change=True)`` opens it anyway: the new model's id, revision and fingerprint become the
store's and a history entry keeps the old ones; nothing already stored is re-embedded. Loading the
same weights in float16 or bfloat16 stays well above the threshold (measured on CPU; another device
was not measured here).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from omniretrieve.errors import EmbeddingSpaceMismatchError, OmniretrieveError, StoreError
from omniretrieve.store._schema import K_DIM, K_MODEL, K_SIM, STATS, Collections, collections_of
from omniretrieve.types import Audio, Image, ItemInput, Text, Video

logger = logging.getLogger(__name__)

FINGERPRINT_MIN_COSINE = 0.999
"""The lowest cosine, on every probe, between a model's probe vector and the recorded one.

Measured with the demo model on CPU: the same weights loaded again agree exactly; loaded in float16
they differ by 5e-7 (1 - cosine), in bfloat16 by 2e-5, and the fingerprint's float16 storage costs
6e-8: all far above the threshold. A document prompt (``prompts=``) drops the lowest cosine to 0.84,
and one weight of the text projection changed by 1.0 falls below it too
(``tests/store/test_store_identity.py``)."""

PROBE_TEXTS: tuple[str, ...] = (
    "a photo of a red circle on a white background",
    "The quarterly report shows revenue growth in three regions.",
    "zwei kleine Hunde spielen im Schnee",
)
"""The texts of the probe set (a caption, a sentence, another language)."""

HISTORY_LIMIT = 50
"""How many history entries a store keeps (the oldest are dropped)."""

K_REVISION = "omni:revision"
K_FINGERPRINT = "omni:fingerprint"  # base64 of float16 little-endian (probes x dimension)
K_PROBES = "omni:probes"  # the probe names, comma-separated, in fingerprint order
K_HISTORY = "omni:history"  # JSON list of ModelChange dicts

_FP_DTYPE = "<f2"


@dataclass(frozen=True)
class ModelChange:
    """One entry of a store's model history (:attr:`~omniretrieve.store.StoreInfo.model_history`).

    Attributes:
        time: When, ISO 8601 UTC.
        event: ``"created"``, ``"fingerprint recorded"`` (a store made before fingerprints were
            kept, on its first open), ``"model changed"`` (opened with ``allow_model_change=True``
            by a model with another id or fingerprint) or ``"revision changed"`` (another revision
            with the same fingerprint).
        model_id: The model from then on.
        revision: Its revision (``None``: unknown).
        fingerprint: Its fingerprint's summary (:func:`fingerprint_summary`).
        previous_model_id: The model before (changes only).
        previous_revision: Its revision.
        previous_fingerprint: Its fingerprint's summary.
        min_cosine: The lowest probe cosine between the two (changes only).
    """

    time: str
    event: str
    model_id: str
    revision: str | None = None
    fingerprint: str | None = None
    previous_model_id: str | None = None
    previous_revision: str | None = None
    previous_fingerprint: str | None = None
    min_cosine: float | None = None


@dataclass(frozen=True)
class Identity:
    """What a store records about its model (read from the statistics collection's metadata)."""

    model_id: str | None
    revision: str | None = None
    probes: tuple[str, ...] = ()
    fingerprint: np.ndarray | None = None
    history: tuple[ModelChange, ...] = field(default_factory=tuple)

    @property
    def summary(self) -> str | None:
        """The fingerprint's summary, ``None`` when none is recorded."""
        return None if self.fingerprint is None else fingerprint_summary(self.fingerprint)


def fingerprint_summary(vectors: np.ndarray) -> str:
    """``"fp:<12 hex>"``: a short hash of probe vectors as a store records them (float16)."""
    data = np.ascontiguousarray(vectors, dtype=_FP_DTYPE).tobytes()
    return f"fp:{hashlib.sha256(data).hexdigest()[:12]}"


def read_identity(meta: Mapping[str, Any]) -> Identity:
    """The identity recorded in a statistics collection's metadata (fields missing: not recorded)."""
    probes = tuple(p for p in str(meta.get(K_PROBES) or "").split(",") if p)
    fingerprint = _decode(meta.get(K_FINGERPRINT), len(probes), meta.get(K_DIM))
    model = meta.get(K_MODEL)
    revision = meta.get(K_REVISION)
    return Identity(
        model_id=str(model) if model is not None else None,
        revision=str(revision) if revision else None,
        probes=probes if fingerprint is not None else (),
        fingerprint=fingerprint,
        history=_history(meta.get(K_HISTORY)),
    )


def recorded_identity(metas: Mapping[str, Mapping[str, Any]], name: str) -> Identity:
    """The identity store ``name`` records among these collections (full name -> metadata)."""
    return read_identity(collections_of(metas, name).get(STATS, {}))


def _decode(text: Any, rows: int, dimension: Any) -> np.ndarray | None:
    if not isinstance(text, str) or rows < 1 or not isinstance(dimension, int) or dimension < 1:
        return None
    try:
        flat = np.frombuffer(base64.b64decode(text, validate=True), dtype=_FP_DTYPE)
    except ValueError:
        return None
    if flat.size != rows * dimension or not np.isfinite(flat).all():
        return None
    return flat.astype(np.float32).reshape(rows, dimension)


def _history(text: Any) -> tuple[ModelChange, ...]:
    if not isinstance(text, str):
        return ()
    try:
        entries = json.loads(text)
        return tuple(ModelChange(**entry) for entry in entries if isinstance(entry, dict))
    except (ValueError, TypeError):
        logger.warning("a store's model history could not be read; it is kept as it is")
        return ()


# -- the probe set -----------------------------------------------------------------------------


def probe_names(modalities: frozenset[str] | set[str]) -> tuple[str, ...]:
    """The probes for a model reading these modalities, e.g. ``("text:0", ..., "image:0")``."""
    names: list[str] = []
    if "text" in modalities:
        names.extend(f"text:{i}" for i in range(len(PROBE_TEXTS)))
    names.extend(f"{m}:0" for m in ("image", "audio", "video") if m in modalities)
    return tuple(names)


def probe_item(name: str) -> ItemInput:
    """The probe item a name stands for (generated the same way everywhere: numpy arithmetic).

    Raises:
        StoreError: a name this omniretrieve does not know (a newer one recorded it).
    """
    kind, _, index = name.partition(":")
    if kind == "text" and index.isdigit() and int(index) < len(PROBE_TEXTS):
        return Text(PROBE_TEXTS[int(index)])
    if name == "image:0":
        y, x = np.mgrid[0:64, 0:64]
        disc = ((x - 24) ** 2 + (y - 30) ** 2 < 14**2).astype(np.uint8)
        rgb = np.stack([4 * x + 100 * disc, 4 * y, 255 - 3 * x - 60 * disc], axis=-1)
        return Image(np.clip(rgb, 0, 255).astype(np.uint8))
    if name == "audio:0":
        t = np.arange(16_000, dtype=np.float64) / 16_000
        wave = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)
        return Audio(wave.astype(np.float32), sampling_rate=16_000)
    if name == "video:0":
        f, y, x = np.mgrid[0:8, 0:32, 0:32]
        frames = np.stack([(8 * x + 16 * f) % 256, (8 * y) % 256, (x * y + 32 * f) % 256], axis=-1)
        return Video(frames.astype(np.uint8))
    raise StoreError(
        f"the store's fingerprint uses a probe this omniretrieve does not know ({name!r}); upgrade"
    )


def embed_probes(embedder: Any, names: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...], dict[str, str]]:
    """The embedder's unit vectors for these probes, the probes embedded, and the failed ones' errors."""
    results = embedder.embed_each([probe_item(n) for n in names], role="document", show_progress=False)
    kept: list[str] = []
    vectors: list[np.ndarray] = []
    failed: dict[str, str] = {}
    for name, result in zip(names, results, strict=True):
        if result.vector is None:
            failed[name] = str(result.error)
            continue
        kept.append(name)
        vectors.append(np.asarray(result.vector, dtype=np.float32))
    matrix = np.stack(vectors) if vectors else np.empty((0, int(embedder.dimension)), dtype=np.float32)
    return matrix, tuple(kept), failed


def min_cosine(recorded: np.ndarray, current: np.ndarray) -> float:
    """The lowest cosine between matching rows of two probe matrices (``-1`` when shapes differ)."""
    if recorded.shape != current.shape or recorded.size == 0:
        return -1.0
    a = recorded / np.maximum(np.linalg.norm(recorded, axis=1, keepdims=True), 1e-12)
    b = current / np.maximum(np.linalg.norm(current, axis=1, keepdims=True), 1e-12)
    return float(np.min(np.sum(a * b, axis=1)))


# -- checking and recording --------------------------------------------------------------------


def _revision_of(embedder: Any) -> str | None:
    try:
        revision = getattr(embedder, "revision", None)
    except Exception as exc:  # a revision that cannot be found is unknown, never a failed open
        logger.warning("could not tell the revision of model %s: %s", getattr(embedder, "model_id", "?"), exc)
        return None
    return revision if isinstance(revision, str) and revision else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_identity(
    collections: Collections, embedder: Any, allow_model_change: bool, created: bool
) -> Identity:
    """Check the embedder against the identity the store records, and record what is new.

    Args:
        collections: The store's collections (the identity lives on ``collections.stats``).
        embedder: The store's embedder.
        allow_model_change: Open even when the model id or fingerprint differs, and record it.
        created: The store did not exist before this open.

    Returns:
        The identity the store records now.

    Raises:
        EmbeddingSpaceMismatchError: the fingerprint (or model id) differs and
            ``allow_model_change`` is False.
        StoreError: the identity could not be written.
    """
    meta = dict(collections.stats.metadata or {})
    recorded = read_identity(meta)
    model_id, revision = str(embedder.model_id), _revision_of(embedder)
    if recorded.fingerprint is None:
        vectors, probes, _ = embed_probes(embedder, probe_names(set(embedder.modalities)))
        event = "created" if created else "fingerprint recorded"
        if not created and not recorded.history:
            logger.warning(
                "store %s records no model fingerprint (it was made by an older omniretrieve): recording "
                "the fingerprint of %s now; later opens with another model's vectors will be refused",
                collections.describe(),
                model_id,
            )
        change = ModelChange(_now(), event, model_id, revision, _summary(vectors))
        return _write(collections, meta, recorded, model_id, revision, vectors, probes, change)

    current, probes, failed = embed_probes(embedder, recorded.probes)
    cosine = min_cosine(recorded.fingerprint, current) if not failed else -1.0
    differs = tuple(
        what
        for what, changed in (
            ("model id", recorded.model_id != model_id),
            ("fingerprint", cosine < FINGERPRINT_MIN_COSINE),
        )
        if changed
    )
    if differs:
        if not allow_model_change:
            raise _mismatch(collections, recorded, model_id, revision, current, cosine, differs, failed)
        change = ModelChange(
            _now(), "model changed", model_id, revision, _summary(current), recorded.model_id,
            recorded.revision, recorded.summary, round(cosine, 6),
        )  # fmt: skip
        logger.warning(
            "store %s: opened with allow_model_change=True by %s (%s differ); recorded the change, nothing "
            "was re-embedded",
            collections.describe(),
            model_id,
            " and ".join(differs),
        )
        if "model id" in differs:
            _rename_model(collections, model_id)
        return _write(collections, meta, recorded, model_id, revision, current, probes, change)
    if revision is not None and revision != recorded.revision:
        change = ModelChange(
            _now(), "revision changed", model_id, revision, recorded.summary, recorded.model_id,
            recorded.revision, recorded.summary, round(cosine, 6),
        )  # fmt: skip
        logger.info(
            "store %s: %s is now at revision %s (same fingerprint)",
            collections.describe(),
            model_id,
            revision,
        )
        return _write(
            collections, meta, recorded, model_id, revision, recorded.fingerprint, recorded.probes, change
        )
    return recorded


def _summary(vectors: np.ndarray) -> str | None:
    return fingerprint_summary(vectors) if vectors.size else None


def _mismatch(
    collections: Collections,
    recorded: Identity,
    model_id: str,
    revision: str | None,
    current: np.ndarray,
    cosine: float,
    differs: tuple[str, ...],
    failed: Mapping[str, str],
) -> EmbeddingSpaceMismatchError:
    meta = collections.space
    stored = (
        f"model {recorded.model_id!r} at revision {recorded.revision or 'unknown'} (dimension "
        f"{meta[K_DIM]}, {meta[K_SIM]}; fingerprint {recorded.summary})"
    )
    if failed:
        how = "it could not embed the probes " + ", ".join(f"{n} ({e})" for n, e in failed.items())
    else:
        how = f"its embeddings of the probe set differ: lowest cosine {cosine:.4f} < {FINGERPRINT_MIN_COSINE}"
    given = f"model {model_id!r} at revision {revision or 'unknown'} (fingerprint {_summary(current)}: {how})"
    return EmbeddingSpaceMismatchError(collections.describe(), stored, given, differs)


def _rename_model(collections: Collections, model_id: str) -> None:
    """Record the new model id on every kind collection of the store (the statistics one follows)."""
    metas = collections_of(collections.backend.list_collections(), collections.name)
    for kind, meta in metas.items():
        if kind == STATS or meta.get(K_MODEL) == model_id:
            continue
        col = collections.backend.get_collection(collections.full_name(kind))
        if col is not None:
            col.modify(metadata={**meta, K_MODEL: model_id})


def _write(
    collections: Collections,
    meta: dict[str, Any],
    recorded: Identity,
    model_id: str,
    revision: str | None,
    vectors: np.ndarray,
    probes: tuple[str, ...],
    change: ModelChange,
) -> Identity:
    history = (*recorded.history, change)[-HISTORY_LIMIT:]
    new = {key: value for key, value in meta.items() if key not in (K_REVISION, K_FINGERPRINT, K_PROBES)}
    new[K_MODEL] = model_id
    new[K_HISTORY] = json.dumps([asdict(entry) for entry in history], separators=(",", ":"))
    if revision is not None:
        new[K_REVISION] = revision
    if vectors.size:
        new[K_FINGERPRINT] = base64.b64encode(
            np.ascontiguousarray(vectors, dtype=_FP_DTYPE).tobytes()
        ).decode()
        new[K_PROBES] = ",".join(probes)
    try:
        collections.stats.modify(metadata=new)
    except OmniretrieveError:
        raise
    except Exception as exc:
        raise StoreError(f"could not record the model of store {collections.describe()}: {exc}") from exc
    return read_identity(new)


__all__ = [
    "FINGERPRINT_MIN_COSINE",
    "HISTORY_LIMIT",
    "PROBE_TEXTS",
    "Identity",
    "ModelChange",
    "check_identity",
    "embed_probes",
    "fingerprint_summary",
    "min_cosine",
    "probe_item",
    "probe_names",
    "read_identity",
    "recorded_identity",
]
