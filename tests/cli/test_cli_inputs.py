"""What a new user hits first: blank text files, paths that do not exist, errors before any model loads."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from omniretrieve.cli import app
from omniretrieve.errors import InvalidInputError
from omniretrieve.store import Store
from omniretrieve.testing import FakeEmbedder
from omniretrieve.types import as_item


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_blank_text_files_are_reported_and_not_stored(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "circle.txt").write_text("a red circle", encoding="utf-8")
    (docs / "blank.txt").write_text("  \n\t\n", encoding="utf-8")
    (docs / "zero.txt").write_bytes(b"")
    store_dir = tmp_path / "store"
    code, out, err = invoke("index", str(docs), "--store", str(store_dir), "--model", "fake:16")
    assert code == 1, out + err  # some files failed, the rest is stored
    assert "blank.txt" in out + err and "zero.txt" in out + err and "empty or only whitespace" in out + err
    with Store(FakeEmbedder(16), path=store_dir) as store:
        assert store.count() == 1
        assert [h.document.text for h in store.search("a red circle", k=5)] == ["a red circle"]


def test_blank_text_is_refused_as_an_item_and_a_query(tmp_path: Path) -> None:
    with Store(FakeEmbedder(16), path=tmp_path / "s") as store:
        results = store.add(["a red circle", "   ", ""])
        assert [r.status for r in results] == ["added", "failed", "failed"]
        assert all(isinstance(r.error, InvalidInputError) for r in results[1:])
        assert store.count() == 1
    for blank in ("", " \n", {"text": "\t"}):
        try:
            as_item(blank)  # type: ignore[arg-type]
        except InvalidInputError as exc:
            assert "empty or only whitespace" in str(exc)
        else:
            raise AssertionError(f"{blank!r} was accepted")


def test_index_of_paths_that_do_not_exist_creates_no_store(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    code, out, err = invoke("index", str(tmp_path / "nope"), "--store", str(store_dir), "--model", "fake:16")
    assert code == 2
    assert "no such file or folder" in out + err and "no store was created" in out + err
    assert not store_dir.exists()


def test_bad_arguments_fail_before_a_model_loads(tmp_path: Path) -> None:
    # A model name that cannot load would fail later; the argument error must come first.
    code, out, err = invoke("search", "--store", str(tmp_path / "s"), "--model", "/no/such/model")
    assert code == 2 and "give a text query" in out + err
    code, out, err = invoke("eval", "--store", str(tmp_path / "s"), "--model", "/no/such/model")
    assert code == 2 and "--queries" in out + err


def test_eval_reports_judged_documents_and_queries_it_cannot_find(tmp_path: Path) -> None:
    import json

    corpus = tmp_path / "my-eval" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "red-circle.txt").write_text("a red circle", encoding="utf-8")
    (corpus / "blue-square.txt").write_text("a blue square", encoding="utf-8")
    (corpus / "not-indexed.txt").write_text("a green star", encoding="utf-8")
    store_dir = tmp_path / "store"
    code, out, err = invoke(
        "index",
        str(corpus / "red-circle.txt"),
        str(corpus / "blue-square.txt"),
        "--store",
        str(store_dir),
        "--model",
        "fake:16",
    )
    assert code == 0, out + err
    (tmp_path / "my-eval" / "queries.json").write_text(
        json.dumps([{"id": "q1", "text": "a red circle"}]), encoding="utf-8"
    )
    judgments = {
        "q1": {"corpus/red-circle.txt": 2, "blue-square": 0, "corpus/not-indexed.txt": 1, "nowhere": 1},
        "q-missing": {"corpus/red-circle.txt": 1},
    }
    (tmp_path / "my-eval" / "judgments.json").write_text(json.dumps(judgments), encoding="utf-8")
    code, out, err = invoke("eval", str(tmp_path / "my-eval"), "--store", str(store_dir), "--json")
    assert code == 0, out + err
    unknown = json.loads(out)["unknown"]
    assert unknown == {
        "documents": ["corpus/not-indexed.txt", "nowhere"],
        "queries": ["q-missing"],
        "judged_documents": 4,
    }
    assert "2 of 4 judged documents are not in the store" in err
    assert "1 judged queries are not in the queries file" in err
