"""Reading the end of a log: a cut starts at a line, a missing file is no text, blank ends are dropped."""

from __future__ import annotations

from pathlib import Path

from sflow.record.tail import SHOWN_LINE_CHARS, last_lines, printable, read_end


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


def test_printable_drops_escape_sequences_and_spells_out_controls() -> None:
    assert printable("\x1b]0;pwned\x07title set") == "title set"  # OSC: window title
    assert printable("\x1b]8;;http://x\x1b\\link") == "link"  # OSC ended by ST
    assert printable("\x1b[2J\x1b[Hcleared") == "cleared"  # CSI: clear screen, home
    assert printable("\x1b[1;31mred\x1b[0m") == "red"
    assert printable("\x9b2Jc1 form") == "c1 form"
    assert printable("bell\x07 back\x08 cr\r esc\x1b") == "bell\\x07 back\\x08 cr\\x0d esc"
    assert printable("tab\tkept, ünïcödé kept") == "tab\tkept, ünïcödé kept"


def test_printable_cuts_long_lines_and_says_so() -> None:
    shown = printable("x" * 65536)
    assert shown == "x" * SHOWN_LINE_CHARS + f"... [{65536 - SHOWN_LINE_CHARS} more characters in the log]"
    assert printable("short") == "short"
