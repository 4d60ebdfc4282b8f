"""The vector store and the retriever return the same documents with the same metadata keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from omniretrieve.testing.fakes import FakeEmbedder

from langchain_omniretrieve import OmniretrieveRetriever, OmniretrieveVectorStore

ALL = 15  # 6 captions, 6 images, 3 distractors in `mixed_store`
QUERY = "a red circle in the top left"
SCORES = ("score", "raw_score", "rerank_score")


def format_docs(docs: list[Document]) -> str:
    """The README's ``format_docs``."""
    return "\n".join(f"[{d.metadata.get('modality', 'text')}] {d.page_content}" for d in docs)


def _without_scores(doc: Document) -> Document:
    return doc.model_copy(update={"metadata": {k: v for k, v in doc.metadata.items() if k not in SCORES}})


def test_same_documents_and_keys_from_every_route(mixed_store: Any) -> None:
    vector_store = OmniretrieveVectorStore(store=mixed_store)  # the session's store: not closed here
    from_store = vector_store.similarity_search(QUERY, k=ALL)
    from_as_retriever = vector_store.as_retriever(search_kwargs={"k": ALL}).invoke(QUERY)
    from_mmr = vector_store.as_retriever(search_type="mmr", search_kwargs={"k": ALL, "fetch_k": ALL}).invoke(
        QUERY
    )
    from_retriever = OmniretrieveRetriever(store=mixed_store, k=ALL).invoke(QUERY)

    assert from_as_retriever == from_store
    assert [_without_scores(d) for d in from_retriever] == from_store
    assert sorted(from_mmr, key=lambda d: str(d.id)) == sorted(from_store, key=lambda d: str(d.id))
    assert vector_store.get_by_ids([str(d.id) for d in from_store]) == from_store
    for doc in from_retriever:
        assert set(doc.metadata) - set(_without_scores(doc).metadata) == {"score", "raw_score"}
    kinds = {d.metadata.get("modality", "text") for d in from_store}
    assert kinds == {"text", "image"}


def test_readme_format_docs_on_every_retriever(mixed_store: Any) -> None:
    vector_store = OmniretrieveVectorStore(store=mixed_store)
    retrievers = [
        vector_store.as_retriever(search_kwargs={"k": ALL}),
        OmniretrieveRetriever(store=mixed_store, k=ALL),
    ]
    contexts = [(retriever | format_docs).invoke(QUERY) for retriever in retrievers]
    assert contexts[0] == contexts[1]
    assert "[image] " in contexts[0] and "[text] " in contexts[0]


def test_callers_keys_survive_in_the_retriever(tmp_path: Path) -> None:
    """A caller's ``id`` (or any) key is kept: the store's id is ``Document.id``."""
    store = OmniretrieveVectorStore(embedding=FakeEmbedder(dimension=8), persist_directory=tmp_path / "index")
    try:
        store.add_texts(["foo"], [{"id": 1, "modality_hint": "none"}], ids=["doc-1"])
        (doc,) = OmniretrieveRetriever(store=store.store, k=1).invoke("foo")
        assert doc.id == "doc-1"
        assert _without_scores(doc).metadata == {"id": 1, "modality_hint": "none"}
        assert store.similarity_search("foo", k=1) == [_without_scores(doc)]
    finally:
        store.close()
