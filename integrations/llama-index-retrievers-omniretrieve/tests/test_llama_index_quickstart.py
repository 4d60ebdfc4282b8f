from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llama_index_quickstart.py"


def test_quickstart_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    namespace = runpy.run_path(str(EXAMPLE), run_name="quickstart")
    assert namespace["main"]() == 0
    out = capsys.readouterr().out
    added = re.search(r"added (\d+) documents: (\d+) images, (\d+) texts", out)
    assert added is not None and int(added[2]) > 0 and int(added[3]) > 0
    assert int(added[1]) == int(added[2]) + int(added[3])
    lines = out.splitlines()
    text_hits = lines[lines.index("text query 'find the red circle in the top left':") + 1 :][:4]
    assert len(text_hits) == 4 and any(" image " in line for line in text_hits)
    assert "query engine, reranked: 4 source nodes" in out
    # The same store under LlamaIndex's VectorStoreIndex gives the retriever's list (the same
    # calibrated search, of LlamaIndex's query embedding).
    via_index = lines[lines.index("vector store index: 4 source nodes:") + 1 :][:4]
    assert via_index == text_hits
