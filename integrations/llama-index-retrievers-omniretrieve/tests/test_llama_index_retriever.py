from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import SimpleDirectoryReader
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import (
    Document as LIDocument,
)
from llama_index.core.schema import (
    ImageDocument,
    ImageNode,
    Node,
    QueryBundle,
    TextNode,
)
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from llama_index.postprocessor.omniretrieve_rerank import OmniretrieveRerank
from llama_index.retrievers.omniretrieve import (
    OmniretrieveRetriever,
    add_documents,
    document_to_node,
    metadata_filters_to_where,
)
from llama_index_retrievers_testdata import SCENES, TEXTS, image_name

from omniretrieve.documents import Document
from omniretrieve.errors import InvalidInputError, MediaNotFoundError
from omniretrieve.store import Store
from omniretrieve.testing.rerankers import FakeReranker
from omniretrieve.types import Image, Text


@pytest.fixture(scope="module")
def folder_docs(mixed_folder: Path) -> list[Any]:
    return SimpleDirectoryReader(str(mixed_folder)).load_data()


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, st_embedder: Any, folder_docs: list[Any]
) -> Iterator[Store]:
    with Store(st_embedder, path=tmp_path_factory.mktemp("store")) as s:
        results = add_documents(s, folder_docs)
        assert [r.status for r in results] == ["added"] * len(folder_docs)
        yield s


def test_simple_directory_reader_folder_is_ingested_in_one_call(
    store: Store, folder_docs: list[Any], mixed_folder: Path
) -> None:
    # With llama-index-readers-file, SimpleDirectoryReader reads PNGs as ImageDocuments by path.
    images = [d for d in folder_docs if isinstance(d, ImageDocument)]
    assert len(images) == len(SCENES) and len(folder_docs) == len(SCENES) + len(TEXTS)
    assert store.count("image") == len(SCENES) and store.count("text") == len(TEXTS)
    # Content-hash ids: the same folder again adds nothing.
    again = add_documents(store, folder_docs)
    assert {r.status for r in again} == {"exists"}
    stored = store.get([r.id for r in again if r.id])
    by_name = {d.metadata["file_name"]: d for d in stored if d is not None}
    red = by_name[image_name(*SCENES[0])]
    assert red.kind == "image" and red.image == str(mixed_folder / image_name(*SCENES[0]))
    assert red.metadata["file_type"] == "image/png"
    assert red.source == (mixed_folder / image_name(*SCENES[0])).resolve().as_uri()
    note = by_name["note-weather.txt"]
    assert note.kind == "text" and note.text is not None and note.text.strip() == TEXTS["note-weather.txt"]


def test_retriever_returns_the_stores_order_scores_and_node_types(store: Store, mixed_folder: Path) -> None:
    retriever = OmniretrieveRetriever(store, similarity_top_k=len(SCENES) + len(TEXTS))
    assert isinstance(retriever, BaseRetriever)
    nodes = retriever.retrieve("a red circle in the top left")
    hits = store.search("a red circle in the top left", k=len(SCENES) + len(TEXTS))
    assert [n.node.node_id for n in nodes] == [h.id for h in hits]
    assert [n.score for n in nodes] == [h.score for h in hits]
    assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)  # type: ignore[misc]
    kinds = {type(n.node) for n in nodes}
    assert kinds == {TextNode, ImageNode}
    for n, h in zip(nodes, hits, strict=True):
        assert dict(n.node.metadata) == dict(h.document.metadata)
        if isinstance(n.node, ImageNode):
            assert n.node.image_path == h.document.image and Path(n.node.image_path or "").exists()
            assert n.node.image_mimetype == "image/png" and n.node.image_url is None
        else:
            assert n.node.get_content() == h.document.text


def test_image_query_through_query_bundle(store: Store, mixed_folder: Path) -> None:
    query_image = str(mixed_folder / image_name(*SCENES[2]))
    nodes = OmniretrieveRetriever(store, similarity_top_k=3).retrieve(
        QueryBundle(query_str="", image_path=query_image)
    )
    assert isinstance(nodes[0].node, ImageNode) and nodes[0].node.image_path == query_image
    hits = store.search(Image(query_image), k=3)
    assert [n.node.node_id for n in nodes] == [h.id for h in hits]


def test_metadata_filters(store: Store) -> None:
    only_images = MetadataFilters(filters=[MetadataFilter(key="file_type", value="image/png")])
    nodes = OmniretrieveRetriever(store, similarity_top_k=20, filters=only_images).retrieve("a red circle")
    assert len(nodes) == len(SCENES) and all(isinstance(n.node, ImageNode) for n in nodes)

    two_notes = MetadataFilters(
        filters=[
            MetadataFilter(
                key="file_name", value=["note-soup.txt", "note-green.txt"], operator=FilterOperator.IN
            ),
            MetadataFilter(key="file_name", value=image_name(*SCENES[0])),
        ],
        condition=FilterCondition.OR,
    )
    nodes = OmniretrieveRetriever(store, similarity_top_k=20, filters=two_notes).retrieve("a red circle")
    assert sorted(n.node.metadata["file_name"] for n in nodes) == sorted(
        ["note-soup.txt", "note-green.txt", image_name(*SCENES[0])]
    )

    nested = MetadataFilters(
        filters=[
            MetadataFilter(key="file_type", value="text/plain"),
            MetadataFilters(
                filters=[
                    MetadataFilter(key="file_size", value=30, operator=FilterOperator.GT),
                    MetadataFilter(key="file_name", value="note-soup.txt", operator=FilterOperator.NE),
                ]
            ),
        ]
    )
    nodes = OmniretrieveRetriever(store, similarity_top_k=20, filters=nested).retrieve("a red circle")
    sizes = {TEXTS[n.node.metadata["file_name"]] for n in nodes}
    assert sizes == {t for name, t in TEXTS.items() if len(t) + 1 > 30 and name != "note-soup.txt"}


def test_filter_translation() -> None:
    f = MetadataFilters(
        filters=[
            MetadataFilter(key="a", value=1),
            MetadataFilter(key="b", value=[1, 2], operator=FilterOperator.NIN),
            MetadataFilters(
                filters=[
                    MetadataFilter(key="c", value=2.5, operator=FilterOperator.LTE),
                    MetadataFilter(key="tags", value=["x", "y"], operator=FilterOperator.ANY),
                    MetadataFilter(key="tags", value=["z"], operator=FilterOperator.ALL),
                    MetadataFilter(key="tags", value="w", operator=FilterOperator.CONTAINS),
                ],
                condition=FilterCondition.OR,
            ),
        ]
    )
    assert metadata_filters_to_where(f) == {
        "$and": [
            {"a": {"$eq": 1}},
            {"b": {"$nin": [1, 2]}},
            {
                "$or": [
                    {"c": {"$lte": 2.5}},
                    {"$or": [{"tags": {"$contains": "x"}}, {"tags": {"$contains": "y"}}]},
                    {"tags": {"$contains": "z"}},
                    {"tags": {"$contains": "w"}},
                ]
            },
        ]
    }
    assert metadata_filters_to_where(None) is None
    assert metadata_filters_to_where(MetadataFilters(filters=[])) is None
    with pytest.raises(InvalidInputError, match="text_match"):
        metadata_filters_to_where(
            MetadataFilters(filters=[MetadataFilter(key="a", value="x", operator=FilterOperator.TEXT_MATCH)])
        )
    with pytest.raises(InvalidInputError, match="no 'not'"):
        metadata_filters_to_where(
            MetadataFilters(filters=[MetadataFilter(key="a", value="x")], condition=FilterCondition.NOT)
        )


async def test_async_retrieval(store: Store) -> None:
    retriever = OmniretrieveRetriever(store, similarity_top_k=4)
    got = await retriever.aretrieve("a blue square")
    want = retriever.retrieve("a blue square")
    assert [(n.node.node_id, n.score) for n in got] == [(n.node.node_id, n.score) for n in want]


def test_similarity_top_k(store: Store) -> None:
    retriever = OmniretrieveRetriever(store)
    assert retriever.similarity_top_k == 2 and len(retriever.retrieve("a red circle")) == 2
    retriever.similarity_top_k = 5
    assert len(retriever.retrieve("a red circle")) == 5
    with pytest.raises(InvalidInputError):
        OmniretrieveRetriever(store, similarity_top_k=0)


def test_query_engine_with_mock_llm_reranks_image_nodes(store: Store, ce_reranker: Any) -> None:
    """RetrieverQueryEngine + MockLLM + our retriever + our postprocessor over the mixed folder."""
    query = "a red circle in the top left"
    retriever = OmniretrieveRetriever(store, similarity_top_k=len(SCENES) + len(TEXTS))
    engine = RetrieverQueryEngine.from_args(
        retriever, llm=MockLLM(), node_postprocessors=[OmniretrieveRerank(reranker=ce_reranker, top_n=8)]
    )
    response = engine.query(query)
    sources = response.source_nodes
    assert len(sources) == 8
    images = [n for n in sources if isinstance(n.node, ImageNode)]
    assert images and all(isinstance(n.score, float) for n in sources)
    # The order is the reranker's own order: score the same content directly with the reranker.
    content = [
        Image(n.node.image_path) if isinstance(n.node, ImageNode) else Text(n.node.get_content())
        for n in retriever.retrieve(query)
    ]
    ids = [n.node.node_id for n in retriever.retrieve(query)]
    own = {ids[r.index]: r.score for r in ce_reranker.rerank(query, content)}
    expected = sorted(own, key=lambda i: -own[i])[:8]
    assert [n.node.node_id for n in sources] == expected
    assert [n.score for n in sources] == pytest.approx([own[i] for i in expected], abs=1e-5)
    assert response.response  # MockLLM answered from the reranked context


def test_store_reranker_scores_come_through(store: Store) -> None:
    fake = FakeReranker()
    nodes = OmniretrieveRetriever(store, similarity_top_k=3, reranker=fake).retrieve("red circle top left")
    hits = store.search("red circle top left", k=3, reranker=fake)
    assert [(n.node.node_id, n.score) for n in nodes] == [(h.id, h.rerank_score) for h in hits]


def test_from_documents(tmp_path: Path, st_embedder: Any, folder_docs: list[Any]) -> None:
    with Store(st_embedder, path=tmp_path / "s") as s:
        retriever = OmniretrieveRetriever.from_documents(folder_docs[:3], s, similarity_top_k=3)
        assert len(retriever.retrieve("a circle")) == 3 and s.count() == 3


def test_ingestion_isolates_bad_documents_and_keeps_ids(
    tmp_path: Path, st_embedder: Any, mixed_folder: Path
) -> None:
    good_image = str(mixed_folder / image_name(*SCENES[0]))
    docs: list[Any] = [
        LIDocument(id_="doc-1", text="a red circle", metadata={"lang": "en", "skip": None}),
        TextNode(id_="empty", text=""),
        ImageNode(id_="gone", image_path=str(tmp_path / "missing.png")),
        "not a node",
        ImageNode(id_="captioned", text="a red circle", image_path=good_image, metadata={"album": "shapes"}),
    ]
    with Store(st_embedder, path=tmp_path / "s") as s:
        results = add_documents(s, docs, use_node_ids=True)
        assert [r.index for r in results] == [0, 1, 2, 3, 4]
        assert [r.status for r in results] == ["added", "failed", "failed", "failed", "added"]
        assert isinstance(results[1].error, InvalidInputError)
        assert isinstance(results[2].error, MediaNotFoundError)
        assert isinstance(results[3].error, InvalidInputError)
        doc1, captioned = s.get(["doc-1", "captioned"])
        assert doc1 is not None and dict(doc1.metadata) == {"lang": "en"}
        assert captioned is not None and captioned.kind == "combined" and captioned.image == good_image
        node = (
            OmniretrieveRetriever(
                s, filters=MetadataFilters(filters=[MetadataFilter(key="album", value="shapes")])
            )
            .retrieve("circle")[0]
            .node
        )
        assert isinstance(node, ImageNode) and node.text == "a red circle" and node.image_path == good_image
        # upsert replaces the metadata
        again = add_documents(
            s,
            [LIDocument(id_="doc-1", text="a red circle", metadata={"lang": "fr"})],
            upsert=True,
            use_node_ids=True,
        )
        assert again[0].status == "updated" and s.get(["doc-1"])[0].metadata == {"lang": "fr"}  # type: ignore[union-attr]
    with pytest.raises(InvalidInputError):
        add_documents(s, "not a list")  # type: ignore[arg-type]


def test_document_to_node_covers_every_kind() -> None:
    url_image = document_to_node(
        Document(
            id="u",
            parts=("image",),
            sha256="x",
            image="https://example.com/a/cat.jpg?size=2",
            metadata={"k": 1},
        )
    )
    assert isinstance(url_image, ImageNode) and url_image.image_url == "https://example.com/a/cat.jpg?size=2"
    assert (
        url_image.image_path is None
        and url_image.image_mimetype == "image/jpeg"
        and url_image.metadata == {"k": 1}
    )
    declared = document_to_node(
        Document(
            id="d", parts=("image",), sha256="x", image="/data/blob", metadata={"file_type": "image/webp"}
        )
    )
    assert isinstance(declared, ImageNode) and declared.image_mimetype == "image/webp"
    audio = document_to_node(
        Document(id="a", parts=("text", "audio"), sha256="x", text="a bird", audio="/data/bird.wav")
    )
    assert isinstance(audio, Node) and audio.node_id == "a"
    assert audio.audio_resource is not None and str(audio.audio_resource.path) == "/data/bird.wav"
    assert audio.audio_resource.mimetype in ("audio/x-wav", "audio/wav") and audio.get_content() == "a bird"
    video = document_to_node(
        Document(id="v", parts=("video",), sha256="x", video="https://example.com/v.mp4")
    )
    assert isinstance(video, Node) and video.video_resource is not None
    assert (
        str(video.video_resource.url) == "https://example.com/v.mp4"
        and video.video_resource.mimetype == "video/mp4"
    )


def test_images_read_without_readers_file_are_stored_as_images(
    tmp_path: Path, st_embedder: Any, mixed_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without llama-index-readers-file, SimpleDirectoryReader reads a PNG as a text Document of its bytes."""
    monkeypatch.setattr(SimpleDirectoryReader, "supported_suffix_fn", staticmethod(lambda: {}))
    docs = SimpleDirectoryReader(str(mixed_folder)).load_data()
    assert not any(isinstance(d, ImageDocument) for d in docs)
    png = next(d for d in docs if d.metadata["file_type"] == "image/png")
    assert png.text.startswith("PNG") or "PNG" in png.text[:8]  # the file's bytes, decoded as text
    with Store(st_embedder, path=tmp_path / "s") as s:
        results = add_documents(s, docs)
        assert all(r.status == "added" for r in results)
        assert s.count("image") == len(SCENES) and s.count("text") == len(TEXTS)
        stored = s.get([results[docs.index(png)].id])[0]  # type: ignore[list-item]
        assert stored is not None and stored.kind == "image" and stored.image == png.metadata["file_path"]


def test_nodes_stored_by_the_vector_store_come_back_as_they_were(
    tmp_path: Path, st_embedder: Any, mixed_folder: Path
) -> None:
    """A store filled through OmniretrieveVectorStore: the retriever returns LlamaIndex's own nodes."""
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo
    from llama_index.vector_stores.omniretrieve import OmniretrieveVectorStore

    image = ImageNode(id_="img", image_path=str(mixed_folder / image_name(*SCENES[0])), metadata={"k": 1})
    text = TextNode(id_="txt", text="a red circle in the top left", metadata={"k": 2})
    text.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="doc-7")
    vector_store = OmniretrieveVectorStore.from_params(model=st_embedder, persist_dir=tmp_path / "s")
    vector_store.add([image, text])
    nodes = {
        n.node.node_id: n.node for n in OmniretrieveRetriever(vector_store.store).retrieve("a red circle")
    }
    assert isinstance(nodes["img"], ImageNode) and nodes["img"].image_path == image.image_path
    assert nodes["img"].metadata == {"k": 1} and "_node_content" not in nodes["txt"].metadata
    assert nodes["txt"].get_content() == text.text and nodes["txt"].ref_doc_id == "doc-7"
    vector_store.close()
