"""Embedding the corpus: float32 vs bf16 autocast (``retrieval.bf16_autocast``), same passages and queries.

    .venv/bin/python bench/encode_precision.py [--out bench/results/encode_precision.json]

The bi-encoder embeds the 15k-passage corpus in stage 02 and again in stage 07 (FiGRet's final
retriever). Both precisions embed the same passage sample (the test questions' gold passages plus
the rest of the stage-02 dense top 20, the candidates that decide the rankings) and the test
questions. Reported: passages per second, the smallest cosine between the two embeddings of a
passage, and recall@k / MRR of the gold passages when ranking inside the sample, both ways.
Wall times are machine-dependent.
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd
import torch
from report import emit

from ragalign.core.data import load_passages, load_questions
from ragalign.core.retrieval import DenseEncoder, corpus_strings, dense_search, retrieval_quality, to_ranking


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    test, passages = load_questions(split="test"), load_passages()
    dense = pd.read_parquet("results/retrieval/dense.parquet")
    keep = set(dense[dense.qid.isin(test.qid)].pid) | {p for g in test.gold_pids for p in g}
    sample = passages[passages.pid.isin(keep)].reset_index(drop=True)
    texts, queries = corpus_strings(sample), test.question.tolist()
    result: dict = {"torch_threads": torch.get_num_threads(), "passages": len(texts), "questions": len(queries), "precisions": {}}
    emb = {}
    for name, autocast in (("float32", False), ("bf16 autocast", True)):
        enc = DenseEncoder("minilm-l6", 128, autocast=autocast)
        enc.embed(texts[:64])  # warm-up
        start = time.perf_counter()
        emb[name] = enc.embed(texts, 64)
        seconds = time.perf_counter() - start
        idx, scores = dense_search(emb[name], enc.embed(queries, 64), 20)
        quality = retrieval_quality(to_ranking(test.qid, idx, scores, sample.pid, name), test, [1, 2, 5, 10, 20])
        result["precisions"][name] = {"passages_per_second": round(len(texts) / seconds, 1), **quality}
    cos = (emb["float32"] * emb["bf16 autocast"]).sum(1)
    result["min_cosine"] = round(float(cos.min()), 6)
    result["speedup"] = round(result["precisions"]["bf16 autocast"]["passages_per_second"] / result["precisions"]["float32"]["passages_per_second"], 2)
    return emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
