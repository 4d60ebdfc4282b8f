"""Every sentence-transformers loading option passes through, by name; ``id@revision``; revisions."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sentence_transformers

from omniretrieve.demo import model_path
from omniretrieve.embedding import SentenceTransformerEmbedder, load_embedder, split_revision
from omniretrieve.errors import InvalidInputError
from omniretrieve.models import (
    CROSS_ENCODER_OPTIONS,
    NOT_LOADING_OPTIONS,
    SENTENCE_TRANSFORMER_OPTIONS,
    directory_revision,
    model_revision,
)
from omniretrieve.rerank import CrossEncoderReranker

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _parameters(target: Any) -> set[str]:
    return set(inspect.signature(target).parameters)


@pytest.mark.parametrize(
    ("library", "ours", "catalog"),
    [
        (
            sentence_transformers.SentenceTransformer,
            SentenceTransformerEmbedder,
            SENTENCE_TRANSFORMER_OPTIONS,
        ),
        (sentence_transformers.CrossEncoder, CrossEncoderReranker, CROSS_ENCODER_OPTIONS),
    ],
)
def test_every_loading_option_of_the_library_is_ours(
    library: Any, ours: Any, catalog: tuple[str, ...]
) -> None:
    # A new option in a future sentence-transformers release fails here until it is passed through
    # (or listed, with its reason, in NOT_LOADING_OPTIONS).
    theirs = _parameters(library.__init__) - set(NOT_LOADING_OPTIONS)
    assert theirs == set(catalog)
    assert set(catalog) <= _parameters(ours)


class _Reached(Exception):
    """Raised by the spy instead of loading: the options reached the library's constructor."""


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    seen: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    real = getattr(sentence_transformers, name)

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            seen.append((args, kwargs))
            raise _Reached

    monkeypatch.setattr(sentence_transformers, name, Spy)
    return seen


def _values(catalog: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for option in catalog:
        if option.endswith("_kwargs"):
            values[option] = {f"{option}-key": option}
        elif option == "prompts":
            values[option] = {"query": "query: "}
        elif option in ("trust_remote_code", "local_files_only"):
            values[option] = True
        elif option in ("truncate_dim", "num_labels", "max_length"):
            values[option] = 7
        elif option == "keep_in_fp32_modules":
            values[option] = ["a", "b"]
        else:
            values[option] = f"<{option}>"
    return values


def test_every_option_reaches_sentence_transformer(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy(monkeypatch, "SentenceTransformer")
    values = _values(SENTENCE_TRANSFORMER_OPTIONS)
    with pytest.raises(_Reached):
        SentenceTransformerEmbedder("org/model", dtype="float16", **values)
    (args, kwargs), *_ = seen
    import torch

    assert args == ("org/model",)
    expected = {**values, "model_kwargs": {**values["model_kwargs"], "dtype": torch.float16}}
    assert kwargs == expected
    # load_embedder passes them by name as well (the failure is wrapped, naming the model)
    seen.clear()
    with pytest.raises(InvalidInputError, match="org/model") as info:
        load_embedder("org/model", **values)
    assert isinstance(info.value.__cause__, _Reached) and seen[0][1] == values


def test_every_option_reaches_cross_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy(monkeypatch, "CrossEncoder")
    values = _values(CROSS_ENCODER_OPTIONS)
    with pytest.raises(_Reached):
        CrossEncoderReranker("org/reranker", **values)
    assert seen[0] == (("org/reranker",), values)
    # local_files_only defaults to True for a local directory, else False
    seen.clear()
    with pytest.raises(_Reached):
        CrossEncoderReranker("org/reranker")
    assert seen[0][1]["local_files_only"] is False


def test_options_with_a_loaded_model_are_refused() -> None:
    model = sentence_transformers.SentenceTransformer(str(model_path()), device="cpu")
    for option, value in (("revision", "main"), ("truncate_dim", 8), ("token", "t"), ("cache_folder", "/c")):
        with pytest.raises(InvalidInputError, match=option):
            SentenceTransformerEmbedder(model, **{option: value})


def test_truncate_dim_changes_the_dimension() -> None:
    full = SentenceTransformerEmbedder(str(model_path()), device="cpu", num_workers=0)
    short = load_embedder(model_path(), truncate_dim=16, device="cpu", num_workers=0)
    assert full.dimension == 32 and short.dimension == 16
    vector = short.embed(["a red circle"])[0]
    assert vector.shape == (16,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5


def test_a_name_pins_a_revision(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert split_revision(f"org/model@{COMMIT}") == ("org/model", COMMIT)
    assert split_revision("org/model") == ("org/model", None)
    folder = tmp_path / "models@v2"
    folder.mkdir()
    assert split_revision(str(folder)) == (str(folder), None)  # an existing path is a path
    for bad in ("org/model@", "@abc"):
        with pytest.raises(InvalidInputError, match="ID@REVISION"):
            split_revision(bad)
    seen = _spy(monkeypatch, "SentenceTransformer")
    with pytest.raises(InvalidInputError):
        load_embedder(f"org/model@{COMMIT}")
    assert seen[0][0] == ("org/model",) and seen[0][1]["revision"] == COMMIT
    with pytest.raises(InvalidInputError, match="pins revision"):
        load_embedder(f"org/model@{COMMIT}", revision="main")
    with pytest.raises(InvalidInputError, match="revision"):
        load_embedder("demo@v1")  # the demo model loads from the package: no revisions


def test_a_directory_with_an_at_sign_loads(tmp_path: Path) -> None:
    folder = Path(shutil.copytree(model_path(), tmp_path / "team@2026" / "clip"))
    embedder = load_embedder(str(folder), device="cpu", num_workers=0)
    assert embedder.model_id == str(folder) and embedder.dimension == 32


def test_revision_of_a_local_directory_is_a_content_hash(tmp_path: Path) -> None:
    copy = Path(shutil.copytree(model_path(), tmp_path / "copy"))
    revision = directory_revision(model_path())
    assert revision.startswith("sha256:") and directory_revision(copy) == revision  # content, not path
    (copy / "README.md").write_text("notes do not count")
    assert directory_revision(copy) == revision
    config = copy / "config.json"
    config.write_text(config.read_text().replace('"initializer_factor": 1.0', '"initializer_factor": 2.0', 1))
    assert directory_revision(copy) != revision
    embedder = SentenceTransformerEmbedder(str(model_path()), device="cpu", num_workers=0)
    assert embedder.revision == revision


def test_revision_from_a_hub_snapshot_and_the_hub_cache(tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--org--clip"
    snapshot = Path(shutil.copytree(model_path(), repo / "snapshots" / COMMIT))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    # loaded from the snapshot directory: its commit
    assert SentenceTransformerEmbedder(str(snapshot), device="cpu", num_workers=0).revision == COMMIT
    # a hub id: the commit the local cache holds for the revision asked for (no network)
    assert model_revision(object(), name="org/clip", cache_folder=str(tmp_path / "hub")) == COMMIT
    assert (
        model_revision(object(), name="org/clip", revision="v9", cache_folder=str(tmp_path / "hub")) is None
    )
    assert model_revision(object(), name="org/other", revision=COMMIT) == COMMIT
    assert model_revision(object()) is None  # built in memory: unknown
