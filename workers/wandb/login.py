"""In a job's first step: whether W&B takes the key of an online run (tools side).
``python -m workers.wandb.login`` asks the same for ``colabot check``.

Asked once, before training: a key W&B rejects (or a W&B that cannot be reached) should cost
a note in the chat and an offline run, not the training. The key comes from the step's
environment, as W&B reads it, and is written nowhere.
"""

from __future__ import annotations

import os

OFFLINE_NOTE = (
    "W&B did not accept this run ({why}), so it logs offline; the run folder comes with the "
    "results and `wandb sync` uploads it later."
)


def rejected_key() -> str | None:
    """Why an online run cannot log online (its key is rejected, W&B is out of reach); None
    when it can, or when the run is not online at all."""
    if os.environ.get("WANDB_MODE") != "online":
        return None
    try:
        import wandb

        accepted = wandb.login(verify=True, prompt=False)
    except Exception as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None if accepted else "no key was found"


def offline_note(why: str) -> str:
    """The chat note for a run that went offline."""
    return OFFLINE_NOTE.format(why=why)


if __name__ == "__main__":
    problem = rejected_key()
    print(problem or "accepted")
    raise SystemExit(1 if problem else 0)
