"""Gain-labelling throughput: the study's path vs the naive way vs padded batches, against a roofline.

    .venv/bin/python bench/gain_throughput.py [--questions 6] [--k 7] [--out bench/results/gain_throughput.json]

A fixed sample: the first ``--questions`` train questions, each with its dense top ``--k`` passages
(``results/retrieval/dense.parquet``; without it, its gold passages and the next corpus rows).
Three ways to compute the same labels, none cached:

- ``study``: ``gainrag.labels.compute_pair_scores``: one unpadded forward per sequence, the no-passage pass
  shared by a question's passages, only answer positions through the LM head (batch-invariant).
- ``naive``: per passage, one forward with and one without the passage, full-vocabulary logits.
- ``padded``: the study's sequences in right-padded batches of <= 6144 tokens (what the study did
  before it was made batch-invariant): what invariance costs.

Each path's achieved FLOP/s of useful (unpadded) tokens is reported as a fraction of the machine's
matrix-multiply throughput in the labels' dtype, measured in the same run (``roofline.gemm_peak``), and its labels
are compared with the naive ones. Wall times depend on the machine and its load: they live here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from report import emit
from roofline import forward_flops, gemm_peak, timed

from ragalign.core import params
from ragalign.core.data import load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.models import use_device
from ragalign.core.rag import PassageStore
from ragalign.methods.gainrag.labels import Pair, build_pairs, compute_pair_scores, gain_label, pair_scores, perplexity


def sample_pairs(lm: LM, n_questions: int, k: int, max_passage_tokens: int) -> list[Pair]:
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
    return build_pairs(questions, ranking, k, store)


@torch.inference_mode()
def naive_scores(lm: LM, pairs: list[Pair], alpha: float) -> list[dict]:
    """Per passage: one forward with and one without it, full-vocabulary logits at every position."""
    out = []
    for p in pairs:
        ans = lm.answer_ids(p.answer)
        logits = []
        for prompt in (p.prompt, p.noctx_prompt):
            ids = lm.prompt_ids(prompt)
            full = lm.model(input_ids=torch.tensor([ids + ans], device=lm.device)).logits[0]
            logits.append(full[len(ids) - 1 : len(ids) - 1 + len(ans)].float())
        out.append(pair_scores(logits[0], logits[1], ans, alpha))
    return out


@torch.inference_mode()
def padded_scores(lm: LM, pairs: list[Pair], alpha: float, batch_tokens: int = 6144) -> list[dict]:
    """The same sequences in right-padded batches (longest first, <= ``batch_tokens`` padded tokens)."""

    def logits_of(items: list[tuple[str, str]]) -> list[torch.Tensor]:
        seqs = [(lm.prompt_ids(a), lm.answer_ids(b)) for a, b in items]
        order = sorted(range(len(seqs)), key=lambda i: -sum(map(len, seqs[i])))
        out: list[torch.Tensor | None] = [None] * len(seqs)
        start = 0
        while start < len(order):
            width = sum(map(len, seqs[order[start]]))
            batch = order[start : start + max(1, batch_tokens // width)]
            ids = torch.full((len(batch), width), lm.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(batch):
                n = sum(map(len, seqs[i]))
                ids[row, :n], mask[row, :n] = torch.tensor(seqs[i][0] + seqs[i][1]), 1
            hidden = lm.model.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).last_hidden_state
            for row, i in enumerate(batch):
                p, a = seqs[i]
                out[i] = lm.model.lm_head(hidden[row, len(p) - 1 : len(p) - 1 + len(a)]).float()
            start += len(batch)
        return out

    noctx_keys = sorted({(p.noctx_prompt, p.answer) for p in pairs})
    noctx = dict(zip(noctx_keys, logits_of(noctx_keys), strict=True))
    ctx = logits_of([(p.prompt, p.answer) for p in pairs])
    return [pair_scores(c, noctx[(p.noctx_prompt, p.answer)], lm.answer_ids(p.answer), alpha) for c, p in zip(ctx, pairs, strict=True)]


def labels(scores: list[dict]) -> np.ndarray:
    return np.array([gain_label(perplexity(s["logprob_cd"], s["n_tokens"])) for s in scores])


def main(argv: list[str] | None = None) -> int:
    P = params.load()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=6)
    ap.add_argument("--k", type=int, default=P.gain.k)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    device = use_device(P.models.device)
    lm = LM.from_params(P.models, show_progress=False)
    pairs = sample_pairs(lm, args.questions, args.k, P.rag.max_passage_tokens)
    compute_pair_scores(lm, pairs[:2], P.gain.alpha)  # warm-up
    peak = gemm_peak(device, getattr(torch, lm.dtype))  # in the dtype the labels are computed in (bf16 is emulated on some CPUs)
    runs = {
        "study": timed(lambda: compute_pair_scores(lm, pairs, P.gain.alpha), device),
        "naive": timed(lambda: naive_scores(lm, pairs, P.gain.alpha), device),
        "padded": timed(lambda: padded_scores(lm, pairs, P.gain.alpha), device),
    }
    # useful work: the study's sequences (no-passage once per question-answer) with answer positions through the head
    seqs = sorted({(p.noctx_prompt, p.answer) for p in pairs}) + [(p.prompt, p.answer) for p in pairs]
    lengths = [len(lm.prompt_ids(a)) + len(lm.answer_ids(b)) for a, b in seqs]
    useful = forward_flops(lm.model, lengths, sum(len(lm.answer_ids(b)) for _, b in seqs))
    ref = labels(runs["naive"][0])
    result = {
        "device": device,
        "dtype": lm.dtype,
        "torch_threads": torch.get_num_threads(),
        "n_pairs": len(pairs),
        "n_questions": len({p.qid for p in pairs}),
        "gemm_peak_gflops": round(peak / 1e9, 1),
        "gemm_dtype": lm.dtype,
        "pairs_per_s": {name: round(len(pairs) / t, 2) for name, (_, t) in runs.items()},
        "seconds": {name: round(t, 2) for name, (_, t) in runs.items()},
        "speedup_vs_naive": round(runs["naive"][1] / runs["study"][1], 2),
        "roofline_fraction": {name: round(useful / t / peak, 3) for name, (_, t) in runs.items()},
        "max_abs_label_diff_vs_naive": {name: float(f"{np.abs(labels(s) - ref).max():.2e}") for name, (s, _) in runs.items()},
        "labels_equal_naive_bitwise": {name: bool(np.array_equal(labels(s), ref)) for name, (s, _) in runs.items()},
    }
    return emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
