"""Every example of the YAML front-door documentation (seed 000) validates verbatim."""

from __future__ import annotations

from pathlib import Path

import pytest

from sflow.schema import SlurmBackend, load_workflow

SEEDS = sorted((Path(__file__).parent / "data" / "seeds").glob("*.yaml"))


def test_the_seed_examples_are_present() -> None:
    assert {p.name for p in SEEDS} >= {
        "minimal.yaml",
        "local_backend.yaml",
        "slurm_backend.yaml",
        "slurm_extra_args.yaml",
    }


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name)
def test_seed_example_validates(path: Path) -> None:
    spec = load_workflow([path])
    assert spec.version == "0.1"
    assert spec.workflow.name == "wf"
    assert len(spec.workflow.tasks) == 1


def test_minimal_workflow_gets_the_implicit_local_backend_and_bash() -> None:
    spec = load_workflow([Path(__file__).parent / "data" / "seeds" / "minimal.yaml"])
    task = spec.workflow.tasks[0]
    assert spec.backends == {}
    assert spec.default_backend_name() == "local"
    assert spec.backend_for(task) == "local"
    assert spec.backend_type("local") == "local"
    assert spec.backend_config("local").nodes == 1  # type: ignore[attr-defined]
    assert spec.operator_for(task).type == "bash"


def test_slurm_seed_fields_and_default_operator() -> None:
    spec = load_workflow([Path(__file__).parent / "data" / "seeds" / "slurm_extra_args.yaml"])
    backend = spec.backends["gpu_cluster"]
    assert isinstance(backend, SlurmBackend)
    assert (backend.account, backend.partition, backend.time, backend.nodes) == (
        "myproject",
        "gpu",
        "01:00:00",
        2,
    )
    assert backend.extra_args == ["--gpus-per-node=8", "--segment=2", "--exclusive"]
    assert backend.default is True
    task = spec.workflow.tasks[0]
    assert task.script == ["nvidia-smi", 'echo "Running on GPU nodes"']
    assert spec.operator_for(task).type == "srun"
