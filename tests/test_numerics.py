"""``auto`` numerics: bf16 only where the device runs it natively, resolved once, recorded for DVC."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ragalign.core import artifacts, cost, numerics, probes
from ragalign.core.params import validate

ROOT = Path(__file__).resolve().parents[1]
AVX2 = {"vendor": "AuthenticAMD", "model": "AMD EPYC (Zen 3)", "family": 25, "model_number": 1, "capability": "AVX2", "bf16_flags": []}
ZEN5 = {"vendor": "AuthenticAMD", "model": "AMD EPYC (Zen 5)", "family": 26, "model_number": 2, "capability": "AVX512", "bf16_flags": ["avx512_bf16"]}


@pytest.fixture
def fake_cpu(monkeypatch):
    """Pretend to run on a given CPU (and no GPU); the per-process caches are cleared around it."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def use(info: dict) -> None:
        numerics.native_bf16.cache_clear()
        monkeypatch.setattr(numerics, "cpu", lambda: info)

    yield use
    numerics.native_bf16.cache_clear()


def test_auto_is_float32_where_bf16_is_emulated(fake_cpu):
    fake_cpu(AVX2)
    n = validate({}).numerics()
    assert (n.dtype, n.retrieval_autocast, n.training_autocast) == ("float32", False, False)
    why = numerics.explain(validate({}))
    assert "float32" in why and "AVX2" in why and "no native bf16" in why and "10x slower" in why


def test_auto_is_bf16_where_it_is_native(fake_cpu):
    fake_cpu(ZEN5)
    n = validate({}).numerics()
    assert (n.dtype, n.retrieval_autocast, n.training_autocast) == ("bfloat16", True, True)
    assert "runs bf16 natively" in numerics.explain(validate({}))


def test_bf16_flags_below_torchs_avx512_kernels_are_not_native(fake_cpu):
    """A bf16-capable CPU forced to AVX2 kernels (``ATEN_CPU_CAPABILITY=avx2``: how the project measures a
    float32-only host on a bf16 one) computes as a float32-only CPU does."""
    fake_cpu(ZEN5 | {"capability": "AVX2"})
    assert validate({}).numerics().dtype == "float32"
    assert "below the AVX512" in numerics.native_bf16("cpu")[1]


def test_explicit_choices_win_and_emulated_bf16_warns(fake_cpu):
    fake_cpu(AVX2)
    p = validate({"models": {"dtype": "bfloat16"}, "retrieval": {"bf16_autocast": True}, "training": {"bf16_autocast": False}})
    with pytest.warns(UserWarning, match="emulated"):
        n = p.numerics()
    assert (n.dtype, n.retrieval_autocast, n.training_autocast) == ("bfloat16", True, False)
    fake_cpu(ZEN5)
    assert validate({"models": {"dtype": "float32"}}).numerics().dtype == "float32"


def test_the_switches_reject_other_words():
    from ragalign.core.params import ParamsError

    with pytest.raises(ParamsError, match="retrieval.bf16_autocast"):
        validate({"retrieval": {"bf16_autocast": "sometimes"}})


def test_the_record_names_what_changes_numbers(fake_cpu):
    import torch

    fake_cpu(AVX2)
    record = validate({}).numerics().record()
    assert record == {"device": "cpu", "dtype": "float32", "retrieval_autocast": False, "training_autocast": False, "cpu_capability": "AVX2", "torch": torch.__version__}
    assert set(record) == set(artifacts.NUMERICS.fields)


def test_a_stage_refuses_numerics_its_study_did_not_record(fake_cpu, tmp_path):
    fake_cpu(ZEN5)
    artifacts.NUMERICS.write(validate({}).numerics().record(), tmp_path)
    numerics.check_recorded(validate({}), tmp_path)  # same host: fine
    fake_cpu(AVX2)
    with pytest.raises(numerics.NumericsMismatch, match=r"dtype 'bfloat16' -> 'float32'.*dvc repro"):
        numerics.check_recorded(validate({}), tmp_path)
    numerics.check_recorded(validate({}), tmp_path / "elsewhere")  # no record yet: nothing to mix with


def test_the_estimate_scales_the_committed_run_by_the_probe(fake_cpu, tmp_path, monkeypatch):
    fake_cpu(ZEN5)
    timings = tmp_path / "results" / "timings"
    timings.mkdir(parents=True)
    there = {"cpu": ZEN5["model"], "dtype": "bfloat16"}
    for stage, wall, cold, machine in (("03_rag_baselines", 1800, True, there), ("10_rag_e_audit", 1800, True, there),
                                       ("05_selector_training", 600, False, there), ("07_figret", 600, True, {"cpu": "Other", "dtype": "float32"})):
        (timings / f"{stage}.json").write_text(json.dumps({"stage": stage, "wall_s": wall, "peak_rss_mib": 2048, "cold": cold, "host": machine}))
    artifacts.PROBE.write({"host": {"cpu": ZEN5}, "probe_s": 0.5, "numerics": {"dtype": "bfloat16"}}, tmp_path)  # an older probe's record
    monkeypatch.setattr(cost, "probes", lambda params: {"answer": 1.5, "encode": 1.0, "train": 2.0})  # answering three times slower here
    assert "the committed probe measured something else: re-run `dvc repro --force --single-item 00_numerics`" in cost.estimate(validate({}), tmp_path)
    artifacts.PROBE.write({"host": {"cpu": ZEN5}, "probe_s": 0.5, "probe_steps": probes.PROBE_STEPS, "numerics": {"dtype": "bfloat16"}}, tmp_path)
    text = cost.estimate(validate({}), tmp_path)
    assert "03_rag_baselines:   90.0 min here (30.0 min cold there; peak 2.0 GiB; answer probe alone)" in text
    assert "encode 1.00 s (not probed there)" in text and "2 stage(s) scaled by the answer probe alone" in text
    assert "05_selector_training: no cold figure yet (warm: some values came from the cache" in text
    assert "07_figret: no cold figure yet (measured on Other" in text
    assert "at least 180 min: 2 stage(s) without a cold figure (05_selector_training, 07_figret) are not counted" in text
    # a warm re-run keeps the last cold figure (runner.last_cold), which the estimate then scales
    warm = {"stage": "05_selector_training", "wall_s": 20, "peak_rss_mib": 1024, "cold": False, "host": there}
    (timings / "05_selector_training.json").write_text(json.dumps({**warm, "last_cold": {"wall_s": 600, "peak_rss_mib": 4096, "host": there}}))
    text = cost.estimate(validate({}), tmp_path)
    assert "05_selector_training:   30.0 min here (10.0 min cold there, kept from an earlier run: the last was warm; peak 4.0 GiB; answer probe alone)" in text
    assert "at least 210 min: 1 stage(s) without a cold figure (07_figret)" in text
    # probes of every kind there, and a stage whose time is split by kind: each kind by its own ratio
    artifacts.PROBE.write({"host": {"cpu": ZEN5}, "probe_s": 0.5, "probes_s": {"answer": 0.5, "encode": 0.25, "train": 0.5}, "probe_steps": probes.PROBE_STEPS,
                           "numerics": {"dtype": "bfloat16"}}, tmp_path)
    split = {"stage": "03_rag_baselines", "wall_s": 1800, "peak_rss_mib": 2048, "cold": True, "host": there, "spent_s": {"answer": 600, "encode": 600, "train": 300}}
    (timings / "03_rag_baselines.json").write_text(json.dumps(split))
    text = cost.estimate(validate({}), tmp_path)
    assert "encode 1.00 s vs 0.25 s (x4.00)" in text
    # answer 600 s x3 + encode 600 s x4 + train 300 s x4 + the other 300 s as it took there = 5,700 s
    assert "03_rag_baselines:   95.0 min here (30.0 min cold there; peak 2.0 GiB)" in text and "2 stage(s) scaled by the answer probe alone" in text


def test_a_split_run_scales_each_kind_of_work_by_its_own_probe():
    ratio = cost.ratios({"answer": 2.0, "encode": 3.0, "train": 1.0}, {"answer": 1.0, "encode": 1.0})
    assert ratio == {"answer": 2.0, "encode": 3.0}  # train was not probed there
    assert cost.scaled(100.0, {"answer": 50.0, "encode": 30.0}, ratio) == (50 * 2 + 30 * 3 + 20, True)  # the rest (start-up, I/O) as it took
    assert cost.scaled(100.0, {"answer": 50.0, "train": 30.0}, ratio) == (200.0, False)  # a kind without a ratio: the answer's for all
    assert cost.scaled(100.0, None, ratio) == (200.0, False)
    assert cost.scaled(10.0, {"answer": 12.0}, ratio) == (24.0, True)  # rounding can make the kinds exceed the wall: no negative rest


def test_an_estimate_is_judged_as_a_share_of_the_run_it_was_made_for():
    """Issue 28's 30% is of what the run then takes: 15.2 min estimated for a 10.8-min run is 41% off, not 29%."""
    assert cost.off_by(15.2, 10.8) == "+41% of the run (outside 30%)"
    assert cost.off_by(12.7, 10.8) == "+18% of the run (within 30%)"
    assert cost.off_by(7.5, 10.0) == "-25% of the run (within 30%)"


def test_a_recorded_cold_smoke_run_is_the_smokes_estimate(fake_cpu, tmp_path):
    """`make smoke` prints a cold smoke's minutes scaled by the probe, from the record `--record` wrote; a study
    with a warm stage is refused as a reference."""
    fake_cpu(AVX2)
    params = validate({})
    here = {"answer": 2.0, "encode": 1.0, "train": 3.0}
    minutes, said = cost.smoke_estimate(params, here, tmp_path)
    assert minutes is None and "python -m ragalign.smoke --record" in said
    study = tmp_path / "study"
    (study / "results" / "timings").mkdir(parents=True)
    for stage, wall, spent in (("03_rag_baselines", 50.0, {"answer": 30.0, "encode": 10.0}), ("08_reader_tuning", 70.0, {"answer": 20.0, "train": 40.0})):
        (study / "results" / "timings" / f"{stage}.json").write_text(json.dumps({"stage": stage, "wall_s": wall, "cold": True, "spent_s": spent}))
    record = cost.smoke_record(params, {"answer": 1.0, "encode": 1.0, "train": 1.0}, 600.0, study, tmp_path)
    assert record["stages"] == {"03_rag_baselines": 50.0, "08_reader_tuning": 70.0} and record["dtype"] == "float32"
    assert record["spent_s"] == {"answer": 50.0, "encode": 10.0, "train": 40.0}
    minutes, said = cost.smoke_estimate(params, here, tmp_path)
    # answer 50 s x2 + encode 10 s x1 + train 40 s x3 + the other 500 s as it took = 730 s
    assert minutes == pytest.approx(730 / 60) and "a cold smoke run took 10.0 min on" in said and "train 3.00 s vs 1.00 s (x3.00)" in said
    (study / "results" / "timings" / "08_reader_tuning.json").write_text(json.dumps({"stage": "08_reader_tuning", "wall_s": 3.0, "cold": False}))
    with pytest.raises(ValueError, match="not a cold smoke run: 08_reader_tuning"):
        cost.smoke_record(params, here, 600.0, study, tmp_path)


def test_the_probe_times_a_prefill_and_the_decode_steps_of_one_answer(monkeypatch):
    """One probe answer = one prefill of PROBE_TOKENS tokens, then PROBE_STEPS single-token steps on its KV cache
    (a warm-up and five timed answers); steps=0 times the prefill alone."""
    import torch

    from ragalign.core import models

    calls = []

    class Body(torch.nn.Module):
        def forward(self, input_ids, past_key_values=None, use_cache=False, position_ids=None):
            calls.append(input_ids.shape[1])
            return type("Out", (), {"last_hidden_state": torch.zeros(1, input_ids.shape[1], 4)})()

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.lm_head = Body(), torch.nn.Linear(4, 7)

    monkeypatch.setattr(models, "load_generator", lambda *a, **k: type("G", (), {"model": Model()})())
    probes.probe(validate({}))
    assert calls == ([probes.PROBE_TOKENS] + [1] * probes.PROBE_STEPS) * 6
    calls.clear()
    probes.probe(validate({}), steps=0)
    assert calls == [probes.PROBE_TOKENS] * 6


def test_another_resolution_makes_dvc_status_report_the_stages_stale(fake_cpu, tmp_path):
    """The committed study's record, rewritten as a host that resolves float32 would: DVC sees every model stage changed."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    for folder in ("lib", "notebooks"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "results").mkdir()
    shutil.copy(ROOT / artifacts.NUMERICS.path, repo / artifacts.NUMERICS.path)  # the committed record
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)

    def stale() -> set[str]:
        out = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=repo, capture_output=True, text=True, check=True)
        status = json.loads(out.stdout)  # other deps (the results this copy lacks) show as deleted: only the record counts
        return {name for name, changes in status.items() for c in changes if isinstance(c, dict) and c.get("changed deps", {}).get(artifacts.NUMERICS.path) == "modified"}

    stages = set(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])
    locked = set(yaml.safe_load((repo / "dvc.lock").read_text())["stages"])
    assert not stale() & locked  # a stage the lock has not recorded yet is stale whatever the record says
    recorded = json.loads((repo / artifacts.NUMERICS.path).read_text())
    fake_cpu(AVX2 if recorded["dtype"] == "bfloat16" else ZEN5)  # a host that resolves the other dtype
    artifacts.NUMERICS.write(validate({}).numerics().record() | {"torch": recorded["torch"]}, repo)
    assert stale() == stages - {"00_numerics"} and len(stages) == 15  # every stage after 00, by name from dvc.yaml


def test_the_estimate_warns_before_a_run_that_would_overwrite_other_numerics(fake_cpu, tmp_path, monkeypatch):
    fake_cpu(ZEN5)
    params = validate({})
    artifacts.NUMERICS.write(params.numerics().record(), tmp_path)
    assert cost.committed_numerics(params, tmp_path) is None  # the same machine: nothing to say
    fake_cpu(AVX2)  # a float32-only CPU reading a bf16 study
    warning = cost.committed_numerics(params, tmp_path)
    assert "dtype 'bfloat16' here 'float32'" in warning and "dvc exp run" in warning and "overwrites the committed results" in warning
