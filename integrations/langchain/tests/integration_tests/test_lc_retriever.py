from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from omniretrieve.errors import InvalidInputError, MediaNotFoundError
from omniretrieve.testing.rerankers import FakeReranker
from omniretrieve.types import Image
from pydantic import ValidationError

from langchain_omniretrieve import OmniretrieveRetriever

ALL = 15  # 6 captions, 6 images, 3 distractors in `mixed_store`


def test_documents_carry_modality_uri_and_scores(mixed_store: Any, shape_files: dict[str, Path]) -> None:
    docs = OmniretrieveRetriever(store=mixed_store, k=ALL).invoke("a red circle in the top left")
    assert len(docs) == ALL
    assert {d.id for d in docs} == {f"cap-{n}" for n in range(6)} | {f"img-{n}" for n in range(6)} | {
        f"dis-{n}" for n in range(3)
    }
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    paths = {str(p) for p in shape_files.values()}
    captions = set(shape_files)
    for doc in docs:
        assert isinstance(doc.metadata["raw_score"], float)
        own = {key: value for key, value in doc.metadata.items() if key not in ("score", "raw_score")}
        if doc.id.startswith("img-"):
            assert own == {
                "kind": "photo",
                "color": own["color"],
                "modality": "image",
                "image_uri": own["image_uri"],
            }
            assert own["image_uri"] in paths and doc.page_content == own["image_uri"]
        else:  # a text document: its own metadata only, as the vector store returns it
            assert own == (
                {"kind": "distractor"}
                if doc.id.startswith("dis-")
                else {"kind": "caption", "color": own["color"]}
            )
            assert doc.page_content in captions or own["kind"] == "distractor"


@pytest.mark.parametrize("as_query", [lambda p: {"image": p}, lambda p: Image(p)], ids=["dict", "Image"])
def test_image_query_finds_its_own_image(
    mixed_store: Any, shape_files: dict[str, Path], as_query: Any
) -> None:
    retriever = OmniretrieveRetriever(store=mixed_store, k=1)
    for n, path in enumerate(shape_files.values()):
        (doc,) = retriever.invoke(as_query(str(path)))
        assert doc.id == f"img-{n}"
        assert doc.metadata["score"] == pytest.approx(1.0, abs=1e-4)


def test_combined_query_and_modalities(mixed_store: Any, shape_files: dict[str, Path]) -> None:
    caption, path = next(iter(shape_files.items()))
    retriever = OmniretrieveRetriever(store=mixed_store, k=3, modalities=["text"])
    docs = retriever.invoke({"text": caption, "image": str(path)})
    assert len(docs) == 3 and all("modality" not in d.metadata for d in docs)  # text
    docs = retriever.invoke(caption, modalities=["image"])
    assert all(d.metadata["modality"] == "image" for d in docs)


def test_filters_in_constructor_and_per_call(mixed_store: Any) -> None:
    photos = OmniretrieveRetriever(store=mixed_store, k=ALL, filter={"kind": "photo"})
    assert sorted(d.id for d in photos.invoke("anything")) == [f"img-{n}" for n in range(6)]
    red = photos.invoke("anything", filter={"color": "red"})
    assert sorted(d.id for d in red) == ["cap-0", "img-0"]  # a per-call filter replaces the default
    assert sorted(d.id for d in photos.invoke("anything", where={"kind": "distractor"})) == [
        "dis-0",
        "dis-1",
        "dis-2",
    ]
    both = photos.invoke(
        "anything", filter={"$and": [{"kind": "photo"}, {"color": {"$in": ["red", "blue"]}}]}
    )
    assert sorted(d.id for d in both) == ["img-0", "img-1"]
    with pytest.raises(InvalidInputError, match="once"):
        photos.invoke("anything", filter={"kind": "photo"}, where={"kind": "caption"})


def test_bad_options_and_queries_raise_typed_errors(mixed_store: Any, tmp_path: Path) -> None:
    retriever = OmniretrieveRetriever(store=mixed_store)
    with pytest.raises(InvalidInputError, match="unknown"):
        retriever.invoke("x", top_k=3)
    with pytest.raises(InvalidInputError):
        retriever.invoke("x", k=0)
    with pytest.raises(InvalidInputError):
        retriever.invoke(42)  # type: ignore[arg-type]
    with pytest.raises(MediaNotFoundError):
        retriever.invoke({"image": str(tmp_path / "missing.png")})
    with pytest.raises(ValidationError, match="must be an omniretrieve Store"):
        OmniretrieveRetriever(store="not a store")
    with pytest.raises(ValidationError, match="filters"):  # a misspelt option is refused, not ignored
        OmniretrieveRetriever(store=mixed_store, filters={"kind": "photo"})  # type: ignore[call-arg]


def test_url_shaped_text_query_is_never_fetched(mixed_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a text query opened a connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    docs = OmniretrieveRetriever(store=mixed_store, k=2).invoke("http://127.0.0.1:9/cat.png")
    assert len(docs) == 2


def test_store_reranker_orders_by_rerank_score(mixed_store: Any) -> None:
    fake = FakeReranker()
    retriever = OmniretrieveRetriever(store=mixed_store, k=3, reranker=fake, rerank_top_n=ALL)
    docs = retriever.invoke("blue square")
    rerank = [d.metadata["rerank_score"] for d in docs]
    assert rerank == sorted(rerank, reverse=True) and rerank[0] > 0
    assert docs[0].page_content == "a blue square in the center"
    assert len(fake.calls) == 1 and len(fake.calls[0][1]) == ALL


async def test_ainvoke_with_k_and_filter(mixed_store: Any) -> None:
    retriever = OmniretrieveRetriever(store=mixed_store)
    docs = await retriever.ainvoke("a blue square", k=3, filter={"kind": "caption"})
    assert len(docs) == 3 and all(d.metadata["kind"] == "caption" for d in docs)
    assert docs == retriever.invoke("a blue square", k=3, filter={"kind": "caption"})


def test_image_query_finds_the_scenes_caption_on_the_demo_model(demo_store: tuple[Any, Any, Path]) -> None:
    """A new picture of a scene, as the query, retrieves that scene's caption (image -> text)."""
    world, store, folder = demo_store
    query = next(q for q in world.queries if q.image is not None)
    docs = OmniretrieveRetriever(store=store, k=4).invoke(
        {"image": str(folder / "queries" / f"{query.id}.png")}
    )
    captions = [d for d in docs if "modality" not in d.metadata]  # text
    assert any(world.doc(d.id).scene == query.scene for d in captions), [d.page_content for d in docs]
    pictures = OmniretrieveRetriever(store=store, k=4, filter={"kind": "picture"}).invoke(
        {"image": str(folder / "queries" / f"{query.id}.png")}
    )
    assert len(pictures) == 4 and all(d.metadata["modality"] == "image" for d in pictures)
