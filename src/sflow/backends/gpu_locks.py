"""GPUs of a Docker host reserved across concurrent sflow runs on this machine.

Placement keeps one run's tasks off each other's GPUs; nothing told two runs apart. Now each GPU
of each Docker host has a lock file (`<lock dir>/<host>.gpu<N>.lock`, the lock dir shared by every
run: `$SFLOW_GPU_LOCK_DIR`, default `/tmp/sflow-gpu-locks`). The sflow process that places a task
on GPUs holds their files locked (`flock`) for the task's attempt, and writes in them who it is
(run id, pid, task): another run that wants one of them fails at once naming that holder, or
waits for it (`wait_for_gpus`). The lock is the kernel's, so it dies with the process that held
it: a killed run never leaves a GPU reserved.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sflow.errors import SflowError

LOCK_DIR_ENV = "SFLOW_GPU_LOCK_DIR"
DEFAULT_LOCK_DIR = "/tmp/sflow-gpu-locks"
POLL_SECONDS = 0.5  # how often a waiting run tries the locks again
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class GpusBusy(SflowError):
    """Another live sflow run holds a GPU this task was placed on."""


@dataclass(frozen=True)
class GpuClaim:
    """GPUs `indices` of one Docker host; `host` names it in lock files and messages."""

    host: str
    indices: tuple[int, ...]


@dataclass
class GpuLocks:
    """The lock files one attempt holds; `release` (idempotent) lets other runs have them."""

    files: list[IO[str]] = field(default_factory=list)

    def release(self) -> None:
        files, self.files = self.files, []
        for f in files:
            f.close()  # closing the file drops its flock


def lock_dir() -> Path:
    path = Path(os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o1777)  # shared by every user's runs
    return path


def lock_path(host: str, index: int) -> Path:
    return lock_dir() / f"{_UNSAFE.sub('_', host)}.gpu{index}.lock"


def holder_of(path: Path) -> str:
    """Who holds a lock file, as its holder wrote it."""
    try:
        who = json.loads(path.read_text())
        return f"sflow run {who['run']} (pid {who['pid']}, task '{who['task']}')"
    except (OSError, ValueError, KeyError, TypeError):
        return "another sflow run"


def try_lock(claims: Sequence[GpuClaim], owner: dict[str, object]) -> GpuLocks | str:
    """All the claimed GPUs locked for `owner`, or (none kept) why not: the first one held."""
    locks = GpuLocks()
    for claim in claims:
        for index in claim.indices:
            path = lock_path(claim.host, index)
            f = open(path, "a+")  # noqa: SIM115 - held open as long as the lock
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                locks.release()
                return f"GPU {index} of docker host '{claim.host}' is held by {holder_of(path)}"
            f.seek(0)
            f.truncate()
            f.write(json.dumps(owner))
            f.flush()
            locks.files.append(f)
    return locks


async def reserve(
    claims: Sequence[GpuClaim],
    owner: dict[str, object],
    wait: float | None,
    on_wait: Callable[[str], None] = lambda _: None,
) -> GpuLocks:
    """Lock every claimed GPU. `wait` None fails at once when one is held, 0 waits for ever, N
    waits up to N seconds; `on_wait` hears once what it waits for."""
    started = time.monotonic()
    got = try_lock(claims, owner)
    if isinstance(got, GpuLocks):
        return got
    if wait is None:
        raise GpusBusy(f"{got}; set wait_for_gpus on the backend to wait for it")
    on_wait(got)
    while True:
        if wait and time.monotonic() - started >= wait:
            raise GpusBusy(f"{got}, still after waiting {wait:g}s (wait_for_gpus)")
        await asyncio.sleep(POLL_SECONDS)
        got = try_lock(claims, owner)
        if isinstance(got, GpuLocks):
            return got
