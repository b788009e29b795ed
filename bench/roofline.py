"""A physical reference for the benchmarks: the device's measured bf16 matrix-multiply throughput,
and the useful FLOPs of the generator's forwards (unpadded tokens only)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def gemm_peak(device: str = "cpu", dtype: torch.dtype = torch.bfloat16, n: int | None = None, repeats: int = 5) -> float:
    """FLOP/s of an n x n x n matrix product (best of ``repeats`` after a warm-up): the roofline."""
    n = n or (8192 if device == "cuda" else 2048)
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def forward_flops(model, lengths: Sequence[int], head_positions: int) -> float:
    """Useful FLOPs of causal-LM forwards over unpadded sequences of ``lengths`` tokens: 2 x body
    parameters per token, causal attention (QK^T and AV: 2 x layers x d x L^2 per sequence), and the
    vocabulary projection at ``head_positions`` positions."""
    cfg = model.config
    body = sum(p.numel() for name, p in model.model.named_parameters() if "embed" not in name)
    attention = sum(2 * cfg.num_hidden_layers * cfg.hidden_size * n * n for n in lengths)
    return 2 * body * sum(lengths) + attention + 2 * cfg.vocab_size * cfg.hidden_size * head_positions


def timed(fn, device: str = "cpu"):
    """(result, seconds) of ``fn()``, synchronised on CUDA."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start
