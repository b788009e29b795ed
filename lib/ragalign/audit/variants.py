"""The pipeline variants the RAG-E audit (stage 10) compares, and which artifacts hold each one.

Every variant names its rankings (the order it shows passages to the generator), the retriever
kind whose score Integrated Gradients explains (BM25 is not differentiable), the model directory of
that retriever (``None``: the packaged ``models.encoder`` backbone) and the answers table its stage
wrote, and the generator that reads it (the tuned reader of stage 08 for one variant). All are
:mod:`ragalign.core.artifacts`. All seven are part of the default pipeline; ``check`` says
which outputs are missing so that the audit never drops a variant silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from ragalign.core import artifacts
from ragalign.core.artifacts import Artifact
from ragalign.core.rag import summarise

Kind = Literal["bm25", "bi-encoder", "cross-encoder"]


@dataclass(frozen=True)
class Variant:
    name: str
    rankings: Artifact
    kind: Kind
    model: Artifact | None
    answers: Artifact  # the table with the variant's answers (rows of variant == answers_variant, default name)
    reader: Artifact | None = None  # the generator that reads the context (None: the study's models.generator)
    answers_variant: str | None = None

    @property
    def stage(self) -> str:
        return self.rankings.stage if self.model is None else self.model.stage

    @property
    def differentiable(self) -> bool:
        return self.kind != "bm25"

    def inputs(self) -> list[Artifact]:
        """Every artifact this variant's audit reads."""
        return [self.rankings, self.answers] + [a for a in (self.model, self.reader) if a]


VARIANTS: tuple[Variant, ...] = (
    Variant("bm25", artifacts.BM25, "bm25", None, artifacts.BASELINE_ANSWERS),
    Variant("dense", artifacts.DENSE, "bi-encoder", None, artifacts.BASELINE_ANSWERS),
    Variant("reranker", artifacts.RERANKER_RANKINGS, "cross-encoder", artifacts.RELEVANCE_RERANKER, artifacts.BASELINE_ANSWERS),
    Variant("gainrag", artifacts.SELECTOR_RANKINGS, "cross-encoder", artifacts.SELECTOR, artifacts.GAIN_ANSWERS),
    Variant("radio", artifacts.RADIO_RANKINGS, "cross-encoder", artifacts.RADIO_RERANKER, artifacts.RADIO_ANSWERS),
    Variant("figret", artifacts.FIGRET_RANKINGS, "bi-encoder", artifacts.FIGRET_RETRIEVER, artifacts.FIGRET_ANSWERS),
    # the other side of the seam: dense contexts read by the generator tuned on them (stage 08)
    Variant("dense_tuned_reader", artifacts.DENSE, "bi-encoder", None, artifacts.READER_ANSWERS, reader=artifacts.READER, answers_variant="tuned:dense"),
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
        missing = [a.path for a in v.inputs() if not a.exists(root)]
        rows.append({"variant": v.name, "kind": v.kind, "stage": v.stage, "available": not missing, "missing": ", ".join(missing)})
    return pd.DataFrame(rows)


def top_k(variant: Variant, qids: Sequence[str], k: int, root: str | Path = ".") -> dict[str, list[str]]:
    """qid -> the variant's first k pids in its order; raises if a question has fewer than k."""
    df = variant.rankings.read(root)
    df = df[df.qid.isin(set(qids))].sort_values(["qid", "rank"], kind="stable")
    ranked = df.groupby("qid", sort=False).pid.agg(list).to_dict()
    short = [q for q in qids if len(ranked.get(q, [])) < k]
    if short:
        raise ValueError(f"{variant.rankings.path}: {len(short)} audited questions have fewer than the {k} ranked passages the variant shows (e.g. {short[:3]})")
    return {q: list(ranked[q][:k]) for q in qids}


def answer_quality(variant: Variant, n_boot: int, seed: int, root: str | Path = ".") -> dict | None:
    """EM, F1 and gold log-prob (means and 95% bootstrap intervals, :func:`rag.summarise`) of the
    variant's answers on the test split, or None if not (yet) there."""
    if not variant.answers.exists(root):
        return None
    table = variant.answers.read(root)
    name = variant.answers_variant or variant.name
    rows = table[table.variant == name]
    return summarise(rows, n_boot, seed)[name] if len(rows) else None
