"""``OmniretrieveVectorStore`` on its own: construction, add, query, filters, delete, async."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import (
    ImageNode,
    MediaResource,
    Node,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.embeddings.omniretrieve import OmniretrieveEmbedding
from llama_index.vector_stores.omniretrieve import OmniretrieveVectorStore

from omniretrieve import (
    InvalidInputError,
    InvalidVectorError,
    MediaNotFoundError,
    Store,
    StoreConnectionError,
    URLNotAllowedError,
)
from omniretrieve.media import MediaLoader
from omniretrieve.testing import FakeEmbedder
from omniretrieve.types import Image, Text


@pytest.fixture()
def fake() -> FakeEmbedder:
    return FakeEmbedder(dimension=16, modalities=("text", "image"))


@pytest.fixture()
def vector_store(tmp_path: Path, fake: FakeEmbedder) -> Iterator[OmniretrieveVectorStore]:
    vs = OmniretrieveVectorStore.from_params(model=fake, persist_dir=tmp_path / "store")
    yield vs
    vs.close()


def unit(seed: int, dimension: int = 16) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(dimension)
    out: list[float] = (v / np.linalg.norm(v)).tolist()
    return out


def png(corpus: Path, i: int = 0) -> Path:
    return corpus / f"img-{i:04d}.png"


def text_node(id_: str, text: str, *, source: str | None = None, seed: int = 0, **metadata: Any) -> TextNode:
    node = TextNode(id_=id_, text=text, metadata=metadata, embedding=unit(seed))
    if source is not None:
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=source)
    return node


def query(vs: OmniretrieveVectorStore, vector: Any, k: int = 10, **fields: Any) -> list[str]:
    result = vs.query(VectorStoreQuery(query_embedding=list(vector), similarity_top_k=k, **fields))
    assert result.ids is not None
    return result.ids


# -- construction ------------------------------------------------------------------------------


def test_built_from_params_or_from_a_store(tmp_path: Path, fake: FakeEmbedder) -> None:
    vs = OmniretrieveVectorStore.from_params(model="fake:8", persist_dir=tmp_path / "a", name="notes")
    assert isinstance(vs, BasePydanticVectorStore) and vs.class_name() == "OmniretrieveVectorStore"
    assert vs.stores_text and vs.is_embedding_query
    assert vs.persist_dir == str(tmp_path / "a") and vs.name == "notes" and vs.model_name == "fake:8"
    assert isinstance(vs.client, Store) and vs.client is vs.store and vs.host is None
    vs.close()
    with Store(fake, path=tmp_path / "b") as store:
        wrapped = OmniretrieveVectorStore(store=store, calibration="rrf", query_modality="image")
        assert wrapped.store is store and wrapped.model_name == fake.model_id
        settings = wrapped.to_dict()
        assert settings["calibration"] == "rrf" and settings["query_modality"] == "image"
        assert "_store" not in settings
    # An OmniretrieveEmbedding hands over its embedder: LlamaIndex and the store share one model.
    embed_model = OmniretrieveEmbedding(fake)
    shared = OmniretrieveVectorStore.from_params(model=embed_model, persist_dir=tmp_path / "c")
    assert shared.store.embedder is fake
    shared.close()


def test_constructor_errors(tmp_path: Path, fake: FakeEmbedder) -> None:
    with pytest.raises(InvalidInputError, match="persist_dir= .* or host="):
        OmniretrieveVectorStore.from_params(model=fake)
    with pytest.raises(InvalidInputError, match="not both"):
        OmniretrieveVectorStore.from_params(model=fake, persist_dir=tmp_path, host="localhost")
    with pytest.raises(InvalidInputError, match="configure the embedder"):
        OmniretrieveVectorStore.from_params(model=fake, persist_dir=tmp_path, device="cpu")
    with pytest.raises(InvalidInputError, match="Embedder protocol"):
        OmniretrieveVectorStore.from_params(model=3, persist_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="must be an omniretrieve Store"):
        OmniretrieveVectorStore(store=str(tmp_path))  # type: ignore[arg-type]
    with Store(fake, path=tmp_path / "s") as store, pytest.raises(InvalidInputError, match="query_modality"):
        OmniretrieveVectorStore(store, query_modality="smell")


def test_server_parameters_reach_the_store() -> None:
    """``host=``/``port=`` open a client-server store (here: nothing listens, so it cannot connect)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreConnectionError):
        OmniretrieveVectorStore.from_params(
            model="fake:8", host="127.0.0.1", port=port, headers={"x-token": "secret"}, timeout=2.0
        )


# -- add and query -----------------------------------------------------------------------------


def test_text_nodes_keep_llama_index_embeddings_and_round_trip(vector_store: OmniretrieveVectorStore) -> None:
    nodes = [
        text_node("a", "a red circle", source="doc-1", seed=1, page=1, tags=["x", "y"]),
        text_node("b", "a blue square", source="doc-1", seed=2, page=2),
        text_node("c", "tomato soup", source="doc-2", seed=3, page=3),
    ]
    assert vector_store.add(nodes) == ["a", "b", "c"]
    stored = vector_store.store.get_vectors(["a", "b", "c"])
    for node, vector in zip(nodes, stored, strict=True):
        assert vector is not None
        np.testing.assert_allclose(vector, node.embedding, atol=1e-6)
    result = vector_store.query(VectorStoreQuery(query_embedding=unit(2), similarity_top_k=3))
    assert result.ids is not None and result.ids[0] == "b" and set(result.ids) == {"a", "b", "c"}
    assert result.similarities == sorted(result.similarities or [], reverse=True)
    back = {n.node_id: n for n in result.nodes or []}
    for node in nodes:
        got = back[node.node_id]
        assert isinstance(got, TextNode) and got.text == node.text and got.metadata == node.metadata
        assert got.ref_doc_id == node.ref_doc_id and got.embedding is None


def test_media_nodes_are_embedded_from_their_media_by_the_store(
    vector_store: OmniretrieveVectorStore, fake: FakeEmbedder, world_corpus: Path
) -> None:
    data = png(world_corpus, 1).read_bytes()
    nodes = [
        # VectorStoreIndex embeds an ImageNode's text (its metadata): that embedding is not used.
        ImageNode(id_="path", image_path=str(png(world_corpus, 0)), embedding=unit(9)),
        ImageNode(id_="b64", image=base64.b64encode(data).decode()),
        Node(id_="memory", image_resource=MediaResource(data=data)),
        ImageNode(id_="captioned", text="a caption", image_path=str(png(world_corpus, 2))),
        TextNode(id_="plain", text="no embedding given"),
    ]
    vector_store.add(nodes)
    ids = [n.node_id for n in nodes]
    vectors = dict(zip(ids, vector_store.store.get_vectors(ids), strict=True))
    expected = fake.embed(
        [
            Image(str(png(world_corpus, 0))),
            Image(data),
            Image(data),
            {"text": "a caption", "image": str(png(world_corpus, 2))},
            Text("no embedding given"),
        ]
    )
    for node, want in zip(nodes, expected, strict=True):
        np.testing.assert_allclose(vectors[node.node_id], want, atol=1e-6)
    assert vector_store.store.count("image") == 3 and vector_store.store.count("combined") == 1
    result = vector_store.query(
        VectorStoreQuery(query_embedding=fake.embed([Image(data)])[0].tolist(), similarity_top_k=5),
        query_modality="image",
    )
    back = {n.node_id: n for n in result.nodes or []}
    assert result.ids is not None and result.ids[:2] in (["b64", "memory"], ["memory", "b64"])
    assert isinstance(back["path"], ImageNode) and back["path"].image_path == str(png(world_corpus, 0))
    assert isinstance(back["b64"], ImageNode) and back["b64"].image == nodes[1].image  # type: ignore[attr-defined]
    assert isinstance(back["memory"], Node) and back["memory"].image_resource is not None
    assert isinstance(back["captioned"], ImageNode) and back["captioned"].text == "a caption"


def test_in_memory_images_come_back_by_the_stores_copy(
    tmp_path: Path, fake: FakeEmbedder, world_corpus: Path
) -> None:
    vs = OmniretrieveVectorStore.from_params(model=fake, persist_dir=tmp_path / "s", copy_media=True)
    data = png(world_corpus, 3).read_bytes()
    vs.add([Node(id_="memory", image_resource=MediaResource(data=data), metadata={"k": 1})])
    [node] = vs.get_nodes(["memory"])
    assert isinstance(node, Node) and node.image_resource is not None and node.image_resource.path is not None
    assert Path(node.image_resource.path).read_bytes() == data and node.metadata == {"k": 1}
    vs.close()


def test_adding_an_id_again_replaces_it(vector_store: OmniretrieveVectorStore) -> None:
    vector_store.add([text_node("a", "old", seed=1, v=1)])
    vector_store.add([text_node("a", "new", seed=2, v=2)])
    [node] = vector_store.get_nodes(["a"])
    assert node.get_content() == "new" and node.metadata == {"v": 2}
    np.testing.assert_allclose(vector_store.store.get_vectors(["a"])[0], unit(2), atol=1e-6)  # type: ignore[arg-type]


def test_bad_nodes(
    vector_store: OmniretrieveVectorStore, world_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checked before anything is written: no content, metadata the store cannot keep, not a node.
    with pytest.raises(InvalidInputError, match="no text and no image"):
        vector_store.add([text_node("ok", "fine"), TextNode(id_="empty", text="  ")])
    with pytest.raises(InvalidInputError, match="nested"):
        vector_store.add([text_node("ok", "fine"), text_node("n", "x", meta={"a": 1})])
    with pytest.raises(InvalidInputError, match="empty list"):
        image = ImageNode(id_="i", image_path=str(png(world_corpus)), metadata={"tags": []})
        vector_store.add([text_node("ok", "fine"), image])
    with pytest.raises(InvalidInputError, match="not a LlamaIndex node"):
        vector_store.add(["a string"])  # type: ignore[list-item]
    assert len(vector_store.store) == 0
    # Found while writing: the first error is raised, the good nodes are stored.
    with pytest.raises(MediaNotFoundError):
        vector_store.add(
            [ImageNode(id_="gone", image_path=str(world_corpus / "missing.png")), text_node("ok", "fine")]
        )
    assert vector_store.get_nodes(["ok", "gone"])[0].node_id == "ok" and len(vector_store.store) == 1
    with pytest.raises(InvalidVectorError):
        vector_store.add([TextNode(id_="short", text="x", embedding=[1.0, 0.0])])

    def no_connect(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(MediaLoader, "_connect", no_connect)
    with pytest.raises(URLNotAllowedError):  # the embedder's media policy: no URLs by default
        vector_store.add([ImageNode(id_="url", image_url="https://example.com/cat.png")])


def test_query_options_and_errors(
    vector_store: OmniretrieveVectorStore, world_corpus: Path, fake: FakeEmbedder
) -> None:
    vector_store.add(
        [text_node("t", "text", seed=1), ImageNode(id_="i", image_path=str(png(world_corpus, 0)))]
    )
    q = unit(1)
    assert query(vector_store, q) == ["t", "i"]
    only_images = vector_store.query(
        VectorStoreQuery(query_embedding=q, similarity_top_k=5), modalities=["image"]
    )
    assert only_images.ids == ["i"]
    raw = vector_store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=5), calibration="none")
    assert raw.similarities is not None and raw.similarities[0] == pytest.approx(1.0, abs=1e-5)
    where = vector_store.query(
        VectorStoreQuery(query_embedding=q, similarity_top_k=5), where={"_node_type": "ImageNode"}
    )
    assert where.ids == ["i"]
    with pytest.raises(InvalidInputError, match="no query_embedding"):
        vector_store.query(VectorStoreQuery(query_str="text", similarity_top_k=2))
    with pytest.raises(InvalidInputError, match="only the default mode"):
        vector_store.query(VectorStoreQuery(query_embedding=q, mode=VectorStoreQueryMode.MMR))
    with pytest.raises(InvalidInputError, match="unknown query options"):
        vector_store.query(VectorStoreQuery(query_embedding=q), mmr_threshold=0.5)
    with pytest.raises(InvalidInputError, match="not both"):
        vector_store.query(
            VectorStoreQuery(
                query_embedding=q, filters=MetadataFilters(filters=[MetadataFilter(key="a", value=1)])
            ),
            where={"a": 1},
        )
    with pytest.raises(InvalidInputError, match="query_modality"):
        vector_store.query(VectorStoreQuery(query_embedding=q), query_modality="smell")


def test_query_modality(tmp_path: Path, demo_embedder: Any, world_corpus: Path) -> None:
    """An image query embedding is centred by the image mean: LlamaIndex's image-to-image sends query_str=""."""
    vs = OmniretrieveVectorStore.from_params(model=demo_embedder, persist_dir=tmp_path / "s")
    vs.add([ImageNode(id_=p.stem, image_path=str(p)) for p in sorted(world_corpus.glob("*.png"))])
    vs.add([TextNode(id_=p.stem, text=p.read_text()) for p in sorted(world_corpus.glob("*.txt"))])
    image_query = demo_embedder.embed_query(Image(str(png(world_corpus, 4)))).tolist()
    as_image = vs.store.search_vector(image_query, 8, query_modality="image")
    as_text = vs.store.search_vector(image_query, 8, query_modality="text")
    assert [h.score for h in as_image] != [h.score for h in as_text]
    for result in (
        vs.query(VectorStoreQuery(query_embedding=image_query, similarity_top_k=8, query_str="")),
        vs.query(VectorStoreQuery(query_embedding=image_query, similarity_top_k=8), query_modality="image"),
    ):
        assert result.ids == [h.document.id for h in as_image]
        assert result.similarities == pytest.approx([h.score for h in as_image])
    text_default = vs.query(VectorStoreQuery(query_embedding=image_query, similarity_top_k=8, query_str="x"))
    assert text_default.similarities == pytest.approx([h.score for h in as_text])
    vs.close()


def test_filters_and_doc_ids(vector_store: OmniretrieveVectorStore) -> None:
    vector_store.add(
        [
            text_node("a", "one", source="doc-1", seed=1, year=2023, tags=["red"]),
            text_node("b", "two", source="doc-1", seed=2, year=2024, tags=["red", "blue"]),
            text_node("c", "three", source="doc-2", seed=3, year=2025, tags=["blue"]),
        ]
    )
    q = unit(1)

    def ids(*filters: MetadataFilter | MetadataFilters, condition: str = "and", **fields: Any) -> set[str]:
        f = MetadataFilters(filters=list(filters), condition=condition) if filters else None
        return set(query(vector_store, q, filters=f, **fields))

    assert ids(MetadataFilter(key="year", value=2024, operator=FilterOperator.GTE)) == {"b", "c"}
    assert ids(MetadataFilter(key="tags", value=["blue"], operator=FilterOperator.ANY)) == {"b", "c"}
    assert ids(
        MetadataFilter(key="year", value=2023),
        MetadataFilter(key="year", value=2025),
        condition="or",
    ) == {"a", "c"}
    assert ids(MetadataFilter(key="ref_doc_id", value="doc-2")) == {"c"}
    assert ids(doc_ids=["doc-1"]) == {"a", "b"}
    assert ids(MetadataFilter(key="year", value=2024), doc_ids=["doc-1"]) == {"b"}
    with pytest.raises(InvalidInputError, match="text_match"):
        ids(MetadataFilter(key="year", value="20", operator=FilterOperator.TEXT_MATCH))


# -- delete and get ----------------------------------------------------------------------------


def test_delete_by_ref_doc_id_and_by_nodes(vector_store: OmniretrieveVectorStore) -> None:
    vector_store.add(
        [
            text_node("a", "one", source="doc-1", seed=1, k="x"),
            text_node("b", "two", source="doc-1", seed=2, k="y"),
            text_node("c", "three", source="doc-2", seed=3, k="x"),
            text_node("d", "four", source="doc-3", seed=4, k="y"),
            text_node("e", "five", seed=5, k="z"),
        ]
    )
    vector_store.delete("doc-1")
    assert set(query(vector_store, unit(1))) == {"c", "d", "e"}
    vector_store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="k", value="y")]))
    assert set(query(vector_store, unit(1))) == {"c", "e"}
    vector_store.delete_nodes(node_ids=[])  # nothing: never "delete everything"
    vector_store.delete_nodes()
    vector_store.delete_nodes(["e", "unknown"])
    assert query(vector_store, unit(1)) == ["c"]
    with pytest.raises(NotImplementedError, match="delete by ref_doc_id"):
        vector_store.clear()


def test_get_nodes(vector_store: OmniretrieveVectorStore) -> None:
    vector_store.add([text_node("a", "one", seed=1), text_node("b", "two", seed=2)])
    assert [n.node_id for n in vector_store.get_nodes(["b", "missing", "a"])] == ["b", "a"]
    with pytest.raises(InvalidInputError, match="by id only"):
        vector_store.get_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="k", value=1)]))
    with pytest.raises(InvalidInputError, match="by id only"):
        vector_store.get_nodes()


# -- async -------------------------------------------------------------------------------------


async def test_async_variants_run_in_a_worker_thread(vector_store: OmniretrieveVectorStore) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    store = vector_store.store
    for name in ("add_vectors", "search_vector", "delete", "get"):
        original = getattr(store, name)

        def spy(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            seen.append(threading.get_ident())
            return _original(*args, **kwargs)

        setattr(store, name, spy)
    assert await vector_store.async_add(
        [text_node("a", "one", source="doc-1", seed=1), text_node("b", "two", seed=2)]
    ) == ["a", "b"]
    result = await vector_store.aquery(VectorStoreQuery(query_embedding=unit(2), similarity_top_k=2))
    assert result.ids == ["b", "a"]
    assert [n.node_id for n in await vector_store.aget_nodes(["a"])] == ["a"]
    await vector_store.adelete("doc-1")
    await vector_store.adelete_nodes(["b"])
    assert len(seen) == 5 and all(t != loop_thread for t in seen)
    assert query(vector_store, unit(1)) == []
