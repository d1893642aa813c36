"""Local processes: spawn a task's process group, supervise it, stop it (TERM, grace, KILL)."""
