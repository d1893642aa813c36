"""Readiness and failure probes (tcp_port, http_get, http_post, log_watch) around any attempt.

- `spec`: `ProbeSpec` values, read from the YAML models by attribute name;
- `checks`: one non-blocking try of each kind (`http` and `logwatch` hold the details);
- `loops`: delay, interval, thresholds, deadline;
- `attempt`: `ProbedAttempt`, the Attempt wrapper a YAML run puts around a started attempt.

Standard library only: plain sflow needs no HTTP client package for its probes.
"""

from sflow.probes.attempt import ProbedAttempt, wrap_with_probes
from sflow.probes.checks import Check, CheckResult, build_check
from sflow.probes.spec import (
    ProbeSpec,
    TaskProbes,
    probe_from_model,
    probes_from_model,
    task_probes,
)

__all__ = [
    "Check",
    "CheckResult",
    "ProbeSpec",
    "ProbedAttempt",
    "TaskProbes",
    "build_check",
    "probe_from_model",
    "probes_from_model",
    "task_probes",
    "wrap_with_probes",
]
