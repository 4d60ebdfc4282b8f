"""Our embedding inside LlamaIndex's own MultiModalVectorStoreIndex over Chroma, and our reranker after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from llama_index.core import SimpleDirectoryReader, StorageContext
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import ImageNode, MetadataMode, QueryBundle, TextNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node
from llama_index.embeddings.omniretrieve import OmniretrieveEmbedding
from llama_index.postprocessor.omniretrieve_rerank import OmniretrieveRerank
from llama_index.vector_stores.chroma import ChromaVectorStore
from llama_index_rerank_testdata import SCENES, TEXTS, image_name

from omniretrieve.types import Image


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    client = chromadb.PersistentClient(
        path=str(tmp_path_factory.mktemp("chroma")),
        settings=chromadb.config.Settings(anonymized_telemetry=False),
    )
    yield client


@pytest.fixture(scope="module")
def embed_model(st_embedder: Any) -> OmniretrieveEmbedding:
    return OmniretrieveEmbedding(embedder=st_embedder)


@pytest.fixture(scope="module")
def index(chroma: Any, embed_model: OmniretrieveEmbedding, mixed_folder: Path) -> MultiModalVectorStoreIndex:
    text_store = ChromaVectorStore(chroma_collection=chroma.get_or_create_collection("text"))
    image_store = ChromaVectorStore(chroma_collection=chroma.get_or_create_collection("image"))
    storage_context = StorageContext.from_defaults(vector_store=text_store, image_store=image_store)
    documents = SimpleDirectoryReader(str(mixed_folder)).load_data()
    return MultiModalVectorStoreIndex.from_documents(
        documents, storage_context=storage_context, embed_model=embed_model, image_embed_model=embed_model
    )


def image_paths(folder: Path) -> list[str]:
    return [str(folder / image_name(*s)) for s in SCENES]


def test_index_stores_our_vectors_in_chroma(
    index: MultiModalVectorStoreIndex, chroma: Any, embed_model: OmniretrieveEmbedding, mixed_folder: Path
) -> None:
    assert index.image_embed_model is embed_model
    got = chroma.get_collection("image").get(include=["embeddings", "metadatas"])
    assert len(got["ids"]) == len(SCENES)
    by_path = {
        m["file_path"]: np.asarray(e) for m, e in zip(got["metadatas"], got["embeddings"], strict=True)
    }
    ours = embed_model.get_image_embedding_batch(image_paths(mixed_folder))
    for path, vector in zip(image_paths(mixed_folder), ours, strict=True):
        np.testing.assert_allclose(by_path[path], vector, atol=1e-5)
    texts = chroma.get_collection("text").get(include=["embeddings", "metadatas", "documents"])
    assert len(texts["ids"]) == len(TEXTS)
    for meta, text, vector in zip(texts["metadatas"], texts["documents"], texts["embeddings"], strict=True):
        # LlamaIndex embeds a text node's content with its metadata (MetadataMode.EMBED).
        node = metadata_dict_to_node(meta, text=text)
        np.testing.assert_allclose(
            vector, embed_model.get_text_embedding(node.get_content(MetadataMode.EMBED)), atol=1e-5
        )


def test_text_to_image_and_image_to_image_retrieval(
    index: MultiModalVectorStoreIndex, embed_model: OmniretrieveEmbedding, mixed_folder: Path
) -> None:
    retriever = index.as_retriever(similarity_top_k=2, image_similarity_top_k=3)
    nodes = retriever.retrieve("a red circle in the top left")
    images = [n for n in nodes if isinstance(n.node, ImageNode)]
    texts = [n for n in nodes if not isinstance(n.node, ImageNode)]
    assert len(texts) == 2 and all(isinstance(n.node, TextNode) for n in texts) and len(images) == 3
    # The image hits are the 3 images nearest our query embedding, in that order.
    query = np.asarray(embed_model.get_query_embedding("a red circle in the top left"))
    cosines = {
        p: float(query @ np.asarray(v))
        for p, v in zip(
            image_paths(mixed_folder),
            embed_model.get_image_embedding_batch(image_paths(mixed_folder)),
            strict=True,
        )
    }
    assert [n.node.image_path for n in images] == sorted(cosines, key=lambda p: -cosines[p])[:3]

    target = image_paths(mixed_folder)[4]
    same = retriever.image_to_image_retrieve(target)
    assert same[0].node.image_path == target  # type: ignore[union-attr]


async def test_async_index_retrieval_uses_our_async_embeddings(index: MultiModalVectorStoreIndex) -> None:
    retriever = index.as_retriever(similarity_top_k=2, image_similarity_top_k=2)
    got = await retriever.aretrieve("a blue square")
    want = retriever.retrieve("a blue square")
    assert [n.node.node_id for n in got] == [n.node.node_id for n in want]


def test_our_postprocessor_reorders_the_indexs_image_nodes(
    index: MultiModalVectorStoreIndex, ce_reranker: Any, mixed_folder: Path
) -> None:
    """LlamaIndex appends image hits after text hits without re-sorting; our reranker orders them."""
    query = "a red circle in the top left"
    retriever = index.as_retriever(similarity_top_k=2, image_similarity_top_k=len(SCENES))
    retrieved = retriever.retrieve(query)
    images = [n for n in retrieved if isinstance(n.node, ImageNode)]
    reranked = OmniretrieveRerank(reranker=ce_reranker).postprocess_nodes(images, QueryBundle(query))
    own = {
        r.index: r.score
        for r in ce_reranker.rerank(query, [Image(n.node.image_path) for n in images])  # type: ignore[union-attr]
    }
    expected = [images[i].node.node_id for i in sorted(own, key=lambda i: -own[i])]
    assert [n.node.node_id for n in reranked] == expected
    assert [n.score for n in reranked] == pytest.approx(sorted(own.values(), reverse=True), abs=1e-5)

    # The same in a query engine over the index's retriever: texts and images in one reranked list.
    engine = RetrieverQueryEngine.from_args(
        retriever, llm=MockLLM(), node_postprocessors=[OmniretrieveRerank(reranker=ce_reranker, top_n=4)]
    )
    sources = engine.query(query).source_nodes
    assert len(sources) == 4
    assert [n.score for n in sources] == sorted((n.score for n in sources), reverse=True)  # type: ignore[misc]
