"""The node sampler: `/proc` and `nvidia-smi` readings, the CSV it writes, its stop on SIGTERM."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sflow.monitor.sampler import GpuReader, ProcReader, Sampler
from sflow.schema.monitor import DEFAULT_GPU_FIELDS

DATA = Path(__file__).parent / "data"
STAT = "cpu  {user} 0 {system} {idle} {iowait} 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"
MEMINFO = "MemTotal:       2048000 kB\nMemFree:         100000 kB\nMemAvailable:    512000 kB\n"
NETDEV = (
    "Inter-|   Receive                            |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets\n"
    "    lo: {lo} 10 0 0 0 0 0 0 {lo} 10 0 0 0 0 0 0\n"
    "  eth0: {rx} 10 0 0 0 0 0 0 {tx} 10 0 0 0 0 0 0\n"
)


def write_proc(root: Path, user: int, idle: int, rx: int, tx: int) -> None:
    root.mkdir(exist_ok=True)
    (root / "stat").write_text(STAT.format(user=user, system=0, idle=idle, iowait=0))
    (root / "loadavg").write_text("1.50 1.20 1.00 2/300 4242\n")
    (root / "meminfo").write_text(MEMINFO)
    (root / "net").mkdir(exist_ok=True)
    (root / "net" / "dev").write_text(NETDEV.format(lo=999999, rx=rx, tx=tx))


def test_cpu_use_is_the_busy_share_of_ticks_between_two_readings(tmp_path: Path) -> None:
    reader = ProcReader(tmp_path)
    write_proc(tmp_path, user=100, idle=900, rx=0, tx=0)
    first = reader.cpu(10.0)
    assert first == {"cpu.load1": 1.5}  # one reading gives no share yet
    write_proc(tmp_path, user=175, idle=925, rx=0, tx=0)  # 75 busy of 100 ticks
    assert reader.cpu(11.0) == {"cpu.load1": 1.5, "cpu.util_percent": 75.0}


def test_memory_used_is_total_less_available(tmp_path: Path) -> None:
    write_proc(tmp_path, 0, 0, 0, 0)
    assert ProcReader(tmp_path).memory(0.0) == {
        "memory.total_mib": 2000.0,
        "memory.used_mib": 1500.0,
        "memory.used_percent": 75.0,
    }


def test_network_is_bytes_per_second_without_loopback(tmp_path: Path) -> None:
    reader = ProcReader(tmp_path)
    write_proc(tmp_path, 0, 0, rx=1000, tx=500)
    assert reader.network(100.0) == {}
    write_proc(tmp_path, 0, 0, rx=5000, tx=1500)
    assert reader.network(102.0) == {"network.rx_bytes_per_s": 2000.0, "network.tx_bytes_per_s": 500.0}


@pytest.fixture
def fake_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    """`nvidia-smi` on PATH answers with a fixture of two GPUs."""
    monkeypatch.setenv("PATH", f"{DATA}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("NVIDIA_SMI_OUTPUT", str(DATA / "nvidia-smi-query-gpu.csv"))


@pytest.mark.usefixtures("fake_nvidia_smi")
def test_gpu_reading_is_a_column_per_gpu_and_field_without_unavailable_ones() -> None:
    values = GpuReader(DEFAULT_GPU_FIELDS, timeout=10)(0.0)
    assert values["gpu0.utilization.gpu"] == 87 and values["gpu1.utilization.gpu"] == 0
    assert values["gpu0.power.draw"] == 312.45 and values["gpu1.memory.used"] == 4
    assert "gpu0.temperature.memory" not in values  # [N/A]
    assert len(values) == 2 * 8


@pytest.mark.usefixtures("fake_nvidia_smi")
def test_a_failing_nvidia_smi_is_an_error_of_the_gpu_scope() -> None:
    with pytest.raises(OSError, match="unexpected arguments"):
        GpuReader("index,power.draw", timeout=10)(0.0)


def test_rows_leave_scopes_that_are_not_due_empty_and_a_failing_scope_is_said_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = {"fast": 0}

    def fast(now: float) -> dict[str, float]:
        calls["fast"] += 1
        return {"cpu.load1": float(calls["fast"])}

    def slow(now: float) -> dict[str, float]:
        return {"memory.used_mib": 7.0}

    def broken(now: float) -> dict[str, float]:
        raise OSError("no such device")

    out = tmp_path / "n1.csv"
    readers = {"cpu": fast, "memory": slow, "gpu": broken}
    sampler = Sampler(out, readers, {"cpu": 1.0, "memory": 3.0, "gpu": 1.0}, ["cpu.load1", "memory.used_mib"])
    for now in (100.0, 101.0, 102.0, 103.0):
        sampler.step(now)
    rows = list(csv.reader(out.open()))
    assert rows == [
        ["time", "cpu.load1", "memory.used_mib"],
        ["100.000", "1", "7"],
        ["101.000", "2", ""],
        ["102.000", "3", ""],
        ["103.000", "4", "7"],
    ]
    assert capsys.readouterr().err.count("cannot sample gpu: no such device") == 1
    again = Sampler(out, {"cpu": fast, "memory": slow}, {"cpu": 1.0, "memory": 1.0}, ["other"])  # a retry
    again.step(200.0)
    header, *_, last = list(csv.reader(out.open()))
    assert header == ["time", "cpu.load1", "memory.used_mib"] and last == ["200.000", "5", "7"]


def wait_for(condition, what: str, limit: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.usefixtures("fake_nvidia_smi")
def test_the_sampler_program_writes_rows_until_sigterm_then_a_last_one(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "sflow.monitor.sampler", "--out", str(tmp_path), "--node", "n7"]
    argv += ["--scope", "cpu=100", "--scope", "gpu=100", "--gpu-fields", DEFAULT_GPU_FIELDS]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    out = tmp_path / "n7.csv"
    try:
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 3, "two rows")
        rows_before = len(out.read_text().splitlines())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    header, *rows = list(csv.reader(out.open()))
    assert header[:3] == ["time", "cpu.util_percent", "cpu.load1"]
    assert "gpu0.utilization.gpu" in header and "gpu1.memory.used" in header
    assert len(rows) >= rows_before  # the last row, taken on SIGTERM
    column = header.index("gpu0.power.draw")
    assert all(row[column] == "312.45" for row in rows)
    busy = [float(row[1]) for row in rows if row[1]]
    assert busy and all(0.0 <= b <= 100.0 for b in busy)
    assert proc.stderr is not None and proc.stderr.read() == ""
