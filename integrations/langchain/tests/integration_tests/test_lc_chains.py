"""LangChain compositions: an LCEL chain with a fake chat model, ContextualCompressionRetriever with our
reranker over our retriever and over langchain-chroma's stored images."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings
from langchain_chroma import Chroma
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from omniretrieve.rerank import CrossEncoderReranker
from omniretrieve.types import Image

from langchain_omniretrieve import OmniretrieveEmbeddings, OmniretrieveReranker, OmniretrieveRetriever

QUERY = "a red circle in the top left"


@pytest.fixture(scope="module")
def core_reranker(tiny_reranker_path: Path) -> CrossEncoderReranker:
    return CrossEncoderReranker(tiny_reranker_path, device="cpu")


def _own_scores(reranker: CrossEncoderReranker, query: str, paths: list[str]) -> dict[str, float]:
    """The reranker's score for each image, asked one image at a time."""
    scores = {}
    for path in paths:
        (result,) = reranker.rerank(query, [Image(path)])
        assert result.scored
        scores[path] = result.score
    return scores


class _Prompts(BaseCallbackHandler):
    def __init__(self) -> None:
        self.prompts: list[list[BaseMessage]] = []

    def on_chat_model_start(self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any) -> None:
        self.prompts.extend(messages)


def _format(docs: list[Document]) -> str:
    return "\n".join(f"[{d.metadata.get('modality', 'text')}] {d.page_content}" for d in docs)


def _chain(retriever: Any, answer: str) -> Any:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from this context:\n{context}"), ("human", "{question}")]
    )
    model = FakeListChatModel(responses=[answer])
    return (
        {"context": retriever | _format, "question": RunnablePassthrough()}
        | prompt
        | model
        | StrOutputParser()
    )


async def test_lcel_chain_over_a_mixed_corpus(demo_store: tuple[Any, Any, Path]) -> None:
    """A RAG chain on the demo model: the context holds the query's caption *and* its picture."""
    world, store, folder = demo_store
    query = next(q for q in world.queries if q.target == "mixed" and q.text)
    retriever = OmniretrieveRetriever(store=store, k=4)
    docs = retriever.invoke(query.text)
    exact = {doc_id for doc_id, grade in query.judgments.items() if grade == 2}
    found = {d.metadata.get("modality", "text") for d in docs if d.id in exact}
    assert found == {"text", "image"}, [(d.id, d.metadata["score"]) for d in docs]
    picture = next(d for d in docs if d.metadata.get("modality") == "image" and d.id in exact)
    assert picture.page_content == str(folder / "corpus" / f"{picture.id}.png")

    expected_context = _format(docs)
    for run in ("sync", "async"):
        prompts = _Prompts()
        chain = _chain(retriever, "A blue cross.")
        config: Any = {"callbacks": [prompts]}
        answer = (
            chain.invoke(query.text, config=config)
            if run == "sync"
            else await chain.ainvoke(query.text, config=config)
        )
        assert answer == "A blue cross."
        ((system, human),) = prompts.prompts
        assert system.content == "Answer from this context:\n" + expected_context
        assert human.content == query.text


async def test_compression_retriever_reranks_images_by_the_rerankers_scores(
    mixed_store: Any, core_reranker: CrossEncoderReranker, shape_files: dict[str, Path]
) -> None:
    base = OmniretrieveRetriever(store=mixed_store, k=6, filter={"kind": "photo"})
    compressor = OmniretrieveReranker(reranker=core_reranker, top_n=None)
    retriever = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=base)
    docs = retriever.invoke(QUERY)
    own = _own_scores(core_reranker, QUERY, [str(p) for p in shape_files.values()])
    assert sorted(d.metadata["image_uri"] for d in docs) == sorted(own)
    assert [d.metadata["image_uri"] for d in docs] == sorted(own, key=lambda p: -own[p])
    for doc in docs:
        assert doc.metadata["relevance_score"] == pytest.approx(own[doc.metadata["image_uri"]], abs=1e-4)
        # the retriever's own metadata is kept
        assert doc.metadata["modality"] == "image" and "score" in doc.metadata
    top = await ContextualCompressionRetriever(
        base_compressor=OmniretrieveReranker(reranker=core_reranker, top_n=2), base_retriever=base
    ).ainvoke(QUERY)
    assert [d.id for d in top] == [d.id for d in docs[:2]]


def test_compression_over_langchain_chroma_images(
    clip_embedder: Any, core_reranker: CrossEncoderReranker, shape_files: dict[str, Path]
) -> None:
    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    chroma = Chroma(
        collection_name="lc-omniretrieve-images",
        embedding_function=OmniretrieveEmbeddings(embedder=clip_embedder),
        client=client,
    )
    try:
        paths = [str(p) for p in shape_files.values()]
        chroma.add_images(uris=paths)  # stored as bare base64 in page_content, embedded with embed_image
        by_image = chroma.similarity_search_by_image(uri=paths[3], k=1)
        assert base64.b64decode(by_image[0].page_content) == Path(paths[3]).read_bytes()

        retriever = ContextualCompressionRetriever(
            base_compressor=OmniretrieveReranker(reranker=core_reranker, top_n=None),
            base_retriever=chroma.as_retriever(search_kwargs={"k": 6}),
        )
        docs = retriever.invoke(QUERY)
        path_of = {base64.b64encode(Path(p).read_bytes()).decode(): p for p in paths}
        ranked = [path_of[d.page_content] for d in docs]
        own = _own_scores(core_reranker, QUERY, paths)
        assert ranked == sorted(own, key=lambda p: -own[p])
        for doc, path in zip(docs, ranked, strict=True):
            assert doc.metadata["relevance_score"] == pytest.approx(own[path], abs=1e-4)
    finally:
        chroma.delete_collection()
