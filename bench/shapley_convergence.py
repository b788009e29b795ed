"""Offline convergence of the Shapley estimators on value tables of real generator games.

    .venv/bin/python bench/shapley_convergence.py --tables n8.json n10.json \\
        [--out bench/results/shapley_convergence.json] [--figure PATH] [--repeats 20] [--seed 0] \\
        [--estimators permutation pmcshap kernelshap leverageshap] [--budgets 16 24 ...]

Each table file holds the values of every coalition of some games with the same number of players:
``{"n": 10, "value": "prob", "model": "...", "games": [{"qid": "...", "values": [v_0, ..., v_{2^n-1}]}]}``
(``values[mask]``, bit ``i`` of ``mask`` = document ``i``). Every estimator is then run by look-up,
at every budget up to ``2^n`` (default 16, 24, 32, 48, 64, 96, 128, 256, 512), ``--repeats`` seeded
times per game (``ragalign.audit.shapley_convergence.convergence``). Writes, per n, estimator and budget, the median
and quartiles over games x repeats of the Spearman correlation with the exact Shapley values and of
the normalised error ||phi_hat - phi|| / ||phi||, and the mean |efficiency gap|; the evaluations each
estimator needs for a median Spearman >= 0.95; and a figure (median, interquartile band).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ragalign.audit import shapley, shapley_convergence
from ragalign.core import plots
from ragalign.core.io import write_json
from ragalign.core.numerics import host

BUDGETS = (16, 24, 32, 48, 64, 96, 128, 256, 512)
ESTIMATORS = ("permutation", "permutation:antithetic=true", "pmcshap", "kernelshap", "leverageshap")
THRESHOLD = 0.95


def read_table(path: str | Path) -> dict:
    """One table file, checked: every game has 2^n values."""
    data = json.loads(Path(path).read_text())
    n = int(data["n"])
    for g in data["games"]:
        if len(g["values"]) != 1 << n:
            raise ValueError(f"{path}: game {g.get('qid')!r} has {len(g['values'])} values, not 2^{n}")
    return data


def run(tables: list[dict], estimators: list[str], budgets: list[int], repeats: int, seed: int) -> pd.DataFrame:
    """The convergence rows of every game of every table (columns n and qid added)."""
    curves = []
    for t in tables:
        n = int(t["n"])
        ok = [b for b in budgets if b <= 1 << n]
        for g in t["games"]:
            curve = shapley_convergence.convergence(np.asarray(g["values"], dtype=float), n, estimators, ok, repeats, seed)
            curves.append(curve.assign(n=n, qid=str(g["qid"])))
    return pd.concat(curves, ignore_index=True)


def report(curve: pd.DataFrame, tables: list[dict], files: list[str], args: argparse.Namespace) -> dict:
    summary = shapley_convergence.summarise(curve, by=("n", "estimator", "budget"))
    out: dict = {
        "config": {"tables": files, "estimators": args.estimators, "budgets": args.budgets, "repeats": args.repeats, "seed": args.seed,
                   "threshold": THRESHOLD, "value": sorted({str(t.get("value")) for t in tables}), "model": sorted({str(t.get("model")) for t in tables})},
        "games": {str(int(t["n"])): len(t["games"]) for t in tables},
        "curve": {},
        f"evaluations_to_median_spearman_{THRESHOLD}": {},
    }
    cols = [c for c in summary.columns if c not in ("n", "estimator", "budget")]
    for (n, est), df in summary.groupby(["n", "estimator"]):
        out["curve"].setdefault(str(n), {})[est] = [
            {"budget": int(r.budget), "runs": int(r.runs), **{c: round(float(getattr(r, c)), 6) for c in cols if c != "runs"}} for r in df.itertuples()
        ]
    for n, df in curve.groupby("n"):
        out[f"evaluations_to_median_spearman_{THRESHOLD}"][str(n)] = shapley_convergence.evaluations_to_reach(df, THRESHOLD, stat="median")
    return out


def figure(curve: pd.DataFrame, tables: list[dict], path: str | Path) -> None:
    plots.setup()
    ns = sorted(curve.n.unique())
    fig, axes = plt.subplots(1, len(ns), figsize=(6 * len(ns) + 1.5, 4.5), squeeze=False, sharey=True)
    for ax, n in zip(axes[0], ns, strict=True):
        df = curve[curve.n == n]
        sns.lineplot(df, x="budget", y="spearman", hue="estimator", style="estimator", estimator="median", errorbar=("pi", 50), markers=True, ax=ax)
        budgets = sorted(df.budget.unique())
        ax.axhline(THRESHOLD, color="grey", ls=":")
        ax.set(xscale="log", xlabel="evaluations (distinct coalitions)", ylabel="Spearman vs exact Shapley")
        ax.set_title(f"k = {n} documents: {df.qid.nunique()} games, {1 << n} coalitions", fontsize=10)
        ax.set_xticks(budgets, [str(b) for b in budgets], fontsize=8)
        ax.minorticks_off()
        if ax is not axes[0][-1]:
            ax.get_legend().remove()
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize=8)
    model = ", ".join(sorted({str(t.get("model")) for t in tables}))
    fig.suptitle(f"Shapley estimators on generator value tables ({model}): median Spearman and interquartile band over "
                 f"games x {curve.repeat.nunique()} seeded repeats; dotted: {THRESHOLD}", fontsize=10)
    fig.tight_layout()
    plots.save(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tables", nargs="+", required=True)
    ap.add_argument("--out", default="bench/results/shapley_convergence.json")
    ap.add_argument("--figure", default=None, help="default: the --out path with .png")
    ap.add_argument("--estimators", nargs="+", default=list(ESTIMATORS))
    ap.add_argument("--budgets", nargs="+", type=int, default=list(BUDGETS))
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for spec in args.estimators:
        shapley.make_estimator(spec)  # fail early on a bad name
    tables = [read_table(p) for p in args.tables]
    curve = run(tables, args.estimators, args.budgets, args.repeats, args.seed)
    result = report(curve, tables, args.tables, args)
    write_json(args.out, result | {"host": host()})  # counts, not times: the host is recorded all the same
    figure(curve, tables, args.figure or Path(args.out).with_suffix(".png"))
    print(json.dumps(result[f"evaluations_to_median_spearman_{THRESHOLD}"], indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
