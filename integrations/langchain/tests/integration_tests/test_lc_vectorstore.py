from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import VectorStoreRetriever
from omniretrieve.errors import InvalidInputError, MediaNotFoundError
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.testing.rerankers import FakeReranker

from langchain_omniretrieve import OmniretrieveEmbeddings, OmniretrieveRetriever, OmniretrieveVectorStore


@pytest.fixture
def vector_store(tmp_path: Path) -> Iterator[OmniretrieveVectorStore]:
    store = OmniretrieveVectorStore(
        embedding=OmniretrieveEmbeddings(embedder=FakeEmbedder(dimension=16)),
        persist_directory=tmp_path / "index",
    )
    yield store
    store.close()


@pytest.fixture
def filled(vector_store: OmniretrieveVectorStore, shape_files: dict[str, Path]) -> OmniretrieveVectorStore:
    captions = list(shape_files)
    paths = [str(p) for p in shape_files.values()]
    vector_store.add_texts(
        captions, [{"kind": "caption", "n": n} for n in range(6)], ids=[f"cap-{n}" for n in range(6)]
    )
    vector_store.add_images(
        paths, [{"kind": "photo", "n": n} for n in range(6)], ids=[f"img-{n}" for n in range(6)]
    )
    return vector_store


def test_images_round_trip_with_modality_and_uri(
    filled: OmniretrieveVectorStore, shape_files: dict[str, Path]
) -> None:
    path = str(next(iter(shape_files.values())))
    (doc,) = filled.get_by_ids(["img-0"])
    assert doc == Document(
        id="img-0",
        page_content=path,
        metadata={"kind": "photo", "n": 0, "modality": "image", "image_uri": path},
    )
    (text,) = filled.get_by_ids(["cap-0"])
    assert text.metadata == {"kind": "caption", "n": 0}  # text documents keep exactly their metadata


def test_search_by_image_text_and_dict(filled: OmniretrieveVectorStore, shape_files: dict[str, Path]) -> None:
    for n, (caption, path) in enumerate(shape_files.items()):
        assert filled.similarity_search_by_image(str(path), k=1)[0].id == f"img-{n}"
        assert filled.similarity_search({"image": str(path)}, k=1)[0].id == f"img-{n}"
        assert filled.similarity_search(caption, k=1)[0].id == f"cap-{n}"
        doc, score = filled.similarity_search_by_image_with_relevance_score(str(path), k=1)[0]
        assert doc.id == f"img-{n}" and score == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(MediaNotFoundError):
        filled.similarity_search_by_image("/nonexistent/q.png")


def test_scores_filters_and_modalities(filled: OmniretrieveVectorStore) -> None:
    results = filled.similarity_search_with_score("anything", k=12)
    scores = [s for _, s in results]
    assert len(results) == 12 and scores == sorted(scores, reverse=True)
    relevance = filled.similarity_search_with_relevance_scores("anything", k=12)
    assert all(0.0 <= r <= 1.0 for _, r in relevance)
    assert [d.id for d, _ in relevance] == [d.id for d, _ in results]
    photos = filled.similarity_search("anything", k=12, filter={"kind": "photo"})
    assert sorted(d.id for d in photos) == [f"img-{n}" for n in range(6)]
    assert {d.id for d in filled.similarity_search("x", k=12, modalities=["text"])} == {
        f"cap-{n}" for n in range(6)
    }
    with pytest.raises(InvalidInputError, match="unknown"):
        filled.similarity_search("x", k=2, fetch_k=20)


def test_search_by_vector(filled: OmniretrieveVectorStore, shape_files: dict[str, Path]) -> None:
    caption = next(iter(shape_files))
    vector = filled.embeddings.embed_query(caption)
    assert filled.similarity_search_by_vector(vector, k=1)[0].id == "cap-0"
    image_vector = filled.embeddings.embed_image([str(shape_files[caption])])[0]  # type: ignore[attr-defined]
    assert filled.similarity_search_by_vector(image_vector, k=1, query_modality="image")[0].id == "img-0"


def test_combined_documents_from_image_uri_metadata(
    vector_store: OmniretrieveVectorStore, shape_files: dict[str, Path]
) -> None:
    caption, path = next(iter(shape_files.items()))
    (doc_id,) = vector_store.add_documents(
        [Document(page_content=caption, metadata={"image_uri": str(path), "deck": "a"})]
    )
    (doc,) = vector_store.get_by_ids([doc_id])
    assert doc.page_content == caption
    assert doc.metadata == {"deck": "a", "modality": "combined", "image_uri": str(path)}
    assert vector_store.store.get([doc_id])[0].parts == ("text", "image")  # type: ignore[union-attr]
    found = vector_store.similarity_search({"text": caption, "image": str(path)}, k=1)
    assert found[0].id == doc_id
    # Re-adding what a search returned stores the same document again (same content, same id).
    assert vector_store.add_documents(found) == [doc_id]


def test_delete_by_filter_and_refuse_delete_all(filled: OmniretrieveVectorStore) -> None:
    assert filled.delete(filter={"kind": "photo"}) is True
    assert {d.id for d in filled.similarity_search("x", k=12)} == {f"cap-{n}" for n in range(6)}
    filled.delete(["cap-0", "not-there"])
    assert filled.get_by_ids(["cap-0", "cap-1"]) == filled.get_by_ids(["cap-1"])
    with pytest.raises(InvalidInputError):
        filled.delete()


def test_as_retriever_and_omniretrieve_retriever(
    filled: OmniretrieveVectorStore, shape_files: dict[str, Path]
) -> None:
    path = str(list(shape_files.values())[2])
    retriever = filled.as_retriever(search_kwargs={"k": 2, "filter": {"kind": "photo"}})
    assert isinstance(retriever, VectorStoreRetriever)
    docs = retriever.invoke({"image": path})  # type: ignore[arg-type]
    assert [d.id for d in docs][0] == "img-2" and len(docs) == 2
    docs = OmniretrieveRetriever(store=filled.store, k=1).invoke({"image": path})
    assert docs[0].id == "img-2" and docs[0].metadata["score"] == pytest.approx(1.0, abs=1e-4)


def test_reranker_default(tmp_path: Path) -> None:
    store = OmniretrieveVectorStore(
        embedding=FakeEmbedder(dimension=8), persist_directory=tmp_path / "i", reranker=FakeReranker()
    )
    try:
        store.add_texts(["a blue square", "a red circle", "weather today"])
        results = store.similarity_search_with_score("red circle", k=2)
        doc, score = results[0]
        assert doc.page_content == "a red circle"
        assert score == pytest.approx(2 / 6**0.5)  # the fake reranker's word overlap
    finally:
        store.close()


async def test_from_texts_and_from_documents(tmp_path: Path, shape_files: dict[str, Path]) -> None:
    embeddings = OmniretrieveEmbeddings(embedder=FakeEmbedder(dimension=8))
    store = OmniretrieveVectorStore.from_texts(
        ["foo", "bar"], embeddings, [{"a": 1}, {"a": 2}], ids=["1", "2"], persist_directory=tmp_path / "a"
    )
    try:
        assert store.similarity_search("bar", k=1) == [
            Document(id="2", page_content="bar", metadata={"a": 2})
        ]
    finally:
        store.close()
    store = OmniretrieveVectorStore.from_documents(
        [Document(id="x", page_content="baz")],
        embeddings,
        persist_directory=tmp_path / "b",
        collection_name="docs",
    )
    try:
        assert store.get_by_ids(["x"]) == [Document(id="x", page_content="baz")]
        assert store.store.name == "docs"
    finally:
        store.close()
    caption, path = next(iter(shape_files.items()))
    image_doc = Document(
        id="pic", page_content=str(path), metadata={"modality": "image", "image_uri": str(path)}
    )
    store = await OmniretrieveVectorStore.afrom_documents(
        [image_doc], embeddings, persist_directory=tmp_path / "d"
    )
    try:
        assert store.get_by_ids(["pic"]) == [image_doc]
        assert store.similarity_search_by_image(str(path), k=1) == [image_doc]
    finally:
        store.close()
    with pytest.raises(InvalidInputError, match="OmniretrieveEmbeddings"):
        OmniretrieveVectorStore.from_texts(
            ["foo"], DeterministicFakeEmbedding(size=4), persist_directory=tmp_path / "c"
        )


def test_constructor_and_metadata_errors(tmp_path: Path, vector_store: OmniretrieveVectorStore) -> None:
    with pytest.raises(InvalidInputError, match="not both"):
        OmniretrieveVectorStore(embedding=FakeEmbedder(dimension=8), store=vector_store.store)
    with pytest.raises(InvalidInputError):
        vector_store.add_texts(["foo"], [{"nested": {"a": 1}}])
    with pytest.raises(InvalidInputError, match="entries"):
        vector_store.add_texts(["foo", "bar"], ids=["1"])


async def test_async_images_and_search(
    vector_store: OmniretrieveVectorStore, shape_files: dict[str, Path]
) -> None:
    paths = [str(p) for p in shape_files.values()][:3]
    ids = await vector_store.aadd_images(paths)
    text_ids = await vector_store.aadd_texts(["a caption"], [{"image_uri": paths[0]}])  # metadata, not media
    assert vector_store.get_by_ids(text_ids)[0].metadata == {"image_uri": paths[0]}
    assert len(set(ids)) == 3
    docs = await vector_store.asimilarity_search_by_image(paths[1], k=1)
    assert docs[0].id == ids[1]
    assert await vector_store.aget_by_ids(ids[:1]) == vector_store.get_by_ids(ids[:1])
    await vector_store.adelete(ids[:1])
    assert await vector_store.asimilarity_search({"image": paths[0]}, k=3) == vector_store.similarity_search(
        {"image": paths[0]}, k=3
    )
