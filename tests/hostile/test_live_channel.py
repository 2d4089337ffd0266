"""The live channel of a training step, as a stranger or a hostile job would use it.

- Its sockets are ipc sockets in a 0700 folder of their own, gone when the step ends.
- A W&B page the job names (in a live message or in W&B's "View run" line) is shown only
  when it is on the configured W&B host.
- colabot's training wrapper reads commands as JSON and acts only on exactly
  ``{"command": "stop"}``: a jsonpickle payload that would run code (sleap-nn's own
  controller decodes with jsonpickle) never runs and training goes on; a near miss does
  nothing; the exact command stops it. Real sleap-nn training on tiny data.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.helpers.engine import WaitForState, notices
from tests.helpers.waiting import eventually
from workers.engine import Engine, EngineSettings
from workers.jobs import Action, JobSpec, JobState, Progress
from workers.kinds.base import (
    LIVE_SOURCE,
    InputSlot,
    JobContext,
    LiveLink,
    Outcome,
    Param,
    Step,
    validate_common,
)
from workers.kinds.plans import REQUEST, write_json
from workers.kinds.registry import KindRegistry
from workers.kinds.sleap.kind import LIVE_LINK, STEP_ENV, TOOLS_MODULE
from workers.kinds.sleap.plan import Request, load_plan
from workers.kinds.sleap.progress import parse_live_message, parse_log
from workers.kinds.sleap.tools.train import IGNORED_NOTE, is_stop, split_live_args
from workers.live import LiveChannel
from workers.safety.environment import step_environment
from workers.store.database import Store

GOOD_LINE_PAGE = "https://wandb.ai/lab/p/runs/from-line"
GOOD_LIVE_PAGE = "https://wandb.ai/lab/p/runs/from-live"
EVIL_PAGE = "https://wandb.evil.example/lab/p/runs/1"

# The step of the kind below: it reports where its sockets are, names W&B pages on another
# host (in live messages and in W&B's own line) until it is asked to stop, then names pages
# on wandb.ai.
LIVE_SCRIPT = f"""
import json, os, stat, sys, zmq
progress, control = sys.argv[-2:]
folder = os.path.dirname(progress.removeprefix("ipc://"))
print("live folder:", folder, oct(stat.S_IMODE(os.stat(folder).st_mode)), flush=True)
print("wandb: View run x at: {EVIL_PAGE}", flush=True)
context = zmq.Context.instance()
out = context.socket(zmq.PUB)
out.connect(progress)
commands = context.socket(zmq.SUB)
commands.subscribe(b"")
commands.connect(control)
sent = 0
while not commands.poll(50):
    sent += 1
    assert sent < 1200, "never asked to stop"
    out.send_string(json.dumps({{"wandb_url": "{EVIL_PAGE}", "n": sent}}))
print("heard:", commands.recv_string(), flush=True)
print("wandb: View run x at: {GOOD_LINE_PAGE}", flush=True)
out.send_string(json.dumps({{"wandb_url": "{GOOD_LIVE_PAGE}", "n": -1}}))
out.close(linger=2000)
"""


def link_parser(source: str, line: str) -> Progress | None:
    """Progress carrying the page a live message names, as a kind's parser would."""
    if source != LIVE_SOURCE:
        return None
    data = json.loads(line)
    return Progress(message=f"message {data['n']}", link=str(data["wandb_url"]))


class LiveKind:
    """A job kind whose one step talks over a live link: a plug-in like any other."""

    name = "live"
    summary = "a step with a live link"
    actions = frozenset({Action.TRAIN})

    def inputs(self, action: Action) -> tuple[InputSlot, ...]:
        return ()

    def params(self, action: Action) -> Mapping[str, Param]:
        return {}

    def validate(self, spec: JobSpec) -> JobSpec:
        return validate_common(spec, (), self.params(spec.action))

    def steps(self, ctx: JobContext) -> Iterator[Step]:
        yield Step(
            "live",
            [ctx.python, "-c", LIVE_SCRIPT],
            parser=link_parser,
            live=LiveLink(args=lambda progress, control: [progress, control], stop_command="stop"),
        )

    def explain_failure(self, ctx: JobContext, step: Step, tail: list[str]) -> str | None:
        return None

    def collect(self, ctx: JobContext) -> Outcome:
        return Outcome(summary="live ran")

    def checkpoint(self, ctx: JobContext) -> Path | None:
        return None

    def plot(
        self, workdir: Path, python: str, dest: Path, compare: Path | None = None
    ) -> Step | None:
        return None


@pytest.fixture
async def live_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """An engine with the live kind only."""
    store = Store(tmp_path / "data")
    engine = Engine(EngineSettings(data_dir=tmp_path / "data"), store, KindRegistry([LiveKind()]))
    await engine.start()
    yield engine
    await engine.stop()
    store.close()


async def test_the_sockets_are_private_and_pages_on_other_hosts_are_not_shown(
    live_engine: Engine, wait_for_state: WaitForState
) -> None:
    engine = live_engine
    seen: list[Progress] = []
    first = asyncio.Event()

    def record(job_id: int, progress: Progress) -> None:
        seen.append(progress)
        first.set()

    engine.on_progress(record)
    job = engine.submit(JobSpec("live", Action.TRAIN, {}, {}))
    await asyncio.wait_for(first.wait(), timeout=30)
    engine.stop_early(job.id)
    done = await wait_for_state(engine, job.id)
    assert done.state is JobState.SUCCEEDED, done.error

    log = engine.log_path(job.id).read_text()
    assert "heard: stop" in log
    folder_line = next(line for line in log.splitlines() if line.startswith("live folder:"))
    _, folder, mode = folder_line.rsplit(" ", 2)
    assert mode == "0o700"
    assert not Path(folder).exists()

    # Output lines and live messages travel on separate pipes, so the two good pages may
    # arrive in either order; each is shown, and no page on another host ever is.
    assert {p.link for p in seen} == {"", GOOD_LINE_PAGE, GOOD_LIVE_PAGE}
    assert seen[0].message.startswith("message ") and seen[0].link == ""
    assert {p.link for p in seen[-2:]} == {GOOD_LINE_PAGE, GOOD_LIVE_PAGE}
    texts = notices(engine, job.id)
    assert f"W&B run: {GOOD_LINE_PAGE}" in texts
    assert not any("evil" in text for text in texts)
    assert "evil" not in done.summary


# ------------------------------------------------------------------- the training wrapper


def marker_payloads(marker: Path) -> list[str]:
    """jsonpickle payloads that create ``marker`` when decoded (as sleap-nn's controller
    decodes every command): a call by reduce, and a shell command."""
    return [
        json.dumps(
            {"py/reduce": [{"py/function": "builtins.open"}, {"py/tuple": [str(marker), "w"]}]}
        ),
        json.dumps(
            {
                "command": "stop",
                "py/reduce": [
                    {"py/function": "os.system"},
                    {"py/tuple": [f"touch {shlex.quote(str(marker))}"]},
                ],
            }
        ),
    ]


NEAR_MISSES = [
    '{"command": "STOP"}',
    '{"command": "stop", "extra": 1}',
    '{"command": "stop "}',
    '{"command": ["stop"]}',
    '"stop"',
    '["stop"]',
    "stop",
    '{"py/object": "builtins.dict", "command": "stop"}',
]


def test_only_exactly_the_stop_command_is_a_stop() -> None:
    assert is_stop(b'{"command": "stop"}') and is_stop(b'{"command":"stop"}')
    assert is_stop(LIVE_LINK.stop_command.encode())
    for text in [*NEAR_MISSES, *marker_payloads(Path("/nonexistent"))]:
        assert not is_stop(text.encode()), text
    assert not is_stop(b'{"command": "stop"}\xff')
    assert not is_stop(b"[" * 100_000)
    assert not is_stop(b'{"command": "stop", ' + b" " * 2000 + b"}")


def test_the_wrapper_takes_only_private_addresses() -> None:
    args = ["train", "c.yaml", *LIVE_LINK.args("ipc:///p/progress", "ipc:///p/control"), "x=1"]
    rest, live = split_live_args(args)
    assert rest == ["train", "c.yaml", "x=1"]
    assert live is not None and (live.progress, live.control) == (
        "ipc:///p/progress",
        "ipc:///p/control",
    )
    assert split_live_args(["train", "c.yaml"]) == (["train", "c.yaml"], None)
    with pytest.raises(ValueError, match="must be an ipc:// address"):
        split_live_args(LIVE_LINK.args("tcp://127.0.0.1:5555", "ipc:///p/control"))
    with pytest.raises(ValueError, match="go together"):
        split_live_args(LIVE_LINK.args("ipc:///p/progress", "ipc:///p/control")[:1])


def test_the_payloads_are_armed(tmp_path: Path) -> None:
    """What the test below sends would run under sleap-nn's own controller (jsonpickle)."""
    for index in range(len(marker_payloads(tmp_path))):
        marker = tmp_path / f"armed-{index}"
        payload = marker_payloads(marker)[index]
        subprocess.run(
            [sys.executable, "-c", "import jsonpickle, sys; jsonpickle.decode(sys.stdin.read())"],
            input=payload,
            text=True,
            check=True,
            timeout=60,
        )
        assert marker.exists(), payload


class Trainer:
    """What a training step sent over its live link: its events, one Event per batch."""

    def __init__(self) -> None:
        self.batches = 0
        self.batch = asyncio.Event()
        self.answer: Callable[[], None] = lambda: None

    def __call__(self, text: str) -> None:
        event = parse_live_message(text)
        if event is not None and event.event == "batch_end":
            self.batches += 1
            self.batch.set()
        self.answer()

    async def batches_after(self, count: int, timeout: float) -> None:
        """Wait until ``count`` more batches have ended."""
        goal = self.batches + count
        while self.batches < goal:
            self.batch.clear()
            await asyncio.wait_for(self.batch.wait(), timeout=timeout)


@pytest.mark.timeout(600)
async def test_a_stranger_command_never_runs_and_only_the_exact_stop_stops(
    tmp_path: Path,
    sleap_data: dict[str, Path],
) -> None:
    job = tmp_path / "job"
    work = job / "work"
    request = Request(
        action="train",
        workdir=str(job),
        inputs={"input": [str(sleap_data["pkg"])]},
        params={"epochs": 100, "steps_per_epoch": 2, "batch": 4, "device": "cpu"},
        overrides={"model_config.backbone_config.unet.filters": "8"},
        cache=str(tmp_path / "cache"),
    )
    write_json(work / REQUEST, request)
    env = step_environment(STEP_ENV)
    prepare = [sys.executable, "-m", TOOLS_MODULE, "prepare", str(work)]
    subprocess.run(prepare, env=env, cwd=work, check=True, capture_output=True, timeout=300)
    plan = load_plan(work)
    assert plan is not None
    model = plan.models[0]

    trainer = Trainer()
    channel = LiveChannel(trainer, near=job)
    channel.start()
    log_path = tmp_path / "train.log"
    argv = [sys.executable, "-m", TOOLS_MODULE, "sleap-nn", "train", model.config]
    argv += LIVE_LINK.args(channel.progress_address, channel.control_address)
    markers = [tmp_path / "ran-by-reduce", tmp_path / "ran-by-system"]
    hostile = [marker_payloads(m)[i] for i, m in enumerate(markers)] + NEAR_MISSES
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=plan.cwd, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        await trainer.batches_after(1, timeout=240)

        def send_hostile() -> None:
            for text in hostile:
                channel.send(text)

        # Sent with every message until the wrapper has noted one (so they reach it), then
        # for a few batches more: every one of them has been read by then.
        trainer.answer = send_hostile

        def heard() -> bool:
            return IGNORED_NOTE in log_path.read_text() or any(m.exists() for m in markers)

        await eventually(heard, timeout=60, what="the wrapper to read a hostile command")
        assert not any(m.exists() for m in markers)
        await trainer.batches_after(4, timeout=60)
        trainer.answer = lambda: None
        await trainer.batches_after(2, timeout=60)
        assert process.returncode is None, log_path.read_text()[-3000:]
        assert not any(m.exists() for m in markers)

        trainer.answer = lambda: channel.send('{"command":"stop"}')
        ended = await asyncio.wait_for(process.wait(), timeout=120)
        assert ended == 0, log_path.read_text()[-3000:]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await channel.close_async()

    assert not any(m.exists() for m in markers)
    output = log_path.read_text()
    assert output.count(IGNORED_NOTE) == 1
    assert "py/reduce" not in output and "ran-by" not in output  # noted without content
    epochs = parse_log((Path(model.run_dir) / "training_log.csv").read_text())
    assert 1 <= len(epochs) < 100
    assert not channel.folder.exists()
