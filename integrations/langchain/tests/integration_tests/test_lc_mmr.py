"""Maximal marginal relevance over a mixed store, on the demo model (a toy CLIP with a modality gap)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omniretrieve.errors import InvalidInputError
from omniretrieve.testing.rerankers import FakeReranker

from langchain_omniretrieve import OmniretrieveVectorStore
from langchain_omniretrieve._mmr import select

N = 6  # scenes in `shape_files`: one caption (cap-<n>) and one picture (img-<n>) each


def _fill(store: OmniretrieveVectorStore, shape_files: dict[str, Path]) -> None:
    store.add_texts(list(shape_files), [{"kind": "caption"}] * N, ids=[f"cap-{n}" for n in range(N)])
    store.add_images(
        [str(p) for p in shape_files.values()], [{"kind": "picture"}] * N, ids=[f"img-{n}" for n in range(N)]
    )


@pytest.fixture(scope="module")
def scenes(
    tmp_path_factory: pytest.TempPathFactory, demo_embedder: Any, shape_files: dict[str, Path]
) -> Iterator[OmniretrieveVectorStore]:
    """Six captions and their six pictures, on the demo model."""
    store = OmniretrieveVectorStore(embedding=demo_embedder, persist_directory=tmp_path_factory.mktemp("mmr"))
    _fill(store, shape_files)
    try:
        yield store
    finally:
        store.close()


def test_mmr_list_holds_fewer_near_duplicates_than_similarity_search(
    tmp_path: Path, demo_embedder: Any, shape_files: dict[str, Path]
) -> None:
    store = OmniretrieveVectorStore(embedding=demo_embedder, persist_directory=tmp_path / "index")
    try:
        _fill(store, shape_files)
        caption, picture = next(iter(shape_files.items()))  # "a red circle in the top left"
        # near-duplicates of scene 0: its caption again, paraphrases, and copies of its picture
        store.add_texts(
            [caption, "the red circle at the top left", "red circle, top left"],
            ids=["dup-0", "dup-1", "dup-2"],
        )
        copies = [tmp_path / f"copy-{j}.png" for j in range(2)]
        for copy in copies:
            shutil.copy(picture, copy)
        store.add_images([str(c) for c in copies], ids=["copy-0", "copy-1"])
        near_duplicates = {"cap-0", "img-0", "dup-0", "dup-1", "dup-2", "copy-0", "copy-1"}

        similar = store.similarity_search(caption, k=4)
        diverse = store.max_marginal_relevance_search(caption, k=4, fetch_k=20, lambda_mult=0.5)
        in_similar = sum(d.id in near_duplicates for d in similar)
        in_diverse = sum(d.id in near_duplicates for d in diverse)
        assert in_similar == 4, [d.id for d in similar]
        assert in_diverse < in_similar, [d.id for d in diverse]
        assert diverse[0].id == similar[0].id  # MMR starts from the most relevant document
        assert len({d.id for d in diverse}) == 4
    finally:
        store.close()


def test_a_picture_and_its_own_caption_count_as_near_duplicates(
    scenes: OmniretrieveVectorStore, shape_files: dict[str, Path]
) -> None:
    """Gap-free similarity: the picture of the scene MMR already holds (by its caption) is redundant."""
    for n, caption in enumerate(shape_files):
        similar = [d.id for d in scenes.similarity_search(caption, k=2)]
        assert similar == [f"cap-{n}", f"img-{n}"]  # calibrated: the caption, then its own picture
        diverse = [d.id for d in scenes.max_marginal_relevance_search(caption, k=2, fetch_k=12)]
        assert diverse[0] == f"cap-{n}" and diverse[1] != f"img-{n}", diverse


@pytest.mark.parametrize("calibration", ["gap", "none"])
def test_lambda_one_is_the_similarity_order(
    scenes: OmniretrieveVectorStore, shape_files: dict[str, Path], calibration: str
) -> None:
    """Relevance only: MMR scores as the search does (gap-free, or raw cosines for "none")."""
    for caption in shape_files:
        similar = scenes.similarity_search(caption, k=4, calibration=calibration)
        mmr = scenes.max_marginal_relevance_search(
            caption, k=4, fetch_k=12, lambda_mult=1.0, calibration=calibration
        )
        assert [d.id for d in mmr] == [d.id for d in similar]


def test_by_vector_and_image_queries(scenes: OmniretrieveVectorStore, shape_files: dict[str, Path]) -> None:
    path = str(list(shape_files.values())[2])
    by_image = scenes.max_marginal_relevance_search({"image": path}, k=3, fetch_k=12)
    assert by_image[0].id == "img-2" and by_image[0].metadata == {
        "kind": "picture",
        "modality": "image",
        "image_uri": path,
    }
    vector = scenes.embeddings.embed_image([path])[0]  # type: ignore[attr-defined]
    by_vector = scenes.max_marginal_relevance_search_by_vector(
        vector, k=3, fetch_k=12, query_modality="image"
    )
    assert by_vector == by_image


def test_options_reach_the_search(scenes: OmniretrieveVectorStore, shape_files: dict[str, Path]) -> None:
    caption = next(iter(shape_files))
    pictures = scenes.max_marginal_relevance_search(caption, k=3, filter={"kind": "picture"})
    assert len(pictures) == 3 and all(d.metadata["kind"] == "picture" for d in pictures)
    texts = scenes.max_marginal_relevance_search(caption, k=3, modalities=["text"])
    assert len(texts) == 3 and all("modality" not in d.metadata for d in texts)
    assert len(scenes.max_marginal_relevance_search(caption, k=5, fetch_k=2)) == 5  # at least k fetched
    assert len(scenes.max_marginal_relevance_search(caption, k=50)) == 2 * N
    assert scenes.max_marginal_relevance_search(caption, k=3, filter={"kind": "nothing"}) == []


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"lambda_mult": 1.5}, "lambda_mult"),
        ({"lambda_mult": True}, "lambda_mult"),
        ({"k": 0}, "k=0"),
        ({"fetch_k": -1}, "fetch_k"),
        ({"reranker": FakeReranker()}, "does not rerank"),
        ({"fetch": 3}, "unknown"),
    ],
)
def test_bad_options_are_refused(
    scenes: OmniretrieveVectorStore, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidInputError, match=match):
        scenes.max_marginal_relevance_search("a red circle", **options)


async def test_as_retriever_mmr_and_async_twins(
    scenes: OmniretrieveVectorStore, shape_files: dict[str, Path]
) -> None:
    caption = next(iter(shape_files))
    expected = scenes.max_marginal_relevance_search(caption, k=3, fetch_k=12, lambda_mult=0.3)
    retriever = scenes.as_retriever(
        search_type="mmr", search_kwargs={"k": 3, "fetch_k": 12, "lambda_mult": 0.3}
    )
    assert retriever.invoke(caption) == expected
    assert await retriever.ainvoke(caption) == expected
    assert await scenes.amax_marginal_relevance_search(caption, k=3, fetch_k=12, lambda_mult=0.3) == expected
    vector = scenes.embeddings.embed_query(caption)
    assert (
        await scenes.amax_marginal_relevance_search_by_vector(vector, k=3, fetch_k=12, lambda_mult=0.3)
        == expected
    )


def test_empty_store_and_vanished_candidates(tmp_path: Path, demo_embedder: Any) -> None:
    store = OmniretrieveVectorStore(embedding=demo_embedder, persist_directory=tmp_path / "index")
    try:
        assert store.max_marginal_relevance_search("a red circle") == []
        store.add_texts(["a red circle", "a blue square", "a green triangle"], ids=["a", "b", "c"])
        vector = store.embeddings.embed_query("a red circle")
        hits = store.store.search_vector(vector, k=3)
        store.delete(["a"])  # deleted between the search and the MMR step
        chosen = select(store.store, hits, vector, "text", k=3, lambda_mult=0.5, raw=False)
        assert sorted(hit.document.id for hit in chosen) == ["b", "c"]
    finally:
        store.close()
