"""The study's prepared tables (stage 01's artifacts), read back with list columns as Python lists.

- questions: ``qid, dataset, split, question, answers (list[str]), gold_pids (list[str])``
- benchmark: every question of the benchmark (the columns of questions but ``split``)
- passages: ``pid, title, text``

The benchmark files themselves are read by :mod:`ragalign.core.benchmarks`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ragalign.core import artifacts


def _lists(df: pd.DataFrame) -> pd.DataFrame:
    for col in ("answers", "gold_pids"):
        df[col] = df[col].map(list)
    return df


def load_questions(split: str | None = None, root: str | Path = ".") -> pd.DataFrame:
    """The prepared questions (``artifacts.QUESTIONS``; optionally one split), with list columns as Python lists."""
    df = _lists(artifacts.QUESTIONS.read(root))
    return df if split is None else df[df.split == split].reset_index(drop=True)


def load_benchmark(root: str | Path = ".") -> pd.DataFrame:
    """Every question of the benchmark (``artifacts.BENCHMARK``), in its file's order, with list columns as
    Python lists: the pool every question set beyond the study's splits is drawn from."""
    return _lists(artifacts.BENCHMARK.read(root))


def train_test(questions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and the test questions of :func:`load_questions` (rows as they are, index kept)."""
    return questions[questions.split == "train"], questions[questions.split == "test"]


def load_splits(root: str | Path = ".") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train questions, test questions, passages): what a training stage starts from."""
    return (*train_test(load_questions(root=root)), load_passages(root))


def load_passages(root: str | Path = ".") -> pd.DataFrame:
    """The prepared passage corpus (``artifacts.PASSAGES``)."""
    return artifacts.PASSAGES.read(root)
