"""What each source of reader-training questions adds: more of the benchmark, or SQuAD's extractive questions.

    .venv/bin/python bench/reader_data.py [--questions 100] [--eval-questions 40] [--out bench/results/reader_data.json]

Three readers trained from the same start with the study's reader settings (``reader`` params, one
epoch, ``methods.reader.train_reader``):

- ``benchmark``: ``--questions`` benchmark questions outside the study's train and test splits, each
  with its stage-02 dense top ``rag.top_k`` (RAFT's P of them without the gold passages);
- ``benchmark + squad``: those and as many SQuAD questions, each with its gold paragraph among
  same-article distractors (``methods.reader.distractor_contexts``);
- ``benchmark x2``: twice as many benchmark questions (the same-size control for the SQuAD arm).

Each is measured on the same ``--eval-questions`` further benchmark questions (in no training set, not
the test split): the answer loss (mean token NLL of the gold answer) with dense top-k, with the gold
passages and with none, and the reading gap (loss with none minus loss with the gold passages). Reported:
each arm's means and, paired per question against ``benchmark``, the differences with 95% intervals.
Wall times hold on the CPU this ran on (``host``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from report import emit

from ragalign.core import params
from ragalign.core.benchmarks import read_benchmark
from ragalign.core.data import load_benchmark, load_splits
from ragalign.core.lm import LM
from ragalign.core.metrics import paired_interval
from ragalign.core.rag import PassageStore
from ragalign.methods import reader
from ragalign.stages.reader_tuning import dense_contexts, training_examples


def eval_losses(model: torch.nn.Module, sets: dict[str, list[reader.Example]]) -> dict[str, np.ndarray]:
    """Context -> each evaluation question's answer loss under ``model``."""
    with torch.no_grad():
        return {c: reader.example_losses(model, examples).numpy() for c, examples in sets.items()}


def main(argv: list[str] | None = None) -> int:
    P = params.load()
    R = P.reader
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--eval-questions", type=int, default=40)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    n = args.questions
    train, test, passages = load_splits()
    every = load_benchmark()
    rest = every[~every.qid.isin(set(train.qid) | set(test.qid))].sample(frac=1.0, random_state=R.seed)
    pool, held = rest.head(2 * n).assign(source="benchmark"), rest.iloc[2 * n : 2 * n + args.eval_questions]
    squad, _ = read_benchmark(R.extra_dataset)
    squad = squad.sample(n=n, random_state=R.seed).assign(source=R.extra_dataset)
    lm = LM.from_params(P.models, show_progress=False)
    store = PassageStore(passages, lm, P.rag.max_passage_tokens)
    dense = dense_contexts(held)
    shown = {"dense": {q: v[: P.rag.top_k] for q, v in dense.items()}, "oracle": dict(zip(held.qid, held.gold_pids, strict=True)), "none": {}}
    eval_sets = {c: reader.reader_examples(lm, held, {q: ctx.get(q, []) for q in held.qid}, store.__getitem__) for c, ctx in shown.items()}
    arms = {"benchmark": pool.head(n), "benchmark + squad": pd.concat([pool.head(n), squad]), "benchmark x2": pool}
    autocast = P.numerics().training_autocast
    losses, runs = {}, {}
    for arm, questions in arms.items():
        examples = training_examples(P, lm, questions.reset_index(drop=True), passages)
        t0 = time.perf_counter()
        model, curve = reader.train_reader(P.models.generator, examples, tune=R.tune, lr=R.lr, epochs=1, batch_size=R.batch_size,
                                           val_fraction=R.val_fraction, seed=R.seed, autocast=autocast, desc=arm)
        wall = time.perf_counter() - t0
        losses[arm] = eval_losses(model, eval_sets)
        arm_losses = losses[arm]
        runs[arm] = {
            "training_questions": len(examples), "train_s": round(wall, 1), "kept_step": int(curve.attrs["heldout"]["kept_step"]),
            "loss": {c: round(float(v.mean()), 4) for c, v in arm_losses.items()},
            "reading_gap": round(float((arm_losses["none"] - arm_losses["oracle"]).mean()), 4),
        }
        del model
    base = losses["benchmark"]
    for arm in ("benchmark + squad", "benchmark x2"):
        arm_losses = losses[arm]
        runs[arm]["vs_benchmark"] = {  # positive: this arm is better (lower loss; wider reading gap)
            **{f"loss_{c}": paired_interval(base[c] - arm_losses[c], P.rag.n_bootstrap, 0) for c in arm_losses},
            "reading_gap": paired_interval((arm_losses["none"] - arm_losses["oracle"]) - (base["none"] - base["oracle"]), P.rag.n_bootstrap, 0),
        }
    result = {"questions": n, "eval_questions": len(held), "tune": R.tune, "lr": R.lr, "batch_size": R.batch_size, "p_no_gold": R.p_no_gold,
              "extra_dataset": R.extra_dataset, "autocast": autocast, "runs": runs}
    return emit(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
