from __future__ import annotations

import base64
import math
from pathlib import Path

import pytest
from langchain_core.documents import Document
from omniretrieve.errors import InvalidInputError, UnsupportedModalityError
from omniretrieve.testing.rerankers import FakeReranker
from omniretrieve.types import Combined, Image, NormalizedItem, Text
from pydantic import ValidationError

from langchain_omniretrieve import OmniretrieveReranker


def _captions() -> list[Document]:
    return [
        Document(page_content="a blue square", metadata={"n": 0}),
        Document(page_content="a red circle", metadata={"n": 1}),
        Document(page_content="a red square", metadata={"n": 2}),
        Document(page_content="nothing here", metadata={"n": 3}),
    ]


def test_order_and_scores_are_the_rerankers_own() -> None:
    fake = FakeReranker()
    docs = _captions()
    out = OmniretrieveReranker(reranker=fake, top_n=None).compress_documents(docs, "red circle")
    expected = fake.rerank("red circle", [d.page_content for d in docs])
    assert [d.metadata["n"] for d in out] == [r.index for r in expected]
    assert [d.metadata["relevance_score"] for d in out] == [r.score for r in expected]
    assert out[0].page_content == "a red circle"
    assert all("relevance_score" not in d.metadata for d in docs)  # inputs are not mutated


def test_top_n_defaults_to_three_and_empty_input() -> None:
    reranker = OmniretrieveReranker(reranker=FakeReranker())
    assert len(reranker.compress_documents(_captions(), "red")) == 3
    (best,) = OmniretrieveReranker(reranker=FakeReranker(), top_n=1).compress_documents(
        _captions(), "red circle"
    )
    assert best.page_content == "a red circle"
    assert reranker.compress_documents([], "red") == []


def _seen(fake: FakeReranker) -> list[NormalizedItem]:
    return fake.calls[-1][1]


def test_images_from_uri_metadata_data_uri_and_chroma_base64(shape_files: dict[str, Path]) -> None:
    path = next(iter(shape_files.values()))
    png = path.read_bytes()
    docs = [
        Document(page_content=str(path), metadata={"modality": "image", "image_uri": str(path)}),
        Document(page_content="a caption", metadata={"modality": "combined", "image_uri": str(path)}),
        Document(page_content="data:image/png;base64," + base64.b64encode(png).decode()),
        Document(page_content=base64.b64encode(png).decode()),  # how langchain_chroma stores images
        Document(page_content=str(path)),  # a path in page_content is text, never opened
        Document(page_content="aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ="),  # base64 of text: text
    ]
    fake = FakeReranker()
    OmniretrieveReranker(reranker=fake, top_n=None).compress_documents(docs, "red circle")
    seen = _seen(fake)
    assert isinstance(seen[0], Image) and seen[0].source == str(path)
    assert isinstance(seen[1], Combined) and seen[1].text == "a caption" and seen[1].image is not None
    assert isinstance(seen[2], Image) and str(seen[2].source).startswith("data:image/png")
    assert isinstance(seen[3], Image) and seen[3].source == png
    assert isinstance(seen[4], Text) and seen[4].text == str(path)
    assert isinstance(seen[5], Text)


def test_image_documents_are_ranked_by_image_score(shape_files: dict[str, Path]) -> None:
    paths = list(shape_files.values())

    def by_name(query: NormalizedItem, doc: NormalizedItem) -> float:
        # Scores images by position in `paths`, texts below every image.
        return float(len(paths) - paths.index(Path(doc.source))) if isinstance(doc, Image) else -1.0

    docs = [Document(page_content="caption")] + [
        Document(page_content=str(p), metadata={"modality": "image", "image_uri": str(p)})
        for p in reversed(paths)
    ]
    out = OmniretrieveReranker(reranker=FakeReranker(by_name), top_n=None).compress_documents(
        docs, "anything"
    )
    assert [d.metadata.get("image_uri") for d in out] == [str(p) for p in paths] + [None]


def test_unscored_documents_come_last_with_the_reason(shape_files: dict[str, Path]) -> None:
    path = str(next(iter(shape_files.values())))
    docs = [
        Document(page_content=path, metadata={"modality": "image", "image_uri": path}),
        Document(page_content="a red circle"),
    ]
    out = OmniretrieveReranker(reranker=FakeReranker(modalities=("text",)), top_n=None).compress_documents(
        docs, "red"
    )
    assert out[0].page_content == "a red circle"
    assert out[1].metadata["relevance_score"] == -math.inf
    assert "image" in out[1].metadata["rerank_error"]


def test_media_documents_without_a_reference_are_unscored() -> None:
    docs = [
        Document(id="in-memory", page_content="", metadata={"modality": "image"}),
        Document(page_content="a red circle"),
    ]
    out = OmniretrieveReranker(reranker=FakeReranker(), top_n=None).compress_documents(docs, "red")
    assert [d.id for d in out] == [None, "in-memory"]
    assert out[1].metadata["relevance_score"] == -math.inf
    assert "no media reference" in out[1].metadata["rerank_error"]


def test_image_and_combined_queries() -> None:
    fake = FakeReranker()
    reranker = OmniretrieveReranker(reranker=fake, top_n=None)
    reranker.compress_documents(_captions(), {"text": "red circle", "image": "q.png"})
    query = fake.calls[-1][0]
    assert isinstance(query, Combined) and query.text == "red circle"
    reranker.compress_documents(_captions(), Image("q.png"))
    assert isinstance(fake.calls[-1][0], Image)
    with pytest.raises(InvalidInputError):
        reranker.compress_documents(_captions(), 42)
    with pytest.raises(UnsupportedModalityError):
        OmniretrieveReranker(reranker=FakeReranker(modalities=("text",))).compress_documents(
            _captions(), {"image": "q.png"}
        )


async def test_async_compress_matches_sync() -> None:
    reranker = OmniretrieveReranker(reranker=FakeReranker(), top_n=2)
    assert await reranker.acompress_documents(_captions(), "red circle") == reranker.compress_documents(
        _captions(), "red circle"
    )


def test_bad_arguments() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        OmniretrieveReranker()
    with pytest.raises(ValidationError, match="positive"):
        OmniretrieveReranker(reranker=FakeReranker(), top_n=0)
    with pytest.raises(ValidationError, match="must be an omniretrieve Reranker"):
        OmniretrieveReranker(reranker="not a reranker")


def test_a_fusing_reranker_gets_the_documents_scores_as_first_stage_scores(
    tiny_reranker_path: Path, shape_files: dict[str, Path]
) -> None:
    """The compressor gives what ``Store.search`` gives: the core's fused order and scores."""
    from omniretrieve.rerank import CrossEncoderReranker

    fusing = CrossEncoderReranker(tiny_reranker_path, device="cpu", first_stage_weight=0.9)
    paths = [str(p) for p in list(shape_files.values())[:2]]
    docs = _captions() + [
        Document(page_content=p, metadata={"modality": "image", "image_uri": p}) for p in paths
    ]
    content: list[Text | Image] = [Text(d.page_content) for d in docs[:4]] + [Image(p) for p in paths]
    alone = fusing.rerank("a red circle", content)
    # First-stage scores in the reverse of the reranker's own order: at weight 0.9 they decide.
    first_stage = [0.0] * len(docs)
    for rank, result in enumerate(alone):
        first_stage[result.index] = 0.5 + 0.1 * rank
    scored = [
        d.model_copy(update={"metadata": {**d.metadata, "score": s}})
        for d, s in zip(docs, first_stage, strict=True)
    ]
    fused = fusing.rerank("a red circle", content, first_stage_scores=first_stage)
    assert [r.index for r in fused] != [r.index for r in alone]  # fusion changes the order

    out = OmniretrieveReranker(reranker=fusing, top_n=None).compress_documents(scored, "a red circle")
    assert [d.page_content for d in out] == [docs[r.index].page_content for r in fused]
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx([r.score for r in fused], abs=1e-5)

    # A document without a numeric score (here: none at all, or a string): the reranker alone.
    for missing in ({}, {"score": "high"}):
        scored[1] = docs[1].model_copy(update={"metadata": {**docs[1].metadata, **missing}})
        out = OmniretrieveReranker(reranker=fusing, top_n=None).compress_documents(scored, "a red circle")
        assert [d.page_content for d in out] == [docs[r.index].page_content for r in alone]
