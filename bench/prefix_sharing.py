"""Coalition values of RAG-E games: one full forward per (coalition, answer) vs the prefix tree.

    .venv/bin/python bench/prefix_sharing.py [--games 5:3,8:1] [--full-sample 16] [--out bench/results/prefix_sharing.json]

A fixed sample of HotpotQA dev questions (the versioned file in data/, read directly, so no stage
has to run first): for ``k:n`` in ``--games``, the next ``n`` questions, each with its ``k`` first
context paragraphs (gold paragraphs first, then the distractors in file order) as ``title: text``
cut to ``--max-passage-tokens`` generator tokens like ``rag.PassageStore``, and all 2^k coalitions
in the original order. Each coalition is scored against two answers: the gold answer and a second
short answer (the title of the last paragraph shown, a plausible wrong entity).

Both paths run uncached, interleaved game by game so that load from elsewhere on the machine hits
both alike. The segment trie (``coalitions.PrefixScorer``, tokenisation included) scores all 2^k
coalitions of a game; the full path (``LM._token_logprobs``: every (prompt, answer) alone) scores a
seeded uniform sample of at most ``--full-sample`` of them, since its cost per coalition does not
depend on the others (on 2 CPU cores all 256 coalitions of one k=8 game take minutes). Speedup =
prefix coalitions/s over full coalitions/s; value differences are over the sampled coalitions.
Batch invariance is checked too: ``--alone`` coalitions per game (seeded) are scored again each on
its own and must equal, bit for bit, their values from the whole game's walk.
Wall times depend on the machine and on whatever else runs on it, which is why they never go into
``results/metrics``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from report import emit, study_dtype

from ragalign.audit.coalitions import PrefixScorer, Segmentation
from ragalign.audit.shapley import all_masks, members
from ragalign.core.benchmarks import DEFAULT_PATHS
from ragalign.core.lm import LM
from ragalign.core.rag import build_prompt


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sample_games(lm: LM, plan: list[tuple[int, int]], max_tokens: int, path: str = DEFAULT_PATHS["hotpotqa"]):
    """[(k, question, passage texts, [gold answer, second answer])], consecutive questions of the file."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            records.append(json.loads(line))
            if len(records) == sum(n for _, n in plan):
                break
    games, at = [], 0
    for k, n in plan:
        for rec in records[at : at + n]:
            gold = {title for title, _ in rec["supporting_facts"]}
            context = sorted(rec["context"], key=lambda item: item[0] not in gold)[:k]  # stable: gold first
            texts = [lm.truncate(f"{title}: {''.join(sentences).strip()}", max_tokens) for title, sentences in context]
            games.append((k, rec["question"], texts, [rec["answer"], context[-1][0]]))
        at += n
    return games


def game_pairs(k: int, question: str, texts: list[str], answers: list[str]) -> tuple[list[str], list[list[str]]]:
    """The game's coalition prompts (all 2^k, original order) and their answers."""
    prompts = [build_prompt(question, [texts[i] for i in members(m, k)]) for m in all_masks(k)]
    return prompts, [list(answers) for _ in prompts]


def full_forward(lm: LM, prompts: list[str], answers: list[list[str]]) -> tuple[float, list[list[list[float]]]]:
    """(seconds, values): one sequence per (prompt, answer) pair, as ``LM.token_logprobs`` computes it uncached."""
    flat_p = [p for p, ans in zip(prompts, answers, strict=True) for _ in ans]
    flat_a = [a for ans in answers for a in ans]
    start = time.perf_counter()
    flat = lm._token_logprobs(flat_p, flat_a)
    elapsed = time.perf_counter() - start
    out, at = [], 0
    for ans in answers:
        out.append(flat[at : at + len(ans)])
        at += len(ans)
    return elapsed, out


def prefix_tree(
    lm: LM, prompts: list[str], answers: list[list[str]]
) -> tuple[float, list[list[list[float]]], PrefixScorer]:
    """(seconds, values, scorer): one segment-trie walk, tokenisation (and segmentation) included."""
    start = time.perf_counter()
    scorer = PrefixScorer(lm, [lm.prompt_ids(p) for p in prompts], [[lm.answer_ids(a) for a in ans] for ans in answers])
    out = scorer.run()
    return time.perf_counter() - start, out, scorer


def compare(full: list[list[list[float]]], tree: list[list[list[float]]]) -> dict[str, float]:
    """Max abs differences of the values a game uses: mean token log-prob and mean token prob."""
    d_lp, d_p, d_tok = 0.0, 0.0, 0.0
    for f_row, t_row in zip(full, tree, strict=True):
        for f, t in zip(f_row, t_row, strict=True):
            f, t = np.asarray(f), np.asarray(t)
            d_tok = max(d_tok, float(np.abs(f - t).max()))
            d_lp = max(d_lp, abs(float(f.mean() - t.mean())))
            d_p = max(d_p, abs(float(np.exp(f).mean() - np.exp(t).mean())))
    return {"max_abs_diff_mean_logprob": d_lp, "max_abs_diff_mean_prob": d_p, "max_abs_diff_token_logprob": d_tok}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--games", default="5:3,8:1", help="k:questions, comma separated")
    ap.add_argument(
        "--full-sample",
        type=int,
        default=16,
        help="at most this many coalitions per game through the full path (seeded uniform sample)",
    )
    ap.add_argument(
        "--alone", type=int, default=4, help="coalitions per game scored again alone (bitwise batch-invariance check)"
    )
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--dtype", default=None, help="default: what the study resolves to here (models.dtype)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-passage-tokens", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/prefix_sharing.json")
    ap.add_argument("--note", default="", help="free text stored with the result (e.g. what else ran on the machine)")
    args = ap.parse_args(argv)
    plan = [tuple(int(x) for x in part.split(":")) for part in args.games.split(",")]
    lm = LM(args.model, args.dtype or study_dtype(), show_progress=False, device=args.device)
    games = sample_games(lm, plan, args.max_passage_tokens)
    lm._token_logprobs([build_prompt("warm-up?", games[0][2][:1])], ["up"])  # first-call overheads out of the timings
    rng = np.random.default_rng(args.seed)
    load_start = round(os.getloadavg()[0], 2)
    segmentation = Segmentation.of(lm)
    acc: dict[int, dict] = {}
    checked, invariant = 0, True
    started = time.perf_counter()
    for k, question, texts, answers in games:
        prompts, ans = game_pairs(k, question, texts, answers)
        a = acc.setdefault(
            k,
            {
                "questions": 0,
                "coalitions": 0,
                "full_coalitions": 0,
                "full_s": 0.0,
                "full_tokens": 0,
                "diffs": [],
                "s": 0.0,
                "tokens_forwarded": 0,
                "forwards": 0,
            },
        )
        a["questions"] += 1
        a["coalitions"] += len(prompts)
        # Interleaved per game, so load from elsewhere on the machine hits both paths alike.
        sample = sorted(rng.choice(len(prompts), min(args.full_sample, len(prompts)), replace=False).tolist())
        t_full, full = full_forward(lm, [prompts[i] for i in sample], [ans[i] for i in sample])
        a["full_s"] += t_full
        a["full_coalitions"] += len(sample)
        a["full_tokens"] += sum(len(lm.prompt_ids(prompts[i])) + len(lm.answer_ids(x)) for i in sample for x in ans[i])
        t_tree, tree, scorer = prefix_tree(lm, prompts, ans)
        a["s"] += t_tree
        a["tokens_forwarded"] += scorer.tokens_forwarded
        a["forwards"] += scorer.forwards
        a["diffs"].append(compare(full, [tree[i] for i in sample]))
        for i in rng.choice(len(prompts), min(args.alone, len(prompts)), replace=False).tolist():
            _, alone, _ = prefix_tree(lm, [prompts[i]], [ans[i]])
            checked += 1
            invariant &= alone[0] == tree[i]
        print(
            f"k={k} {question[:40]!r}: full {t_full:.1f}s for {len(sample)} coalitions, tree {t_tree:.1f}s for {len(prompts)}",
            file=sys.stderr,
            flush=True,
        )
    by_k = {}
    for k, a in acc.items():
        full_rate = a["full_coalitions"] / a["full_s"]
        by_k[str(k)] = {
            "questions": a["questions"],
            "coalitions": a["coalitions"],
            "answers_per_coalition": 2,
            "full_coalitions_timed": a["full_coalitions"],
            "full_s": round(a["full_s"], 2),
            "full_tokens_timed": a["full_tokens"],
            "full_coalitions_per_s": round(full_rate, 3),
            **{key: max(d[key] for d in a["diffs"]) for key in a["diffs"][0]},
            "prefix_s": round(a["s"], 2),
            "prefix_coalitions_per_s": round(a["coalitions"] / a["s"], 3),
            "prefix_tokens_forwarded": a["tokens_forwarded"],
            "prefix_forwards": a["forwards"],
            "speedup": round(a["coalitions"] / a["s"] / full_rate, 2),
        }
    result = {
        "model": args.model,
        "dtype": lm.dtype,
        "device": lm.device,
        "max_passage_tokens": args.max_passage_tokens,
        "segmentation": {
            "rule": "chat header, then a cut after every passage separator; the last segment (question, instruction, assistant header) is forwarded once per prompt, then each answer on top of it",
            "header_tokens": len(segmentation.header),
            "separator_ids": list(segmentation.separator),
        },
        "prefix_values_canonical": True,  # segments are a function of the prompt alone: values are batch invariant
        "batch_invariance_checked_coalitions": checked,
        "batch_invariance_bitwise_equal": bool(invariant),
        "full_sample": args.full_sample,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "loadavg_1min_at_start": load_start,
        "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
        "note": args.note,
        "wall_s": round(time.perf_counter() - started, 1),
        "by_k": by_k,
    }
    return emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
