"""The generator's paths on every device at hand: the same numbers on CPU and CUDA, timed, and a roofline.

    python bench/device_check.py --model DIR --sample sample.json --out bench/results/device_check.json

Runs the study's own code (``ragalign.core.lm``, ``ragalign.methods.gainrag.labels``, ``ragalign.audit.games``) on each
device: gold-answer log-likelihoods, greedy answers, GainRAG gain labels and the Shapley values of a
RAG-E game (all 2^k coalitions), each batched as the pipeline batches them. It checks that every
value is batch-invariant on that device (alone == in a batch), compares devices and dtypes value by
value, and reports each path's achieved FLOP/s of useful (unpadded) tokens as a fraction of the
device's measured bf16 matrix-multiply peak (a large GEMM in the same run). ``--sample`` is a small
JSON of questions with gold and distractor passages (``make_sample`` writes one from HotpotQA).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from roofline import forward_flops as _flops
from roofline import gemm_peak, timed

from ragalign.audit.games import AuditGame, game_values, per_answer
from ragalign.audit.shapley import exact_shapley
from ragalign.core.lm import LM
from ragalign.core.numerics import host
from ragalign.core.rag import build_prompt, clean_answer
from ragalign.methods.gainrag.labels import Pair, compute_pair_scores, gain_label, perplexity


def make_sample(hotpot_jsonl: str, n: int, out: str) -> None:
    """The first ``n`` HotpotQA records as {question, answers, gold, distractors} (texts as the study writes them)."""
    rows = []
    with open(hotpot_jsonl) as fh:
        for line in fh:
            rec = json.loads(line)
            gold_titles = {t for t, _ in rec["supporting_facts"]}
            paras = [(t, f"{t}: {''.join(s)}") for t, s in rec["context"]]
            rows.append({
                "question": rec["question"],
                "answers": [rec["answer"]],
                "gold": [p for t, p in paras if t in gold_titles],
                "distractors": [p for t, p in paras if t not in gold_titles],
            })
            if len(rows) == n:
                break
    Path(out).write_text(json.dumps(rows))


def forward_flops(lm: LM, lengths: list[int], head_positions: int) -> float:
    return _flops(lm.model, lengths, head_positions)


def run_paths(lm: LM, sample: list[dict], k: int, n_games: int) -> dict:
    """Every path's values and wall time on ``lm``'s device."""
    dev = lm.device
    prompts = [build_prompt(r["question"], (r["gold"] + r["distractors"])[:3]) for r in sample]
    answers = [r["answers"][0] for r in sample]
    out: dict = {"values": {}, "seconds": {}, "flops": {}}
    lm.token_logprobs(prompts[:2], answers[:2])  # warm-up
    # 1. gold-answer likelihood, batched; batch invariance: each alone
    lp, t = timed(lambda: lm._token_logprobs(prompts, answers), dev)
    alone = [lm._token_logprobs([p], [a])[0] for p, a in zip(prompts, answers, strict=True)]
    out["values"]["gold_logprob"] = [float(np.mean(x)) for x in lp]
    out["batch_invariant_scores"] = all(a == b for a, b in zip(alone, lp, strict=True))
    lens = [len(lm.prompt_ids(p)) + len(lm.answer_ids(a)) for p, a in zip(prompts, answers, strict=True)]
    out["seconds"]["likelihood"], out["flops"]["likelihood"] = t, forward_flops(lm, lens, sum(len(lm.answer_ids(a)) for a in answers))
    # 2. greedy answers (each decoded alone, as the study does); invariance: reversed order
    gen, t = timed(lambda: lm._generate(prompts, 16), dev)
    out["values"]["answers"] = [clean_answer(g) for g in gen]
    out["batch_invariant_answers"] = lm._generate(prompts[::-1], 16)[::-1] == gen
    new = [len(lm.answer_ids(g)) if g else 1 for g in gen]
    out["seconds"]["generation"] = t
    out["flops"]["generation"] = forward_flops(lm, [len(lm.prompt_ids(p)) for p in prompts], len(prompts)) + sum(
        forward_flops(lm, [1], 1) * n for n in new
    )
    # 3. gain labels: gold + distractors per question, alpha 0.5
    pairs = [Pair(f"q{i}", f"p{j}", r["question"], p, r["answers"][0]) for i, r in enumerate(sample) for j, p in enumerate((r["gold"] + r["distractors"])[:4])]
    scores, t = timed(lambda: compute_pair_scores(lm, pairs, 0.5), dev)
    out["values"]["gain_label"] = [gain_label(perplexity(s["logprob_cd"], s["n_tokens"])) for s in scores]
    lens = [len(lm.prompt_ids(p.prompt)) + len(lm.answer_ids(p.answer)) for p in pairs]
    out["seconds"]["gain_labelling"], out["flops"]["gain_labelling"] = t, forward_flops(lm, lens, sum(len(lm.answer_ids(p.answer)) for p in pairs))
    # 4. a RAG-E game per question: all 2^k coalitions of k passages, the gold answer's mean token probability
    masks = list(range(1 << k))
    games = [
        AuditGame("bench", f"q{i}", "original", r["question"], tuple(f"p{j}" for j in range(k)), tuple((r["gold"] + r["distractors"])[:k]), r["answers"][0], (r["answers"][0],))
        for i, r in enumerate(sample[:n_games])
    ]
    vals, t = timed(lambda: [v["support"] for v in game_values(games, {k: masks}, per_answer(lm._token_logprobs), "prob")], dev)
    out["values"]["shapley"] = [exact_shapley(v, k).tolist() for v in vals]
    lens = [len(lm.prompt_ids(build_prompt(g.question, [g.texts[i] for i in range(k) if m >> i & 1]))) + len(lm.answer_ids(g.own_answer)) for g in games for m in masks]
    out["seconds"]["coalitions"], out["flops"]["coalitions"] = t, forward_flops(lm, lens, len(lens) * 4)
    return out


def compare(a: dict, b: dict) -> dict:
    """Value-by-value differences between two runs of ``run_paths``."""
    va, vb = a["values"], b["values"]
    la, lb = np.array(va["gold_logprob"]), np.array(vb["gold_logprob"])
    ga, gb = np.array(va["gain_label"]), np.array(vb["gain_label"])
    best = lambda g: g.reshape(-1, 4).argmax(1)  # noqa: E731 - 4 candidates per question
    sa, sb = np.array(va["shapley"]), np.array(vb["shapley"])
    return {
        "gold_logprob_max_abs_diff": float(np.abs(la - lb).max()),
        "gain_label_max_abs_diff": float(np.abs(ga - gb).max()),
        "best_passage_flips": float((best(ga) != best(gb)).mean()),
        "answers_changed": float(np.mean([x != y for x, y in zip(va["answers"], vb["answers"], strict=True)])),
        "shapley_max_abs_diff": float(np.abs(sa - sb).max()),
        "shapley_top_document_flips": float((sa.argmax(1) != sb.argmax(1)).mean()),
    }


def write(out: str, runs: dict, peaks: dict, n_questions: int) -> None:
    names = list(runs)
    result = {
        "device_names": {"cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "cpu_model": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), None),
        "host": host("cuda" if torch.cuda.is_available() else "cpu"),  # the CPU's model, family, capability, bf16 flags; the GPU
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "n_questions": n_questions,
        "bf16_gemm_peak_tflops": {d: round(p / 1e12, 2) for d, p in peaks.items()},
        "runs": {n: {k: v for k, v in r.items() if k != "values"} | {"seconds": {p: round(s, 3) for p, s in r["seconds"].items()}} for n, r in runs.items()},
        "comparisons": {f"{a} vs {b}": compare(runs[a], runs[b]) for i, a in enumerate(names) for b in names[i + 1 :]},
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="generator directory with safetensors weights")
    ap.add_argument("--sample", required=True)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--games", type=int, default=4)
    ap.add_argument("--devices", default="cuda,cpu")
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sample = json.loads(Path(args.sample).read_text())
    runs, peaks = {}, {}
    for dev in args.devices.split(","):
        if dev == "cuda" and not torch.cuda.is_available():
            continue
        peaks[dev] = gemm_peak(dev, torch.bfloat16, 8192 if dev == "cuda" else 2048)
        for dtype in args.dtypes.split(","):
            lm = LM(args.model, dtype, cache_root=f"/tmp/device_check_{dev}_{dtype}", device=dev, show_progress=False)
            res = run_paths(lm, sample, args.k, args.games)
            res["roofline_fraction"] = {p: round(res["flops"][p] / res["seconds"][p] / peaks[dev], 4) for p in res["seconds"]}
            runs[f"{dev}/{dtype}"] = res
            print(dev, dtype, {p: round(s, 2) for p, s in res["seconds"].items()}, res["roofline_fraction"], flush=True)
            write(args.out, runs, peaks, len(sample))  # after each run: a time-out keeps what finished
    print(json.dumps(json.loads(Path(args.out).read_text())["comparisons"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
