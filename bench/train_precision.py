"""Reranker training in float32 vs bf16 autocast: step time, and agreement on a run that learns.

    .venv/bin/python bench/train_precision.py [--groups 64] [--out bench/results/train_precision.json]

Two trainings of the study's relevance reranker (``rerank.train_listwise`` on the one trainer, with
the ``training`` params: prior temperature, learning rate, batch, epochs, max length, seed) from the
same start, once per precision, on toy groups whose targets go against the dense prior
(``against_prior.groups``: the dense prior ranks a bait that restates the question first; the target
is the passage that answers it). The correction must learn to overturn the prior, so the held-out
loss falls by far more than precision noise, and agreement between the precisions means something.

Reported per precision: seconds per training step (held-out evaluations included), the held-out
loss at the start and at its best, the descent, the held-out curve, and how many held-out groups
rank the target first (vs the dense prior's count); for the pair: the speed-up, the largest
difference between the held-out curves and between the best losses, and ``learns`` (descent > 10x
that difference and a tenth of the start loss). Wall times hold on the CPU this ran on (``host``): bf16 is native on CPUs with
AVX-512 BF16 or AMX and emulated, about ten times slower, elsewhere.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from against_prior import groups as toy_groups
from against_prior import learning, val_losses
from report import emit

from ragalign.core import params
from ragalign.core.rerank import CrossEncoder, train_listwise
from ragalign.core.training import split_groups

PRECISIONS = (("float32", False), ("bf16_autocast", True))


def main(argv: list[str] | None = None) -> int:
    P = params.load()
    T = P.training
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--groups", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=T.epochs)
    ap.add_argument("--lr", type=float, default=T.lr)
    ap.add_argument("--prior-temperature", type=float, default=0.05 if T.prior_temperature == "fit" else T.prior_temperature)  # the toy task was measured at 0.05
    ap.add_argument("--filler", type=int, default=4, help="neutral sentences appended to each toy passage (its length)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    groups = toy_groups(args.groups, seed=0, group_size=T.group_size, filler=args.filler)
    _, val = split_groups(groups, T.val_fraction, T.seed)
    curves: dict[str, list[float]] = {}
    result = {
        "task": "toy groups against the dense prior (bench/against_prior.py): target = the answering passage, the prior ranks a bait first",
        "groups": len(groups),
        "val_groups": len(val),
        "budget": {"epochs": args.epochs, "lr": args.lr, "batch_size": T.batch_size, "max_length": T.max_length,
                   "prior_temperature": args.prior_temperature, "group_size": T.group_size, "seed": T.seed},
        "runs": {},
    }
    for name, autocast in PRECISIONS:
        model = CrossEncoder(P.models.encoder, T.max_length, prior_temperature=args.prior_temperature, prior_max_length=P.retrieval.max_length)
        queries, passages = [g.query for g in groups for _ in g.passages], [p for g in groups for p in g.passages]
        prior = model.prior(queries, passages).view(len(groups), -1)  # warms the prior's cache: the steps time training only
        if "prior_target_at_1" not in result:
            held_out = {g.qid for g in val}
            val_rows = [i for i, g in enumerate(groups) if g.qid in held_out]
            result["prior_target_at_1"] = f"{int((prior[val_rows].argmax(1) == 0).sum())}/{len(val)}"
            result["mean_tokens_per_pair"] = round(sum(len(model.tokenizer(q, p, truncation="only_second", max_length=T.max_length)["input_ids"])
                                                       for q, p in zip(queries, passages, strict=True)) / len(queries), 1)
        start = time.perf_counter()
        curve = train_listwise(model, groups, epochs=args.epochs, lr=args.lr, batch_size=T.batch_size, val_fraction=T.val_fraction,
                               seed=T.seed, desc=name, autocast=autocast)
        seconds = time.perf_counter() - start
        steps = int((curve.split == "train").sum())
        curves[name] = val_losses(curve)
        with torch.no_grad():
            top1 = sum(int(model.logits([g.query] * len(g.passages), list(g.passages)).argmax()) == 0 for g in val)
        result["runs"][name] = {
            "seconds_per_step": round(seconds / steps, 3),
            "steps": steps,
            "val_curve": [round(v, 4) for v in curves[name]],
            "val_target_at_1": f"{top1}/{len(val)}",
        }
    agreement = learning(curves)
    for name, stats in agreement.pop("runs").items():
        result["runs"][name] |= stats
    result["agreement"] = agreement
    result["speedup"] = round(result["runs"]["float32"]["seconds_per_step"] / result["runs"]["bf16_autocast"]["seconds_per_step"], 2)
    return emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
