"""The conformance harness in the test suite: a sample listed as matching nv-sflow must keep matching.

The harness (compat/run) installs the pinned nv-sflow into .venv-nvsflow on first use and keeps
nv-sflow's plans there, so after the first run this asks nv-sflow nothing. Known differences are
listed in compat/cases.yaml (`status: differs`) and explained in docs/compat.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_sample_listed_as_matching_has_the_same_plan(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "compat" / "harness.py"), "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert report.exists(), f"the harness did not finish:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    results = json.loads(report.read_text())
    cases = {c["id"]: c for c in _cases()}
    regressed = {
        case: result["differences"][:5]
        for case, result in results.items()
        if cases[case]["status"] == "same" and result["same"] != "yes"
    }
    assert not regressed, f"{json.dumps(regressed, indent=1)}\n\n{done.stdout}"
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"  # e.g. a known difference that now matches


def test_every_known_difference_is_explained_in_the_docs() -> None:
    docs = (ROOT / "docs" / "compat.md").read_text()
    reasons = {c["reason"] for c in _cases() if c["status"] == "differs"}
    unexplained = sorted(r for r in reasons if f"`{r}`" not in docs)
    assert not unexplained, f"docs/compat.md does not explain: {unexplained}"


def _cases() -> list[dict]:
    import yaml

    return yaml.safe_load((ROOT / "compat" / "cases.yaml").read_text())


def test_a_real_run_that_ends_otherwise_than_expected_fails_the_table() -> None:
    sys.path.insert(0, str(ROOT / "compat"))
    try:
        from harness import Case, Outcome
    finally:
        sys.path.remove(str(ROOT / "compat"))

    def row(ran: str, outcome: str = "ok") -> Outcome:
        return Outcome(Case(id="c", kind="local", status="same", outcome=outcome), same="yes", ran=ran)

    assert not row("ok").regressed and not row("ok (2 uploads)").regressed
    assert row("failed: a").regressed  # expected ok
    assert row("ok", "failed: a").regressed  # expected to fail
    assert not row("failed: a", "failed: a").regressed
    assert row("failed: b", "failed: a").regressed  # another task failed
    assert not row("failed: a, b", "failed").regressed
    assert not row("").regressed  # not run
