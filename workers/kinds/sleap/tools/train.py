"""sleap-nn's command line with colabot's own live link in place of sleap-nn's ZMQ callbacks:
``python -m workers.kinds.sleap.tools sleap-nn train CONFIG [key=value ...]
[--colabot-progress=ipc://... --colabot-control=ipc://...]``.

sleap-nn's training controller decodes each command with jsonpickle, which runs whatever
code the message names, and both its callbacks connect to ``tcp://127.0.0.1`` ports, which
any local user can reach or bind once colabot has let them go. So the wrapper takes its own
two arguments out before sleap-nn reads the rest, drops every ZMQ callback sleap-nn builds
(a config that names ports of its own gets none), and adds colabot's, connected only to the
``ipc://`` sockets colabot gave (see ``workers.live``):

- a controller that reads commands as JSON and acts on exactly ``{"command": "stop"}``;
  anything else is ignored, and noted once without its content. It checks for a command
  after every training batch without waiting: sleap-nn's waited 10 ms each time nothing came,
  which added 2 to 6 s per 200 steps here, and a fast GPU batch takes little more than that.
  A poll that does not wait hears the same commands, since they queue on the socket.
- a progress reporter with sleap-nn's own events, sent as plain JSON.

Everything else is sleap-nn's own: its command line, its other callbacks, its training.
Runs in job subprocesses only (it imports sleap-nn, which imports torch).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from workers.kinds.sleap.kind import CONTROL_FLAG, PROGRESS_FLAG, STOP_COMMAND

POLL_MS = 0
MAX_COMMAND_BYTES = 1024
COMMANDS_PER_CHECK = 64
LIVE_SCHEME = "ipc://"
IGNORED_NOTE = (
    "colabot: ignored a control message that is not exactly "
    f"{json.dumps(STOP_COMMAND)} (further ones are ignored without a note)"
)


@dataclass(frozen=True)
class LiveAddresses:
    """Where colabot listens for progress and publishes commands."""

    progress: str
    control: str


def split_live_args(args: list[str]) -> tuple[list[str], LiveAddresses | None]:
    """sleap-nn's arguments, and colabot's live addresses taken out of them (None when not
    given). ValueError for an address that is not a private ``ipc://`` socket, or only one."""
    rest: list[str] = []
    found: dict[str, str] = {}
    for arg in args:
        flag, equals, value = arg.partition("=")
        if equals and flag in (PROGRESS_FLAG, CONTROL_FLAG):
            if not value.startswith(LIVE_SCHEME) or len(value) == len(LIVE_SCHEME):
                raise ValueError(f"{flag} must be an {LIVE_SCHEME} address")
            found[flag] = value
        else:
            rest.append(arg)
    if not found:
        return rest, None
    if len(found) != 2:
        raise ValueError(f"{PROGRESS_FLAG} and {CONTROL_FLAG} go together")
    return rest, LiveAddresses(found[PROGRESS_FLAG], found[CONTROL_FLAG])


def is_stop(data: bytes) -> bool:
    """Whether a command is exactly ``{"command": "stop"}`` (read as JSON, nothing else)."""
    if len(data) > MAX_COMMAND_BYTES:
        return False
    try:
        return bool(json.loads(data.decode("utf-8")) == STOP_COMMAND)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


def live_callbacks(live: LiveAddresses) -> list[Any]:
    """colabot's controller and progress reporter, connected to ``live``."""
    import zmq
    from lightning.pytorch.callbacks import Callback
    from sleap_nn.training import callbacks

    base: Any = Callback
    reporter: Any = callbacks.ProgressReporterZMQ

    def close(socket: Any) -> None:
        if socket is not None and not socket.closed:
            socket.close(linger=0)

    class StopListener(base):  # type: ignore[misc]
        """Ends training at the end of the batch that hears exactly the stop command."""

        def __init__(self, address: str) -> None:
            super().__init__()
            self.address = address
            self.noted = False
            self.socket: Any = zmq.Context.instance().socket(zmq.SUB)
            self.socket.setsockopt(zmq.LINGER, 0)
            self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_COMMAND_BYTES)
            self.socket.subscribe(b"")
            self.socket.connect(address)

        def heard_stop(self) -> bool:
            """Read what has come (without waiting); whether a stop was among it."""
            stop = False
            for _ in range(COMMANDS_PER_CHECK):
                if not self.socket.poll(POLL_MS, zmq.POLLIN):
                    break
                if is_stop(self.socket.recv(zmq.NOBLOCK)):
                    stop = True
                elif not self.noted:
                    self.noted = True
                    print(IGNORED_NOTE, file=sys.stderr, flush=True)
            return stop

        def on_train_batch_end(self, trainer: Any, *_args: Any, **_kwargs: Any) -> None:
            """Check for a stop; every rank then learns rank 0's decision."""
            if trainer.is_global_zero and self.heard_stop():
                trainer.should_stop = True
            trainer.should_stop = trainer.strategy.reduce_boolean_decision(
                trainer.should_stop, all=False
            )

        def teardown(self, *_args: Any, **_kwargs: Any) -> None:
            """Close the socket when the run ends."""
            close(self.socket)

        def on_exception(self, *_args: Any, **_kwargs: Any) -> None:
            """Close the socket when the run fails (Lightning skips ``teardown`` then)."""
            close(self.socket)

        def __del__(self) -> None:
            close(getattr(self, "socket", None))

    class ProgressPublisher(reporter):  # type: ignore[misc]
        """sleap-nn's progress events, sent as plain JSON to colabot's socket."""

        def __init__(self, address: str) -> None:
            base.__init__(self)  # not sleap-nn's: it connects where the config says
            self.address = address
            self.what = ""
            self.context: Any = zmq.Context.instance()
            self.socket: Any = self.context.socket(zmq.PUB)
            self.socket.connect(address)

        def send(self, event: str, logs: Any = None, **kwargs: Any) -> None:
            """Publish one event."""
            message = dict(what=self.what, event=event, logs=logs, **kwargs)
            self.socket.send_string(json.dumps(message, default=str))

        def on_train_batch_start(self, *_args: Any, **_kwargs: Any) -> None:
            """Nothing: colabot reads nothing from a batch's start."""

    return [StopListener(live.control), ProgressPublisher(live.progress)]


def use_colabot_callbacks(live: LiveAddresses | None) -> None:
    """Make sleap-nn's trainer use colabot's live callbacks (none when ``live`` is None) and
    never its own ZMQ ones."""
    from sleap_nn.training import callbacks, model_trainer

    trainer: Any = model_trainer.ModelTrainer
    original = getattr(trainer, "_setup_loggers_callbacks", None)
    if original is None:
        raise RuntimeError(
            "this sleap-nn has no ModelTrainer._setup_loggers_callbacks: colabot's training "
            "wrapper must be updated for it"
        )
    theirs = (callbacks.TrainingControllerZMQ, callbacks.ProgressReporterZMQ)

    def setup(self: Any, *args: Any, **kwargs: Any) -> tuple[list[Any], list[Any]]:
        loggers, found = original(self, *args, **kwargs)
        kept = []
        for callback in found:
            if isinstance(callback, theirs):
                socket = getattr(callback, "socket", None)
                if socket is not None and not socket.closed:
                    socket.close(linger=0)
            else:
                kept.append(callback)
        return loggers, kept + (live_callbacks(live) if live is not None else [])

    trainer._setup_loggers_callbacks = setup


def run_sleap_nn(args: list[str]) -> None:
    """Run sleap-nn's command line with ``args`` (it exits the process itself)."""
    try:
        args, live = split_live_args(args)
    except ValueError as exc:
        raise SystemExit(f"sleap_tools: error: {exc}") from None
    if args[:1] == ["train"]:
        use_colabot_callbacks(live)
    from sleap_nn.cli import cli

    sys.argv = ["sleap-nn", *args]
    cli(prog_name="sleap-nn")
