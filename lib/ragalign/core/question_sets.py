"""The question sets the study draws beyond its train/test split (stage 01), each defined once. Every set
lies outside the study's splits; those that train or tune a model are kept out of the sets that test them.

- the powered rows' fresh questions (stage 13): outside the readers' training questions too;
- the seam curve's training order (stage 14): the study's train split, then fresh questions outside the
  readers' training questions and the powered rows' questions.
"""

from __future__ import annotations

import pandas as pd

from ragalign.core.params import Params


def powered_questions(P: Params, every: pd.DataFrame, study: pd.DataFrame, reader_qids: set[str]) -> pd.DataFrame:
    """A seeded sample of ``powered.n_questions`` of the benchmark's questions (``every``: ``data.load_benchmark``) outside the study's splits and the
    readers' training questions (``reader_qids``), in qid order."""
    rest = every[~every.qid.isin(set(study.qid) | reader_qids)]
    if P.powered.n_questions > len(rest):
        raise ValueError(f"powered.n_questions = {P.powered.n_questions} exceeds the {len(rest)} questions left (largest allowed value: {len(rest)})")
    return (rest.sample(n=P.powered.n_questions, random_state=P.powered.seed).sort_values("qid").reset_index(drop=True))


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
