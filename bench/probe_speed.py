"""The cost estimator's probe (one typical RAG answer: a 640-token prefill and 16 decode steps) in the numerics users' CPUs compute in.

    .venv/bin/python bench/probe_speed.py [--out bench/results/probe_speed.json]

``python -m ragalign.core.cost`` scales the committed cold stage times by this probe. A CPU without
native bf16 (AMD Zen 2/3, Intel client CPUs) computes in float32 with AVX2 kernels; this bench runs
the probe on this machine in bf16 (its native numerics), in float32, and in float32 with torch's
kernels capped at AVX2 (``ATEN_CPU_CAPABILITY=avx2``, with oneDNN's and MKL's GEMMs capped alike:
``ONEDNN_MAX_CPU_ISA=AVX2``, ``MKL_ENABLE_INSTRUCTIONS=AVX2``; each setting in its own process, as the
caps must be set before torch loads). The float32/AVX2 over bf16 ratio is what an AVX2-only CPU of this one's
clock and cores would pay per answer: the README's estimate for a float32-only machine. Each probe
is the fastest of five answers after a warm-up (``core.probes.probe``); machine-dependent. The prefill
alone is timed too, as the probe was before it counted decode steps: the two ratios differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from report import emit

from ragalign.core.probes import PROBE_STEPS, PROBE_TOKENS

SETTINGS = {  # name -> (models.dtype, ATEN_CPU_CAPABILITY or None)
    "bfloat16": ("bfloat16", None),
    "float32": ("float32", None),
    "float32, AVX2 kernels": ("float32", "avx2"),
}

PROBE = """
import json, sys
from ragalign.core import numerics, probes
from ragalign.core.params import validate
params = validate({"models": {"dtype": sys.argv[1]}})
print(json.dumps({"probe_s": probes.probe(params), "prefill_s": probes.probe(params, steps=0), "capability": numerics.cpu()["capability"]}))
"""


def probe_in(dtype: str, capability: str | None) -> dict:
    """The probe in a fresh process with ``models.dtype=dtype`` and torch's kernels capped at ``capability``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if capability:
        env |= {"ATEN_CPU_CAPABILITY": capability, "ONEDNN_MAX_CPU_ISA": capability.upper(), "MKL_ENABLE_INSTRUCTIONS": capability.upper()}
    out = subprocess.run([sys.executable, "-c", PROBE, dtype], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    runs = {name: probe_in(*setting) for name, setting in SETTINGS.items()}
    base = runs["bfloat16"]["probe_s"]
    result = {
        "probe_tokens": PROBE_TOKENS,
        "probe_steps": PROBE_STEPS,
        "runs": {
            name: {**r, "probe_s": round(r["probe_s"], 4), "over_bf16": round(r["probe_s"] / base, 2),
                   "prefill_s": round(r["prefill_s"], 4), "prefill_over_bf16": round(r["prefill_s"] / runs["bfloat16"]["prefill_s"], 2)}
            for name, r in runs.items()
        },
        "float32_avx2_over_bf16": round(runs["float32, AVX2 kernels"]["probe_s"] / base, 2),
    }
    return emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
