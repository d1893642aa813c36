"""A task attempt that is one Docker container, run by an attached `docker run` client.

The client is a local process like any other (its output, the container's, streams into the
attempt's log; its exit code is the container's), but stopping it is not stopping the container:
a killed client leaves the container running. So a container is stopped through the daemon, on
the one path `stop_container`: `docker stop` with the grace (TERM, then KILL), then `docker rm -f`
(`launchers.docker_run.ContainerAttempt` supervises the client around it).
Every container carries the label `sflow.run=<run id>`, and the run ends with `remove_labelled`,
which removes whatever a killed client or a lost race left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

RUN_LABEL = "sflow.run"
TASK_LABEL = "sflow.task"
COMMAND_WAIT = 30.0  # seconds a docker command other than `stop` may take (a busy daemon)
DOCKER_ERROR_RE = re.compile(r"^(?:docker: )?Error(?: response from daemon)?: (.+)$", re.MULTILINE)
NOT_FOUND_RE = re.compile(r"No such container|is already in progress|not found", re.IGNORECASE)


@dataclass(frozen=True)
class Daemon:
    """How the docker client reaches one daemon: `-H <host>`, `--context <name>`, or its defaults."""

    host: str | None = None
    context: str | None = None

    def argv(self, *args: str) -> list[str]:
        """`docker [-H host | --context ctx] args...`."""
        if self.host:
            return ["docker", "-H", self.host, *args]
        if self.context:
            return ["docker", "--context", self.context, *args]
        return ["docker", *args]

    @property
    def remote(self) -> bool:
        """A daemon named explicitly may be another machine: nothing of ours is mounted there."""
        return bool(self.host or self.context)


class DockerCommandError(RuntimeError):
    """A docker client command failed or did not answer in time."""


async def docker(daemon: Daemon, *args: str, timeout: float = COMMAND_WAIT) -> str:
    """Run one docker client command; its stdout, or DockerCommandError with its stderr."""
    argv = daemon.argv(*args)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise DockerCommandError("the docker client is not installed (no 'docker' on PATH)") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        await _kill(proc)
        raise DockerCommandError(f"'{' '.join(argv)}' did not finish in {timeout:.0f}s") from None
    except asyncio.CancelledError:  # a stopped run leaves no client behind
        await asyncio.shield(_kill(proc))
        raise
    if proc.returncode != 0:
        raise DockerCommandError(err.decode(errors="replace").strip() or f"'{' '.join(argv)}' failed")
    return out.decode(errors="replace")


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()


async def stop_container(daemon: Daemon, name: str, grace: float) -> bool:
    """TERM the container's main process, KILL it after `grace` seconds, remove it.

    False when the daemon had no such container (not created yet, or already gone).
    """
    found = True
    try:
        await docker(daemon, "stop", "--time", str(math.ceil(grace)), name, timeout=grace + COMMAND_WAIT)
    except DockerCommandError as exc:
        found = not NOT_FOUND_RE.search(str(exc))
    await remove_container(daemon, name)
    return found


async def remove_container(daemon: Daemon, name: str) -> None:
    """`docker rm -f`; a container already gone (or being removed by `--rm`) is not an error."""
    try:
        await docker(daemon, "rm", "--force", name)
    except DockerCommandError as exc:
        if not NOT_FOUND_RE.search(str(exc)):
            raise


async def labelled(daemon: Daemon, run_id: str) -> list[str]:
    """Names of the containers of run `run_id` that the daemon still has, running or not."""
    out = await docker(
        daemon, "ps", "--all", "--filter", f"label={RUN_LABEL}={run_id}", "--format", "{{.Names}}"
    )
    return out.split()


async def remove_labelled(daemon: Daemon, run_id: str) -> list[str]:
    """Remove (KILL) every container of run `run_id` left on the daemon; their names."""
    names = await labelled(daemon, run_id)
    for name in names:
        await remove_container(daemon, name)
    return names


def docker_error(log_tail: str) -> str | None:
    """The last error the docker client printed (an image not found, a bad flag), if any."""
    errors = DOCKER_ERROR_RE.findall(log_tail)
    return errors[-1].strip() if errors else None


def label_args(run_id: str, task: str) -> Sequence[str]:
    """The labels every container of ours carries."""
    return ("--label", f"{RUN_LABEL}={run_id}", "--label", f"{TASK_LABEL}={task}")
