"""The study's one trainer on every device at hand: the same training gives the same curves.

    python bench/device_training.py --encoder DIR --out bench/results/device_training.json

Runs the study's own training code (``core.training.fit``) twice per device, float32 and bf16
autocast: a relevance reranker (``rerank.train_reranker``: dense prior + a MiniLM cross-encoder
correction, listwise KL loss) and FiGRet's bi-encoder (``figret.training.train_retriever``:
set-level InfoNCE in curriculum order), each on a fixed toy set whose targets go against the
dense prior (the next question's answer), so that every step has a gradient. Reports every curve, the largest
difference in held-out loss between devices (float32 and autocast apart), the largest difference
in final scores, and the seconds. ``--encoder`` is a MiniLM directory (the packaged one, or a copy).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ragalign.core.models import use_device
from ragalign.core.rerank import Group, train_reranker
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


def reranker_run(encoder: str, autocast: bool) -> dict:
    # the target is the NEXT question's answer: against the dense prior, so every step has a gradient
    groups = [Group(f"q{i}{j}", q, (a, FACTS[(i + 1) % len(FACTS)][1], *NOISE[:2]), (0.0, 1.0, 0.0, 0.0)) for j in range(2) for i, (q, a) in enumerate(FACTS)]
    budget = SimpleNamespace(max_length=64, prior_temperature=0.05, epochs=3, lr=5e-5, batch_size=2, val_fraction=0.25, seed=0, bf16_autocast=autocast)
    start = time.perf_counter()
    model, curve = train_reranker(encoder, groups, budget, desc="reranker", prior_max_length=64)
    seconds = time.perf_counter() - start
    scores = model.score([q for q, _ in FACTS for _ in range(2)], [t for _, a in FACTS for t in (a, NOISE[0])])
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


def val_losses(run: dict) -> np.ndarray:
    return np.array([loss for split, loss in zip(run["curve"]["split"], run["curve"]["loss"], strict=True) if split == "val"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    runs: dict = {}
    for dev in devices:
        use_device(dev)
        for autocast in (False, True):
            key = f"{dev}/{'bf16_autocast' if autocast else 'float32'}"
            runs[key] = {"reranker": reranker_run(args.encoder, autocast), "figret": figret_run(args.encoder, autocast)}
            print(key, {m: r["seconds"] for m, r in runs[key].items()}, flush=True)
    comparisons = {}
    for precision in ("float32", "bf16_autocast"):
        for dev in devices[1:]:
            a, b = runs[f"cpu/{precision}"], runs[f"{dev}/{precision}"]
            comparisons[f"cpu vs {dev}, {precision}"] = {
                m: {
                    "val_loss_max_abs_diff": float(np.abs(val_losses(a[m]) - val_losses(b[m])).max()),
                    "final_score_max_abs_diff": float(np.abs(np.array(a[m]["scores"]) - np.array(b[m]["scores"])).max()),
                    "same_kept_checkpoint": int(np.argmin(val_losses(a[m]))) == int(np.argmin(val_losses(b[m]))),
                }
                for m in ("reranker", "figret")
            }
    out = {
        "devices": devices,
        "device_names": [torch.cuda.get_device_name(0)] if "cuda" in devices else [],
        "torch": torch.__version__,
        "encoder_weights": "MiniLM-L6 (all-MiniLM-L6-v2) weights rounded to bf16, loaded as float32 on every device",
        "comparisons": comparisons,
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(comparisons, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
