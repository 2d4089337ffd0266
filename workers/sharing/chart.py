"""Draw a bar chart of GPU-hours per person: ``python -m workers.sharing.chart DEST TITLE
JSON`` where JSON is ``[[name, hours], ...]``. Run as a subprocess, so that the bot process
never loads matplotlib."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def draw(rows: list[tuple[str, float]], title: str, dest: Path) -> None:
    """Write the chart as a PNG at ``dest``: one horizontal bar per person, most first."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = [name for name, _ in rows][::-1]
    hours = [hours for _, hours in rows][::-1]
    figure, axes = plt.subplots(figsize=(6, 1 + 0.4 * len(rows)), dpi=100)
    bars = axes.barh(names, hours, color="#4c72b0")
    axes.bar_label(bars, labels=[f"{h:.1f}" for h in hours], padding=3)
    axes.set_xlabel("GPU-hours")
    axes.set_title(title)
    axes.margins(x=0.15)
    figure.tight_layout()
    figure.savefig(dest)
    plt.close(figure)


def main(argv: list[str]) -> int:
    """The command line: DEST TITLE JSON."""
    dest, title, raw = Path(argv[0]), argv[1], json.loads(argv[2])
    draw([(str(name), float(hours)) for name, hours in raw], title, dest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
