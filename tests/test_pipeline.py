"""End to end: the real `dvc repro` of the whole pipeline on a tiny benchmark, twice.

The tiny benchmark is a HotpotQA-format file written by the test; params are shrunk so every
stage runs in seconds with the real packaged models. The second run starts from an empty LLM
cache and must reproduce every metrics file and report byte for byte; a stage killed mid-way
must resume from its cache and finish with the same results.
"""

from __future__ import annotations

import csv
import io
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

from ragalign.smoke import make_study as build_study

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def stage_outputs(repo: Path) -> list[Path]:
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                name = entry if isinstance(entry, str) else next(iter(entry))
                paths.append(repo / name)
    return paths


def run(cmd: list[str], repo: Path, env: dict) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}"
    return out


def make_study(tmp_path_factory, dataset: str = "hotpotqa") -> tuple[Path, Path, dict]:
    """The smoke study (params.smoke.yaml) of ``dataset`` in a temporary folder, and its environment."""
    repo, cache, guard = (tmp_path_factory.mktemp(name) for name in (f"study_{dataset}", "cache", "guard"))
    env = build_study(repo, cache, guard, dataset)
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('1.1.1.1', 443), timeout=5)"], env=env, capture_output=True, text=True)
    assert "network blocked by the offline test" in probe.stderr
    return repo, cache, env


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    return make_study(tmp_path_factory)


def snapshot(repo: Path) -> dict[str, bytes]:
    files = sorted((repo / "results" / "metrics").glob("*.json")) + sorted((repo / "reports").glob("*.ipynb"))
    return {str(f.relative_to(repo)): f.read_bytes() for f in files}


def test_full_pipeline_runs_and_is_deterministic(tiny_repo):
    repo, cache, env = tiny_repo
    run([sys.executable, "-m", "dvc", "repro"], repo, env)
    missing = [str(p.relative_to(repo)) for p in stage_outputs(repo) if not p.exists()]
    assert not missing, f"declared outputs missing: {missing}"
    for metrics in (repo / "results" / "metrics").glob("*.json"):
        assert json.loads(metrics.read_text()), metrics.name
    baselines = json.loads((repo / "results/metrics/baselines.json").read_text())
    for variant in ("no_retrieval", "oracle", "bm25", "dense", "reranker"):
        assert 0 <= baselines[variant]["f1"]["lo"] <= baselines[variant]["f1"]["mean"] <= baselines[variant]["f1"]["hi"] <= 1
    first = snapshot(repo)
    status = json.loads(run([sys.executable, "-m", "dvc", "status", "--json"], repo, env).stdout)
    assert status == {}, status  # every stage, 00_numerics included, is up to date with dvc.lock

    (cache / "lm.sqlite").unlink()  # second run recomputes every LLM evaluation
    run([sys.executable, "-m", "dvc", "repro", "--force"], repo, env)
    second = snapshot(repo)
    assert first.keys() == second.keys()
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, f"not byte-identical on a second run: {differ}"


def test_late_param_change_touches_only_its_stages(tiny_repo):
    repo, _, env = tiny_repo
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["gain"]["alpha"] = 0.2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        out = run([sys.executable, "-m", "dvc", "status", "--json"], repo, env)
        changed = set(json.loads(out.stdout))
        assert changed == {"04_gain_labelling", "05_selector_training", "09_seam"}, changed  # 09 re-labels with the tuned reader
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


def test_queued_sweep_gives_a_comparison_table(tiny_repo):
    """The README's sweep: queue a grid over gain.alpha, run the queue, compare with `dvc exp show`. The grid
    holds the workspace's value (0.5, which DVC's run cache makes free, as the README says) and one other."""
    repo, _, env = tiny_repo
    env = {**env, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    dvc = [sys.executable, "-m", "dvc"]
    # the state a clone has after `dvc pull` and a finished `dvc repro`: data tracked by DVC, results committed
    # (`dvc commit`: the resume test above re-ran stage 03 outside DVC, so its wall time changed)
    run([*dvc, "add", "data"], repo, env)
    run([*dvc, "commit", "--force"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "tiny study"], repo, env)
    run([*dvc, "exp", "run", "--queue", "-S", "gain.alpha=0,0.5"], repo, env)
    run([*dvc, "queue", "start"], repo, env)
    deadline = time.time() + 1500
    while time.time() < deadline:
        status = run([*dvc, "queue", "status"], repo, env).stdout
        if not any(word in status for word in ("Queued", "Running")):
            break
        time.sleep(5)
    assert status.count("Success") == 2, status
    table = run([*dvc, "exp", "show", "--csv"], repo, env).stdout
    experiments = [r for r in csv.DictReader(io.StringIO(table)) if r["State"] == "Success"]
    assert sorted(float(r["gain.alpha"]) for r in experiments) == [0.0, 0.5], table
    assert all(r["variants.GainRAG.gold_logprob"] not in ("", "-") for r in experiments)
    # α weights the contrastive term of the gain labels, so each experiment labelled differently
    assert len({r["labels.label_mean"] for r in experiments}) == 2
    # the README's readable form of the same comparison
    keep = "Experiment|gain.alpha|variants.GainRAG.(gold_logprob|f1)$|labels.label_mean"
    shown = run([*dvc, "exp", "show", "--drop", ".*", "--keep", keep], repo, env).stdout
    assert "gain.alpha" in shown and "variants.GainRAG.f1" in shown


# The stages that read a benchmark's own format or depend on how many gold passages a question has:
# reading it (01), retrieving over its corpus (02), answering with its gold passages (03) and training the
# reader on its other questions (08). Every later stage reads only the questions/passages/rankings
# contracts, which the HotpotQA study above runs end to end.
FORMAT_STAGES = ("03_rag_baselines", "08_reader_tuning")


@pytest.mark.parametrize(("dataset", "stages"), [("squad", FORMAT_STAGES), ("nq_open", FORMAT_STAGES[:1])])
def test_the_study_runs_on_the_other_benchmarks(tmp_path_factory, dataset, stages):
    """`data.dataset=squad|nq_open`: the stages that read the benchmark run on it, one gold passage per question
    (the reader's, 08, on SQuAD: it reads the benchmark with the same reader as 01, which both formats run)."""
    repo, _, env = make_study(tmp_path_factory, dataset)
    run([sys.executable, "-m", "dvc", "repro", *stages], repo, env)
    status = json.loads(run([sys.executable, "-m", "dvc", "status", "--json", *stages], repo, env).stdout)
    assert status == {}, status  # every stage they need ran and is locked
    data = json.loads((repo / "results/metrics/data.json").read_text())
    assert data["dataset"] == dataset and data["gold_passages_per_question"] == 1.0
    baselines = json.loads((repo / "results/metrics/baselines.json").read_text())
    assert {"no_retrieval", "oracle", "bm25", "dense", "reranker"} <= set(baselines)
    assert all(0 <= baselines[v]["f1"]["mean"] <= 1 for v in ("oracle", "dense"))
    if "08_reader_tuning" in stages:
        reader = json.loads((repo / "results/metrics/reader.json").read_text())
        questions = reader["training"]["questions"]  # set -> source -> count
        assert questions["tuned"]["benchmark"] > 0 and questions["tuned"].get("study train", 0) == 0  # the benchmark's other questions only
        assert questions["fair budget"]["study train"] == yaml.safe_load((repo / "params.yaml").read_text())["data"]["n_train"]
        assert {"tuned:dense", "untuned:oracle"} <= set(reader)
    report = json.loads((repo / "reports/01_prepare_data.ipynb").read_text())
    assert dataset in "".join(report["cells"][1]["source"])  # the findings name the benchmark
