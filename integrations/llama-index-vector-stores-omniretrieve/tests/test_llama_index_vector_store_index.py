"""Our vector store under LlamaIndex's own indices, with the shipped demo model (a real modality gap)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.schema import ImageDocument, ImageNode, TextNode
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters
from llama_index.embeddings.omniretrieve import OmniretrieveEmbedding
from llama_index.vector_stores.omniretrieve import OmniretrieveVectorStore

from omniretrieve.types import Image

QUERY = "a red circle in the bottom left"  # the demo world's cap-0002 and img-0009 show it
K = 8


@pytest.fixture(scope="module")
def embed_model(demo_embedder: Any) -> OmniretrieveEmbedding:
    return OmniretrieveEmbedding(demo_embedder)


@pytest.fixture(scope="module")
def documents(world_corpus: Path) -> list[Any]:
    documents = SimpleDirectoryReader(str(world_corpus)).load_data()
    for document in documents:
        # LlamaIndex embeds a text with its metadata; a CLIP-style model reads few tokens (the demo
        # model 64), and a long file path would push the text itself out of them. (Not for images:
        # an image document without text keeps its metadata, or VectorStoreIndex skips it as empty.)
        if document.text:
            document.excluded_embed_metadata_keys.append("file_path")
    return documents


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, embed_model: OmniretrieveEmbedding, documents: list[Any]
) -> Iterator[tuple[VectorStoreIndex, OmniretrieveVectorStore]]:
    vector_store = OmniretrieveVectorStore.from_params(
        model=embed_model, persist_dir=tmp_path_factory.mktemp("vsi")
    )
    index = VectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(vector_store=vector_store),
        embed_model=embed_model,
    )
    yield index, vector_store
    vector_store.close()


def test_query_engine_returns_images_and_texts_in_calibrated_order(
    built: tuple[VectorStoreIndex, OmniretrieveVectorStore],
    embed_model: OmniretrieveEmbedding,
    documents: list[Any],
) -> None:
    index, vector_store = built
    store = vector_store.store
    images = [d for d in documents if isinstance(d, ImageDocument)]
    assert store.count("image") == len(images) == 12 and store.count("text") == len(documents) - 12

    response = index.as_query_engine(llm=MockLLM(), similarity_top_k=K).query(QUERY)
    sources = response.source_nodes
    kinds = {type(n.node) for n in sources}
    assert ImageNode in kinds and TextNode in kinds

    # The order and scores are the store's calibrated search of LlamaIndex's query embedding ...
    calibrated = store.search_vector(embed_model.get_query_embedding(QUERY), K)
    assert [n.node.node_id for n in sources] == [h.document.id for h in calibrated]
    assert [n.score for n in sources] == pytest.approx([h.score for h in calibrated])
    assert [n.score for n in sources] == sorted((n.score for n in sources), reverse=True)  # type: ignore[misc]
    # The scene's caption and its image lead the list. Raw cosine (no calibration) ranks the image
    # lower: the demo model's modality gap puts texts that do not match above it.
    names = [Path(n.node.metadata["file_path"]).name for n in sources]
    assert set(names[:2]) == {"cap-0002.txt", "img-0009.png"}
    raw = store.search_vector(embed_model.get_query_embedding(QUERY), K, calibration="none")
    assert {h.modality for h in raw[:4]} == {"text"}

    # Image sources are LlamaIndex's own ImageNodes, by path, linked to their source documents.
    by_path = {d.metadata["file_path"]: d for d in documents}
    for n in sources:
        source = by_path[n.node.metadata["file_path"]]
        assert n.node.ref_doc_id == source.doc_id
        if isinstance(n.node, ImageNode):
            assert n.node.image_path == source.metadata["file_path"]
        else:
            assert n.node.get_content().strip() == source.text.strip()


def test_filters(built: tuple[VectorStoreIndex, OmniretrieveVectorStore]) -> None:
    index, _ = built
    only_png = MetadataFilters(filters=[MetadataFilter(key="file_type", value="image/png")])
    nodes = index.as_retriever(similarity_top_k=K, filters=only_png).retrieve(QUERY)
    assert len(nodes) == K and all(isinstance(n.node, ImageNode) for n in nodes)
    names = ["cap-0002.txt", "dis-0000.txt", "img-0009.png"]
    some = MetadataFilters(filters=[MetadataFilter(key="file_name", value=names, operator=FilterOperator.IN)])
    got = index.as_retriever(similarity_top_k=K, filters=some).retrieve(QUERY)
    assert sorted(n.node.metadata["file_name"] for n in got) == names


def test_delete_ref_doc(tmp_path: Path, embed_model: OmniretrieveEmbedding, documents: list[Any]) -> None:
    vector_store = OmniretrieveVectorStore.from_params(model=embed_model, persist_dir=tmp_path / "store")
    index = VectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(vector_store=vector_store),
        embed_model=embed_model,
    )
    by_name = {d.metadata["file_name"]: d for d in documents}
    before = len(vector_store.store)
    for name in ("img-0009.png", "cap-0002.txt"):
        index.delete_ref_doc(by_name[name].doc_id)
    assert len(vector_store.store) == before - 2
    names = {
        n.node.metadata["file_name"]
        for n in index.as_retriever(similarity_top_k=len(documents)).retrieve(QUERY)
    }
    assert len(names) == len(documents) - 2 and not names & {"img-0009.png", "cap-0002.txt"}
    vector_store.close()


async def test_async_index(tmp_path: Path, embed_model: OmniretrieveEmbedding, documents: list[Any]) -> None:
    vector_store = OmniretrieveVectorStore.from_params(model=embed_model, persist_dir=tmp_path / "store")
    index = VectorStoreIndex(
        [], storage_context=StorageContext.from_defaults(vector_store=vector_store), embed_model=embed_model
    )
    for document in documents:  # ainsert: LlamaIndex's async path, our async_add
        await index.ainsert(document)
    assert len(vector_store.store) == len(documents)
    retriever = index.as_retriever(similarity_top_k=K)
    got, want = await asyncio.gather(retriever.aretrieve(QUERY), asyncio.to_thread(retriever.retrieve, QUERY))
    assert [n.node.node_id for n in got] == [n.node.node_id for n in want]
    assert [n.score for n in got] == pytest.approx([n.score for n in want])
    response = await index.as_query_engine(llm=MockLLM(), similarity_top_k=K).aquery(QUERY)
    assert {type(n.node) for n in response.source_nodes} == {ImageNode, TextNode}
    image = next(d for d in documents if d.metadata["file_name"] == "img-0009.png")
    await index.adelete_ref_doc(image.doc_id)
    assert len(vector_store.store) == len(documents) - 1
    vector_store.close()


def test_multimodal_index_over_two_of_our_stores(
    tmp_path: Path, embed_model: OmniretrieveEmbedding, documents: list[Any], world_corpus: Path
) -> None:
    text_store = OmniretrieveVectorStore.from_params(model=embed_model, persist_dir=tmp_path / "text")
    image_store = OmniretrieveVectorStore.from_params(model=embed_model, persist_dir=tmp_path / "image")
    index = MultiModalVectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(vector_store=text_store, image_store=image_store),
        embed_model=embed_model,
        image_embed_model=embed_model,
    )
    assert text_store.store.count("text") == len(documents) - 12 and text_store.store.count("image") == 0
    assert image_store.store.count("image") == 12 and image_store.store.count("text") == 0

    retriever = index.as_retriever(similarity_top_k=3, image_similarity_top_k=3)
    nodes = retriever.retrieve(QUERY)
    texts, images = nodes[:3], nodes[3:]
    assert all(isinstance(n.node, TextNode) and not isinstance(n.node, ImageNode) for n in texts)
    assert len(images) == 3 and all(isinstance(n.node, ImageNode) for n in images)
    query = embed_model.get_query_embedding(QUERY)
    assert [n.node.node_id for n in images] == [
        h.document.id for h in image_store.store.search_vector(query, 3)
    ]
    assert "img-0009.png" in {n.node.metadata["file_name"] for n in images}

    # Image to image: LlamaIndex sends the image's embedding with query_str="", an image query.
    target = str(world_corpus / "img-0004.png")
    same = retriever.image_to_image_retrieve(target)
    assert isinstance(same[0].node, ImageNode) and same[0].node.image_path == target
    expected = image_store.store.search_vector(
        embed_model.embedder.embed_query(Image(target)), len(same), query_modality="image"
    )
    assert [n.score for n in same] == pytest.approx([h.score for h in expected])
    text_store.close()
    image_store.close()
