"""examples/colab_quickstart.ipynb, the notebook users open in Colab: as committed (valid,
no outputs, a GPU runtime, its form), and run cell by cell on a real Jupyter kernel outside
Colab, against the emulated Telegram, the way a person runs it on their own machine."""

from __future__ import annotations

import ast
import asyncio
import html
import importlib.util
import json
import re
from pathlib import Path
from typing import Any, cast

import nbformat
import psutil
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell

from bot.commands import parse_submit
from emulator import BotApiEmulator
from tests.helpers.chat import Person
from tests.helpers.cli import ROOT, colabot_env
from tests.helpers.processes import alive
from tests.helpers.waiting import eventually
from workers.engine import Engine
from workers.jobs import Action, JobSpec

NOTEBOOK = ROOT / "examples" / "colab_quickstart.ipynb"
FORM = {"INSTALL", "COMPUTE_UNITS", "DATA_FOLDER", "DRIVE_FOLDER_ID", "RUN_SLEAP", "RUN_SPACY"}
FORM_LINE = re.compile(r"^(?P<name>[A-Z_]+) = (?P<value>.*?)  # @param (?P<spec>\{.*\})$", re.M)
CELL_TIMEOUT_S = 120

LEFTOVERS = """
import json, os, psutil
print("LEFTOVERS " + json.dumps({
    "kernel": os.getpid(),
    "children": [p.pid for p in psutil.Process().children(recursive=True)],
}))
"""
"""A cell the test adds after the notebook's last (stop): what the kernel still runs."""


def read_notebook() -> NotebookNode:
    nb = nbformat.read(NOTEBOOK, as_version=nbformat.NO_CONVERT)  # type: ignore[no-untyped-call]
    return cast(NotebookNode, nb)


def code_cell(source: str) -> NotebookNode:
    return cast(NotebookNode, new_code_cell(source))  # type: ignore[no-untyped-call]


def form_fields(nb: NotebookNode) -> dict[str, str]:
    """The Colab form: each ``NAME = value  # @param {...}`` line, by name."""
    return {
        match["name"]: match["value"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for match in FORM_LINE.finditer(cell.source)
    }


def fill_form(nb: NotebookNode, **values: object) -> None:
    """Answer the form as a person does in Colab: the line's value changes, nothing else."""
    for name, value in values.items():
        line = re.compile(rf"^{name} = .*?(?=  # @param )", re.M)
        cells = [c for c in nb.cells if c.cell_type == "code" and line.search(c.source)]
        assert len(cells) == 1, f"form field {name} is not in exactly one cell"
        cells[0].source = line.sub(f"{name} = {value!r}", cells[0].source)


def text_of(cell: NotebookNode) -> str:
    """All a cell showed: its streams and results as text."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def bar_text(nb: NotebookNode, cell: NotebookNode) -> str:
    """What the progress bars said: the notebook widgets' last words (nbclient keeps their
    state), else the text bars the cell wrote to stderr."""
    saved = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    widgets: list[dict[str, Any]] = list(saved.get("state", {}).values())
    words = [str(w["state"]["value"]) for w in widgets if w["model_name"] == "HTMLModel"]
    if words:
        return html.unescape(" ".join(words)).replace("\u2007", " ")
    streams = [o.text for o in cell.outputs if o.get("name") == "stderr"]
    return "".join(streams).replace("\r", "\n")


def cell_with(nb: NotebookNode, code: str) -> NotebookNode:
    """The one code cell holding ``code``."""
    found: list[NotebookNode] = [c for c in nb.cells if c.cell_type == "code" and code in c.source]
    assert len(found) == 1, f"{code!r} is in {len(found)} cells"
    return found[0]


def test_the_committed_notebook_is_valid_and_carries_no_outputs() -> None:
    nb = read_notebook()
    nbformat.validate(nb)
    assert nb.nbformat == 4
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    for cell in code:
        assert cell.outputs == [], f"outputs stored in cell {cell.id}"
        assert cell.execution_count is None, f"an execution count stored in cell {cell.id}"
    # Colab opens it on a GPU runtime, with a Python kernel.
    assert nb.metadata["accelerator"] == "GPU"
    assert nb.metadata["colab"]["gpuType"] == "T4"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    # The form's fields, each with a plain literal that Colab's form can show.
    fields = form_fields(nb)
    assert set(fields) == FORM
    assert fields["COMPUTE_UNITS"] == "False"
    assert fields["RUN_SLEAP"] in ("True", "False") and fields["RUN_SPACY"] in ("True", "False")
    assert fields["DRIVE_FOLDER_ID"] == '""'
    # No secret ever sits in a cell: the token comes from Colab's secrets.
    assert not any(re.search(r"\d{6,}:[A-Za-z0-9_-]{20,}", c.source) for c in code)


def job_calls(nb: NotebookNode) -> list[tuple[Action, list[str]]]:
    """Each ``notebook.train(...)`` and ``notebook.infer(...)`` in the cells, as the
    arguments of the chat's /train or /infer (bools as yes and no, as the notebook gives
    them)."""

    def text(node: ast.expr) -> str:
        value = ast.literal_eval(node)
        return ("yes" if value else "no") if isinstance(value, bool) else str(value)

    found = []
    for cell in nb.cells:
        if cell.cell_type != "code" or "notebook." not in cell.source:
            continue
        flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        tree = compile(cell.source, "<cell>", "exec", flags=flags)
        for node in ast.walk(tree):
            match node:
                case ast.Call(
                    func=ast.Attribute(value=ast.Name(id="notebook"), attr="train" | "infer")
                ):
                    assert isinstance(node.func, ast.Attribute)
                    arguments = [text(arg) for arg in node.args]
                    arguments += [f"{k.arg}={text(k.value)}" for k in node.keywords]
                    found.append((Action(node.func.attr), arguments))
    return found


def test_the_jobs_the_notebook_starts_pass_colabots_checks(engine: Engine) -> None:
    """The SLEAP and spaCy cells are not run here (they take minutes): their jobs are
    checked as /train checks them, so a renamed setting cannot break them unseen."""
    calls = job_calls(read_notebook())
    assert sorted(arguments[0] for _, arguments in calls) == ["selftest", "sleap", "spacy"]
    for action, arguments in calls:
        request = parse_submit(action, arguments, engine.registry, has_document=False)
        engine.check(JobSpec(request.kind, action, dict(request.inputs), dict(request.params)))


async def test_the_quickstart_runs_outside_colab_and_stops_clean(
    emu: BotApiEmulator, person: Person, tmp_path: Path
) -> None:
    nb = read_notebook()
    # A person on their own machine: no frameworks to try, only the selftest job.
    fill_form(nb, RUN_SLEAP=False, RUN_SPACY=False)
    nb.cells.append(code_cell(LEFTOVERS))
    home, env = kernel_home(tmp_path, emu)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(home)}},
    )
    # Raises CellExecutionError (with the cell and its traceback) when any cell fails.
    await client.async_execute(env=env)

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    assert "Not on Colab" in text_of(cell_with(nb, "INSTALL = "))
    settings = text_of(cell_with(nb, "COMPUTE_UNITS = "))
    assert f"data folder: {home / 'data'}" in settings
    assert "jobs from the chat: false" in settings
    assert "GPU:" in text_of(cell_with(nb, "read_facts("))
    started = text_of(cell_with(nb, "await notebook.start()"))
    assert "colabot is running (companion mode" in started
    assert str(home / "data" / "colabot.log") in started
    assert "succeeded - selftest train: 5 steps" in text_of(cell_with(nb, '"selftest"'))
    # wait() drew a bar (tqdm's notebook widget, as in Colab, or its text bar where
    # ipywidgets is missing), full and saying how the job ended.
    bar = bar_text(nb, cell_with(nb, '"selftest"'))
    assert "#1 selftest train: 100%" in bar and "succeeded" in bar

    # The chat saw the job from the cell start and finish, in the allowed user's chat.
    status = await person.next_message("#1 selftest train")
    assert "selftest train: 5 steps" in ((await person.next_message("finished")).text or "")
    final = emu.message(person.user_id, status.message_id or 0) or {}
    assert "succeeded" in final.get("text", "")
    assert [c for c in emu.calls if c.status == 409] == []
    assert (home / "data" / "colabot.log").stat().st_size > 0

    # Stopping left nothing running.
    await nothing_left_running(nb.cells[-1], tmp_path)


async def test_interrupting_a_waiting_cell_keeps_the_job_and_the_bot(
    emu: BotApiEmulator, person: Person, tmp_path: Path
) -> None:
    """The kernel's interrupt (the stop button) while a cell waits for a job: the cell says
    the job keeps running and how to stop it, and the bot still answers and stops it."""
    home, env = kernel_home(tmp_path, emu)
    nb = read_notebook()  # its metadata (kernel, Colab), with cells of this test's own
    nb.cells = [
        code_cell(source)
        for source in (
            "from bot import notebook\n\ncolabot = await notebook.start()",
            'job = await notebook.train("selftest", steps=2000, delay=0.05)\n'
            "await notebook.wait(job)",
            "print(colabot.running, colabot.engine.job(job).state)",
            "await notebook.stop()",
            LEFTOVERS,
        )
    ]
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        allow_errors=True,
        resources={"metadata": {"path": str(home)}},
    )
    async with client.async_setup_kernel(env=env):
        await client.async_execute_cell(nb.cells[0], 0)
        waiting = asyncio.create_task(client.async_execute_cell(nb.cells[1], 1))
        # The bot announces the job once the cell has handed the loop over: it waits.
        status = await person.next_message("#1 selftest train")
        if "· running" not in (status.text or ""):  # posted before it ran: edited to it
            running = await person.next_edit("running", timeout=60)
            assert running.message_id == status.message_id
        assert isinstance(client.km, AsyncKernelManager)
        await client.km.interrupt_kernel()
        await asyncio.wait_for(waiting, CELL_TIMEOUT_S)
        assert "#1 selftest train: running" in ((await person.say("/status 1")).text or "")
        for index in range(2, len(nb.cells)):
            await client.async_execute_cell(nb.cells[index], index)

    told = text_of(nb.cells[1])
    assert "Stopped waiting; #1 keeps running. Stop one early with /stop <id>" in told
    assert [o.ename for o in nb.cells[1].outputs if o.output_type == "error"] == ["CancelledError"]
    assert text_of(nb.cells[2]) == "True running\n"
    assert [o for c in nb.cells[2:] for o in c.outputs if o.output_type == "error"] == []
    await person.next_message("#1 selftest train was interrupted", timeout=60)
    await nothing_left_running(nb.cells[-1], tmp_path)


def kernel_home(tmp_path: Path, emu: BotApiEmulator) -> tuple[Path, dict[str, str]]:
    """The kernel's home and working folder, and its environment: a bot on the emulator for
    its allowed user, its data and results under that home."""
    home = tmp_path / "home"
    home.mkdir()
    return home, colabot_env(home, emu.url, emu.token)


async def nothing_left_running(leftovers_cell: NotebookNode, tmp_path: Path) -> None:
    """After the stop cell no child of the kernel ran, and once nbclient shut the kernel
    down, neither it nor any process working in this test's folders runs."""
    leftovers = json.loads(text_of(leftovers_cell).partition("LEFTOVERS ")[2])
    assert leftovers["children"] == []
    await eventually(lambda: not alive(leftovers["kernel"]), what="the kernel to exit")
    await eventually(lambda: not _processes_using(tmp_path), what="no process in tmp_path")


def _processes_using(folder: Path) -> list[str]:
    """Processes whose command line names a path in ``folder``."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(folder) in cmdline and alive(process.info["pid"]):
            found.append(f"{process.info['pid']}: {cmdline}")
    return found


def test_the_committed_notebook_is_what_its_generator_writes() -> None:
    generator = ROOT / "examples" / "make_colab_quickstart.py"
    spec = importlib.util.spec_from_file_location("make_colab_quickstart", generator)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = nbformat.writes(module.build()) + "\n"  # type: ignore[no-untyped-call]
    assert written == (ROOT / "examples" / "colab_quickstart.ipynb").read_text()
