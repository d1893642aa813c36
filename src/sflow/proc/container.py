"""A task attempt that is one Docker container, run by an attached `docker run` client.

The client is a local process like any other (its output, the container's, streams into the
attempt's log; its exit code is the container's), but stopping it is not stopping the container:
a killed client leaves the container running. So a container is stopped through the daemon, on
the one path `stop_container`: `docker stop` with the grace (TERM, then KILL), then `docker rm -f`.
Every container carries the label `sflow.run=<run id>`, and the run ends with `remove_labelled`,
which removes whatever a killed client or a lost race left behind.
"""

from __future__ import annotations

import asyncio
import math
import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from sflow.engine.unit import Outcome
from sflow.proc.process import Child, LaunchSpec, ProcessAttempt, describe_exit, signal_group
from sflow.record.tail import read_end

RUN_LABEL = "sflow.run"
TASK_LABEL = "sflow.task"
COMMAND_WAIT = 30.0  # seconds a docker command other than `stop` may take (a busy daemon)
CLIENT_EXIT_WAIT = 10.0  # after the container is gone: how long its client may take to notice
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
        proc.kill()
        await proc.wait()
        raise DockerCommandError(f"'{' '.join(argv)}' did not finish in {timeout:.0f}s") from None
    if proc.returncode != 0:
        raise DockerCommandError(err.decode(errors="replace").strip() or f"'{' '.join(argv)}' failed")
    return out.decode(errors="replace")


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


class ContainerAttempt(ProcessAttempt):
    """An attached `docker run --name <name>`: stopped through the daemon, never left behind."""

    def __init__(self, proc: Child, spec: LaunchSpec) -> None:
        super().__init__(proc, spec)
        self.name = str(spec.info["container"])
        self.daemon = Daemon(spec.info.get("docker_host"), spec.info.get("docker_context"))
        self._stopping = False

    async def _wait_once(self) -> Outcome:
        code = await self.proc.wait()
        await self._reap_group()
        if code < 0 or self._stopping:  # the client died first: the container may still be there
            await stop_container(self.daemon, self.name, 0)
        reason = describe_exit(code)
        if code == 125:  # docker's own failure: the container did not run
            error = docker_error(read_end(self.log_path, 4096) or "")
            reason += f" (docker: {error})" if error else " (docker could not run the container)"
        return Outcome(ok=code == 0, reason=reason, exit_code=code, info=self.info)

    async def stop(self, grace: float) -> None:
        """`docker stop` (TERM, the grace, KILL), then the client ends; one that hangs is killed."""
        if self.proc.returncode is None:
            self._stopping = True
            if not await stop_container(self.daemon, self.name, grace):
                signal_group(self.proc.pid, signal.SIGTERM)  # a client still creating it gives up
            try:
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), CLIENT_EXIT_WAIT)
            except asyncio.TimeoutError:
                signal_group(self.proc.pid, signal.SIGKILL)
        await self.wait()


def label_args(run_id: str, task: str) -> Sequence[str]:
    """The labels every container of ours carries."""
    return ("--label", f"{RUN_LABEL}={run_id}", "--label", f"{TASK_LABEL}={task}")
