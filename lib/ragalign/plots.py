"""One look for every figure in the study, and a deterministic way to save them."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # scripts and tests: no display; notebooks keep inline figures
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

PALETTE = "colorblind"


def setup() -> None:
    """Seaborn theme for every figure: white grid, readable fonts, colour-blind palette."""
    sns.set_theme(style="whitegrid", context="notebook", palette=PALETTE)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 120, "axes.titleweight": "bold", "figure.autolayout": True})


def save(fig: plt.Figure, path: str | Path) -> None:
    """Save a figure as PNG without timestamps (identical runs give identical bytes).

    The figure stays open, so a notebook still shows it inline under the cell.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", metadata={"Software": None})
