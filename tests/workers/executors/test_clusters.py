"""A step on a real cluster through the engine, once on the Ray head (token auth, one logical
GPU) and once on the one-machine Slurm cluster (one dummy GPU): it succeeds, the cluster
lists it, and nothing of it is left running (on Slurm, its output redacted and the raw file
removed). What only one cluster does is in test_ray.py and test_slurm.py."""

from __future__ import annotations

import secrets

import pytest

from tests.helpers.clusters import AnyCluster, EngineOn, OnRay, ray_jobs
from tests.helpers.engine import WaitForState, selftest
from workers.jobs import JobState
from workers.safety.redaction import register_secret

pytestmark = pytest.mark.timeout(300)


async def test_a_step_runs_on_the_cluster_and_the_cluster_lists_it(
    cluster: AnyCluster, engine_on: EngineOn, wait_for_state: WaitForState
) -> None:
    on_ray = isinstance(cluster, OnRay)
    secret = "train with 7 steps"  # on Slurm, what the step prints first, made a secret
    if not on_ray:
        register_secret(secret)
    engine = await engine_on(cluster.executor(secrets.token_hex(4)))
    job = engine.submit(selftest(steps=3 if on_ray else 7, delay=0.05))
    done = await wait_for_state(engine, job.id, timeout=120)
    assert done.state is JobState.SUCCEEDED, done.error
    if isinstance(cluster, OnRay):
        assert done.progress.message == "step 3 of 3", engine.log_path(job.id).read_text()
        log = engine.log_path(job.id).read_text()
        assert "progress 3/3" in log and "selftest: wrote" in log
        assert engine.store.open_steps(job.id) == []  # the step ended
        listed = ray_jobs(cluster.head)
        ours = {
            sid: meta for sid, (status, meta) in listed.items() if meta.get("colabot_job") == "1"
        }
        assert any(status == "SUCCEEDED" for status, _ in listed.values())
        assert ours and all(meta["colabot_step"] == "selftest train" for meta in ours.values())
    else:
        log = engine.log_path(job.id).read_text()
        assert "progress 7/7" in log and "selftest: " in log and secret not in log
        names = [name for _, name, _ in cluster.slurm.jobs()]
        assert any(name.endswith(f"-job{job.id}-a1-s1-selftest-train") for name in names), names
        assert list((engine.workdir(job.id) / ".slurm").glob("*.out")) == []  # raw output gone
