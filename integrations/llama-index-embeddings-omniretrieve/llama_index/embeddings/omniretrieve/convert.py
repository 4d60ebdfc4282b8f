"""LlamaIndex objects -> omniretrieve input items (shared by the embedding, retriever and reranker).

Every translation keeps omniretrieve's safety rule: a string becomes media only when LlamaIndex
says it is one (an ``image_path``, ``image_url`` or image resource), and a media source is never
opened here: paths, URLs and bytes are wrapped in :class:`~omniretrieve.types.Image` (or ``Audio``,
``Video``) and read later by omniretrieve's ``MediaLoader`` under its policy. LlamaIndex's own
``resolve_image()``, which fetches URLs with no policy, is never called.
"""

from __future__ import annotations

import base64
import binascii
import os
from io import BytesIO
from typing import Any

from llama_index.core.schema import BaseNode, ImageNode, MediaResource, MetadataMode, Node, QueryBundle

from omniretrieve.errors import InvalidInputError
from omniretrieve.types import Audio, Combined, Image, ItemInput, Text, Video, describe


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


def given_component(
    component: Any, protocol: type[Any], *, role: str, device: Any, allow_urls: bool, media: Any
) -> tuple[str, bool]:
    """Check a ready-made embedder or reranker handed to an adapter instead of a model name.

    Loading options (``device``, ``allow_urls``, ``media``) apply to a model loaded by name only.

    Returns:
        The component's ``model_id`` and whether its media loader fetches URLs (the adapter's
        ``model_name``/``model`` and ``allow_urls`` settings).

    Raises:
        InvalidInputError: the component does not implement ``protocol``, or loading options were
            given with it.
    """
    if not isinstance(component, protocol):
        raise InvalidInputError(
            describe(component), f"{role} must implement omniretrieve's {protocol.__name__} protocol"
        )
    extra = [
        name
        for name, value in (("device", device), ("allow_urls", allow_urls or None), ("media", media))
        if value is not None
    ]
    if extra:
        raise InvalidInputError(
            f"{extra}", f"these options apply when loading a model by name; configure the {role} instead"
        )
    policy = getattr(getattr(component, "media", None), "policy", None)
    return str(component.model_id), bool(getattr(policy, "allow_urls", False))
