"""Start a task's process in a session of its own, its output appended to its log.

On Linux a process is started with `posix_spawn` and its exit wakes the event loop through a
pidfd: no watcher thread, no SIGCHLD, and the environment is encoded in C. That is what lets a
thousand tasks start in about a second. Elsewhere (or when the task's working directory is not
ours, which `posix_spawn` cannot change) asyncio's subprocess support does the same job more
slowly. Nothing is read through pipes.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import msgspec

LEADERS: set[int] = set()  # attempts' own processes we started and have not reaped yet


class LaunchSpec(msgspec.Struct):
    """Everything needed to start one attempt: a pure value, built by a launcher, easy to test."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    info: dict[str, Any] = msgspec.field(default_factory=dict)


def merged_env(base: Mapping[str, str], *layers: Mapping[str, str] | None) -> dict[str, str]:
    """The process environment: `base` (usually os.environ) with each layer on top."""
    env = dict(base)
    for layer in layers:
        if layer:
            env.update(layer)
    return env


class Child(Protocol):
    """What an attempt needs of its process: asyncio's `Process` and `PidfdChild` both fit."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


class PidfdChild:
    """A child whose exit is a readable pidfd in the event loop; reaped by us, exactly once."""

    def __init__(self, pid: int, loop: asyncio.AbstractEventLoop) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._loop = loop
        self._exited: asyncio.Future[int] = loop.create_future()
        self._pidfd = os.pidfd_open(pid)
        loop.add_reader(self._pidfd, self._reap)
        LEADERS.add(pid)

    def _reap(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        LEADERS.discard(self.pid)
        try:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)  # -N when killed by signal N
        except ChildProcessError:  # reaped by someone else (a SIGCHLD handler): its status is lost
            self.returncode = 255
        self._exited.set_result(self.returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


async def start_child(spec: LaunchSpec, env: Mapping[str, str]) -> Child:
    """Start `spec.argv` with `env` in a new session: stdin from /dev/null, output to the log."""
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    if _can_spawn_here(spec.cwd):
        return _spawn(spec.argv, env, spec.log_path)
    with open(spec.log_path, "ab", buffering=0) as log:
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(spec.cwd),
            env=env,
            start_new_session=True,
        )
    LEADERS.add(proc.pid)
    asyncio.ensure_future(proc.wait()).add_done_callback(lambda _: LEADERS.discard(proc.pid))
    return proc


_SPAWN_WORKS = hasattr(os, "posix_spawn") and hasattr(os, "pidfd_open")
_RESTORED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)  # Python ignores these; a task must get the defaults, as subprocess gives them


def _can_spawn_here(cwd: Path) -> bool:
    """posix_spawn can't change directory: it is used when the task's directory is ours."""
    if not _SPAWN_WORKS:
        return False
    try:
        return os.fspath(cwd) == os.getcwd()
    except OSError:
        return False


def _spawn(argv: list[str], env: Mapping[str, str], log_path: Path) -> PidfdChild:
    """Start argv in a new session: stdin from /dev/null, stdout and stderr appended to the log."""
    exe = _which(argv[0], env.get("PATH", os.defpath))
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
    try:
        pid = os.posix_spawn(
            exe,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, fd, 2),
                *((os.POSIX_SPAWN_CLOSE, other) for other in _inherited_fds()),
            ],
            setsid=True,
            setsigmask=(),
            setsigdef=_RESTORED_SIGNALS,
        )
    finally:
        os.close(fd)
    try:
        return PidfdChild(pid, asyncio.get_running_loop())
    except OSError:  # no pidfd after all (a seccomp filter): never leave the child unwatched
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise


def spawn_in_group(argv: list[str], env: Mapping[str, str], stdin_fd: int, out_path: Path) -> int:
    """Start argv in a process group of its own, in our session: stdin from `stdin_fd`, stdout and
    stderr appended to `out_path`. Returns its pid; the caller reaps it (`os.waitpid`).

    For helpers that must outlive a Ctrl-C at the terminal (it goes to our group only) and must
    not count as processes a task left behind (those are in other sessions).
    """
    exe = _which(argv[0], env.get("PATH", os.defpath))
    return os.posix_spawn(
        exe,
        argv,
        env,
        file_actions=[
            (os.POSIX_SPAWN_DUP2, stdin_fd, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.fspath(out_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
            *((os.POSIX_SPAWN_CLOSE, other) for other in _inherited_fds()),
        ],
        setpgroup=0,
        setsigmask=(),
        setsigdef=_RESTORED_SIGNALS,
    )


@functools.lru_cache(maxsize=64)
def _which(name: str, path: str) -> str:
    """The executable `name` resolves to on the task's PATH, as subprocess would find it: the
    first file of that name in PATH's folders that we may execute. (`shutil.which`'s search, without
    importing shutil, which loads the compression modules of its archives, for every run.)"""
    if os.sep in name:
        if os.access(name, os.X_OK):
            return name
    else:
        for folder in path.split(os.pathsep) if path else ():
            found = os.path.join(folder, name)
            if os.access(found, os.X_OK) and not os.path.isdir(found):
                return found
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)


def _inherited_fds() -> list[int]:
    """Inheritable descriptors above stderr: closed in the task, as subprocess's close_fds does.

    Python makes its own descriptors non-inheritable, so only those sflow was started with can
    be; they are listed once (listing /proc/self/fd costs one step per open pidfd).
    """
    fds = []
    for fd in _descriptors_at_start():
        try:
            if os.get_inheritable(fd):
                fds.append(fd)
        except OSError:  # closed since
            pass
    return fds


@functools.lru_cache(maxsize=1)
def _descriptors_at_start() -> tuple[int, ...]:
    try:
        return tuple(fd for fd in map(int, os.listdir("/proc/self/fd")) if fd > 2)
    except OSError:
        return ()
