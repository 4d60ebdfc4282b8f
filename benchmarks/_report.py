"""What every benchmark's JSON report shares: the machine it ran on, and how it is written."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """The machine a benchmark ran on (numbers from different machines are not comparable)."""
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write a benchmark's report as indented JSON, creating the results folder if needed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
