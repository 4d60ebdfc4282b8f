from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.omniretrieve_rerank import OmniretrieveRerank
from llama_index_rerank_testdata import SCENES, image_name

from omniretrieve.errors import InvalidInputError, URLNotAllowedError
from omniretrieve.media import MediaPolicy
from omniretrieve.testing import FakeEmbedder
from omniretrieve.testing.rerankers import FakeReranker, word_overlap
from omniretrieve.types import Combined, Image, Text


def image_path(folder: Path, i: int) -> str:
    return str(folder / image_name(*SCENES[i]))


def mixed_nodes(folder: Path) -> list[NodeWithScore]:
    """Nodes as LlamaIndex retrievers return them: text, image by path, base64 image, captioned image."""
    return [
        NodeWithScore(node=TextNode(id_="t-weather", text="the weather is sunny"), score=0.9),
        NodeWithScore(node=ImageNode(id_="i-path", image_path=image_path(folder, 0)), score=0.8),
        NodeWithScore(node=TextNode(id_="t-red", text="a red circle in the top left"), score=0.7),
        NodeWithScore(
            node=ImageNode(
                id_="i-b64", image=base64.b64encode(Path(image_path(folder, 1)).read_bytes()).decode()
            ),
            score=0.6,
        ),
        NodeWithScore(
            node=ImageNode(id_="i-captioned", text="red square", image_path=image_path(folder, 3)), score=0.5
        ),
    ]


def test_is_a_postprocessor_with_settings(reranker_path: Path) -> None:
    rerank = OmniretrieveRerank(reranker_path, top_n=3, device="cpu")
    assert isinstance(rerank, BaseNodePostprocessor)
    assert rerank.class_name() == "OmniretrieveRerank"
    assert rerank.model == str(reranker_path) and rerank.top_n == 3
    assert rerank.reranker.modalities == frozenset({"text", "image"})
    settings = rerank.to_dict()
    assert settings["top_n"] == 3 and settings["metadata_mode"] == MetadataMode.NONE
    assert "_reranker" not in settings


def test_constructor_refuses_ambiguous_settings(reranker_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="either a model name"):
        OmniretrieveRerank()
    with pytest.raises(InvalidInputError, match="either a model name"):
        OmniretrieveRerank(reranker_path, reranker=FakeReranker())
    with pytest.raises(InvalidInputError, match="top_n"):
        OmniretrieveRerank(reranker=FakeReranker(), top_n=0)
    with pytest.raises(InvalidInputError, match="configure the reranker"):
        OmniretrieveRerank(reranker=FakeReranker(), device="cpu")
    with pytest.raises(InvalidInputError, match="configure the reranker"):
        OmniretrieveRerank(FakeReranker(), media_policy=MediaPolicy())
    with pytest.raises(InvalidInputError, match="Reranker protocol"):
        OmniretrieveRerank(reranker="not a reranker")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="Reranker protocol"):
        OmniretrieveRerank(FakeEmbedder(8))  # type: ignore[arg-type]
    assert OmniretrieveRerank(reranker=FakeReranker()).model == FakeReranker().model_id


def test_a_ready_reranker_is_accepted_where_a_name_is(mixed_folder: Path) -> None:
    """``OmniretrieveRerank(FakeReranker())`` once failed with a TypeError about paths."""
    fake = FakeReranker()
    for rerank in (OmniretrieveRerank(fake, top_n=2), OmniretrieveRerank(reranker=fake, top_n=2)):
        assert rerank.reranker is fake and rerank.model == "fake-reranker"
        out = rerank.postprocess_nodes(mixed_nodes(mixed_folder), query_str="a red circle in the top left")
        assert [n.node.node_id for n in out][0] == "t-red" and len(out) == 2


def test_media_policy_applies_to_a_model_loaded_by_name(reranker_path: Path) -> None:
    policy = MediaPolicy(allow_urls=True)
    assert OmniretrieveRerank(reranker_path, device="cpu", media_policy=policy).media_policy is policy
    assert OmniretrieveRerank(reranker_path, device="cpu").media_policy == MediaPolicy()
    with pytest.raises(InvalidInputError, match="must be an omniretrieve.MediaPolicy"):
        OmniretrieveRerank(reranker_path, media_policy=True)  # type: ignore[arg-type]


def test_nodes_of_every_kind_become_the_right_items(mixed_folder: Path) -> None:
    fake = FakeReranker()
    OmniretrieveRerank(reranker=fake).postprocess_nodes(mixed_nodes(mixed_folder), query_str="red circle")
    [(query, items)] = fake.calls
    assert isinstance(query, Text) and query.text == "red circle"
    assert [type(i) for i in items] == [Text, Image, Text, Image, Combined]
    assert items[1].source == image_path(mixed_folder, 0)  # type: ignore[union-attr]
    assert items[3].source == Path(image_path(mixed_folder, 1)).read_bytes()  # type: ignore[union-attr]
    combined = items[4]
    assert isinstance(combined, Combined) and combined.text == "red square"
    assert combined.image is not None and combined.image.source == image_path(mixed_folder, 3)


def test_order_and_scores_are_the_rerankers(mixed_folder: Path) -> None:
    nodes = mixed_nodes(mixed_folder)
    fake = FakeReranker()
    out = OmniretrieveRerank(reranker=fake).postprocess_nodes(nodes, query_str="red circle top left")
    [(query, items)] = fake.calls
    # Python's sort is stable: ties keep their incoming order, as the reranker's do.
    expected = sorted(range(len(items)), key=lambda i: -word_overlap(query, items[i]))
    assert [n.node.node_id for n in out] == [nodes[i].node.node_id for i in expected]
    assert [n.score for n in out] == [word_overlap(query, items[i]) for i in expected]
    # The incoming nodes are not modified.
    assert [n.score for n in nodes] == [0.9, 0.8, 0.7, 0.6, 0.5]


def test_top_n_and_keep_retrieval_score(mixed_folder: Path) -> None:
    nodes = mixed_nodes(mixed_folder)
    out = OmniretrieveRerank(reranker=FakeReranker(), top_n=2, keep_retrieval_score=True).postprocess_nodes(
        nodes, QueryBundle("red circle top left")
    )
    assert [n.node.node_id for n in out] == ["t-red", "i-path"]
    assert out[0].node.metadata["retrieval_score"] == 0.7


def test_real_multimodal_reranker_orders_by_its_own_scores(mixed_folder: Path, ce_reranker: Any) -> None:
    nodes = mixed_nodes(mixed_folder)
    out = OmniretrieveRerank(reranker=ce_reranker).postprocess_nodes(nodes, query_str="a red circle")
    assert len(out) == len(nodes) and all(isinstance(n.score, float) for n in out)
    # The reranker's own scores for the same content, computed without the adapter.
    content = _content(mixed_folder)
    own = {r.index: r.score for r in ce_reranker.rerank("a red circle", content)}
    by_id = {n.node.node_id: i for i, n in enumerate(nodes)}
    got = [(n.node.node_id, n.score) for n in out]
    assert [s for _, s in got] == pytest.approx([own[by_id[i]] for i, _ in got], abs=1e-5)
    assert [by_id[i] for i, _ in got] == sorted(own, key=lambda i: -own[i])
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


def _content(folder: Path) -> list[Text | Image | Combined]:
    """What the reranker reads of :func:`mixed_nodes`, in the same order."""
    return [
        Text("the weather is sunny"),
        Image(image_path(folder, 0)),
        Text("a red circle in the top left"),
        Image(image_path(folder, 1)),
        Combined(text="red square", image=Image(image_path(folder, 3))),
    ]


def test_a_fusing_reranker_gets_the_nodes_scores_as_first_stage_scores(
    mixed_folder: Path, reranker_path: Path
) -> None:
    """The postprocessor gives what ``Store.search`` gives: the core's fused order and scores."""
    from omniretrieve.rerank import CrossEncoderReranker

    fusing = CrossEncoderReranker(reranker_path, device="cpu", first_stage_weight=0.9)
    content = _content(mixed_folder)
    alone = [r.index for r in fusing.rerank("a red circle", content)]
    # First-stage scores in the reverse of the reranker's own order: at weight 0.9 they decide.
    first_stage = [0.0] * len(content)
    for rank, index in enumerate(alone):
        first_stage[index] = 0.5 + 0.1 * rank
    nodes = [
        NodeWithScore(node=n.node, score=s)
        for n, s in zip(mixed_nodes(mixed_folder), first_stage, strict=True)
    ]
    fused = fusing.rerank("a red circle", content, first_stage_scores=first_stage)
    assert [r.index for r in fused] != alone  # fusion changes the order: the test can tell

    out = OmniretrieveRerank(reranker=fusing).postprocess_nodes(nodes, query_str="a red circle")
    assert [n.node.node_id for n in out] == [nodes[r.index].node.node_id for r in fused]
    assert [n.score for n in out] == pytest.approx([r.score for r in fused], abs=1e-5)

    # One node without a retrieval score: this call ranks by the reranker alone.
    nodes[2] = NodeWithScore(node=nodes[2].node, score=None)
    out = OmniretrieveRerank(reranker=fusing).postprocess_nodes(nodes, query_str="a red circle")
    assert [n.node.node_id for n in out] == [nodes[i].node.node_id for i in alone]


def test_image_query_from_the_bundle(mixed_folder: Path, ce_reranker: Any) -> None:
    fake = FakeReranker()
    OmniretrieveRerank(reranker=fake).postprocess_nodes(
        mixed_nodes(mixed_folder), QueryBundle(query_str="", image_path=image_path(mixed_folder, 0))
    )
    assert isinstance(fake.calls[0][0], Image)
    fake.calls.clear()
    OmniretrieveRerank(reranker=fake).postprocess_nodes(
        mixed_nodes(mixed_folder), QueryBundle(query_str="red", image_path=image_path(mixed_folder, 0))
    )
    assert isinstance(fake.calls[0][0], Combined)
    # The real model reads an image query too.
    out = OmniretrieveRerank(reranker=ce_reranker).postprocess_nodes(
        mixed_nodes(mixed_folder), QueryBundle(query_str="", image_path=image_path(mixed_folder, 0))
    )
    assert all(isinstance(n.score, float) for n in out)


def test_unloadable_nodes_come_last_unscored_and_urls_are_never_resolved_by_llamaindex(
    mixed_folder: Path, ce_reranker: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_resolve(self: Any) -> Any:
        raise AssertionError("ImageNode.resolve_image fetches URLs with no policy and must not be called")

    monkeypatch.setattr(ImageNode, "resolve_image", no_resolve)
    nodes = [
        NodeWithScore(node=ImageNode(id_="url", image_url="https://example.com/red-circle.png"), score=0.9),
        NodeWithScore(node=TextNode(id_="empty", text=""), score=0.8),
        NodeWithScore(node=ImageNode(id_="missing", image_path=str(mixed_folder / "no-such.png")), score=0.7),
        NodeWithScore(node=TextNode(id_="t", text="a red circle"), score=0.1),
        NodeWithScore(node=ImageNode(id_="i", image_path=image_path(mixed_folder, 0)), score=0.05),
    ]
    out = OmniretrieveRerank(reranker=ce_reranker).postprocess_nodes(nodes, query_str="red circle")
    ids = [n.node.node_id for n in out]
    assert set(ids[:2]) == {"t", "i"} and all(isinstance(n.score, float) for n in out[:2])
    assert ids[2:] == ["url", "empty", "missing"]  # unscored: in their incoming order
    assert all(n.score is None for n in out[2:])
    assert "url" in caplog.text and "URLs are disabled" in caplog.text
    with_top_n = OmniretrieveRerank(reranker=ce_reranker, top_n=3).postprocess_nodes(
        nodes, query_str="red circle"
    )
    assert [n.node.node_id for n in with_top_n] == ids[:3]
    # Under a policy that refuses URLs the error is the policy's.
    [result] = ce_reranker.rerank("q", [Image("https://example.com/x.png")])
    assert isinstance(result.error, URLNotAllowedError)


def test_needs_a_query() -> None:
    rerank = OmniretrieveRerank(reranker=FakeReranker())
    with pytest.raises(InvalidInputError, match="query"):
        rerank.postprocess_nodes([NodeWithScore(node=TextNode(text="x"))])
    assert rerank.postprocess_nodes([], query_str="q") == []


async def test_async_postprocess(mixed_folder: Path) -> None:
    rerank = OmniretrieveRerank(reranker=FakeReranker(), top_n=2)
    got = await rerank.apostprocess_nodes(mixed_nodes(mixed_folder), query_str="red circle top left")
    want = rerank.postprocess_nodes(mixed_nodes(mixed_folder), query_str="red circle top left")
    assert [(n.node.node_id, n.score) for n in got] == [(n.node.node_id, n.score) for n in want]


def test_documents_and_multimodal_nodes_become_items(mixed_folder: Path) -> None:
    from llama_index.core.schema import Document, ImageDocument, MediaResource, Node

    from omniretrieve.types import Audio

    path = image_path(mixed_folder, 0)
    nodes = [
        NodeWithScore(node=ImageDocument(id_="img-doc", image_path=path), score=None),
        # An image read as text by SimpleDirectoryReader without llama-index-readers-file.
        NodeWithScore(
            node=Document(
                id_="raw-png", text="\x89PNG\r\n...", metadata={"file_type": "image/png", "file_path": path}
            ),
            score=None,
        ),
        NodeWithScore(
            node=Node(
                id_="bird",
                text_resource=MediaResource(text="a bird"),
                audio_resource=MediaResource(path="/x/bird.wav"),
            ),
            score=None,
        ),
        NodeWithScore(
            node=Document(id_="plain", text="just text", metadata={"file_type": "text/plain"}), score=None
        ),
    ]
    fake = FakeReranker(modalities=("text", "image", "audio"))
    OmniretrieveRerank(reranker=fake).postprocess_nodes(nodes, query_str="q")
    items = fake.calls[0][1]
    assert isinstance(items[0], Image) and items[0].source == path
    assert isinstance(items[1], Image) and items[1].source == path
    assert isinstance(items[2], Combined) and items[2].text == "a bird"
    assert isinstance(items[2].audio, Audio) and items[2].audio.source == "/x/bird.wav"
    assert isinstance(items[3], Text) and items[3].text == "just text"
