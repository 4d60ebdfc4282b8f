"""Translations between LlamaIndex objects and omniretrieve's, shared by the omniretrieve LlamaIndex packages.

The public conversion layer of the LlamaIndex integrations (``llama-index-embeddings-omniretrieve``
ships it; the retriever, the reranker and the vector store depend on it):

- nodes and query bundles -> omniretrieve items: :func:`node_item`, :func:`node_parts`,
  :func:`query_item`, :func:`image_item`;
- nodes <-> stored documents: :func:`node_metadata` (a node as store metadata, the node itself
  kept as LlamaIndex's vector stores keep it) and :func:`document_to_node` (back again);
- ``MetadataFilters`` -> omniretrieve's ``where`` filter: :func:`metadata_filters_to_where`;
- a model name or a ready embedder / reranker: :func:`resolve_model`.

Every translation keeps omniretrieve's safety rule: a string becomes media only when LlamaIndex
says it is one (an ``image_path``, ``image_url`` or image resource), and a media source is never
opened here: paths, URLs and bytes are wrapped in :class:`~omniretrieve.types.Image` (or ``Audio``,
``Video``) and read later by omniretrieve's ``MediaLoader`` under its policy. LlamaIndex's own
``resolve_image()``, which fetches URLs with no policy, is never called.
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
import os
from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.schema import (
    BaseNode,
    ImageNode,
    MediaResource,
    MetadataMode,
    Node,
    QueryBundle,
    TextNode,
)
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from omniretrieve import InvalidInputError
from omniretrieve.types import Audio, Combined, Image, ItemInput, Text, Video, describe

if TYPE_CHECKING:
    from omniretrieve.documents import Document

logger = logging.getLogger(__name__)

NODE_CONTENT_KEY = "_node_content"
"""The metadata key under which LlamaIndex's vector stores keep a node's JSON (its text left out)."""

REF_DOC_ID_KEY = "ref_doc_id"
"""The metadata key holding a node's source document id (``"None"`` when it has none), as LlamaIndex writes it."""


def image_item(image: Any, *, name: str = "image") -> Image:
    """Wrap an image as LlamaIndex hands it over (``str`` path or URL, ``BytesIO``) in :class:`Image`.

    A ``str`` is a path, an ``http(s)://`` URL or a ``data:`` URI (the media policy decides what may
    be read); ``BytesIO`` and ``bytes`` are encoded image bytes; a path object, a PIL image or an
    :class:`Image` pass through.

    Raises:
        InvalidInputError: ``image`` is empty or of no image shape.
    """
    if isinstance(image, Image):
        return image
    if isinstance(image, BytesIO):
        return Image(image.getvalue())
    if isinstance(image, (bytes, bytearray, memoryview)):
        return Image(bytes(image))
    if isinstance(image, str):
        if not image.strip():
            raise InvalidInputError(name, "the image path or URL is empty")
        return Image(image)
    if isinstance(image, os.PathLike) or _is_pil(image):
        return Image(image)
    raise InvalidInputError(
        f"{name}={describe(image)}",
        "pass an image as a path or URL (str), BytesIO, bytes or a PIL image",
    )


def _is_pil(value: object) -> bool:
    try:
        from PIL.Image import Image as PILImage
    except ImportError:  # pragma: no cover - Pillow comes with omniretrieve[image]
        return False
    return isinstance(value, PILImage)


def _b64(data: str | bytes, name: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(name, "the embedded image is not valid base64") from exc


def _resource_source(resource: MediaResource | None, name: str) -> bytes | str | None:
    """The source of a LlamaIndex media resource: decoded bytes, a path or a URL (in that order)."""
    if resource is None:
        return None
    if resource.data:
        return _b64(resource.data, name)
    if resource.path is not None:
        return os.fspath(resource.path)
    if resource.url is not None:
        return str(resource.url)
    return None


def node_image_source(node: ImageNode) -> bytes | str | None:
    """An ``ImageNode``'s image: base64 ``image`` decoded, else ``image_path``, else ``image_url``.

    The same order as ``ImageNode.resolve_image``, without reading or fetching anything.
    """
    if node.image:
        return _b64(node.image, f"ImageNode({node.node_id!r}).image")
    return node.image_path or node.image_url or None


def _media_file(node: Node) -> tuple[str, str] | None:
    """``(modality, path)`` for a plain ``Document`` that LlamaIndex read from a media file as text.

    Without ``llama-index-readers-file``, ``SimpleDirectoryReader`` reads an image (audio, video)
    file as a ``Document`` whose text is the file's bytes decoded; its metadata still says what
    the file is (``file_type`` ``image/png``, ``file_path``). Such a document is that file.
    """
    if node.image_resource is not None or node.audio_resource is not None or node.video_resource is not None:
        return None
    file_type, file_path = node.metadata.get("file_type"), node.metadata.get("file_path")
    if not isinstance(file_type, str) or not isinstance(file_path, str) or not file_path:
        return None
    modality = file_type.split("/", 1)[0]
    return (modality, file_path) if modality in ("image", "audio", "video") else None


def _text_part(node: BaseNode, text: str | None, metadata_mode: MetadataMode) -> str | None:
    if text is None or not text.strip():
        return None
    return node.get_content(metadata_mode=metadata_mode)


def node_parts(node: BaseNode, *, metadata_mode: MetadataMode = MetadataMode.NONE) -> dict[str, str | bytes]:
    """The content parts of any LlamaIndex node: ``text`` and ``image`` / ``audio`` / ``video`` sources.

    ``TextNode`` gives its text; ``ImageNode`` its image (base64 ``image``, ``image_path`` or
    ``image_url``) and its text if it has any; a ``Node`` or ``Document`` (``ImageDocument``
    included) its text, image, audio and video resources. Text is taken with ``metadata_mode``
    (``MetadataMode.NONE``: the text alone); a node with empty text has no text part.
    """
    name = f"{type(node).__name__}({node.node_id!r})"
    parts: dict[str, str | bytes] = {}
    if isinstance(node, ImageNode):
        text = _text_part(node, node.text, metadata_mode)
        image = node_image_source(node)
    elif isinstance(node, Node):
        media_file = _media_file(node)
        if media_file is not None:
            # A media file read as text: its "text" is the file's bytes decoded, not content.
            modality, path = media_file
            return {modality: path}
        resource = node.text_resource
        text = _text_part(node, resource.text if resource is not None else None, metadata_mode)
        image = _resource_source(node.image_resource, f"{name}.image_resource")
        for modality in ("audio", "video"):
            source = _resource_source(getattr(node, f"{modality}_resource"), f"{name}.{modality}_resource")
            if source is not None:
                parts[modality] = source
    else:  # TextNode, IndexNode and any other text-bearing node
        text = _text_part(node, node.get_content(metadata_mode=MetadataMode.NONE), metadata_mode)
        image = None
    if text is not None:
        parts["text"] = text
    if image is not None:
        parts["image"] = image
    return parts


def node_item(node: BaseNode, *, metadata_mode: MetadataMode = MetadataMode.NONE) -> ItemInput:
    """A LlamaIndex node as one omniretrieve item: text, image, audio, video or a combination.

    Raises:
        InvalidInputError: the node has neither text nor media.
    """
    parts = node_parts(node, metadata_mode=metadata_mode)
    if not parts:
        raise InvalidInputError(
            f"{type(node).__name__}({node.node_id!r})",
            "the node has no text and no image, audio or video to embed or rerank",
        )
    text = parts.get("text")
    image = Image(parts["image"]) if "image" in parts else None
    audio = Audio(parts["audio"]) if "audio" in parts else None
    video = Video(parts["video"]) if "video" in parts else None
    if len(parts) == 1:
        if isinstance(text, str):
            return Text(text)
        single = image or audio or video
        assert single is not None
        return single
    return Combined(text=text if isinstance(text, str) else None, image=image, audio=audio, video=video)


def query_item(query_bundle: QueryBundle) -> ItemInput:
    """A ``QueryBundle`` as a query item: its ``query_str`` (text), its ``image_path`` (an image), or both.

    A bundle with both a non-empty ``query_str`` and an ``image_path`` is a combined query (text and
    image). ``image_path`` may be a path or URL; the media policy decides whether it is read.

    Raises:
        InvalidInputError: the bundle has neither text nor an image.
    """
    text = query_bundle.query_str if query_bundle.query_str and query_bundle.query_str.strip() else None
    if query_bundle.image_path:
        image = image_item(query_bundle.image_path, name="QueryBundle.image_path")
        return Combined(text=text, image=image) if text is not None else image
    if text is None:
        raise InvalidInputError(
            "QueryBundle", "the query has neither text (query_str) nor an image (image_path)"
        )
    return Text(text)


def resolve_model(
    model: Any, component: Any, protocol: type[Any], *, role: str, options: Mapping[str, Any]
) -> tuple[str, Any]:
    """Tell a model name from a ready-made embedder or reranker, given positionally or by keyword.

    ``model`` may be a name (a hub id or directory: ``str`` or path) or a ready object; a ready
    object may also come as ``component`` (the ``embedder=`` / ``reranker=`` keyword). Loading
    options (``options``: ``device``, ``media_policy``...) apply to a model loaded by name only.

    Returns:
        ``(name, None)`` for a name; ``(component.model_id, component)`` for a ready object.

    Raises:
        InvalidInputError: neither or both were given, the object does not implement
            ``protocol``, or loading options were given with a ready object.
    """
    if component is None and model is not None and not isinstance(model, (str, os.PathLike)):
        model, component = None, model
    if (model is None) == (component is None):
        raise InvalidInputError(
            role, f"give either a model name (a hub id or directory) or a ready {role}, not both"
        )
    if component is None:
        return os.fspath(model), None
    if not isinstance(component, protocol):
        raise InvalidInputError(
            describe(component),
            f"give a model name (a hub id or directory) or a ready {role} implementing omniretrieve's "
            f"{protocol.__name__} protocol",
        )
    extra = sorted(name for name, value in options.items() if value is not None)
    if extra:
        raise InvalidInputError(
            f"{extra}", f"these options apply when loading a model by name; configure the {role} instead"
        )
    return str(component.model_id), component


# -- filters ---------------------------------------------------------------------------------

_OPERATORS: dict[FilterOperator, str] = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.CONTAINS: "$contains",
}
"""LlamaIndex filter operators with a direct equivalent in omniretrieve's (Chroma's) filter language."""


def metadata_filters_to_where(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """Translate LlamaIndex ``MetadataFilters`` into omniretrieve's ``where`` filter.

    ``==``, ``!=``, ``>``, ``>=``, ``<``, ``<=``, ``in``, ``nin`` and ``contains`` map to ``$eq``,
    ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``, ``$nin`` and ``$contains``; ``any`` and
    ``all`` (a list metadata value holding any / all of the given values) to an ``$or`` / ``$and``
    of ``$contains``. Conditions ``and`` and ``or`` nest as ``$and`` / ``$or``.

    Raises:
        InvalidInputError: an operator or condition with no equivalent (``text_match``,
            ``text_match_insensitive``, ``is_empty``, the ``not`` condition): the message names it.
    """
    if filters is None or not filters.filters:
        return None
    condition = filters.condition or FilterCondition.AND
    if condition not in (FilterCondition.AND, FilterCondition.OR):
        raise InvalidInputError(
            f"MetadataFilters(condition={condition.value!r})",
            "omniretrieve's filters have no 'not'; use the != or nin operators instead",
        )
    clauses = [
        clause
        for clause in (
            metadata_filters_to_where(f) if isinstance(f, MetadataFilters) else _clause(f)
            for f in filters.filters
        )
        if clause
    ]
    return join_where(clauses, f"${condition.value}")


def join_where(clauses: Sequence[dict[str, Any] | None], operator: str = "$and") -> dict[str, Any] | None:
    """Join ``where`` filters with ``$and`` (or ``$or``); ``None`` and empty filters are left out."""
    present = [c for c in clauses if c]
    if not present:
        return None
    return present[0] if len(present) == 1 else {operator: present}


def _clause(f: MetadataFilter) -> dict[str, Any]:
    operator = FilterOperator(f.operator)
    if operator in _OPERATORS:
        value = list(f.value) if isinstance(f.value, (list, tuple)) else f.value
        return {f.key: {_OPERATORS[operator]: value}}
    if operator in (FilterOperator.ANY, FilterOperator.ALL):
        values = f.value if isinstance(f.value, (list, tuple)) else [f.value]
        if not values:
            raise InvalidInputError(
                f"MetadataFilter({f.key!r}, {operator.value!r})", "takes a non-empty list"
            )
        join = "$or" if operator == FilterOperator.ANY else "$and"
        parts = [{f.key: {"$contains": v}} for v in values]
        return parts[0] if len(parts) == 1 else {join: parts}
    raise InvalidInputError(
        f"MetadataFilter({f.key!r}, {operator.value!r})",
        f"the operator {operator.value!r} has no equivalent in omniretrieve's filters; use one of "
        f"{[o.value for o in (*_OPERATORS, FilterOperator.ANY, FilterOperator.ALL)]}",
    )


# -- nodes <-> stored documents --------------------------------------------------------------


def node_metadata(node: BaseNode) -> dict[str, Any]:
    """A node as the metadata of its stored document, as LlamaIndex's vector stores keep nodes.

    The caller's metadata, plus the node itself as JSON without its text (``_node_content``, the
    text is the document's own), its class (``_node_type``) and its source document's id
    (``ref_doc_id``, ``doc_id``, ``document_id``: ``"None"`` when it has none), so that
    :func:`document_to_node` gives the same node back and ``ref_doc_id`` can be filtered on. Keys
    with ``None`` values are left out (Chroma stores no ``None``).
    """
    metadata = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
    return {key: value for key, value in metadata.items() if value is not None}


def file_source(metadata: Mapping[str, Any]) -> str | None:
    """The ``file://`` URI of a LlamaIndex reader's ``file_path`` metadata, if there is one."""
    path = metadata.get("file_path")
    if not isinstance(path, str) or not path:
        return None
    try:
        return Path(path).resolve().as_uri()
    except (OSError, ValueError):
        return None


def document_to_node(document: Document) -> BaseNode:
    """A stored document as a LlamaIndex node, with its id and the caller's metadata.

    A document stored from a LlamaIndex node (it carries the node's JSON, see :func:`node_metadata`)
    comes back as that node, its text restored; a medium LlamaIndex does not serialise (the
    ``data`` of a ``MediaResource``: an image given in memory) is referenced by the store's copy
    when it kept one (``copy_media=True``). Any other document is built from its parts:
    text -> ``TextNode``; image (with or without text) -> ``ImageNode`` with ``image_path`` (a
    local file) or ``image_url`` and the image's MIME type; anything with audio or video ->
    ``Node`` with ``audio_resource`` / ``video_resource`` (and text and image resources).
    """
    metadata = dict(document.metadata)
    if isinstance(metadata.get(NODE_CONTENT_KEY), str):
        try:
            return _with_stored_media(metadata_dict_to_node(metadata, text=document.text), document)
        except ValueError as exc:  # not a node's JSON after all: fall back to the parts
            logger.warning(
                "document %r: %s is not a LlamaIndex node (%s)", document.id, NODE_CONTENT_KEY, exc
            )
    parts = set(document.parts)
    if parts <= {"text"}:
        return TextNode(id_=document.id, text=document.text or "", metadata=metadata)
    if parts <= {"text", "image"}:
        path, url = _path_or_url(document.image)
        return ImageNode(
            id_=document.id,
            text=document.text or "",
            image_path=path,
            image_url=url,
            image_mimetype=_mimetype(document.image, metadata, "image"),
            metadata=metadata,
        )
    resources: dict[str, Any] = {"metadata": metadata}
    if document.text is not None:
        resources["text_resource"] = MediaResource(text=document.text)
    for modality in ("image", "audio", "video"):
        reference = getattr(document, modality)
        if reference is not None:
            path, url = _path_or_url(reference)
            fields: dict[str, Any] = {
                "path": path,
                "url": url,
                "mimetype": _mimetype(reference, metadata, modality),
            }
            resources[f"{modality}_resource"] = MediaResource(**fields)
    return Node(id_=document.id, **resources)


def _with_stored_media(node: BaseNode, document: Document) -> BaseNode:
    """Point a node's media that have no source left (in-memory data is not serialised) at the store's copies."""
    if isinstance(node, ImageNode):
        if document.image is not None and not (node.image or node.image_path or node.image_url):
            node.image_path, node.image_url = _path_or_url(document.image)
        return node
    if isinstance(node, Node):
        for modality in ("image", "audio", "video"):
            reference = getattr(document, modality)
            resource: MediaResource | None = getattr(node, f"{modality}_resource")
            if reference is None or (
                resource is not None and (resource.data or resource.path or resource.url)
            ):
                continue
            path, url = _path_or_url(reference)
            fields: dict[str, Any] = {
                "path": path,
                "url": url,
                "mimetype": resource.mimetype if resource is not None else None,
            }
            setattr(node, f"{modality}_resource", MediaResource(**fields))
    return node


def _path_or_url(reference: str | None) -> tuple[str | None, str | None]:
    if reference is None:
        return None, None
    if reference.lower().startswith(("http://", "https://")):
        return None, reference
    return reference, None


def _mimetype(reference: str | None, metadata: dict[str, Any], modality: str) -> str | None:
    """The MIME type of a media reference: ``file_type`` metadata (set by LlamaIndex readers), else a guess."""
    declared = metadata.get("file_type")
    if isinstance(declared, str) and declared.startswith(f"{modality}/"):
        return declared
    if reference is None:
        return None
    guessed, _ = mimetypes.guess_type(reference.split("?")[0])
    return guessed if guessed and guessed.startswith(f"{modality}/") else None


__all__ = [
    "NODE_CONTENT_KEY",
    "REF_DOC_ID_KEY",
    "document_to_node",
    "file_source",
    "image_item",
    "join_where",
    "metadata_filters_to_where",
    "node_image_source",
    "node_item",
    "node_metadata",
    "node_parts",
    "query_item",
    "resolve_model",
]
