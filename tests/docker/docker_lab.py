"""The test Docker daemon as the tests see it (started by scripts/dev-docker)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class DockerLab:
    host: str  # unix:///.../docker.sock, also DOCKER_HOST for the session
    image: str  # the local test image: busybox, bash, python3

    def docker(self, *args: str, timeout: float = 60) -> str:
        """Run a docker command against the lab's daemon; its stdout."""
        return subprocess.run(
            ["docker", "-H", self.host, *args], check=True, capture_output=True, text=True, timeout=timeout
        ).stdout

    def containers(self, label: str = "sflow.run") -> list[str]:
        """Names of the containers (any state) carrying `label` (or `label=value`)."""
        return self.docker("ps", "--all", "--filter", f"label={label}", "--format", "{{.Names}}").split()
