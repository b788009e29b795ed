"""End to end: the real `dvc repro` of the whole pipeline on a tiny benchmark, twice.

The tiny benchmark is a HotpotQA-format file written by the test; params are shrunk so every
stage runs in seconds with the real packaged models. The second run starts from an empty LLM
cache and must reproduce every metrics file and report byte for byte; a stage killed mid-way
must resume from its cache and finish with the same results.
"""

from __future__ import annotations

import csv
import gzip
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

from tests.conftest import hotpot_record

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TINY = {
    "data": {"n_train": 16, "n_test": 8},
    "retrieval": {"k": 8, "encode_batch_size": 32},
    "rag": {"top_k": 3, "max_new_tokens": 6, "n_bootstrap": 50},
    "training": {"epochs": 1, "batch_size": 4, "group_size": 4, "max_length": 96},
    "gain": {"k": 3, "pseudo_max_new_tokens": 12, "n_questions": None, "bench_questions": 0},
    "selector": {"top_n": 4, "top_k": 1},
    "radio": {"k": 8, "neg_ranks": [2, 4, 6], "rationale_max_new_tokens": 12, "top_k": 3},
    "figret": {"rounds": 2, "k": 3, "n_questions": 4, "pool_k": 4, "n_negatives": 1},
    "rag_e": {
        "k": 3,
        "n_questions": 2,
        "ig_steps": 4,
        "ig_questions": 1,
        "mc_evaluations": 6,
        "convergence_questions": 1,
        "convergence_k": 4,
        "convergence_repeats": 2,
    },
}


def tiny_params() -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in TINY.items():
        for key, value in values.items():
            if key in params.get(section, {}):
                params[section][key] = value
    return params


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


NETWORK_GUARD = """
import socket

_connect = socket.socket.connect


def _local(address):
    host = str(address[0] if isinstance(address, tuple) else address)
    return host in ("localhost", "::1") or host.startswith("127.") or not host or host.startswith("/")


def _guarded(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address):
        raise OSError(f"network blocked by the offline test: {address}")
    return _connect(self, address)


socket.socket.connect = _guarded
socket.socket.connect_ex = lambda self, address: _guarded(self, address) or 0
"""


def squad_paragraph(i: int) -> dict:
    """A SQuAD-format paragraph with two questions it answers."""
    return {
        "title": f"Town {i}",
        "context": f"Person{i} was born in City{i}. City{i} is a port with {i + 3} bridges.",
        "qas": [
            {"id": f"s{i}a", "question": f"Where was Person{i} born?", "answers": [f"City{i}"]},
            {"id": f"s{i}b", "question": f"How many bridges has City{i}?", "answers": [str(i + 3)]},
        ],
    }


def nq_record(i: int) -> dict:
    """An NQ-open record with its gold passage (and a non-gold one the reader must skip)."""
    return {
        "question": f"where was person{i} born",
        "answers": [f"City{i}"],
        "ctxs": [
            {"title": f"Person{i}", "text": f"Person{i} was born in City{i}.", "hasanswer": True, "isgold": True},
            {"title": "Noise", "text": "Unrelated text.", "hasanswer": False, "isgold": False},
        ],
        "nq_annotated_gold": {"title": f"Person{i}"},
    }


def write_benchmark(repo: Path, dataset: str, n: int = 40) -> None:
    """A tiny benchmark in the dataset's own format, at the path the study reads it from."""
    from ragalign.data import DEFAULT_PATHS

    path = repo / DEFAULT_PATHS[dataset]
    path.parent.mkdir(parents=True)
    if dataset == "hotpotqa":
        path.write_text("".join(json.dumps(hotpot_record(i, n_distractors=6)) + "\n" for i in range(n)))
    elif dataset == "squad":
        path.write_text(json.dumps([squad_paragraph(i) for i in range(n // 2)]))
    else:
        with gzip.open(path, "wt") as fh:
            fh.write("".join(json.dumps(nq_record(i)) + "\n" for i in range(n)))


def make_study(tmp_path_factory, dataset: str = "hotpotqa") -> tuple[Path, Path, dict]:
    """A copy of the project (no data, results or caches) on a tiny benchmark, and its environment."""
    repo = tmp_path_factory.mktemp(f"study_{dataset}")
    skip_top = {".git", ".venv", ".cache", "results", "data", "reports", "figures", "data.dvc", "dvc.lock", ".pytest_cache", ".ruff_cache"}

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        if here == ROOT:
            return skip_top & set(names)
        if here == ROOT / ".dvc":
            return {"cache", "tmp"} & set(names)
        return {"__pycache__"} & set(names)

    shutil.copytree(ROOT, repo, ignore=ignore, dirs_exist_ok=True)
    (repo / "results" / "metrics").mkdir(parents=True)
    write_benchmark(repo, dataset)
    params = tiny_params()
    params["data"]["dataset"] = dataset
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    cache = tmp_path_factory.mktemp("cache")
    from ragalign.models import generator_path

    models = cache / "models"
    models.mkdir()
    (models / "smollm2-135m-instruct").symlink_to(generator_path("smollm2-135m-instruct"))
    guard = tmp_path_factory.mktemp("guard")
    (guard / "sitecustomize.py").write_text(NETWORK_GUARD)
    env = {
        **os.environ,
        "RAGALIGN_CACHE": str(cache),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(guard),  # every process of the pipeline runs with the network blocked
    }
    env.pop("HF_HUB_OFFLINE", None)  # the library must set it by itself
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
    status = run([sys.executable, "-m", "dvc", "status"], repo, env)
    assert "up to date" in status.stdout

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
        assert changed == {"04_gain_labelling", "05_selector_training"}, changed
        dry = run([sys.executable, "-m", "dvc", "repro", "--dry"], repo, env).stdout
        would_run = {line.split("'")[1] for line in dry.splitlines() if line.startswith("Running stage")}
        assert not would_run & {"01_prepare_data", "02_retrieval", "03_rag_baselines", "07_figret"}, would_run
    finally:
        (repo / "params.yaml").write_text(original)


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
    """The README's sweep: queue a grid over gain.alpha, run the queue, compare with `dvc exp show`."""
    repo, _, env = tiny_repo
    env = {**env, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    dvc = [sys.executable, "-m", "dvc"]
    # the state a clone has after `dvc pull` and a finished `dvc repro`: data tracked by DVC, results committed
    # (`dvc commit`: the resume test above re-ran stage 03 outside DVC, so its wall time changed)
    run([*dvc, "add", "data"], repo, env)
    run([*dvc, "commit", "--force"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "tiny study"], repo, env)
    run([*dvc, "exp", "run", "--queue", "-S", "gain.alpha=0,0.5,1"], repo, env)
    run([*dvc, "queue", "start"], repo, env)
    deadline = time.time() + 1500
    while time.time() < deadline:
        status = run([*dvc, "queue", "status"], repo, env).stdout
        if not any(word in status for word in ("Queued", "Running")):
            break
        time.sleep(5)
    assert status.count("Success") == 3, status
    table = run([*dvc, "exp", "show", "--csv"], repo, env).stdout
    experiments = [r for r in csv.DictReader(io.StringIO(table)) if r["State"] == "Success"]
    assert sorted(float(r["gain.alpha"]) for r in experiments) == [0.0, 0.5, 1.0], table
    assert all(r["variants.GainRAG.f1"] not in ("", "-") for r in experiments)
    # α weights the contrastive term of the gain labels, so each experiment labelled differently
    assert len({r["labels.label_mean"] for r in experiments}) == 3
    # the README's readable form of the same comparison
    keep = "Experiment|gain.alpha|variants.GainRAG.(f1|warg)$|labels.label_mean"
    shown = run([*dvc, "exp", "show", "--drop", ".*", "--keep", keep], repo, env).stdout
    assert "gain.alpha" in shown and "variants.GainRAG.f1" in shown


@pytest.mark.parametrize("dataset", ["squad", "nq_open"])
def test_the_whole_study_runs_on_the_other_benchmarks(tmp_path_factory, dataset):
    """`data.dataset=squad|nq_open` runs every stage: one gold passage per question, their own formats."""
    repo, _, env = make_study(tmp_path_factory, dataset)
    run([sys.executable, "-m", "dvc", "repro"], repo, env)
    missing = [str(p.relative_to(repo)) for p in stage_outputs(repo) if not p.exists()]
    assert not missing, f"declared outputs missing: {missing}"
    data = json.loads((repo / "results/metrics/data.json").read_text())
    assert data["dataset"] == dataset and data["gold_passages_per_question"] == 1.0
    summary = json.loads((repo / "results/metrics/summary.json").read_text())
    assert {"dense top-k", "GainRAG", "RADIO", "FiGRet"} <= set(summary["variants"])
    assert all(0 <= v["f1"] <= 1 for v in summary["variants"].values())
    report = json.loads((repo / "reports/01_prepare_data.ipynb").read_text())
    assert dataset in "".join(report["cells"][1]["source"])  # the findings name the benchmark
