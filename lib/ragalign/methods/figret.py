"""FiGRet (arXiv 2411.03957): fine-grained LLM guidance for the retriever, with a dual curriculum.

The paper has no public code; this module is the study's interpretation, sized for a 135M
generator on two CPU cores. One round of FiGRet is

1. **poorly served questions** (:func:`poorly_served`): train questions whose gold passages are not
   all in the retriever's top ``rag.top_k``, or whose RAG answer from that top-k is wrong (EM = 0).
   The retrieval test is free, so the generator only answers the questions that pass it.
2. **LLM feedback** (:func:`judge_questions`): constrained yes/no judgements, scored as
   log p(yes) - log p(no) of the first reply token (one forward per judgement, cached on disk
   in the LM cache), never free text: *relevance* (does this passage help answer the question?)
   and *purity* (does it contain misleading or distracting content?) for the top ``figret.k``
   passages plus the gold passages, and *comprehensiveness* (do these passages together contain
   everything needed, both hops for a multi-hop question?) for passage sets.
3. **fine-grained examples** (:func:`build_examples`): gold passages are *anchors*, the only
   positives; the LLM decides which retrieved passages become trusted hard negatives (only those
   it judges worse than the anchor; the rest may be unlabelled positives and are dropped), orders
   them, and its margin sets each example's difficulty. Sets are scored by the mean similarity of
   their members, so a comprehensiveness pair {found hop, missing hop} > {found hop, distractor}
   teaches the retriever to rank the missing hop.
4. **dual curriculum** (:func:`curriculum_order`): relevance -> comprehensiveness -> purity, and
   easy -> hard within each objective; :func:`train_retriever` fine-tunes the bi-encoder with a
   set-level InfoNCE loss over the example's own negatives and the other questions' sets in the
   batch (in-batch negatives).

The notebook repeats rounds (*reciprocal feedback*): re-retrieve with the updated retriever,
collect the new failures, judge, build and train again.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ragalign.core.cache import make_key
from ragalign.core.lm import LM
from ragalign.core.rag import PassageStore, answer_questions
from ragalign.core.rerank import split_groups
from ragalign.core.retrieval import DenseEncoder, dense_search, retrieval_quality, to_ranking, top_pids
from ragalign.core.seed import seed_everything

OBJECTIVES = ("relevance", "comprehensiveness", "purity")
ORDERS = ("dual", "shuffled")

QUESTIONS = {
    "relevance": "Does the passage above help answer the question?",
    "purity": "Does the passage above contain misleading or distracting information for this question?",
    "comprehensiveness": (
        "Do the passages above together contain all the facts needed to answer the question "
        "(for a question that needs two facts, both of them)?"
    ),
}
YES, NO = ("Yes", "yes", "YES"), ("No", "no", "NO")


# ---- LLM feedback -------------------------------------------------------------------------
def judge_prompt(criterion: str, question: str, passages: Sequence[str]) -> str:
    """The user message of one yes/no judgement: passages, question, criterion, reply format."""
    context = "".join(f"{p}\n\n" for p in passages)
    return f"{context}Question: {question}\n{QUESTIONS[criterion]} Answer Yes or No."


def _first_token_ids(lm: LM, words: Sequence[str]) -> list[int]:
    return sorted({lm.answer_ids(w)[0] for w in words})


def yes_no_scores(lm: LM, prompts: Sequence[str], batch: int = 16, desc: str | None = None) -> np.ndarray:
    """log p(yes) - log p(no) of the first reply token for each prompt (cached in the LM cache).

    "yes" and "no" each pool their case variants (log-sum-exp of Yes/yes/YES). One forward per
    prompt reads both answers from the same next-token distribution. Cost is counted like every
    ``LM`` call: one evaluation per prompt, cache hits included.
    """
    yes, no = _first_token_ids(lm, YES), _first_token_ids(lm, NO)
    lm.count(prompts, [YES[0]] * len(prompts))

    def compute(chunk: list[str]) -> list[float]:
        out = [0.0] * len(chunk)
        for i, hidden, _ in lm.answer_hidden(chunk, [YES[0]] * len(chunk), desc=desc):
            logp = torch.log_softmax(lm.model.lm_head(hidden[:1]).float()[0], dim=-1)
            out[i] = float(torch.logsumexp(logp[yes], 0) - torch.logsumexp(logp[no], 0))
        return out

    keys = [make_key("yesno", *lm.signature, yes, no, p) for p in prompts]
    return np.asarray(lm.cache.map(keys, list(prompts), compute, chunk_size=batch), dtype=np.float64)


def set_plan(gold: Sequence[str], ranked: Sequence[str], k: int, n_negatives: int) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The complete gold set and its incomplete variants for the comprehensiveness judgement.

    Gold passages are ordered by the retriever's rank (unretrieved last): the last one is the
    "missing hop". Each negative set replaces it with one of the top non-gold passages.
    """
    position = {p: i for i, p in enumerate(ranked)}
    complete = tuple(sorted(gold, key=lambda p: (position.get(p, len(ranked)), p)))
    distractors = [p for p in ranked[:k] if p not in set(gold)][:n_negatives]
    return complete, [complete[:-1] + (d,) for d in distractors]


def judge_questions(
    lm: LM, questions: pd.DataFrame, ranked: dict[str, list[str]], store: PassageStore, *, k: int, n_negatives: int, batch: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LLM judgements for each question's top-k passages, its gold passages and its passage sets.

    Returns (passage judgements ``qid, pid, rank, is_gold, relevance, purity``; set judgements
    ``qid, pids, complete, comprehensiveness``). Purity is log p(no) - log p(yes) (higher: purer).
    """
    rows, sets = [], []
    for q in questions.itertuples():
        top = list(ranked[q.qid][:k])
        position = {p: i for i, p in enumerate(ranked[q.qid])}
        for pid in top + [g for g in q.gold_pids if g not in top]:
            rows.append({"qid": q.qid, "question": q.question, "pid": pid, "rank": position.get(pid, -1), "is_gold": pid in set(q.gold_pids)})
        complete, negatives = set_plan(list(q.gold_pids), ranked[q.qid], k, n_negatives)
        for pids in [complete, *negatives]:
            sets.append({"qid": q.qid, "question": q.question, "pids": list(pids), "complete": pids == complete})
    passages, sets = pd.DataFrame(rows), pd.DataFrame(sets)
    if passages.empty:
        return (
            pd.DataFrame(columns=["qid", "pid", "rank", "is_gold", "relevance", "purity"]),
            pd.DataFrame(columns=["qid", "pids", "complete", "comprehensiveness"]),
        )
    for criterion, sign in (("relevance", 1.0), ("purity", -1.0)):
        prompts = [judge_prompt(criterion, r.question, [store[r.pid]]) for r in passages.itertuples()]
        passages[criterion] = sign * yes_no_scores(lm, prompts, batch, desc=f"judge {criterion}")
    prompts = [judge_prompt("comprehensiveness", r.question, store.texts(r.pids)) for r in sets.itertuples()]
    sets["comprehensiveness"] = yes_no_scores(lm, prompts, batch, desc="judge comprehensiveness")
    return passages.drop(columns="question"), sets.drop(columns="question")


# ---- fine-grained examples ----------------------------------------------------------------
@dataclass(frozen=True)
class Example:
    """A contrastive example: query, a positive set of pids and negative sets, for one objective.

    ``margin`` is the LLM judgement margin between the positive and its closest negative;
    ``difficulty`` in [0, 1] is its rank within the objective (0: largest margin, easiest).
    """

    qid: str
    query: str
    objective: str
    positive: tuple[str, ...]
    negatives: tuple[tuple[str, ...], ...]
    margin: float
    difficulty: float = 0.0
    round: int = 1


def build_examples(
    questions: pd.DataFrame, passages: pd.DataFrame, sets: pd.DataFrame, *, n_negatives: int, round: int = 1
) -> list[Example]:
    """Examples per objective from the judgements; gold passages are the (anchor) positives.

    - relevance: anchor g vs the retrieved non-gold passages the LLM finds less helpful than g,
      hardest for the retriever (highest ranked) first;
    - purity: anchor g vs the retrieved non-gold passages the LLM finds more misleading than g,
      most misleading first;
    - comprehensiveness: the complete gold set vs the incomplete sets the LLM finds less complete.
    Negatives the LLM rates at least as good as the anchor are dropped (possible unlabelled
    positives); an anchor without any trusted negative gives no example.
    """
    text = dict(zip(questions.qid, questions.question, strict=True))
    out: list[Example] = []
    for qid, df in passages.groupby("qid", sort=True):
        gold = df[df.is_gold]
        others = df[~df.is_gold & (df["rank"] >= 0)].sort_values("rank")
        for g in gold.sort_values("pid").itertuples():
            neg = others[others.relevance < g.relevance][:n_negatives]
            if len(neg):
                out.append(Example(qid, text[qid], "relevance", (g.pid,), tuple((p,) for p in neg.pid), float(g.relevance - neg.relevance.max()), round=round))
            neg = others[others.purity < g.purity].sort_values(["purity", "rank"])[:n_negatives]
            if len(neg):
                out.append(Example(qid, text[qid], "purity", (g.pid,), tuple((p,) for p in neg.pid), float(g.purity - neg.purity.max()), round=round))
    for qid, df in sets.groupby("qid", sort=True):
        complete = df[df.complete]
        if complete.empty:
            continue
        pos = complete.iloc[0]
        neg = df[~df.complete & (df.comprehensiveness < pos.comprehensiveness)][:n_negatives]
        if len(neg) and len(pos.pids):
            out.append(
                Example(qid, text[qid], "comprehensiveness", tuple(pos.pids), tuple(tuple(p) for p in neg.pids), float(pos.comprehensiveness - neg.comprehensiveness.max()), round=round)
            )
    return with_difficulty(out)


def with_difficulty(examples: Sequence[Example]) -> list[Example]:
    """Set each example's difficulty to its margin rank within its objective (0 easiest, 1 hardest)."""
    out = list(examples)
    for objective in OBJECTIVES:
        idx = [i for i, e in enumerate(out) if e.objective == objective]
        order = sorted(idx, key=lambda i: (-out[i].margin, out[i].qid, out[i].positive))
        for r, i in enumerate(order):
            out[i] = replace(out[i], difficulty=r / max(1, len(order) - 1))
    return out


def curriculum_order(examples: Sequence[Example], order: str = "dual", seed: int = 0) -> list[Example]:
    """Examples in training order.

    ``dual``: relevance -> comprehensiveness -> purity, easy -> hard within each objective;
    ``shuffled``: a seeded random order (the no-curriculum ablation).
    """
    if order not in ORDERS:
        raise ValueError(f"unknown curriculum order {order!r}; one of {ORDERS}")
    key = sorted(examples, key=lambda e: (OBJECTIVES.index(e.objective), e.difficulty, e.qid, e.positive))
    if order == "shuffled":
        random.Random(seed).shuffle(key)
    return key


def examples_table(examples: Sequence[Example]) -> pd.DataFrame:
    """One row per example (for reports and counts)."""
    return pd.DataFrame(
        [
            {"round": e.round, "objective": e.objective, "qid": e.qid, "positive": list(e.positive), "n_negatives": len(e.negatives), "margin": e.margin, "difficulty": e.difficulty}
            for e in examples
        ],
        columns=["round", "objective", "qid", "positive", "n_negatives", "margin", "difficulty"],
    )


# ---- training -----------------------------------------------------------------------------
def set_infonce(sim: torch.Tensor, sets: Sequence[Sequence[int]], temperature: float) -> torch.Tensor:
    """-log softmax of the first set among ``sets``; a set scores the mean of its members' ``sim``."""
    scores = torch.stack([sim[list(s)].mean() for s in sets]) / temperature
    return -torch.log_softmax(scores, dim=0)[0]


def batch_loss(encoder: DenseEncoder, batch: Sequence[Example], texts: dict[str, str], temperature: float) -> torch.Tensor:
    """Mean set-level InfoNCE: each example's positive against its negatives and the sets of the
    other questions in the batch (sets of the same question are never in-batch negatives)."""
    qids = sorted({e.qid for e in batch})
    queries = {e.qid: e.query for e in batch}
    pids = sorted({p for e in batch for s in (e.positive, *e.negatives) for p in s})
    col = {p: i for i, p in enumerate(pids)}
    q = encoder.forward([queries[x] for x in qids])
    sim = q @ encoder.forward([texts[p] for p in pids]).T
    losses = []
    for e in batch:
        own = [e.positive, *e.negatives]
        seen = set(own)
        others = [s for o in batch if o.qid != e.qid for s in (o.positive, *o.negatives) if not (s in seen or seen.add(s))]
        sets = [[col[p] for p in s] for s in own + others]
        losses.append(set_infonce(sim[qids.index(e.qid)], sets, temperature))
    return torch.stack(losses).mean()


@torch.no_grad()
def _eval_loss(encoder: DenseEncoder, examples: Sequence[Example], texts: dict[str, str], temperature: float, batch_size: int) -> float:
    if not examples:
        return float("nan")
    encoder.model.eval()
    ordered = curriculum_order(examples)
    total = sum(batch_loss(encoder, ordered[s : s + batch_size], texts, temperature).item() * len(ordered[s : s + batch_size]) for s in range(0, len(ordered), batch_size))
    return total / len(ordered)


def train_retriever(
    encoder: DenseEncoder,
    examples: Sequence[Example],
    texts: dict[str, str],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    temperature: float,
    val_fraction: float,
    seed: int,
    order: str = "dual",
    desc: str = "figret",
) -> pd.DataFrame:
    """Fine-tune the bi-encoder in place; returns the curve (step, epoch, split, loss).

    Each epoch walks the examples in curriculum order (``dual``) or a fresh seeded shuffle
    (``shuffled``), ``batch_size`` consecutive examples per step, with the warm-up/linear-decay
    schedule of ``rerank.train_listwise``. A seeded share of questions is held out; the weights of
    the epoch with the lowest validation loss are kept (the initial model counts).
    """
    seed_everything(seed)
    train, val = split_groups(examples, val_fraction, seed) if examples else ([], [])
    val_loss = _eval_loss(encoder, val, texts, temperature, 32)
    curve = [{"step": 0, "epoch": 0, "split": "val", "loss": val_loss}]
    if not train:
        return pd.DataFrame(curve)
    params = [p for p in encoder.model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    total = epochs * -(-len(train) // batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / max(1, total // 10)) * max(0.0, 1 - s / total))
    best = (val_loss, {k: v.clone() for k, v in encoder.model.state_dict().items()})
    step = 0
    for epoch in range(1, epochs + 1):
        ordered = curriculum_order(train, order, seed + epoch)
        encoder.model.train()
        for start in tqdm(range(0, len(ordered), batch_size), desc=f"{desc} epoch {epoch}", mininterval=10):
            loss = batch_loss(encoder, ordered[start : start + batch_size], texts, temperature)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            schedule.step()
            step += 1
            curve.append({"step": step, "epoch": epoch, "split": "train", "loss": loss.item()})
        val_loss = _eval_loss(encoder, val, texts, temperature, 32)
        curve.append({"step": step, "epoch": epoch, "split": "val", "loss": val_loss})
        if not val or val_loss < best[0]:
            best = (val_loss, {k: v.clone() for k, v in encoder.model.state_dict().items()})
    encoder.model.load_state_dict(best[1])
    encoder.model.eval()
    return pd.DataFrame(curve)


# ---- retrieval and the rounds -------------------------------------------------------------
def search_pool(
    encoder: DenseEncoder, questions: pd.DataFrame, pool: Sequence[str], texts: dict[str, str], k: int, method: str, batch_size: int = 64, pool_emb: np.ndarray | None = None
) -> pd.DataFrame:
    """Dense top-k of each question within a candidate pool of pids (a ranking table).

    ``pool_emb`` reuses given passage embeddings (rows in ``pool`` order) instead of encoding.
    """
    pool = list(pool)
    emb = pool_emb if pool_emb is not None else encoder.embed([texts[p] for p in pool], batch_size)
    idx, scores = dense_search(emb, encoder.embed(questions.question.tolist(), batch_size), min(k, len(pool)))
    return to_ranking(questions.qid, idx, scores, pool, method)


def poorly_served(
    lm: LM, questions: pd.DataFrame, ranked: dict[str, list[str]], store: PassageStore, *, top_k: int, max_new_tokens: int
) -> pd.DataFrame:
    """``qid, gold_in_top_k, em, poor`` for each question.

    A question is poorly served when a gold passage is missing from the top_k, or when the RAG
    answer from the top_k is wrong. Only questions with every gold passage retrieved are answered
    (``em`` is NaN for the others: they are poorly served whatever the answer).
    """
    found = [set(g) <= set(ranked[q][:top_k]) for q, g in zip(questions.qid, questions.gold_pids, strict=True)]
    out = pd.DataFrame({"qid": questions.qid.to_numpy(), "gold_in_top_k": found, "em": np.nan})
    asked = questions[np.asarray(found, dtype=bool)]
    if len(asked):
        ans = answer_questions(lm, asked, {q: ranked[q][:top_k] for q in asked.qid}, store, "figret_train", max_new_tokens)
        out.loc[out.gold_in_top_k, "em"] = ans.em.to_numpy()
    out["poor"] = ~out.gold_in_top_k | (out.em == 0)
    return out


@dataclass
class Round:
    """What one FiGRet round saw and did."""

    round: int
    served: pd.DataFrame
    passages: pd.DataFrame
    sets: pd.DataFrame
    examples: list[Example]
    curve: pd.DataFrame | None = None
    cost: dict[str, int] | None = None


def collect_round(
    lm: LM,
    questions: pd.DataFrame,
    ranked: dict[str, list[str]],
    store: PassageStore,
    *,
    round: int,
    top_k: int,
    k: int,
    n_negatives: int,
    judge_batch: int,
    max_new_tokens: int,
) -> Round:
    """Failures of the current retriever, LLM judgements for them, and the round's examples."""
    served = poorly_served(lm, questions, ranked, store, top_k=top_k, max_new_tokens=max_new_tokens)
    poor = questions[questions.qid.isin(served.qid[served.poor])]
    passages, sets = judge_questions(lm, poor, ranked, store, k=k, n_negatives=n_negatives, batch=judge_batch)
    examples = build_examples(poor, passages, sets, n_negatives=n_negatives, round=round) if len(passages) else []
    return Round(round, served, passages, sets, examples)


def run_rounds(
    lm: LM,
    encoder: DenseEncoder,
    examined: pd.DataFrame,
    ranked: dict[str, list[str]],
    store: PassageStore,
    texts: dict[str, str],
    *,
    n_rounds: int,
    pools: dict[str, tuple[pd.DataFrame, Sequence[str]]],
    ks: Sequence[int],
    search_k: int,
    encode_batch_size: int,
    judge: dict,
    train: dict,
) -> tuple[list[Round], pd.DataFrame]:
    """FiGRet's reciprocal feedback: ``n_rounds`` of collect -> judge -> train -> re-retrieve.

    ``encoder`` is trained in place. ``ranked`` is the starting ranking of the ``examined``
    questions; after each round they are re-retrieved in ``pools["train examined (pool)"]``.
    ``pools`` maps a split name to (questions, candidate pids); each is measured after every round.
    ``judge`` holds :func:`collect_round`'s keywords (top_k, k, n_negatives, judge_batch,
    max_new_tokens), ``train`` :func:`train_retriever`'s. Returns the rounds (with their LLM cost)
    and one history row per (round, split) with the retrieval quality.
    """
    rounds, history = [], []
    for r in range(1, n_rounds + 1):
        evaluations, tokens = lm.evaluations, lm.forward_tokens
        rd = collect_round(lm, examined, ranked, store, round=r, **judge)
        rd.cost = {"lm_evaluations": lm.evaluations - evaluations, "lm_forward_tokens": lm.forward_tokens - tokens}
        rd.curve = train_retriever(encoder, rd.examples, texts, order="dual", desc=f"round {r}", **train)
        rounds.append(rd)
        for split, (questions, pool) in pools.items():
            ranking = search_pool(encoder, questions, pool, texts, search_k, "figret", encode_batch_size)
            history.append({"round": r, "split": split, **retrieval_quality(ranking, questions, ks)})
            if split == "train examined (pool)":
                ranked = top_pids(ranking)
    return rounds, pd.DataFrame(history)


def round_table(rounds: Sequence[Round]) -> pd.DataFrame:
    """One row per round: questions examined and poorly served (and why), examples per objective, LLM cost."""
    rows = []
    for rd in rounds:
        objectives = pd.Series([e.objective for e in rd.examples], dtype=object)
        rows.append(
            {
                "round": rd.round,
                "examined": len(rd.served),
                "poorly served": int(rd.served.poor.sum()),
                "gold missing from top-k": int((~rd.served.gold_in_top_k).sum()),
                "answered wrong (gold in top-k)": int((rd.served.em == 0).sum()),
                **{o: int((objectives == o).sum()) for o in OBJECTIVES},
                **(rd.cost or {}),
            }
        )
    return pd.DataFrame(rows)


def judge_auc(judged: pd.DataFrame, criteria: Sequence[str] = ("relevance", "purity")) -> dict[str, float]:
    """P(a gold passage's judgement > a non-gold one's), ties counting half (0.5 is chance), per criterion."""
    gold, other = judged[judged.is_gold], judged[~judged.is_gold]
    if gold.empty or other.empty:
        return {c: float("nan") for c in criteria}
    return {c: float(np.mean([(g > n) + 0.5 * (g == n) for g in gold[c] for n in other[c]])) for c in criteria}


ABLATIONS = (
    ("no curriculum (shuffled)", OBJECTIVES, "shuffled"),
    ("relevance only", ("relevance",), "dual"),
    ("comprehensiveness only", ("comprehensiveness",), "dual"),
    ("purity only", ("purity",), "dual"),
)


def run_ablations(
    make_encoder, examples: Sequence[Example], texts: dict[str, str], questions: pd.DataFrame, pool: Sequence[str], *, k: int, ks: Sequence[int], encode_batch_size: int = 64, **train_kwargs
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One-round ablations from the same examples, each from a fresh encoder (``make_encoder()``).

    Returns (quality within the pool per variant: ``variant, recall@k..., mrr, n_examples``; the
    training curves with a ``variant`` column).
    """
    rows, curves = [], []
    for name, objectives, order in ABLATIONS:
        encoder = make_encoder()
        subset = [e for e in examples if e.objective in objectives]
        curve = train_retriever(encoder, subset, texts, order=order, desc=name, **train_kwargs)
        ranking = search_pool(encoder, questions, pool, texts, k, name, encode_batch_size)
        rows.append({"variant": name, **retrieval_quality(ranking, questions, ks), "n_examples": len(subset)})
        curves.append(curve.assign(variant=name))
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)
