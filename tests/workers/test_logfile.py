from __future__ import annotations

from pathlib import Path

from workers.logfile import BLOCK, CUT_MARK, short_tail_lines, tail_lines


def test_tail_lines_reads_the_end(tmp_path: Path) -> None:
    log = tmp_path / "l"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert tail_lines(log, 3) == ["line 99997", "line 99998", "line 99999"]
    assert tail_lines(tmp_path / "missing", 3) == []


def test_a_short_tail_is_read_from_the_last_block_as_tail_lines_reads_it(tmp_path: Path) -> None:
    log = tmp_path / "l"
    log.write_text("".join(f"line {i}\r" if i % 2 else f"line {i}\n" for i in range(100_000)))
    assert short_tail_lines(log, 8) == tail_lines(log, 8)
    assert short_tail_lines(log, 8) == [f"line {i}" for i in range(99_992, 100_000)]
    small = tmp_path / "small"
    small.write_text("one\n\ntwo")
    assert short_tail_lines(small, 8) == tail_lines(small, 8) == ["one", "two"]
    assert short_tail_lines(tmp_path / "missing", 3) == []


def test_a_tail_beyond_the_last_block_is_left_to_tail_lines(tmp_path: Path) -> None:
    log = tmp_path / "l"
    log.write_text("first\n" + "x" * (3 * BLOCK) + "\nlast\n")
    assert short_tail_lines(log, 2) is None
    whole = tail_lines(log, 2)
    assert whole[0].startswith(CUT_MARK + "xxx") and whole[1] == "last"
    # One line: it lies within the block.
    assert short_tail_lines(log, 1) == ["last"]
