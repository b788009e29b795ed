"""The artifact contract: every file a stage writes, in one place.

Each :class:`Artifact` names its path, the stage that writes it, its format and (for tables and
JSON) the columns or keys a reader may rely on. Stages read upstream outputs and write their own
through these objects, never by a path of their own; ``dvc.yaml`` declares the same paths, and
``tests/test_runner.py`` checks that every artifact is an output of the stage named here and a
dependency of every stage that reads it. Figures are the exception: each is written once, by
``plots.save``, with its path next to the code that draws it.

A missing artifact is an error that names the stage to run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ragalign.core.io import atomic_write_text, write_json, write_parquet

RANKING = ("qid", "rank", "pid", "score", "method")  # retrieval.to_ranking
ANSWERS = ("qid", "variant", "context_pids", "answer", "em", "f1", "gold_logprob")  # rag.answer_questions


class ArtifactError(FileNotFoundError):
    """An artifact is missing or does not have the columns/keys the contract promises."""


@dataclass(frozen=True)
class Artifact:
    """One stage output: where it is, who writes it, what it holds."""

    path: str
    stage: str
    kind: str  # parquet | json | npy | model | text | csv
    fields: tuple[str, ...] = ()  # parquet: columns; json: top-level keys
    about: str = ""

    def exists(self, root: str | Path = ".") -> bool:
        return (Path(root) / self.path).exists()

    def at(self, root: str | Path = ".") -> Path:
        """The path, checked to exist (a model directory is loaded by its own class from here)."""
        path = Path(root) / self.path
        if not path.exists():
            raise ArtifactError(f"{self.path} not found ({self.about}); it is written by stage {self.stage}: run `dvc repro {self.stage}`")
        return path

    def read(self, root: str | Path = ".") -> Any:
        """The artifact's content: a DataFrame, a dict, an array or text."""
        path = self.at(root)
        if self.kind == "parquet":
            value = pd.read_parquet(path)
            missing = [c for c in self.fields if c not in value.columns]
        elif self.kind == "json":
            value = json.loads(path.read_text())
            missing = [k for k in self.fields if k not in value]
        elif self.kind == "npy":
            return np.load(path)
        elif self.kind in ("text", "csv"):
            return path.read_text()
        else:
            raise ArtifactError(f"{self.path} is a {self.kind}: load it from artifact.at()")
        if missing:
            raise ArtifactError(f"{self.path} lacks {missing} (stage {self.stage} writes {list(self.fields)}): re-run `dvc repro {self.stage}`")
        return value

    def write(self, value: Any, root: str | Path = ".") -> None:
        """Write atomically, after checking the promised columns/keys are there."""
        path = Path(root) / self.path
        if self.kind == "parquet":
            missing = [c for c in self.fields if c not in value.columns]
        elif self.kind == "json":
            missing = [k for k in self.fields if k not in value]
        else:
            missing = []
        if missing:
            raise ValueError(f"{self.path}: the contract promises {missing}, which this value lacks")
        if self.kind == "parquet":
            write_parquet(value, path)
        elif self.kind == "json":
            write_json(path, value)
        elif self.kind == "npy":
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp.npy")
            np.save(tmp, value)
            tmp.replace(path)
        elif self.kind in ("text", "csv"):
            atomic_write_text(path, value)
        else:
            raise ValueError(f"{self.path} is a {self.kind}: save it with its own class at artifact.path")


def metrics(stage: str, name: str, fields: tuple[str, ...] = (), about: str = "") -> Artifact:
    """A stage's metrics file (``dvc metrics show``)."""
    return Artifact(f"results/metrics/{name}.json", stage, "json", fields, about or f"stage {stage}'s metrics")


def timings(stage: str) -> Artifact:
    """The runner's wall time and slowest cells of a stage."""
    return Artifact(f"results/timings/{stage}.json", stage, "json", ("stage", "wall_s"), "the stage's wall time")


# ---- 00 numerics --------------------------------------------------------------------------
NUMERICS = Artifact(
    "results/numerics.json", "00_numerics", "json", ("device", "dtype", "retrieval_autocast", "training_autocast", "cpu_capability", "torch"),
    "what the study computes in (core.numerics): a dependency of every stage that runs a model",
)
HOST = Artifact("results/host.json", "00_numerics", "json", ("host",), "the machine the study ran on (its CPU, torch; the GPU if used)")
PROBE = Artifact("results/timings/probe.json", "00_numerics", "json", ("probe_s", "host"), "the last run's speed probe: volatile, read only by `python -m ragalign.core.cost`")

# ---- 01 prepare data ----------------------------------------------------------------------
QUESTIONS = Artifact("results/data/questions.parquet", "01_prepare_data", "parquet", ("qid", "dataset", "split", "question", "answers", "gold_pids"), "the sampled questions")
BENCHMARK = Artifact(
    "results/data/benchmark.parquet", "01_prepare_data", "parquet", ("qid", "dataset", "question", "answers", "gold_pids"),
    "every question of the benchmark, in its file's order: the pools later stages draw from",
)
PASSAGES = Artifact("results/data/passages.parquet", "01_prepare_data", "parquet", ("pid", "title", "text"), "the passage corpus")
DATA_METRICS = metrics("01_prepare_data", "data")

# ---- 02 retrieval -------------------------------------------------------------------------
BM25 = Artifact("results/retrieval/bm25.parquet", "02_retrieval", "parquet", RANKING, "BM25 top-k of every benchmark question")
DENSE = Artifact("results/retrieval/dense.parquet", "02_retrieval", "parquet", RANKING, "dense top-k of every benchmark question")
PASSAGE_EMB = Artifact("results/retrieval/passage_emb.npy", "02_retrieval", "npy", (), "the corpus's dense embeddings, in PASSAGES order")
RETRIEVAL_METRICS = metrics("02_retrieval", "retrieval", ("train", "test"))

# ---- 03 RAG baselines ---------------------------------------------------------------------
RELEVANCE_RERANKER = Artifact("results/baselines/reranker", "03_rag_baselines", "model", (), "the relevance reranker (rerank.CrossEncoder)")
RERANKER_RANKINGS = Artifact("results/baselines/rankings.parquet", "03_rag_baselines", "parquet", RANKING, "the relevance reranker's test rankings")
BASELINE_ANSWERS = Artifact("results/baselines/answers.parquet", "03_rag_baselines", "parquet", ANSWERS, "answers of the baselines")
RERANKER_CURVE = Artifact("results/plots/baselines_reranker_curve.csv", "03_rag_baselines", "csv", (), "the reranker's training loss (dvc plots)")
BASELINE_METRICS = metrics("03_rag_baselines", "baselines", ("validity", "build_cost", "paired_gold_logprob", "cost"))

# ---- 04 GainRAG labelling -----------------------------------------------------------------
GAIN_LABELS = Artifact("results/gainrag/labels.parquet", "04_gain_labelling", "parquet", ("qid", "pid", "label", "rank", "is_gold"), "gain labels of (train question, passage) pairs")
PSEUDO = Artifact("results/gainrag/pseudo.parquet", "04_gain_labelling", "parquet", ("qid", "text", "is_na"), "a pseudo-passage per question")
LABELLING_STATS = Artifact("results/gainrag/labelling_stats.json", "04_gain_labelling", "json", ("cost",), "labelling statistics and cost")

# ---- 05 GainRAG selector ------------------------------------------------------------------
SELECTOR = Artifact("results/gainrag/selector", "05_selector_training", "model", (), "the GainRAG selector (rerank.CrossEncoder)")
SELECTOR_RANKINGS = Artifact("results/gainrag/rankings.parquet", "05_selector_training", "parquet", RANKING, "the selector's test rankings")
GAIN_ANSWERS = Artifact("results/gainrag/answers.parquet", "05_selector_training", "parquet", ANSWERS, "answers of GainRAG and its ablations")
SELECTOR_CURVE = Artifact("results/gainrag/selector_curve.json", "05_selector_training", "json", (), "the selector's training curve")
GAIN_METRICS = metrics("05_selector_training", "gainrag", ("validity", "build_cost", "cost"))

# ---- 06 RADIO -----------------------------------------------------------------------------
RATIONALES = Artifact("results/radio/rationales.parquet", "06_rationale_distillation", "parquet", ("qid", "rationale", "text"), "a rationale per train question")
RADIO_CURVE = Artifact("results/radio/training_curve.parquet", "06_rationale_distillation", "parquet", ("step", "split", "loss"), "RADIO's training curve")
RADIO_RERANKER = Artifact("results/radio/reranker", "06_rationale_distillation", "model", (), "the RADIO reranker (rerank.CrossEncoder)")
RATIONALE_RANKING = Artifact("results/radio/rationale_ranking.parquet", "06_rationale_distillation", "parquet", RANKING, "train candidates re-ranked by their rationale")
RADIO_RANKINGS = Artifact("results/radio/rankings.parquet", "06_rationale_distillation", "parquet", RANKING, "RADIO's test rankings")
RADIO_ANSWERS = Artifact("results/radio/answers.parquet", "06_rationale_distillation", "parquet", ANSWERS, "answers of RADIO")
RADIO_METRICS = metrics("06_rationale_distillation", "radio", ("validity", "build_cost", "cost"))

# ---- 07 FiGRet ----------------------------------------------------------------------------
FIGRET_RETRIEVER = Artifact("results/figret/retriever", "07_figret", "model", (), "the FiGRet bi-encoder (retrieval.DenseEncoder)")
FIGRET_RANKINGS = Artifact("results/figret/rankings.parquet", "07_figret", "parquet", RANKING, "FiGRet's test rankings (whole corpus)")
FIGRET_ANSWERS = Artifact("results/figret/answers.parquet", "07_figret", "parquet", ANSWERS, "answers of FiGRet")
FIGRET_EXAMPLES = Artifact("results/figret/examples.parquet", "07_figret", "parquet", ("round", "objective", "qid"), "FiGRet's training examples")
FIGRET_METRICS = metrics("07_figret", "figret", ("validity", "build_cost", "cost", "test"))

# ---- 08 reader tuning (generator alignment) ----------------------------------------------------
READER = Artifact("results/reader/generator", "08_reader_tuning", "model", (), "the tuned reader (safetensors and tokenizer: a models.generator path)")
FAIR_READER = Artifact("results/reader/fair_generator", "08_reader_tuning", "model", (), "the reader tuned on the study's train questions only (the fair budget)")
READER_QUESTIONS = Artifact("results/reader/questions.parquet", "08_reader_tuning", "parquet", ("qid", "question", "source", "set", "has_gold"), "the readers' training questions (set: tuned | fair budget)")
READER_CURVE = Artifact("results/reader/curve.parquet", "08_reader_tuning", "parquet", ("step", "split", "loss", "reader"), "the readers' training curves")
READER_ANSWERS = Artifact("results/reader/answers.parquet", "08_reader_tuning", "parquet", (*ANSWERS, "reader", "context"), "test answers of the untuned and tuned readers")
READER_METRICS = metrics("08_reader_tuning", "reader", ("validity", "tuned_vs_untuned", "reading", "targets", "training"))

# ---- 09 seam: which side to align ---------------------------------------------------------------
SEAM_ANSWERS = Artifact("results/seam/answers.parquet", "09_seam", "parquet", (*ANSWERS, "reader"), "every retriever-side variant's contexts answered by both readers")
COUPLED_LABELS = Artifact("results/seam/coupled_labels.parquet", "09_seam", "parquet", ("qid", "pid", "label", "rank", "is_gold"), "gain labels from the tuned reader")
COUPLED_RANKINGS = Artifact("results/seam/coupled_rankings.parquet", "09_seam", "parquet", RANKING, "the coupled GainRAG selector's test rankings")
SEAM_METRICS = metrics("09_seam", "seam", ("ks", "paired", "coupled", "validity"))


def seam_variant(method: str, k: int) -> str:
    """A ranked method's variant name in stage 09's tables and metrics when it shows its top ``k``: ``dense@5``."""
    return f"{method}@{k}"


def seam_method(variant: str) -> tuple[str, int | None]:
    """``dense@5`` -> (``dense``, 5); an unranked variant (``oracle``) -> (``oracle``, None)."""
    method, _, k = variant.partition("@")
    return method, int(k) if k else None


# ---- 10 RAG-E audit -----------------------------------------------------------------------
AUDIT_GAMES = Artifact("results/rag_e/games.parquet", "10_rag_e_audit", "parquet", ("variant", "qid", "order", "k", "ids"), "every audited game's values and Shapley values")
AUDIT_METRICS = metrics("10_rag_e_audit", "rag_e", ("config", "variants"))

# ---- 11 summary ---------------------------------------------------------------------------
HEADLINE = Artifact("results/summary/headline.md", "11_summary", "text", (), "the headline table")
SUMMARY_METRICS = metrics("11_summary", "summary")

# ---- 12 the relevance learning curve ------------------------------------------------------
CURVE_METRICS = metrics("12_learning_curve", "curve", ("dense", "points", "answers"))

# ---- 13 the seam's key rows, powered -------------------------------------------------------
POWERED_SCORES = Artifact("results/powered/scores.parquet", "13_powered_seam", "parquet", ("qid", "variant", "context_pids", "gold_logprob", "reader"),
                          "the key rows' gold-answer log-probs on the fresh questions, under both readers")
POWERED_METRICS = metrics("13_powered_seam", "powered", ("questions", "learner", "paired", "powered"))

# ---- 14 the seam at equal budgets ----------------------------------------------------------
SEAM_CURVE_METRICS = metrics("14_seam_curve", "seam_curve", ("points", "sides"))

# The answers tables, in the order the study's table lists their variants.
ANSWER_TABLES = (BASELINE_ANSWERS, GAIN_ANSWERS, RADIO_ANSWERS, FIGRET_ANSWERS)
# Every stage's metrics whose validity gates and build costs stage 11 collects, by name.
METHOD_METRICS = {"baselines": BASELINE_METRICS, "gainrag": GAIN_METRICS, "radio": RADIO_METRICS, "figret": FIGRET_METRICS}


def all_artifacts() -> list[Artifact]:
    """Every artifact of the contract."""
    return [a for a in globals().values() if isinstance(a, Artifact)]
