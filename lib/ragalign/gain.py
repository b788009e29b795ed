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
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ragalign.cache import Cache, make_key
from ragalign.lm import LM, length_batches, pad_batch
from ragalign.rag import build_prompt
from ragalign.rerank import Group

PSEUDO_INSTRUCTION = (
    "Please provide background for the question below in 100 words. Do not respond with anything other "
    'than background. If you do not know or are unsure, please generate "N/A" directly.'
)
PSEUDO_PREFIX = "pseudo:"


# ---- pseudo-passages ------------------------------------------------------------------------
def pseudo_pid(qid: str) -> str:
    """The pid of a question's pseudo-passage."""
    return f"{PSEUDO_PREFIX}{qid}"


def is_pseudo(pid: str) -> bool:
    return str(pid).startswith(PSEUDO_PREFIX)


def pseudo_prompt(question: str) -> str:
    """The paper's instruction for a background passage written by the generator."""
    return f"{PSEUDO_INSTRUCTION}\n\nQuestion: {question}"


def is_na(text: str) -> bool:
    """True when a pseudo-passage is the model's 'N/A' (or empty): it then is no candidate."""
    core = text.strip().strip("\"'.*:()[] ").lower()
    return core in {"", "n/a", "na", "none", "unknown"} or core.startswith(("n/a", "na.", "na ", "na,"))


def generate_pseudo(
    lm: LM, questions: pd.DataFrame, max_new_tokens: int, max_tokens: int | None = None, batch_tokens: int | None = None
) -> pd.DataFrame:
    """``qid, text, is_na`` for every question; ``text`` cut to ``max_tokens`` LM tokens when given.

    ``batch_tokens`` overrides the LM's batch budget for this call: on CPU a decoding step costs
    about the same for 30 or 120 rows (it is bound by reading the weights), so wide batches make
    long generations several times cheaper. Replies are the same (greedy, cached by prompt).
    """
    saved = lm.batch_tokens
    lm.batch_tokens = max(saved, batch_tokens or 0)
    try:
        replies = lm.generate([pseudo_prompt(q) for q in questions.question], max_new_tokens, desc="pseudo-passages")
    finally:
        lm.batch_tokens = saved
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
    idx, tok = torch.arange(len(answer)), torch.tensor(list(answer))
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
    return make_key(lm.name, lm.dtype, pair.prompt, pair.answer, float(alpha))


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


# ---- cost and throughput ----------------------------------------------------------------------
def planned_cost(lm: LM, pairs: Sequence[Pair], chunk_pairs: int = 256) -> dict[str, int]:
    """Sequences and padded tokens a cold (uncached) ``score_pairs`` run puts through the model.

    Deterministic, so it can go in a metrics file (``lm.evaluations`` counts only cache misses).
    """
    seqs = tokens = 0
    uniq = {pair_key(lm, p, 0.0): i for i, p in enumerate(pairs)}
    for chunk in _chunks(pairs, sorted(uniq.values()), chunk_pairs):
        sub = [pairs[i] for i in chunk]
        noctx = sorted({(p.noctx_prompt, p.answer) for p in sub})
        for group in (noctx, [(p.prompt, p.answer) for p in sub]):
            lengths = [len(lm.prompt_ids(a)) + len(lm.answer_ids(b)) for a, b in group]
            for batch in length_batches(lengths, lm.batch_tokens):
                seqs += len(batch)
                tokens += max(lengths[i] for i in batch) * len(batch)
    return {"evaluations": seqs, "forward_tokens": tokens}


@torch.inference_mode()
def naive_pair_scores(lm: LM, pairs: Sequence[Pair], alpha: float) -> list[dict]:
    """The straightforward way: per passage, one unbatched forward with and one without the passage,
    full-vocabulary logits at every position. Same numbers as ``compute_pair_scores``."""
    out = []
    for p in pairs:
        ans = lm.answer_ids(p.answer)
        logits = []
        for prompt in (p.prompt, p.noctx_prompt):
            ids = lm.prompt_ids(prompt)
            full = lm.model(input_ids=torch.tensor([ids + ans])).logits[0].float()
            logits.append(full[len(ids) - 1 : len(ids) - 1 + len(ans)])
        out.append(pair_scores(logits[0], logits[1], ans, alpha))
    return out


@torch.inference_mode()
def raw_forward(lm: LM, pairs: Sequence[Pair]) -> int:
    """The model body alone over the same sequences and batches as the batched path; returns tokens."""
    tokens = 0
    groups = [sorted({(p.noctx_prompt, p.answer) for p in pairs}), [(p.prompt, p.answer) for p in pairs]]
    for group in groups:
        seqs = [lm.prompt_ids(a) + lm.answer_ids(b) for a, b in group]
        for batch in length_batches([len(s) for s in seqs], lm.batch_tokens):
            ids, mask, pos = pad_batch([seqs[i] for i in batch], lm.tokenizer.pad_token_id, "right")
            lm.model.model(input_ids=ids, attention_mask=mask, position_ids=pos)
            tokens += ids.numel()
    return tokens


def _timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def throughput_benchmark(lm: LM, pairs: Sequence[Pair], alpha: float, repeats: int = 1) -> dict:
    """Gain-labelling throughput (pairs/s, no cache) of the batched path, the naive path, and the
    raw batched forward of the model body on the same tokens (the roofline). Best of ``repeats``."""
    pairs = list(pairs)
    lm.prompt_ids(pairs[0].prompt)  # warm tokenizer and kernels
    with torch.inference_mode():
        lm.model.model(input_ids=torch.tensor([lm.prompt_ids(pairs[0].prompt)]))
    counters = (lm.evaluations, lm.forward_tokens)
    batched_scores: list[dict] = []
    naive_scores: list[dict] = []
    t_batched = _timed(lambda: batched_scores.__setitem__(slice(None), compute_pair_scores(lm, pairs, alpha)), repeats)
    t_naive = _timed(lambda: naive_scores.__setitem__(slice(None), naive_pair_scores(lm, pairs, alpha)), repeats)
    t_roof = _timed(lambda: raw_forward(lm, pairs), repeats)
    lm.evaluations, lm.forward_tokens = counters  # the benchmark is not labelling cost
    diff = max(
        abs(gain_label(perplexity(a["logprob_cd"], a["n_tokens"])) - gain_label(perplexity(b["logprob_cd"], b["n_tokens"])))
        for a, b in zip(batched_scores, naive_scores, strict=True)
    )
    n = len(pairs)
    return {
        "n_pairs": n,
        "n_questions": len({p.qid for p in pairs}),
        "pairs_per_s": round(n / t_batched, 2),
        "naive_pairs_per_s": round(n / t_naive, 2),
        "roofline_pairs_per_s": round(n / t_roof, 2),
        "speedup_vs_naive": round(t_naive / t_batched, 2),
        "roofline_fraction": round(t_roof / t_batched, 3),
        "max_abs_label_diff_vs_naive": float(f"{diff:.2e}"),
        "seconds": {"batched": round(t_batched, 2), "naive": round(t_naive, 2), "roofline": round(t_roof, 2)},
        "torch_threads": torch.get_num_threads(),
        "repeats": repeats,
    }


def planned_generate_cost(lm: LM, prompts: Sequence[str], max_new_tokens: int) -> dict[str, int]:
    """What a cold ``lm.generate`` run adds to ``lm.evaluations`` / ``lm.forward_tokens`` (deterministic)."""
    seqs = [len(lm.prompt_ids(p)) for p in dict.fromkeys(prompts)]
    evaluations = tokens = 0
    for start in range(0, len(seqs), 64):  # LM.generate computes cache misses in chunks of 64
        chunk = seqs[start : start + 64]
        for batch in length_batches([n + max_new_tokens for n in chunk], lm.batch_tokens):
            evaluations += len(batch)
            tokens += max(chunk[i] for i in batch) * len(batch) + len(batch) * max_new_tokens
    return {"evaluations": evaluations, "forward_tokens": tokens}


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
