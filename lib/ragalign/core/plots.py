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
from matplotlib.container import BarContainer  # noqa: E402

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


def interval_bars(table: pd.DataFrame, title: str, path: str | Path, order: list[str] | None = None, ylabel: str = "score") -> plt.Figure:
    """Bars of ``mean`` per ``variant`` and ``metric`` with their 95% intervals (``lo``, ``hi``) as whiskers; saved."""
    order = order or list(dict.fromkeys(table.variant))
    fig, ax = plt.subplots(figsize=(max(7, 0.8 * len(order)), 3.8))
    sns.barplot(table, x="variant", y="mean", hue="metric", order=order, errorbar=None, ax=ax)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    for metric, group in zip(table.metric.unique(), bars, strict=True):
        rows = table[table.metric == metric].set_index("variant").reindex(order).dropna(subset=["mean"])  # seaborn draws no bar for a missing pair
        centres = [b.get_x() + b.get_width() / 2 for b in group]
        ax.errorbar(centres, rows["mean"], yerr=[rows["mean"] - rows["lo"], rows["hi"] - rows["mean"]], fmt="none", color="black", capsize=3, lw=1)
    ax.set(title=title, xlabel="", ylabel=ylabel)
    if len(order) > 6:
        ax.tick_params(axis="x", rotation=30)
    save(fig, path)
    return fig


def rank_heatmaps(matrices: dict[str, pd.DataFrame], path: str | Path, xlabel: str = "generator rank", ylabel: str = "retriever rank") -> plt.Figure:
    """One annotated heatmap of rank-against-rank fractions per variant, side by side; saved."""
    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2), squeeze=False)
    for i, (ax, (name, m)) in enumerate(zip(axes[0], matrices.items(), strict=True)):
        k = len(m)
        sns.heatmap(m, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", cbar=False, ax=ax, annot_kws={"size": 7},
                    xticklabels=range(1, k + 1), yticklabels=range(1, k + 1))
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel if i == 0 else "")
    save(fig, path)
    return fig


def forest(ax: plt.Axes, labels: list[str], mean, lo, hi, colors) -> None:
    """A forest plot on ``ax``: one point with its interval per row, top to bottom in ``labels`` order."""
    for y, (m, low, high, color) in enumerate(zip(mean, lo, hi, colors, strict=True)):
        ax.errorbar(m, y, xerr=[[m - low], [high - m]], fmt="o", color=color, capsize=3)
    ax.set(yticks=range(len(labels)), yticklabels=labels)


def annotate_points(ax: plt.Axes, table: pd.DataFrame, x: str, y: str) -> None:
    """Label each point of a scatter plot with its row's index."""
    for name, row in table.iterrows():
        ax.annotate(name, (row[x], row[y]), fontsize=7, xytext=(4, 3), textcoords="offset points")


def learning_curve(points: pd.DataFrame, metric: str, ylabel: str, title: str, path: str | Path, line: str = "trainer") -> plt.Figure:
    """Paired differences against a baseline (``points[metric]``: mean, lo, hi) over training questions ``n``,
    one line per value of the ``line`` column, with their 95% intervals as bands and 0 (the baseline) drawn; saved."""
    rows = pd.DataFrame([{line: getattr(r, line), "n": r.n, **{k: getattr(r, metric)[k] for k in ("mean", "lo", "hi")}} for r in points.itertuples()])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for color, (trainer, part) in zip(sns.color_palette(PALETTE), rows.groupby(line, sort=False), strict=False):
        part = part.sort_values("n")
        ax.plot(part.n, part["mean"], marker="o", color=color, label=trainer)
        ax.fill_between(part.n, part.lo, part.hi, color=color, alpha=0.2)
    ax.axhline(0, color="0.3", lw=1, ls="--")
    ax.set(xscale="log", xlabel="training questions", ylabel=ylabel, title=title)
    ax.minorticks_off()  # the log axis's own minor labels (6×10¹ ...) would sit between the sizes
    ax.set_xticks(sorted(rows.n.unique()), [str(n) for n in sorted(rows.n.unique())])
    ax.legend(title=line)
    save(fig, path)
    return fig
