"""cloudpickle that keeps the user's file names, and the source lines to go with them.

A function defined in a script, a notebook or a module registered with
`cloudpickle.register_pickle_by_value` travels *by value*: its code object is rebuilt in
the worker. Recent cloudpickle releases rename such code `<dynamic-code>` (for
reproducible pickles), so a remote traceback would lose the user's file name and, with
it, every source line. Here each code object is pickled wrapped in a call that puts its
`co_filename` back, whatever cloudpickle does with it, and the caller's text of those
files can ride along (`source_texts`) for the worker to put in its `linecache`
(`install_sources`): a worker on a host without the file still prints the user's lines.
"""

from __future__ import annotations

import io
import linecache
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sflow.dispatch import _deps

MAX_SOURCE_CHARS = 1 << 20  # a file larger than this travels without its text


@dataclass(frozen=True)
class Pickled:
    """A pickle and the files of the code objects it carries by value."""

    data: bytes
    files: frozenset[str]


def dumps(obj: Any) -> Pickled:
    """`cloudpickle.dumps(obj)`, with by-value code keeping its file name."""
    buffer = io.BytesIO()
    pickler = _pickler_class()(buffer)
    pickler.dump(obj)
    return Pickled(buffer.getvalue(), frozenset(pickler.files))


def source_texts(files: Iterable[str]) -> dict[str, str]:
    """The caller's text of each file that has one (not `<stdin>`, not a deleted file), within limits."""
    texts: dict[str, str] = {}
    for name in sorted(files):
        text = "".join(linecache.getlines(name))
        if text and len(text) <= MAX_SOURCE_CHARS:
            texts[name] = text
    return texts


def install_sources(texts: Mapping[str, str]) -> None:
    """Make `linecache` (so tracebacks) read these texts for these file names in this process.

    An entry without a modification time is never checked against the disk: the shipped
    text is the code that runs here, whatever a file of that name on this host says.
    """
    for name, text in texts.items():
        linecache.cache[name] = (len(text), None, text.splitlines(keepends=True), name)


def code_with_filename(code: types.CodeType, filename: str) -> types.CodeType:
    """In the worker: `code` (and the code nested in it, already restored) under its own file name."""
    return code.replace(co_filename=filename)


_PICKLER: type | None = None


def _pickler_class() -> type:
    """A `cloudpickle.Pickler` that wraps every code object in `code_with_filename` (made once)."""
    global _PICKLER
    if _PICKLER is None:
        cloudpickle = _deps.cloudpickle()

        class FileNamePickler(cloudpickle.Pickler):  # type: ignore[name-defined]
            def __init__(self, file: io.BytesIO) -> None:
                super().__init__(file, protocol=cloudpickle.DEFAULT_PROTOCOL)
                self.files: set[str] = set()
                # The copies handed to cloudpickle itself: distinct objects, so the pickle memo
                # keeps the wrapped original apart from them; held here so no id is reused.
                self._copies: dict[int, types.CodeType] = {}

            def reducer_override(self, obj: Any) -> Any:
                if type(obj) is types.CodeType and id(obj) not in self._copies:
                    copy = obj.replace()
                    self._copies[id(copy)] = copy
                    self.files.add(obj.co_filename)
                    return code_with_filename, (copy, obj.co_filename)
                return super().reducer_override(obj)

        _PICKLER = FileNamePickler
    return _PICKLER
