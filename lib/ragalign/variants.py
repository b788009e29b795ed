"""The pipeline variants the RAG-E audit (stage 08) compares, and where each stage left its outputs.

Every variant names its rankings table (the order it shows passages to the generator), the
retriever kind whose score Integrated Gradients explains (BM25 is not differentiable), the model
directory of that retriever (``None``: the packaged ``models.encoder`` backbone), and the metrics
JSON (and key) that holds its EM/F1. All six are part of the default pipeline; ``check`` says which
outputs are missing so that the audit never drops a variant silently.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

Kind = Literal["bm25", "bi-encoder", "cross-encoder"]


@dataclass(frozen=True)
class Variant:
    name: str
    rankings: str
    method: str
    kind: Kind
    model: str | None
    stage: str
    metrics: str
    metrics_key: str

    @property
    def differentiable(self) -> bool:
        return self.kind != "bm25"

    def paths(self) -> list[str]:
        """Every file or directory this variant's audit reads."""
        return [self.rankings] + ([self.model] if self.model else [])


VARIANTS: tuple[Variant, ...] = (
    Variant("bm25", "results/retrieval/bm25.parquet", "bm25", "bm25", None, "02_retrieval", "results/metrics/baselines.json", "bm25"),
    Variant("dense", "results/retrieval/dense.parquet", "dense", "bi-encoder", None, "02_retrieval", "results/metrics/baselines.json", "dense"),
    Variant("reranker", "results/baselines/rankings.parquet", "reranker", "cross-encoder", "results/baselines/reranker", "03_rag_baselines", "results/metrics/baselines.json", "reranker"),
    Variant("gainrag", "results/gainrag/rankings.parquet", "gainrag", "cross-encoder", "results/gainrag/selector", "05_selector_training", "results/metrics/gainrag.json", "gainrag"),
    Variant("radio", "results/radio/rankings.parquet", "radio", "cross-encoder", "results/radio/reranker", "06_rationale_distillation", "results/metrics/radio.json", "radio"),
    Variant("figret", "results/figret/rankings.parquet", "figret", "bi-encoder", "results/figret/retriever", "07_figret", "results/metrics/figret.json", "figret"),
)


def get(name: str) -> Variant:
    for v in VARIANTS:
        if v.name == name:
            return v
    raise KeyError(f"unknown variant {name!r}; known: {[v.name for v in VARIANTS]}")


def check(variants: Sequence[Variant] = VARIANTS, root: str | Path = ".") -> pd.DataFrame:
    """One row per variant: which of its inputs are missing (and which stage makes them)."""
    rows = []
    for v in variants:
        missing = [p for p in v.paths() if not (Path(root) / p).exists()]
        rows.append({"variant": v.name, "kind": v.kind, "stage": v.stage, "available": not missing, "missing": ", ".join(missing)})
    return pd.DataFrame(rows)


def top_k(variant: Variant, qids: Sequence[str], k: int, root: str | Path = ".") -> dict[str, list[str]]:
    """qid -> the variant's first k pids in its order; raises if a question has fewer than k."""
    df = pd.read_parquet(Path(root) / variant.rankings)
    df = df[df.qid.isin(set(qids))].sort_values(["qid", "rank"], kind="stable")
    ranked = df.groupby("qid", sort=False).pid.agg(list).to_dict()
    short = [q for q in qids if len(ranked.get(q, [])) < k]
    if short:
        raise ValueError(f"{variant.rankings}: {len(short)} audited questions have fewer than the {k} ranked passages the variant shows (e.g. {short[:3]})")
    return {q: list(ranked[q][:k]) for q in qids}


def _find(node: object, key: str) -> dict | None:
    if isinstance(node, dict):
        if isinstance(node.get(key), dict) and "em" in node[key]:
            return node[key]
        for child in node.values():
            found = _find(child, key)
            if found is not None:
                return found
    return None


def answer_quality(variant: Variant, root: str | Path = ".") -> dict[str, float] | None:
    """EM/F1 (means and intervals) that the variant's own stage reported, or None if not (yet) there."""
    path = Path(root) / variant.metrics
    if not path.exists():
        return None
    entry = _find(json.loads(path.read_text()), variant.metrics_key)
    if entry is None:
        return None
    out: dict[str, float] = {}
    for metric in ("em", "f1"):
        value = entry.get(metric)
        if isinstance(value, dict):
            out.update({metric: value.get("mean"), f"{metric}_lo": value.get("lo"), f"{metric}_hi": value.get("hi")})
        elif value is not None:
            out[metric] = value
    if "n" in entry:
        out["n"] = entry["n"]
    return out
