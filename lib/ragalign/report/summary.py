"""The study's headline table: one row per pipeline variant, and its place in the README."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ragalign.core.io import atomic_write_text
from ragalign.core.metrics import bootstrap_ci, paired_difference
from ragalign.core.validity import failed, gate_text
from ragalign.core.verdicts import describe, label, verdict


def context_gold_recall(answers: pd.DataFrame, questions: pd.DataFrame) -> pd.Series:
    """Per variant: mean fraction of a question's gold passages among the passages shown to the generator."""
    gold = dict(zip(questions.qid, questions.gold_pids, strict=True))
    recall = [len(set(ctx) & set(gold[q])) / len(gold[q]) for q, ctx in zip(answers.qid, answers.context_pids, strict=True)]
    return pd.Series(recall, index=answers.index).groupby(answers.variant, sort=False).mean()


def variant_rows(answers: pd.DataFrame, questions: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """Gold-answer likelihood and EM/F1 with bootstrap intervals, and context gold recall, one row per variant."""
    recall = context_gold_recall(answers, questions)
    rows = []
    for variant, df in answers.groupby("variant", sort=False):
        em, f1 = bootstrap_ci(df.em, n_boot, seed), bootstrap_ci(df.f1, n_boot, seed)
        lp = bootstrap_ci(df.gold_logprob, n_boot, seed)
        rows.append(
            {
                "variant": variant,
                "n": len(df),
                "gold_logprob": lp["mean"],
                "gold_logprob_lo": lp["lo"],
                "gold_logprob_hi": lp["hi"],
                "em": em["mean"],
                "em_lo": em["lo"],
                "em_hi": em["hi"],
                "f1": f1["mean"],
                "f1_lo": f1["lo"],
                "f1_hi": f1["hi"],
                "gold_recall": round(float(recall[variant]), 4),
            }
        )
    return pd.DataFrame(rows).set_index("variant")


# Paired comparisons of the headline: each method against the relevance reranker and against dense
# retrieval *at the same number of passages* (GainRAG shows one passage: its references are the
# relevance reranker on the same candidates, "no distillation", and dense top-1), plus the two
# checks that retrieval can help at all.
REFERENCES: dict[str, tuple[str | None, str | None]] = {
    # variant -> (relevance reranker at the same k, dense at the same k)
    "bm25": ("reranker", "dense"),
    "reranker": (None, "dense"),
    "radio": ("reranker", "dense"),
    "figret": ("reranker", "dense"),
    "gainrag": ("no_distillation", "dense_top1"),
    "gainrag_alpha0": ("no_distillation", "dense_top1"),
    "gainrag_no_pseudo": ("no_distillation", "dense_top1"),
    "no_distillation": (None, "dense_top1"),
}
RETRIEVAL_CHECKS = (("oracle", "no_retrieval"), ("dense", "no_retrieval"))


def paired_table(answers: pd.DataFrame, metric: str, n_boot: int, seed: int, margin: float | None = None) -> pd.DataFrame:
    """One row per (variant, reference): the paired difference of ``metric`` with its interval, the
    smallest difference detectable at 80% power (``mde``), ``identical`` (0 on every question) and its
    ``verdict`` (:func:`ragalign.core.verdicts.verdict`, equivalence within ``margin``)."""
    by = dict(tuple(answers.groupby("variant", sort=False)))
    pairs = [(v, ref, kind) for v, refs in REFERENCES.items() for ref, kind in zip(refs, ("reranker", "dense"), strict=True) if ref]
    pairs += [(a, b, "retrieval") for a, b in RETRIEVAL_CHECKS]
    rows = [
        {"variant": v, "reference": ref, "kind": kind} | paired_difference(by[v], by[ref], metric, n_boot, seed)
        for v, ref, kind in pairs
        if v in by and ref in by
    ]
    for row in rows:
        row["identical"] = row["identical"] or same_contexts(by[row["variant"]], by[row["reference"]])
        row["verdict"] = verdict(row, margin)
    return pd.DataFrame(rows)


def same_contexts(answers: pd.DataFrame, other: pd.DataFrame) -> bool:
    """Whether two variants showed the generator the same passages, in the same order, on every question both answered
    (False when either table lacks ``context_pids``)."""
    if "context_pids" not in answers or "context_pids" not in other:
        return False
    a, b = answers.set_index("qid").context_pids, other.set_index("qid").context_pids
    common = a.index.intersection(b.index)
    return bool(len(common)) and all(list(a[q]) == list(b[q]) for q in common)


def says(paired: pd.DataFrame, variant: str, reference: str, margin: float | None = None) -> str:
    """One row of :func:`paired_table` in words (:func:`ragalign.core.verdicts.describe`), by display names."""
    row = paired.set_index(["variant", "reference"]).loc[(variant, reference)].to_dict()
    return describe(row, VARIANT_SOURCES[variant][1], VARIANT_SOURCES[reference][1], margin)


def verdict_column(paired: pd.DataFrame, kind: str, margin: float | None = None) -> pd.Series:
    """Per variant: the verdict of its ``kind`` comparison (``dense``: against dense at the same k) as a table cell."""
    rows = paired[paired.kind == kind]
    return pd.Series([label(w, margin) for w in rows.verdict], index=rows.variant.to_numpy(), dtype=object)


def validity_gates(metrics: dict[str, dict]) -> dict[str, dict]:
    """Every stage's validity gates, named ``stage.gate``."""
    return {f"{stage}.{name}": gate for stage, block in metrics.items() for name, gate in block.get("validity", {}).items()}




def failed_gates_text(gates: dict[str, dict]) -> str:
    """The failed gates as a sentence for the top of the findings and the README ('' when all pass)."""
    bad = failed(gates)
    if not bad:
        return f"All {len(gates)} validity gates pass."
    return f"**{len(bad)} of {len(gates)} validity gates fail.** Not shown at this budget: " + "; ".join(gate_text(b, gates[b]) for b in bad) + "."


def _fmt(value: float | str, digits: int = 3) -> str:
    if isinstance(value, str):
        return value
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def markdown_table(table: pd.DataFrame, columns: Sequence[tuple[str, str]]) -> str:
    """A GitHub markdown table; ``columns`` are (column, header); ``em``/``f1`` get their intervals."""
    head = "| variant | " + " | ".join(h for _, h in columns) + " |"
    rule = "|---|" + "|".join("---:" for _ in columns) + "|"
    lines = [head, rule]
    for variant, row in table.iterrows():
        cells = []
        for col, _ in columns:
            if (col in ("em", "f1", "gold_logprob") or f"{col}_lo" in row) and pd.notna(row[col]):
                cells.append(f"{_fmt(row[col])} [{_fmt(row[col + '_lo'])}, {_fmt(row[col + '_hi'])}]")
            elif col in ("em", "f1", "gold_logprob") or f"{col}_lo" in row:
                cells.append("–")
            elif col.endswith("evaluations") or col.endswith("tokens"):
                cells.append("–" if pd.isna(row[col]) else f"{int(row[col]):,}")
            else:
                cells.append(_fmt(row[col]))
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def inject_readme(readme: str | Path, block: str, name: str = "results") -> bool:
    """Replace the README text between the ``name`` markers; True if the file changed."""
    begin, end = _markers(name)
    path = Path(readme)
    text = path.read_text()
    if begin not in text or end not in text:
        raise ValueError(f"{path} lacks the markers {begin} ... {end}")
    new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{block.rstrip()}\n{end}", text, flags=re.S)
    if new != text:
        atomic_write_text(path, new)
    return new != text


def readme_block(readme: str | Path, name: str = "results") -> str:
    """The README text between the ``name`` markers."""
    begin, end = _markers(name)
    text = Path(readme).read_text()
    return text.split(begin, 1)[1].split(end, 1)[0].strip()


def computed_in_text(numerics: dict, host: dict | None = None) -> str:
    """One line: what the results were computed in (``artifacts.NUMERICS``) and on which machine (``artifacts.HOST``)."""
    switches = f"embedding autocast {'on' if numerics['retrieval_autocast'] else 'off'}, reranker-training autocast {'on' if numerics['training_autocast'] else 'off'}"
    line = f"*Computed in {numerics['dtype']} on {numerics['device']} ({switches}; torch {numerics['torch']}, {numerics['cpu_capability']} CPU kernels)"
    if host is not None:
        cpu = host["host"]["cpu"]
        native = f"native bf16: {', '.join(cpu['bf16_flags'])}" if cpu["bf16_flags"] else "no native bf16"
        line += f", on {cpu['model']} (family {cpu['family']}, model {cpu['model_number']}; {native})"
        if "cuda_device" in host["host"]:
            line += f" with {host['host']['cuda_device']}"
    return line + ": results/numerics.json; another machine may resolve other numerics, and `dvc repro` then re-runs the study.*"


def timings_table(folder: str | Path = "results/timings", float32_factor: float | None = None) -> str:
    """Markdown table of each stage's last wall time and peak memory, and the variants it builds.

    Wall times depend on the machine and its load, so they live here (the README) and never in the
    byte-identical metrics or reports. A variant's wall time to build is that of the stages on its
    path through the graph (e.g. GainRAG: 01-05).
    """
    builds: dict[str, list[str]] = {}
    for stage, name in VARIANT_SOURCES.values():
        builds.setdefault(stage, []).append(name)
    builds.setdefault("10_rag_e_audit", []).append("(audit of seven variants)")
    builds.setdefault("11_summary", []).append("(this table)")
    rows = [json.loads(f.read_text()) for f in sorted(Path(folder).glob("*.json")) if f.stem not in ("00_numerics", "11_summary", "probe")]  # 11 is running now; 00 and its probe are re-run by `make study` before every repro (seconds)
    lines = ["| stage | builds | wall time | cold? | last cold time | peak memory |", "|---|---|---:|---|---:|---:|"]
    lines += [
        f"| {r['stage']} | {', '.join(builds.get(r['stage'], [])) or '–'} | {r['wall_s'] / 60:.1f} min | {temperature_word(r)} | "
        f"{_minutes(cold_seconds(r))} | {max(r['peak_rss_mib'], r.get('last_cold', {}).get('peak_rss_mib', 0)) / 1024:.1f} GiB |"
        for r in rows
    ]
    total = sum(r["wall_s"] for r in rows)
    colds = [cold_seconds(r) for r in rows]
    cold_total = f"**{_minutes(sum(colds))}**" if all(c is not None for c in colds) else "incomplete"
    cold = all(r.get("cold") for r in rows)
    table = "\n".join(lines) + f"\n| **total** | | **{total / 60:.1f} min** | {'cold' if cold else 'not all cold'} | {cold_total} | |\n"
    return table + cold_cost_text(rows, float32_factor)


def cold_cost_text(rows: list[dict], float32_factor: float | None) -> str:
    """What a cold run costs on the machines its cold figures name, and on a float32-only CPU of the same clock."""
    colds = [cold_seconds(r) for r in rows]
    if not rows or any(c is None for c in colds):
        return ""
    hosts = sorted({_host_words((r if r.get("cold") else r["last_cold"]).get("host", {})) for r in rows})
    minutes = sum(colds) / 60
    text = f"\nA cold run of these stages: **{minutes:.0f} min** on {' and '.join(hosts)}."
    if float32_factor:
        text += (f" A CPU without native bf16 computes in float32: there one answer of the cost probe takes {float32_factor:.1f}x as long "
                 f"(`bench/probe_speed.py`, float32 on AVX2 kernels against bf16, on this machine), so at least **{minutes * float32_factor / 60:.1f} h** "
                 "on an AVX2-only CPU of this clock and core count, more where a stage embeds or trains (native bf16 speeds those up far more "
                 "than an answer); `python -m ragalign.core.cost` probes each kind of work on yours.")
    return text + "\n"


def _host_words(host: dict) -> str:
    return f"{host.get('cpu', 'an unrecorded CPU')} ({host.get('capability', '?')}, {host.get('dtype', '?')})"


def cold_seconds(timing: dict) -> float | None:
    """The stage's cold wall time: this run's when it ran cold, else the last cold run's it kept, else None."""
    if timing.get("cold"):
        return timing["wall_s"]
    return timing.get("last_cold", {}).get("wall_s")


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f} min"


def temperature_word(timing: dict) -> str:
    """``cold`` (no value from the LLM cache), ``warm (N values from the cache)``, or ``not recorded`` (older runs)."""
    if "cold" not in timing:
        return "not recorded"
    hits = sum(v["hits"] for v in timing.get("cache", {}).values())
    return "cold" if timing["cold"] else f"warm ({hits:,} values from the cache)"


# Which stage built each variant, and the name it carries in the study's table.
VARIANT_SOURCES: dict[str, tuple[str, str]] = {
    # answers file variant -> (stage, display name)
    "no_retrieval": ("03_rag_baselines", "no retrieval"),
    "oracle": ("03_rag_baselines", "oracle (gold passages)"),
    "bm25": ("03_rag_baselines", "BM25 top-k"),
    "dense": ("03_rag_baselines", "dense top-k"),
    "reranker": ("03_rag_baselines", "relevance reranker"),
    "dense_top1": ("05_selector_training", "dense top-1"),
    "gainrag": ("05_selector_training", "GainRAG"),
    "gainrag_alpha0": ("05_selector_training", "GainRAG, α = 0"),
    "gainrag_no_pseudo": ("05_selector_training", "GainRAG, no pseudo-passage"),
    "no_distillation": ("05_selector_training", "GainRAG, no distillation"),
    "radio": ("06_rationale_distillation", "RADIO"),
    "figret": ("07_figret", "FiGRet"),
}

# Variants audited by stage 10, by their answers-file name.
AUDITED = {"bm25": "bm25", "dense": "dense", "reranker": "reranker", "gainrag": "gainrag", "radio": "radio", "figret": "figret"}


TUNED_AUDIT = "dense_tuned_reader"  # the audit's variant: dense contexts read by the tuned reader (audit.variants)


def build_costs(metrics: dict[str, dict]) -> dict[str, dict[str, int]]:
    """LLM evaluations and tokens spent to *build* each variant (answering the test split excluded),
    from the ``build_cost`` block of every method stage's metrics (``rag.build_cost``)."""
    return {v: cost for block in metrics.values() for v, cost in block["build_cost"].items()}


def alignment_columns(rag_e: dict, p: float) -> dict[str, dict[str, float]]:
    """Per audited variant with at least two documents: WARG (paper form and extrapolated) at ``p``, failure rates, Spearman."""
    out = {}
    for name, block in rag_e.get("variants", {}).items():
        o = block["original"]
        if o is None:  # a one-document context: no ranking to align
            continue
        out[name] = {
            "warg": o["warg"]["truncated"][f"{p:g}"]["mean"],
            "warg_ext": o["warg"]["ext"][f"{p:g}"]["mean"],
            "wasted_retrieval": o["wasted_retrieval"]["mean"],
            "noise_distraction": o["noise_distraction"]["mean"],
            "spearman": o["spearman"]["mean"],
        }
    return out
