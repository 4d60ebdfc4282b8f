"""Judged-query sets: the files `omniretrieve eval` reads, loaded, run through a store and measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from omniretrieve.documents import content_sha256
from omniretrieve.errors import InvalidInputError
from omniretrieve.evaluation import (
    JudgedQueries,
    JudgedQuery,
    embed_judged_queries,
    evaluate,
    evaluate_by_group,
    evaluate_judged_queries,
    load_judged_queries,
    run_judged_queries,
)
from omniretrieve.media import from_path
from omniretrieve.store import Store
from omniretrieve.testing import FakeEmbedder, FakeReranker
from omniretrieve.types import Image


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def png(path: Path, color: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.new("RGB", (16, 16), color).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A corpus and a judged set naming its documents in each accepted way."""
    root = tmp_path / "set"
    (root / "corpus" / "notes").mkdir(parents=True)
    (root / "corpus" / "red.txt").write_text("a red circle", encoding="utf-8")
    (root / "corpus" / "blue.txt").write_text("a blue square", encoding="utf-8")
    (root / "corpus" / "notes" / "weather.txt").write_text("rain tomorrow", encoding="utf-8")
    png(root / "corpus" / "red.png", (220, 20, 20))
    blue_png = png(root / "corpus" / "blue.png", (20, 20, 220))
    png(root / "queries" / "red.png", (220, 20, 20))
    write_json(
        root / "queries.json",
        [
            {"id": "q-text", "text": "a red circle", "scene": "ignored"},
            {"id": "q-img", "image": "queries/red.png", "target": "image"},
            {"id": 7, "text": "blue", "image": "queries/red.png"},
        ],
    )
    write_json(
        root / "judgments.json",
        {
            "q-text": {"corpus/red.txt": 2, "red-image": 1, "blue": 0},  # a path, a docs.json name, a stem
            "q-img": {"red-image": 2, content_sha256(from_path(blue_png)): 1},  # a store id
            "7": {"blue": 1, "corpus/blue.png": 0},
        },
    )
    write_json(root / "docs.json", {"red-image": {"path": "corpus/red.png"}})
    return root


@pytest.fixture
def store(folder: Path, tmp_path: Path) -> Any:
    files = sorted(p for p in (folder / "corpus").rglob("*") if p.is_file())
    with Store(FakeEmbedder(16), path=tmp_path / "store") as opened:
        results = opened.add([from_path(f) for f in files], sources=[f.absolute().as_uri() for f in files])
        assert all(r.ok for r in results)
        yield opened


def test_load_a_folder(folder: Path) -> None:
    judged = load_judged_queries(folder)
    assert [q.id for q in judged.queries] == ["q-text", "q-img", "7"]
    text, image, combined = judged.queries
    assert text == JudgedQuery("q-text", "a red circle", "text", "mixed")
    assert text.kinds is None and text.group == "text->mixed"
    assert isinstance(image.item, Image) and Path(image.item.source) == folder / "queries" / "red.png"
    assert image.kinds == ("image",) and image.group == "image->image"
    assert combined.modality == "text+image" and isinstance(combined.item, dict)
    assert combined.item["text"] == "blue" and isinstance(combined.item["image"], Image)
    assert judged.qrels["q-text"] == {"corpus/red.txt": 2, "red-image": 1, "blue": 0}
    assert judged.base == folder
    assert judged.names_by_path == {(folder / "corpus" / "red.png").resolve(): "red-image"}
    assert judged.groups() == {
        "text->mixed": ["q-text"],
        "image->image": ["q-img"],
        "text+image->mixed": ["7"],
    }


def test_load_two_files_or_replace_one_of_the_folder(folder: Path, tmp_path: Path) -> None:
    other = write_json(tmp_path / "elsewhere" / "qrels.json", {"q-text": {"red": 1}})
    judged = load_judged_queries(queries=folder / "queries.json", judgments=other)
    assert len(judged.queries) == 3 and judged.qrels == {"q-text": {"red": 1}}
    assert judged.base == other.parent and judged.names_by_path == {}  # docs.json sits beside the judgments
    judged = load_judged_queries(folder, judgments=other)
    assert judged.qrels == {"q-text": {"red": 1}} and len(judged.queries) == 3
    with pytest.raises(InvalidInputError, match="give a folder"):
        load_judged_queries(queries=folder / "queries.json")


def bad_set(tmp_path: Path, queries: Any, judgments: Any = None) -> Path:
    root = tmp_path / "bad"
    write_json(root / "queries.json", queries)
    write_json(root / "judgments.json", {} if judgments is None else judgments)
    return root


@pytest.mark.parametrize(
    ("queries", "judgments", "where", "why"),
    [
        ({"id": "q"}, None, "queries.json", "JSON list of queries"),
        (["q1"], None, "queries.json[0]", "needs an 'id'"),
        ([{"text": "x"}], None, "queries.json[0]", "needs an 'id'"),
        ([{"id": None, "text": "x"}], None, "queries.json[0].id", "string or an integer"),
        ([{"id": "q", "target": "mixed"}], None, "queries.json[0]", "needs 'text', 'image'"),
        ([{"id": "q", "text": 3}], None, "queries.json[0].text", "must be a string"),
        ([{"id": "q", "image": ["a.png"]}], None, "queries.json[0].image", "must be a string (a path)"),
        ([{"id": "q", "text": "x", "target": "images"}], None, "queries.json[0].target", "must be one of"),
        ([{"id": "q", "text": "x"}, {"id": "q", "text": "y"}], None, "queries.json[1].id", "appears twice"),
        ([], [], "judgments.json", "{query id: {document: grade}}"),
        ([], {"q": ["d"]}, "judgments.json['q']", "{document: grade}"),
        ([], {"q": {"d": "high"}}, "judgments.json['q']['d']", "integer, not 'high'"),
        ([], {"q": {"d": 1.5}}, "judgments.json['q']['d']", "integer, not 1.5"),
        ([], {"q": {"d": True}}, "judgments.json['q']['d']", "integer, not True"),
    ],
)
def test_malformed_entries_name_the_file_and_the_entry(
    tmp_path: Path, queries: Any, judgments: Any, where: str, why: str
) -> None:
    root = bad_set(tmp_path, queries, judgments)
    with pytest.raises(InvalidInputError) as caught:
        load_judged_queries(root)
    assert caught.value.input == str(root / where) and why in caught.value.reason


def test_unreadable_files_name_the_file_line_and_column(tmp_path: Path) -> None:
    root = bad_set(tmp_path, [])
    (root / "judgments.json").write_text('{\n "q": {"d": 1,}\n}', encoding="utf-8")
    with pytest.raises(InvalidInputError) as caught:
        load_judged_queries(root)
    assert (
        caught.value.input == f"{root / 'judgments.json'}, line 2 column 15"
    )  # the "}" after the trailing comma
    assert "not valid JSON" in caught.value.reason
    with pytest.raises(InvalidInputError) as caught:
        load_judged_queries(tmp_path / "nothing-here")
    assert caught.value.input == str(tmp_path / "nothing-here" / "queries.json")
    assert caught.value.reason == "no such file"


def test_integral_grades_are_accepted(tmp_path: Path) -> None:
    root = bad_set(tmp_path, [{"id": 1, "text": "x"}], {"1": {"a": 2.0, "b": 0, "c": -1}})
    judged = load_judged_queries(root)
    assert judged.qrels == {"1": {"a": 2, "b": 0, "c": -1}} and judged.queries[0].id == "1"


def test_hits_are_named_as_the_judgments_name_them(folder: Path, store: Store) -> None:
    judged = load_judged_queries(folder)
    hits = store.search("anything", 10)
    assert len(hits) == 5
    names = {judged.name_of(h) for h in hits}
    blue_png_id = content_sha256(from_path(folder / "corpus" / "blue.png"))
    weather_id = content_sha256(from_path(folder / "corpus" / "notes" / "weather.txt"))
    # docs.json name, relative path, stem, store id; an unjudged document keeps its store id
    assert names == {"red-image", "corpus/red.txt", "blue", blue_png_id, weather_id}


def test_run_matches_searching_each_query_by_hand(folder: Path, store: Store) -> None:
    judged = load_judged_queries(folder)
    vectors = embed_judged_queries(store, judged)
    assert set(vectors) == {"q-text", "q-img"}  # the combined query is searched by item
    by_item = run_judged_queries(store, judged, calibration="none", k=3)
    by_vector = run_judged_queries(store, judged, calibration="none", k=3, query_vectors=vectors)
    assert by_item.run == by_vector.run
    for q in judged.queries:
        want = store.search(q.item, 3, calibration="none", modalities=q.kinds)
        assert [h.id for h in by_item.hits[q.id]] == [h.id for h in want]
        assert by_item.run[q.id] == [judged.name_of(h) for h in want]
    assert all(h.modality == "image" for h in by_item.hits["q-img"])
    assert by_item.run["q-text"][0] == "corpus/red.txt"  # the fake embeds identical text identically
    only = run_judged_queries(store, judged, k=3, only=["q-img"])
    assert set(only.run) == {"q-img"} == set(only.hits)
    reranked = run_judged_queries(store, judged, k=3, reranker=FakeReranker(), query_vectors=vectors)
    assert all(h.rerank_score is not None for hits in reranked.hits.values() for h in hits)
    with pytest.raises(InvalidInputError):
        run_judged_queries(store, judged, calibration="cosine")  # type: ignore[arg-type]


def test_evaluate_per_group_and_calibration(folder: Path, store: Store) -> None:
    judged = load_judged_queries(folder)
    metrics = evaluate_judged_queries(
        store, judged, calibrations=("none", "gap"), k=3, reranker=FakeReranker()
    )
    assert list(metrics) == ["none", "gap", "gap+rerank"]
    assert list(metrics["gap"]) == ["text->mixed", "image->image", "text+image->mixed", "all"]
    for calibration in ("none", "gap"):
        run = run_judged_queries(store, judged, calibration=calibration, k=3).run
        assert metrics[calibration]["all"] == pytest.approx(evaluate(run, judged.qrels, 3))
        assert metrics[calibration]["image->image"] == pytest.approx(
            evaluate(run, {"q-img": judged.qrels["q-img"]}, 3)
        )
    assert metrics["gap"]["text->mixed"]["ndcg@3"] > 0
    with pytest.raises(InvalidInputError):
        evaluate_judged_queries(store, judged, k=0)


def test_a_judged_set_built_in_memory() -> None:
    judged = JudgedQueries(
        (JudgedQuery("a", "x", "text"), JudgedQuery("b", "y", "text", "image")),
        {"a": {"d1": 1}, "b": {"d2": 2}},
    )
    run = {"a": ["d1"], "b": ["d9", "d2"]}
    by_group = evaluate_by_group(judged, run, 10)
    assert set(by_group) == {"text->mixed", "text->image", "all"}
    assert by_group["text->mixed"]["mrr@10"] == 1.0 and by_group["text->image"]["mrr@10"] == 0.5
    assert by_group["all"] == evaluate(run, judged.qrels, 10)
    assert set(evaluate_by_group(judged, {"a": ["d1"]}, 10)) == {"text->mixed", "all"}


def test_importing_evaluation_stays_light() -> None:
    code = (
        "import sys, omniretrieve.evaluation; "
        "print(','.join(m for m in sys.modules if m.split('.')[0] in ('torch', 'chromadb', 'sentence_transformers')"
        " or m in ('omniretrieve.store', 'omniretrieve.demo', 'omniretrieve.embedding')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
