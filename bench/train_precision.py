"""Reranker training step time in float32 vs bf16 autocast, and what it does to the trained ranking.

    .venv/bin/python bench/train_precision.py [--groups 48] [--out bench/results/train_precision.json]

Groups of 6 HotpotQA passages (2 gold + 4 distractors of the same question, as relevance training
sees them), the study's budget (``training`` params) for one epoch from the same start, once per
precision. Reports seconds per step, the speed-up, both held-out losses and how many held-out
questions rank a gold passage first under each. Wall times are machine-dependent: they live here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from report import emit

from ragalign.core import params
from ragalign.core.rerank import CrossEncoder, Group, train_listwise
from ragalign.core.training import split_groups


def hotpot_groups(path: str, n: int) -> list[Group]:
    groups = []
    with open(path) as fh:
        for line in fh:
            rec = json.loads(line)
            gold = {t for t, _ in rec["supporting_facts"]}
            paras = [(t in gold, f"{t}: {''.join(s)}") for t, s in rec["context"]]
            ordered = [p for g, p in paras if g][:2] + [p for g, p in paras if not g][:4]
            if len(ordered) == 6:
                groups.append(Group(rec["id"], rec["question"], tuple(ordered), (0.5, 0.5, 0.0, 0.0, 0.0, 0.0)))
            if len(groups) == n:
                break
    return groups


def main(argv: list[str] | None = None) -> int:
    P = params.load()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--groups", type=int, default=48)
    ap.add_argument("--data", default="data/hotpotqa/hotpot_dev_distractor.jsonl")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    groups = hotpot_groups(args.data, args.groups)
    _, val = split_groups(groups, P.training.val_fraction, P.training.seed)
    result = {"torch_threads": torch.get_num_threads(), "groups": len(groups), "runs": {}}
    for name, autocast in (("float32", False), ("bf16_autocast", True)):
        model = CrossEncoder(P.models.encoder, P.training.max_length, prior_temperature=P.training.prior_temperature, prior_max_length=P.retrieval.max_length)
        model.prior([g.query for g in groups], [p for g in groups for p in g.passages][: len(groups)])  # warm the prior cache
        start = time.perf_counter()
        curve = train_listwise(model, groups, epochs=1, lr=P.training.lr, batch_size=P.training.batch_size, val_fraction=P.training.val_fraction,
                               seed=P.training.seed, desc=name, autocast=autocast)
        seconds = time.perf_counter() - start
        steps = int((curve.split == "train").sum())
        with torch.no_grad():
            top1 = sum(int(model.logits([g.query] * 6, list(g.passages)).argmax()) < 2 for g in val)
        result["runs"][name] = {
            "seconds_per_step": round(seconds / steps, 3),
            "val_loss_start": round(float(curve[curve.split == "val"].loss.iloc[0]), 4),
            "val_loss_best": round(float(curve[curve.split == "val"].loss.min()), 4),
            "val_gold_at_1": f"{top1}/{len(val)}",
        }
    result["speedup"] = round(result["runs"]["float32"]["seconds_per_step"] / result["runs"]["bf16_autocast"]["seconds_per_step"], 2)
    return emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
