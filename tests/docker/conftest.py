"""Docker tests run against a private Docker daemon on this machine (scripts/dev-docker).

Every test here gets the session-scoped ``docker_lab`` fixture and the ``docker`` marker. The
fixture runs ``scripts/dev-docker up`` once per session (it installs docker.io if missing, starts
a daemon on its own socket, builds the local test image) and points DOCKER_HOST at that daemon for
the session, so no test touches a system Docker.

  SFLOW_DOCKER_LAB=skip   skip these tests without touching the machine.
  CI=true                 a machine that cannot host the daemon (not root, not Debian) is an error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the tests import their helpers by module name (no package __init__)
    sys.path.insert(0, str(HERE))

from docker_lab import DockerLab  # noqa: E402
from ssh_host import SshDockerHost, path_with, start_sshd  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_DOCKER = REPO_ROOT / "scripts" / "dev-docker"
EXIT_UNSUPPORTED = 3
UP_TIMEOUT_S = 600  # a first run installs docker.io with apt


def _unsupported(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
        pytest.fail(f"CI=true but the Docker test daemon cannot run here: {reason}", pytrace=False)
    pytest.skip(f"Docker test daemon unavailable: {reason}")


@pytest.fixture(scope="session")
def docker_lab() -> Iterator[DockerLab]:
    if os.environ.get("SFLOW_DOCKER_LAB", "").strip().lower() == "skip":
        pytest.skip("SFLOW_DOCKER_LAB=skip")
    if os.geteuid() != 0 or not Path("/etc/debian_version").is_file():
        _unsupported("scripts/dev-docker needs root on Debian")
    proc = subprocess.run(
        [str(DEV_DOCKER), "up"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT_S,
    )
    output = f"{proc.stdout}{proc.stderr}".strip()
    if proc.returncode == EXIT_UNSUPPORTED:
        _unsupported(output.splitlines()[-1] if output else "unsupported environment")
    if proc.returncode != 0:
        pytest.fail(f"scripts/dev-docker up failed (exit {proc.returncode}):\n{output}", pytrace=False)
    values = dict(
        line.removeprefix("export ").split("=", 1)
        for line in subprocess.run(
            [str(DEV_DOCKER), "env"], check=True, capture_output=True, text=True
        ).stdout.splitlines()
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("DOCKER_HOST", values["DOCKER_HOST"])
    try:
        yield DockerLab(host=values["DOCKER_HOST"], image=values["SFLOW_DOCKER_IMAGE"])
    finally:
        mp.undo()


@pytest.fixture
def ssh_docker_host(
    docker_lab: DockerLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SshDockerHost]:
    """The lab's daemon also reached as `ssh://root@localhost:<port>`, through a private sshd."""
    host = start_sshd(tmp_path / "sshd", docker_lab.host)
    monkeypatch.setenv("PATH", path_with(host.bin_dir))
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(autouse=True)
def _needs_docker(docker_lab: DockerLab) -> None:
    """Every test here runs against the lab's daemon (or is skipped with it)."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.docker)


NV_SFLOW = "nv-sflow==0.3.1"


@pytest.fixture(scope="session")
def nv_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nv-sflow 0.3.1's `samples/` folder: from compat/run's virtualenv, else from its wheel."""
    found = sorted(REPO_ROOT.glob(".venv-nvsflow/lib/python3*/site-packages/sflow/samples"))
    if found:
        return found[0]
    where = tmp_path_factory.mktemp("nv-sflow")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", NV_SFLOW, "-d", str(where)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    with zipfile.ZipFile(next(where.glob("*.whl"))) as wheel:
        wheel.extractall(where / "x")
    return where / "x" / "sflow" / "samples"
