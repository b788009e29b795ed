"""What a cold run of the study will cost on this machine, said before the heavy work (``make study``).

    python -m ragalign.core.cost [--params PATH]

LLM forwards dominate the study, so the committed run's stage times, scaled by how long one
forward of a typical prompt takes here against the committed machine (stage 00's probe,
``artifacts.PROBE``), estimate a cold run here. It prints what the numerics resolve to first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ragalign.core import artifacts
from ragalign.core.numerics import PROBE_TOKENS, explain, probe, resolve


def estimate(params, root: str | Path = ".") -> str:
    """A cold run's expected time here: the committed stages' wall time scaled by this host's probe."""
    lines = [explain(params)]
    recorded = artifacts.PROBE.read(root) if artifacts.PROBE.exists(root) else None
    stages = [json.loads(f.read_text()) for f in sorted(Path(root, artifacts.PROBE.path).parent.glob("*.json")) if f.name != Path(artifacts.PROBE.path).name]
    total_min = sum(s.get("wall_s", 0) for s in stages) / 60
    here = probe(params)
    if recorded is None or not total_min:
        lines.append(f"probe: {here:.2f} s per {PROBE_TOKENS}-token forward; no committed timings to scale")
        return "\n".join(lines)
    there = recorded["probe_s"]
    cpu_there = recorded["host"]["cpu"]["model"]
    lines.append(
        f"estimate: the committed run took {total_min:.0f} min on {cpu_there} ({recorded['numerics']['dtype']}, "
        f"probe {there:.2f} s); the probe here takes {here:.2f} s ({resolve(params).dtype}), so a cold run of "
        f"the committed params takes about {total_min * here / there:.0f} min on this machine "
        "(LLM forwards dominate; a smaller study or a GPU cuts it)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from ragalign.core.params import ParamsError, load

    argv = sys.argv[1:] if argv is None else argv
    path = "params.yaml"
    if "--params" in argv:
        i = argv.index("--params")
        path, argv = argv[i + 1], argv[:i] + argv[i + 2 :]
    if argv:
        print("usage: python -m ragalign.core.cost [--params PATH]", file=sys.stderr)
        return 2
    try:
        params = load(path)
    except ParamsError as err:
        print(f"{path}: {err}", file=sys.stderr)
        return 1
    print(estimate(params))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
