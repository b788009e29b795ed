"""Stage 08's WARG figure: WARG against its persistence p, per variant, in both document orders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import seaborn as sns

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
