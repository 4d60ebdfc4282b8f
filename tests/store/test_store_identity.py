"""A store records its model's id, revision and probe fingerprint, and refuses another embedding space."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from typer.testing import CliRunner

from omniretrieve.cli import app
from omniretrieve.demo import model_path
from omniretrieve.embedding import SentenceTransformerEmbedder
from omniretrieve.errors import EmbeddingSpaceMismatchError
from omniretrieve.store import Store
from omniretrieve.store._identity import (
    FINGERPRINT_MIN_COSINE,
    K_FINGERPRINT,
    K_HISTORY,
    K_PROBES,
    K_REVISION,
    embed_probes,
    min_cosine,
    probe_names,
)
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.types import Image

MODEL_ID = "acme/clip"


@pytest.fixture(scope="module")
def original() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(str(model_path()), model_id=MODEL_ID, device="cpu", num_workers=0)


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory: pytest.TempPathFactory) -> SentenceTransformerEmbedder:
    """The demo model with ONE weight changed, saved as another directory, loaded under the same id."""
    folder = Path(shutil.copytree(model_path(), tmp_path_factory.mktemp("perturbed") / "model"))
    weights = load_file(str(folder / "model.safetensors"))
    weights["text_projection.weight"][0, 0] += 1.0
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return SentenceTransformerEmbedder(str(folder), model_id=MODEL_ID, device="cpu", num_workers=0)


class _Renamed(FakeEmbedder):
    @property
    def model_id(self) -> str:
        return "acme/renamed"


def _picture() -> Image:
    return Image(np.full((16, 16, 3), (200, 30, 30), dtype=np.uint8))


def test_one_perturbed_weight_is_refused_by_its_fingerprint(
    tmp_path: Path, original: SentenceTransformerEmbedder, perturbed: SentenceTransformerEmbedder
) -> None:
    # Same id, same revision (the copy's config and weight headers are the same): only the
    # fingerprint tells them apart.
    assert perturbed.model_id == original.model_id and perturbed.revision == original.revision
    with Store(original, path=tmp_path / "s") as store:
        store.add(["a red circle", _picture()])
        recorded = store.identity.summary
    assert recorded is not None and recorded.startswith("fp:")
    with pytest.raises(EmbeddingSpaceMismatchError, match="fingerprint") as info:
        Store(perturbed, path=tmp_path / "s")
    assert info.value.differs == ("fingerprint",)
    assert recorded in str(info.value) and "allow_model_change=True" in str(info.value)
    assert f"< {FINGERPRINT_MIN_COSINE}" in str(info.value)
    # the refused open released the store: the original model reopens it, unchanged
    with Store(original, path=tmp_path / "s") as store:
        assert store.count() == 2 and store.identity.summary == recorded
    info_after = Store.inspect(path=tmp_path / "s")
    assert [c.event for c in info_after.model_history] == ["created"]


def test_the_same_model_at_the_same_revision_reopens(
    tmp_path: Path, original: SentenceTransformerEmbedder
) -> None:
    with Store(original, path=tmp_path / "s") as store:
        store.add(["a red circle"])
    moved = Path(shutil.copytree(model_path(), tmp_path / "elsewhere"))
    again = SentenceTransformerEmbedder(str(moved), model_id=MODEL_ID, device="cpu", num_workers=0)
    assert again.revision == original.revision
    with Store(again, path=tmp_path / "s") as store:
        assert store.count() == 1
    described = Store.inspect(path=tmp_path / "s")
    assert described.model_id == MODEL_ID and described.revision == original.revision
    assert described.fingerprint is not None and described.fingerprint_probes == probe_names(
        {"text", "image"}
    )
    assert [c.event for c in described.model_history] == ["created"]  # nothing changed: nothing recorded


def test_probe_vectors_of_the_two_models(
    original: SentenceTransformerEmbedder, perturbed: SentenceTransformerEmbedder
) -> None:
    names = probe_names(original.modalities)
    first, kept, failed = embed_probes(original, names)
    assert kept == names and not failed and first.shape == (len(names), original.dimension)
    again, _, _ = embed_probes(original, names)
    assert min_cosine(first, again) > 0.99999  # deterministic
    other, _, _ = embed_probes(perturbed, names)
    assert min_cosine(first, other) < FINGERPRINT_MIN_COSINE
    assert min_cosine(first, other[:2]) == -1.0  # another probe set never matches


def test_allow_model_change_opens_records_and_reembeds_nothing(
    tmp_path: Path, original: SentenceTransformerEmbedder, perturbed: SentenceTransformerEmbedder
) -> None:
    with Store(original, path=tmp_path / "s") as store:
        ids = [r.id for r in store.add(["a red circle", _picture()])]
        before = store.get_vectors(ids)
        old_summary = store.identity.summary
    with Store(perturbed, path=tmp_path / "s", allow_model_change=True) as store:
        after = store.get_vectors(ids)
        new_summary = store.identity.summary
    for a, b in zip(before, after, strict=True):
        assert a is not None and b is not None
        np.testing.assert_array_equal(a, b)  # nothing re-embedded
    assert new_summary != old_summary
    described = Store.inspect(path=tmp_path / "s")
    assert described.fingerprint == new_summary
    created, changed = described.model_history
    assert (created.event, changed.event) == ("created", "model changed")
    assert changed.previous_fingerprint == old_summary and changed.fingerprint == new_summary
    assert changed.min_cosine is not None and changed.min_cosine < FINGERPRINT_MIN_COSINE
    # the perturbed model is now the store's; the original is the stranger
    with Store(perturbed, path=tmp_path / "s") as store:
        assert store.count() == 2
    with pytest.raises(EmbeddingSpaceMismatchError, match=new_summary):
        Store(original, path=tmp_path / "s")


def test_another_model_id_can_be_allowed_but_not_another_dimension(tmp_path: Path) -> None:
    with Store(FakeEmbedder(8), path=tmp_path / "s") as store:
        store.add(["x"])
    renamed = _Renamed(8)  # the same vectors under a new id
    with pytest.raises(EmbeddingSpaceMismatchError) as info:
        Store(renamed, path=tmp_path / "s")
    assert info.value.differs == ("model id",)
    with Store(renamed, path=tmp_path / "s", allow_model_change=True) as store:
        store.add(["an image-free new kind"])
    described = Store.inspect(path=tmp_path / "s")
    assert described.model_id == "acme/renamed"  # every collection records the new id
    assert described.model_history[-1].event == "model changed"
    assert described.model_history[-1].previous_model_id == "fake:8"
    with Store(renamed, path=tmp_path / "s") as store:
        assert store.count() == 2
    with pytest.raises(EmbeddingSpaceMismatchError, match="dimension") as info:
        Store(FakeEmbedder(4), path=tmp_path / "s", allow_model_change=True)
    assert "dimension" in info.value.differs and "allow_model_change" not in str(info.value)


def test_a_store_made_before_fingerprints_records_one_on_first_open(
    tmp_path: Path, original: SentenceTransformerEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(original, path=tmp_path / "s") as store:
        store.add(["a red circle"])
        # what an older omniretrieve wrote: no revision, fingerprint, probes or history
        stats = store._collections.stats
        old = {
            k: v
            for k, v in (stats.metadata or {}).items()
            if k not in (K_REVISION, K_FINGERPRINT, K_PROBES, K_HISTORY)
        }
        stats.modify(metadata=old)
    described = Store.inspect(path=tmp_path / "s")
    assert described.fingerprint is None and described.revision is None and described.model_history == ()
    with caplog.at_level(logging.WARNING, logger="omniretrieve.store._identity"):
        with Store(original, path=tmp_path / "s") as store:
            assert store.count() == 1
    assert "records no model fingerprint" in caplog.text
    described = Store.inspect(path=tmp_path / "s")
    assert described.fingerprint is not None and described.revision == original.revision
    assert [c.event for c in described.model_history] == ["fingerprint recorded"]


def test_another_revision_with_the_same_vectors_is_recorded(
    tmp_path: Path, original: SentenceTransformerEmbedder
) -> None:
    with Store(original, path=tmp_path / "s") as store:
        store.add(["a red circle"])
    copy = Path(shutil.copytree(model_path(), tmp_path / "v2"))
    (copy / "notes.txt").write_text("a new file changes the directory's hash, not the vectors")
    v2 = SentenceTransformerEmbedder(str(copy), model_id=MODEL_ID, device="cpu", num_workers=0)
    assert v2.revision != original.revision
    with Store(v2, path=tmp_path / "s") as store:
        assert store.count() == 1
    described = Store.inspect(path=tmp_path / "s")
    assert described.revision == v2.revision
    change = described.model_history[-1]
    assert change.event == "revision changed" and change.previous_revision == original.revision


def test_info_shows_the_identity(tmp_path: Path, original: SentenceTransformerEmbedder) -> None:
    with Store(original, path=tmp_path / "s") as store:
        store.add(["a red circle"])
        summary = store.identity.summary
    result = CliRunner().invoke(
        app, ["info", "--store", str(tmp_path / "s"), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["model"] == MODEL_ID and payload["revision"] == original.revision
    assert payload["fingerprint"] == summary and payload["fingerprint_probes"][-1] == "image:0"
    assert [c["event"] for c in payload["model_history"]] == ["created"]
    result = CliRunner().invoke(app, ["info", "--store", str(tmp_path / "s")], catch_exceptions=False)
    assert result.exit_code == 0
    for text in (f"revision   {original.revision}", f"fingerprint {summary}", "created"):
        assert text in result.stdout


def test_the_server_store_checks_the_fingerprint_too(chroma_server: object) -> None:
    host, port = chroma_server.host, chroma_server.port  # type: ignore[attr-defined]
    with Store(FakeEmbedder(8), host=host, port=port, name="fingerprinted") as store:
        store.add(["x"])
    with pytest.raises(EmbeddingSpaceMismatchError, match="fingerprint"):
        Store(FakeEmbedder(8, seed=1), host=host, port=port, name="fingerprinted")
