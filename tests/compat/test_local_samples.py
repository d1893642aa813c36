"""nv-sflow's local samples run for real on sflow, unchanged (the samples come from its pinned install)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "compat"))
MEMORY = ["memory.used_mib", "memory.total_mib", "memory.used_percent"]


@pytest.fixture(scope="module")
def samples() -> Path:
    from harness import nvsflow_python, samples_dir

    return samples_dir(nvsflow_python())


def run_sample(samples: Path, name: str, tmp_path: Path) -> Path:
    """`sflow run` of a local sample; the run directory."""
    sample = samples / "self_contained" / "local" / name
    done = subprocess.run(
        [sys.executable, "-m", "sflow", "run", "-f", str(sample), "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (summary,) = (tmp_path / "out").glob("*/summary.json")
    assert all(t["state"] == "succeeded" for t in json.loads(summary.read_text())["tasks"].values())
    return summary.parent


def test_monitor_sample_samples_the_run_and_its_busy_task(samples: Path, tmp_path: Path) -> None:
    run_dir = run_sample(samples, "monitor.yaml", tmp_path)
    header, *rows = list(csv.reader((run_dir / "monitor" / "workflow" / "localhost.csv").open()))
    assert {"cpu.util_percent", "memory.used_mib", "disk.read_bytes_per_s", "network.rx_bytes_per_s"} <= set(
        header
    )
    assert len(rows) >= 3  # every second of a run of about 9 s
    header, *rows = list(csv.reader((run_dir / "monitor" / "tasks" / "work" / "localhost.csv").open()))
    assert header == ["time", "cpu.util_percent", "cpu.load1", *MEMORY]
    assert len(rows) >= 2  # the first sample and the last, as the task ends
    described = json.loads((run_dir / "monitor" / "tasks" / "work" / "monitor.json").read_text())
    assert described["window"]["start"]["pattern"] == "MEASURE_START"
