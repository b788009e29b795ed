"""Short prompts decoded in same-length groups: missing prompts chunked in order of length (the study's path)
vs in the caller's order (the way before), same prompts, each from an empty cache.

    .venv/bin/python bench/length_chunking.py [--questions 64] [--new-tokens 32] [--out bench/results/length_chunking.json]

``LM.generate`` computes missing prompts in chunks of 32 (each chunk stored as it finishes, so a stage
resumes), and decodes short prompts in groups of ``lm.DECODE_ROWS`` rows of one token length, copies
filling a group. Chunked in the caller's order, a chunk holds few prompts of any one length and most
groups are mostly copies; chunked in order of length, groups are full. A reply's bits do not depend on
its group (tests/test_lm.py), so the replies must be identical. The workload is GainRAG's pseudo-passage
prompts of the study's questions (stage 04 writes 128 new tokens per prompt; fewer here to keep the run
short: a group's cost is the same per step either way). Needs stage 01's questions (`dvc repro 01_prepare_data`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch
from report import emit, study_dtype

from ragalign.core.cache import make_key
from ragalign.core.data import load_questions
from ragalign.core.lm import LM
from ragalign.methods.gainrag.pseudo import pseudo_prompt


def timed(lm: LM, prompts: list[str], new: int, in_order_of_length: bool) -> tuple[list[str], float, int]:
    """Replies, seconds and decoding groups of one cold ``generate``-like run over ``prompts``."""
    groups: list[list[int]] = []
    original = lm._generate

    def decode(chunk: list[str]) -> list[str]:
        groups.extend(lm.generation_groups(chunk))
        return original(chunk, new)

    start = time.perf_counter()
    if in_order_of_length:
        lm._generate = lambda chunk, n, desc=None: decode(chunk)
        try:
            out = lm.generate(prompts, new)  # the study's path
        finally:
            lm._generate = original
    else:  # the way before: the same cache and chunks, in the caller's order
        keys = [make_key("naive", new, p) for p in prompts]
        out = lm.cache.map(keys, prompts, decode, chunk_size=32)
    return out, time.perf_counter() - start, len(groups)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--dtype", default=None, help="default: what the study resolves to here (models.dtype)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    dtype = args.dtype or study_dtype()
    prompts = [pseudo_prompt(q) for q in load_questions().question.head(args.questions)]
    runs = {}
    for name, by_length in (("caller's order", False), ("order of length", True)):
        lm = LM("smollm2-135m-instruct", dtype, cache_root=tempfile.mkdtemp(), show_progress=False)
        lm._generate(prompts[:1], 2)  # warm-up
        replies, seconds, groups = timed(lm, prompts, args.new_tokens, by_length)
        runs[name] = {"seconds": round(seconds, 2), "groups": groups, "replies": replies}
    same = runs["caller's order"].pop("replies") == runs["order of length"].pop("replies")
    lengths = len({lm.n_prompt_tokens(p) for p in prompts})
    result = {"dtype": dtype, "torch_threads": torch.get_num_threads(), "prompts": len(prompts), "prompt_lengths": lengths,
              "new_tokens": args.new_tokens, "runs": runs, "same_replies": same,
              "speedup": round(runs["caller's order"]["seconds"] / runs["order of length"]["seconds"], 2)}
    return emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
