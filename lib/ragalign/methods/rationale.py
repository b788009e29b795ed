"""RADIO (arXiv 2412.08519): rationale distillation for the reranker.

1. The generator explains, from a train question and its gold answer, why the answer is correct
   (the *rationale*).
2. The rationale text (question + answer + rationale) is embedded with the dense encoder and
   scored against the question's top-k retrieved passages; the rationale ranking is
   ``mix * minmax(rationale score) + (1 - mix) * minmax(retrieval score)`` per question.
3. A cross-encoder is fine-tuned contrastively on groups of one positive (the top of the
   rationale ranking) and negatives at fixed lower ranks (the paper's 3, 4, 6, 9, 13, 18 of the
   top 20), with a one-hot target through :func:`ragalign.core.rerank.train_listwise`.

The public RADIO code embeds ``question. answer. rationale`` with BGE-M3 and ranks by that
similarity alone; here the encoder is the study's MiniLM bi-encoder and the retrieval score is
mixed in (``radio.mix``; ``mix=1`` is the public code's ranking).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ragalign.core.lm import LM
from ragalign.core.metrics import recall_at_k, reciprocal_rank
from ragalign.core.rerank import Group, kl_listwise_loss

# The paper's system prompt, as one user turn (ragalign.core.lm.LM prompts are one user message).
RATIONALE_INSTRUCTION = (
    "You are a professional QA assistant. Given a question and its ground-truth answer, "
    "explain why the ground-truth answer is correct."
)


# ---- rationales ---------------------------------------------------------------------------
def answer_string(answers: Sequence[str]) -> str:
    """The gold answers as one string (distinct answers in order, joined by '; ')."""
    return "; ".join(dict.fromkeys(a.strip() for a in answers if a.strip()))


def rationale_prompt(question: str, answer: str) -> str:
    """The user message asking the generator why ``answer`` answers ``question``."""
    return f"{RATIONALE_INSTRUCTION}\n\nQuestion: {question}\nAnswer: {answer}\nRationale:"


def rationale_text(question: str, answer: str, rationale: str) -> str:
    """What is embedded and matched against passages: question + answer + rationale."""
    return " ".join(part for part in (question.strip(), f"{answer.strip()}.", rationale.strip()) if part)


def rationale_prompts(questions: pd.DataFrame) -> list[str]:
    """Each question's rationale prompt, with its gold answers."""
    return [rationale_prompt(q, answer_string(a)) for q, a in zip(questions.question, questions.answers, strict=True)]


def generate_rationales(lm: LM, questions: pd.DataFrame, max_new_tokens: int) -> pd.DataFrame:
    """One rationale per question (greedy, batched, cached): ``qid, question, answer, rationale, text``."""
    answers = [answer_string(a) for a in questions.answers]
    replies = lm.generate(rationale_prompts(questions), max_new_tokens, desc="rationales")
    return pd.DataFrame(
        {
            "qid": questions.qid.to_numpy(),
            "question": questions.question.to_numpy(),
            "answer": answers,
            "rationale": replies,
            "text": [rationale_text(q, a, r) for q, a, r in zip(questions.question, answers, replies, strict=True)],
        }
    )


# ---- rationale-based ranking -------------------------------------------------------------
def minmax(values: Sequence[float]) -> np.ndarray:
    """Scale to [0, 1]; a constant vector maps to zeros."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return x
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def mix_scores(rationale_scores: Sequence[float], retrieval_scores: Sequence[float], mix: float) -> np.ndarray:
    """``mix * minmax(rationale) + (1 - mix) * minmax(retrieval)``."""
    return mix * minmax(rationale_scores) + (1 - mix) * minmax(retrieval_scores)


def rationale_ranking(
    candidates: pd.DataFrame,
    rationale_emb: Mapping[str, np.ndarray],
    passage_emb: np.ndarray,
    pid_row: Mapping[str, int],
    mix: float,
    k: int,
    method: str = "rationale",
) -> pd.DataFrame:
    """Each question's top-``k`` candidates reordered by the mixed rationale/retrieval score.

    ``candidates`` is a retrieval ranking; only questions in ``rationale_emb`` are ranked.
    Returns a ranking table with the parts of the score: ``qid, rank, pid, score, method,
    rationale_score, retrieval_score, retrieval_rank``. Ties keep the retrieval order.
    """
    cand = candidates[candidates.qid.isin(list(rationale_emb)) & (candidates["rank"] < k)]
    cand = cand.sort_values(["qid", "rank"], kind="stable")
    frames = []
    for qid, df in cand.groupby("qid", sort=True):
        rows = np.array([pid_row[p] for p in df.pid])
        sim = passage_emb[rows] @ np.asarray(rationale_emb[qid], dtype=np.float32)
        score = mix_scores(sim, df.score.to_numpy(), mix)
        out = pd.DataFrame(
            {
                "qid": qid,
                "pid": df.pid.to_numpy(),
                "score": score,
                "rationale_score": sim.astype(float),
                "retrieval_score": df.score.to_numpy(dtype=float),
                "retrieval_rank": df["rank"].to_numpy(),
            }
        )
        out = out.iloc[np.lexsort((out.retrieval_rank.to_numpy(), -out.score.to_numpy()))]
        out.insert(1, "rank", np.arange(len(out)))
        frames.append(out)
    columns = ["qid", "rank", "pid", "score", "method", "rationale_score", "retrieval_score", "retrieval_rank"]
    if not frames:
        return pd.DataFrame(columns=columns)
    ranking = pd.concat(frames, ignore_index=True)
    ranking["method"] = method
    return ranking[columns]


# ---- contrastive groups --------------------------------------------------------------------
def negative_ranks(neg_ranks: Sequence[int], group_size: int, k: int) -> list[int]:
    """The ranks (0-based, in the rationale ranking) of a group's ``group_size - 1`` negatives.

    The configured ranks in ``1..k-1`` are used as given when they are exactly enough; when
    there are too many, an evenly spaced subset (first and last kept); when too few, the group
    is filled deterministically with unused ranks, first those above the smallest configured
    rank (ascending), then those below it (nearest first; rank 1 last, the likeliest false
    negative). Rank 0 is always the positive.
    """
    n = group_size - 1
    if n < 1:
        raise ValueError(f"group_size={group_size}: a group needs a positive and at least one negative")
    if n > k - 1:
        raise ValueError(f"group_size={group_size} needs {n} negatives but only ranks 1..{k - 1} exist (radio.k={k})")
    ranks = sorted({int(r) for r in neg_ranks if 1 <= r < k})
    if len(ranks) >= n:
        picks = np.round(np.linspace(0, len(ranks) - 1, n)).astype(int)
        return [ranks[i] for i in picks]
    low = ranks[0] if ranks else 1
    fill = [r for r in range(low, k) if r not in ranks] + list(range(low - 1, 0, -1))
    return sorted(ranks + fill[: n - len(ranks)])


def build_groups(
    questions: pd.DataFrame, ranking: pd.DataFrame, passage_text: Mapping[str, str], ranks: Sequence[int]
) -> list[Group]:
    """One group per question: rank 0 of ``ranking`` as positive, ``ranks`` as negatives, one-hot target.

    Questions whose ranking is shorter than ``max(ranks) + 1`` are skipped (all groups one size).
    """
    ordered = ranking.sort_values(["qid", "rank"]).groupby("qid", sort=False).pid.agg(list)
    target = (1.0,) + (0.0,) * len(ranks)
    groups = []
    for q in questions.itertuples():
        pids = ordered.get(q.qid)
        if pids is None or len(pids) <= max(ranks):
            continue
        chosen = [pids[0]] + [pids[r] for r in ranks]
        groups.append(Group(q.qid, q.question, tuple(passage_text[p] for p in chosen), target))
    return groups


def contrastive_loss(scores: torch.Tensor) -> torch.Tensor:
    """RADIO's loss for groups whose positive is column 0: KL to a one-hot target = cross-entropy."""
    target = torch.zeros_like(scores)
    target[:, 0] = 1.0
    return kl_listwise_loss(scores, target)


# ---- agreement with gold passages and comparison tables -----------------------------------
def gold_agreement(rankings: Mapping[str, pd.DataFrame], questions: pd.DataFrame, ks: Sequence[int] = (1, 5)) -> pd.DataFrame:
    """Per ranking: recall@k of gold passages, hit@1 (top passage is gold) and MRR, over ``questions``."""
    rows = []
    for name, ranking in rankings.items():
        ordered = ranking.sort_values(["qid", "rank"]).groupby("qid", sort=False).pid.agg(list)
        lists = [(ordered.get(q, []), list(g)) for q, g in zip(questions.qid, questions.gold_pids, strict=True)]
        row = {"ranking": name}
        for k in ks:
            row[f"recall@{k}"] = round(float(np.mean([recall_at_k(r, g, k) for r, g in lists])), 4)
        row["hit@1"] = round(float(np.mean([bool(r) and r[0] in g for r, g in lists])), 4)
        row["mrr"] = round(float(np.mean([reciprocal_rank(r, g) for r, g in lists])), 4)
        rows.append(row)
    return pd.DataFrame(rows).set_index("ranking")


def comparison_table(variants: Mapping[str, Mapping]) -> pd.DataFrame:
    """Long table ``variant, metric, mean, lo, hi`` for EM and F1."""
    rows = [
        {"variant": name, "metric": m, **{s: float(v[m][s]) for s in ("mean", "lo", "hi")}}
        for name, v in variants.items()
        for m in ("em", "f1")
    ]
    return pd.DataFrame(rows, columns=["variant", "metric", "mean", "lo", "hi"])
