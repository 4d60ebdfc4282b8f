"""Hostile media inside a batch: each gives its typed error, the good items of the batch still embed.

Every case of ``media_fixtures.hostile_corpus`` (truncated files, decompression bombs, path escapes,
refused and failing URLs against a loopback server, ...) is put in the middle of a batch of good
items and embedded with ``embed_each``. The case must give exactly its expected error class (or
embed, for the tricky-but-valid cases) and every good item of that batch must embed to the same
vector it gives alone. Nothing may connect anywhere but the loopback server: the loader's connect
step raises ``ConnectForbidden`` (a BaseException nothing can swallow) for anything else.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from media_fixtures import (
    HostileCase,
    LoopbackServer,
    good_items,
    hostile_corpus,
    no_remote_connections,
)
from models_fixtures import tiny_clip_path  # noqa: F401

from omniretrieve.embedding import BaseEmbedder, SentenceTransformerEmbedder
from omniretrieve.errors import MediaError, MediaTimeoutError
from omniretrieve.media import MediaLoader
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.types import Image

SLACK_SECONDS = 3.0
"""Time on top of a case's own limit for the rest of the batch (2 shared cores, busy)."""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[HostileCase], list[Any]]]:
    tmp = tmp_path_factory.mktemp("hostile-embedding")
    with no_remote_connections(), LoopbackServer(max_handler_seconds=10.0) as server:
        cases = hostile_corpus(tmp, server)
        yield cases, good_items(tmp)


def _good_for(case: HostileCase, goods: list[Any]) -> list[Any]:
    """The good items that load, each alone, under the case's policy (a byte cap or a jail refuses some)."""
    loader = case.loader()
    kept = []
    for item in goods:
        try:
            loader.load(item, **_LOAD_KW[type(item).__name__])
        except MediaError:
            continue
        kept.append(item)
    return kept


_LOAD_KW: dict[str, dict[str, Any]] = {
    "Image": {},
    "Audio": {"sampling_rate": 16_000},
    "Video": {"num_frames": 4},
}


def _run_case(
    embedder_for: Any, case: HostileCase, goods: list[Any], extra: list[Any], alone: dict[int, np.ndarray]
) -> list[str]:
    """Embed ``goods[:half] + [case] + goods[half:] + extra``; return what went wrong (empty: fine).

    ``alone`` caches each good item's vector embedded on its own (by ``id``), across cases.
    """
    loader = case.loader()
    embedder: BaseEmbedder = embedder_for(loader)
    half = len(goods) // 2
    batch = goods[:half] + [case.item] + goods[half:] + extra
    where = half
    started = time.monotonic()
    results = embedder.embed_each(batch)
    elapsed = time.monotonic() - started
    problems: list[str] = []
    if elapsed > case.max_seconds + SLACK_SECONDS:
        problems.append(f"took {elapsed:.1f}s (limit {case.max_seconds}s)")
    hostile = results[where]
    if case.expected is None:
        if not hostile.ok:
            problems.append(f"should embed but failed: {hostile.error!r}")
    elif type(hostile.error) is not case.expected:
        problems.append(f"expected {case.expected.__name__}, got {hostile.error!r}")
    elif hostile.vector is not None:
        problems.append("has both an error and a vector")
    for i, result in enumerate(results):
        if i == where:
            continue
        if not result.ok:
            problems.append(f"good item {i} ({batch[i]!r:.60}) failed: {result.error!r}")
            continue
        if id(batch[i]) not in alone:
            alone[id(batch[i])] = embedder.embed([batch[i]])[0]
        if not np.allclose(result.vector, alone[id(batch[i])], atol=1e-5):
            problems.append(f"good item {i} differs from its embedding alone")
    return problems


def test_every_hostile_case_fails_alone_in_a_batch_with_the_fake(
    corpus: tuple[list[HostileCase], list[Any]],
) -> None:
    cases, goods = corpus
    assert len(cases) >= 40 and any(c.expected is None for c in cases)
    extra = ["a caption", {"text": "with a picture", "image": Image(np.full((6, 6, 3), 90, np.uint8))}]
    failures: dict[str, list[str]] = {}
    alone: dict[int, np.ndarray] = {}
    checked = 0
    with no_remote_connections():
        for case in cases:
            good = _good_for(case, goods)
            assert len(good) >= 4, case.name
            problems = _run_case(
                lambda loader: FakeEmbedder(16, media=loader, batch_size=3, video_num_frames=4),
                case,
                good,
                extra,
                alone,
            )
            checked += 1
            if problems:
                failures[case.name] = problems
    assert checked == len(cases)
    assert not failures, "\n".join(f"{name}: {'; '.join(p)}" for name, p in failures.items())


def test_hostile_images_fail_alone_in_a_batch_with_a_real_model(
    corpus: tuple[list[HostileCase], list[Any]],
    tiny_clip_path: Path,  # noqa: F811
) -> None:
    cases, goods = corpus
    # Timeouts are the network's business, covered with the fake above; they only cost time here.
    image_cases = [c for c in cases if isinstance(c.item, Image) and c.expected is not MediaTimeoutError]
    assert len(image_cases) >= 25
    model = SentenceTransformerEmbedder(tiny_clip_path, device="cpu").model

    def embedder_for(loader: MediaLoader) -> SentenceTransformerEmbedder:
        return SentenceTransformerEmbedder(model, media=loader, batch_size=3)  # same model, case's loader

    failures: dict[str, list[str]] = {}
    alone: dict[int, np.ndarray] = {}
    extra = ["a caption", "http://127.0.0.1:9/looks-like.png"]
    with no_remote_connections():
        for case in image_cases:
            good = [g for g in _good_for(case, goods) if isinstance(g, Image)]
            assert len(good) >= 2, case.name
            problems = _run_case(embedder_for, case, good, extra, alone)
            if problems:
                failures[case.name] = problems
    assert not failures, "\n".join(f"{name}: {'; '.join(p)}" for name, p in failures.items())
