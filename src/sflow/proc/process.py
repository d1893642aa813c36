"""Supervise one local process (bash, or `srun` on a cluster) as an engine attempt.

Each attempt runs in its own session, so its whole process group (grandchildren
included) can be stopped together: TERM, a grace period, then KILL. Output goes
straight to the attempt's log file; nothing is read through pipes.

On Linux a process is started with `posix_spawn` and its exit wakes the event loop
through a pidfd: no watcher thread, no SIGCHLD, and the environment is encoded in C.
That is what lets a thousand tasks start in about a second. Elsewhere (or when the
task's working directory is not ours, which `posix_spawn` cannot change) asyncio's
subprocess support does the same job more slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import shutil
import signal
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sflow.engine.unit import Attempt, Outcome

LEFTOVER_GRACE = 2.0  # seconds that processes a task left behind get between TERM and KILL


@dataclass
class LaunchSpec:
    """Everything needed to start one attempt: a pure value, built by a launcher, easy to test."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    info: dict[str, Any] = field(default_factory=dict)


def describe_exit(code: int) -> str:
    """'exit code 3' or 'killed by SIGKILL' for an asyncio return code."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


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
        _LEADERS.add(pid)

    def _reap(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        _LEADERS.discard(self.pid)
        try:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)  # -N when killed by signal N
        except ChildProcessError:  # reaped by someone else (a SIGCHLD handler): its status is lost
            self.returncode = 255
        self._exited.set_result(self.returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


class ProcessAttempt(Attempt):
    """A started process group whose end is an asyncio event, not a poll."""

    def __init__(self, proc: Child, spec: LaunchSpec) -> None:
        self.proc = proc
        self.spec = spec
        self.log_path = spec.log_path
        self.info = {"pid": proc.pid, **spec.info}
        self._outcome: asyncio.Future[Outcome] | None = None
        self._stop_deadline: float | None = None  # loop time after which the group gets KILL

    @classmethod
    async def start(cls, spec: LaunchSpec, extra_env: Mapping[str, str] | None = None) -> ProcessAttempt:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(spec.env, **extra_env) if extra_env else spec.env
        if _can_spawn_here(spec.cwd):
            return cls(_spawn(spec.argv, env, spec.log_path), spec)
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
        _LEADERS.add(proc.pid)
        asyncio.ensure_future(proc.wait()).add_done_callback(lambda _: _LEADERS.discard(proc.pid))
        return cls(proc, spec)

    async def wait(self) -> Outcome:
        if self._outcome is None:
            self._outcome = asyncio.ensure_future(self._wait_once())
        return await asyncio.shield(self._outcome)

    async def _wait_once(self) -> Outcome:
        code = await self.proc.wait()
        await self._reap_group()
        return Outcome(ok=code == 0, reason=describe_exit(code), exit_code=code, info=self.info)

    async def stop(self, grace: float) -> None:
        """TERM the whole group, give it `grace` seconds (leader and children alike), then KILL.

        A second call with a shorter grace (a second Ctrl-C) shortens the deadline.
        """
        loop = asyncio.get_running_loop()
        if self._stop_deadline is None:
            self._stop_deadline = loop.time() + grace
            signal_group(self.proc.pid, signal.SIGTERM)
            signal_group(self.proc.pid, signal.SIGCONT)  # a stopped (frozen) process gets the TERM now
        else:
            self._stop_deadline = min(self._stop_deadline, loop.time() + grace)
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(
                    asyncio.shield(self.proc.wait()), max(0.0, self._stop_deadline - loop.time())
                )
            except asyncio.TimeoutError:
                signal_group(self.proc.pid, signal.SIGKILL)
        await self.wait()
        if group_has_live(self.proc.pid):  # a reap still waiting on an earlier, longer deadline
            await _kill_group(self.proc.pid)

    async def _reap_group(self) -> None:
        """The leader is gone; stop whatever it left behind in its group (no orphans).

        After a natural exit, leftovers get TERM and two seconds; during a `stop` they already had
        TERM and get what is left of its grace. The common case (nothing left) costs one failed
        `killpg(pgid, 0)`.
        """
        if not signal_group(self.proc.pid, 0) or not group_has_live(self.proc.pid):
            return
        loop = asyncio.get_running_loop()
        if self._stop_deadline is None:
            signal_group(self.proc.pid, signal.SIGTERM)
            self._stop_deadline = loop.time() + LEFTOVER_GRACE
        delay = 0.005
        while group_has_live(self.proc.pid) and loop.time() < self._stop_deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        if group_has_live(self.proc.pid):
            await _kill_group(self.proc.pid)


async def _kill_group(pgid: int) -> None:
    """KILL a process group and return once none of it is alive (KILL lands asynchronously)."""
    signal_group(pgid, signal.SIGKILL)
    delay = 0.001
    for _ in range(100):
        if not group_has_live(pgid):
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


_LEADERS: set[int] = set()  # attempts' own processes we started and have not reaped yet
_adopting = False  # whether this process is the subreaper of what tasks leave behind


def adopt_orphans() -> bool:
    """Become the subreaper of our descendants (Linux): a process a task detaches (`setsid`,
    a double fork) is re-parented to us, not to init, once its parent exits, so the run can
    stop it at its end. For a command-line run only: a library must not change its host."""
    global _adopting
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        _adopting = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        _adopting = False
    return _adopting


def _adopted() -> list[tuple[int, bool]]:
    """(pid, is_zombie) of the processes re-parented to us: our children in another session that
    are no attempt's own process. Processes we start ourselves (Slurm commands) stay in ours."""
    me, session = os.getpid(), os.getsid(0)
    found = []
    for pid, fields in _processes():
        if int(fields[1]) == me and int(fields[3]) != session and pid not in _LEADERS:
            found.append((pid, fields[0] == b"Z"))
    return found


async def stop_adopted(grace: float) -> list[int]:
    """Stop every process tasks left behind and we adopted: TERM, `grace` seconds, KILL; reap them.

    Their own children are adopted in turn as they die and stopped the same way. The pids of
    those that were still running are returned.
    """
    if not _adopting:
        return []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    stopped: list[int] = []
    delay = 0.01
    for _ in range(1000):
        adopted = _adopted()
        if not adopted:
            break
        killing = loop.time() >= deadline
        for pid, zombie in adopted:
            if zombie:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            elif killing or pid not in stopped:
                if pid not in stopped:
                    stopped.append(pid)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL if killing else signal.SIGTERM)
                    os.kill(pid, signal.SIGCONT)  # a stopped process gets its TERM now
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
    return stopped


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
    """The executable `name` resolves to on the task's PATH, as subprocess would find it."""
    found = name if os.sep in name else shutil.which(name, path=path)
    if found is None or not os.access(found, os.X_OK):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    return found


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


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_has_live(pgid: int) -> bool:
    """True while a process of group `pgid` is alive; zombies (an init that reaps late) do not count."""
    if not os.path.isdir("/proc/self"):
        return signal_group(pgid, 0)
    return any(int(fields[2]) == pgid and fields[0] not in (b"Z", b"X") for _, fields in _processes())


def _processes() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, the fields of /proc/<pid>/stat after the command: state, ppid, pgrp, session, ...)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 3:
            yield int(entry.name), fields


def merged_env(base: Mapping[str, str], *layers: Mapping[str, str] | None) -> dict[str, str]:
    """The process environment: `base` (usually os.environ) with each layer on top."""
    env = dict(base)
    for layer in layers:
        if layer:
            env.update(layer)
    return env


def argv_text(argv: Sequence[str]) -> str:
    """A shell-quoted rendering of argv, for dry runs and logs."""
    import shlex

    return shlex.join(argv)
