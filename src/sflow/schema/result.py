"""A task's `result`: metrics parsed from its log, or read from a JSON file it wrote (nv-sflow's field).

Three shapes: a map of name to regex (`ttft: 'TTFT: ([0-9.]+)'`), `patterns: [...]` with a type,
an aggregate, a unit and `required`, or `file: <name>.json`. The run writes the task's
`result.json` and the workflow's `results.json` (`docs/results.md`).
"""

from typing import Any, Literal

from sflow.schema.base import FieldError, SpecModel
from sflow.schema.fieldtypes import compile_regex

Aggregate = Literal["first", "last", "list", "count", "min", "max", "avg", "sum"]
ResultType = Literal["auto", "string", "int", "float", "bool", "json"]
_SHAPE_KEYS = frozenset({"source", "patterns", "file"})


class ResultPattern(SpecModel):
    """One metric: the regex's group (`group`, else `value`, else 1) of its matches, aggregated."""

    name: str
    regex: str
    type: ResultType = "auto"
    aggregate: Aggregate = "last"
    unit: str | None = None
    required: bool = False
    group: int | str | None = None

    def validate(self) -> None:
        try:
            compile_regex(self.regex)
        except ValueError as exc:
            raise FieldError("regex", str(exc)) from None


class Result(SpecModel):
    """`patterns` (from the task's log) or `file` (a JSON the task wrote), not both."""

    source: Literal["log"] = "log"
    patterns: list[ResultPattern] = []
    file: str | None = None

    @staticmethod
    def before(data: Any) -> Any:
        """`{name: regex, ...}` is `patterns` with every default."""
        if isinstance(data, dict) and data and not set(data) & _SHAPE_KEYS:
            return {"patterns": [{"name": k, "regex": v} for k, v in data.items()]}
        return data

    def validate(self) -> None:
        if self.file is not None and self.patterns:
            raise ValueError("give 'patterns' or 'file', not both")
        if self.file is None and not self.patterns:
            raise ValueError("give 'patterns', 'file', or a map of names to regular expressions")
        if self.file is not None and not self.file.endswith(".json") and "${{" not in self.file:
            raise ValueError(f"file must be a .json file, got {self.file!r}")
