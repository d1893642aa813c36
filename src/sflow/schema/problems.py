"""The mistakes found in one pass over the workflow files, reported together.

A user fixing a file wants every mistake at once, not one per run. Each stage of loading (the
shape of the sections, the fields, the references between them) adds what it finds to a
`Problems` and raises them together at its end, the first `LIMIT` in file order.

A misspelled required key is two complaints to a validator (`scirpt` is unknown and `script` is
missing); the unknown one, which names the likely fix, is enough. `add(..., suggests=...)` records
which field a complaint suggests, and `add_missing` drops a "missing" complaint about that field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sflow.errors import SpecError, SpecErrors

LIMIT = 20
"""How many mistakes one report shows; the rest are counted."""


class Problems:
    """Collects `SpecError`s; `raise_if_any()` raises the one, or a `SpecErrors` of all of them."""

    def __init__(self) -> None:
        self._errors: list[SpecError] = []
        self._missing: list[SpecError] = []
        self._suggested: set[str] = set()
        self._seen: set[tuple[str | None, str | None, str]] = set()
        self._dropped = 0

    def __bool__(self) -> bool:
        return bool(self._errors or self._missing or self._dropped)

    def add(self, error: SpecError, suggests: str | None = None) -> None:
        """Record a mistake; `suggests` is the dotted path of the field its message proposes.

        The same mistake at the same place (a script shared by many replicas) is recorded once."""
        if suggests is not None:
            self._suggested.add(suggests)
        key = (error.where, error.field, error.message)
        if key in self._seen:
            return
        self._seen.add(key)
        if len(self._errors) < LIMIT:
            self._errors.append(error)
        else:
            self._dropped += 1

    def add_missing(self, error: SpecError) -> None:
        """Record a missing required field (`error.field`), unless a misspelling of it was reported."""
        self._missing.append(error)

    def more(self, count: int) -> None:
        """Count `count` further mistakes that are not worth describing one by one."""
        self._dropped += max(count, 0)

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        """Record a `SpecError` raised inside the block instead of letting it through."""
        try:
            yield
        except SpecErrors as errors:
            for error in errors.errors:
                self.add(error)
            self._dropped += errors.total - len(errors.errors)
        except SpecError as error:
            self.add(error)

    def raise_if_any(self) -> None:
        """Raise what was found: a single `SpecError` as is, several as one `SpecErrors`."""
        missing = [e for e in self._missing if e.field not in self._suggested]
        errors = _in_file_order([*self._errors, *missing])
        total = len(errors) + self._dropped
        if total == 1:
            raise errors[0]
        if total:
            raise SpecErrors(errors[:LIMIT], total)


def _in_file_order(errors: list[SpecError]) -> list[SpecError]:
    """Sorted by file (in the order the files first appear) and line; unlocated ones first."""
    files: dict[str, int] = {}
    keys = []
    for position, error in enumerate(errors):
        file, _, line = (error.where or "").rpartition(":")
        if not line.isdigit():
            file, line = error.where or "", "0"
        rank = files.setdefault(file, len(files)) if error.where else -1
        keys.append((rank, int(line), position))
    return [errors[key[2]] for key in sorted(keys)]
