"""The code blocks of README.md and of every integration's README run verbatim.

Each README's ``python`` blocks run in order in one namespace, and its ``bash`` lines that call
``omniretrieve`` run as commands, in a fresh folder holding the files the README names. The only
changes are the substitutions in :data:`SUBSTITUTIONS`: hub ids become the shipped demo model
(no hub here), a reranker placeholder becomes a tiny reranker built here, home folders become local
ones, and the Chroma server port becomes the test's loopback server. JSON blocks that follow a
file name in the text (``queries.json``, ``judgments.json``) are written to those files verbatim.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chroma_server import ChromaServer
from PIL import Image as PILImage

from omniretrieve.demo import model_path

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted(ROOT.glob("integrations/*/README.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
HUB_ID = "sentence-transformers/clip-ViT-B-32"


@pytest.fixture(scope="module")
def reranker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from omniretrieve.testing.rerankers import build_tiny_llava_reranker

    return build_tiny_llava_reranker(tmp_path_factory.mktemp("reranker") / "tiny")


@pytest.fixture(scope="module")
def loopback_chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    with ChromaServer(tmp_path_factory.mktemp("readme-chroma") / "data") as server:
        yield server


def substitutions(reranker: Path, server: ChromaServer) -> dict[str, str]:
    return {
        HUB_ID: str(model_path()),
        "path/to/multimodal-reranker": str(reranker),
        "~/notes": "notes",
        "~/photos": "photos",
        "port=8000": f"port={server.port}",
        "--chroma-port 8000": f"--chroma-port {server.port}",
    }


def blocks(readme: Path) -> list[tuple[str, str, str]]:
    """``(language, code, the text just before the block)`` for every fenced block."""
    text = readme.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[max(0, match.start() - 2000) : match.start()]
        found.append((match.group(1), match.group(2), before))
    return found


def _png(path: Path, color: tuple[int, int, int], seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(color) + rng.integers(-20, 20, size=(48, 64, 3)), 0, 255).astype(np.uint8)
    PILImage.fromarray(pixels).save(path)


def make_files(folder: Path) -> None:
    """The files the READMEs name, small and made up."""
    _png(folder / "photos" / "whiteboard.jpg", (240, 240, 240))
    PILImage.open(folder / "photos" / "whiteboard.jpg").convert("RGB").save(
        folder / "photos" / "whiteboard.jpg", "JPEG"
    )
    _png(folder / "photos" / "circle.png", (220, 30, 30), 1)
    _png(folder / "photos" / "square.png", (30, 30, 220), 2)
    _png(folder / "slides" / "3.png", (30, 160, 30), 3)
    _png(folder / "query.jpg", (220, 40, 40), 4)
    (folder / "notes").mkdir()
    (folder / "notes" / "receipt.txt").write_text(
        "receipt from the hardware store: nails, glue", encoding="utf-8"
    )
    corpus = folder / "my-eval" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "red-circle.txt").write_text("a red circle on a white page", encoding="utf-8")
    (corpus / "blue-square.txt").write_text("a blue square", encoding="utf-8")
    _png(corpus / "red.png", (220, 30, 30), 5)
    _png(corpus / "blue.png", (30, 30, 220), 6)
    _png(folder / "my-eval" / "queries" / "red-query.png", (210, 40, 30), 7)


def _json_target(before: str) -> str | None:
    """The file a JSON block shows: its paragraph starts with the file's name ("`queries.json`: ...")."""
    paragraph = before.rstrip().split("\n\n")[-1]
    named = re.match(r"`([\w-]+\.json)`:", paragraph)
    return named.group(1) if named else None


def run_readme(readme: Path, folder: Path, subs: dict[str, str]) -> None:
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    cli = Path(sys.executable).parent / "omniretrieve"
    found = blocks(readme)
    for lang, code, before in found:  # the files the text describes exist before any command runs
        if lang == "json" and (target := _json_target(before)) is not None:
            (folder / "my-eval" / target).write_text(code, encoding="utf-8")
    for index, (lang, code, _) in enumerate(found):
        for old, new in subs.items():
            code = code.replace(old, new)
        where = f"{readme.relative_to(ROOT)} block {index + 1}"
        if lang == "python":
            exec(compile(code, where, "exec"), namespace)  # noqa: S102 - the README's own code
        elif lang == "bash":
            for line in code.splitlines():
                command = line.split("#", 1)[0].strip()
                if not command.startswith("omniretrieve "):
                    continue  # the two scripts of the quick start run in CI themselves
                args = shlex.split(command)[1:]
                done = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=300)
                assert done.returncode in (0, 1), f"{where}: {command}\n{done.stdout}\n{done.stderr}"


@pytest.mark.slow
@pytest.mark.parametrize("readme", READMES, ids=[str(p.relative_to(ROOT)) for p in READMES])
def test_readme_code_runs(
    readme: Path,
    tmp_path: Path,
    reranker_dir: Path,
    loopback_chroma: ChromaServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert os.getcwd() == str(tmp_path)
    run_readme(readme, tmp_path, substitutions(reranker_dir, loopback_chroma))
