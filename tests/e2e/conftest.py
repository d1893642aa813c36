"""End-to-end helpers: run the real `sflow` command in a subprocess and look at what it left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Done:
    code: int
    out: str
    err: str
    output_dir: Path

    def run_dir(self) -> Path:
        runs = sorted(p for p in self.output_dir.iterdir() if (p / "sflow.log").exists())
        assert runs, f"no run directory under {self.output_dir}\n{self.err}"
        return runs[-1]

    def summary(self) -> dict:
        return json.loads((self.run_dir() / "summary.json").read_text())


class Sflow:
    """Runs `python -m sflow ...` with the workspace and output dir in a temporary folder."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.output_dir = tmp_path / "out"

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "sflow", *args]

    def recorded_running(self, task: str) -> bool:
        """A run under the output dir has recorded `task` running: a task may be under way (its
        pid written) before sflow has written that event. A line cut short is not read."""
        return any(
            json.loads(line).get("task") == task and json.loads(line).get("state") == "running"
            for events in self.output_dir.glob("*/events.jsonl")
            for line in events.read_text().splitlines()
            if line.endswith("}")
        )

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def __call__(self, *args: str, timeout: float = 60) -> Done:
        argv = list(args)
        if argv and argv[0] == "run" and "--output-dir" not in argv:
            argv += ["--output-dir", str(self.output_dir)]
        proc = subprocess.run(
            self.argv(*argv), cwd=self.tmp, capture_output=True, text=True, timeout=timeout, env=self.env()
        )
        return Done(proc.returncode, proc.stdout, proc.stderr, self.output_dir)


@pytest.fixture
def sflow(tmp_path: Path) -> Sflow:
    return Sflow(tmp_path)
