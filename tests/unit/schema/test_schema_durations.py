"""parse_duration: the duration forms users write."""

from __future__ import annotations

import pytest

from sflow.schema import parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("2.5", 2.5),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h 30m 10s", 5410.0),
        ("2d", 172800.0),
        ("500ms", 0.5),
        ("1:30", 90.0),
        ("1:30:00", 5400.0),
        ("00:10:00", 600.0),
        ("2-00:00:00", 172800.0),
        ("1-12", 129600.0),
        (" 5m ", 300.0),
        (0, 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "soon", "5x", "-5", -1, "1:xx", True, None, [1], "nan", "inf", "1::2"])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)
