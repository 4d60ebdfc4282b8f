"""examples/langchain_quickstart.py runs and shows what it says it shows."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "langchain_quickstart.py"


def _section(lines: list[str], title: str, n: int) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    return lines[start + 1 : start + 1 + n]


def test_quickstart_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("indexed ") and "texts and" in lines[0]
    raw = _section(lines, "raw cosine", 4)
    calibrated = _section(lines, "calibrated", 4)
    assert all(" text " in line for line in raw)  # the modality gap: texts only
    assert any(" image picture: " in line for line in calibrated)  # gap removed: pictures compete
    mmr = _section(lines, "relevant and diverse", 4)
    assert mmr[0].split()[1:] == calibrated[0].split()[2:]  # MMR starts from the best match
    assert len(set(mmr)) == 4 and calibrated[1].split()[1:] != mmr[1].split()  # then diversifies
    context = _section(lines, "context for a RAG prompt", 3)
    assert all(line.strip().startswith("[text] ") for line in context)
