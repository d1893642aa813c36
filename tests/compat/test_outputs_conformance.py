"""One workflow with nv-sflow's `outputs` templates, run for real by nv-sflow 0.3.1 and by sflow:
the same values in the same `outputs.json`, and the dependent that reads them sees the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "compat"))

WORKFLOW = """
version: "0.1"
workflow:
  name: templates
  tasks:
    - name: bench
      script:
        - 'echo "TTFT: 12.5 ms"'
        - 'echo "request 2 TTFT: 99.0 ms"'
        - 'echo "TTFT: 13 ms"'
        - 'echo "TTFT: 13.0 ms"'
        - echo "model=llama-3 tokens=128 id=" >&2
        - 'echo "throughput: 1e3 tok/s"'
        - 'echo "status: OK"'
      outputs:
        - pattern: "TTFT: {ttft:f} ms"
        - pattern: "model={model} tokens={tokens:d} id={id:w*}"
          source: stderr
        - pattern: "throughput: {tps:g} tok/s"
        - pattern: "status: {status:w}"
        - pattern: "status: {never:d}"
        - pattern: "accuracy: {accuracy:f}"
    - name: report
      depends_on: [bench]
      script:
        - >-
          python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["outputs"]["ttft"]))'
          "$SFLOW_WORKFLOW_OUTPUT_DIR/bench/outputs.json" > "$SFLOW_TASK_OUTPUT_DIR/seen.json"
"""


@pytest.fixture(scope="module")
def nvsflow() -> Path:
    from harness import nvsflow_python

    return nvsflow_python()


def run(python: Path, wf: Path, out: Path) -> Path:
    """The run folder of a real `sflow run` of `wf` with that Python's sflow."""
    done = subprocess.run(
        [str(python), "-m", "sflow", "run", "-f", str(wf), "--output-dir", str(out)],
        cwd=wf.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (bench,) = out.glob("*/bench/outputs.json")
    return bench.parent.parent


def test_both_tools_write_the_same_outputs(nvsflow: Path, tmp_path: Path) -> None:
    wf = tmp_path / "templates.yaml"
    wf.write_text(WORKFLOW)
    theirs = run(nvsflow, wf, tmp_path / "nv")
    ours = run(Path(sys.executable), wf, tmp_path / "ours")
    written = [json.loads((run_dir / "bench" / "outputs.json").read_text()) for run_dir in (theirs, ours)]
    assert written[0] == written[1]
    assert written[1]["outputs"] == {
        "ttft": [12.5, 13.0],  # `13` is no `{:f}`, and a template matches whole lines only
        "model": "llama-3",
        "tokens": 128,
        "id": "",
        "tps": 1000.0,
        "status": "OK",
    }
    seen = [(run_dir / "report" / "seen.json").read_text() for run_dir in (theirs, ours)]
    assert seen == ["[12.5, 13.0]\n", "[12.5, 13.0]\n"]
