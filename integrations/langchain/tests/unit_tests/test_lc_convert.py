"""The one conversion from stored documents to LangChain documents, for the vector store and the retriever."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from omniretrieve.documents import Document as StoreDocument
from omniretrieve.documents import SearchHit

from langchain_omniretrieve._convert import from_langchain, hit_to_langchain, to_langchain

SHA = "0" * 64


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (
            StoreDocument(
                id="t", parts=("text",), sha256=SHA, text="a caption", metadata={"id": 7, "tags": ["a"]}
            ),
            Document(id="t", page_content="a caption", metadata={"id": 7, "tags": ["a"]}),
        ),
        (
            StoreDocument(id="i", parts=("image",), sha256=SHA, image="/p/q.png", metadata={"album": "x"}),
            Document(
                id="i",
                page_content="/p/q.png",
                metadata={"album": "x", "modality": "image", "image_uri": "/p/q.png"},
            ),
        ),
        (
            StoreDocument(
                id="c", parts=("text", "image"), sha256=SHA, text="slide 3", image="https://h/s3.png"
            ),
            Document(
                id="c",
                page_content="slide 3",
                metadata={"modality": "combined", "image_uri": "https://h/s3.png"},
            ),
        ),
        (  # audio given in memory and not copied: no reference to give
            StoreDocument(id="a", parts=("audio",), sha256=SHA),
            Document(id="a", page_content="", metadata={"modality": "audio"}),
        ),
    ],
    ids=["text", "image", "combined", "audio-without-reference"],
)
def test_to_langchain(stored: StoreDocument, expected: Document) -> None:
    assert to_langchain(stored) == expected


def test_a_hit_is_its_document_plus_scores_only() -> None:
    stored = StoreDocument(id="i", parts=("image",), sha256=SHA, image="/p/q.png", metadata={"id": 1})
    hit = SearchHit(document=stored, score=0.5, cosine=0.25, modality="image")
    doc = hit_to_langchain(hit)
    plain = to_langchain(stored)
    assert doc.id == plain.id and doc.page_content == plain.page_content
    assert doc.metadata == {**plain.metadata, "score": 0.5, "raw_score": 0.25}
    assert doc.metadata["id"] == 1  # the caller's own "id" key is never overwritten
    reranked = hit_to_langchain(
        SearchHit(document=stored, score=0.5, cosine=0.25, modality="image", rerank_score=2.0)
    )
    assert reranked.metadata["rerank_score"] == 2.0


def test_what_comes_back_can_be_added_again() -> None:
    """``from_langchain`` reads the keys ``to_langchain`` writes: a returned document re-adds as itself."""
    stored = StoreDocument(
        id="c", parts=("text", "image"), sha256=SHA, text="slide", image="/s.png", metadata={"a": 1}
    )
    item, metadata = from_langchain(to_langchain(stored))
    assert item == {"text": "slide", "image": "/s.png"} and metadata == {"a": 1}
    text = StoreDocument(id="t", parts=("text",), sha256=SHA, text="hello", metadata={"a": 2})
    assert from_langchain(to_langchain(text)) == ("hello", {"a": 2})
