"""The public conversion layer: nodes <-> stored documents, where filters, model names or ready objects."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest
from llama_index.core.schema import (
    Document as LIDocument,
)
from llama_index.core.schema import (
    ImageNode,
    MediaResource,
    Node,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.embeddings.omniretrieve.convert import (
    NODE_CONTENT_KEY,
    REF_DOC_ID_KEY,
    document_to_node,
    file_source,
    join_where,
    node_item,
    node_metadata,
    resolve_model,
)
from llama_index_embeddings_testdata import SCENES, image_name

from omniretrieve import Embedder, InvalidInputError, Reranker
from omniretrieve.documents import Document
from omniretrieve.testing import FakeEmbedder, FakeReranker
from omniretrieve.types import Combined, Image, Text


def stored(node: TextNode | Node) -> Document:
    """The document a store keeps for a node: its content as an item, its metadata from ``node_metadata``."""
    return Document.from_item(node_item(node), id=node.node_id, metadata=node_metadata(node))


def test_nodes_round_trip_through_stored_documents(mixed_folder: Path) -> None:
    path = str(mixed_folder / image_name(*SCENES[0]))
    png = Path(path).read_bytes()
    source = RelatedNodeInfo(node_id="doc-1")
    nodes: list[TextNode | Node] = [
        TextNode(id_="t", text="a red circle", metadata={"page": 3, "tags": ["a", "b"]}),
        ImageNode(id_="i", image_path=path, metadata={"album": "shapes"}),
        ImageNode(id_="b", image=base64.b64encode(png).decode(), text="a caption"),
        Node(id_="m", image_resource=MediaResource(data=png), metadata={"kind": "in memory"}),
    ]
    nodes[0].relationships[NodeRelationship.SOURCE] = source
    for node in nodes:
        back = document_to_node(stored(node))
        assert type(back) is type(node) and back.node_id == node.node_id
        assert back.metadata == node.metadata and back.ref_doc_id == node.ref_doc_id
        assert back.get_content() == node.get_content()
    assert document_to_node(stored(nodes[1])).image_path == path  # type: ignore[attr-defined]
    assert document_to_node(stored(nodes[2])).image == nodes[2].image  # type: ignore[attr-defined]
    # LlamaIndex does not serialise in-memory media (MediaResource.data); a store copy stands in.
    in_memory = stored(nodes[3])
    assert in_memory.image is None and document_to_node(in_memory).image_resource.data is None  # type: ignore[attr-defined,union-attr]
    copied = document_to_node(replace(in_memory, image=path))
    assert isinstance(copied, Node) and copied.image_resource is not None
    assert str(copied.image_resource.path) == path and copied.image_resource.mimetype == "image/png"


def test_node_metadata_is_storable_and_carries_the_ref_doc_id() -> None:
    node = TextNode(id_="t", text="x", metadata={"page": 3, "empty": None})
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="doc-1")
    metadata = node_metadata(node)
    assert metadata[REF_DOC_ID_KEY] == "doc-1" and metadata["page"] == 3
    assert "empty" not in metadata  # Chroma stores no None
    assert json.loads(metadata[NODE_CONTENT_KEY])["text"] == ""  # the text is the document's own
    assert node_metadata(TextNode(text="no source"))[REF_DOC_ID_KEY] == "None"
    with pytest.raises(InvalidInputError, match="nested"):
        Document.from_item("x", metadata=node_metadata(TextNode(text="x", metadata={"a": {"b": 1}})))


def test_documents_not_stored_from_llama_index_are_built_from_their_parts(mixed_folder: Path) -> None:
    path = str(mixed_folder / image_name(*SCENES[1]))
    text = document_to_node(Document.from_item("a note", id="n", metadata={"k": 1}))
    assert isinstance(text, TextNode) and text.text == "a note" and text.metadata == {"k": 1}
    image = document_to_node(Document.from_item(Image(path), id="i"))
    assert isinstance(image, ImageNode) and image.image_path == path and image.image_mimetype == "image/png"
    combined = document_to_node(Document.from_item(Combined(text="caption", image=Image(path)), id="c"))
    assert isinstance(combined, ImageNode) and combined.text == "caption"
    # Metadata that only looks like a node's JSON falls back to the parts.
    odd = document_to_node(Document.from_item("x", id="o", metadata={NODE_CONTENT_KEY: "not json"}))
    assert isinstance(odd, TextNode) and odd.text == "x" and odd.node_id == "o"


def test_node_items_keep_text_and_media_apart(mixed_folder: Path) -> None:
    path = str(mixed_folder / image_name(*SCENES[2]))
    text = node_item(TextNode(text="https://example.com/x.png"))  # a URL-shaped text stays text
    assert isinstance(text, Text) and text.text == "https://example.com/x.png"
    image = node_item(ImageNode(image_path=path))
    assert isinstance(image, Image) and image.source == path
    combined = node_item(LIDocument(text="a caption", image_resource=MediaResource(path=path)))
    assert isinstance(combined, Combined) and combined.text == "a caption"
    assert combined.image is not None and combined.image.source == path
    with pytest.raises(InvalidInputError, match="no text and no image"):
        node_item(TextNode(text="   "))


def test_join_where_and_file_source(tmp_path: Path) -> None:
    a, b = {"x": {"$eq": 1}}, {"y": {"$in": [1, 2]}}
    assert join_where([]) is None and join_where([None, {}]) is None
    assert join_where([a, None]) == a
    assert join_where([a, b]) == {"$and": [a, b]}
    assert join_where([a, b], "$or") == {"$or": [a, b]}
    assert file_source({"file_path": str(tmp_path / "f.txt")}) == (tmp_path / "f.txt").resolve().as_uri()
    assert file_source({"file_path": ""}) is None and file_source({}) is None


def test_resolve_model_takes_a_name_or_a_ready_object() -> None:
    fake = FakeEmbedder(8)
    no_options = {"device": None}
    assert resolve_model("demo", None, Embedder, role="embedder", options=no_options) == ("demo", None)
    assert resolve_model(Path("models/clip"), None, Embedder, role="embedder", options=no_options) == (
        "models/clip",
        None,
    )
    assert resolve_model(fake, None, Embedder, role="embedder", options=no_options) == ("fake:8", fake)
    assert resolve_model(None, fake, Embedder, role="embedder", options=no_options) == ("fake:8", fake)
    reranker = FakeReranker()
    assert resolve_model(reranker, None, Reranker, role="reranker", options={}) == ("fake-reranker", reranker)
    with pytest.raises(InvalidInputError, match="Reranker protocol"):
        resolve_model(fake, None, Reranker, role="reranker", options={})
    with pytest.raises(InvalidInputError, match="configure the embedder"):
        resolve_model(fake, None, Embedder, role="embedder", options={"device": "cpu"})
    with pytest.raises(InvalidInputError, match="not both"):
        resolve_model("demo", fake, Embedder, role="embedder", options={})
    with pytest.raises(InvalidInputError, match="not both"):
        resolve_model(None, None, Embedder, role="embedder", options={})
