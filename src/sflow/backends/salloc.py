"""salloc holding an allocation for as long as sflow lives (see `sflow.backends.slurm`).

salloc runs a command that reads a pipe only this process writes to; closing the pipe (or this
process dying, which closes it too) ends the command, and salloc then gives the allocation back.
The process is ours to reap, independent of any event loop: a library user may allocate in one
`asyncio.run` and release in another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path

from sflow.proc.spawn import spawn_in_group

REVOKE_WAIT = 10.0  # seconds a pending salloc gets to withdraw its request after SIGINT
EXIT_WAIT = 15.0  # seconds salloc gets to exit once its command has ended


class SallocHolder:
    """One running salloc: its messages (a file), its exit status, the pipe that holds it."""

    def __init__(self, pid: int, write_fd: int, out_path: Path) -> None:
        self.pid = pid
        self.out_path = out_path
        self.returncode: int | None = None
        self._write_fd: int | None = write_fd

    @classmethod
    def start(cls, argv: list[str], out_path: Path, env: Mapping[str, str] | None = None) -> SallocHolder:
        """Start salloc (OSError when it cannot run)."""
        read_fd, write_fd = os.pipe()
        try:
            pid = spawn_in_group(argv, dict(os.environ if env is None else env), read_fd, out_path)
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        return cls(pid, write_fd, out_path)

    def output(self) -> str:
        """What salloc has printed so far."""
        try:
            return self.out_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def poll(self) -> int | None:
        """salloc's exit code once it has exited (-N when killed by signal N), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self.returncode = 255
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    async def wait(self, timeout: float) -> int | None:
        """Its exit code, waiting up to `timeout` seconds (None if it is still running)."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + timeout, 0.01
        while self.poll() is None and loop.time() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        return self.returncode

    async def revoke(self) -> None:
        """Withdraw a pending request: SIGINT makes salloc cancel it; KILL if it does not listen."""
        self._signal(signal.SIGINT)
        if await self.wait(REVOKE_WAIT) is None:
            self._signal(signal.SIGKILL)
            await self.wait(EXIT_WAIT)
        self.close_pipe()

    async def release(self) -> None:
        """End the holding command and wait for salloc to exit (KILL if it hangs)."""
        self.close_pipe()
        if await self.wait(EXIT_WAIT) is None:
            self._signal(signal.SIGKILL)
            await self.wait(EXIT_WAIT)

    def close_pipe(self) -> None:
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None

    def _signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
