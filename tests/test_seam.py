"""Stage 09's contexts: every ranked method at every k of ``seam.ks``, and at its own stage's k exactly
the contexts that stage answered with."""

import pandas as pd
import pytest

from ragalign.core import artifacts
from ragalign.core.params import ParamsError, validate
from ragalign.stages.seam import RANKED, own_k, seam_contexts

QIDS = ["q1", "q2", "q3"]


def _ranking(method: str) -> pd.DataFrame:
    """Six passages per question, in a method-specific order (so the methods' top-k differ)."""
    shift = [m for m, *_ in RANKED].index(method)
    rows = [
        {"qid": q, "rank": r, "pid": f"p{(r + shift + i) % 9}", "score": 1.0 - r / 10, "method": method}
        for i, q in enumerate(QIDS) for r in range(6)
    ]
    return pd.DataFrame(rows)


def _answers(variant: str, contexts: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {"qid": QIDS, "variant": variant, "context_pids": [contexts[q] for q in QIDS], "answer": "x", "em": 0.0, "f1": 0.0, "gold_logprob": -1.0}
    )


def _study(P, tamper: str | None = None) -> None:
    """Write every artifact ``seam_contexts`` reads, as the method stages would (``tamper``: one stage that
    answered with other contexts than its ranking's top k)."""
    tables: dict[artifacts.Artifact, list[pd.DataFrame]] = {}
    base = tables.setdefault(artifacts.BASELINE_ANSWERS, [])
    base.append(_answers("no_retrieval", {q: [] for q in QIDS}))
    base.append(_answers("oracle", {q: ["g1", "g2"] for q in QIDS}))
    for method, ranking, answers in RANKED:
        ranked = _ranking(method)
        ranking.write(ranked)
        k = own_k(P, method)
        ctx = {q: ranked[ranked.qid == q].sort_values("rank").pid.tolist()[:k] for q in QIDS}
        if method == tamper:
            ctx["q2"] = ctx["q2"][::-1] if k > 1 else ["elsewhere"]
        tables.setdefault(answers, []).append(_answers(method, ctx))
    for table, parts in tables.items():
        table.write(pd.concat(parts, ignore_index=True))


def test_every_ranked_method_is_cut_at_every_k(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    P = validate({})
    _study(P)
    contexts = seam_contexts(P, pd.DataFrame({"qid": QIDS}))
    methods = [m for m, *_ in RANKED]
    assert set(contexts) == {"no_retrieval", "oracle"} | {f"{m}@{k}" for m in methods for k in P.seam.ks}
    for m in methods:
        ranked = _ranking(m)
        for k in P.seam.ks:
            assert contexts[f"{m}@{k}"] == {q: ranked[ranked.qid == q].pid.tolist()[:k] for q in QIDS}
    assert contexts["oracle"]["q1"] == ["g1", "g2"] and contexts["no_retrieval"]["q3"] == []


@pytest.mark.parametrize("method", ["gainrag", "radio"])
def test_a_stage_that_answered_with_other_contexts_than_its_ranking_is_an_error(tmp_path, monkeypatch, method):
    """GainRAG answers with selector.top_k passages, RADIO with radio.top_k: both are checked at their own k."""
    monkeypatch.chdir(tmp_path)
    P = validate({})
    _study(P, tamper=method)
    stage = dict((m, a.stage) for m, _, a in RANKED)[method]
    with pytest.raises(RuntimeError, match=f"re-run {stage}"):
        seam_contexts(P, pd.DataFrame({"qid": QIDS}))


def test_a_k_beyond_what_every_method_ranks_fails_at_params_check():
    with pytest.raises(ParamsError, match=r"seam.ks has 9, more than the selector.top_n \+ 1=8"):
        validate({"seam": {"ks": [1, 9]}})
