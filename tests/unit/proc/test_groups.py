"""Processes read from /proc: this process's own children without reading every process."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

from sflow.proc.groups import own_children, processes

pytestmark = pytest.mark.skipif(
    not os.path.exists(f"/proc/self/task/{os.getpid()}/children"), reason="the kernel lists no children"
)


def test_own_children_are_the_children_of_every_thread_and_not_their_children() -> None:
    started: list[subprocess.Popen[bytes]] = []
    main = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    other = threading.Thread(target=lambda: started.append(subprocess.Popen(["sleep", "30"])))
    other.start()
    other.join()
    try:
        children = own_children()
        assert children is not None
        assert {main.pid, started[0].pid} <= set(children)
        grandchildren: list[int] = []
        while not grandchildren:  # sh's `sleep`, once sh has started it
            grandchildren = [pid for pid, f in processes() if int(f[1]) == main.pid]
        assert not set(grandchildren) & set(own_children() or ())
    finally:
        for proc in (main, *started):
            proc.kill()
            proc.wait()


def test_processes_of_given_pids_are_those_still_there() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        listed = dict(processes([proc.pid, 2**22 + 1]))  # beyond pid_max's default: no such process
        assert set(listed) == {proc.pid} and int(listed[proc.pid][1]) == os.getpid()
    finally:
        proc.kill()
        proc.wait()
