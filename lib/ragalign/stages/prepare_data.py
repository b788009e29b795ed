"""Stage 01: the benchmark becomes the study's questions (a seeded train/test sample), its corpus, and the
table of every benchmark question the later question sets are drawn from."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ragalign.core import artifacts
from ragalign.core.benchmarks import read_benchmark, split_questions
from ragalign.core.params import Params, ParamsError, size_problems


@dataclass
class Result:
    questions: pd.DataFrame  # the sample, with its split
    passages: pd.DataFrame
    stats: dict  # results/metrics/data.json


def run(P: Params) -> Result:
    """Read ``data.path``, sample ``data.n_train`` + ``data.n_test`` questions, write both tables."""
    questions, passages = read_benchmark(P.data.dataset, P.data.path)
    problems = size_problems(P, len(questions))  # what `params check` says when the benchmark is there
    if problems:
        raise ParamsError("invalid params:\n" + "\n".join(f"  {p}" for p in problems))
    sample = split_questions(questions, P.data.n_train, P.data.n_test, P.data.seed)
    stats = {
        "dataset": P.data.dataset,
        "questions_available": len(questions),
        "passages": len(passages),
        "train": int((sample.split == "train").sum()),
        "test": int((sample.split == "test").sum()),
        "gold_passages_per_question": round(float(sample.gold_pids.map(len).mean()), 3),
        "mean_passage_words": round(float(passages.text.str.split().map(len).mean()), 1),
    }
    artifacts.QUESTIONS.write(sample)
    artifacts.BENCHMARK.write(questions[list(artifacts.BENCHMARK.fields)])
    artifacts.PASSAGES.write(passages)
    artifacts.DATA_METRICS.write(stats)
    return Result(sample, passages, stats)
