"""A long text costs what the model reads, not what was given (issue 14, class 3).

The demo model reads 64 tokens; a text of megabytes used to be tokenised whole first (1 MB: 742 MiB).
Time and peak memory are measured in a fresh subprocess at 1x, 10x and 100x the size.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = """
import json, resource, time
import omniretrieve
embedder = omniretrieve.load_embedder("demo")
short = embedder.embed_each(["a red circle in the top left"])[0].vector
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
text = "a red circle in the top left " + "and a blue square " * ({size} // 18)
started = time.perf_counter()
result = embedder.embed_each([text])[0]
seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
same = float(result.vector @ embedder.embed_each([text[:4096]])[0].vector)
print(json.dumps({{"extra_kib": after - before, "seconds": seconds, "same": same, "chars": len(text)}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("size", [100_000, 1_000_000, 10_000_000])
def test_long_text_is_cut_before_tokenising(size: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT.format(size=size))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["chars"] >= size - 18
    # The text itself (and its copy) is the caller's; what the model costs must not grow with it.
    assert got["extra_kib"] < 64 * 1024 + 3 * size // 1024, got
    assert got["seconds"] < 5.0, got
    assert got["same"] > 0.999, got  # the model reads the same first tokens either way
