"""The RAG notebook (examples/multimodal_rag.ipynb) runs top to bottom and shows what it says it shows."""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "multimodal_rag.ipynb"
KERNEL = "omniretrieve-test-python"


@pytest.fixture
def kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec for this very interpreter, found first on JUPYTER_PATH (user kernels ignored)."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "omniretrieve tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return KERNEL


def _html_outputs(cell: nbformat.NotebookNode) -> list[str]:
    return [o["data"]["text/html"] for o in cell.get("outputs", []) if "text/html" in o.get("data", {})]


def _text_outputs(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _cards(shown: str) -> list[tuple[str, str]]:
    """``(modality, what)`` of each result card the notebook drew: a text, or a picture's file name."""
    cards = re.findall(r"<b>(\w+)</b> -?\d+\.\d+<br>(.*?)</div>", shown, re.S)
    return [(modality, html.unescape(re.sub(r"<[^>]+>", "", body)).strip()) for modality, body in cards]


def _scene_of() -> dict[str, Any]:
    """The scene each file of the notebook's folder shows or names: by picture file name and by caption."""
    from omniretrieve.demo import make_world

    world = make_world(seed=0)  # the notebook's folder
    scenes: dict[str, Any] = {f"{d.id}.png": d.scene for d in world.docs if d.image is not None}
    scenes.update({d.text.strip(): d.scene for d in world.docs if d.text is not None and d.scene is not None})
    return scenes


@pytest.mark.slow
def test_notebook_executes_and_shows_images(kernel_name: str, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, kernel_name=kernel_name, timeout=180, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code_cells for o in c.outputs if o.get("output_type") == "error"]
    assert not errors

    everything = "\n".join(_text_outputs(c) for c in code_cells)
    assert "144 text files, 120 images" in everything
    assert "'failed': 0" in everything and "images: 120" in everything

    # The retrieval cell: calibrated results mix a picture in; raw cosine shows texts only.
    retrieval = next(c for c in code_cells if 'calibration="none"' in c.source)
    calibrated, raw = _html_outputs(retrieval)
    assert "calibrated" in calibrated and "raw cosine" in raw
    assert len(re.findall(r"<b>image</b>", calibrated)) >= 1
    assert re.findall(r"<b>(\w+)</b>", raw) == ["text"] * 4
    assert calibrated.count('src="data:image/png;base64,') >= 1

    # The reranked top 4 answer the question: each shows or names a blue cross (the demo world
    # tells each picture's and caption's scene), and the blue cross in the bottom left is among them.
    # Pictures, captions or both: which of them the reranker keeps is its own business.
    reranked = _cards(
        "".join(_html_outputs(next(c for c in code_cells if "reranked_retriever.invoke" in c.source)))
    )
    scenes = [_scene_of().get(what) for _, what in reranked]
    assert len(reranked) == 4, reranked
    assert all(s is not None and (s.color, s.shape) == ("blue", "cross") for s in scenes), reranked
    assert any(s is not None and s.position == "bottom left" for s in scenes), reranked

    # The RAG chain handed those pictures and texts to the (stand-in) chat model.
    answer = re.search(r"I was shown (\d+) pictures and (\d+) texts", everything)
    assert answer is not None
    assert int(answer.group(1)) == sum(modality == "image" for modality, _ in reranked)
    assert int(answer.group(2)) == sum(modality == "text" for modality, _ in reranked)

    # The image query shows the query and four picture results, all inline.
    image_cell = code_cells[-1]
    shown = "".join(_html_outputs(image_cell))
    assert shown.count('src="data:image/png;base64,') == 5
    assert re.findall(r"<b>(\w+)</b>", shown) == ["image"] * 4
