"""What the study computes in: the device, the generator's dtype and the two autocast switches, resolved once.

``auto`` never selects a kernel the hardware emulates. bf16 is chosen only where it runs natively:
a CPU with AVX-512 BF16 or AMX (seen in its flags), or a CUDA device that supports it; anywhere
else float32. On an AVX2 CPU (AMD Zen 3, most laptops) torch emulates bf16 and a SmolLM2 forward
runs about ten times slower than in float32 (issue 21's measurement on a Zen 3 EPYC).

The resolution changes numbers (bf16 and float32 log-probs differ by up to ~0.15 nats), so it is
a dependency of every stage: stage ``00_numerics`` writes :func:`record` to ``artifacts.NUMERICS``
on every ``dvc repro``, and DVC re-runs the stages when it differs from the committed one. The
same stage writes the machine (``artifacts.HOST``) and its speed probes (``core.probes``, ``artifacts.PROBE``), from
which ``python -m ragalign.core.cost`` (run by ``make study``) predicts a cold run's time.
"""

from __future__ import annotations

import functools
import platform
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from ragalign.core import artifacts

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic
EMULATED_SLOWDOWN = 10  # bf16 vs float32 on an AVX2 CPU (SmolLM2 forward: 16.8 s vs 1.79 s, Zen 3)


@functools.cache
def cpu() -> dict:
    """The CPU: vendor, model name, family, model number, torch's kernel capability and its bf16 flags."""
    import torch

    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("vendor_id", "model name", "cpu family", "model", "flags") and key.strip() not in fields:
                fields[key.strip()] = value.strip()
    except OSError:  # not Linux: no flags, so no bf16 claimed
        pass
    flags = set(fields.get("flags", "").split())
    return {
        "vendor": fields.get("vendor_id", platform.processor() or "unknown"),
        "model": fields.get("model name", platform.machine()),
        "family": int(fields["cpu family"]) if fields.get("cpu family", "").isdigit() else None,
        "model_number": int(fields["model"]) if fields.get("model", "").isdigit() else None,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_flags": sorted(flags & set(BF16_CPU_FLAGS)),
    }


@functools.cache
def native_bf16(device: str) -> tuple[bool, str]:
    """Does ``device`` (``cpu`` or ``cuda``) run bf16 natively, and why (one phrase)."""
    import torch

    if device == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, f"the CUDA device {'supports' if ok else 'does not support'} bf16"
    info = cpu()
    if info["bf16_flags"] and info["capability"].upper().startswith("AVX512"):
        return True, f"this CPU ({info['capability']}, {'/'.join(info['bf16_flags'])}) runs bf16 natively"
    if info["bf16_flags"]:  # e.g. ATEN_CPU_CAPABILITY=avx2: torch's kernels do not use the bf16 instructions
        return False, (
            f"torch's kernels run at {info['capability']} here, below the AVX512 its bf16 instructions "
            f"({'/'.join(info['bf16_flags'])}) need; bf16 would run about {EMULATED_SLOWDOWN}x slower"
        )
    return False, (
        f"this CPU ({info['capability']}) has no native bf16 (no {' or '.join(BF16_CPU_FLAGS)}); "
        f"bf16 would run about {EMULATED_SLOWDOWN}x slower"
    )


@dataclass(frozen=True)
class Numerics:
    """The resolved numerics of a run; :meth:`record` is what ``artifacts.NUMERICS`` holds."""

    device: str
    dtype: str  # the generator's weights
    retrieval_autocast: bool  # embedding in bf16 autocast
    training_autocast: bool  # reranker training in bf16 autocast

    def record(self) -> dict:
        """What changes the study's numbers: these numerics, the CPU's kernel family and torch."""
        import torch

        return asdict(self) | {"cpu_capability": cpu()["capability"], "torch": torch.__version__}


def resolve_dtype(setting: str, device: str) -> str:
    """``auto`` -> bfloat16 where ``device`` runs it natively, else float32; an explicit dtype is kept
    (an emulated bfloat16 with a warning)."""
    native, why = native_bf16(device)
    if setting == "auto":
        return "bfloat16" if native else "float32"
    if setting == "bfloat16" and not native:
        warnings.warn(f"models.dtype=bfloat16 is emulated here: {why}; auto would choose float32", stacklevel=2)
    return setting


def resolve_autocast(setting: bool | str, device: str) -> bool:
    """``auto`` -> on where ``device`` runs bf16 natively; ``true``/``false`` as given."""
    return native_bf16(device)[0] if setting == "auto" else bool(setting)


def resolve(params) -> Numerics:
    """The numerics a :class:`ragalign.core.params.Params` resolves to on this machine."""
    device = params.models.resolved_device()
    return Numerics(
        device=device,
        dtype=resolve_dtype(params.models.dtype, device),
        retrieval_autocast=resolve_autocast(params.retrieval.bf16_autocast, device),
        training_autocast=resolve_autocast(params.training.bf16_autocast, device),
    )


def explain(params) -> str:
    """Lines saying what the numerics resolved to here and why."""
    n = resolve(params)
    _, why = native_bf16(n.device)
    lines = [
        f"device {n.device} (models.device={params.models.device}); {why}",
        f"dtype {n.dtype} (models.dtype={params.models.dtype})",
        f"embedding autocast {'on' if n.retrieval_autocast else 'off'} (retrieval.bf16_autocast={params.retrieval.bf16_autocast})",
        f"training autocast {'on' if n.training_autocast else 'off'} (training.bf16_autocast={params.training.bf16_autocast})",
    ]
    return "\n".join(lines)


def host(device: str = "cpu") -> dict:
    """What a timing or a result was produced on: the CPU, torch, and the CUDA device if used."""
    import torch

    out = {"cpu": cpu(), "torch": torch.__version__, "python": platform.python_version()}
    if device == "cuda":
        out["cuda_device"] = torch.cuda.get_device_name()
    return out


class NumericsMismatch(RuntimeError):
    """A stage would compute in other numerics than the rest of its study."""


def check_recorded(params, root: str | Path = ".") -> None:
    """Refuse to run a stage in numerics other than those its study recorded: one study never mixes dtypes."""
    if not artifacts.NUMERICS.exists(root):
        return
    recorded, here = artifacts.NUMERICS.read(root), resolve(params).record()
    differ = {k: (recorded.get(k), v) for k, v in here.items() if recorded.get(k) != v}
    if differ:
        said = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in differ.items())
        raise NumericsMismatch(
            f"this machine resolves other numerics than {artifacts.NUMERICS.path} records ({said}); "
            "run `make study` or `dvc repro --force --single-item 00_numerics && dvc repro` (stage 00_numerics records this machine's "
            "and DVC re-runs the stages they change), "
            "or set models.dtype / the bf16_autocast switches explicitly"
        )
