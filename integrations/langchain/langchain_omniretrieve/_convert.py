"""Translation between LangChain's types and omniretrieve's: queries, documents and search hits.

This module holds no retrieval logic: it only maps one representation onto the other.

One conversion, :func:`to_langchain`, turns every stored document into a LangChain document, for
the vector store and the retriever alike, so both give the same metadata keys:

* the caller's own metadata, unchanged (a text document's metadata round-trips exactly, as
  LangChain's standard vector-store tests require);
* on documents with media parts only: ``modality`` (``"image"``, ``"audio"``, ``"video"`` or
  ``"combined"``) and ``image_uri`` / ``audio_uri`` / ``video_uri``, the reference (absolute path
  or URL) of each media part the store keeps a reference for. A document without ``modality`` is
  text: read it as ``doc.metadata.get("modality", "text")``.

The store's id is ``Document.id``. Search results from
:class:`~langchain_omniretrieve.OmniretrieveRetriever`, which has no other place for scores, also
carry ``score`` (calibrated, what the list is ordered by), ``raw_score`` (the cosine) and
``rerank_score`` when the store reranked them; the vector store returns scores beside the documents
(``similarity_search_with_score``). :class:`~langchain_omniretrieve.OmniretrieveReranker` reads
``score`` as the first stage's score (:func:`first_stage_score`) and sets ``relevance_score`` (and
``rerank_error`` for a document it could not score).

A media-only document's ``page_content`` is its media reference; a text or combined document's
``page_content`` is its text.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from omniretrieve import InvalidInputError
from omniretrieve.types import Audio, Image, ItemInput, NormalizedItem, Text, Video, as_item

if TYPE_CHECKING:
    from omniretrieve.documents import Document as StoreDocument
    from omniretrieve.documents import SearchHit

MEDIA_URI_KEYS: dict[str, str] = {"image": "image_uri", "audio": "audio_uri", "video": "video_uri"}
"""Media part -> the metadata key that carries its reference."""

_MEDIA_TYPES: dict[str, type[Image] | type[Audio] | type[Video]] = {
    "image": Image,
    "audio": Audio,
    "video": Video,
}
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_IMAGE_SIGNATURES: tuple[bytes, ...] = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


def query_item(query: Any) -> NormalizedItem:
    """A retriever or reranker query as an omniretrieve item.

    A ``str`` is text (never a path or URL to open); a dict such as
    ``{"text": "a red circle", "image": "circle.png"}`` or an omniretrieve item
    (``Image(...)``, ``Combined(...)``) is taken as it is.

    Raises:
        InvalidInputError: the query is of no accepted shape.
    """
    return as_item(query)


def _base64_image(content: str) -> bytes | None:
    """The bytes of an image stored as bare base64, or ``None`` when ``content`` is not one.

    This is how ``langchain_chroma.Chroma.add_images`` stores images in ``page_content``.
    """
    if len(content) < 16 or len(content) % 4 or not _BASE64.fullmatch(content):
        return None
    head = base64.b64decode(content[:16])
    is_webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if not (is_webp or head.startswith(_IMAGE_SIGNATURES)):
        return None
    try:
        return base64.b64decode(content, validate=True)
    except binascii.Error:
        return None


def _described_item(document: Document) -> dict[str, Any] | None:
    """The item a document describes through ``<part>_uri`` metadata, as a dict item; else ``None``.

    ``page_content`` is then the text part, unless ``modality`` names a single medium or
    ``page_content`` is the media reference itself.
    """
    metadata = document.metadata or {}
    media = {
        m: metadata[key]
        for m, key in MEDIA_URI_KEYS.items()
        if isinstance(metadata.get(key), str) and metadata[key]
    }
    if not media:
        return None
    content = document.page_content
    single_medium = metadata.get("modality") in MEDIA_URI_KEYS
    text = None if single_medium or not content or content in media.values() else content
    return {"text": text, **media}


def document_item(document: Document) -> NormalizedItem:
    """The content of a LangChain document as an omniretrieve item (for reranking).

    Media are found, in this order:

    1. in the metadata keys ``image_uri`` / ``audio_uri`` / ``video_uri`` (as set by this package);
       the page content is then the text part, unless it is the media reference itself;
    2. a ``page_content`` that is a ``data:image/...`` (``audio``, ``video``) URI;
    3. a ``page_content`` that is a bare base64 PNG, JPEG, GIF or WebP image (as
       ``langchain_chroma.Chroma.add_images`` stores images).

    Anything else is text: a ``page_content`` that looks like a path or URL is never opened.

    Raises:
        InvalidInputError: the metadata says the document is media (``modality``) but names no
            reference for it (media given in memory to a store that does not copy media).
    """
    described = _described_item(document)
    if described is not None:
        return as_item(described)
    modality = (document.metadata or {}).get("modality")
    if modality in MEDIA_URI_KEYS or modality == "combined":
        raise InvalidInputError(
            f"Document({document.id!r})",
            f"its modality is {modality!r} but its metadata names no media reference (image_uri, ...): "
            "store media by path or URL, or with copy_media=True",
        )
    content = document.page_content
    if content[:5].lower() == "data:":
        kind = content[5:].split("/", 1)[0].lower()
        if kind in _MEDIA_TYPES:
            return _MEDIA_TYPES[kind](content)
    data = _base64_image(content)
    if data is not None:
        return Image(data)
    return Text(content)


def store_document_metadata(document: StoreDocument) -> dict[str, Any]:
    """The metadata of a stored document as LangChain sees it.

    A text document's metadata is the caller's own, unchanged (it round-trips exactly). A document
    with media parts also carries ``modality`` and the ``<part>_uri`` references.
    """
    metadata: dict[str, Any] = {
        k: list(v) if isinstance(v, list) else v for k, v in document.metadata.items()
    }
    if document.kind != "text":
        metadata["modality"] = document.kind
        for part, key in MEDIA_URI_KEYS.items():
            reference = getattr(document, part)
            if reference is not None:
                metadata[key] = reference
    return metadata


def store_document_content(document: StoreDocument) -> str:
    """The ``page_content`` for a stored document: its text, else its first media reference, else ``""``."""
    if document.text is not None:
        return document.text
    for part in ("image", "audio", "video"):
        reference = getattr(document, part)
        if reference is not None:
            return str(reference)
    return ""


def to_langchain(document: StoreDocument, extra: Mapping[str, Any] | None = None) -> Document:
    """A stored document as a LangChain :class:`~langchain_core.documents.Document`."""
    metadata = store_document_metadata(document)
    if extra:
        metadata.update(extra)
    return Document(page_content=store_document_content(document), metadata=metadata, id=document.id)


def hit_to_langchain(hit: SearchHit) -> Document:
    """A search hit as :func:`to_langchain` gives its document, with its scores in the metadata."""
    extra: dict[str, Any] = {"score": float(hit.score), "raw_score": float(hit.cosine)}
    if hit.rerank_score is not None:
        extra["rerank_score"] = float(hit.rerank_score)
    return to_langchain(hit.document, extra)


FIRST_STAGE_SCORE_KEY = "score"
"""The metadata key :class:`~langchain_omniretrieve.OmniretrieveReranker` reads a document's
first-stage score from: where :func:`hit_to_langchain` (and so the retriever) puts it."""


def first_stage_score(document: Document) -> float | None:
    """The first stage's score of a retrieved document (``metadata["score"]``), if it is a number."""
    value = (document.metadata or {}).get(FIRST_STAGE_SCORE_KEY)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def from_langchain(document: Document) -> tuple[ItemInput, dict[str, Any]]:
    """A LangChain document to store: its item and its metadata.

    The item is ``page_content`` as text, or the media named by ``<part>_uri`` metadata (with
    ``page_content`` as the text part, see :func:`document_item`). The keys that describe the item
    (``modality``, ``<part>_uri``) are then removed from the metadata; everything else is kept as
    the caller's own.
    """
    metadata = dict(document.metadata or {})
    described = _described_item(document)
    if described is None:
        return document.page_content, metadata
    for key in ("modality", *MEDIA_URI_KEYS.values()):
        metadata.pop(key, None)
    return described, metadata


SEARCH_OPTIONS: frozenset[str] = frozenset(
    {"k", "filter", "where", "modalities", "calibration", "reranker", "rerank_top_n"}
)
"""The keyword arguments a search takes (``filter`` is LangChain's name for the store's ``where``)."""


def search_options(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments for ``Store.search``: ``defaults`` updated by ``overrides``.

    ``filter`` (LangChain's name) and ``where`` (omniretrieve's) are the same metadata filter; an
    option given as ``None`` falls back to the store's default (no filter, for a filter).

    Raises:
        InvalidInputError: an unknown option, or both ``filter`` and ``where``.
    """
    unknown = sorted(set(overrides) - SEARCH_OPTIONS)
    if unknown:
        raise InvalidInputError(
            f"search options {unknown}", f"unknown; a search takes {sorted(SEARCH_OPTIONS)}"
        )
    given = dict(overrides)
    if "filter" in given:
        if given["filter"] is not None and given.get("where") is not None:
            raise InvalidInputError("filter/where", "give the metadata filter once: filter= (or where=)")
        filter_ = given.pop("filter")
        if given.get("where") is None:
            given["where"] = filter_
    options = {**defaults, **given}
    return {k: v for k, v in options.items() if v is not None}
