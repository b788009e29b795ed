"""Stage 00: record what the study computes in on this machine (device, dtype, autocast, CPU kernels,
torch), the machine itself and a speed probe. Every stage that runs a model depends on the record;
stage 11 names the machine."""

from __future__ import annotations

from dataclasses import dataclass

from ragalign.core import artifacts
from ragalign.core.numerics import PROBE_STEPS, PROBE_TOKENS, explain, host, probe, resolve
from ragalign.core.params import Params


@dataclass
class Result:
    record: dict  # artifacts.NUMERICS
    host: dict  # artifacts.HOST: the machine
    explanation: str  # what resolved to what, and why


def run(P: Params) -> Result:
    """Resolve the numerics, write the record and the host's probe."""
    n = resolve(P)
    record = n.record()
    facts = {"host": host(n.device)}
    artifacts.NUMERICS.write(record)
    artifacts.HOST.write(facts)
    artifacts.PROBE.write(facts | {"probe_s": round(probe(P), 3), "probe_tokens": PROBE_TOKENS, "probe_steps": PROBE_STEPS, "numerics": record})
    return Result(record, facts, explain(P))
