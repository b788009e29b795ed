"""Stage 10's figures: WARG against its persistence p, gain alone against Shapley value in context,
and the retrievers' Integrated Gradients token attributions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ragalign.audit.integrated_gradients import TokenAttribution
from ragalign.core import plots

FORMS = ("truncated", "ext")  # the paper's form and the extrapolated one


def warg_curves(summary: Mapping[tuple[str, str], Mapping[str, Mapping[str, float]]], ps: Sequence[float]) -> pd.DataFrame:
    """Long table ``variant, order, p, form, WARG`` (means) from ``games.alignment_table``'s summary."""
    return pd.DataFrame(
        [
            {"variant": v, "order": order, "p": p, "form": form, "WARG": s[f"warg_{form}@{p:g}"]["mean"]}
            for (v, order), s in summary.items()
            for p in ps
            for form in FORMS
        ]
    )


def warg_figure(summary: Mapping, ps: Sequence[float], k: int, path: str | Path) -> sns.FacetGrid:
    """Solid: WARG truncated at depth ``k`` (RAG-E's form); dashed: the extrapolated form; dotted: the
    floor ``p^k`` that identical rankings still score in the truncated form. One panel per order; saved."""
    grid = sns.relplot(
        warg_curves(summary, ps), x="p", y="WARG", hue="variant", style="form", style_order=list(FORMS), col="order",
        col_order=["original", "shuffled"], kind="line", marker="o", height=4, aspect=1.2, facet_kws={"ylim": (0, 1)},
    )
    floor = [p**k for p in ps]
    for ax in grid.axes.flat:
        ax.plot(ps, floor, color="grey", ls=":", label=f"floor p^{k}")
    grid.set_titles("documents in {col_name} order")
    plots.save(grid.figure, path)
    return grid


def gain_vs_shapley_figure(rows: pd.DataFrame, spearman: float, path: str | Path) -> plt.Figure | None:
    """Each document of a game with at least 3 documents (original order): its gain alone,
    v({d}) - v(empty), against its utility-Shapley value in context; dotted: equal. Saved; None if no such game."""
    multi = rows[(rows.order == "original") & (rows.k >= 3)]
    if multi.empty:
        return None
    pairs = pd.DataFrame({"single-document gain": np.concatenate(multi.utility_single.to_numpy()), "Shapley value in context": np.concatenate(multi.utility_shapley.to_numpy())})
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    sns.scatterplot(pairs, x="single-document gain", y="Shapley value in context", s=10, alpha=0.4, ax=ax)
    lim = [pairs.min().min(), pairs.max().max()]
    ax.plot(lim, lim, color="grey", ls=":", lw=1)
    ax.set(title=f"Gain alone vs in context (Spearman {spearman:.2f}; dotted: equal)")
    plots.save(fig, path)
    return fig


def ig_token_figure(ig: Mapping[tuple[str, str], TokenAttribution], variants: Sequence[str], qid: str, question: str, path: str | Path, top: int = 15) -> plt.Figure | None:
    """One row per variant: IG attribution of the query tokens, and of the ``top`` document tokens by
    |IG|, for question ``qid`` (blue: raises the score, red: lowers it). Saved; None if no variant."""
    if not variants:
        return None
    fig, axes = plt.subplots(len(variants), 2, figsize=(13, 2.6 * len(variants)), squeeze=False, gridspec_kw={"width_ratios": [1, 1.6]})
    for row, v in zip(axes, variants, strict=True):
        t = ig[(v, qid)]
        doc = sorted(t.content_tokens("doc"), key=lambda x: -abs(x[1]))[:top]
        for ax, toks, title in ((row[0], t.content_tokens("query"), f"{v}: query tokens"), (row[1], doc, f"{v}: top-{top} document tokens by |IG|")):
            ax.bar(range(len(toks)), [a for _, a in toks], color=["tab:blue" if a >= 0 else "tab:red" for _, a in toks])
            ax.set_xticks(range(len(toks)), [w for w, _ in toks], rotation=60, ha="right", fontsize=8)
            ax.set(title=title, ylabel="IG attribution")
    fig.suptitle(f"Q: {question[:110]}", fontsize=10)
    plots.save(fig, path)
    return fig
