"""One look for every figure in the study, and a deterministic way to save them."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # scripts and tests: no display; notebooks keep inline figures
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
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


def training_curve(curve: pd.DataFrame, title: str, ylabel: str, path: str | Path, hue: str | None = None, window: int = 10) -> plt.Figure:
    """Plot and save a training curve: validation points, and the train loss as a rolling mean.

    ``curve`` has columns step, split ("train"/"val") and loss; ``hue`` names a column that
    separates several runs on the same axes.
    """
    train = curve[curve.split == "train"].copy()
    rolling = lambda s: s.rolling(window, min_periods=1).mean()  # noqa: E731
    train["loss"] = train.groupby(hue).loss.transform(rolling) if hue else rolling(train.loss)
    fig, ax = plt.subplots(figsize=(6.5 if hue else 6, 3.8 if hue else 3.5))
    if hue:
        sns.lineplot(curve[curve.split == "val"], x="step", y="loss", hue=hue, marker="o", ax=ax)
        sns.lineplot(train, x="step", y="loss", hue=hue, ls="--", alpha=0.5, legend=False, ax=ax)
        title += " (dashed: train, rolling mean)"
    else:
        sns.lineplot(train, x="step", y="loss", ax=ax, label="train (rolling mean)")
        sns.lineplot(curve[curve.split == "val"], x="step", y="loss", marker="o", ax=ax, label="validation")
    ax.set(title=title, ylabel=ylabel)
    save(fig, path)
    return fig
