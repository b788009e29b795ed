# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · What the study computes in
#
# The same params can run in bf16 or float32, on a CPU or a GPU, and the numbers differ a little
# between them (gold-answer log-probs by up to ~0.15 nats). `auto` picks bf16 only where the
# device runs it natively (a CPU with AVX-512 BF16 or AMX, a CUDA device with bf16) and float32
# elsewhere: on an AVX2 CPU bf16 is emulated and about ten times slower. This stage records what
# `auto` resolved to on this machine; every stage that runs a model depends on that record, so a
# study is never computed half in one dtype and half in another.

# %% tags=["parameters"]
models: dict = {}
probe: dict = {}
retrieval: dict = {}
training: dict = {}

# %%
from IPython.display import Markdown

from ragalign.core import params
from ragalign.stages import numerics as stage

P = params.from_namespace(globals())
r = stage.run(P)
cpu = r.host["host"]["cpu"]

# %% tags=["findings"]
Markdown(
    f"This study computes in **{r.record['dtype']}** on **{r.record['device']}** (embedding autocast "
    f"{'on' if r.record['retrieval_autocast'] else 'off'}, training autocast {'on' if r.record['training_autocast'] else 'off'}; "
    f"torch {r.record['torch']}, CPU kernels {r.record['cpu_capability']}). The machine: {cpu['model']} "
    f"(family {cpu['family']}, bf16 flags: {', '.join(cpu['bf16_flags']) or 'none'}).\n\n" + "\n".join(f"- {line}" for line in r.explanation.splitlines())
)
