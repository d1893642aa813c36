"""The run lifecycle both doors share: what is recorded when a run is cut short, and signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sflow

SLOW = """\
version: "0.1"
workflow:
  name: slow
  tasks:
    - name: quick
      script: ["echo done"]
    - name: long
      depends_on: [quick]
      script:
        - echo $$ > "{marker}"
        - sleep 300
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _summary(out: Path) -> dict:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return json.loads((run_dir / "summary.json").read_text())


def test_a_cancelled_run_records_what_had_run(tmp_path: Path) -> None:
    marker = tmp_path / "long.pid"
    wf = tmp_path / "wf.yaml"
    wf.write_text(SLOW.format(marker=marker))
    out = tmp_path / "out"

    async def main() -> None:
        run = asyncio.ensure_future(sflow.run_yaml_async(wf, output_dir=out, grace=5))
        while not (marker.exists() and marker.read_text().strip()):
            if run.done():
                run.result()  # the run ended before its long task started: say why
                pytest.fail("the run succeeded without its long task")
            await asyncio.sleep(0.01)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())
    summary = _summary(out)
    assert summary["interrupted"] is True
    assert summary["tasks"]["quick"]["state"] == "succeeded"
    assert summary["tasks"]["long"]["state"] == "cancelled" and summary["tasks"]["long"]["attempts"] == 1
    assert not _alive(int(marker.read_text()))


LIBRARY_CALL = """
import sys
import sflow
sflow.run_yaml(sys.argv[1], output_dir=sys.argv[2], grace=5)
"""


def test_sigterm_to_a_library_run_stops_it_cleanly_then_exits_143(tmp_path: Path, wait_until) -> None:
    marker = tmp_path / "long.pid"
    wf = tmp_path / "wf.yaml"
    wf.write_text(SLOW.format(marker=marker))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(LIBRARY_CALL), str(wf), str(out)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: marker.exists() and marker.read_text().strip() != "", "the long task to start")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    summary = _summary(out)
    assert summary["interrupted"] is True and "SIGTERM" in summary["stop_reason"]
    assert summary["tasks"]["long"]["state"] == "cancelled"
    assert not _alive(int(marker.read_text()))


def test_a_ctrl_c_as_the_loop_ends_is_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT comes while the loop's handlers are being removed, before the loop read its wake-up."""
    removing = type(asyncio.new_event_loop())
    original = removing.remove_signal_handler
    sent: list[int] = []

    def remove_after_a_ctrl_c(self: asyncio.AbstractEventLoop, sig: int) -> bool:
        if sig == signal.SIGINT and not sent:
            sent.append(sig)
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, sig)

    monkeypatch.setattr(removing, "remove_signal_handler", remove_after_a_ctrl_c)
    with pytest.raises(KeyboardInterrupt), sflow.flow("late", record=False) as f:
        f.task(lambda: 1, name="quick")
    assert sent and f.result.quick == 1  # the run itself had ended; the process is interrupted


BEFORE_THE_LOOP = """\
import os, signal, sys
import sflow
import sflow.lifecycle.host as host

out = sys.argv[1]
original = host._use_pidfd_watcher


def sigterm_first():  # the first thing on the new loop, before any run has started
    os.kill(os.getpid(), signal.SIGTERM)
    original()


host._use_pidfd_watcher = sigterm_first
with sflow.flow("early", output_dir=out) as f:
    f.task(lambda: 1, name="quick")
print("not reached")
"""


def test_a_sigterm_before_the_loop_runs_ends_the_flow_with_143(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", BEFORE_THE_LOOP, str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, proc.stderr)
    assert "not reached" not in proc.stdout
