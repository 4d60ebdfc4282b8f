"""Documents as Chroma records, and back.

A record is the document's id, its vector, its text (Chroma's ``document`` field, empty without a
text part) and flat metadata: the caller's keys plus omniretrieve's own (``omni:...``): the content
hash, the parts, the source, and a reference per media part. A reference to a copy in the store's
media folder is kept relative to that folder (``omni-media:ab/abcd....png``), so the folder can
move with the store. Metadata is replaced entirely on update (:func:`full_replace`): Chroma's own
``update`` keeps keys it is not given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omniretrieve.documents import RESERVED_PREFIXES, Document, Kind, check_text
from omniretrieve.errors import InvalidInputError
from omniretrieve.store._schema import K_PARTS, K_SHA, K_SOURCE, K_WRITE, Collections

FLOAT_TOLERANCE = 1e-14
"""Relative difference under which two metadata floats count as equal: Chroma 1.5 returns a float
it stored to within an ulp or two (1.3384270668029785 comes back as 1.3384270668029783)."""

MEDIA_PARTS = ("image", "audio", "video")
"""The parts whose content is referenced (a path or URL) rather than stored."""

_MEDIA_SCHEME = "omni-media:"
_MEDIA_REF_RE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}(\.[a-z0-9]{1,8})?$")


@dataclass(frozen=True)
class Stored:
    """One record as stored: its kind, vector, metadata and text."""

    kind: Kind
    vector: np.ndarray
    metadata: dict[str, Any]
    document: str


class Records:
    """Turns documents into record metadata and records into documents.

    Args:
        media_dir: The store's media folder (copies are referenced relative to it), if any.
    """

    def __init__(self, media_dir: Path | None) -> None:
        self.media_dir = media_dir

    def metadata(self, doc: Document) -> dict[str, Any]:
        """The record metadata of ``doc``: its own keys plus omniretrieve's."""
        meta: dict[str, Any] = dict(doc.metadata)
        meta[K_SHA] = doc.sha256
        meta[K_PARTS] = list(doc.parts)
        if doc.source is not None:
            meta[K_SOURCE] = doc.source
        for m in MEDIA_PARTS:
            ref = getattr(doc, m)
            if ref is not None:
                meta[f"omni:{m}"] = self._store_ref(ref)
        return meta

    def document(self, doc_id: str, meta: Mapping[str, Any] | None, text: str | None) -> Document:
        """The document a record holds."""
        meta = dict(meta or {})
        parts = tuple(meta.get(K_PARTS) or ())
        refs = {m: self._load_ref(str(meta[f"omni:{m}"])) for m in MEDIA_PARTS if f"omni:{m}" in meta}
        return Document(
            id=doc_id,
            parts=parts,  # type: ignore[arg-type]
            sha256=str(meta.get(K_SHA, "")),
            text=(text or "") if "text" in parts else None,
            metadata={k: v for k, v in meta.items() if not k.startswith(RESERVED_PREFIXES)},
            source=meta.get(K_SOURCE),
            **refs,
        )

    def same(self, doc: Document, old: Stored, *, ignore_media: bool) -> bool:
        """Whether writing ``doc`` would leave the record ``old`` as it is (its vector aside).

        Args:
            doc: The document to write.
            old: The stored record of the same id.
            ignore_media: Leave media references out (with copies they are decided after copying;
                the content hash decides).
        """
        new_meta = self.metadata(doc)
        old_meta = dict(old.metadata)
        old_meta.pop(K_WRITE, None)  # which writer added it is no part of the document
        if ignore_media:
            for m in MEDIA_PARTS:
                new_meta.pop(f"omni:{m}", None)
                old_meta.pop(f"omni:{m}", None)
        return old.kind == doc.kind and same_metadata(new_meta, old_meta) and (doc.text or "") == old.document

    def _store_ref(self, ref: str) -> str:
        if self.media_dir is not None:
            try:
                rel = Path(ref).relative_to(self.media_dir).as_posix()
            except ValueError:
                return ref
            if _MEDIA_REF_RE.match(rel):
                return _MEDIA_SCHEME + rel
        return ref

    def _load_ref(self, ref: str) -> str:
        if ref.startswith(_MEDIA_SCHEME):
            rel = ref[len(_MEDIA_SCHEME) :]
            if self.media_dir is not None and _MEDIA_REF_RE.match(rel):
                return str(self.media_dir / rel)
        return ref


def lookup(collections: Collections, ids: Sequence[str]) -> dict[str, Stored]:
    """The stored records of these ids, in whichever kind's collection they are (absent ids left out)."""
    found: dict[str, Stored] = {}
    if not ids:
        return found
    for kind, col in collections.existing().items():
        for sl in collections.slices(len(ids)):
            got = col.get(ids=list(ids[sl]), include=["embeddings", "metadatas", "documents"])
            for i, doc_id in enumerate(got["ids"]):
                found[doc_id] = Stored(
                    kind=kind,
                    vector=np.asarray(got["embeddings"][i], dtype=np.float32),
                    metadata=dict(got["metadatas"][i] or {}),
                    document=got["documents"][i] or "",
                )
    return found


def check_ids(ids: Any) -> list[str]:
    """``ids`` as a list of non-empty str.

    Raises:
        InvalidInputError: not a sequence of non-empty str (a single str is not a list).
    """
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise InvalidInputError("ids", "pass a list of ids (a single str is not a list)")
    out = list(ids)
    bad = [i for i in out if not isinstance(i, str) or not i]
    if bad:
        raise InvalidInputError("ids", f"ids must be non-empty str, got {bad[0]!r}")
    for i in out:
        check_text(i, f"ids: {i!r}")
    return out


def full_replace(meta: dict[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` for a Chroma ``update`` that removes the keys of ``old`` it lacks (set to ``None``)."""
    for key in old:
        if key not in meta:
            meta[key] = None  # Chroma keeps keys an update leaves out: remove them explicitly
    return meta


def same_metadata(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal keys and values, types included (``1``, ``1.0`` and ``True`` differ)."""

    def same(x: Any, y: Any) -> bool:
        if isinstance(x, list | tuple) or isinstance(y, list | tuple):
            return (
                isinstance(x, list | tuple)
                and isinstance(y, list | tuple)
                and len(x) == len(y)
                and all(_same_value(u, v) for u, v in zip(x, y, strict=True))
            )
        return _same_value(x, y)

    return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)


def _same_value(x: Any, y: Any) -> bool:
    if type(x) is not type(y):
        return False
    if isinstance(x, float):  # Chroma round-trips floats to within an ulp or two
        return math.isclose(x, y, rel_tol=FLOAT_TOLERANCE, abs_tol=0.0) or x == y
    return bool(x == y)


__all__ = [
    "FLOAT_TOLERANCE",
    "MEDIA_PARTS",
    "Records",
    "Stored",
    "check_ids",
    "full_replace",
    "lookup",
    "same_metadata",
]
