"""``--model ID@REVISION`` pins a revision; a directory with an ``@`` in its path is still a directory."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from omniretrieve.cli import app
from omniretrieve.cli._shared import stored_model
from omniretrieve.demo import model_path
from omniretrieve.store import Store, StoreInfo

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_a_model_directory_with_an_at_sign_indexes(tmp_path: Path) -> None:
    model = Path(shutil.copytree(model_path(), tmp_path / "team@2026" / "clip"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("a red circle", encoding="utf-8")
    code, _, err = invoke(
        "index", str(tmp_path / "notes"), "--store", str(tmp_path / "s"), "--model", str(model)
    )
    assert code == 0, err
    info = Store.inspect(path=tmp_path / "s")
    assert info.model_id == str(model) and info.total == 1 and info.revision is not None
    assert stored_model(info) == str(model)  # a directory's content hash is no revision to load


def test_a_pinned_revision_that_cannot_load_names_the_option(tmp_path: Path) -> None:
    code, _, err = invoke(
        "index", str(tmp_path), "--store", str(tmp_path / "s"), "--model", f"org/absent@{COMMIT}"
    )
    assert code == 2
    assert f"--model org/absent@{COMMIT}" in " ".join(err.split())


def test_a_stores_hub_commit_is_what_reopens_it() -> None:
    info = StoreInfo("s", "here", "org/clip", 8, "cosine", 1, revision=COMMIT)
    assert stored_model(info) == f"org/clip@{COMMIT}"
    assert stored_model(StoreInfo("s", "here", "org/clip", 8, "cosine", 1)) == "org/clip"
