"""How fast this machine does each kind of work the study does (``core.stopwatch.KINDS``): one typical piece of each.

Stage 00 writes them (``artifacts.PROBE``); ``core.cost`` scales a measured run's time in each kind by the
ratio of the probe here to the probe on the machine that measured it. Each probe is the fastest of
``repeats`` after a warm-up: the machine's speed, which a shared host's load only adds to.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ragalign.core.numerics import resolve

PROBE_TOKENS = 640  # about one 5-passage RAG prompt
PROBE_STEPS = 16  # the reply's greedy decode steps (rag.max_new_tokens): decoding is memory-bound, the prefill compute-bound
PROBE_REPEATS = 5  # the fastest of this many (params.yaml's probe.repeats for stage 00; every estimate's own probes)


def probe(params, steps: int = PROBE_STEPS, repeats: int = PROBE_REPEATS) -> float:
    """Seconds to answer one typical RAG prompt with the resolved generator, as ``LM.answer`` does: one prefill
    of :data:`PROBE_TOKENS` tokens into a KV cache, then ``steps`` greedy decode steps on it (0: the prefill alone). Both
    parts, because a CPU's speeds at the two differ (a decode step reads every weight for one token: on the
    Intel Xeon AMX host bf16 sped the prefill up 1.1-1.6x over float32 and the decode steps not at all:
    bench/results/probe_speed.json). Fastest of ``repeats`` after a warm-up."""
    import torch
    from transformers import DynamicCache

    from ragalign.core.models import load_generator

    n = resolve(params)
    model = load_generator(params.models.generator, n.dtype, n.device).model
    ids = torch.full((1, PROBE_TOKENS), 100, device=n.device)

    def answer_once() -> None:
        cache = DynamicCache()
        hidden = model.model(input_ids=ids, past_key_values=cache, use_cache=True).last_hidden_state
        token = model.lm_head(hidden[:, -1:]).argmax(-1)
        for step in range(steps):
            position = torch.tensor([[PROBE_TOKENS + step]], device=n.device)
            hidden = model.model(input_ids=token, position_ids=position, past_key_values=cache, use_cache=True).last_hidden_state
            token = model.lm_head(hidden[:, -1:]).argmax(-1)

    with torch.inference_mode():
        return _fastest(answer_once, repeats)


def _fastest(once, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``once`` after a warm-up: the machine's speed (a shared
    host's load only adds)."""
    once()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return min(times)


def probe_encode(params, repeats: int = PROBE_REPEATS) -> float:
    """Seconds to embed one batch of ``retrieval.encode_batch_size`` passages of ``retrieval.max_length``
    tokens with the study's bi-encoder, in its resolved embedding autocast (stage 02's work)."""
    from ragalign.core.retrieval import DenseEncoder

    encoder = DenseEncoder(params.models.encoder, params.retrieval.max_length, autocast=resolve(params).retrieval_autocast)
    passages = [" ".join(["passage"] * params.retrieval.max_length)] * params.retrieval.encode_batch_size  # truncated to max_length
    return _fastest(lambda: encoder.embed(passages, params.retrieval.encode_batch_size), repeats)


def probe_train(params, repeats: int = PROBE_REPEATS) -> float:
    """Seconds of one training step's forward and backward of the generator in float32 weights on the answer
    probe's :data:`PROBE_TOKENS` tokens, in the resolved training autocast (what reader tuning repeats; the
    rerankers' steps are the same kind of work on a smaller model)."""
    import torch
    from transformers import AutoModelForCausalLM

    from ragalign.core.models import LOAD_KWARGS, generator_path, to_device

    n = resolve(params)
    model = to_device(AutoModelForCausalLM.from_pretrained(generator_path(params.models.generator), dtype=torch.float32, **LOAD_KWARGS), n.device)
    ids = torch.full((1, PROBE_TOKENS), 100, device=n.device)

    def step() -> None:
        with torch.autocast(device_type=n.device, dtype=torch.bfloat16, enabled=n.training_autocast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    return _fastest(step, repeats)


def probes(params, repeats: int = PROBE_REPEATS) -> dict[str, float]:
    """This machine's speed at each kind of work (``core.stopwatch.KINDS``), seconds: the cost estimate scales a
    stage's time in each kind by the ratio of its probe here to its probe on the machine that measured it."""
    return {"answer": probe(params, repeats=repeats), "encode": probe_encode(params, repeats), "train": probe_train(params, repeats)}


PROBE_SPEED = Path("bench/results/probe_speed.json")  # bench/probe_speed.py: the probe in bf16, float32, float32 on AVX2 kernels


def avx2_factor(root: str | Path = ".") -> float | None:
    """How many times its cold time a run costs on an AVX2-only CPU of the bench machine's clock and cores:
    the probe in float32 with torch's kernels capped at AVX2 over the native bf16 probe (``bench/probe_speed.py``),
    None before that bench has run. What ``models.dtype=auto`` resolves on a CPU without native bf16."""
    path = Path(root, PROBE_SPEED)
    return json.loads(path.read_text())["float32_avx2_over_bf16"] if path.exists() else None
