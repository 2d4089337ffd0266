"""Scheduled work, run by APScheduler through python-telegram-bot's JobQueue: runtime limit
warnings, the keepalive message, periodic checkpoint sync, and the idle-release offer.

Every decision is a pure function of the time (see :mod:`bot.schedule`); :meth:`Heartbeat.tick`
takes the time as an argument, so tests drive it with a clock they control. colabot cannot
keep a runtime alive and does not try: it warns, saves and resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from typing import Any

from telegram.ext import ContextTypes, JobQueue

from bot import runtime_views
from bot.config import Config
from bot.delivery import Delivery
from bot.runtime import RuntimeClock, flush_drive_mount, is_colab, read_facts
from bot.schedule import (
    cluster_limit_due,
    due_warning,
    idle_release_due,
    is_last_warning,
    keepalive_due,
    sync_due,
)
from bot.sending import keepalive_event, view_notice
from workers.engine import Engine
from workers.estimates import estimate
from workers.results.durability import Keeper

log = logging.getLogger(__name__)

TICK_SECONDS = 15.0


class Heartbeat:
    """Warnings, keepalive, checkpoint sync and idle release, on a schedule."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        keeper: Keeper,
        clock: RuntimeClock,
        delivery: Delivery,
    ) -> None:
        self.config = config
        self.engine = engine
        self.keeper = keeper
        self.clock = clock
        self.delivery = delivery
        self.minutes = tuple(config.runtime.warn_before_minutes)
        self.last_keepalive: float | None = None
        self.idle_since: float | None = time.time()
        self.idle_offered = False
        self.disk_warned = False
        self.limit_warned: set[tuple[int, float]] = set()
        self._lock = asyncio.Lock()

    # scheduling ------------------------------------------------------------------------------

    def schedule(self, job_queue: JobQueue[Any]) -> None:
        """Run :meth:`tick` every few seconds through APScheduler."""
        job_queue.run_repeating(
            self._scheduled_tick,
            interval=TICK_SECONDS,
            first=1.0,
            name="colabot-heartbeat",
            job_kwargs={"misfire_grace_time": 60, "coalesce": True, "max_instances": 1},
        )

    async def _scheduled_tick(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await self.tick(time.time())
        except Exception:
            log.exception("heartbeat tick failed; the next one will try again")

    @property
    def sent_warnings(self) -> frozenset[int]:
        """Lead times (minutes) already warned about on this runtime."""
        return self.engine.store.warnings_sent(self.clock.started_at)

    async def tick(self, now: float) -> None:
        """Do whatever is due at ``now``."""
        async with self._lock:
            await self._warnings(now)
            await self._cluster_limits(now)
            running = self.engine.running_jobs()
            if running and sync_due(
                now, self.keeper.last_sync, self.config.results.checkpoint_sync_minutes
            ):
                await self.keeper.sync_checkpoints()
            await self._keepalive(now)
            self._idle(now)
            await self._disk(now)

    # warnings --------------------------------------------------------------------------------

    async def _warnings(self, now: float) -> None:
        warning, sent = due_warning(now, self.clock, self.minutes, self.sent_warnings)
        if warning is None:
            return
        self.engine.store.note_warnings_sent(self.clock.started_at, sent)
        await self.keeper.sync_checkpoints()
        if is_last_warning(warning, self.minutes):
            await self.keeper.snapshot_now()
            flushed = await flush_drive_mount(self.config)
            if flushed is not None:
                self.engine.notice(None, flushed)
        running = self.engine.running_jobs()
        saved = {job.id: self.keeper.checkpoint_note(job.id) for job in running}
        view = runtime_views.warning_view(
            warning.minutes,
            self.clock,
            now,
            running,
            self.engine.queued_jobs(),
            saved,
            self.keeper.results.name,
        )
        self.engine.post(None, view_notice(view))

    async def _cluster_limits(self, now: float) -> None:
        """Warn once per step that a cluster's time limit will end (Slurm's --time)."""
        for job in self.engine.running_jobs():
            where = self.engine.placement(job.id)
            if where is None or where.ends_at is None or where.waiting:
                continue
            key = (job.id, where.ends_at)
            eta = job.progress.eta_s if job.progress else None
            if key in self.limit_warned or not cluster_limit_due(
                now, where.ends_at, eta, self.minutes
            ):
                continue
            self.limit_warned.add(key)
            await self.keeper.sync_checkpoints()
            cluster = self.engine.executor.name.capitalize()
            text = runtime_views.cluster_limit_text(
                cluster, where.ends_at - now, eta, self.keeper.checkpoint_note(job.id)
            )
            self.engine.notice(job.id, text)

    # keepalive -------------------------------------------------------------------------------

    async def _keepalive(self, now: float) -> None:
        running = self.engine.running_jobs()
        queued = self.engine.queued_jobs()
        interval = self.config.heartbeat.interval_minutes * 60
        if not keepalive_due(now, self.last_keepalive, interval, bool(running or queued)):
            return
        self.last_keepalive = now
        facts = await asyncio.to_thread(read_facts, self.config.data_dir)
        view = runtime_views.keepalive_view(self.clock, now, running, queued, facts)
        self.engine.post(None, keepalive_event(view))

    # disk space ------------------------------------------------------------------------------

    async def _disk(self, now: float) -> None:
        """Warn once when free space drops below worker.min_free_disk_mb; re-arm once it is back."""
        disk = self.engine.disk
        low = await asyncio.to_thread(disk.low)
        if low and not self.disk_warned:
            self.disk_warned = True
            free = await asyncio.to_thread(disk.free_mb)
            self.engine.notice(
                None, runtime_views.low_disk_text(free, disk.folder, disk.min_free_mb)
            )
        elif not low:
            self.disk_warned = False
            await asyncio.to_thread(disk.keep_reserve)

    # idle release ----------------------------------------------------------------------------

    def _idle(self, now: float) -> None:
        if self.engine.running_jobs() or self.engine.queued_jobs():
            self.idle_since = None
            self.idle_offered = False
            return
        if self.idle_since is None:
            self.idle_since = now
        minutes = self.config.runtime.idle_release_minutes
        if idle_release_due(now, self.idle_since, minutes, self.idle_offered):
            self.idle_offered = True
            self.engine.post(None, view_notice(runtime_views.idle_offer_view(minutes, is_colab())))

    async def release(self, confirmed: bool, chat_id: int) -> str:
        """Answer the idle-release offer."""
        if not confirmed:
            self.idle_since = time.time()
            self.idle_offered = False
            return "Keeping the runtime."
        if not is_colab():
            return (
                "This is not a Colab runtime, and colabot does not shut machines down: "
                "stop it from your provider's console when you are done."
            )
        await self.keeper.snapshot_now()
        loop = asyncio.get_running_loop()
        loop.call_later(3.0, _unassign_colab_runtime)
        return "Releasing the Colab runtime in a few seconds. Results are saved."

    # new jobs --------------------------------------------------------------------------------

    def check_new_job(self, job_id: int, now: float | None = None) -> None:
        """Warn at once when a new job will probably outlast the runtime."""
        now = time.time() if now is None else now
        job = self.engine.job(job_id)
        guess = estimate(job.spec, self.engine.store.list_jobs(limit=100))
        left = self.clock.left(now)
        if guess is not None and guess > left:
            self.engine.notice(job_id, runtime_views.long_job_text(guess, left))


def _unassign_colab_runtime() -> None:
    """Ask Colab to release this runtime (ends this process with it)."""
    with contextlib.suppress(Exception):
        runtime = importlib.import_module("google.colab.runtime")
        runtime.unassign()
