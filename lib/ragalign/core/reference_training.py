"""A maintained trainer beside the study's own: sentence-transformers fine-tunes the dense bi-encoder.

The relevance learning curve (stage 12) trains the same relevance groups twice: once with the study's
trainer (``core.training.fit`` through ``rerank.train_reranker``), once here with
``SentenceTransformerTrainer`` and ``MultipleNegativesRankingLoss`` at the library's own defaults
(learning rate 2e-5, 10% warm-up, batch 16), starting from the very bi-encoder that ranks the dense
candidates. If neither learns, the task or the data size is what fails; if only this one learns,
the study's trainer is. Each (question, gold passage) pair is an anchor-positive pair with the
group's first hard negative; the in-batch negatives come free with the loss.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ragalign.core.models import resolve
from ragalign.core.rerank import Group
from ragalign.core.stopwatch import counted

LEARNING_RATE = 2e-5  # sentence-transformers' default
BATCH_SIZE = 16
WARMUP_RATIO = 0.1


def triplets(groups: Sequence[Group]) -> dict[str, list[str]]:
    """(anchor, positive, negative) columns: each gold passage of a group with its first non-gold one."""
    rows: dict[str, list[str]] = {"anchor": [], "positive": [], "negative": []}
    for g in groups:
        negatives = [p for p, t in zip(g.passages, g.target, strict=True) if t == 0]
        for passage, weight in zip(g.passages, g.target, strict=True):
            if weight > 0 and negatives:
                rows["anchor"].append(g.query)
                rows["positive"].append(passage)
                rows["negative"].append(negatives[0])
    return rows


@counted("train")
def train_reference(encoder: str, groups: Sequence[Group], *, epochs: int, max_length: int, seed: int):
    """The packaged bi-encoder ``encoder`` fine-tuned on ``groups`` by sentence-transformers; returns the
    ``SentenceTransformer`` (CPU or the chosen device) after ``epochs`` epochs, no checkpoint selection."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )

    from ragalign.core.models import device

    model = SentenceTransformer(str(resolve(encoder)), device=device(), local_files_only=True)
    model.max_seq_length = max_length
    with tempfile.TemporaryDirectory() as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out, num_train_epochs=epochs, per_device_train_batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE,
            warmup_ratio=WARMUP_RATIO, seed=seed, data_seed=seed, save_strategy="no", report_to=[], disable_tqdm=True,  # in a kernel its bar is an HTML table with wall times
            use_cpu=device() == "cpu", logging_strategy="no",
        )
        loss = losses.MultipleNegativesRankingLoss(model)
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_dict(triplets(groups)), loss=loss)
        with contextlib.redirect_stdout(sys.stderr):  # its log lines carry wall times: shown live, never in a report
            trainer.train()
    return model.eval()


@counted("encode")
def rescore(model, questions: pd.DataFrame, candidates: dict[str, list[str]], passage_text: dict[str, str], method: str) -> pd.DataFrame:
    """Each question's candidates ranked by the model's cosine (a ranking table, ties in candidate order)."""
    query = model.encode(questions.question.tolist(), normalize_embeddings=True, batch_size=64, show_progress_bar=False)
    rows = []
    for qid, q in zip(questions.qid, query, strict=True):
        pids = candidates[qid]
        emb = model.encode([passage_text[p] for p in pids], normalize_embeddings=True, batch_size=64, show_progress_bar=False)
        rows += [(qid, pid, float(s)) for pid, s in zip(pids, np.asarray(emb) @ q, strict=True)]
    df = pd.DataFrame(rows, columns=["qid", "pid", "score"]).sort_values(["qid", "score"], ascending=[True, False], kind="stable")
    df["rank"] = df.groupby("qid").cumcount()
    df["method"] = method
    return df[["qid", "rank", "pid", "score", "method"]].reset_index(drop=True)
