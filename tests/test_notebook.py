"""The RAG notebook (examples/multimodal_rag.ipynb) runs top to bottom and shows what it says it shows."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

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

    # The RAG chain handed pictures and texts to the (stand-in) chat model.
    answer = re.search(r"I was shown (\d+) pictures and these texts: (.+)", everything)
    assert answer is not None and int(answer.group(1)) >= 1
    assert "blue cross" in answer.group(2)

    # The image query shows the query and four picture results, all inline.
    image_cell = code_cells[-1]
    shown = "".join(_html_outputs(image_cell))
    assert shown.count('src="data:image/png;base64,') == 5
    assert re.findall(r"<b>(\w+)</b>", shown) == ["image"] * 4
