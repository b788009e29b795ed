"""Full coalition value tables of real RAG-E games, for the offline Shapley convergence benchmark.

    python bench/value_tables.py --model DIR --sample sample.json --n 10 --questions 10 --out tables_n10.json

For each of the first ``--questions`` questions of a HotpotQA sample (``device_check.make_sample``:
2 gold + 8 distractor paragraphs each), the generator answers from the first ``--n`` paragraphs
(greedy, as the study does), then every one of the 2^n coalitions is scored: the mean token
probability of that answer given only the coalition's paragraphs, in order (RAG-E's value). The
tables feed ``bench/shapley_convergence.py``, which evaluates every estimator by look-up.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from ragalign.audit.games import AuditGame, game_values, per_answer
from ragalign.core.lm import LM
from ragalign.core.rag import build_prompt, clean_answer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--sample", required=True)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--questions", type=int, default=10)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--max-passage-tokens", type=int, default=128)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    lm = LM(args.model, args.dtype, cache_root="/tmp/value_tables", device=args.device, show_progress=False)
    rows = [r for r in json.loads(Path(args.sample).read_text()) if len(r["gold"]) + len(r["distractors"]) >= args.n][: args.questions]
    games = []
    for i, r in enumerate(rows):
        paragraphs = (r["gold"] + r["distractors"])[: args.n]
        random.Random(i).shuffle(paragraphs)  # gold paragraphs at seeded positions, not always first
        texts = tuple(lm.truncate(p, args.max_passage_tokens) for p in paragraphs)
        answer = clean_answer(lm.generate([build_prompt(r["question"], texts)], 16)[0]) or r["answers"][0]
        games.append(AuditGame("bench", f"hotpot{i}", "original", r["question"], tuple(f"p{j}" for j in range(args.n)), texts, answer, (answer,)))
    values = [v["support"] for v in game_values(games, {args.n: list(range(1 << args.n))}, per_answer(lm.token_logprobs), "prob")]
    out = {
        "n": args.n,
        "value": "prob",
        "model": Path(args.model).name,
        "dtype": args.dtype,
        "device": args.device,
        "games": [{"qid": g.qid, "answer": g.own_answer, "values": [v[m] for m in range(1 << args.n)]} for g, v in zip(games, values, strict=True)],
    }
    Path(args.out).write_text(json.dumps(out))
    print(f"{len(games)} games x {1 << args.n} coalitions -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
