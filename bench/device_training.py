"""The study's one trainer on every device at hand, on runs that learn: the same training gives the same curves.

    python bench/device_training.py [--encoder DIR] [--out bench/results/device_training.json]

Runs the study's own training code (``core.training.fit``) twice per device, float32 and bf16
autocast, on two toy tasks where the start is wrong and training must move it:

- a relevance reranker (``rerank.train_reranker``: dense prior / 0.05 + a MiniLM cross-encoder
  correction, listwise KL loss) on ``against_prior.groups``: the dense prior ranks a bait that
  restates the question first, the target is the passage that answers it, and held-out groups
  are other (made-up) people, so the held-out loss falls only if the correction learns the rule;
- FiGRet's bi-encoder (``figret.training.train_retriever``: set-level InfoNCE in curriculum order)
  on facts whose positive is the next question's answer (against the encoder's own similarity).

Reported: every curve and its held-out start, best and descent; for every pair of runs that should
agree (CPU vs CUDA at each precision, float32 vs bf16 autocast on each device) the largest
difference between the held-out curves, between the final scores, whether the same checkpoint is
kept, and ``learns`` (``against_prior.learning``: the descent exceeds 10x the curves' difference and
a tenth of the start loss). ``--encoder`` is a MiniLM directory or the packaged name.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np
import torch
from against_prior import groups as toy_groups
from against_prior import learning, val_losses
from report import emit

from ragalign.core.models import use_device
from ragalign.core.rerank import train_reranker
from ragalign.core.retrieval import DenseEncoder
from ragalign.methods.figret.examples import Example
from ragalign.methods.figret.training import train_retriever

FACTS = [
    ("Where is the Eiffel Tower?", "The Eiffel Tower is in Paris."),
    ("Who wrote Hamlet?", "Hamlet was written by Shakespeare."),
    ("What do bees make?", "Bees make honey."),
    ("What is the capital of Japan?", "Tokyo is the capital of Japan."),
    ("How many legs has a spider?", "A spider has eight legs."),
    ("What colour is the sky?", "The sky is blue."),
]
NOISE = ["Bananas are yellow fruit.", "The stock market fell today.", "Chess is a board game."]
TEXTS = {f"p{i}": a for i, (_, a) in enumerate(FACTS)} | {f"n{i}": t for i, t in enumerate(NOISE)}
RERANKER_BUDGET = dict(max_length=96, prior_temperature=0.05, epochs=4, lr=3e-4, batch_size=4, val_fraction=0.25, seed=0)
RERANKER_GROUPS = 32
PRECISIONS = ("float32", "bf16_autocast")


def reranker_run(encoder: str, autocast: bool, n_groups: int = RERANKER_GROUPS, epochs: int = RERANKER_BUDGET["epochs"]) -> dict:
    groups = toy_groups(n_groups, seed=0, group_size=6, filler=1)
    budget = SimpleNamespace(**(RERANKER_BUDGET | {"epochs": epochs}), bf16_autocast=autocast)
    start = time.perf_counter()
    model, curve = train_reranker(encoder, groups, budget, desc="reranker", prior_max_length=64)
    seconds = time.perf_counter() - start
    scores = model.score([g.query for g in groups for _ in g.passages], [p for g in groups for p in g.passages])
    return {"curve": curve.to_dict(orient="list"), "scores": scores.tolist(), "seconds": round(seconds, 2)}


def figret_run(encoder: str, autocast: bool) -> dict:
    examples = [
        Example(f"q{i}{j}", q, "relevance", (f"p{(i + 1) % len(FACTS)}",), ((f"p{i}",), *((f"n{n}",) for n in range(2))), 1.0 + i)
        for j in range(2)
        for i, (q, _) in enumerate(FACTS)
    ]
    enc = DenseEncoder(encoder, 64)
    start = time.perf_counter()
    curve = train_retriever(enc, examples, TEXTS, epochs=3, lr=2e-5, batch_size=4, temperature=0.05, val_fraction=0.25, seed=0, autocast=autocast)
    seconds = time.perf_counter() - start
    emb = enc.embed([q for q, _ in FACTS] + list(TEXTS.values()))
    return {"curve": curve.to_dict(orient="list"), "scores": (emb[: len(FACTS)] @ emb[len(FACTS) :].T).ravel().tolist(), "seconds": round(seconds, 2)}


def compare(a: dict, b: dict) -> dict:
    """Two runs that should agree: their curves' and scores' largest differences, the kept checkpoint, and whether they learned."""
    va, vb = val_losses(a["curve"]), val_losses(b["curve"])
    agreement = learning({"a": va, "b": vb})
    return {
        "val_loss_max_abs_diff": agreement["val_loss_max_abs_diff"],
        "val_loss_best_abs_diff": agreement["val_loss_best_abs_diff"],
        "final_score_max_abs_diff": round(float(np.abs(np.array(a["scores"]) - np.array(b["scores"])).max()), 4),
        "same_kept_checkpoint": int(np.argmin(va)) == int(np.argmin(vb)),
        "descent": agreement["descent"],
        "learns": agreement["learns"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", default="minilm-l6")
    ap.add_argument("--groups", type=int, default=RERANKER_GROUPS, help="reranker toy groups")
    ap.add_argument("--epochs", type=int, default=RERANKER_BUDGET["epochs"], help="reranker epochs")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    runs: dict = {}
    for dev in devices:
        use_device(dev)
        for precision in PRECISIONS:
            key = f"{dev}/{precision}"
            runs[key] = {"reranker": reranker_run(args.encoder, precision == "bf16_autocast", args.groups, args.epochs), "figret": figret_run(args.encoder, precision == "bf16_autocast")}
            for run in runs[key].values():
                v = val_losses(run["curve"])
                run |= {"val_loss_start": round(v[0], 4), "val_loss_best": round(min(v), 4), "descent": round(v[0] - min(v), 4)}
            print(key, {m: (r["seconds"], r["val_loss_start"], r["val_loss_best"]) for m, r in runs[key].items()}, flush=True)
    pairs = [(f"cpu vs {dev}, {p}", f"cpu/{p}", f"{dev}/{p}") for p in PRECISIONS for dev in devices[1:]]
    pairs += [(f"float32 vs bf16_autocast, {dev}", f"{dev}/float32", f"{dev}/bf16_autocast") for dev in devices]
    comparisons = {name: {m: compare(runs[a][m], runs[b][m]) for m in ("reranker", "figret")} for name, a, b in pairs}
    out = {
        "devices": devices,
        "device_names": [torch.cuda.get_device_name(0)] if "cuda" in devices else [],
        "encoder": args.encoder,
        "reranker_task": f"{args.groups} toy groups against the dense prior (bench/against_prior.py), budget {RERANKER_BUDGET | {'epochs': args.epochs}}",
        "figret_task": "6 facts x 2 copies, positive = the next question's answer, lr 2e-5, 3 epochs, temperature 0.05",
        "comparisons": comparisons,
        "learns_everywhere": all(c["learns"] for by_model in comparisons.values() for c in by_model.values()),
        "runs": runs,
    }
    return emit(out, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
