"""The summary figures: stage 11's headline (every variant's gold-answer likelihood, and each method minus dense)
and stage 13's powered comparisons."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ragalign.core import plots
from ragalign.core.verdicts import BEATS, DID_NOT_MOVE, EQUIVALENT, IDENTICAL, NOT_TOLD_APART, WORSE, verdict
from ragalign.report.seam import CURVE_NAMES, powered_comparisons
from ragalign.report.summary import VARIANT_SOURCES

BUILDING_STAGES = ("03_rag_baselines", "05_selector_training", "06_rationale_distillation", "07_figret")
REFERENCES = {"no retrieval": ":", "oracle (gold passages)": "--"}  # display name -> line style


def stage_colors() -> dict[str, tuple]:
    """One colour per stage that builds variants, shared by stage 11's figures."""
    return dict(zip(BUILDING_STAGES, sns.color_palette(plots.PALETTE, len(BUILDING_STAGES)), strict=True))


VERDICT_COLORS = {BEATS: "tab:green", WORSE: "tab:red", EQUIVALENT: "tab:blue", NOT_TOLD_APART: "grey", IDENTICAL: "silver", DID_NOT_MOVE: "silver"}


def verdict_color(d: Mapping) -> str:
    """The colour of a paired difference's verdict (its ``verdict`` if it has one, else judged without a margin):
    green beats, red worse, blue equivalent, grey not told apart, silver identical."""
    return VERDICT_COLORS[d.get("verdict") or verdict(d)]


def headline_figure(table: pd.DataFrame, paired: pd.DataFrame, path: str | Path) -> plt.Figure:
    """Left: each variant's gold-answer log-prob with its interval, coloured by the stage that built it,
    with no retrieval and the oracle as reference lines. Right: each method minus dense at the same k.
    ``table`` is indexed by display name with ``stage`` and ``gold_logprob[_lo|_hi]``; ``paired`` is
    ``report.summary.paired_table``. Saved to ``path``."""
    colors = stage_colors()
    ordered = table.sort_values("gold_logprob")
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.42 * len(table) + 1.6), gridspec_kw={"width_ratios": [1.1, 1]})
    plots.forest(axes[0], list(ordered.index), ordered.gold_logprob, ordered.gold_logprob_lo, ordered.gold_logprob_hi, [colors[s] for s in ordered.stage])
    axes[0].set(xlabel="gold-answer mean token log-prob (95% CI)", title="How much each context supports the gold answer")
    for name, ls in REFERENCES.items():
        if name in table.index:
            axes[0].axvline(table.loc[name, "gold_logprob"], color="grey", ls=ls, lw=1, label=name)
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=s.split("_", 1)[1].replace("_", " ")) for s, c in colors.items()]
    axes[0].legend(handles=handles + axes[0].get_legend_handles_labels()[0], title="built by", loc="lower right", fontsize=7)
    vs_dense = paired[paired.kind == "dense"]
    plots.forest(
        axes[1],
        [f"{VARIANT_SOURCES[v][1]} − {VARIANT_SOURCES[ref][1]}" for v, ref in zip(vs_dense.variant, vs_dense.reference, strict=True)],
        vs_dense["mean"], vs_dense.lo, vs_dense.hi,
        [verdict_color(row) for row in vs_dense.to_dict(orient="records")],
    )
    axes[1].axvline(0, color="black", lw=0.8)
    axes[1].set(xlabel="paired difference in gold-answer log-prob (95% CI)", title="Each method minus dense at the same k")
    plots.save(fig, path)
    return fig


def powered_figure(powered: dict, path: str | Path) -> plt.Figure:
    """Stage 13's comparisons as a forest plot, top to bottom in :func:`report.seam.powered_comparisons` order,
    coloured by verdict, with the equivalence band (±margin) shaded: a blue point's whole interval lies
    inside it. Saved to ``path``."""
    rows = powered_comparisons(powered)[::-1]
    m = powered["margin"]
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(rows) + 1.4))
    ax.axvspan(-m, m, color="tab:blue", alpha=0.08, label=f"equivalence margin ±{m:g}")
    ax.axvline(0, color="black", lw=0.8)
    plots.forest(ax, [name for name, _ in rows], [d["mean"] for _, d in rows], [d["lo"] for _, d in rows], [d["hi"] for _, d in rows],
                 [verdict_color(d) for _, d in rows])
    ax.set(xlabel="paired difference in gold-answer log-prob (95% CI)", title=f"The seam's key comparisons on {powered['questions']} fresh questions")
    ax.legend(loc="best", fontsize=8)
    plots.save(fig, path)
    return fig


def seam_curve_figures(curve: dict, gain_path: str | Path, reading_path: str | Path) -> tuple[plt.Figure, plt.Figure | None]:
    """Stage 14's two figures: every learner's gain over its own start against training questions (one line per
    learner, bands: paired 95% intervals), and the tuned reader's gain with the gold passages, with none and
    the change of the gap between them (a reader that reads widens it). Saved."""
    points = pd.DataFrame(curve["points"]).assign(learner=lambda d: [f"{CURVE_NAMES[m]} ({s})" for m, s in zip(d.learner, d.side, strict=True)])
    gain = plots.learning_curve(points, "gain", f"gain over its start, top-{curve['k']} (nats)", "Each side of the seam, trained on the same questions",
                                gain_path, line="learner")
    reader = points[points.side == "reader"]
    if reader.empty:
        return gain, None
    measures = {"gold_gain": "with the gold passages", "none_gain": "with no passage", "gap_change": "gold − none gap (change)"}
    long = pd.DataFrame([{"measure": label, "n": r["n"], "value": r[key]} for r in reader.to_dict(orient="records") for key, label in measures.items()])
    reading = plots.learning_curve(long, "value", "tuned − untuned (nats)", "Does the tuned reader read?", reading_path, line="measure")
    return gain, reading
