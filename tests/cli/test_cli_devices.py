"""``omniretrieve index --devices``: checked before a store is made, applied to the model, refused by others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from omniretrieve.cli import app
from omniretrieve.cli import index as index_module


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def _folder(root: Path) -> Path:
    root.mkdir()
    (root / "note.txt").write_text("a red circle\n", encoding="utf-8")
    PILImage.new("RGB", (20, 20), (200, 30, 30)).save(root / "red.png")
    return root


def test_devices_reach_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    real = index_module.use_devices

    def spy(embedder: Any, devices: Any) -> None:
        real(embedder, devices)
        seen.append(embedder.devices)

    monkeypatch.setattr(index_module, "use_devices", spy)
    code, out = _invoke(
        "index", str(_folder(tmp_path / "data")), "--store", str(tmp_path / "s"), "--devices", "cpu"
    )
    assert code == 0, out
    assert seen == [("cpu",)]


def test_a_bad_device_is_refused_before_a_store_is_made(tmp_path: Path) -> None:
    store = tmp_path / "s"
    code, out = _invoke(
        "index", str(_folder(tmp_path / "data")), "--store", str(store), "--devices", "cpu,nope:x"
    )
    assert code == 2 and "--devices" in out and "nope:x" in out
    assert not store.exists()


def test_a_model_without_devices_refuses_them(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "data")
    code, out = _invoke(
        "index", str(folder), "--store", str(tmp_path / "s"), "--model", "fake:16", "--devices", "cpu"
    )
    assert code == 2 and "takes no devices" in out
