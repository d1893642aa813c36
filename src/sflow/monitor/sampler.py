"""Sample a node's CPU, memory, disk, network and GPUs into `<out>/<node>.csv` until SIGTERM.

    python -m sflow.monitor.sampler --out DIR --scope cpu=1000 --scope gpu=500 [--node NAME]
        [--gpu-fields index,utilization.gpu,...] [--custom SCRIPT --custom-interval MS]

One row per sampling moment: `time` (Unix seconds) and a column per metric (`docs/monitor.md`);
a scope not due at that moment leaves its cells empty. CPU, memory, disk and network come from
`/proc`; GPUs from `nvidia-smi --query-gpu` (the first on `PATH`). A scope that cannot be read
(no `nvidia-smi`) is said once on stderr and left empty: the others go on.
The node is named by `--node`, else Slurm's `SLURMD_NODENAME`, else the host name.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

Metrics = dict[str, float]


class Rates:
    """Per-second rates of counters that only grow (bytes read, CPU ticks)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def of(self, name: str, value: float, now: float) -> float | None:
        last = self._last.get(name)
        self._last[name] = (value, now)
        if last is None or now <= last[1]:
            return None
        return max(0.0, value - last[0]) / (now - last[1])


class ProcReader:
    """The `/proc` scopes; `root` is `/proc` (a folder of recorded files in tests)."""

    def __init__(self, root: Path = Path("/proc")) -> None:
        self.root = root
        self.rates = Rates()
        self._cpu: tuple[float, float] | None = None

    def cpu(self, now: float) -> Metrics:
        fields = [float(x) for x in (self.root / "stat").read_text().split("\n", 1)[0].split()[1:]]
        idle, total = fields[3] + (fields[4] if len(fields) > 4 else 0.0), sum(fields[:8])
        out: Metrics = {"cpu.load1": float((self.root / "loadavg").read_text().split()[0])}
        if self._cpu is not None and total > self._cpu[1]:
            busy = 1.0 - (idle - self._cpu[0]) / (total - self._cpu[1])
            out["cpu.util_percent"] = round(100.0 * min(1.0, max(0.0, busy)), 2)
        self._cpu = (idle, total)
        return out

    def memory(self, now: float) -> Metrics:
        info = {}
        for line in (self.root / "meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            info[key] = float(rest.split()[0]) / 1024.0 if rest.split() else 0.0
        total = info["MemTotal"]
        used = total - info.get("MemAvailable", info.get("MemFree", 0.0))
        return {
            "memory.total_mib": round(total, 1),
            "memory.used_mib": round(used, 1),
            "memory.used_percent": round(100.0 * used / total, 2) if total else 0.0,
        }

    def disk(self, now: float) -> Metrics:
        read = written = 0.0
        for line in (self.root / "diskstats").read_text().splitlines():
            parts = line.split()
            if len(parts) < 10 or not _whole_disk(parts[2]):
                continue
            read, written = read + float(parts[5]) * 512, written + float(parts[9]) * 512
        return self._rates("disk", {"read_bytes_per_s": read, "write_bytes_per_s": written}, now)

    def network(self, now: float) -> Metrics:
        rx = tx = 0.0
        for line in (self.root / "net" / "dev").read_text().splitlines()[2:]:
            name, _, counters = line.partition(":")
            values = counters.split()
            if name.strip() == "lo" or len(values) < 9:
                continue
            rx, tx = rx + float(values[0]), tx + float(values[8])
        return self._rates("network", {"rx_bytes_per_s": rx, "tx_bytes_per_s": tx}, now)

    def _rates(self, scope: str, counters: dict[str, float], now: float) -> Metrics:
        out = {}
        for name, value in counters.items():
            rate = self.rates.of(f"{scope}.{name}", value, now)
            if rate is not None:
                out[f"{scope}.{name}"] = round(rate, 1)
        return out


def _whole_disk(name: str) -> bool:
    """A disk, not one of its partitions nor a loop or RAM device."""
    if name.startswith(("loop", "ram", "dm-", "sr", "zram")):
        return False
    return Path("/sys/block", name).exists()


class GpuReader:
    """`nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits`, a column per GPU and field."""

    def __init__(self, fields: str, timeout: float) -> None:
        self.fields = [f.strip() for f in fields.split(",") if f.strip()]
        self.timeout = timeout

    def __call__(self, now: float) -> Metrics:
        argv = ["nvidia-smi", f"--query-gpu={','.join(self.fields)}", "--format=csv,noheader,nounits"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        if done.returncode != 0:
            raise OSError(f"nvidia-smi: exit code {done.returncode}: {done.stderr.strip()[:200]}")
        out: Metrics = {}
        for row in csv.reader(done.stdout.splitlines(), skipinitialspace=True):
            if len(row) != len(self.fields):
                continue
            index = row[0].strip()
            for name, text in zip(self.fields[1:], row[1:], strict=True):
                value = _number(text)
                if value is not None:
                    out[f"gpu{index}.{name}"] = value
        return out


def _number(text: str) -> float | None:
    """A sampled value, or None for nvidia-smi's `[N/A]`, `[Not Supported]` and the like."""
    try:
        return float(text.strip())
    except ValueError:
        return None


SAME_MOMENT = 0.05
"""Scopes due within this many seconds of each other are taken together, in one row."""

PROC_COLUMNS = {
    "cpu": ["cpu.util_percent", "cpu.load1"],
    "memory": ["memory.used_mib", "memory.total_mib", "memory.used_percent"],
    "disk": ["disk.read_bytes_per_s", "disk.write_bytes_per_s"],
    "network": ["network.rx_bytes_per_s", "network.tx_bytes_per_s"],
}


class Sampler:
    """Takes each scope at its own interval and writes one CSV row per moment something was due.

    The header is written once, with `columns`; appending to an existing file (a task's next
    attempt) keeps that file's header.
    """

    def __init__(
        self,
        out: Path,
        readers: dict[str, Callable[[float], Metrics]],
        intervals: dict[str, float],
        columns: list[str],
    ) -> None:
        self.out = out
        self.readers = readers
        self.intervals = intervals
        self.due = dict.fromkeys(readers, 0.0)
        self.failed: set[str] = set()
        self.columns = columns
        if out.exists() and out.stat().st_size > 0:
            with open(out, newline="") as fh:
                self.columns = next(csv.reader(fh), ["time"])[1:]
        else:
            with open(out, "w", newline="") as fh:
                csv.writer(fh).writerow(["time", *columns])

    def step(self, now: float) -> float:
        """Sample every scope that is due and write the row; the seconds until the next is due."""
        row: Metrics = {}
        sampled = False
        for scope, reader in self.readers.items():
            if now + SAME_MOMENT < self.due[scope]:
                continue
            self.due[scope] = now + self.intervals[scope]
            sampled = True
            try:
                row.update(reader(now))
            except (OSError, ValueError, IndexError, KeyError, subprocess.TimeoutExpired) as exc:
                if scope not in self.failed:  # said once, then left empty
                    self.failed.add(scope)
                    print(f"sflow monitor: cannot sample {scope}: {exc}", file=sys.stderr, flush=True)
        if sampled and any(c in row for c in self.columns):
            with open(self.out, "a", newline="") as fh:
                csv.writer(fh).writerow([f"{now:.3f}", *(_cell(row.get(c)) for c in self.columns)])
        return max(0.0, min(self.due.values()) - time.time())


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def run_custom(script: Path, log: Path, timeout: float) -> Callable[[float], Metrics]:
    def custom(now: float) -> Metrics:
        with open(log, "ab") as fh:
            subprocess.run(
                ["bash", str(script)], stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        return {}

    return custom


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sflow.monitor.sampler", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="folder of the CSV files")
    parser.add_argument("--node", help="this node's name (default: SLURMD_NODENAME, else the host name)")
    parser.add_argument(
        "--scope", action="append", default=[], metavar="NAME=MS", help="a scope and its interval"
    )
    parser.add_argument("--gpu-fields", default="index,utilization.gpu,memory.used,memory.total")
    parser.add_argument("--custom", type=Path, help="a bash script run at every --custom-interval")
    parser.add_argument("--custom-interval", type=int, default=5000)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_signals = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # taken one at a time below, between rows
    node = args.node or os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    args.out.mkdir(parents=True, exist_ok=True)
    proc = ProcReader()
    known: dict[str, Callable[[float], Metrics]] = {
        "cpu": proc.cpu,
        "memory": proc.memory,
        "disk": proc.disk,
        "network": proc.network,
    }
    readers, intervals = {}, {}
    for item in args.scope:
        name, _, ms = item.partition("=")
        seconds = int(ms or 5000) / 1000.0
        readers[name] = (
            known[name] if name != "gpu" else GpuReader(args.gpu_fields, timeout=max(seconds, 5.0))
        )
        intervals[name] = seconds
    if args.custom is not None:
        readers["custom"] = run_custom(
            args.custom, args.out / f"{node}.custom.log", args.custom_interval / 1000
        )
        intervals["custom"] = args.custom_interval / 1000.0
    columns = [c for name in readers for c in PROC_COLUMNS.get(name, [])]
    for name, reader in readers.items():  # a first reading: rates and CPU use start from it
        try:
            first = reader(time.time())
        except Exception:
            first = {}
        if name == "gpu":
            columns += list(first)
    sampler = Sampler(args.out / f"{node}.csv", readers, intervals, columns)
    sampler.due = dict.fromkeys(readers, time.time() + 0.2)  # CPU use over at least 0.2 s
    wait = 0.2
    while signal.sigtimedwait(stop_signals, wait) is None:
        wait = sampler.step(time.time())
    sampler.due = dict.fromkeys(readers, 0.0)  # a last row as the monitored work ends
    sampler.step(time.time())
    return 0


if __name__ == "__main__":
    sys.exit(main())
