"""The question sets the study draws beyond its train/test split (stage 01), each defined once, each from the
benchmark's questions (``every``: ``data.load_benchmark``), their rankings all stage 02's. Every set lies outside
the study's test split; those that train or tune a model are kept out of the sets that test them.

- the readers' training questions (stage 08): outside the study's splits, and the study's train split
  as the fair budget;
- the relevance control's held-out questions and training pool (stage 12): outside the study's splits;
- the powered rows' fresh questions (stage 13): outside the readers' training questions too;
- the seam curve's training order (stage 14): the study's train split, then fresh questions outside the
  readers' training questions and the powered rows' questions.
"""

from __future__ import annotations

import pandas as pd

from ragalign.core.benchmarks import read_benchmark
from ragalign.core.params import Params


def powered_questions(P: Params, every: pd.DataFrame, study: pd.DataFrame, reader_qids: set[str]) -> pd.DataFrame:
    """A seeded sample of ``powered.n_questions`` of the benchmark's questions (``every``) outside the study's
    splits and the readers' training questions (``reader_qids``), in qid order."""
    rest = every[~every.qid.isin(set(study.qid) | reader_qids)]
    if P.powered.n_questions > len(rest):
        raise ValueError(f"powered.n_questions = {P.powered.n_questions} exceeds the {len(rest)} questions left (largest allowed value: {len(rest)})")
    return rest.sample(n=P.powered.n_questions, random_state=P.powered.seed).sort_values("qid").reset_index(drop=True)


def seam_curve_order(P: Params, every: pd.DataFrame, study: pd.DataFrame, reader_qids: set[str]) -> pd.DataFrame:
    """The seam curve's training questions in order, each point a prefix: the study's train split (seeded
    order), then fresh benchmark questions outside the study, the readers' training questions and the
    powered rows' questions (seeded order)."""
    powered = set(powered_questions(P, every, study, reader_qids).qid)
    train = study[study.split == "train"].drop(columns="split")
    fresh = every[~every.qid.isin(set(study.qid) | reader_qids | powered)]
    seed = P.seam_curve.seed
    order = pd.concat([train.sample(frac=1.0, random_state=seed), fresh.sample(frac=1.0, random_state=seed)], ignore_index=True)
    if max(P.seam_curve.sizes) > len(order):
        raise ValueError(f"seam_curve.sizes asks for {max(P.seam_curve.sizes)} training questions; {len(order)} are available (the largest allowed value)")
    return order


def reader_questions(P: Params, every: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """The readers' training questions, by ``set``. ``tuned``: a seeded sample of ``reader.n_questions`` of
    the benchmark's questions (``every``) outside the study's train and test splits (the coupled GainRAG labels
    the train questions with this reader: it must not have trained on them), then ``reader.extra_questions``
    of ``reader.extra_dataset``. ``fair budget`` (with ``reader.fair_budget``): the study's train questions,
    the retriever-side methods' budget. No test question ever enters."""
    R = P.reader
    rest = every[~every.qid.isin(set(test.qid) | set(train.qid))]
    parts = [rest.sample(n=min(len(rest), R.n_questions), random_state=R.seed).assign(source="benchmark", set="tuned")]
    if R.extra_questions:
        extra, _ = read_benchmark(R.extra_dataset)
        parts.append(extra.sample(n=min(len(extra), R.extra_questions), random_state=R.seed).assign(source=R.extra_dataset, set="tuned"))
    if R.fair_budget:
        parts.append(train.assign(source="study train", set="fair budget"))
    out = pd.concat(parts, ignore_index=True)
    assert not set(out.qid) & set(test.qid), "a test question entered the reader's training set"
    return out[["qid", "question", "answers", "gold_pids", "source", "set"]]


def curve_questions(P: Params, every: pd.DataFrame, study: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(held-out, training pool): the benchmark's questions outside the study's splits in a seeded order;
    the first ``curve.eval_questions`` are held out, the training sets are prefixes of the rest."""
    rest = every[~every.qid.isin(set(study.qid))].sample(frac=1.0, random_state=P.curve.seed).reset_index(drop=True)
    return rest.iloc[: P.curve.eval_questions].reset_index(drop=True), rest.iloc[P.curve.eval_questions :].reset_index(drop=True)
