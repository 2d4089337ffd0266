"""Turning a job's input sources into local paths in its folder.

Checks that need no network run at submit time, so bad input is refused before any GPU time
is spent; fetching happens when the job runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from workers.errors import InputError, SpecError
from workers.inputs.sources import (
    DriveSource,
    JobSource,
    LocalSource,
    Source,
    UploadSource,
    UrlSource,
    classify,
)
from workers.jobs import JobSpec, Progress
from workers.safety.names import shown
from workers.safety.paths import Refused, confine, inside, join_inside

JobOutputs = Callable[[int, str], list[Path]]
"""Given (job id, input slot name), the local paths that job offers for that slot."""

ProgressCallback = Callable[[Progress], None]


class InputResolver:
    """Checks input sources at submit time and makes them local when a job runs.

    Every path a job is given lies inside ``input_roots`` or inside colabot's own folders
    (``colabot_roots``: job folders and the download cache), wherever it came from.
    """

    def __init__(
        self,
        input_roots: tuple[Path, ...],
        job_outputs: JobOutputs,
        *,
        colabot_roots: tuple[Path, ...] = (),
    ) -> None:
        self.input_roots = input_roots
        self.colabot_roots = colabot_roots
        self._job_outputs = job_outputs
        self._remote: RemoteFetcher | None = None

    def use_remote(self, fetcher: RemoteFetcher) -> None:
        """Fetch URLs and Drive links with ``fetcher``."""
        self._remote = fetcher

    def sources(self, spec: JobSpec) -> dict[str, list[Source]]:
        """Classify every input of a spec (comma-separated lists allowed for models)."""
        found: dict[str, list[Source]] = {
            slot: [UploadSource(name)] for slot, name in spec.uploads.items()
        }
        for slot, text in spec.inputs.items():
            parts = [p for p in text.split(",") if p.strip()] if slot == "model" else [text]
            try:
                found[slot] = [classify(part, model_slot=slot == "model") for part in parts]
            except InputError as exc:
                raise SpecError(f"inputs.{slot}", str(exc)) from None
        return found

    def check(self, spec: JobSpec, job_exists: Callable[[int], bool]) -> None:
        """Refuse inputs that cannot work, naming the slot; no network is used."""
        for slot, sources in self.sources(spec).items():
            for source in sources:
                try:
                    self._check_one(source, job_exists)
                except InputError as exc:
                    raise SpecError(f"inputs.{slot}", str(exc)) from None

    def _check_one(self, source: Source, job_exists: Callable[[int], bool]) -> None:
        if isinstance(source, LocalSource):
            confine(source.text, self.input_roots)
        elif isinstance(source, JobSource):
            if not job_exists(source.job_id):
                raise InputError(f"job {source.job_id}", "there is no such job")
        elif isinstance(source, UrlSource | DriveSource):
            if self._remote is None:
                raise InputError(_describe(source), "fetching from the network is not set up")
            self._remote.check(source)

    async def resolve(
        self, spec: JobSpec, workdir: Path, progress: ProgressCallback
    ) -> dict[str, list[Path]]:
        """Local paths for every input slot (remote sources are fetched into the cache)."""
        resolved: dict[str, list[Path]] = {}
        for slot, sources in self.sources(spec).items():
            paths: list[Path] = []
            for source in sources:
                found = await self._resolve_one(slot, source, workdir, progress)
                paths.extend(self._confined(_describe(source), found))
            resolved[slot] = paths
        return resolved

    def _confined(self, source: str, paths: list[Path]) -> list[Path]:
        """Refuse any resolved path outside the allowed folders (fail closed)."""
        allowed = [root.expanduser() for root in (*self.input_roots, *self.colabot_roots)]
        for path in paths:
            if not inside(path, allowed):
                raise InputError(
                    source, f"it resolves to {shown(str(path))}, outside the allowed folders"
                )
        return paths

    async def _resolve_one(
        self, slot: str, source: Source, workdir: Path, progress: ProgressCallback
    ) -> list[Path]:
        if isinstance(source, LocalSource):
            return [confine(source.text, self.input_roots)]
        if isinstance(source, UploadSource):
            try:
                path = join_inside(workdir / "inputs", source.name)
            except Refused:
                raise InputError(source.name, "not a file sent with this job") from None
            if not path.exists():
                raise InputError(source.name, "the uploaded file is missing from the job folder")
            return [path]
        if isinstance(source, JobSource):
            paths = self._job_outputs(source.job_id, slot)
            if not paths:
                raise InputError(f"job {source.job_id}", f"it has no {slot} to use")
            return paths
        if self._remote is None:
            raise InputError(_describe(source), "fetching from the network is not set up")
        return [await self._remote.fetch(source, progress)]


class RemoteFetcher(Protocol):
    """Fetches URLs and Drive links."""

    def check(self, source: UrlSource | DriveSource) -> None:
        """Refuse a source before any download (scheme, host, policy)."""
        ...

    async def fetch(self, source: UrlSource | DriveSource, progress: ProgressCallback) -> Path:
        """Download (or find in the cache); return the local file or folder."""
        ...


def _describe(source: Source) -> str:
    if isinstance(source, UrlSource):
        return source.url
    if isinstance(source, DriveSource):
        return f"drive:{source.file_id}"
    if isinstance(source, LocalSource):
        return source.text
    if isinstance(source, UploadSource):
        return source.name
    return f"job {source.job_id}"
