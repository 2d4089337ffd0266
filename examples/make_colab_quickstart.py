"""Write examples/colab_quickstart.ipynb, with no outputs: the notebook's one source.

Run ``python examples/make_colab_quickstart.py`` from the repository root after changing a
cell here; the tests check that the committed notebook is what this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).with_name("colab_quickstart.ipynb")

cells: list[Any] = []


def md(text: str) -> None:
    """Add a text cell."""
    cells.append(new_markdown_cell(text.strip("\n")))


def code(text: str) -> None:
    """Add a code cell."""
    cells.append(new_code_cell(text.strip("\n")))


md("""
# colabot on Colab: quick start

colabot runs beside this runtime's GPU and talks to you on Telegram: it runs SLEAP and spaCy
training and inference, shows their progress, warns before the runtime is taken away, and
copies results and checkpoints off the runtime in time. Jobs start from the cells below, and,
on runtimes where Colab allows it, from the chat too.

**Colab's rules.** Colab's FAQ says that on runtimes "running free of charge, without a
positive Colab compute unit balance", these are disallowed, and such runtimes "may be
terminated at any time without warning": "remote control such as SSH shells, remote
desktops", "bypassing the notebook UI to interact primarily via a web UI", and "running
distributed computing workers". So on the free tier colabot runs in **companion mode**: jobs
start from this notebook's cells, and the chat follows them (status, logs, plots, stop,
cancel, results, warnings). With compute units you may also start jobs from the chat.

colabot cannot keep a runtime alive and does not try: a runtime still ends after at most 12
hours, or about 90 minutes after the browser is closed. colabot warns early, saves
checkpoints and results off the machine, and resumes on the next runtime.

**You need:** a bot token from @BotFather as a Colab secret named `TELEGRAM_TOKEN`, and your
Telegram user id (ask @userinfobot) as a secret named `TELEGRAM_USER_ID` (the key icon on the
left; turn on "Notebook access" for both). The notebook asks for a GPU runtime (Runtime ›
Change runtime type shows it).
""")
md("""
## 1. Install

`INSTALL` is where colabot comes from: a `git+https://…` URL of its repository, a wheel, or
a folder (for example a copy in your Drive). To make a wheel for Drive on your own machine:
`pip wheel . -w dist --no-deps`, then copy `dist/colabot-*.whl` into Drive. pip's output
stays visible: read its warnings. Colab's own torch is kept: colabot's requirements accept
it, and nothing here reinstalls it.
""")
code("""
try:
    import google.colab  # noqa: F401

    IN_COLAB = True
except ImportError:  # Jupyter on your own machine: no google package, or no google.colab
    IN_COLAB = False
INSTALL = "git+https://github.com/OWNER/colabot"  # @param {type:"string"}
EXTRAS = "sleap,spacy,drive,gpu,wandb"

if not INSTALL:
    print("INSTALL is empty: using the colabot installed here.")
elif not IN_COLAB:
    print("Not on Colab: using the colabot installed here (pip install it yourself).")
elif INSTALL.startswith(("git+", "http://", "https://")):
    %pip install "colabot[{EXTRAS}] @ {INSTALL}"
else:
    %pip install "{INSTALL}[{EXTRAS}]"
""")
code("""
from importlib.metadata import PackageNotFoundError, version

for package in ("colabot", "torch", "sleap-nn", "sleap-io", "spacy"):
    try:
        print(f"{package:10} {version(package)}")
    except PackageNotFoundError:
        print(f"{package:10} not installed")
try:
    import torch

    cuda = torch.cuda.is_available()
    print("CUDA seen by torch:", cuda, torch.cuda.get_device_name(0) if cuda else "")
except ImportError:
    print("torch is not installed")
""")
md("""
## 2. Settings and secrets

Answer the form, then run the cell. The token never goes into a cell: it comes from Colab's
secrets.
""")
code('''
import os
from pathlib import Path

COMPUTE_UNITS = False  # @param {type:"boolean"}
DATA_FOLDER = "/content/colabot-data"  # @param {type:"string"}
DRIVE_FOLDER_ID = ""  # @param {type:"string"}

if IN_COLAB or "COLABOT_WORKER_DATA_DIR" not in os.environ:
    # On Colab the form decides (running the cell again applies a change); elsewhere a
    # data folder already set in the environment is kept.
    os.environ["COLABOT_WORKER_DATA_DIR"] = DATA_FOLDER
# Jobs start from the chat only on runtimes with compute units (see Colab's rules above).
os.environ["COLABOT_TELEGRAM_START_JOBS"] = "true" if COMPUTE_UNITS else "false"


def colab_secret(name: str) -> str:
    """A Colab secret's value, or '' when it is missing or this notebook may not read it."""
    from google.colab import userdata

    try:
        return userdata.get(name) or ""
    except Exception:  # SecretNotFoundError, NotebookAccessError, TimeoutException
        return ""


if IN_COLAB:
    from google.colab import auth

    missing = []
    for secret, variable in (
        ("TELEGRAM_TOKEN", "COLABOT_TELEGRAM_TOKEN"),
        ("TELEGRAM_USER_ID", "COLABOT_TELEGRAM_ALLOWED_USERS"),
    ):
        os.environ[variable] = colab_secret(secret)
        if not os.environ[variable]:
            missing.append(secret)
    wandb_key = colab_secret("WANDB_API_KEY")  # optional: follow training in W&B
    if wandb_key:
        os.environ["COLABOT_WANDB_API_KEY"] = wandb_key
    if DRIVE_FOLDER_ID:
        # Results go to Drive through its API, signed in as you: saved means in Drive.
        auth.authenticate_user()
        os.environ["COLABOT_RESULTS_BACKEND"] = "drive"
        os.environ["COLABOT_DRIVE_AUTH"] = "colab"
        os.environ["COLABOT_DRIVE_FOLDER_ID"] = DRIVE_FOLDER_ID
    else:
        from google.colab import drive

        drive.mount("/content/drive")
        # Forget a Drive folder id given in an earlier run of this cell.
        for name in ("RESULTS_BACKEND", "DRIVE_AUTH", "DRIVE_FOLDER_ID"):
            os.environ.pop(f"COLABOT_{name}", None)
        os.environ["COLABOT_RESULTS_DIR"] = "/content/drive/MyDrive/colabot-results"
    os.environ["COLABOT_WORKER_INPUT_ROOTS"] = "/content/drive/MyDrive,/content/data"
    if missing:
        print(
            "Add the Colab secret(s) " + " and ".join(missing) + " (key icon on the left), "
            "let this notebook use them, then run this cell again."
        )
elif not os.environ.get("COLABOT_TELEGRAM_TOKEN"):
    print(
        "Not on Colab: set COLABOT_TELEGRAM_TOKEN and COLABOT_TELEGRAM_ALLOWED_USERS in the "
        "environment that started Jupyter (or write them in a colabot.toml)."
    )
print(f"data folder: {os.environ['COLABOT_WORKER_DATA_DIR']}")
print(f"jobs from the chat: {os.environ['COLABOT_TELEGRAM_START_JOBS']}")
''')
md("""
## 3. Check

`colabot check` reads the settings, asks Telegram whether the token works and Drive who writes
the results where; then the GPU colabot will use.
""")
code("""
import subprocess
import sys

from bot.runtime import read_facts

check = subprocess.run(
    [sys.executable, "-m", "bot.cli", "check"], capture_output=True, text=True, check=False
)
print(check.stdout + check.stderr)
facts = read_facts(Path(os.environ["COLABOT_WORKER_DATA_DIR"]).parent)
print("GPU:", ", ".join(g.name for g in facts.gpus) if facts.gpus else "none seen")
""")
md("""
## 4. Start the bot

It runs inside this notebook's event loop; the cell returns at once and says where colabot's
log goes (a file in the data folder, so it does not spill under other cells). Send `/help` to
your bot. Running this cell again restarts the bot cleanly.
""")
code("""
from bot import notebook

colabot = await notebook.start()
""")
md("""
## 5. Jobs from cells

`notebook.train` and `notebook.infer` take what `/train` and `/infer` take (the kind, the
inputs, then `key=value` settings as keyword arguments), check it the same way, and return the
job's id at once. The job appears in your chat as if you had started it there.

`await notebook.wait(job)` shows a progress bar here and returns how the job ended (a failed
job raises an error with its reason and last log lines). **It keeps the notebook busy while
jobs run**, which is what Colab expects of a notebook in use. Stopping the cell leaves the job
running: `/stop <id>` or `/cancel <id>` in the chat stops it.

A first try that takes seconds:
""")
code("""
job = await notebook.train("selftest", steps=5, delay=0.2)
outcome = await notebook.wait(job)
print(outcome.state, "-", outcome.summary)
""")
md("""
SLEAP: the built-in example (a synthetic bug, 16 labelled frames), then the model on a
video. For your own data give a `.slp`, a `.pkg.slp` or a training package zip (a path under
`/content/drive/MyDrive` or `/content/data`). Untick `RUN_SLEAP` to skip it.
""")
code("""
RUN_SLEAP = True  # @param {type:"boolean"}
if RUN_SLEAP:
    sleap_job = await notebook.train("sleap", "example", epochs=10)
    print((await notebook.wait(sleap_job)).summary)
""")
md("""
spaCy: the built-in example (a small NER pipeline), trained and tried. Untick `RUN_SPACY` to
skip it.
""")
code("""
RUN_SPACY = True  # @param {type:"boolean"}
if RUN_SPACY:
    spacy_job = await notebook.train("spacy", "example")
    print((await notebook.wait(spacy_job)).summary)
""")
md("""
## 6. Keep the notebook busy while jobs run

Jobs started from the chat (with compute units) or from cells above run in the background.
This cell waits for every queued and running job, with a bar each.
""")
code("""
await notebook.wait()
""")
md("""
## 7. Stop the bot

Running jobs are marked interrupted; `/resume <id>` continues them later. On Colab, results
written through the Drive mount are flushed to Drive (Colab's own `flush_and_unmount`).
""")
code("""
await notebook.stop()
""")


def build() -> Any:
    """The notebook, with stable cell ids (regenerating changes only what changed)."""
    for number, cell in enumerate(cells, 1):
        cell.id = f"cell-{number:02d}"
    nb = new_notebook(cells=cells)
    nb.metadata = {
        "accelerator": "GPU",
        "colab": {"provenance": [], "gpuType": "T4"},
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    return nb


if __name__ == "__main__":
    nbformat.write(build(), NOTEBOOK)
    sys.exit(0)
