"""GainRAG (arXiv 2505.18710): gain labels, pseudo-passages, selector groups and the labelling benchmark.

The *gain* of a passage c for a question q with gold answer a is read off the contrastive
distribution of the generator on the answer tokens,

    log p_cd(a_t) = log_softmax((1 + alpha) * logits(a_t | c, q, a_<t) - alpha * logits(a_t | q, a_<t)),

``ppl_cd = exp(-mean_t log p_cd(a_t))`` and ``label = -log(ppl_cd + 1)``; alpha = 0 gives the plain
perplexity ``ppl`` of the answer given the passage. With several gold answers the lowest perplexity
counts. The no-passage logits depend only on (question, answer): they are computed once per pair and
reused for every passage of the question. Only answer positions go through the LM head
(``LM.answer_logits``), every forward is length-batched, and per-(prompt, answer) results are cached
on disk (namespace ``gain``) so an interrupted labelling run resumes.

The *pseudo-passage* is what the generator itself writes as background for the question (the
paper's instruction, which asks for "N/A" when unsure). An "N/A" pseudo-passage is not a candidate:
it gets no label and the selector never sees it (an empty passage would only duplicate the
no-passage prompt, whose gain is zero by construction).
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ragalign.core.cache import Cache, make_key
from ragalign.core.lm import LM
from ragalign.core.rag import build_prompt
from ragalign.core.rerank import Group

PSEUDO_INSTRUCTION = (
    "Please provide background for the question below in 100 words. Do not respond with anything other "
    'than background. If you do not know or are unsure, please generate "N/A" directly.'
)
PSEUDO_PREFIX = "pseudo:"


# ---- pseudo-passages ------------------------------------------------------------------------
def pseudo_pid(qid: str) -> str:
    """The pid of a question's pseudo-passage."""
    return f"{PSEUDO_PREFIX}{qid}"


def pseudo_texts(pseudo: pd.DataFrame) -> dict[str, str]:
    """pid -> text of the pseudo-passages table (``results/gainrag/pseudo.parquet``)."""
    return {pseudo_pid(r.qid): r.text for r in pseudo.itertuples()}


def is_pseudo(pid: str) -> bool:
    return str(pid).startswith(PSEUDO_PREFIX)


def pseudo_prompt(question: str) -> str:
    """The paper's instruction for a background passage written by the generator."""
    return f"{PSEUDO_INSTRUCTION}\n\nQuestion: {question}"


def is_na(text: str) -> bool:
    """True when a pseudo-passage is the model's 'N/A' (or empty): it then is no candidate."""
    core = text.strip().strip("\"'.*:()[] ").lower()
    return core in {"", "n/a", "na", "none", "unknown"} or core.startswith(("n/a", "na.", "na ", "na,"))


def generate_pseudo(lm: LM, questions: pd.DataFrame, max_new_tokens: int, max_tokens: int | None = None) -> pd.DataFrame:
    """``qid, text, is_na`` for every question; ``text`` cut to ``max_tokens`` LM tokens when given."""
    replies = lm.generate([pseudo_prompt(q) for q in questions.question], max_new_tokens, desc="pseudo-passages")
    texts = [lm.truncate(r, max_tokens) if max_tokens else r for r in replies]
    return pd.DataFrame({"qid": questions.qid.to_numpy(), "text": texts, "is_na": [is_na(t) for t in texts]})


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
    lm: LM, pairs: Sequence[Pair], alpha: float, cache: Cache | None = None, chunk_pairs: int = 256, desc: str | None = "gain labels"
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
        return pd.DataFrame(columns=["qid", "pid", "logprob_ctx", "logprob_noctx", "ppl", "ppl_cd", "label", "label_ppl"])
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


# ---- selector training data --------------------------------------------------------------
def softmax(x: Sequence[float], temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(x, dtype=float) / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


def selector_groups(
    labels: pd.DataFrame,
    questions: pd.DataFrame,
    passage_text,
    group_size: int,
    seed: int,
    label_col: str = "label",
    temperature: float = 1.0,
) -> list[Group]:
    """One training group per question, target = softmax(labels / temperature) over the group.

    As in the paper's selector data, the best-gain passage is always in the group (its 'positive');
    the pseudo-passage (when labelled, i.e. not N/A) too; the rest is a seeded sample of the other
    labelled passages, with replacement only when a question has fewer than ``group_size``.
    ``passage_text`` maps pid -> text and must cover the pseudo pids.
    """
    rng = random.Random(seed)
    text_of = questions.set_index("qid").question.to_dict()
    groups = []
    for qid, df in labels.sort_values(["qid", "pid"]).groupby("qid", sort=True):
        lab = dict(zip(df.pid, df[label_col], strict=True))
        best = max(lab, key=lambda p: (lab[p], p))
        must = [best] + [p for p in lab if is_pseudo(p) and p != best]
        rest = [p for p in lab if p not in must]
        need = group_size - len(must)
        if need <= len(rest):
            chosen = must + rng.sample(rest, need)
        else:
            pool = rest or must
            chosen = must + rest + [rng.choice(pool) for _ in range(need - len(rest))]
        chosen = chosen[:group_size]
        rng.shuffle(chosen)
        target = softmax([lab[p] for p in chosen], temperature)
        groups.append(
            Group(qid, text_of[qid], tuple(passage_text[p] for p in chosen), tuple(float(t) for t in target))
        )
    return groups


def top_contexts(ranking: pd.DataFrame, top_k: int) -> dict[str, list[str]]:
    """qid -> the first ``top_k`` pids of a ranking."""
    top = ranking[ranking["rank"] < top_k].sort_values(["qid", "rank"])
    return top.groupby("qid", sort=False).pid.agg(list).to_dict()


def pseudo_selection_rate(ranking: pd.DataFrame, top_k: int = 1) -> float:
    """Fraction of questions whose top ``top_k`` include the pseudo-passage."""
    ctx = top_contexts(ranking, top_k)
    return float(np.mean([any(is_pseudo(p) for p in v) for v in ctx.values()])) if ctx else float("nan")


# ---- cost ---------------------------------------------------------------------------------------
def planned_cost(lm: LM, pairs: Sequence[Pair]) -> dict[str, int]:
    """Sequences and tokens a cold (uncached) ``score_pairs`` run puts through the model: one
    no-passage sequence per (question, answer) and one per pair. Deterministic, so it can go in a
    metrics file (``lm.evaluations`` counts what a run needed, cache hits included)."""
    unique = {pair_key(lm, p, 0.0): p for p in pairs}.values()
    sequences = sorted({(p.noctx_prompt, p.answer) for p in unique}) + [(p.prompt, p.answer) for p in unique]
    return {"evaluations": len(sequences), "forward_tokens": sum(len(lm.prompt_ids(a)) + len(lm.answer_ids(b)) for a, b in sequences)}


def planned_generate_cost(lm: LM, prompts: Sequence[str], max_new_tokens: int) -> dict[str, int]:
    """What a cold ``lm.generate`` run adds to ``lm.evaluations`` / ``lm.forward_tokens`` (deterministic)."""
    unique = list(dict.fromkeys(prompts))
    return {
        "evaluations": len(unique),
        "forward_tokens": sum(len(lm.prompt_ids(p)) + max_new_tokens for p in unique),
    }


# ---- selection at test time -------------------------------------------------------------------
def selector_candidates(ranking: pd.DataFrame, top_n: int, pseudo: pd.DataFrame | None = None) -> dict[str, list[str]]:
    """qid -> the ranking's top ``top_n`` pids plus the question's pseudo-passage (unless N/A)."""
    cands = top_contexts(ranking, top_n)
    if pseudo is not None:
        for r in pseudo.itertuples():
            if not r.is_na and r.qid in cands:
                cands[r.qid] = [*cands[r.qid], pseudo_pid(r.qid)]
    return cands


def drop_pseudo(ranking: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    """The ranking without pseudo-passages, ranks renumbered (the 'no pseudo-passage' ablation)."""
    out = ranking[~ranking.pid.map(is_pseudo)].sort_values(["qid", "rank"]).copy()
    out["rank"] = out.groupby("qid").cumcount()
    if method:
        out["method"] = method
    return out.reset_index(drop=True)


def context_texts(contexts: dict[str, list[str]], text_of) -> dict[str, list[str]]:
    """qid -> generator texts of its context pids (``text_of`` maps pid -> text, pseudo pids included)."""
    return {qid: [text_of[p] for p in pids] for qid, pids in contexts.items()}
