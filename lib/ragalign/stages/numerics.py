"""Stage 00: record what the study computes in on this machine (device, dtype, autocast, CPU kernels,
torch), the machine itself and its speed at each kind of work (``core.probes``). Every stage that runs a model depends on the record;
stage 11 names the machine."""

from __future__ import annotations

from dataclasses import dataclass

from ragalign.core import artifacts
from ragalign.core.numerics import explain, host, resolve
from ragalign.core.params import Params
from ragalign.core.probes import PROBE_STEPS, PROBE_TOKENS, probes


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
    speeds = {kind: round(seconds, 3) for kind, seconds in probes(P, P.probe.repeats).items()}
    artifacts.PROBE.write(facts | {"probe_s": speeds["answer"], "probes_s": speeds, "probe_tokens": PROBE_TOKENS, "probe_steps": PROBE_STEPS,
                                   "probe_repeats": P.probe.repeats, "numerics": record})
    return Result(record, facts, explain(P))
