"""Pages rendered by a real browser: headless Chromium (Debian's `chromium`), for the HTML that
students and instructors read (the feedback, the similarity report)."""

import html
import json
import re
import shutil
import subprocess

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--window-size=900,1200", "--virtual-time-budget=5000"]

# Measures the page as a reader's browser lays it out, and records what is visible.
MEASURE = """
<script>
window.addEventListener("load", () => {
  const wide = [...document.querySelectorAll("pre")].filter(
      element => element.scrollWidth > element.clientWidth + 1);
  const report = document.createElement("pre");
  report.id = "measured";
  report.textContent = JSON.stringify({
    overflowing: wide.length, pageWider: document.documentElement.scrollWidth > innerWidth,
    visibleText: document.body.innerText,
    index: [...document.querySelectorAll("#toc li")].map(item => item.innerText),
    marks: document.querySelectorAll("mark").length});
  document.body.appendChild(report);
});
</script>
"""


def chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is missing: `apt-get install chromium` (.ci/apt-packages.txt)")
    return found


def what_a_reader_sees(html_path, tmp_path):
    """{overflowing, pageWider, visibleText, index, marks} of a page rendered by headless
    Chromium."""
    page = tmp_path / "page.html"
    page.write_text(html_path.read_text().replace("</body>", MEASURE + "</body>", 1))
    result = subprocess.run([chromium(), *CHROMIUM_FLAGS,
                             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                             page.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="measured">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


def screenshot(html_path, png_path, tmp_path, size="1400,2400"):
    """A PNG of the page's top as Chromium draws it, for a person to look at."""
    result = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--window-size={size}",
                             f"--user-data-dir={tmp_path / 'screenshot-profile'}",
                             f"--screenshot={png_path}", html_path.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert png_path.exists(), result.stderr[-2000:]
    return png_path
