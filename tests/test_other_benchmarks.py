"""End to end on the other benchmarks: `data.dataset=squad|nq_open` runs the stages that read the benchmark."""

from __future__ import annotations

import gzip
import json
import sys

import pandas as pd
import pytest
import yaml

from tests.study import make_study, run

pytestmark = pytest.mark.slow

FORMAT_STAGES = ("03_rag_baselines", "08_reader_tuning")


@pytest.mark.parametrize(
    ("dataset", "stages"),
    [("squad", FORMAT_STAGES), ("nq_open", ("02_retrieval",))],
)
def test_the_study_runs_on_the_other_benchmarks(tmp_path_factory, dataset, stages):
    """`data.dataset=squad|nq_open`: the stages that read the benchmark run on it, one gold passage per question.
    NQ-open runs what reads its own format (01) and retrieves over its corpus (02); the stages that depend on one
    gold passage per question (03, and the reader's 08, which reads the benchmark with the same reader as 01)
    run on SQuAD, which has one too."""
    repo, _, env = make_study(tmp_path_factory, dataset)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    # the benchmark's format is under test here, not the method: 4 test questions, and the tuned reader alone (the
    # fair-budget reader trains on the study's train split whatever the benchmark: tests/test_reader.py)
    params["data"]["n_test"] = 4
    params["reader"]["fair_budget"] = False
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([sys.executable, "-m", "dvc", "repro", *stages], repo, env)
    status = json.loads(run([sys.executable, "-m", "dvc", "status", "--json", *stages], repo, env).stdout)
    assert status == {}, status  # every stage they need ran and is locked
    data = json.loads((repo / "results/metrics/data.json").read_text())
    assert data["dataset"] == dataset and data["gold_passages_per_question"] == 1.0
    retrieval = json.loads((repo / "results/metrics/retrieval.json").read_text())["test"]
    assert all(0 < retrieval[r]["mrr"] <= 1 for r in ("bm25", "dense"))  # the gold passage is retrieved over its own corpus
    if "03_rag_baselines" in stages:
        baselines = json.loads((repo / "results/metrics/baselines.json").read_text())
        assert {"no_retrieval", "oracle", "bm25", "dense", "reranker"} <= set(baselines)
        assert all(0 <= baselines[v]["f1"]["mean"] <= 1 for v in ("oracle", "dense"))
    if "08_reader_tuning" in stages:
        reader = json.loads((repo / "results/metrics/reader.json").read_text())
        questions = reader["training"]["questions"]  # set -> source -> count
        assert questions["tuned"]["benchmark"] > 0 and questions["tuned"].get("study train", 0) == 0  # the benchmark's other questions only
        assert "fair budget" not in questions  # reader.fair_budget: false
        assert {"tuned:dense", "untuned:oracle"} <= set(reader)
    # the study's questions are the benchmark file's own (not a label echoed from params.yaml)
    from ragalign.core.benchmarks import DEFAULT_PATHS

    source = repo / DEFAULT_PATHS[dataset]
    with gzip.open(source, "rt") if source.suffix == ".gz" else source.open() as fh:
        raw = fh.read()
    questions = pd.read_parquet(repo / "results/data/questions.parquet")
    assert len(questions) and (questions["dataset"] == dataset).all()
    assert all(json.dumps(q)[1:-1] in raw for q in questions["question"]), "a question not in the benchmark's file"
    report = json.loads((repo / "reports/01_prepare_data.ipynb").read_text())
    assert dataset in "".join(report["cells"][1]["source"])  # the findings name the benchmark
