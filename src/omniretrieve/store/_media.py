"""Reading media for the store, and content-addressed copies of it (``copy_media=True``).

Every media byte the store reads (to hash an item, to embed it, to copy it) goes through one
:class:`~omniretrieve.media.MediaLoader`, under its policy: the embedder's, else a default one.
A copy is named by the SHA-256 of its bytes (``MEDIA_DIR/ab/abcd....png``), so the same medium is
kept once, and written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omniretrieve.errors import InvalidInputError, require
from omniretrieve.types import Audio, Combined, Image, NormalizedItem, Video

if TYPE_CHECKING:
    from omniretrieve.media import MediaLoader

logger = logging.getLogger(__name__)

MEDIA_DIR = "media"
"""Folder beside an embedded store's data where ``copy_media=True`` keeps content-addressed copies."""

_EXTENSION_RE = re.compile(r"\.[a-z0-9]{1,8}")


def media_folder(media_dir: str | os.PathLike[str] | None, directory: Path | None) -> Path | None:
    """Where copies go: ``media_dir`` when given, else ``DIRECTORY/media`` for a store with a directory."""
    if media_dir is not None:
        return Path(media_dir).absolute()
    return directory / MEDIA_DIR if directory is not None else None


class MediaReader:
    """Reads a media source (path, URL, data URI, bytes) to bytes under a loader's policy.

    Args:
        loader: The loader to read with; ``None`` makes a default one on first use.
    """

    def __init__(self, loader: MediaLoader | None) -> None:
        self._loader = loader

    def __call__(self, source: Any) -> bytes:
        if self._loader is None:
            from omniretrieve.media import MediaLoader

            self._loader = MediaLoader()
        return self._loader.read_bytes(source)


class MediaCopies:
    """Content-addressed copies of media parts in ``media_dir``.

    Args:
        media_dir: The folder copies go into (``None``: this store keeps no copies).
        read: Reads a media source to bytes.
    """

    def __init__(self, media_dir: Path | None, read: MediaReader) -> None:
        self.media_dir = media_dir
        self._read = read

    def copy_parts(self, item: NormalizedItem, given: NormalizedItem | None = None) -> dict[str, str | None]:
        """Copy every media part of ``item``: modality -> the copy's path (``None`` when not kept).

        Args:
            item: The item as it is embedded (media may already be read into bytes).
            given: The item as the caller gave it, whose file names give the copies their extensions.

        Raises:
            MediaError: a source could not be read.
            InvalidInputError: the store has no media folder.
        """
        given = given if given is not None else item
        originals = {p.modality: p for p in _parts(given)}
        refs: dict[str, str | None] = {}
        for part in _parts(item):
            if isinstance(part, Image | Audio | Video):
                source = getattr(originals.get(part.modality), "source", None)
                name = str(source) if isinstance(source, str | os.PathLike) else None
                refs[part.modality] = self.copy(part, name=name)
        return refs

    def copy(self, part: Image | Audio | Video, *, name: str | None = None) -> str | None:
        """Copy one media part into the media folder; return the copy's path (see :meth:`Store.copy_medium`).

        Raises:
            MediaError: the source could not be read.
            InvalidInputError: the store has no media folder.
        """
        if self.media_dir is None:
            raise InvalidInputError("copy_media", "this store has no media folder (give media_dir=)")
        data, ext = self._bytes(part, name)
        if data is None:
            logger.info("in-memory %s is not kept by copy_media", part.modality)
            return None
        digest = hashlib.sha256(data).hexdigest()
        target = self.media_dir / digest[:2] / f"{digest}{ext}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return str(target)

    def _bytes(self, part: Image | Audio | Video, name: str | None) -> tuple[bytes | None, str]:
        """The bytes to keep for a part and the copy's extension; ``None`` for what is not kept."""
        source = part.source
        if isinstance(source, np.ndarray):
            return _array_bytes(part, source)
        if not isinstance(source, str | bytes | os.PathLike):  # a PIL image
            return _png(source), ".png"
        data = self._read(source)
        if name is None and isinstance(source, str | os.PathLike):
            name = str(source)
        ext = ""
        if name is not None and not name.startswith("data:"):
            suffix = Path(name.split("?")[0].split("#")[0]).suffix.lower()
            if _EXTENSION_RE.fullmatch(suffix):
                ext = suffix
        if not ext and isinstance(part, Image):
            ext = _image_extension(data)
        return data, ext


def _parts(item: NormalizedItem) -> list[Any]:
    return list(item.parts()) if isinstance(item, Combined) else [item]


def _array_bytes(part: Image | Audio | Video, source: np.ndarray) -> tuple[bytes | None, str]:
    """In-memory pixels as PNG, samples as WAV; in-memory video frames are not kept."""
    if isinstance(part, Image):
        pil = require("PIL.Image", extra=None, purpose="Copying images", package="pillow")
        arr = source if source.dtype == np.uint8 else (np.clip(source, 0, 1) * 255).round().astype(np.uint8)
        return _png(pil.fromarray(arr)), ".png"
    if isinstance(part, Audio) and part.sampling_rate:
        sf = require("soundfile", extra="audio", purpose="Copying audio")
        buf = io.BytesIO()
        sf.write(buf, source, int(part.sampling_rate), format="WAV")
        return buf.getvalue(), ".wav"
    return None, ""


def _image_extension(data: bytes) -> str:
    try:
        from PIL import Image as PILImage

        with PILImage.open(io.BytesIO(data)) as img:
            fmt = (img.format or "").lower()
    except Exception:  # not an image Pillow knows: keep the bytes, without an extension
        return ""
    return {"jpeg": ".jpg", "tiff": ".tif"}.get(fmt, f".{fmt}" if re.fullmatch(r"[a-z0-9]{1,8}", fmt) else "")


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


__all__ = ["MEDIA_DIR", "MediaCopies", "MediaReader", "media_folder"]
