"""Open a local HTML page in headless Chromium and report how each of its images loaded.

The page under test is loaded unmodified, in an iframe of a small probe page, so its own
Content-Security-Policy applies to it. After the iframe's ``load`` event (which waits for its
images) the probe writes, for every ``<img>``, whether it completed and its natural size into its
own DOM as JSON, and Chromium's ``--dump-dom`` prints that DOM.

Nothing here touches the network: the pages are local files, every host name resolves to nothing
(``--host-resolver-rules``) and Chromium's background services are switched off.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser")

_PROBE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>probe</title></head><body>
<pre id="probe-result">pending</pre>
<iframe id="page" src="PAGE_URL" style="width:1200px;height:800px"></iframe>
<script>
document.getElementById("page").addEventListener("load", function () {
  var out = document.getElementById("probe-result");
  try {
    var images = this.contentDocument.images;
    var rows = [];
    for (var i = 0; i < images.length; i++) {
      var img = images[i];
      rows.push({alt: img.alt, complete: img.complete, width: img.naturalWidth,
                 height: img.naturalHeight, scheme: img.src.split(":")[0]});
    }
    out.textContent = JSON.stringify({ok: true, title: this.contentDocument.title, images: rows});
  } catch (e) {
    out.textContent = JSON.stringify({ok: false, error: String(e)});
  }
});
</script></body></html>
"""


@dataclass(frozen=True)
class ImageProbe:
    """How one ``<img>`` of the page loaded."""

    alt: str
    complete: bool
    width: int
    height: int
    scheme: str

    @property
    def loaded(self) -> bool:
        """Whether the image decoded to a picture of non-zero size."""
        return self.complete and self.width > 0 and self.height > 0


@dataclass(frozen=True)
class PageProbe:
    """The page's title and its images, in document order."""

    title: str
    images: list[ImageProbe]


def find_chromium() -> str | None:
    """The path of a Chromium binary on ``PATH``, or ``None``."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def probe_images(page: Path, work_dir: Path, *, timeout: float = 60.0) -> PageProbe:
    """Load ``page`` in headless Chromium and return how each of its images loaded.

    Raises:
        RuntimeError: Chromium is missing, failed, or the probe did not report.
    """
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("Chromium is not installed: apt-get install chromium (scripts/test.sh does it)")
    page = page.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    probe = work_dir / "probe.html"
    probe.write_text(_PROBE.replace("PAGE_URL", html.escape(page.as_uri(), quote=True)), encoding="utf-8")
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--metrics-recording-only",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--allow-file-access-from-files",
        f"--user-data-dir={work_dir / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    match = re.search(r'<pre id="probe-result">(.*?)</pre>', done.stdout, re.S)
    if done.returncode != 0 or match is None:
        raise RuntimeError(
            f"chromium exited {done.returncode} without a probe result; stderr tail:\n{done.stderr[-2000:]}"
        )
    text = html.unescape(match.group(1))
    if text == "pending":
        raise RuntimeError("the page did not finish loading within Chromium's virtual time budget")
    report = json.loads(text)
    if not report["ok"]:
        raise RuntimeError(f"the probe could not read the page: {report['error']}")
    images = [ImageProbe(**row) for row in report["images"]]
    return PageProbe(title=report["title"], images=images)
