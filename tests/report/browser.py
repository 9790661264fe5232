"""Open a page in headless Chromium (Debian's `chromium` package): screenshot and DOM after load.

CI must not skip the browser tests silently: they skip only when Chromium is missing AND the
environment variable CI is unset (`.ci/run` sets CI=true and installs Chromium).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from environment import missing

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--disable-extensions",
    "--mute-audio",
    "--disable-dev-shm-usage",
]

# Appended to a copy of the page under test: once everything has loaded, record what each image
# decoded to and whether any injected script ran, as a JSON attribute --dump-dom will show.
PROBE = """
<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {alt: img.alt.slice(0, 60), complete: img.complete, width: img.naturalWidth, height: img.naturalHeight};
  });
  var probe = document.createElement("pre");
  probe.id = "t2e-probe";
  probe.setAttribute("data-result", JSON.stringify({images: images, pwned: window.__pwned || null,
                                                    scripts: document.scripts.length}));
  document.body.appendChild(probe);
});
</script>
"""


def chromium() -> str:
    """The browser binary, or skip (locally) / fail (in CI) when it is not installed."""
    found = shutil.which("chromium") or (os.path.exists("/usr/bin/chromium") and "/usr/bin/chromium")
    if found:
        return found
    missing("chromium is not installed", ".ci/run installs Debian's chromium package (apt-get install -y chromium)")


def run(args: list[str], profile: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=timeout
    )


def screenshot(page: Path, out: Path, profile: Path, size: str = "1280,2400") -> Path:
    proc = run([f"--window-size={size}", f"--screenshot={out}", page.resolve().as_uri()], profile)
    assert out.exists(), proc.stderr[-2000:]
    return out


def probe_dom(page: Path, work: Path, profile: Path, keep_csp: bool = False) -> str:
    """The DOM of a copy of `page` with the probe script appended, after load.

    The page's own Content-Security-Policy would block the probe too, so the copy drops it unless
    keep_csp; the report's escaping then is the only thing between trace text and a script.
    """
    html = page.read_text(encoding="utf-8")
    if not keep_csp:
        start = html.find('<meta http-equiv="Content-Security-Policy"')
        if start >= 0:
            html = html[:start] + html[html.index(">", start) + 1 :]
    probed = work / f"probed-{page.name}"
    probed.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = run(["--virtual-time-budget=10000", "--dump-dom", probed.resolve().as_uri()], profile)
    return proc.stdout
