"""A self-contained HTML page of search results: thumbnails, scores, modality badges, lists side by side.

The page is one file with everything inline: thumbnails are PNG ``data:`` URIs, the style sheet is
in the page, there is no script, and a Content-Security-Policy forbids loading anything that is not
inline, so opening it never touches the network. Anything taken from documents or queries (texts,
file names) is HTML-escaped.

This module never reads files: callers hand it images already in memory (PIL images or uint8
arrays), loaded through :class:`omniretrieve.media.MediaLoader`.

Example::

    from omniretrieve.gallery import GalleryColumn, GalleryEntry, GalleryQuery, write_gallery

    query = GalleryQuery(
        title="text -> mixed corpus",
        text="a red circle in the top left",
        columns=[
            GalleryColumn("raw", [GalleryEntry("img-0001", "image", 0.83, image=pil_image)]),
            GalleryColumn("calibrated (gap)", [...], metric="nDCG@10 0.71"),
        ],
    )
    write_gallery("results.html", [query], title="omniretrieve demo")
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from omniretrieve.errors import InvalidInputError, require

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

Thumbnail = Union["PILImage", np.ndarray]
"""An image in memory: a PIL image, or a uint8 array ``(H, W)`` / ``(H, W, 3|4)``."""

THUMBNAIL_SIDE = 160
"""Longest side, in pixels, of the thumbnails written into a gallery."""

CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""The page's policy: inline styles and ``data:`` images only; no scripts, no requests."""

_BADGE_COLORS: dict[str, str] = {
    "text": "#2f6f3e",
    "image": "#1f5fa8",
    "audio": "#8a4fb0",
    "video": "#b4531f",
}


@dataclass
class GalleryEntry:
    """One result card.

    Attributes:
        id: The document id.
        modality: ``"text"``, ``"image"``, ``"audio"``, ``"video"`` or several joined by ``+``.
        score: The score shown on the card, or ``None``.
        source: Where the document came from (a path or URI), shown as its last component.
        text: Text shown on the card (a text document, or the caption of a combined one).
        image: A thumbnail (an image document, a video frame), or ``None``.
        grade: A relevance grade when judgments are known (shown as a marker), else ``None``.
        note: Extra short text (e.g. the rank before reranking).
    """

    id: str
    modality: str
    score: float | None = None
    source: str | None = None
    text: str | None = None
    image: Thumbnail | None = None
    grade: int | None = None
    note: str | None = None


@dataclass
class GalleryColumn:
    """One ranked list, e.g. the raw order, the calibrated order or the reranked order.

    Attributes:
        title: The column heading.
        entries: The results, best first.
        metric: A short line under the heading, e.g. ``"nDCG@10 0.71"``.
    """

    title: str
    entries: Sequence[GalleryEntry]
    metric: str | None = None


@dataclass
class GalleryQuery:
    """One query and its ranked lists, shown side by side.

    Attributes:
        title: A heading, e.g. ``"text -> images"``.
        text: The query text, if any.
        image: The query image (or a frame of a query video), if any.
        columns: The lists to show next to each other.
        note: A short line under the query (e.g. what a metric means).
    """

    title: str
    columns: Sequence[GalleryColumn]
    text: str | None = None
    image: Thumbnail | None = None
    note: str | None = None


def image_data_uri(image: Thumbnail, max_side: int = THUMBNAIL_SIDE) -> str:
    """Encode an image as a PNG ``data:`` URI, shrunk so its longest side is at most ``max_side``.

    Args:
        image: A PIL image or a uint8 array ``(H, W)`` / ``(H, W, 3|4)``.
        max_side: Longest side of the thumbnail in pixels.

    Raises:
        InvalidInputError: The array has no image shape, or ``max_side`` is below 1.
        MissingDependencyError: Pillow is not installed (``omniretrieve[image]``).
    """
    if max_side < 1:
        raise InvalidInputError("max_side", f"{max_side} is below 1; use a positive pixel size")
    pil = require("PIL.Image", extra=None, purpose="Writing gallery thumbnails", package="pillow")
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))) or 0 in array.shape:
            raise InvalidInputError(
                f"<array shape={image.shape}>", "a thumbnail array must be (H, W) or (H, W, 3|4)"
            )
        if array.dtype != np.uint8:
            array = np.clip(np.nan_to_num(array.astype(np.float64)) * 255.0, 0, 255).round().astype(np.uint8)
        picture = pil.fromarray(np.ascontiguousarray(array))
    elif isinstance(image, pil.Image):
        picture = image
    else:
        raise InvalidInputError(
            f"<{type(image).__name__}>", "a thumbnail must be a PIL image or a uint8 array"
        )
    if picture.mode not in ("RGB", "RGBA", "L"):
        picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
    picture = picture.copy()
    picture.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _short_source(source: str) -> str:
    tail = source.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    return tail or source


def _format_score(score: float | None) -> str:
    if score is None:
        return ""
    if math.isnan(score):
        return "nan"
    return f"{score:.4f}"


def _snippet(text: str, limit: int = 280) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _badge(modality: str) -> str:
    parts = [m for m in modality.split("+") if m] or [modality]
    return "".join(
        f'<span class="badge" style="background:{_BADGE_COLORS.get(m, "#555")}">{_e(m)}</span>' for m in parts
    )


def _render_entry(rank: int, entry: GalleryEntry, max_side: int) -> str:
    bits = [f'<li class="card" data-id="{_e(entry.id)}" data-modality="{_e(entry.modality)}">']
    grade = ""
    if entry.grade is not None:
        cls = "rel2" if entry.grade >= 2 else ("rel1" if entry.grade == 1 else "rel0")
        label = (
            "relevant" if entry.grade >= 2 else ("partly relevant" if entry.grade == 1 else "not relevant")
        )
        grade = f'<span class="grade {cls}" title="{label} (grade {entry.grade})">{entry.grade}</span>'
    bits.append(
        f'<div class="head"><span class="rank">#{rank}</span>{_badge(entry.modality)}'
        f'<span class="score">{_e(_format_score(entry.score))}</span>{grade}</div>'
    )
    if entry.image is not None:
        bits.append(
            f'<div class="media"><img class="thumb" alt="{_e(entry.id)}" src="{image_data_uri(entry.image, max_side)}">'
        )
    else:
        bits.append('<div class="media">')
    if entry.text:
        bits.append(f'<p class="text">{_e(_snippet(entry.text))}</p>')
    if entry.image is None and not entry.text:
        bits.append(f'<p class="placeholder">{_e(entry.modality)} document</p>')
    foot = _e(entry.id)
    if entry.source:
        foot += f' &middot; <span title="{_e(entry.source)}">{_e(_short_source(entry.source))}</span>'
    if entry.note:
        foot += f" &middot; {_e(entry.note)}"
    bits.append(f'</div><div class="foot">{foot}</div></li>')
    return "".join(bits)


def _render_query(query: GalleryQuery, max_side: int) -> str:
    out = ['<section class="query">', f"<h2>{_e(query.title)}</h2>", '<div class="qbody">']
    if query.image is not None:
        out.append(f'<img class="qimg" alt="query image" src="{image_data_uri(query.image, max_side)}">')
    if query.text:
        out.append(f'<p class="qtext">&ldquo;{_e(query.text)}&rdquo;</p>')
    out.append("</div>")
    if query.note:
        out.append(f'<p class="note">{_e(query.note)}</p>')
    out.append('<div class="columns">')
    for column in query.columns:
        out.append('<div class="column">')
        out.append(f"<h3>{_e(column.title)}</h3>")
        if column.metric:
            out.append(f'<p class="metric">{_e(column.metric)}</p>')
        if column.entries:
            out.append('<ol class="results">')
            out.extend(_render_entry(i, e, max_side) for i, e in enumerate(column.entries, start=1))
            out.append("</ol>")
        else:
            out.append('<p class="placeholder">no results</p>')
        out.append("</div>")
    out.append("</div></section>")
    return "".join(out)


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d1d1f;background:#f6f6f8}
h1{margin:0 0 4px}h2{margin:0 0 8px;font-size:1.15em}h3{margin:0;font-size:1em}
.subtitle{color:#555;margin:0 0 20px}
.query{background:#fff;border-radius:10px;padding:16px;margin:0 0 24px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
.qbody{display:flex;align-items:center;gap:16px;margin-bottom:8px}
.qimg{border:1px solid #ccc;border-radius:6px;image-rendering:pixelated;width:96px;height:auto}
.qtext{font-size:1.1em;margin:0}
.note{color:#555;font-size:.9em;margin:4px 0 12px}
.columns{display:flex;gap:16px;align-items:flex-start;overflow-x:auto}
.column{flex:1 1 0;min-width:220px}
.metric{margin:2px 0 8px;color:#333;font-variant-numeric:tabular-nums}
.results{list-style:none;padding:0;margin:0}
.card{border:1px solid #e1e1e6;border-radius:8px;padding:8px;margin:0 0 8px;background:#fcfcfd}
.head{display:flex;align-items:center;gap:6px;font-size:.85em}
.rank{font-weight:600;color:#444}
.score{margin-left:auto;font-variant-numeric:tabular-nums;color:#333}
.badge{color:#fff;border-radius:4px;padding:1px 6px;font-size:.8em}
.grade{border-radius:50%;width:1.4em;height:1.4em;display:inline-flex;align-items:center;justify-content:center;font-size:.8em;color:#fff}
.rel2{background:#1e8e3e}.rel1{background:#e3a008}.rel0{background:#999}
.media{display:flex;align-items:center;gap:10px}
.thumb{display:block;margin:6px 0;width:72px;height:auto;border-radius:4px;image-rendering:pixelated;flex:none}
.text{margin:6px 0;font-size:.92em}
.placeholder{margin:6px 0;color:#777;font-style:italic}
.foot{color:#666;font-size:.78em;word-break:break-all}
"""


def render_gallery(
    queries: Sequence[GalleryQuery],
    *,
    title: str = "omniretrieve results",
    subtitle: str | None = None,
    max_side: int = THUMBNAIL_SIDE,
) -> str:
    """Render queries and their ranked lists as one self-contained HTML page.

    Args:
        queries: The queries to show, in order.
        title: The page title and top heading.
        subtitle: A short line under the heading.
        max_side: Longest side of the inline thumbnails in pixels.

    Returns:
        The HTML text.
    """
    body = [f"<h1>{_e(title)}</h1>"]
    if subtitle:
        body.append(f'<p class="subtitle">{_e(subtitle)}</p>')
    body.extend(_render_query(q, max_side) for q in queries)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def write_gallery(
    path: str | os.PathLike[str],
    queries: Sequence[GalleryQuery],
    *,
    title: str = "omniretrieve results",
    subtitle: str | None = None,
    max_side: int = THUMBNAIL_SIDE,
) -> Path:
    """Write :func:`render_gallery`'s page to ``path`` (parent folders are created).

    Returns:
        The path written, as a :class:`~pathlib.Path`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        render_gallery(queries, title=title, subtitle=subtitle, max_side=max_side), encoding="utf-8"
    )
    return target


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "THUMBNAIL_SIDE",
    "GalleryColumn",
    "GalleryEntry",
    "GalleryQuery",
    "Thumbnail",
    "image_data_uri",
    "render_gallery",
    "write_gallery",
]
