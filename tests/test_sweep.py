"""The README's sweep, end to end on a tiny study of its own: queued DVC experiments over a param, run by the
queue in copies of the project, compared by `dvc exp show`. Its own file, so pytest-xdist runs it beside the
full pipeline's tests (``--dist loadfile``) rather than after them."""

from __future__ import annotations

import csv
import io
import sys
import time

import pytest
import yaml

from tests.study import make_study, run

pytestmark = pytest.mark.slow


def test_queued_sweep_gives_a_comparison_table(tmp_path_factory):
    """The README's sweep: queue a grid over gain.alpha, run the queue, compare with `dvc exp show`. The grid
    holds the workspace's value (0.5, which DVC's run cache makes free, as the README says) and one other. Each
    queued experiment runs in a copy of the project (``.dvc/tmp/exps``), on that copy's own lib/ (the runner
    re-executes itself there). The experiments stop at GainRAG's selector (stage 05), the first metrics alpha
    moves: the later stages run in tests/test_pipeline.py's full study, and the queue's copy, params and
    comparison are the same. The study has half the smoke study's questions (8 train, 4 test)."""
    repo, _, env = make_study(tmp_path_factory)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(n_train=8, n_test=4)  # half the smoke study's questions: the queue is under test here, not the method
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**env, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    dvc = [sys.executable, "-m", "dvc"]
    # the state a clone has after `dvc pull` and a `dvc repro` (here up to the sweep's stages): data tracked by DVC, results committed
    run([*dvc, "repro", "05_selector_training"], repo, env)
    run([*dvc, "add", "data"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "tiny study"], repo, env)
    run([*dvc, "exp", "run", "--queue", "-S", "gain.alpha=0,0.5", "05_selector_training"], repo, env)
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
    assert all(r["gainrag.gold_logprob.mean"] not in ("", "-") for r in experiments)
    # α weights the contrastive term of the gain labels, so each experiment labelled differently
    assert len({r["labels.label_mean"] for r in experiments}) == 2
    # the README's readable form of the same comparison
    keep = "Experiment|gain.alpha|gainrag.(gold_logprob|f1).mean$|labels.label_mean"
    shown = run([*dvc, "exp", "show", "--drop", ".*", "--keep", keep], repo, env).stdout
    assert "gain.alpha" in shown and "gainrag.f1.mean" in shown
