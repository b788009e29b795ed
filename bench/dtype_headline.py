"""bf16 vs float32 on the whole headline: every variant's test contexts answered in both dtypes.

    .venv/bin/python bench/dtype_headline.py [--out bench/results/dtype_headline.json]

Run in a finished study (it reads the answers tables of stages 03, 05, 06 and 07, i.e. each
variant's own test contexts, and GainRAG's pseudo-passages). Every (question, context) is answered
again by the generator in float32 and in bfloat16 through the study's own path (``LM.answer``;
the study's LLM cache serves what it already holds, so on a bf16 study only the float32 side is
computed). Reported per variant: the gold-answer log-prob (mean token log-prob of the best gold
answer) in each dtype, how far it moves per question (max and mean absolute difference), EM and F1
in each dtype and the share of greedy answers that change; per headline comparison (stage 11's
paired table: each method against the relevance reranker and dense at the same k, and the two
retrieval checks): the paired difference and its verdict in each dtype, and whether the verdict
changes. This is the evidence behind the committed dtype (README, "Numerics").
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from ragalign.core import artifacts
from ragalign.core.data import load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.params import load
from ragalign.core.rag import PassageStore, answer_questions
from ragalign.core.verdicts import verdict
from ragalign.methods.gainrag.pseudo import pseudo_texts
from ragalign.report.summary import VARIANT_SOURCES, paired_table

DTYPES = ("float32", "bfloat16")


def answer_all(dtype: str, committed: pd.DataFrame, test: pd.DataFrame, passages: pd.DataFrame, pseudo: dict[str, str], P) -> pd.DataFrame:
    """Every variant's committed test contexts, answered again by the generator in ``dtype``."""
    lm = LM(P.models.generator, dtype, show_progress=True)
    store = PassageStore(passages, lm, P.rag.max_passage_tokens)
    tables = []
    for variant, rows in committed.groupby("variant", sort=False):
        contexts = dict(zip(rows.qid, rows.context_pids, strict=True))
        texts = {q: [pseudo[p] if p in pseudo else store[p] for p in ctx] for q, ctx in contexts.items()}
        questions = test.set_index("qid").loc[rows.qid].reset_index()
        tables.append(answer_questions(lm, questions, contexts, store, variant, P.rag.max_new_tokens, context_texts=texts))
    return pd.concat(tables, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    from report import emit

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    P = load(args.params)
    test = load_questions(split="test")
    committed = pd.concat([a.read() for a in artifacts.ANSWER_TABLES], ignore_index=True)
    committed = committed[committed.variant.isin(VARIANT_SOURCES) & committed.qid.isin(set(test.qid))]
    passages, pseudo = load_passages(), pseudo_texts(artifacts.PSEUDO.read())
    answers, seconds = {}, {}
    for dtype in DTYPES:
        start = time.perf_counter()
        answers[dtype] = answer_all(dtype, committed, test, passages, pseudo, P).set_index(["variant", "qid"])
        seconds[dtype] = round(time.perf_counter() - start, 1)
    a, b = answers["float32"], answers["bfloat16"].loc[answers["float32"].index]
    variants = {}
    for variant in a.index.unique("variant"):
        x, y = a.loc[variant], b.loc[variant]
        diff = (y.gold_logprob - x.gold_logprob).abs()
        variants[variant] = {
            "gold_logprob": {d: round(float(t.gold_logprob.mean()), 4) for d, t in (("float32", x), ("bfloat16", y))},
            "gold_logprob_max_abs_diff": round(float(diff.max()), 4),
            "gold_logprob_mean_abs_diff": round(float(diff.mean()), 4),
            "em": {d: round(float(t.em.mean()), 4) for d, t in (("float32", x), ("bfloat16", y))},
            "f1": {d: round(float(t.f1.mean()), 4) for d, t in (("float32", x), ("bfloat16", y))},
            "answers_changed": round(float((x.answer != y.answer).mean()), 4),
            "n": len(x),
        }
    margin = P.rag.equivalence_margin
    comparisons = []
    for metric in ("gold_logprob", "f1"):
        tables = {d: paired_table(answers[d].reset_index(), metric, P.rag.n_bootstrap, P.data.seed).set_index(["variant", "reference"]) for d in DTYPES}
        for key, row32 in tables["float32"].iterrows():
            row16 = tables["bfloat16"].loc[key]
            words = {d: verdict(r.to_dict(), margin if metric == "gold_logprob" else None) for d, r in (("float32", row32), ("bfloat16", row16))}
            comparisons.append(
                {"metric": metric, "variant": key[0], "reference": key[1], "kind": row32.kind}
                | {f"{d}": {k: round(float(r[k]), 4) for k in ("mean", "lo", "hi")} | {"verdict": words[d]} for d, r in (("float32", row32), ("bfloat16", row16))}
                | {"verdict_changes": words["float32"] != words["bfloat16"], "mean_shift": round(float(row16["mean"] - row32["mean"]), 4)}
            )
    changed = [c for c in comparisons if c["verdict_changes"]]
    result = {
        "n_questions": len(test),
        "variants": variants,
        "comparisons": comparisons,
        "verdicts_changed": [f"{c['metric']}: {c['variant']} - {c['reference']}: {c['float32']['verdict']} -> {c['bfloat16']['verdict']}" for c in changed],
        "max_abs_gold_logprob_diff": max(v["gold_logprob_max_abs_diff"] for v in variants.values()),
        "max_abs_mean_shift_gold_logprob": max(abs(c["mean_shift"]) for c in comparisons if c["metric"] == "gold_logprob"),
        "max_abs_variant_mean_diff": round(max(abs(v["gold_logprob"]["bfloat16"] - v["gold_logprob"]["float32"]) for v in variants.values()), 4),
        "equivalence_margin": margin,
        "seconds": seconds,
        "note": "seconds: wall time of each dtype's pass, with whatever the study's LLM cache already held (a bf16 study holds its bf16 answers)",
    }
    print(f"verdicts changed: {len(changed)} of {len(comparisons)}", file=sys.stderr)
    return emit(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
