"""``params.yaml`` as one typed object (its sections: ``core.param_sections``), checked before any heavy work: each
section alone, then what spans sections, then (``size_problems``) what the benchmark allows.

Run ``python -m ragalign.core.params check [PATH]`` to validate a params file from the shell.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ragalign.core.param_sections import (
    DATASETS,
    CurveParams,
    DataParams,
    FigretParams,
    GainParams,
    ModelsParams,
    PoweredParams,
    ProbeParams,
    RadioParams,
    RagEParams,
    RagParams,
    ReaderParams,
    RetrievalParams,
    SeamCurveParams,
    SeamParams,
    SelectorParams,
    TrainingParams,
)


class Params(BaseModel):
    """All of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: DataParams = DataParams()
    models: ModelsParams = ModelsParams()
    probe: ProbeParams = ProbeParams()
    retrieval: RetrievalParams = RetrievalParams()
    rag: RagParams = RagParams()
    training: TrainingParams = TrainingParams()
    gain: GainParams = GainParams()
    selector: SelectorParams = SelectorParams()
    radio: RadioParams = RadioParams()
    figret: FigretParams = FigretParams()
    reader: ReaderParams = ReaderParams()
    rag_e: RagEParams = RagEParams()
    curve: CurveParams = CurveParams()
    seam: SeamParams = SeamParams()
    powered: PoweredParams = PoweredParams()
    seam_curve: SeamCurveParams = SeamCurveParams()

    def numerics(self):
        """The device, dtype and autocast switches these params resolve to on this machine (``core.numerics``)."""
        from ragalign.core.numerics import resolve

        return resolve(self)

    @model_validator(mode="after")
    def _cross_section(self) -> Params:
        k = self.retrieval.k
        checks = [
            ("rag.top_k", self.rag.top_k, k),
            ("gain.k", self.gain.k, k),
            ("selector.top_n", self.selector.top_n, k),
            ("radio.k", self.radio.k, k),
            ("figret.k", self.figret.k, k),
            ("training.group_size", self.training.group_size, k + 1),
        ]
        for key, value, limit in checks:
            if value > limit:
                raise ValueError(f"{key}={value} exceeds retrieval.k={k} (allowed: 1..{limit})")
        if self.reader.extra_questions and self.reader.extra_dataset == self.data.dataset:
            raise ValueError(f"reader.extra_dataset={self.reader.extra_dataset!r} is the study's own benchmark (data.dataset); choose another of {list(DATASETS)}")
        if self.selector.top_k > self.selector.top_n + 1:
            raise ValueError(
                f"selector.top_k={self.selector.top_k} exceeds selector.top_n + 1 pseudo-passage"
            )
        if self.radio.top_k > self.radio.k:
            raise ValueError(f"radio.top_k={self.radio.top_k} exceeds radio.k={self.radio.k}")
        ranked = {"retrieval.k": self.retrieval.k, "radio.k": self.radio.k, "selector.top_n + 1": self.selector.top_n + 1}
        for k in self.seam.ks:  # every ranked method of stage 09 must rank at least k passages
            for key, limit in ranked.items():
                if k > limit:
                    raise ValueError(f"seam.ks has {k}, more than the {key}={limit} passages ranked (allowed: 1..{min(ranked.values())})")
        bad = [r for r in self.radio.neg_ranks if not 1 <= r < self.radio.k]
        if bad:
            raise ValueError(f"radio.neg_ranks {bad} must lie in 1..{self.radio.k - 1} (rank 0 is the positive)")
        return self


class ParamsError(ValueError):
    """params.yaml is invalid; the message names every bad key, its value and what is allowed."""


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        value = e.get("input")
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {key}: {msg} (got {value!r})")
    return "invalid params:\n" + "\n".join(lines)


def validate(raw: dict[str, Any]) -> Params:
    """Validate a params mapping, raising ParamsError with key paths on failure."""
    try:
        params = Params.model_validate(raw or {})
    except ValidationError as err:
        raise ParamsError(_format(err)) from None
    from ragalign.core.models import (
        ModelNotFoundError,
        check_model_name,  # local: models imports torch lazily
    )

    try:
        params.models.resolved_device()
    except ModelNotFoundError as err:
        raise ParamsError(f"invalid params:\n  models.device: {err} (got {params.models.device!r}; allowed: auto, cpu, cuda)") from None
    for key, name in (("models.generator", params.models.generator), ("models.encoder", params.models.encoder)):
        problem = check_model_name(name)
        if problem:
            raise ParamsError(f"invalid params:\n  {key}: {problem} (got {name!r})")
    return params


def load(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"params file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path} is not valid YAML: {err}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path} must be a mapping of sections, got {type(raw).__name__}")
    return validate(raw or {})


def from_namespace(namespace: dict[str, Any]) -> Params:
    """Validate the sections papermill injected into a notebook's globals, and choose the device."""
    from ragalign.core.models import use_device

    raw = {name: namespace[name] for name in Params.model_fields if isinstance(namespace.get(name), dict)}
    params = validate(raw)
    use_device(params.models.device)
    return params


def size_problems(params: Params, available: int) -> list[str]:
    """What asks for more of the benchmark's ``available`` questions than it has: each problem names the
    key and the largest value allowed."""
    d, c = params.data, params.curve
    rest = available - d.n_train - d.n_test
    problems = []
    if rest < 0:
        problems.append(f"data.n_train + data.n_test = {d.n_train + d.n_test} exceeds the {available} questions of {d.dataset} (largest allowed sum: {available})")
    if params.reader.n_questions > rest:
        problems.append(f"reader.n_questions = {params.reader.n_questions} exceeds the {max(rest, 0)} questions outside the study's splits (largest allowed: {max(rest, 0)})")
    if max(c.sizes) > rest - c.eval_questions:
        largest = max(rest - c.eval_questions, 0)
        problems.append(f"curve.sizes asks for {max(c.sizes)} training questions; {available} questions less the study's {d.n_train + d.n_test} "
                        f"and curve.eval_questions = {c.eval_questions} leave {largest} (largest allowed value: {largest})")
    powered = rest - params.reader.n_questions
    if params.powered.n_questions > powered:
        problems.append(f"powered.n_questions = {params.powered.n_questions} exceeds the {max(powered, 0)} questions outside the study's splits and "
                        f"the reader's reader.n_questions = {params.reader.n_questions} (largest allowed value: {max(powered, 0)})")
    fresh = powered - params.powered.n_questions + d.n_train  # the study's train split, then fresh questions
    if max(params.seam_curve.sizes) > fresh:
        problems.append(f"seam_curve.sizes asks for {max(params.seam_curve.sizes)} training questions; the study's train split and the questions "
                        f"outside the study, the reader's and the powered rows' leave {max(fresh, 0)} (largest allowed value: {max(fresh, 0)})")
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "check" or len(argv) > 2:
        print("usage: python -m ragalign.core.params check [PATH]", file=sys.stderr)
        return 2
    path = argv[1] if len(argv) == 2 else "params.yaml"
    try:
        params = load(path)
    except ParamsError as err:
        print(f"{path}: {err}", file=sys.stderr)
        return 1
    from ragalign.core.benchmarks import DataError, read_benchmark
    from ragalign.core.numerics import explain

    try:
        available = len(read_benchmark(params.data.dataset, params.data.path)[0])
    except DataError as err:  # not pulled yet: sizes are checked again when stage 01 reads the benchmark
        print(f"{path}: sizes not checked against the benchmark ({err})")
    else:
        problems = size_problems(params, available)
        if problems:
            print(f"{path}: invalid params:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
            return 1
    print(f"{path}: ok")
    print(explain(params))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
