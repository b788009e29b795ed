"""Offline, safe loading: packaged names resolve locally, nothing runs remote code, only safetensors load."""

import pytest

from ragalign.core import models


def test_packaged_models_resolve_offline():
    assert (models.resolve("minilm-l6") / "model.safetensors").exists()
    assert any(models.resolve("smollm2-135m-instruct").glob("*.gguf"))
    assert (models.generator_path("smollm2-135m-instruct") / "model.safetensors").exists()


def test_unknown_model_names_the_model_and_the_fix():
    with pytest.raises(models.ModelNotFoundError, match=r"'nobody/nothing'.*huggingface-cli download nobody/nothing"):
        models.resolve("nobody/nothing")


def test_every_load_refuses_remote_code_and_pickles(monkeypatch):
    seen = []

    def fake(name, **kwargs):
        seen.append(kwargs)
        raise RuntimeError("stop")

    import transformers

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", fake)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake)
    models._load_generator.cache_clear()
    for load in (lambda: models.load_encoder("minilm-l6"), lambda: models.load_generator("smollm2-135m-instruct")):
        with pytest.raises(RuntimeError, match="stop"):
            load()
    models._load_generator.cache_clear()
    assert len(seen) == 2
    assert all(k["trust_remote_code"] is False and k["use_safetensors"] is True for k in seen)


def test_offline_by_default():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    out = subprocess.run([sys.executable, "-c", "import os, ragalign.core.models; print(os.environ['HF_HUB_OFFLINE'])"], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "1", out.stderr


# ---- the device, chosen once ----------------------------------------------------------------------
def test_device_choice(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.resolve_device("auto") == "cpu" and models.resolve_device("cpu") == "cpu"
    with pytest.raises(models.ModelNotFoundError, match="models.device=cuda"):
        models.resolve_device("cuda")
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        models.resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.resolve_device("auto") == "cuda"  # auto = CUDA when present
    assert models.resolve_device("cpu") == "cpu"  # an explicit choice wins


def test_params_check_names_the_device_and_rejects_a_missing_gpu(monkeypatch):
    import torch

    from ragalign.core.params import ParamsError, validate

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    p = validate({})
    assert p.models.resolved_device() == "cpu"
    assert validate({"models": {"dtype": "float32"}}).models.resolved_dtype() == "float32"
    with pytest.raises(ParamsError, match=r"models.device: .*allowed: auto, cpu, cuda"):
        validate({"models": {"device": "cuda"}})


def test_every_model_load_goes_through_the_chosen_device(monkeypatch):
    """Generator, encoders, rerankers: every load is moved by ``to_device`` to the device chosen once."""
    moved = []
    real = models.to_device

    def spy(module, on=None):
        moved.append((type(module).__name__, on or models.device()))
        return real(module, on)

    monkeypatch.setattr(models, "to_device", spy)
    models.use_device("cpu")
    models._load_generator.cache_clear()
    from ragalign.core.rerank import CrossEncoder
    from ragalign.core.retrieval import DenseEncoder

    DenseEncoder("minilm-l6", 32)
    CrossEncoder("minilm-l6", 32)
    models.load_generator("smollm2-135m-instruct", "bfloat16", "cpu")
    models._load_generator.cache_clear()
    kinds = [k for k, _ in moved]
    assert kinds.count("BertModel") == 2 and "LlamaForCausalLM" in kinds
    assert {on for _, on in moved} == {"cpu"}


def test_generator_uses_eager_attention():
    model = models.load_generator("smollm2-135m-instruct", "bfloat16", "cpu").model
    assert model.config._attn_implementation == "eager"


def test_the_cache_lives_in_the_repository_root(monkeypatch):
    """`.cache/ragalign/` beside dvc.yaml, as the README says (not inside lib/, where git would see it)."""
    from pathlib import Path

    from ragalign.core.models import cache_dir

    monkeypatch.delenv("RAGALIGN_CACHE", raising=False)
    root = Path(__file__).resolve().parents[1]
    assert cache_dir() == root / ".cache" / "ragalign"


def test_an_encoder_checkpoint_saved_in_bf16_loads_in_float32(tmp_path):
    """A researcher's own bf16 encoder must not reach the rerankers' float32 head in bf16."""
    import torch
    from transformers import BertConfig, BertModel

    from ragalign.core.models import load_encoder

    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    BertModel(config).to(torch.bfloat16).save_pretrained(tmp_path, safe_serialization=True)
    model = load_encoder(str(tmp_path))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
