"""Fingerprints: a short digest of what decides a task's result.

A resumed run keeps a task's earlier result only when its fingerprint is unchanged. A task's
fingerprint covers its own definition and the fingerprints of what it depends on, so an edit
reaches everything downstream of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

DIGITS = 32  # hex digits kept: 128 bits, far beyond any chance collision


def digest(value: Any) -> str:
    """A stable digest of JSON-like data (mapping order does not matter; other values by `repr`)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGITS]


def chain(own: Mapping[str, str], deps: Mapping[str, Iterable[str]], order: Iterable[str]) -> dict[str, str]:
    """Each task's fingerprint: its own digest combined with those of its dependencies.

    `order` lists every task after its dependencies (a topological order).
    """
    out: dict[str, str] = {}
    for name in order:
        upstream = sorted(out[d] for d in deps.get(name, ()))
        out[name] = digest([own[name], upstream]) if upstream else own[name]
    return out
