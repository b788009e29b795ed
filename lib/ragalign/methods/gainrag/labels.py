"""GainRAG's gain labels: (passage, question, answer) pairs scored by the generator, their cold-run cost and analysis.

The *gain* of a passage c for a question q with gold answer a is read off the contrastive
distribution of the generator on the answer tokens,

    log p_cd(a_t) = log_softmax((1 + alpha) * logits(a_t | c, q, a_<t) - alpha * logits(a_t | q, a_<t)),

``ppl_cd = exp(-mean_t log p_cd(a_t))`` and ``label = -log(ppl_cd + 1)``; alpha = 0 gives the plain
perplexity ``ppl`` of the answer given the passage. With several gold answers the lowest perplexity
counts. The no-passage logits depend only on (question, answer): they are computed once per pair and
reused for every passage of the question. Only answer positions go through the LM head
(``LM.answer_logits``), every forward is length-batched, and per-(prompt, answer) results are cached
on disk (namespace ``gain``) so an interrupted labelling run resumes.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ragalign.core.cache import Cache, make_key
from ragalign.core.lm import LM
from ragalign.core.rag import build_prompt
from ragalign.methods.gainrag.pseudo import is_pseudo, pseudo_pid


# ---- the scores of one (passage, question, answer) ---------------------------------------------
@dataclass(frozen=True)
class Pair:
    """One labelling unit: a passage (None = no passage) for a question and one gold answer."""

    qid: str
    pid: str
    question: str
    passage: str
    answer: str

    @property
    def prompt(self) -> str:
        return build_prompt(self.question, [self.passage])

    @property
    def noctx_prompt(self) -> str:
        return build_prompt(self.question, [])


def contrastive_logprobs(logits_ctx: torch.Tensor, logits_noctx: torch.Tensor, alpha: float) -> torch.Tensor:
    """log_softmax((1 + alpha) * logits_ctx - alpha * logits_noctx) over the vocabulary, [T, V]."""
    return torch.log_softmax((1 + alpha) * logits_ctx.float() - alpha * logits_noctx.float(), dim=-1)


def pair_scores(logits_ctx: torch.Tensor, logits_noctx: torch.Tensor, answer: Sequence[int], alpha: float) -> dict:
    """Summed answer log-probs with, without the passage and under the contrastive distribution."""
    on = logits_ctx.device
    idx, tok = torch.arange(len(answer), device=on), torch.tensor(list(answer), device=on)
    lp_ctx = torch.log_softmax(logits_ctx.float(), -1)[idx, tok].sum()
    lp_noctx = torch.log_softmax(logits_noctx.float(), -1)[idx, tok].sum()
    lp_cd = contrastive_logprobs(logits_ctx, logits_noctx, alpha)[idx, tok].sum()
    return {
        "logprob_ctx": float(lp_ctx),
        "logprob_noctx": float(lp_noctx),
        "logprob_cd": float(lp_cd),
        "n_tokens": len(answer),
    }


def _chunks(pairs: Sequence[Pair], idx: Iterable[int], chunk_pairs: int) -> list[list[int]]:
    """Indices grouped so that all pairs of one (question, answer) share a chunk of ~chunk_pairs."""
    by_qa: dict[tuple[str, str], list[int]] = {}
    for i in idx:
        by_qa.setdefault((pairs[i].question, pairs[i].answer), []).append(i)
    chunks: list[list[int]] = [[]]
    for members in by_qa.values():
        if chunks[-1] and len(chunks[-1]) + len(members) > chunk_pairs:
            chunks.append([])
        chunks[-1].extend(members)
    return [c for c in chunks if c]


def compute_pair_scores(lm: LM, pairs: Sequence[Pair], alpha: float) -> list[dict]:
    """Uncached batched scores: one no-passage pass per (question, answer), one pass per passage."""
    noctx = {}
    keys = sorted({(p.noctx_prompt, p.answer) for p in pairs})
    for i, logits, _ in lm.answer_logits([k[0] for k in keys], [k[1] for k in keys]):
        noctx[keys[i]] = logits
    out: list[dict] = [{} for _ in pairs]
    for i, logits, answer in lm.answer_logits([p.prompt for p in pairs], [p.answer for p in pairs]):
        out[i] = pair_scores(logits, noctx[(pairs[i].noctx_prompt, pairs[i].answer)], answer, alpha)
    return out


def pair_key(lm: LM, pair: Pair, alpha: float) -> str:
    return make_key(*lm.signature, pair.prompt, pair.answer, float(alpha))


def score_pairs(
    lm: LM,
    pairs: Sequence[Pair],
    alpha: float,
    cache: Cache | None = None,
    chunk_pairs: int = 256,
    desc: str | None = "gain labels",
) -> list[dict]:
    """Scores of every pair; cached per (model, dtype, prompt, answer, alpha), stored chunk by chunk."""
    cache = cache if cache is not None else Cache("gain", lm.cache_root)
    keys = [pair_key(lm, p, alpha) for p in pairs]
    found = cache.get_many(keys)
    todo, seen = [], set()
    for i, k in enumerate(keys):
        if k not in found and k not in seen:
            seen.add(k)
            todo.append(i)
    cache.count(keys, found, len(todo))
    chunks = _chunks(pairs, todo, chunk_pairs)
    for n, chunk in enumerate(chunks, start=1):
        if desc and lm.show_progress:
            print(f"{desc}: chunk {n}/{len(chunks)} ({len(chunk)} pairs)", flush=True, file=sys.stderr)
        values = compute_pair_scores(lm, [pairs[i] for i in chunk], alpha)
        new = {keys[i]: v for i, v in zip(chunk, values, strict=True)}
        cache.put_many(new)
        found.update(new)
    return [found[k] for k in keys]


def perplexity(logprob_sum: float, n_tokens: int) -> float:
    return math.exp(-logprob_sum / max(1, n_tokens))


def gain_label(ppl: float) -> float:
    """The paper's selector target: -log(ppl + 1) (higher = more helpful)."""
    return -math.log(ppl + 1.0)


def gain_labels(pairs: Sequence[Pair], scores: Sequence[dict]) -> pd.DataFrame:
    """One row per (qid, pid): logprob_ctx, logprob_noctx, ppl, ppl_cd, label, label_ppl.

    With several gold answers, the answer with the lowest ``ppl_cd`` gives the row (and ``label``);
    ``ppl`` is the lowest plain perplexity over the answers and ``label_ppl = -log(ppl + 1)`` the
    alpha = 0 label.
    """
    rows = []
    for p, s in zip(pairs, scores, strict=True):
        rows.append(
            {
                "qid": p.qid,
                "pid": p.pid,
                "answer": p.answer,
                "logprob_ctx": s["logprob_ctx"],
                "logprob_noctx": s["logprob_noctx"],
                "n_tokens": s["n_tokens"],
                "ppl": perplexity(s["logprob_ctx"], s["n_tokens"]),
                "ppl_cd": perplexity(s["logprob_cd"], s["n_tokens"]),
            }
        )
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(
            columns=["qid", "pid", "logprob_ctx", "logprob_noctx", "ppl", "ppl_cd", "label", "label_ppl"]
        )
    order = df.groupby(["qid", "pid"], sort=False).ppl_cd.idxmin()
    best = df.loc[order.to_numpy()].reset_index(drop=True)
    best["ppl"] = df.groupby(["qid", "pid"], sort=False).ppl.min().to_numpy()
    best["label"] = [gain_label(x) for x in best.ppl_cd]
    best["label_ppl"] = [gain_label(x) for x in best.ppl]
    return best


def build_pairs(
    questions: pd.DataFrame, ranking: pd.DataFrame, k: int, passage_text, pseudo: pd.DataFrame | None = None
) -> list[Pair]:
    """Pairs for each question's top-k ranked passages (+ its pseudo-passage unless N/A) x gold answers.

    ``passage_text`` maps pid -> prompt text (e.g. a ``rag.PassageStore``).
    """
    top = ranking[ranking["rank"] < k].sort_values(["qid", "rank"])
    pids = top.groupby("qid", sort=False).pid.agg(list).to_dict()
    ps = {} if pseudo is None else {r.qid: r.text for r in pseudo.itertuples() if not r.is_na}
    pairs = []
    for q in questions.itertuples():
        cands = [(pid, passage_text[pid]) for pid in pids.get(q.qid, [])]
        if q.qid in ps:
            cands.append((pseudo_pid(q.qid), ps[q.qid]))
        for answer in q.answers:
            pairs.extend(Pair(q.qid, pid, q.question, text, str(answer)) for pid, text in cands)
    return pairs


def label_table(pairs, scores, dense: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Gain labels with the passage's dense rank and score, whether it is gold, and its kind."""
    gold = {(q.qid, p) for q in train.itertuples() for p in q.gold_pids}
    return (
        gain_labels(pairs, scores)
        .merge(dense[["qid", "pid", "rank", "score"]], on=["qid", "pid"], how="left")
        .assign(is_gold=lambda d: [(q, p) in gold for q, p in zip(d.qid, d.pid, strict=True)])
        .assign(kind=lambda d: np.where(d.pid.map(is_pseudo), "pseudo", np.where(d.is_gold, "retrieved, gold", "retrieved, not gold")))
        .sort_values(["qid", "rank"], na_position="last", kind="stable")
        .reset_index(drop=True)
    )


# ---- cost ---------------------------------------------------------------------------------------
def planned_cost(lm: LM, pairs: Sequence[Pair]) -> dict[str, int]:
    """Sequences and tokens a cold (uncached) ``score_pairs`` run puts through the model: one
    no-passage sequence per (question, answer) and one per pair. Deterministic, so it can go in a
    metrics file (``lm.evaluations`` counts what a run needed, cache hits included)."""
    unique = {pair_key(lm, p, 0.0): p for p in pairs}.values()
    sequences = sorted({(p.noctx_prompt, p.answer) for p in unique}) + [(p.prompt, p.answer) for p in unique]
    return {
        "evaluations": len(sequences),
        "forward_tokens": sum(len(lm.prompt_ids(a)) + len(lm.answer_ids(b)) for a, b in sequences),
    }


# ---- analysis -------------------------------------------------------------------------------
def best_gain_summary(labels: pd.DataFrame, label_col: str = "label") -> pd.DataFrame:
    """Per question: the best-gain pid, whether it is gold / the pseudo-passage, its retrieval rank."""
    best = labels.loc[labels.groupby("qid", sort=True)[label_col].idxmax()].reset_index(drop=True)
    out = pd.DataFrame({"qid": best.qid, "pid": best.pid, "is_pseudo": best.pid.map(is_pseudo)})
    if "is_gold" in best:
        out["is_gold"] = best.is_gold.astype(bool).to_numpy()
    if "rank" in best:
        out["rank"] = best["rank"].to_numpy()
    return out


def spearman_per_question(labels: pd.DataFrame, x: str = "score", y: str = "label") -> pd.Series:
    """Spearman correlation of ``x`` and ``y`` within each question (retrieved passages only)."""
    from scipy.stats import spearmanr

    out = {}
    for qid, df in labels.dropna(subset=[x]).groupby("qid", sort=True):
        if len(df) > 2 and df[x].nunique() > 1 and df[y].nunique() > 1:
            out[qid] = float(spearmanr(df[x], df[y]).statistic)
    return pd.Series(out, dtype=float)
