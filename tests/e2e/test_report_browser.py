"""The run report of a real run, opened in a real browser: headless Chromium (Debian's package,
which scripts/test installs) renders it offline, runs its script, and shows what the run did."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

WINDOW = (1280, 1600)

WORKFLOW = """
version: "0.1"
variables:
  LR: {value: 0.1, type: float, domain: [0.1, 0.01]}
workflow:
  name: demo
  tasks:
    - name: prepare
      script: ["echo preparing", "echo '<script>document.title=\\"pwned\\"</script>'"]
    - name: train
      depends_on: [prepare]
      replicas: {variables: [LR]}
      script: ["echo lr=${LR}", "python3 -c \\"print('loss=%.3f' % (${LR} * 7))\\""]
      outputs:
        - {name: loss, pattern: 'loss=([0-9.]+)', type: float}
    - name: flaky
      depends_on: [prepare]
      retries: {count: 2, interval: 0}
      script: ["if [ ! -e once ]; then touch once; echo first try fails; exit 3; fi", "echo ok now"]
    - name: broken
      depends_on: [train, flaky]
      script: ["echo 'about to fail <b>&</b>'", "exit 7"]
    - name: after
      depends_on: [broken]
      script: ["echo never"]
"""

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def chromium(tmp_path):
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium is not installed (scripts/test installs it as root on Debian)")

    def run(*args: str) -> subprocess.CompletedProcess:
        argv = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    return run


class Page(HTMLParser):
    """What the tests read of a DOM: elements with their attributes, and the text inside each."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.texts: dict[str, list[str]] = {}
        self._open: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        self._open.append(tag)

    def handle_endtag(self, tag):
        if tag in self._open:
            while self._open.pop() != tag:
                pass

    def handle_data(self, data):
        for tag in set(self._open):
            self.texts.setdefault(tag, []).append(data)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def _real_run(sflow) -> Path:
    wf = sflow.write("wf.yaml", WORKFLOW)
    done = sflow("run", "-q", "--keep-going", "--report", "-f", str(wf))
    assert done.code == 1, done.err
    report = done.run_dir() / "report.html"
    assert f"sflow: report {report}" in done.err
    return report


def test_the_report_of_a_real_run_in_a_browser(sflow, chromium):
    report = _real_run(sflow)
    dom = chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = Page(dom.stdout)
    body = page.all("body")[0]
    assert body["data-ready"] == "1", "the page's script did not run"
    assert body["data-state"] == "failed"
    rows = {r["id"]: r["data-state"] for r in page.all("tr") if r.get("id", "").startswith("task-")}
    assert rows == {
        "task-prepare": "succeeded",
        "task-train_0_1": "succeeded",
        "task-train_0_01": "succeeded",
        "task-flaky": "succeeded",
        "task-broken": "failed",
        "task-after": "skipped",
    }
    graph = {g["data-task"]: g["data-state"] for g in page.all("g") if "data-task" in g}
    assert graph == {name.removeprefix("task-"): state for name, state in rows.items()}
    bars = {(b["data-task"], b["data-attempt"], b["class"]) for b in page.all("rect") if "data-task" in b}
    assert ("flaky", "1", "bar st-retrying") in bars and ("flaky", "2", "bar st-succeeded") in bars
    assert ("broken", "1", "bar st-failed") in bars and not any(t == "after" for t, _, _ in bars)
    filters = [b["data-state"] for b in page.all("button")]
    assert filters == ["failed", "skipped", "succeeded"]  # built by the script from the table
    assert page.all("table", **{"data-sweep": "train"})
    cells = "".join(page.texts["td"])
    assert "0.7" in cells and "0.07" in cells  # the sweep's losses
    logs = "".join(page.texts["pre"])
    assert '<script>document.title="pwned"</script>' in logs  # shown as text ...
    assert "about to fail <b>&</b>" in logs
    assert len(page.all("script")) == 1 and "pwned" not in "".join(page.texts["title"])  # ... never run


def test_a_screenshot_of_the_report_is_a_real_picture(sflow, chromium, tmp_path):
    from PIL import Image

    report = _real_run(sflow)
    png = tmp_path / "report.png"
    shot = chromium(f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={png}", report.as_uri())
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == WINDOW
        pixels = image.convert("RGB")
        colors = pixels.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50, "a blank or nearly blank page"
    found = {rgb for _, rgb in colors}
    assert (0xC6, 0x28, 0x28) in found, "no failed task drawn in red"
    assert (0x2E, 0x7D, 0x32) in found, "no succeeded task drawn in green"


def test_sflow_report_writes_the_report_of_an_earlier_run(sflow, tmp_path):
    wf = sflow.write("wf.yaml", WORKFLOW)
    assert sflow("run", "-q", "--keep-going", "-f", str(wf)).code == 1
    out = tmp_path / "elsewhere.html"
    done = sflow("report", "latest", "--output-dir", str(sflow.output_dir), "-o", str(out))
    assert done.code == 0 and done.out.strip() == f"wrote {out}", done.err
    page = Page(out.read_text())
    assert page.all("tr", id="task-broken", **{"data-state": "failed"})
    missing = sflow("report", "nosuchrun", "--output-dir", str(sflow.output_dir))
    assert missing.code == 2 and "run 'nosuchrun' not found" in missing.err
