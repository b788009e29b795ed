"""Greedy decoding on CPU: the study's path vs a static KV cache vs SDPA attention, same prompts.

    .venv/bin/python bench/decoding.py [--out bench/results/decoding.json]

Two workloads of the study: RAG answers (5 passages, 16 new tokens, decoded alone) and
pseudo-passages (short prompts, 128 new tokens, decoded in groups of ``lm.DECODE_ROWS`` rows of one
length). Each variant decodes the same prompts; the replies must be identical to the study's path
to be adoptable. The study adopted the static cache for prompts decoded alone (RAG answers), where it
was faster, and kept the dynamic one for grouped long replies. Wall times are machine-dependent.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from report import emit, study_dtype

from ragalign.core.data import load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.models import generator_path
from ragalign.core.rag import PassageStore, build_prompt
from ragalign.methods.gainrag.pseudo import pseudo_prompt


def workloads(lm: LM, n: int) -> dict[str, tuple[list[str], int]]:
    questions, passages = load_questions(split="test").head(n), load_passages()
    store = PassageStore(passages, lm, 128)
    pool = list(passages.pid.head(200))
    rag = [build_prompt(q.question, store.texts(list(q.gold_pids) + pool[i * 3 : i * 3 + 3])) for i, q in enumerate(questions.itertuples())]
    return {"rag_answers": (rag, 16), "pseudo_passages": ([pseudo_prompt(q) for q in questions.question], 128)}


def run(lm: LM, prompts: list[str], new: int, **generate_kwargs) -> tuple[list[str], float]:
    original = lm.model.generate
    if generate_kwargs:
        lm.model.generate = lambda **kw: original(**(kw | generate_kwargs))
    try:
        lm._generate(prompts[:1], 4)  # warm-up
        start = time.perf_counter()
        out = lm._generate(prompts, new)
        return out, time.perf_counter() - start
    finally:
        lm.model.generate = original


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--dtype", default=None, help="default: what the study resolves to here (models.dtype)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    dtype = args.dtype or study_dtype()
    lm = LM("smollm2-135m-instruct", dtype, show_progress=False)
    result: dict = {"torch_threads": torch.get_num_threads(), "dtype": dtype, "questions": args.questions, "workloads": {}}
    for name, (prompts, new) in workloads(lm, args.questions).items():
        base, t_base = run(lm, prompts, new, cache_implementation=None)  # the default dynamic cache everywhere
        static, t_static = run(lm, prompts, new, cache_implementation="static")
        row = {"new_tokens": new, "seconds": {"dynamic cache, eager": round(t_base, 2), "static cache": round(t_static, 2)}, "static_same_replies": static == base}
        result["workloads"][name] = row
    from transformers import AutoModelForCausalLM

    sdpa = AutoModelForCausalLM.from_pretrained(generator_path("smollm2-135m-instruct"), dtype=getattr(torch, dtype), attn_implementation="sdpa").eval()
    lm_sdpa = LM("sdpa", dtype, tokenizer=lm.tokenizer, model=sdpa, show_progress=False)
    for name, (prompts, new) in workloads(lm, args.questions).items():
        base = run(lm, prompts, new, cache_implementation=None)[0]
        out, t = run(lm_sdpa, prompts, new, cache_implementation=None)
        result["workloads"][name]["seconds"]["sdpa attention"] = round(t, 2)
        result["workloads"][name]["sdpa_same_replies"] = out == base
    return emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
