"""Loading options reach sentence-transformers' ``CrossEncoder`` through ``OmniretrieveRerank``, by name."""

from __future__ import annotations

from typing import Any

import pytest
import sentence_transformers
from llama_index.postprocessor.omniretrieve_rerank import OmniretrieveRerank

from omniretrieve import InvalidInputError
from omniretrieve.testing.rerankers import FakeReranker


class _Reached(Exception):
    """Raised by the spy instead of loading."""


def test_loading_options_by_name_reach_the_cross_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    class Spy(sentence_transformers.CrossEncoder):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            seen.append(kwargs)
            raise _Reached

    monkeypatch.setattr(sentence_transformers, "CrossEncoder", Spy)
    with pytest.raises(_Reached):
        OmniretrieveRerank("org/reranker", revision="v2", cache_folder="/models", token="t", max_length=64)
    assert {k: seen[0][k] for k in ("revision", "cache_folder", "token", "max_length")} == {
        "revision": "v2",
        "cache_folder": "/models",
        "token": "t",
        "max_length": 64,
    }


def test_loading_options_with_a_ready_reranker_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="revision"):
        OmniretrieveRerank(FakeReranker(), revision="main")
