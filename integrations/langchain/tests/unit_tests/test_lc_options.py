"""One spelling of the media option across both integrations: ``media_policy=``; the old ones still work."""

from __future__ import annotations

from pathlib import Path

import pytest
from omniretrieve import MediaLoader, MediaPolicy
from pydantic import ValidationError

from langchain_omniretrieve import OmniretrieveEmbeddings, OmniretrieveReranker


def test_media_policy_reaches_the_embedders_loader() -> None:
    policy = MediaPolicy(allow_urls=True, max_bytes=1024)
    embeddings = OmniretrieveEmbeddings(model="fake:8", media_policy=policy)
    assert embeddings.omniretrieve_embedder.media.policy is policy  # type: ignore[attr-defined]
    assert embeddings.media_policy is policy
    default = OmniretrieveEmbeddings(model="fake:8")
    assert default.media_policy is None
    assert default.omniretrieve_embedder.media.policy.allow_urls is False  # type: ignore[attr-defined]


def test_allow_urls_is_a_deprecated_spelling() -> None:
    with pytest.warns(DeprecationWarning, match=r"allow_urls=\) is deprecated: pass media_policy=") as caught:
        embeddings = OmniretrieveEmbeddings(model="fake:8", allow_urls=True)
    assert caught[0].filename == __file__  # the warning points at the caller's line
    assert embeddings.media_policy == MediaPolicy(allow_urls=True)
    assert embeddings.omniretrieve_embedder.media.policy.allow_urls is True  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning):
        assert OmniretrieveEmbeddings(model="fake:8", allow_urls=False).media_policy is None


def test_media_is_a_deprecated_spelling_and_the_loader_is_kept() -> None:
    loader = MediaLoader(MediaPolicy(allowed_roots=("/data",)), resolver=lambda host, port: ["192.0.2.1"])
    with pytest.warns(DeprecationWarning, match=r"media=\) is deprecated"):
        embeddings = OmniretrieveEmbeddings(model="fake:8", media=loader)
    assert embeddings.omniretrieve_embedder.media is loader  # type: ignore[attr-defined]
    assert embeddings.media_policy is loader.policy


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"media_policy": MediaPolicy(), "allow_urls": True}, "give media_policy only"),
        ({"media": MediaPolicy()}, "must be an omniretrieve.MediaLoader"),
        ({"media_policy": True}, "must be an omniretrieve.MediaPolicy"),
        ({"allow_url": True}, "allow_url"),  # a misspelt option is refused, not ignored
    ],
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_bad_media_options_are_refused(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        OmniretrieveEmbeddings(model="fake:8", **options)  # type: ignore[arg-type]


def test_reranker_takes_the_same_spellings(tiny_reranker_path: Path) -> None:
    policy = MediaPolicy(allow_urls=True)
    reranker = OmniretrieveReranker(model=str(tiny_reranker_path), device="cpu", media_policy=policy)
    assert reranker.omniretrieve_reranker.media.policy is policy  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning, match="media_policy="):
        old = OmniretrieveReranker(model=str(tiny_reranker_path), device="cpu", allow_urls=True)
    assert old.media_policy == policy
    with pytest.raises(ValidationError, match="top"):
        OmniretrieveReranker(model=str(tiny_reranker_path), topn=3)  # type: ignore[call-arg]
