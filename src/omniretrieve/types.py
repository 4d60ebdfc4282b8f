r"""Every input shape omniretrieve accepts, as named, typed aliases and small wrappers.

Read this one file to learn the whole input surface (the idea follows
sentence-transformers' ``base/modality_types.py``).

The rule that keeps untrusted strings safe: **a plain ``str`` is always text**. A string only becomes
media when the caller says so, by wrapping it (``Image("cat.png")``, ``Audio(url)``) or by putting
it under a media key of a dict (``{"text": "a cat", "image": "cat.png"}``). A URL-shaped query
string is therefore embedded as text and never fetched.

Examples::

    "a red circle"                              # text
    Text("https://example.com/x.png")           # text, explicitly
    Image("photos/cat.jpg")                     # image from a path
    Image(pil_image)                            # image already in memory
    Image(b"\x89PNG...")                         # image bytes
    Image("data:image/png;base64,...")          # data URI
    Image("https://example.com/x.png")          # URL: fetched only if the media policy allows URLs
    Audio(np_array, sampling_rate=16_000)       # mono or multi-channel samples
    Audio("clip.wav")                           # audio file
    Video("clip.mp4")                           # video file, decoded with PyAV
    Video(frames)                               # uint8 array (frames, height, width, channels)
    Combined(text="a red circle", image=Image("circle.png"))   # one item of several parts
    {"text": "a red circle", "image": "circle.png"}            # the same, dict form
    pil_image                                   # a PIL image is unambiguous: image
"""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, Union

import numpy as np

from omniretrieve.errors import InvalidInputError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

Modality: TypeAlias = Literal["text", "image", "audio", "video"]
"""One modality. A combined item has several, see :attr:`Combined.modalities`."""

MODALITIES: tuple[Modality, ...] = ("text", "image", "audio", "video")

Role: TypeAlias = Literal["query", "document"]
"""Which side of retrieval an item is on; models with query/document prompts use it."""

PathLike: TypeAlias = Union[str, "os.PathLike[str]"]

ImageSource: TypeAlias = Union["PILImage", str, "os.PathLike[str]", bytes, np.ndarray]
"""A PIL image; a path; an ``http(s)://`` URL or ``data:`` URI (strings); encoded bytes; or an
``(H, W)`` / ``(H, W, C)`` array (uint8, or float in [0, 1])."""

AudioSource: TypeAlias = Union[str, "os.PathLike[str]", bytes, np.ndarray]
"""A path; a URL (string); encoded bytes (wav, flac, ogg, ...); or an array of samples
``(N,)`` or ``(N, channels)`` / ``(channels, N)``, which needs :attr:`Audio.sampling_rate`."""

VideoSource: TypeAlias = Union[str, "os.PathLike[str]", bytes, np.ndarray]
"""A path; a URL (string); encoded bytes; or a uint8 frame array ``(frames, H, W, C)``."""


@dataclass(frozen=True, eq=False)
class Text:
    """Text, stated explicitly. A plain ``str`` means the same."""

    text: str

    @property
    def modality(self) -> Modality:
        return "text"


@dataclass(frozen=True, eq=False)
class Image:
    """An image from any :data:`ImageSource`."""

    source: ImageSource

    @property
    def modality(self) -> Modality:
        return "image"


@dataclass(frozen=True, eq=False)
class Audio:
    """Audio from any :data:`AudioSource`; ``sampling_rate`` is required for raw arrays."""

    source: AudioSource
    sampling_rate: int | None = None

    @property
    def modality(self) -> Modality:
        return "audio"


@dataclass(frozen=True, eq=False)
class Video:
    """A video from any :data:`VideoSource`."""

    source: VideoSource

    @property
    def modality(self) -> Modality:
        return "video"


@dataclass(frozen=True, eq=False)
class Combined:
    """One item made of several parts, e.g. a caption and its image, or a slide and its notes."""

    text: str | None = None
    image: Image | None = None
    audio: Audio | None = None
    video: Video | None = None

    def __post_init__(self) -> None:
        if not self.modalities:
            raise InvalidInputError("Combined()", "a combined item needs at least one part")

    @property
    def modalities(self) -> tuple[Modality, ...]:
        """The modalities of the parts present, in canonical order."""
        return tuple(m for m in MODALITIES if getattr(self, m) is not None)

    def parts(self) -> list[Text | Image | Audio | Video]:
        """The parts as single-modality items, in canonical order."""
        out: list[Text | Image | Audio | Video] = []
        if self.text is not None:
            out.append(Text(self.text))
        for m in ("image", "audio", "video"):
            part = getattr(self, m)
            if part is not None:
                out.append(part)
        return out


MediaItem: TypeAlias = Union[Image, Audio, Video]
SingleItem: TypeAlias = Union[Text, Image, Audio, Video]
NormalizedItem: TypeAlias = Union[Text, Image, Audio, Video, Combined]

ItemInput: TypeAlias = Union[str, Text, Image, Audio, Video, Combined, "PILImage", Mapping[str, Any]]
"""Anything that :func:`as_item` accepts: what ``embed``, ``search`` and ``rerank`` take."""


def is_pil_image(value: object) -> bool:
    """Whether ``value`` is a ``PIL.Image.Image``, without importing Pillow to find out.

    An object can only be a PIL image once ``PIL.Image`` has been imported, so while it is not
    loaded the answer is ``False`` for free. The one such check for the whole package.
    """
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(value, pil.Image)


_ORIGINS: weakref.WeakKeyDictionary[Image | Audio | Video, str] = weakref.WeakKeyDictionary()
"""Media parts read into memory from a path or URL -> that path or URL, for messages."""


def read_into(part: Image | Audio | Video, data: bytes) -> Image | Audio | Video:
    """A copy of a media part holding ``data`` (its source read into bytes) in place of its path or URL.

    Messages about the copy still name the path or URL it was read from (:func:`describe`).
    """
    copy: Image | Audio | Video = (
        Audio(data, sampling_rate=part.sampling_rate) if isinstance(part, Audio) else type(part)(data)
    )
    source = part.source
    _ORIGINS[copy] = _ORIGINS.get(part) or (
        os.fspath(source) if isinstance(source, str | os.PathLike) else describe(source)  # type: ignore[arg-type]
    )
    return copy


def describe(value: object, limit: int = 80) -> str:
    """A short, safe description of an input, for error messages.

    A media part names its path or URL (truncated), also once its bytes were read into memory.
    """
    if isinstance(value, Text):
        return f"Text({describe(value.text, limit)})"
    if isinstance(value, (Image, Audio, Video)):
        origin = _ORIGINS.get(value)
        shown = describe(origin, limit) if origin is not None else describe(value.source, limit)
        return f"{type(value).__name__}({shown})"
    if isinstance(value, Combined):
        return f"Combined({', '.join(value.modalities)})"
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 3] + "..."
        return repr(text)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, np.ndarray):
        return f"<array shape={value.shape} dtype={value.dtype}>"
    if is_pil_image(value):
        return f"<PIL image {getattr(value, 'mode', '?')} {getattr(value, 'size', '?')}>"
    if isinstance(value, os.PathLike):
        return repr(os.fspath(value))
    return f"<{type(value).__name__}>"


def _wrap_media(key: str, value: Any) -> Image | Audio | Video:
    if key == "image":
        return value if isinstance(value, Image) else Image(value)
    if key == "audio":
        if isinstance(value, Audio):
            return value
        if isinstance(value, Mapping) and "array" in value:
            return Audio(np.asarray(value["array"]), sampling_rate=value.get("sampling_rate"))
        return Audio(value)
    return value if isinstance(value, Video) else Video(value)


def _check_text(item: Text) -> Text:
    """``item`` unless its text is empty or whitespace only: such a text has no content to match.

    Raises:
        InvalidInputError: the text is blank (an empty file, a stray newline).
    """
    if not item.text.strip():
        raise InvalidInputError(
            describe(item.text), "the text is empty or only whitespace: there is nothing to embed; skip it"
        )
    return item


def as_item(value: ItemInput) -> NormalizedItem:
    """Normalise any accepted input into a :class:`Text`, media wrapper or :class:`Combined`.

    Raises:
        InvalidInputError: the value is of no accepted shape (for example a bare array, whose
            modality cannot be told; wrap it in ``Image``, ``Audio`` or ``Video``).
    """
    if isinstance(value, Text):
        return _check_text(value)
    if isinstance(value, (Image, Audio, Video, Combined)):
        return value
    if isinstance(value, str):
        return _check_text(Text(value))
    if is_pil_image(value):
        return Image(value)  # type: ignore[arg-type]
    if isinstance(value, Mapping):
        unknown = set(value) - set(MODALITIES)
        if unknown:
            raise InvalidInputError(
                describe(dict(value)),
                f"unknown keys {sorted(unknown)}; a dict item takes the keys {list(MODALITIES)}",
            )
        text = value.get("text")
        if text is not None and not isinstance(text, str):
            raise InvalidInputError(describe(text), "the 'text' part of a dict item must be a str")
        parts = {k: _wrap_media(k, v) for k, v in value.items() if k != "text" and v is not None}
        if text is None and not parts:
            shown = "{}" if not value else f"a dict with only None values (keys {sorted(value)})"
            raise InvalidInputError(shown, "an empty dict: give text, image, audio or video")
        if text is not None and not parts:
            return _check_text(Text(text))
        if text is None and len(parts) == 1:
            return next(iter(parts.values()))
        image, audio, video = parts.get("image"), parts.get("audio"), parts.get("video")
        return Combined(
            text=text,
            image=image if isinstance(image, Image) else None,
            audio=audio if isinstance(audio, Audio) else None,
            video=video if isinstance(video, Video) else None,
        )
    if isinstance(value, np.ndarray):
        raise InvalidInputError(
            describe(value),
            "a bare array's modality is ambiguous: wrap it in Image(...), Audio(..., sampling_rate=...) or Video(...)",
        )
    raise InvalidInputError(
        describe(value),
        "not an accepted input: pass a str (text), a PIL image, Text/Image/Audio/Video/Combined, "
        "or a dict with keys text/image/audio/video",
    )


def modality_of(item: NormalizedItem) -> Modality | tuple[Modality, ...]:
    """The modality of a normalised item: a single name, or a tuple for a :class:`Combined`.

    A :class:`Combined` with a single part reports that part's modality.
    """
    if isinstance(item, Combined):
        mods = item.modalities
        return mods[0] if len(mods) == 1 else mods
    return item.modality


__all__ = [
    "MODALITIES",
    "Audio",
    "AudioSource",
    "Combined",
    "Image",
    "ImageSource",
    "ItemInput",
    "MediaItem",
    "Modality",
    "NormalizedItem",
    "PathLike",
    "Role",
    "SingleItem",
    "Text",
    "Video",
    "VideoSource",
    "as_item",
    "describe",
    "is_pil_image",
    "modality_of",
    "read_into",
]
