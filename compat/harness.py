"""The conformance harness: every nv-sflow 0.3.1 sample through both tools, plans compared.

    compat/run [--only PATTERN] [--no-run] [--report FILE]

For each case of `compat/cases.yaml` it asks nv-sflow (installed in `.venv-nvsflow`, a virtualenv
of its own: its package is also called `sflow`) and sflow for the plan of `sflow run --dry-run`,
brings both to one neutral form (`compat.plans`) and compares them: tasks and their order,
dependencies, nodes and GPUs, the srun and salloc command lines, the environment. Local cases
marked `run: true` that both tools accept also run for real with sflow, in a folder of their own,
and the outcome must be the one the case expects (`outcome`, by default `ok`); a case with
`s3_bucket` uploads to an S3 server the harness starts on this machine (moto's server mode), and
its run is `ok` only if every upload arrived.

nv-sflow's answers depend only on its pinned version and on the inputs, so they are kept in
`.venv-nvsflow/plans/` under a hash of both: a second run asks nv-sflow nothing.
Dry runs touch no cluster: every Slurm command on PATH is replaced by one that fails and says so.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from plans import compare, from_nvsflow, from_sflow  # noqa: E402

VENV = Path(os.environ.get("SFLOW_NVSFLOW_VENV", ROOT / ".venv-nvsflow"))
SLURM_COMMANDS = ("salloc", "srun", "sbatch", "scontrol", "scancel", "squeue", "sinfo", "sacct")


@dataclass
class Case:
    id: str
    kind: str
    status: str
    files: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    guide: int | None = None
    run: bool = False
    reason: str | None = None
    outcome: str = "ok"  # what a real run of the case gives: ok, or `failed: <tasks>` (with `why`)
    why: str | None = None
    s3_bucket: str | None = None  # the bucket its uploads go to (created on the harness's S3 server)


@dataclass
class Outcome:
    """One row of the table."""

    case: Case
    nvsflow: str = ""
    sflow: str = ""
    same: str = ""
    differences: list[str] = field(default_factory=list)
    ran: str = ""  # the real run's outcome ("" when not run)

    @property
    def regressed(self) -> bool:
        """A case listed as matching that no longer does (or refused by nv-sflow and no longer is),
        or whose real run did not end as the case expects."""
        if self.case.status == "refused":
            return self.same != "n/a"
        if self.ran and not _as_expected(self.ran, self.case.outcome):
            return True
        return self.case.status == "same" and self.same != "yes"

    @property
    def stale(self) -> bool:
        """A case listed as a known difference that now matches: the list must say so."""
        return self.case.status == "differs" and self.same == "yes"


def _as_expected(ran: str, expected: str) -> bool:
    """`ok (2 uploads)` is `ok`; `failed: a, b` is `failed`, or exactly `failed: a, b` when the
    case names the tasks."""
    if ":" in expected:
        return ran == expected
    return ran.split(":")[0].split(" (")[0] == expected


def load_cases(only: str | None = None) -> list[Case]:
    raw = yaml.safe_load((HERE / "cases.yaml").read_text())
    cases = [Case(**entry) for entry in raw]
    return [c for c in cases if only is None or fnmatch.fnmatch(c.id, only)]


# -- nv-sflow's side ------------------------------------------------------------------------------


def nvsflow_python() -> Path:
    """The pinned nv-sflow, installed on first use."""
    python = VENV / "bin" / "python"
    stamp = VENV / "requirements.txt"
    wanted = (HERE / "nvsflow-requirements.txt").read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"compat: installing nv-sflow into {VENV} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run(
        [*pip, "-r", str(HERE / "nvsflow-requirements.txt")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"cannot install nv-sflow into {VENV}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    stamp.write_text(wanted)
    return python


def samples_dir(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sflow.samples, os; print(os.path.dirname(sflow.samples.__file__))"],
        check=True,
        capture_output=True,
        text=True,
        cwd="/",
    )
    return Path(out.stdout.strip())


def guide_block(samples: Path, number: int) -> str:
    """The YAML block of "Example N" in nv-sflow's guide (`examples.md`)."""
    text = (samples.parent / "skills" / "writing-sflow-yaml" / "examples.md").read_text()
    section = re.split(r"^## ", text, flags=re.M)
    for part in section:
        if part.startswith(f"Example {number}:"):
            match = re.search(r"```yaml\n(.*?)```", part, re.S)
            if match:
                return match.group(1)
    raise ValueError(f"examples.md has no YAML block for Example {number}")


def stand_ins(work: Path) -> Path:
    """A folder of Slurm commands that refuse to run: a dry run must never reach a cluster."""
    folder = work / "no-slurm"
    folder.mkdir(parents=True, exist_ok=True)
    for name in SLURM_COMMANDS:
        path = folder / name
        path.write_text(f'#!/bin/sh\necho "{name} called during a dry run: $*" >&2\nexit 97\n')
        path.chmod(0o755)
    return folder


class Workspace:
    """Files and folders of one harness run: each case gets a workspace per tool.

    nv-sflow's side lives under the virtualenv (its answers are kept, and name these folders);
    sflow's side under `root`, made afresh for each harness run.
    """

    def __init__(self, root: Path, samples: Path) -> None:
        self.root = root
        self.kept = VENV / "work"
        self.samples = samples
        self.path = f"{stand_ins(root)}{os.pathsep}{os.environ.get('PATH', '')}"

    def inputs(self, case: Case) -> list[str]:
        """Command-line arguments naming the case's files (a guide block written to a file first)."""
        files = [str(self.samples / f) for f in case.files]
        if case.guide is not None:
            path = self.kept / "guide" / f"example_{case.guide}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(guide_block(self.samples, case.guide))
            files.append(str(path))
        args = [a.replace("{samples}", str(self.samples)) for a in case.args]
        return [*(w for f in files for w in ("-f", f)), *args]

    def dirs(self, case: Case, tool: str) -> tuple[Path, Path]:
        workspace = (self.kept if tool == "nvsflow" else self.root) / tool / case.id.replace("/", "__")
        workspace.mkdir(parents=True, exist_ok=True)
        return workspace, workspace / "sflow_output"


def input_digest(samples: Path) -> str:
    """What every nv-sflow answer depends on: its driver, the pinned versions and the samples."""
    h = hashlib.sha256()
    for part in ((HERE / "nvsflow_plan.py").read_text(), (HERE / "nvsflow-requirements.txt").read_text()):
        h.update(part.encode())
    for f in sorted(samples.parent.rglob("*")):
        if f.is_file() and f.suffix in (".yaml", ".csv", ".md"):
            h.update(str(f.relative_to(samples.parent)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:32]


def nvsflow_plans(cases: list[Case], ws: Workspace, python: Path) -> dict[str, dict[str, Any]]:
    """nv-sflow's plan of every case, from the cache or from one nv-sflow process for the rest."""
    cache = VENV / "plans"
    cache.mkdir(parents=True, exist_ok=True)
    digest = input_digest(ws.samples)
    out: dict[str, dict[str, Any]] = {}
    todo = []
    for case in cases:
        args = ws.inputs(case)
        key = hashlib.sha256(f"{digest}{case.id}{args}".encode()).hexdigest()[:32]
        path = cache / f"{key}.json"
        if path.exists():
            out[case.id] = json.loads(path.read_text())
            continue
        workspace, output = ws.dirs(case, "nvsflow")
        todo.append(({"id": case.id, "args": args, "workspace": str(workspace), "output": str(output)}, path))
    if todo:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env.update(PATH=ws.path, COLUMNS="200", NO_COLOR="1")
        proc = subprocess.run(
            [str(python), str(HERE / "nvsflow_plan.py")],
            input=json.dumps([c for c, _ in todo]),
            capture_output=True,
            text=True,
            env=env,
            cwd=str(ws.root),
            check=False,
        )
        answers = {}
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                data = json.loads(line)
                answers[data.pop("id")] = data
        if proc.returncode != 0 and not answers:
            raise RuntimeError(f"nv-sflow's planner failed:\n{proc.stderr[-2000:]}")
        for case_data, path in todo:
            answer = answers.get(case_data["id"], {"accepted": False, "error": "no answer"})
            answer.update(workspace=case_data["workspace"], output=case_data["output"])
            if "called during a dry run" in json.dumps(answer):
                raise RuntimeError(f"{case_data['id']}: nv-sflow ran a Slurm command during a dry run")
            path.write_text(json.dumps(answer))
            out[case_data["id"]] = answer
    return out


# -- sflow's side ---------------------------------------------------------------------------------


def sflow_plan(case: Case, ws: Workspace) -> dict[str, Any]:
    """sflow's `run --dry-run --json` of the case, in this process (its command, not its internals)."""
    from sflow.cli import main

    workspace, output = ws.dirs(case, "sflow")
    args = ["run", *ws.inputs(case), "--dry-run", "--json"]
    args += ["--workspace-dir", str(workspace), "--output-dir", str(output)]
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), _cwd(workspace):
        try:
            main(args, prog_name="sflow", standalone_mode=False)
        except SystemExit as exc:
            code = int(exc.code or 0)
        except Exception as exc:
            code = 2 if exc.__class__.__name__.endswith("Error") else 1
            stderr.write(f"sflow: error: {exc}\n")
    if code != 0:
        lines = [ln.strip() for ln in stderr.getvalue().splitlines() if ln.strip()] or ["refused"]
        first = next((i for i, ln in enumerate(lines) if ln.startswith("sflow: error:")), 0)
        shown = lines[first : first + 4]  # one error, or the first of a report of several
        return {"accepted": False, "error": " / ".join(shown).removeprefix("sflow: error: ")}
    return {"accepted": True, **json.loads(stdout.getvalue())}


@contextlib.contextmanager
def _cwd(path: Path) -> Any:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# -- real runs ------------------------------------------------------------------------------------


def run_for_real(rows: list[Outcome], ws: Workspace) -> None:
    """Run each local case marked `run: true` that both tools accept, with sflow, for real."""
    todo = [r for r in rows if r.case.run and r.case.kind == "local" and r.sflow == r.nvsflow == "accepts"]
    if not todo:
        return
    with contextlib.ExitStack() as stack:
        s3 = stack.enter_context(S3Server()) if any(r.case.s3_bucket for r in todo) else None
        for row in todo:
            row.ran = real_run(row.case, ws, s3)


def real_run(case: Case, ws: Workspace, s3: S3Server | None) -> str:
    """`sflow run` of the case in a folder of its own: `ok`, `ok (N uploads)` or `failed: why`."""
    folder = ws.root / "runs" / case.id.replace("/", "__")
    folder.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "AWS_"))}
    env.update(PATH=ws.path, NO_COLOR="1")
    if case.s3_bucket:
        assert s3 is not None
        env.update(s3.env())
        s3.empty_bucket(case.s3_bucket)
    argv = [sys.executable, "-m", "sflow", "run", *ws.inputs(case), "--no-tui"]
    argv += ["--workspace-dir", str(folder), "--output-dir", str(folder / "out")]
    try:
        done = subprocess.run(
            argv, cwd=folder, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return "failed: still running after 300 s"
    summaries = sorted((folder / "out").glob("*/summary.json"))
    summary = json.loads(summaries[-1].read_text()) if summaries else {}
    if done.returncode != 0:
        failed = [name for name, t in summary.get("tasks", {}).items() if t.get("state") == "failed"]
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed: {', '.join(failed)}" if failed else f"failed: {last}"
    uploads = summary.get("uploads", [])
    if case.s3_bucket:
        assert s3 is not None
        stored = s3.client().list_objects_v2(Bucket=case.s3_bucket).get("KeyCount", 0)
        if not uploads or not all(u["ok"] for u in uploads) or stored < len(uploads):
            return f"failed: {sum(not u['ok'] for u in uploads)} of {len(uploads)} uploads failed"
    return f"ok ({len(uploads)} uploads)" if uploads else "ok"


class S3Server:
    """moto's S3 server on a free loopback port, for the samples that upload."""

    def __enter__(self) -> S3Server:
        server = Path(sys.executable).parent / "moto_server"
        if not server.exists():
            raise RuntimeError(f"{server} is missing: install sflow's dev extra (moto[server])")
        self.proc = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "Running on http://" in line:
                self.url = line.split("Running on ", 1)[1].split()[0].rstrip("/")
                return self
        raise RuntimeError(f"moto server exited with {self.proc.wait()} before listening")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "harness",
            "AWS_SECRET_ACCESS_KEY": "harness",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def empty_bucket(self, name: str) -> None:
        """`name`, created or emptied: each case counts only its own uploads."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            for item in client.list_objects_v2(Bucket=name).get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", region_name="us-east-1", endpoint_url=self.url, **_keys())


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "harness", "aws_secret_access_key": "harness"}


# -- the comparison -------------------------------------------------------------------------------


def judge(case: Case, nv: dict[str, Any], ours: dict[str, Any], ws: Workspace) -> Outcome:
    row = Outcome(case)
    row.nvsflow = "accepts" if nv.get("accepted") else "refuses"
    row.sflow = "accepts" if ours.get("accepted") else "refuses"
    if not nv.get("accepted"):
        row.same = "n/a"
        row.differences = [f"nv-sflow: {nv.get('error')}"]
        return row
    if not ours.get("accepted"):
        row.same = "no"
        error = str(ours.get("error")).replace(f"{ws.samples}/", "").replace(f"{ws.kept}/", "")
        row.differences = [f"sflow: {error}"]
        return row
    our_dirs = ws.dirs(case, "sflow")
    left = from_nvsflow(nv, workspace=Path(nv["workspace"]), output=Path(nv["output"]))
    right = from_sflow(ours, workspace=our_dirs[0], output=our_dirs[1])
    row.differences = compare(left, right)
    row.same = "no" if row.differences else "yes"
    return row


def table(rows: list[Outcome]) -> str:
    width = max([len(r.case.id) for r in rows] + [6])
    lines = [
        f"{'sample':<{width}}  {'nv-sflow':<8}  {'sflow':<8}  {'sflow run':<18}  same plan",
        "-" * (width + 60),
    ]
    for r in rows:
        same = r.same
        if r.case.status == "differs" and r.same == "no":
            same = f"no (known: {r.case.reason})"
        elif r.case.status == "refused" and r.same == "n/a":
            same = f"n/a ({r.differences[0]})"[:160]
        elif r.same == "no" and r.differences:
            same = f"no: {r.differences[0]}"[:160]
        ran = (r.ran or "-")[:18]
        lines.append(f"{r.case.id:<{width}}  {r.nvsflow:<8}  {r.sflow:<8}  {ran:<18}  {same}")
    accepted = [r for r in rows if r.nvsflow == "accepts"]
    same = [r for r in accepted if r.same == "yes"]
    ran = [r for r in rows if r.ran]
    lines.append("-" * (width + 60))
    lines.append(f"{len(same)} of {len(accepted)} samples nv-sflow accepts have the same plan on sflow")
    ok = [r for r in ran if not r.regressed]
    lines.append(f"{len(ok)} of {len(ran)} local samples run for real end as expected")
    lines += [f"  {r.case.id}: {r.ran}" for r in ran if r.regressed]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compat/run", description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="only cases whose id matches this glob (e.g. 'local/*')")
    parser.add_argument("--report", type=Path, help="write every difference of every case here (JSON)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed at the end)")
    parser.add_argument("--no-run", action="store_true", help="plans only: run no sample for real")
    opts = parser.parse_args(argv)

    cases = [c for c in load_cases(opts.only) if c.status != "out-of-scope"]
    python = nvsflow_python()
    work = Path(tempfile.mkdtemp(prefix="sflow-compat-"))
    try:
        ws = Workspace(work, samples_dir(python))
        theirs = nvsflow_plans(cases, ws, python)
        rows = [judge(c, theirs[c.id], sflow_plan(c, ws), ws) for c in cases]
        if not opts.no_run:
            run_for_real(rows, ws)
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(table(rows))
    if opts.report:
        opts.report.write_text(
            json.dumps(
                {r.case.id: {"same": r.same, "differences": r.differences, "ran": r.ran} for r in rows},
                indent=1,
            )
        )
    regressed = [r.case.id for r in rows if r.regressed]
    stale = [r.case.id for r in rows if r.stale]
    if regressed:
        print(
            f"\nlisted as the same plan (or run outcome), but differ: {', '.join(regressed)}", file=sys.stderr
        )
    if stale:
        print(
            f"\nnow the same plan: mark as `same` in compat/cases.yaml: {', '.join(stale)}", file=sys.stderr
        )
    if opts.keep:
        print(f"work folder: {work}", file=sys.stderr)
    return 1 if regressed or stale else 0


if __name__ == "__main__":
    sys.exit(main())
