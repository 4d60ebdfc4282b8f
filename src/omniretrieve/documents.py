"""What the store keeps about each item: :class:`Document`, and what a search returns: :class:`SearchHit`.

A :class:`Document` is one retrievable thing: a text, an image, a sound, a video, or a *combined*
document of several of these (a slide and its notes, a photo and its caption). It holds

* ``id``: unique in the store. By default it is the SHA-256 of the content, so ingesting the same
  content twice writes it once;
* the content parts: ``text`` (the text itself) and ``image`` / ``audio`` / ``video`` (a *reference*:
  a file path or URL; media are kept by reference, see ``copy_media`` on the store);
* ``metadata``: a flat mapping of the caller's own keys to ``str``, ``int``, ``float``, ``bool`` or a
  non-empty list of one of these (what Chroma accepts). Keys starting with ``omni:`` or ``chroma:``
  are reserved;
* ``source``: where the content came from (a ``file://`` or ``http(s)://`` URI), if known;
* ``sha256``: the hash of the content (see :func:`content_sha256`).

Example::

    from omniretrieve.documents import Document
    from omniretrieve.types import Image

    doc = Document.from_item({"text": "a red circle", "image": "circle.png"}, metadata={"page": 3})
    doc.kind          # "combined"
    doc.id == doc.sha256
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias, Union
from urllib.parse import urlsplit

import numpy as np

from omniretrieve.errors import InvalidInputError
from omniretrieve.types import (
    MODALITIES,
    Audio,
    Combined,
    Image,
    ItemInput,
    Modality,
    NormalizedItem,
    Text,
    Video,
    as_item,
    describe,
    is_pil_image,
)

Kind: TypeAlias = Literal["text", "image", "audio", "video", "combined"]
"""The kind of a document: its single modality, or ``"combined"`` for several parts.

A :class:`~omniretrieve.types.Modality` names what a model reads (one of text, image, audio,
video); a Kind names what a document is, so it adds ``"combined"``. The store keeps one collection
per kind, ``search(modalities=...)`` filters by kind, and a hit's ``modality`` attribute
(:attr:`SearchHit.modality`) holds its document's kind. Exported as ``omniretrieve.Kind``."""

KINDS: tuple[Kind, ...] = ("text", "image", "audio", "video", "combined")

ScalarValue: TypeAlias = Union[str, int, float, bool]
MetadataValue: TypeAlias = Union[str, int, float, bool, list[str], list[int], list[float], list[bool]]
"""A metadata value Chroma can store and filter on."""

Metadata: TypeAlias = Mapping[str, MetadataValue]

RESERVED_PREFIXES: tuple[str, ...] = ("omni:", "chroma:")
"""Metadata key prefixes reserved for omniretrieve's own bookkeeping and for Chroma."""

ByteReader: TypeAlias = Callable[[Any], bytes]
"""Reads the bytes of a media source (a path, URL or bytes), e.g. ``MediaLoader.read_bytes``."""


def kind_of_modalities(modalities: Sequence[Modality]) -> Kind:
    """The kind for a set of part modalities: the single modality, or ``"combined"``.

    Raises:
        InvalidInputError: ``modalities`` is empty.
    """
    mods = [m for m in MODALITIES if m in modalities]
    if not mods:
        raise InvalidInputError("modalities", "a document needs at least one part")
    return mods[0] if len(mods) == 1 else "combined"


def kind_of(item: ItemInput) -> Kind:
    """The kind of any accepted input (a :class:`Combined` of one part is that part's kind)."""
    normalized = as_item(item)
    if isinstance(normalized, Combined):
        return kind_of_modalities(normalized.modalities)
    return normalized.modality


def check_text(value: str, name: str) -> str:
    r"""``value`` when it can be stored: valid Unicode, so that it encodes to UTF-8.

    A ``str`` may hold lone surrogates (``"bad \ud800"``, from a badly decoded file or
    ``os.fsdecode``); hashing, Chroma and JSON would all fail on it.

    Args:
        value: The text.
        name: How to name the input in errors.

    Raises:
        InvalidInputError: the text holds a lone surrogate.
    """
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            name,
            f"is not valid Unicode (a lone surrogate {value[exc.start]!r} at position {exc.start}); "
            "decode the source with errors='replace' or remove the character",
        ) from None
    return value


def validate_metadata(
    metadata: Mapping[str, Any] | None, *, name: str = "metadata"
) -> dict[str, MetadataValue]:
    """Check that metadata is flat and of types Chroma stores; return a plain copy.

    Args:
        metadata: The caller's metadata (``None`` means none).
        name: How to name the input in errors.

    Raises:
        InvalidInputError: a key is not a non-empty str, uses a reserved prefix (``omni:``,
            ``chroma:``) or starts with ``$``; a value is ``None``, a nested mapping, an empty or
            mixed-type list, or a non-finite float.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(name, f"metadata must be a mapping, not {type(metadata).__name__}")
    out: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(name, f"metadata key {key!r} must be a non-empty str")
        check_text(key, f"{name} key {key!r}")
        if key.startswith(RESERVED_PREFIXES) or key.startswith("$"):
            raise InvalidInputError(
                name,
                f"metadata key {key!r} is reserved (keys starting with {list(RESERVED_PREFIXES)} or '$' "
                "belong to omniretrieve and Chroma); rename it",
            )
        out[key] = _check_value(name, key, value)
    return out


def _check_scalar(name: str, key: str, value: Any) -> ScalarValue:
    if isinstance(value, str):
        return check_text(value, f"{name} {key!r}")
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(name, f"metadata {key!r} is {value}; only finite floats can be stored")
        return value
    if isinstance(value, np.generic) and isinstance(value.item(), bool | int | float | str):
        return _check_scalar(name, key, value.item())
    if value is None:
        raise InvalidInputError(
            name, f"metadata {key!r} is None; Chroma cannot store None: leave the key out instead"
        )
    raise InvalidInputError(
        name,
        f"metadata {key!r} has a {type(value).__name__}; values must be str, int, float, bool or a "
        "non-empty list of one of these (no nested dicts)",
    )


def _check_value(name: str, key: str, value: Any) -> MetadataValue:
    if isinstance(value, list | tuple):
        if not value:
            raise InvalidInputError(name, f"metadata {key!r} is an empty list; Chroma needs non-empty lists")
        items = [_check_scalar(name, key, v) for v in value]
        types = {type(v) for v in items}
        if len(types) != 1:
            raise InvalidInputError(
                name, f"metadata {key!r} mixes {sorted(t.__name__ for t in types)}; a list holds one type"
            )
        return items  # type: ignore[return-value]
    return _check_scalar(name, key, value)


# ---------------------------------------------------------------------------------------------
# Content hashing
# ---------------------------------------------------------------------------------------------


def _is_url(value: str) -> bool:
    scheme = urlsplit(value).scheme.lower()
    return scheme in ("http", "https")


def _is_data_uri(value: str) -> bool:
    return value[:5].lower() == "data:"


def _default_reader(source: Any) -> bytes:
    from omniretrieve.media import MediaLoader

    return MediaLoader().read_bytes(source)


def _media_digest(part: Image | Audio | Video, reader: ByteReader) -> str:
    """Hash of one media part: its encoded bytes, or its decoded pixels/samples when in memory."""
    h = hashlib.sha256()
    h.update(part.modality.encode() + b"\0")
    source = part.source
    if isinstance(source, np.ndarray):
        arr = np.ascontiguousarray(source)
        h.update(f"array:{arr.dtype.str}:{arr.shape}".encode() + b"\0")
        if isinstance(part, Audio):
            h.update(f"sr:{part.sampling_rate}".encode() + b"\0")
        h.update(arr.tobytes())
    elif is_pil_image(source):
        h.update(f"pil:{source.mode}:{source.size}".encode() + b"\0")  # type: ignore[union-attr]
        h.update(source.tobytes())  # type: ignore[union-attr]
    else:
        data = source if isinstance(source, bytes) else reader(source)
        h.update(b"bytes\0")
        h.update(data)
    return h.hexdigest()


def _text_digest(text: str) -> str:
    check_text(text, describe(Text(text)))
    return hashlib.sha256(b"text\0" + text.encode("utf-8")).hexdigest()


def content_sha256(item: ItemInput, *, reader: ByteReader | None = None) -> str:
    """The SHA-256 (hex) of an item's content, the default document id.

    Text is hashed as UTF-8; a media file or URL by its bytes (read with ``reader``, by default
    :meth:`omniretrieve.media.MediaLoader.read_bytes` under the default media policy); an
    in-memory image by its mode, size and pixels; an array by its dtype, shape and values (and
    sampling rate for audio). A combined item hashes the ordered list of its parts' hashes; a
    combined item of one part hashes like that part alone. The same content read from two paths
    hashes the same.

    Raises:
        InvalidInputError: the item is of no accepted shape.
        MediaError: a media source could not be read.
    """
    read = reader or _default_reader
    normalized = as_item(item)
    parts = normalized.parts() if isinstance(normalized, Combined) else [normalized]
    digests = [
        _text_digest(p.text) if isinstance(p, Text) else _media_digest(p, read)
        for p in parts  # type: ignore[union-attr]
    ]
    if len(digests) == 1:
        return digests[0]
    h = hashlib.sha256(b"combined\0")
    for p, d in zip(parts, digests, strict=True):
        h.update(f"{p.modality}:{d}\0".encode())
    return h.hexdigest()


def media_reference(part: Image | Audio | Video) -> str | None:
    """A durable reference for a media part: an absolute path or a URL; ``None`` for in-memory media.

    ``data:`` URIs, bytes, arrays and PIL images have no reference (the store can copy them into
    its media folder, see ``copy_media``).
    """
    source = part.source
    if isinstance(source, str):
        if _is_data_uri(source):
            return None
        if _is_url(source):
            return source
        return os.path.abspath(source)
    if isinstance(source, os.PathLike):
        return os.path.abspath(os.fspath(source))
    return None


def reference_uri(reference: str) -> str:
    """A reference as a URI: URLs unchanged, paths as ``file://`` URIs."""
    if _is_url(reference):
        return reference
    return Path(reference).resolve().as_uri()


# ---------------------------------------------------------------------------------------------
# Document
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """One retrievable item as the store keeps it.

    Attributes:
        id: Unique id in the store; by default equal to ``sha256`` (content-addressed).
        parts: The modalities present, in canonical order (``("text", "image")`` for a caption
            with its picture).
        text: The text part, or ``None``.
        image: The image reference (absolute path or URL), or ``None`` when the document has no
            image or the image was given in memory and not copied.
        audio: The audio reference, likewise.
        video: The video reference, likewise.
        metadata: The caller's flat metadata (never contains omniretrieve's own keys).
        source: Where the content came from, as a URI, or ``None``.
        sha256: SHA-256 of the content (:func:`content_sha256`).
    """

    id: str
    parts: tuple[Modality, ...]
    sha256: str
    text: str | None = None
    image: str | None = None
    audio: str | None = None
    video: str | None = None
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidInputError("Document.id", "a document id must be a non-empty str")
        check_text(self.id, f"Document.id {self.id!r}")
        for label in ("text", "source", "image", "audio", "video"):
            value = getattr(self, label)
            if isinstance(value, str):
                check_text(value, f"Document({self.id!r}).{label} {describe(value)}")
        if not self.parts or any(p not in MODALITIES for p in self.parts):
            raise InvalidInputError(
                "Document.parts", f"{self.parts!r}: parts must name modalities {list(MODALITIES)}"
            )
        if ("text" in self.parts) != (self.text is not None):
            raise InvalidInputError(
                "Document.text", "text must be set exactly when 'text' is one of the parts"
            )
        for m in ("image", "audio", "video"):
            if getattr(self, m) is not None and m not in self.parts:
                raise InvalidInputError(
                    f"Document.{m}", f"has a {m} reference but {m!r} is not one of the parts"
                )
        object.__setattr__(self, "parts", tuple(m for m in MODALITIES if m in self.parts))
        object.__setattr__(
            self, "metadata", validate_metadata(self.metadata, name=f"Document({self.id!r}).metadata")
        )

    @property
    def kind(self) -> Kind:
        """``"text"``, ``"image"``, ``"audio"``, ``"video"``, or ``"combined"`` for several parts."""
        return kind_of_modalities(self.parts)

    @property
    def missing_media(self) -> tuple[Modality, ...]:
        """Media parts the document has but holds no reference for (given in memory, not copied)."""
        return tuple(m for m in self.parts if m != "text" and getattr(self, m) is None)

    def to_item(self) -> NormalizedItem:
        """The document's content as an input item (for reranking or re-embedding).

        Media parts are referenced by path or URL and loaded when used. Parts without a reference
        (see :attr:`missing_media`) are left out.

        Raises:
            InvalidInputError: no part of the document is available.
        """
        available = {m: getattr(self, m) for m in self.parts if getattr(self, m) is not None}
        if not available:
            raise InvalidInputError(
                f"Document({self.id!r})",
                f"none of its parts {list(self.parts)} is available: media given in memory are not kept "
                "unless the store copies them (copy_media=True)",
            )
        text = available.get("text")
        image = Image(available["image"]) if "image" in available else None
        audio = Audio(available["audio"]) if "audio" in available else None
        video = Video(available["video"]) if "video" in available else None
        if len(available) == 1:
            single: NormalizedItem = Text(text) if text is not None else (image or audio or video)  # type: ignore[assignment]
            return single
        return Combined(text=text, image=image, audio=audio, video=video)

    @classmethod
    def from_item(
        cls,
        item: ItemInput,
        *,
        id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
        reader: ByteReader | None = None,
        sha256: str | None = None,
    ) -> Document:
        """Describe an input item as a document.

        Args:
            item: Any accepted input (a ``str`` is text; wrap media in ``Image``/``Audio``/``Video``
                or use a dict with ``text``/``image``/``audio``/``video`` keys).
            id: The id; defaults to the content's SHA-256.
            metadata: Flat metadata (see :func:`validate_metadata`).
            source: Where it came from; defaults to the URI of the first media part given by path
                or URL, else ``None``.
            reader: Reads media bytes for hashing (default: :class:`omniretrieve.media.MediaLoader`).
            sha256: A content hash already computed (skips reading the media again).

        Raises:
            InvalidInputError: bad item, id or metadata.
            MediaError: a media part could not be read for hashing.
        """
        normalized = as_item(item)
        digest = sha256 if sha256 is not None else content_sha256(normalized, reader=reader)
        parts = normalized.parts() if isinstance(normalized, Combined) else [normalized]
        fields: dict[str, Any] = {}
        for part in parts:
            if isinstance(part, Text):
                fields["text"] = part.text
            else:
                fields[part.modality] = media_reference(part)
        if source is None:
            refs = [fields[m] for m in ("image", "audio", "video") if fields.get(m)]
            source = reference_uri(refs[0]) if refs else None
        if id is not None and (not isinstance(id, str) or not id):
            raise InvalidInputError(describe(item), f"id {id!r} must be a non-empty str")
        return cls(
            id=id if id is not None else digest,
            parts=tuple(p.modality for p in parts),
            sha256=digest,
            metadata=validate_metadata(metadata),
            source=source,
            **fields,
        )


@dataclass(frozen=True)
class SearchHit:
    """One entry of a search result list.

    Attributes:
        document: The document found.
        score: The fused score the list was ordered by before any reranking. With
            ``calibration="gap"`` it is the cosine between the query and the document after
            removing each modality's mean (comparable across modalities, in ``[-1, 1]``); with
            ``"none"`` the raw cosine; with ``"rrf"`` ``1 / (60 + rank within the document's
            modality)``.
        cosine: The raw cosine similarity between the query and document embeddings.
        modality: The document's :data:`Kind` (not a :class:`~omniretrieve.types.Modality`:
            it may be ``"combined"``): ``"text"``, ``"image"``, ``"audio"``, ``"video"`` or
            ``"combined"``; the same as ``document.kind``.
        rerank_score: The reranker's score when the results were reranked (the list is then
            ordered by it), else ``None``; ``-inf`` for a candidate the reranker could not score.
    """

    document: Document
    score: float
    cosine: float
    modality: Kind
    rerank_score: float | None = None

    @property
    def id(self) -> str:
        """The document's id."""
        return self.document.id


__all__ = [
    "KINDS",
    "RESERVED_PREFIXES",
    "ByteReader",
    "Document",
    "Kind",
    "Metadata",
    "MetadataValue",
    "SearchHit",
    "check_text",
    "content_sha256",
    "kind_of",
    "kind_of_modalities",
    "media_reference",
    "reference_uri",
    "validate_metadata",
]
