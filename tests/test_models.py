"""Offline, safe loading: packaged names resolve locally, nothing runs remote code, only safetensors load."""

import pytest

from ragalign import models


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
    models.load_generator.cache_clear()
    for load in (lambda: models.load_encoder("minilm-l6"), lambda: models.load_generator("smollm2-135m-instruct")):
        with pytest.raises(RuntimeError, match="stop"):
            load()
    models.load_generator.cache_clear()
    assert len(seen) == 2
    assert all(k["trust_remote_code"] is False and k["use_safetensors"] is True for k in seen)


def test_offline_by_default():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    out = subprocess.run([sys.executable, "-c", "import os, ragalign.models; print(os.environ['HF_HUB_OFFLINE'])"], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "1", out.stderr
