"""Starting a task's process: the posix_spawn path and asyncio's path give a task the same world."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from sflow.proc.attempt import ProcessAttempt
from sflow.proc.spawn import LaunchSpec, PidfdChild, _descriptors_at_start, _which

needs_spawn = pytest.mark.skipif(
    not (hasattr(os, "posix_spawn") and hasattr(os, "pidfd_open")), reason="no posix_spawn/pidfd here"
)


def _run(script: str, cwd: Path, log: Path, env: dict[str, str] | None = None) -> tuple[ProcessAttempt, int]:
    async def main() -> tuple[ProcessAttempt, int]:
        spec = LaunchSpec(["bash", "-c", script], env or dict(os.environ), cwd, log)
        attempt = await ProcessAttempt.start(spec)
        outcome = await attempt.wait()
        assert outcome.exit_code is not None
        return attempt, outcome.exit_code

    return asyncio.run(main())


@needs_spawn
def test_a_task_in_our_directory_is_spawned_and_its_exit_code_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    attempt, code = _run("echo out; echo err >&2; pwd; exit 7", tmp_path, tmp_path / "a.log")
    assert isinstance(attempt.proc, PidfdChild)
    assert code == 7
    assert (tmp_path / "a.log").read_text().split() == ["out", "err", str(tmp_path)]


@needs_spawn
def test_a_spawned_task_killed_by_a_signal_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _, code = _run("kill -KILL $$", tmp_path, tmp_path / "a.log")
    assert code == -9


def test_a_task_in_another_directory_runs_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)
    attempt, code = _run("pwd", elsewhere, tmp_path / "a.log")
    assert not isinstance(attempt.proc, PidfdChild)
    assert code == 0
    assert (tmp_path / "a.log").read_text().strip() == str(elsewhere)


@needs_spawn
def test_a_spawned_task_gets_default_signals_an_empty_stdin_and_its_own_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    script = "grep -E '^Sig(Ign|Blk)' /proc/self/status; cat; ps -o sid= -p $$; echo pid $$"
    _, code = _run(script, tmp_path, tmp_path / "a.log")
    assert code == 0
    lines = (tmp_path / "a.log").read_text().splitlines()
    masks = dict(line.split(":") for line in lines[:2])
    ignored = int(masks["SigIgn"], 16)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; a task must not
        assert not ignored & (1 << (sig - 1)), sig
    assert int(masks["SigBlk"], 16) == 0
    sid, pid = lines[2].strip(), lines[3].split()[1]
    assert sid == pid  # a session leader: the whole group can be stopped together


@needs_spawn
def test_descriptors_sflow_inherited_stay_out_of_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    _descriptors_at_start.cache_clear()  # as if sflow had been started holding it
    try:
        _, code = _run(
            f"test -e /proc/self/fd/{write_end} && echo leaked || echo closed", tmp_path, tmp_path / "a.log"
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert code == 0
    assert (tmp_path / "a.log").read_text().strip() == "closed"


@pytest.mark.parametrize("here", [True, False], ids=["spawn", "asyncio"])
def test_a_missing_program_fails_to_start_on_either_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, here: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    cwd = tmp_path if here else Path(sys.prefix)

    async def main() -> None:
        spec = LaunchSpec(["no-such-program-x"], dict(os.environ), cwd, tmp_path / "a.log")
        await ProcessAttempt.start(spec)

    with pytest.raises(FileNotFoundError):
        asyncio.run(main())


@needs_spawn
def test_the_program_is_found_on_the_tasks_own_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "mytool"
    tool.write_text("#!/bin/sh\necho mine\n")
    tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")

    async def main() -> int | None:
        attempt = await ProcessAttempt.start(LaunchSpec(["mytool"], env, tmp_path, tmp_path / "a.log"))
        return (await attempt.wait()).exit_code

    assert asyncio.run(main()) == 0
    assert (tmp_path / "a.log").read_text().strip() == "mine"


@needs_spawn
def test_a_child_reaped_behind_our_back_ends_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    async def main() -> int | None:
        spec = LaunchSpec(["bash", "-c", "exit 0"], dict(os.environ), tmp_path, tmp_path / "a.log")
        attempt = await ProcessAttempt.start(spec)
        os.waitpid(attempt.proc.pid, 0)  # as a process-wide SIGCHLD handler would
        return (await asyncio.wait_for(attempt.wait(), 10)).exit_code

    assert asyncio.run(main()) == 255


def test_the_program_is_the_first_executable_file_of_its_name_on_the_path(tmp_path: Path) -> None:
    """A folder or a file we may not execute of that name is passed over, as the shell would."""
    folders = [tmp_path / name for name in ("folder", "plain", "runnable", "later")]
    for folder in folders:
        folder.mkdir()
    (folders[0] / "tool").mkdir()
    (folders[1] / "tool").write_text("#!/bin/sh\n")
    for folder in folders[2:]:
        (folder / "tool").write_text("#!/bin/sh\n")
        (folder / "tool").chmod(0o755)
    path = os.pathsep.join(str(f) for f in folders)
    assert _which("tool", path) == str(folders[2] / "tool")
    assert _which(str(folders[3] / "tool"), path) == str(folders[3] / "tool")  # a path is taken as it is
    for name, search in (("tool", ""), ("other", path), (str(folders[1] / "tool"), path)):
        with pytest.raises(FileNotFoundError):
            _which(name, search)
