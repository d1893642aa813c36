"""`sflow sample` and the samples that ship with sflow: listed, copied, valid, and the local ones
run for real (the Slurm one runs on the test cluster in tests/integration)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from sflow.cli.sample import SAMPLES, all_samples

NAMES = [s.name for s in all_samples()]
LOCAL = [n for n in NAMES if n.startswith("local/")]


def test_the_set_of_samples() -> None:
    assert NAMES == [
        "local/data_pipeline",
        "local/param_sweep",
        "local/serve_and_bench",
        "slurm/multi_node_serve",
    ]


def test_sample_lists_every_sample_with_what_it_is(sflow: Any) -> None:
    done = sflow("sample")
    assert done.code == 0, done.err
    for sample in all_samples():
        line = next(line for line in done.out.splitlines() if line.startswith(sample.name + " "))
        assert sample.description and sample.description in line
    assert sflow("sample", "--list").out == done.out


def test_sample_copies_by_name_and_keeps_what_exists(sflow: Any) -> None:
    done = sflow("sample", "serve_and_bench")
    assert done.code == 0, done.err
    copied = sflow.tmp / "serve_and_bench.yaml"
    assert copied.read_text() == (SAMPLES / "local" / "serve_and_bench.yaml").read_text()
    copied.write_text("mine")
    again = sflow("sample", "local/serve_and_bench")
    assert again.code == 2 and "serve_and_bench.yaml exists (--force to overwrite it)" in again.err
    assert copied.read_text() == "mine"
    assert sflow("sample", "local/serve_and_bench", "--force").code == 0
    assert copied.read_text().startswith("# A model server")
    (sflow.tmp / "into").mkdir()
    assert sflow("sample", "param_sweep", "-o", "into").code == 0
    assert (sflow.tmp / "into" / "param_sweep.yaml").exists()
    assert sflow("sample", "slurm/multi_node_serve", "-o", "mine.yaml").code == 0
    assert yaml.safe_load((sflow.tmp / "mine.yaml").read_text())["workflow"]["name"] == "multi_node_serve"


def test_an_unknown_sample_is_named_with_the_known_ones(sflow: Any) -> None:
    done = sflow("sample", "nope")
    assert done.code == 2
    assert "no sample 'nope'" in done.err and "local/serve_and_bench" in done.err


@pytest.mark.parametrize("name", NAMES)
def test_every_sample_validates_and_plans(sflow: Any, name: str) -> None:
    path = str(SAMPLES / f"{name}.yaml")
    assert sflow("validate", path).code == 0
    done = sflow("run", path, "--dry-run")
    assert done.code == 0, done.err


def summary_outputs(done: Any, task: str) -> dict[str, Any]:
    return json.loads((done.run_dir() / task / "outputs.json").read_text())


def test_serve_and_bench_runs(sflow: Any, free_port: Callable[[], int]) -> None:
    path = str(SAMPLES / "local" / "serve_and_bench.yaml")
    done = sflow("run", path, "--no-tui", "-s", f"PORT={free_port()}", "-s", "REQUESTS=5")
    assert done.code == 0, done.err
    tasks = done.summary()["tasks"]
    assert tasks["server"]["state"] == tasks["benchmark"]["state"] == "succeeded"
    outputs = summary_outputs(done, "benchmark")
    # both measured; no order between them: one slow request of five lifts the mean above the p90
    assert outputs["requests"] == 5 and outputs["mean_latency_ms"] > 0 and outputs["p90_latency_ms"] > 0


def test_param_sweep_runs(sflow: Any) -> None:
    done = sflow("run", str(SAMPLES / "local" / "param_sweep.yaml"), "--no-tui")
    assert done.code == 0, done.err
    assert len(done.summary()["tasks"]) == 7
    log = (done.run_dir() / "best" / "best.log").read_text()
    assert "best: batch 128 threads 4 throughput 5125" in log


def test_data_pipeline_runs_retrying_its_fetch(sflow: Any) -> None:
    done = sflow("run", str(SAMPLES / "local" / "data_pipeline.yaml"), "--no-tui", "-s", "ROWS=10")
    assert done.code == 0, done.err
    assert done.summary()["tasks"]["fetch"]["attempts"] == 2
    assert summary_outputs(done, "squares") == {"sum_of_squares": 385}
    assert summary_outputs(done, "evens") == {"evens": 5}


def test_every_local_sample_has_a_run_test_above() -> None:
    """A new local sample needs its own `test_<name>_runs` here."""
    assert set(LOCAL) == {"local/serve_and_bench", "local/param_sweep", "local/data_pipeline"}
