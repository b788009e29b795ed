"""End to end: the real `dvc repro` of the whole pipeline on a tiny benchmark, and a twin of it at once.

The tiny benchmark is a HotpotQA-format file written by the test; params are shrunk so every
stage runs in seconds with the real packaged models. A twin study, in its own folder with its own
empty LLM cache, runs the stages that answer, label and train (03 answers, 04 gain labels, 05 the
selector's training, 08 the reader's) at the same time and must reproduce their metrics files and
reports byte for byte; a stage killed mid-way must resume from its cache and finish with the same
results. (The twin runs these alone to keep `make test` within 20 minutes on a 2-core float32 CPU: the
other stages reuse the scoring, generation and training paths the twin checks.)

The tests here share the tiny study and run in order in one pytest-xdist worker (``make test``:
``-n 2 --dist loadfile``); the sweep's study (test_sweep.py), the other benchmarks' studies (test_other_benchmarks.py) and the unit
tests run beside them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.study import make_study, run, run_together, snapshot, stage_outputs

pytestmark = pytest.mark.slow

TWIN_STAGES = ("03_rag_baselines", "05_selector_training", "08_reader_tuning")  # with what they need: 00-05 and 08


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict:
    """The smoke study and a twin of it (its own folder, its own empty LLM cache; TWIN_STAGES), run by
    `dvc repro` at the same time; what the end-to-end test checks is captured here, before any other test touches the study,
    so the tests that share it may run in any order (pytest-xdist does not keep the file's order)."""
    repo, cache, env = make_study(tmp_path_factory)
    twin, twin_cache, twin_env = make_study(tmp_path_factory)
    assert not (twin_cache / "lm.sqlite").exists()  # the twin recomputes every LLM evaluation
    dvc = [sys.executable, "-m", "dvc", "repro"]
    run_together([(dvc, repo, env), ([*dvc, *TWIN_STAGES], twin, twin_env)])
    status = json.loads(run([sys.executable, "-m", "dvc", "status", "--json"], repo, env).stdout)
    missing = [str(p.relative_to(repo)) for p in stage_outputs(repo) if not p.exists()]
    timings = {p.stem: json.loads(p.read_text()) for p in (repo / "results" / "timings").glob("*.json")}
    return {"study": (repo, cache, env), "status": status, "missing": missing, "first": snapshot(repo), "twin": snapshot(twin), "timings": timings}


@pytest.fixture(scope="module")
def tiny_repo(tiny_run) -> tuple[Path, Path, dict]:
    """The study's folder, its LLM cache and its environment, after its full `dvc repro`."""
    return tiny_run["study"]


def test_full_pipeline_runs_and_is_deterministic(tiny_run):
    """The whole pipeline, and a twin of its answering, labelling and training stages from an empty LLM cache
    in another folder, at the same time: every metrics file and report the twin wrote is byte for byte the first study's."""
    assert not tiny_run["missing"], f"declared outputs missing: {tiny_run['missing']}"
    first, second = tiny_run["first"], tiny_run["twin"]
    for name, content in first.items():
        if name.startswith("results/metrics/"):
            assert json.loads(content), name
    baselines = json.loads(first["results/metrics/baselines.json"])
    for variant in ("no_retrieval", "oracle", "bm25", "dense", "reranker"):
        assert 0 <= baselines[variant]["f1"]["lo"] <= baselines[variant]["f1"]["mean"] <= baselines[variant]["f1"]["hi"] <= 1
    assert tiny_run["status"] == {}, tiny_run["status"]  # every stage, 00_numerics included, is up to date with dvc.lock
    assert sorted(name[len("reports/"):][:2] for name in second if name.startswith("reports/")) == ["00", "01", "02", "03", "04", "05", "08"]
    assert second.keys() <= first.keys()
    differ = [name for name in second if first[name] != second[name]]
    assert not differ, f"not byte-identical on a second run: {differ}"


def test_stage_02_ranks_every_benchmark_question(tiny_repo):
    """One ranking per question in the whole study: stage 02 ranks every question of the benchmark, the
    readers', the curves' and the powered rows' among them (they read it: ``retrieval.rankings_of``)."""
    from ragalign.core import artifacts

    repo = tiny_repo[0]
    every = artifacts.BENCHMARK.read(repo)
    k = yaml.safe_load((repo / "params.yaml").read_text())["retrieval"]["k"]
    for ranking in (artifacts.DENSE.read(repo), artifacts.BM25.read(repo)):
        assert sorted(ranking.qid.unique()) == sorted(every.qid) and (ranking.groupby("qid").size() == k).all()


def test_each_stage_records_its_time_by_kind_of_work_and_stage_00_probes_each_kind(tiny_run):
    """What the cost estimate scales kind by kind (core.stopwatch, core.cost): the probes of each kind, and per
    stage the seconds its kernel spent answering, encoding and training, within its wall time."""
    timings = tiny_run["timings"]
    probes = timings.pop("probe")["probes_s"]
    assert set(probes) == {"answer", "encode", "train"} and all(seconds > 0 for seconds in probes.values())
    assert len(timings) == 15 and all(set(t["spent_s"]) == {"answer", "encode", "train"} and sum(t["spent_s"].values()) <= t["wall_s"] for t in timings.values())
    spent = {stage[:2]: t["spent_s"] for stage, t in timings.items()}
    assert spent["01"] == {"answer": 0.0, "encode": 0.0, "train": 0.0}  # reads the benchmark: no model
    assert spent["02"]["encode"] > 0 and spent["02"]["answer"] == 0 == spent["02"]["train"]  # embeds the corpus
    assert spent["03"]["answer"] > 0 and spent["03"]["train"] > 0  # answers; trains the relevance reranker
    assert spent["08"]["train"] > 0 and spent["10"]["train"] > 0  # the reader's tuning; the audit's Integrated Gradients


def test_late_param_change_touches_only_its_stages(tiny_repo):
    repo, _, env = tiny_repo
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["gain"]["alpha"] = 0.2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        out = run([sys.executable, "-m", "dvc", "status", "--json"], repo, env)
        changed = set(json.loads(out.stdout))
        assert changed == {"04_gain_labelling", "05_selector_training", "09_seam", "14_seam_curve"}, changed  # 09 re-labels with the tuned reader, 14 trains GainRAG
        dry = run([sys.executable, "-m", "dvc", "repro", "--dry"], repo, env).stdout
        would_run = {line.split("'")[1] for line in dry.splitlines() if line.startswith("Running stage")}
        assert not would_run & {"01_prepare_data", "02_retrieval", "03_rag_baselines", "07_figret"}, would_run
    finally:
        (repo / "params.yaml").write_text(original)


def test_a_benchmark_named_by_data_path_is_a_dependency(tiny_repo):
    """Point data.path at another file: editing one answer in it makes `dvc status` report stage 01 changed."""
    repo, _, env = tiny_repo
    dvc = [sys.executable, "-m", "dvc"]
    saved = {name: (repo / name).read_text() for name in ("params.yaml", "dvc.lock")}
    params = yaml.safe_load(saved["params.yaml"])
    mine = repo / "mine.jsonl"
    shutil.copy(repo / "data" / "hotpotqa" / "hotpot_dev_distractor.jsonl", mine)
    params["data"]["path"] = "mine.jsonl"
    try:
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run([*dvc, "commit", "--force", "01_prepare_data"], repo, env)  # as if stage 01 had run on it
        assert "01_prepare_data" not in json.loads(run([*dvc, "status", "--json", "01_prepare_data"], repo, env).stdout)
        lines = mine.read_text().splitlines()
        record = json.loads(lines[0])
        record["answer"] += " (edited)"
        mine.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
        status = json.loads(run([*dvc, "status", "--json", "01_prepare_data"], repo, env).stdout)
        assert {"changed deps": {"mine.jsonl": "modified"}} in status["01_prepare_data"], status
    finally:
        for name, text in saved.items():
            (repo / name).write_text(text)
        mine.unlink(missing_ok=True)


def test_plots_render_offline(tiny_repo):
    repo, _, env = tiny_repo
    run([sys.executable, "-m", "dvc", "plots", "show", "-o", "plots_html"], repo, env)
    html = (repo / "plots_html" / "index.html").read_text()
    assert "cdn.jsdelivr" not in html and "vegaEmbed" in html and "baselines_reranker_curve" in html


def test_interrupted_stage_resumes_from_cache(tiny_repo):
    repo, cache, env = tiny_repo
    reference = (repo / "results/metrics/baselines.json").read_bytes()
    db = cache / "lm.sqlite"
    db.unlink()
    proc = subprocess.Popen([sys.executable, "-m", "ragalign.runner", "03_rag_baselines"], cwd=repo, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    cached = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            with sqlite3.connect(db, timeout=30) as conn:
                cached = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            if cached > 0:
                break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert cached > 0, "the stage never wrote to its cache before it was killed"
    run([sys.executable, "-m", "ragalign.runner", "03_rag_baselines"], repo, env)
    assert (repo / "results/metrics/baselines.json").read_bytes() == reference



# The stages that read a benchmark's own format or depend on how many gold passages a question has:
# reading it (01), retrieving over its corpus (02), answering with its gold passages (03) and training the
# reader on its other questions (08). Every later stage reads only the questions/passages/rankings
# contracts, which the HotpotQA study above runs end to end.
