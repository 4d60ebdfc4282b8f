from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImageModule

from omniretrieve.documents import (
    Document,
    SearchHit,
    content_sha256,
    kind_of,
    validate_metadata,
)
from omniretrieve.errors import InvalidInputError, MediaNotFoundError
from omniretrieve.types import Audio, Combined, Image, Text, Video


def _png(path: Path, color: tuple[int, int, int] = (200, 10, 10)) -> Path:
    PILImageModule.new("RGB", (8, 8), color).save(path)
    return path


def test_text_document_id_is_content_hash() -> None:
    doc = Document.from_item("a red circle", metadata={"lang": "en"})
    assert doc.id == doc.sha256 == hashlib.sha256(b"text\0a red circle").hexdigest()
    assert doc.parts == ("text",) and doc.kind == "text" and doc.text == "a red circle"
    assert doc.metadata == {"lang": "en"} and doc.source is None
    assert Document.from_item(Text("a red circle")).id == doc.id
    assert Document.from_item({"text": "a red circle"}).id == doc.id
    assert Document.from_item("a red circle.").id != doc.id


def test_explicit_id_keeps_content_hash() -> None:
    doc = Document.from_item("hello", id="doc-1")
    assert doc.id == "doc-1" and doc.sha256 == content_sha256("hello")
    with pytest.raises(InvalidInputError):
        Document.from_item("hello", id="")


def test_image_file_hash_is_its_bytes_and_source_is_file_uri(tmp_path: Path) -> None:
    path = _png(tmp_path / "a.png")
    doc = Document.from_item(Image(path))
    assert doc.kind == "image" and doc.parts == ("image",)
    assert doc.image == str(path.absolute())
    assert doc.source == path.resolve().as_uri()
    # the same bytes under another name, or as bytes: same content, same id
    copy = tmp_path / "b.png"
    copy.write_bytes(path.read_bytes())
    assert Document.from_item(Image(str(copy))).id == doc.id
    by_bytes = Document.from_item(Image(path.read_bytes()))
    assert by_bytes.id == doc.id and by_bytes.image is None and by_bytes.missing_media == ("image",)
    other = Document.from_item(Image(_png(tmp_path / "c.png", (0, 0, 255))))
    assert other.id != doc.id


def test_in_memory_media_hash_their_content() -> None:
    img = PILImageModule.new("RGB", (4, 4), (1, 2, 3))
    assert Document.from_item(img).id == Document.from_item(img.copy()).id
    assert Document.from_item(img).id != Document.from_item(PILImageModule.new("RGB", (4, 4), (1, 2, 4))).id
    samples = np.zeros(100, dtype=np.float32)
    a = Document.from_item(Audio(samples, sampling_rate=16_000))
    assert a.kind == "audio" and a.audio is None
    assert a.id != Document.from_item(Audio(samples, sampling_rate=8_000)).id
    frames = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    assert Document.from_item(Video(frames)).kind == "video"


def test_combined_document(tmp_path: Path) -> None:
    path = _png(tmp_path / "slide.png")
    doc = Document.from_item({"text": "slide 3", "image": str(path)}, metadata={"deck": "intro"})
    assert doc.kind == "combined" and doc.parts == ("text", "image")
    assert doc.text == "slide 3" and doc.image == str(path.absolute())
    assert doc.id not in (Document.from_item("slide 3").id, Document.from_item(Image(path)).id)
    # a combined item of one part is that part
    assert Document.from_item(Combined(text="slide 3")).id == Document.from_item("slide 3").id
    item = doc.to_item()
    assert isinstance(item, Combined) and item.text == "slide 3" and item.image is not None
    assert kind_of({"text": "x", "image": str(path)}) == "combined" and kind_of("x") == "text"


def test_to_item_without_available_parts() -> None:
    doc = Document.from_item(Image(b"not decoded, only hashed"))
    with pytest.raises(InvalidInputError, match="copy_media"):
        doc.to_item()
    mixed = Document.from_item(Combined(text="caption", image=Image(b"xx")))
    assert mixed.missing_media == ("image",)
    assert isinstance(mixed.to_item(), Text)


def test_missing_file_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFoundError):
        Document.from_item(Image(tmp_path / "nope.png"))


def test_url_reference_is_kept_without_fetching() -> None:
    doc = Document.from_item(
        Image("https://example.com/x.png"), reader=lambda source: b"fetched-by-test", sha256=None
    )
    assert doc.image == "https://example.com/x.png" and doc.source == "https://example.com/x.png"


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"omni:x": 1}, "reserved"),
        ({"chroma:document": "x"}, "reserved"),
        ({"$and": 1}, "reserved"),
        ({"": 1}, "non-empty"),
        ({"a": None}, "None"),
        ({"a": {"b": 1}}, "nested"),
        ({"a": []}, "empty list"),
        ({"a": [1, "x"]}, "mixes"),
        ({"a": [1, True]}, "mixes"),
        ({"a": math.nan}, "finite"),
        ({"a": [1.0, math.inf]}, "finite"),
        ({"a": object()}, "object"),
    ],
)
def test_bad_metadata_is_refused(metadata: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        validate_metadata(metadata)
    with pytest.raises(InvalidInputError):
        Document.from_item("x", metadata=metadata)


def test_good_metadata_is_kept() -> None:
    meta = {"s": "x", "i": 3, "f": 1.5, "b": True, "ls": ["a", "b"], "li": [1, 2], "lf": [0.5], "lb": [False]}
    assert validate_metadata(meta) == meta
    converted = validate_metadata({"n": np.int64(3), "x": np.float32(0.5)})
    assert converted == {"n": 3, "x": 0.5} and type(converted["n"]) is int
    assert validate_metadata(None) == {}


def test_document_invariants() -> None:
    with pytest.raises(InvalidInputError):
        Document(id="x", parts=(), sha256="s")
    with pytest.raises(InvalidInputError):
        Document(id="x", parts=("text",), sha256="s")  # text missing
    with pytest.raises(InvalidInputError):
        Document(id="x", parts=("text",), sha256="s", text="t", image="a.png")
    doc = Document(id="x", parts=("image", "text"), sha256="s", text="t", image="/a.png")
    assert doc.parts == ("text", "image") and doc.kind == "combined"


def test_search_hit_exposes_id() -> None:
    doc = Document.from_item("x")
    hit = SearchHit(document=doc, score=0.5, cosine=0.4, modality="text")
    assert hit.id == doc.id and hit.rerank_score is None
