"""The result gallery: self-contained, escaped, and its images render in a real browser."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from browser import find_chromium, probe_images
from PIL import Image

from omniretrieve.errors import InvalidInputError
from omniretrieve.gallery import (
    GalleryColumn,
    GalleryEntry,
    GalleryQuery,
    image_data_uri,
    render_gallery,
    write_gallery,
)


def _picture(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Image.Image:
    image = Image.new("RGB", size, (240, 240, 240))
    image.paste(color, (8, 8, size[0] - 8, size[1] - 8))
    return image


def _queries() -> list[GalleryQuery]:
    red, blue = _picture((220, 30, 30)), _picture((30, 60, 220), (40, 80))
    frame = np.zeros((24, 32, 3), dtype=np.uint8)
    frame[:, :16] = (250, 140, 20)
    raw = [
        GalleryEntry("cap-1", "text", 0.91, source="corpus/cap-1.txt", text="a red circle <b>top</b> & left"),
        GalleryEntry("img-1", "image", 0.52, source="corpus/img-1.png", image=red, grade=2),
        GalleryEntry("vid-1", "video", 0.40, source="clips/v.mp4", image=frame),
        GalleryEntry("aud-1", "audio", 0.31, source="clips/a.wav"),
    ]
    calibrated = [raw[1], raw[0], GalleryEntry("img-2", "image", 0.2, image=blue, grade=0), raw[3]]
    return [
        GalleryQuery(
            "text -> mixed",
            [GalleryColumn("raw", raw), GalleryColumn("gap", calibrated, "nDCG@10 0.8")],
            text="red circle",
        ),
        GalleryQuery("image -> images", [GalleryColumn("raw", [])], image=blue, note="no results here"),
    ]


def test_page_is_self_contained_and_escaped(tmp_path: Path) -> None:
    page = render_gallery(_queries(), title="t <x>")
    # Everything inline: no external references of any kind.
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "http://" not in page and "https://" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "<script" not in page
    # Untrusted text is escaped.
    assert "&lt;b&gt;top&lt;/b&gt; &amp; left" in page and "<b>top</b>" not in page
    assert "<title>t &lt;x&gt;</title>" in page
    # Five thumbnails: red twice (raw and calibrated), a video frame, blue twice (entry and query).
    assert page.count('src="data:image/png;base64,') == 5
    assert "nDCG@10 0.8" in page and "no results" in page
    path = write_gallery(tmp_path / "sub" / "g.html", _queries())
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_thumbnails_are_shrunk_and_arrays_accepted() -> None:
    uri = image_data_uri(_picture((1, 2, 3), (400, 100)), max_side=50)
    decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert decoded.size[0] == 50 and decoded.size[1] in (12, 13)
    gray = image_data_uri(np.full((5, 7), 0.5, dtype=np.float32))
    assert gray.startswith("data:image/png;base64,")
    with pytest.raises(InvalidInputError):
        image_data_uri(np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(InvalidInputError):
        image_data_uri(_picture((0, 0, 0)), max_side=0)


def _require_chromium() -> None:
    if find_chromium() is None:
        pytest.fail("Chromium is not installed: apt-get install chromium (scripts/test.sh installs it)")


def test_gallery_images_render_in_chromium(tmp_path: Path) -> None:
    _require_chromium()
    page = write_gallery(tmp_path / "gallery.html", _queries(), title="render check")
    result = probe_images(page, tmp_path / "browser")
    assert result.title == "render check"
    assert len(result.images) == 5
    assert all(img.scheme == "data" for img in result.images)
    broken = [img for img in result.images if not img.loaded]
    assert not broken, broken
    # Thumbnails keep the aspect ratio of their sources (64x48 red, 40x80 blue, 32x24 frame).
    assert {(img.width, img.height) for img in result.images} == {(64, 48), (40, 80), (32, 24)}


def test_probe_detects_a_broken_image(tmp_path: Path) -> None:
    _require_chromium()
    good = render_gallery(_queries())
    # Corrupt exactly one thumbnail: keep the PNG header, cut the rest.
    first = good.index("data:image/png;base64,") + len("data:image/png;base64,")
    end = good.index('"', first)
    broken = good[:first] + good[first : first + 24] + good[end:]
    path = tmp_path / "broken.html"
    path.write_text(broken, encoding="utf-8")
    result = probe_images(path, tmp_path / "browser")
    assert len(result.images) == 5
    assert [img.loaded for img in result.images].count(False) == 1
    assert not result.images[0].loaded and result.images[0].width == 0
