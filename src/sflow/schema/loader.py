"""`load_workflow`: YAML files + command-line overrides -> a validated `WorkflowSpec`."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sflow.schema.checks import check_spec
from sflow.schema.compose import read_and_merge
from sflow.schema.overrides import apply_artifacts, apply_sets
from sflow.schema.problems import Problems
from sflow.schema.static import render_static_fields
from sflow.schema.validation import validate_spec
from sflow.schema.workflow import WorkflowSpec


def load_workflow(
    files: Sequence[str | Path],
    sets: Sequence[str] = (),
    artifacts: Sequence[str] = (),
    missable_tasks: Sequence[str] = (),
) -> WorkflowSpec:
    """Read `files` (merged in order, later wins), apply `--set`/`--artifact`, validate and check.

    `missable_tasks` (names or globs) drops `depends_on` entries naming tasks that no file defines
    and that one of them matches (for workflows assembled from optional parts), with a warning. Mistakes raise `SpecError` naming file:line and field (a
    `SpecErrors` when there are several): first those in the shape of the files and their fields,
    then, once those are right, those in references between parts and in expressions.
    """
    if isinstance(files, (str, Path)):
        files = [files]
    with gc_paused():
        problems = Problems()
        data, locs = read_and_merge(files, problems)
        with problems.collecting():
            apply_sets(data, locs, sets)
            apply_artifacts(data, locs, artifacts)
        spec = validate_spec(data, locs, problems)
        del data  # the raw document is garbage now: free it before the GC comes back
        problems.raise_if_any()
        assert spec is not None
        check_spec(spec, problems, missable_tasks)
        render_static_fields(spec, problems)
        problems.raise_if_any()
    spec.sources = tuple(str(f) for f in files)
    return spec


@contextmanager
def gc_paused() -> Iterator[Callable[[], None]]:
    """Keep the cyclic GC out of loading (and of planning, which makes objects the same way).

    A big workflow allocates millions of acyclic objects; with the GC on, it rescans them again and
    again while finding nothing to free (more than doubling the load time of 100,000 tasks). On the
    way out, `freeze()` + `unfreeze()` moves the survivors straight to the oldest generation, so the
    first collection after loading does not scan them all once more (0.2 s for 100,000 tasks).
    The value is a function that turns the GC back on early (if it was on), for work that turns out
    to leave cycles behind.
    """
    enabled = gc.isenabled()
    gc.disable()

    def resume() -> None:
        if enabled:
            gc.enable()

    try:
        yield resume
    finally:
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()
