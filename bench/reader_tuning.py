"""Reader fine-tuning: full fine-tuning vs LoRA vs the top half of the layers, on the same examples.

    .venv/bin/python bench/reader_tuning.py [--questions 80] [--out bench/results/reader_tuning.json]

Three trainings of the study's generator (``methods.reader.train_reader`` on the one trainer) from the
same start, on the same reader examples: the first ``--questions`` train questions of the finished
study with their stage-02 dense top ``rag.top_k`` passages (RAFT's P of them without the gold ones),
one epoch, the ``reader`` params' batch and learning rate (LoRA: ``--lora-lr``, adapters start at 0 and
need a larger step). Reported per way: seconds per training example, trainable parameters, the held-out
answer loss at the start and kept, its paired reduction with the 95% interval, and the kept step.
Wall times hold on the CPU this ran on (``host``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from report import emit

from ragalign.core import artifacts, params
from ragalign.core.data import load_splits
from ragalign.core.lm import LM
from ragalign.core.metrics import paired_interval
from ragalign.core.rag import PassageStore
from ragalign.core.retrieval import top_pids
from ragalign.core.training import HELDOUT
from ragalign.methods import reader


def main(argv: list[str] | None = None) -> int:
    P = params.load()
    R = P.reader
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=80)
    ap.add_argument("--lora-lr", type=float, default=10 * R.lr)
    ap.add_argument("--ways", nargs="+", default=list(reader.TUNE))
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    train, _, passages = load_splits()
    train = train.head(args.questions)
    lm = LM.from_params(P.models, show_progress=False)
    store = PassageStore(passages, lm, P.rag.max_passage_tokens)
    ranked = {q: v for q, v in top_pids(artifacts.DENSE.read()).items() if q in set(train.qid)}
    contexts = reader.training_contexts(ranked, dict(zip(train.qid, train.gold_pids, strict=True)), P.rag.top_k, R.p_no_gold, R.seed)
    examples = reader.reader_examples(lm, train, contexts, store.__getitem__)
    autocast = P.numerics().training_autocast
    result = {"questions": len(examples), "epochs": 1, "batch_size": R.batch_size, "lr": R.lr, "lora_lr": args.lora_lr,
              "val_fraction": R.val_fraction, "autocast": autocast, "runs": {}}
    n_train = None
    for way in args.ways:
        t0 = time.perf_counter()
        model, curve = reader.train_reader(P.models.generator, examples, tune=way, lr=args.lora_lr if way == "lora" else R.lr, epochs=1,
                                           batch_size=R.batch_size, val_fraction=R.val_fraction, seed=R.seed, autocast=autocast, desc=way)
        wall = time.perf_counter() - t0
        held = curve.attrs[HELDOUT]
        n_train = len(examples) - len(set(held["qid"]))
        best = held.get("best", held["kept"])
        trainable = sum(p.numel() for p in reader.load_trainable(P.models.generator, way).parameters() if p.requires_grad)
        result["runs"][way] = {
            "trainable_parameters": int(trainable),
            "s_per_train_example": round(wall / n_train, 3),
            "heldout_start": round(float(np.mean(held["start"])), 4),
            "heldout_best": round(float(np.mean(best)), 4),
            "heldout_kept": round(float(np.mean(held["kept"])), 4),
            "best_reduction": paired_interval(np.subtract(held["start"], best), P.rag.n_bootstrap, 0),
            "kept_step": held.get("kept_step"),
            "val_curve": [round(float(v), 4) for v in curve[curve.split == "val"].loss],
        }
        del model
    result["train_examples"] = n_train
    return emit(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
