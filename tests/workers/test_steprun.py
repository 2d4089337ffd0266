"""One step run on this machine: its log, its line hook, its exit, cancel and timeout."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from tests.helpers.engine import local_run
from tests.helpers.processes import alive
from workers.executors.base import Grace, describe_exit, format_seconds
from workers.waits import Foreground

PY = sys.executable


def script(code: str) -> list[str]:
    return [PY, "-c", code]


async def test_output_goes_to_the_log_and_each_line_to_the_hook(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    run = local_run(
        script(
            "import sys; print('one'); sys.stdout.write('a\\rb\\r\\n'); "
            "print('err', file=sys.stderr)"
        ),
        log_path=tmp_path / "job.log",
        on_line=lambda src, line: seen.append((src, line)),
    )
    result = await run.run()
    assert result.ok and result.returncode == 0
    assert (tmp_path / "job.log").read_bytes() == b"one\na\rb\r\nerr\n"
    assert [line for _, line in seen] == ["one", "a", "b", "err"]
    assert {src for src, _ in seen} == {"output"}
    assert result.tail == ["one", "a", "b", "err"]


async def test_where_the_output_starts_in_the_log_is_recorded_before_any_output(
    tmp_path: Path,
) -> None:
    # A colabot killed before its first later point cuts the log back to the first one and
    # reads the step's output again from there: without it, every line would be logged twice.
    log = tmp_path / "job.log"
    log.write_bytes(b"=== colabot step: test ===\n")
    points: list[tuple[int, int]] = []
    run = local_run(
        script("print('one'); print('two')"),
        log_path=log,
        on_consumed=lambda count, length: points.append((count, length)),
    )
    assert (await run.run()).ok
    assert points[0] == (0, len(b"=== colabot step: test ===\n"))
    assert points[-1] == (len(b"one\ntwo\n"), log.stat().st_size)


async def test_a_flooding_step_waits_while_the_chat_is_answered(tmp_path: Path) -> None:
    # 4 MB of output: far more than one chunk and than a pipe holds, so the step can only
    # end once its output is read, and that stops while the foreground is held.
    foreground = Foreground(max_pause_s=60, max_hold_s=600)
    first = asyncio.Event()
    run = local_run(
        script("import sys\nfor i in range(4096): sys.stdout.write(str(i).rjust(1023) + '\\n')"),
        log_path=tmp_path / "job.log",
        on_line=lambda _src, _line: first.set(),
        foreground=foreground,
    )
    with foreground.held():
        running = asyncio.create_task(run.run())
        await asyncio.wait_for(first.wait(), 30)
        done, _ = await asyncio.wait({running}, timeout=1)
        assert not done, "the output was read on while an answer was in hand"
        assert run.consumed < 4096 * 1024
    result = await asyncio.wait_for(running, 60)
    assert result.ok and run.consumed == 4096 * 1024
    assert result.tail[-1] == "4095".rjust(1023)


async def test_a_failing_hook_does_not_stop_the_run(tmp_path: Path) -> None:
    def hook(source: str, line: str) -> None:
        raise RuntimeError("parser bug")

    result = await local_run(script("print('x')"), log_path=tmp_path / "l", on_line=hook).run()
    assert result.ok


async def test_exit_code_is_explained_with_the_last_lines(tmp_path: Path) -> None:
    result = await local_run(
        script("import sys; print('about to fail'); sys.exit(3)"), log_path=tmp_path / "l"
    ).run()
    assert not result.ok
    assert result.reason == "exited with code 3"
    assert result.tail[-1] == "about to fail"


async def test_signal_death_is_explained(tmp_path: Path) -> None:
    result = await local_run(
        script("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"), log_path=tmp_path / "l"
    ).run()
    assert result.returncode == -signal.SIGSEGV
    assert result.reason == "crashed with a segmentation fault (SIGSEGV)"


async def test_missing_executable_fails_with_that_reason(tmp_path: Path) -> None:
    result = await local_run(["/nonexistent/trainer", "--x"], log_path=tmp_path / "l").run()
    assert not result.started
    assert result.reason == "cannot start '/nonexistent/trainer': executable not found"
    assert "executable not found" in (tmp_path / "l").read_text()


STUBBORN = """
import signal, sys, time
def note(sig, frame):
    print('got', signal.Signals(sig).name, flush=True)
signal.signal(signal.SIGINT, note)
signal.signal(signal.SIGTERM, note)
print('ready', flush=True)
while True:
    time.sleep(0.05)
"""


async def test_cancel_escalates_sigint_sigterm_sigkill(tmp_path: Path) -> None:
    ready = asyncio.Event()
    run = local_run(
        script(STUBBORN),
        log_path=tmp_path / "l",
        on_line=lambda s, line: ready.set() if line == "ready" else None,
        grace=Grace(after_interrupt=0.5, after_terminate=0.5),
    )
    task = asyncio.create_task(run.run())
    await asyncio.wait_for(ready.wait(), 10)
    run.cancel()
    result = await asyncio.wait_for(task, 10)
    assert result.cancelled and result.reason == "cancelled"
    assert result.returncode == -signal.SIGKILL
    assert [line for line in result.tail if line.startswith("got")] == ["got SIGINT", "got SIGTERM"]


GRANDPARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
print('child', child.pid, flush=True)
time.sleep(60)
"""


async def test_cancel_reaches_the_whole_process_group(tmp_path: Path) -> None:
    child_pid: list[int] = []
    seen = asyncio.Event()

    def hook(source: str, line: str) -> None:
        if line.startswith("child "):
            child_pid.append(int(line.split()[1]))
            seen.set()

    run = local_run(
        script(GRANDPARENT), log_path=tmp_path / "l", on_line=hook, grace=Grace(1.0, 1.0)
    )
    task = asyncio.create_task(run.run())
    await asyncio.wait_for(seen.wait(), 10)
    run.cancel()
    await asyncio.wait_for(task, 10)
    # SIGKILL is delivered at once but the kernel tears the process down a moment later.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while alive(child_pid[0]) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert not alive(child_pid[0])


async def test_timeout_stops_the_process_and_says_so(tmp_path: Path) -> None:
    result = await local_run(
        script("import time; time.sleep(30)"),
        log_path=tmp_path / "l",
        timeout_s=0.3,
        grace=Grace(1.0, 1.0),
    ).run()
    assert result.timed_out and not result.cancelled
    assert result.reason == "timed out after 0s"


async def test_watched_file_lines_reach_the_hook(tmp_path: Path) -> None:
    csv = tmp_path / "log.csv"
    seen: list[tuple[str, str]] = []
    code = (
        f"import time\nfor i in range(3):\n"
        f"    open({str(csv)!r}, 'a').write(f'{{i}},0.5\\n')\n    time.sleep(0.3)\n"
    )
    result = await local_run(
        script(code),
        log_path=tmp_path / "l",
        watch=[csv],
        on_line=lambda s, line: seen.append((s, line)),
    ).run()
    assert result.ok
    assert seen == [("log.csv", "0,0.5"), ("log.csv", "1,0.5"), ("log.csv", "2,0.5")]


async def test_large_output_is_complete_in_the_log(tmp_path: Path) -> None:
    count = 0

    def hook(source: str, line: str) -> None:
        nonlocal count
        count += 1

    code = "import sys\nline = b'y' * 99 + b'\\n'\nsys.stdout.buffer.write(line * 200_000)"
    result = await local_run(script(code), log_path=tmp_path / "l", on_line=hook).run()
    assert result.ok
    assert (tmp_path / "l").stat().st_size == 100 * 200_000
    assert count == 200_000


def test_a_line_without_end_is_handed_over_in_bounded_pieces(tmp_path: Path) -> None:
    lengths: list[int] = []
    run = local_run(
        script("import sys; sys.stdout.write('z' * 100000)"),
        log_path=tmp_path / "l",
        on_line=lambda s, line: lengths.append(len(line)),
    )
    assert asyncio.run(run.run()).ok
    assert max(lengths) <= 8 * 1024 and sum(lengths) >= 100000 - 8 * 1024


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, None),
        (1, "exited with code 1"),
        (127, "exited with code 127: a command was not found"),
        (-9, "killed (SIGKILL), often the kernel's out-of-memory killer"),
        (None, "ended without an exit status"),
    ],
)
def test_describe_exit(code: int | None, expected: str | None) -> None:
    assert describe_exit(code) == expected


def test_describe_exit_prefers_timeout_and_cancel() -> None:
    assert describe_exit(-2, cancelled=True) == "cancelled"
    assert describe_exit(-9, timed_out=3700) == "timed out after 1h 1m"


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (5, 75, 3700)] == ["5s", "1m 15s", "1h 1m"]
