"""colabot with ``worker.executor = "slurm"``, through the chat, on a real one-machine Slurm
cluster with one dummy GPU: a step past its time limit is warned about, then fails as
TIMEOUT. What Slurm shares with Ray (jobs run as batch jobs and are listed, the second GPU
job says why it waits, cancel reaches the step with SIGINT first, a killed bot re-attaches,
bad settings) is in test_cluster_chat.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.config import Config
from tests.clusters.slurm_cluster import SlurmCluster
from tests.helpers.chat import Person
from tests.helpers.clusters import OnSlurm

pytestmark = pytest.mark.timeout(420)


async def test_a_step_past_its_time_limit_is_warned_about_then_fails_as_timeout(
    on_slurm: SlurmCluster,
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
) -> None:
    # Slurm counts limits in minutes and checks them every half minute or so.
    await start_colabot(OnSlurm(on_slurm).chat_config(chat_config, time_limit="1"))
    await person.say("/train selftest steps=1000 delay=0.25")
    # A one-minute limit is within the shortest warning lead from the start.
    warned = await person.next_message("Slurm time limit ends it in", timeout=90)
    assert "/resume continues it" in (warned.text or "")
    failed = await person.next_message("#1 selftest train failed", timeout=200)
    text = failed.text or ""
    assert "TIMEOUT" in text and "slurm.time_limit = 1" in text
    assert "Last lines of the log" in text and "progress" in text
