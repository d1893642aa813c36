"""Reading the end of a log: a cut starts at a line, a missing file is no text, blank ends are dropped."""

from __future__ import annotations

from pathlib import Path

from sflow.record.tail import last_lines, read_end


def test_read_end_starts_at_a_line_when_it_cuts(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text("first line\nsecond\nthird\n")
    assert read_end(path, 13) == "third\n"  # "second\nthird\n" is 13 bytes but starts mid-file
    assert read_end(path, 1000) == "first line\nsecond\nthird\n"


def test_missing_or_no_file_is_none(tmp_path: Path) -> None:
    assert read_end(tmp_path / "missing.log", 100) is None
    assert read_end(None, 100) is None
    assert last_lines(tmp_path / "missing.log", 5) == []


def test_last_lines_leaves_out_trailing_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text("".join(f"line {i}\n" for i in range(30)) + "\n\n")
    assert last_lines(path, 3) == ["line 27", "line 28", "line 29"]


def test_bad_bytes_are_replaced_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"ok\n\xff\xfe broken\n")
    assert last_lines(path, 1) == ["\ufffd\ufffd broken"]
