"""RAG answering: one shared prefill (``LM.answer``) vs decoding and scoring the gold answer in two passes.

    .venv/bin/python bench/answering.py [--out bench/results/answering.json]

Every answering stage needs, per question and variant, the greedy reply and the gold answers'
token log-probabilities after the same prompt. The naive way forwards the prompt twice: once to
decode (``LM.generate``, alone, static cache) and once per gold answer to score
(``LM.token_logprobs``). ``LM.answer`` forwards it once and scores the gold answers and decodes on
its KV cache. Both run here on the same prompts (stage-02 dense top 5, the study's default), cold.
Reported: seconds per question, whether the replies are identical, and the largest difference of
the gold-answer likelihood (mean token log-prob, the headline outcome). Wall times are machine-dependent.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import torch
from report import emit, study_dtype

from ragalign.core.data import load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.rag import PassageStore, best_mean_logprob, build_prompt
from ragalign.core.retrieval import top_pids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--dtype", default=None, help="default: what the study resolves to here (models.dtype)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    lm = LM("smollm2-135m-instruct", args.dtype or study_dtype(), cache_root=tempfile.mkdtemp(), show_progress=False)
    test = load_questions(split="test").head(args.questions)
    store = PassageStore(load_passages(), lm, 128)
    dense = top_pids(pd.read_parquet("results/retrieval/dense.parquet"), 5)
    prompts = [build_prompt(q.question, store.texts(dense[q.qid])) for q in test.itertuples()]
    golds = [[str(a) for a in q.answers] for q in test.itertuples()]
    lm._generate(prompts[:1], 4)  # warm-up

    start = time.perf_counter()
    replies = lm._generate(prompts, 16)
    flat = [(i, g) for i, gs in enumerate(golds) for g in gs]
    scores = lm._token_logprobs([prompts[i] for i, _ in flat], [g for _, g in flat])
    naive_s = time.perf_counter() - start
    naive_gold = [best_mean_logprob([s for (j, _), s in zip(flat, scores, strict=True) if j == i]) for i in range(len(prompts))]

    start = time.perf_counter()
    shared = [lm._answer_one(p, g, 16) for p, g in zip(prompts, golds, strict=True)]
    shared_s = time.perf_counter() - start
    shared_gold = [best_mean_logprob(s) for _, s in shared]

    diff = np.abs(np.array(naive_gold) - np.array(shared_gold))
    result = {
        "torch_threads": torch.get_num_threads(),
        "dtype": lm.dtype,
        "questions": len(prompts),
        "mean_prompt_tokens": round(float(np.mean([len(lm.prompt_ids(p)) for p in prompts])), 1),
        "seconds_per_question": {"two passes (generate + token_logprobs)": round(naive_s / len(prompts), 3), "one shared prefill (LM.answer)": round(shared_s / len(prompts), 3)},
        "speedup": round(naive_s / shared_s, 2),
        "same_replies": sum(a == b for a, (b, _) in zip(replies, shared, strict=True)),
        "gold_logprob_max_abs_diff": round(float(diff.max()), 5),
        "gold_logprob_mean_abs_diff": round(float(diff.mean()), 5),
    }
    return emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
