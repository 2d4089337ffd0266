"""The job kinds colabot knows, by name: plug-ins behind :mod:`workers.kinds.base`."""

from __future__ import annotations

from workers.errors import SpecError
from workers.jobs import JobSpec
from workers.kinds.base import JobKind


class KindRegistry:
    """The job kinds this colabot knows, by name."""

    def __init__(self, kinds: list[JobKind] | None = None) -> None:
        self._kinds: dict[str, JobKind] = {}
        for kind in kinds or []:
            self.register(kind)

    def register(self, kind: JobKind) -> None:
        """Add a kind (a later one with the same name replaces the earlier)."""
        self._kinds[kind.name] = kind

    def names(self) -> list[str]:
        """Registered kind names, sorted."""
        return sorted(self._kinds)

    def all(self) -> list[JobKind]:
        """Registered kinds, sorted by name."""
        return [self._kinds[name] for name in self.names()]

    def get(self, name: str) -> JobKind:
        """The kind called ``name``, or SpecError naming the field ``kind``."""
        try:
            return self._kinds[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise SpecError("kind", f"unknown kind {name!r} (known: {known})") from None

    def validate(self, spec: JobSpec) -> JobSpec:
        """Check the kind and action, then let the kind check the rest."""
        kind = self.get(spec.kind)
        if spec.action not in kind.actions:
            can = ", ".join(sorted(a.value for a in kind.actions))
            raise SpecError(
                "action", f"{spec.kind} jobs cannot {spec.action.value} (they can: {can})"
            )
        return kind.validate(spec)


def default_registry() -> KindRegistry:
    """Every built-in kind. Kind modules are light: frameworks load only in job subprocesses."""
    from workers.kinds.selftest.kind import SelftestKind
    from workers.kinds.sleap.kind import SleapKind
    from workers.kinds.spacy.kind import SpacyKind

    return KindRegistry([SelftestKind(), SleapKind(), SpacyKind()])
