"""Shared fixtures: small files the tests write themselves, and a tiny random causal LM."""

from __future__ import annotations

import json
import os

import pytest

from ragalign.smoke import hotpot_record

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# pytest-xdist workers (``make test``: -n 2) share the cores: each, and every stage its tests run, gets its share
# of torch threads instead of all of them (2 workers x 2 threads on a 2-core host would oversubscribe it)
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))


def pytest_collection_modifyitems(config, items):
    """Skip tests of the bf16 path (marked ``native_bf16``) where bf16 would be emulated: ``auto`` never
    computes in bf16 there, and an emulated bf16 forward costs about ten float32 ones. CPUs with native
    bf16 (AVX-512 BF16, AMX) and GPUs still run them."""
    from ragalign.core.numerics import native_bf16

    native, why = native_bf16("cpu")
    if native:
        return
    skip = pytest.mark.skip(reason=f"bf16 path, and {why}")
    for item in items:
        if "native_bf16" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def smol_tokenizer():
    """The real SmolLM2 tokenizer (chat template included), from the packaged model."""
    from transformers import AutoTokenizer

    from ragalign.core.models import generator_path

    return AutoTokenizer.from_pretrained(generator_path("smollm2-135m-instruct"))


@pytest.fixture(scope="session")
def tiny_model(smol_tokenizer):
    """A 2-layer random Llama over the SmolLM2 vocabulary, float32, deterministic."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(smol_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    )
    config._attn_implementation = "eager"  # as the study loads every generator
    model = LlamaForCausalLM(config).eval()
    model.generation_config.pad_token_id = smol_tokenizer.pad_token_id
    return model


@pytest.fixture
def tiny_lm(smol_tokenizer, tiny_model, tmp_path):
    """An LM over the tiny model with its own empty cache."""
    from ragalign.core.lm import LM

    return LM("tiny", "float32", cache_root=str(tmp_path / "cache"), tokenizer=smol_tokenizer, model=tiny_model)


@pytest.fixture
def hotpot_file(tmp_path):
    """A small valid HotpotQA-format file."""
    path = tmp_path / "hotpot.jsonl"
    path.write_text("".join(json.dumps(hotpot_record(i)) + "\n" for i in range(20)))
    return path
