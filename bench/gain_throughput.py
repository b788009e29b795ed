"""Gain-labelling throughput: batched path vs naive per-passage forwards vs the raw batched forward.

    .venv/bin/python bench/gain_throughput.py [--questions 8] [--k 10] [--repeats 1] [--out PATH]

A fixed sample: the first ``--questions`` train questions, each with its dense top ``--k`` passages
(``results/retrieval/dense.parquet``; without it, its two gold passages and the next corpus rows)
plus its pseudo-passage when ``results/gainrag/pseudo.parquet`` has one. Nothing is cached: every
path recomputes. Prints the JSON (keys ``pairs_per_s``, ``naive_pairs_per_s``, ``speedup_vs_naive``,
``roofline_fraction``) and writes it to ``--out`` when given. Wall times depend on the machine and on
whatever else runs on it, which is why they never go into ``results/metrics``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from ragalign import params
from ragalign.data import load_passages, load_questions
from ragalign.gain import build_pairs, throughput_benchmark
from ragalign.io import write_json
from ragalign.lm import LM
from ragalign.rag import PassageStore


def sample_pairs(lm: LM, n_questions: int, k: int, max_passage_tokens: int):
    """The benchmark's pairs (see the module docstring)."""
    questions = load_questions(split="train").head(n_questions)
    passages = load_passages()
    store = PassageStore(passages, lm, max_passage_tokens)
    dense = Path("results/retrieval/dense.parquet")
    if dense.exists():
        ranking = pd.read_parquet(dense)
    else:  # a stand-in ranking: gold passages first, then fixed corpus rows
        rows = []
        for q in questions.itertuples():
            pids = list(q.gold_pids) + [p for p in passages.pid.head(k) if p not in set(q.gold_pids)]
            rows += [{"qid": q.qid, "rank": r, "pid": p, "score": 0.0} for r, p in enumerate(pids[:k])]
        ranking = pd.DataFrame(rows)
    pseudo_path = Path("results/gainrag/pseudo.parquet")
    pseudo = pd.read_parquet(pseudo_path) if pseudo_path.exists() else None
    return build_pairs(questions, ranking, k, store, pseudo)


def main(argv: list[str] | None = None) -> int:
    P = params.load()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=P.gain.bench_questions or 8)
    ap.add_argument("--k", type=int, default=P.gain.k)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    lm = LM(P.models.generator, P.models.dtype, P.models.batch_tokens, show_progress=False)
    pairs = sample_pairs(lm, args.questions, args.k, P.rag.max_passage_tokens)
    result = throughput_benchmark(lm, pairs, P.gain.alpha, repeats=args.repeats)
    print(json.dumps(result, indent=2, sort_keys=True))
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
