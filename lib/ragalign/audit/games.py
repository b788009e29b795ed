"""The RAG-E audit of every variant, on the context each variant actually passes to the generator.

A *game* is one question under one variant: the documents the variant shows the generator, in the
order shown (or a seeded shuffle of them: the position control). Every coalition of the documents
gets **two values**, both read from one pass over the coalition's prompt:

- ``support`` (RAG-E): how strongly the generator still supports *its own answer* (the one it gave
  with all documents), as the mean token probability (``rag_e.value``) of that answer;
- ``utility``: the mean token log-probability of the *gold* answer (best over gold answers). Its
  value on all documents is the study's sensitive outcome; ``v({d}) - v(empty)`` is a GainRAG-style
  gain of document ``d``; its Shapley values say which documents helped the correct answer.

Coalitions are evaluated over a prefix tree (``coalitions.prefix_token_logprobs``) and cached, so a
coalition two variants share (same question, documents, order and answer) is computed once.
Shapley values come from a ``shapley`` estimator: exact when ``2^k <= rag_e.max_exact_subsets``.
``plan_masks`` plans the coalitions of one estimator so that all of them are scored in one batched
call (``game_values``); ``estimate`` then only reads values. ``n_evaluations`` always counts
distinct coalitions, the empty and the full one included.
A one-document game (GainRAG shows its top 1) has the single Shapley value ``v({d}) - v(empty)``;
its retriever and generator rankings trivially agree, so WARG and the failure modes are reported as
not applicable for it rather than as perfect alignment.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ragalign.audit import alignment, shapley
from ragalign.audit.shapley import Plan, members
from ragalign.core.metrics import bootstrap_ci, paired_interval
from ragalign.core.rag import build_prompt, clean_answer

VALUES = ("support", "utility")


def plan_masks(k: int, max_exact_subsets: int, n_evaluations: int, seed: int, estimator: str = "pmcshap") -> tuple[str, list[int], Plan]:
    """(method, coalitions to evaluate, plan) for ``estimate``: exact when 2^k <= max_exact_subsets,
    else ``estimator`` (a ``shapley.make_estimator`` spec) with at most ``n_evaluations`` coalitions."""
    method = "exact" if (1 << k) <= max_exact_subsets else estimator
    plan = shapley.make_estimator(method).plan(k, n_evaluations, np.random.default_rng(seed))
    return method, list(plan.masks), plan


def estimate(method: str, values: Mapping[int, float], k: int, plan: Plan, seed: int) -> np.ndarray:
    """Shapley values of one game from the values of ``plan``'s coalitions (``k`` must match the plan)."""
    if plan.k != k:
        raise ValueError(f"a plan for {plan.k} players used for {k}")
    return shapley.make_estimator(method).estimate(values, plan, np.random.default_rng(seed + 1))


def subset_value(token_logprobs: Sequence[float], value: str = "prob") -> float:
    """Mean token probability (``prob``) or mean token log-probability (``logprob``) of an answer."""
    lp = np.asarray(token_logprobs, dtype=float)
    if value == "prob":
        return float(np.exp(lp).mean())
    if value == "logprob":
        return float(lp.mean())
    raise ValueError(f"unknown value {value!r} (prob | logprob)")


@dataclass(frozen=True)
class AuditGame:
    """One question under one variant: its documents in the order shown and the answers to score."""

    variant: str
    qid: str
    order: str  # "original" or "shuffled"
    question: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    own_answer: str
    gold_answers: tuple[str, ...]

    @property
    def k(self) -> int:
        return len(self.ids)


def shuffled(qid: str, pids: Sequence[str], seed: int) -> list[str]:
    """The position control: the same documents in a seeded random order (one order per question)."""
    order = list(range(len(pids)))
    random.Random(f"{seed}:{qid}").shuffle(order)
    return [pids[i] for i in order]


def build_games(
    lm,
    questions: pd.DataFrame,
    contexts: Mapping[str, Mapping[str, Sequence[str]]],
    text_of: Callable[[str], str],
    max_new_tokens: int,
    shuffled_questions: int,
    seed: int,
) -> list[AuditGame]:
    """Every variant's game on every question, plus the position control.

    ``contexts[variant][qid]`` are the pids the variant passes to the generator, in order;
    ``text_of(pid)`` is a passage as the generator reads it. Each game scores the generator's own
    cleaned greedy answer (from :meth:`LM.answer`, the answering stages' call, so a cache hit) and
    the question's gold answers. The first ``shuffled_questions`` questions also get a game with
    the documents in a seeded random order (games of one document have no other order).
    """
    qtext = dict(zip(questions.qid, questions.question, strict=True))
    gold = {q: tuple(str(a) for a in answers) for q, answers in zip(questions.qid, questions.answers, strict=True)}
    keys = [(v, q) for v in contexts for q in questions.qid]
    prompts = [build_prompt(qtext[q], [text_of(p) for p in contexts[v][q]]) for v, q in keys]
    replies = lm.answer(prompts, [gold[q] for _, q in keys], max_new_tokens, desc="answers")
    control = set(questions.qid.tolist()[:shuffled_questions])
    games = []
    for (v, q), (reply, _) in zip(keys, replies, strict=True):
        pids = list(contexts[v][q])
        orders = [("original", pids)]
        if q in control and len(pids) > 1:
            orders.append(("shuffled", shuffled(q, pids, seed)))
        for order, ids in orders:
            games.append(AuditGame(v, q, order, qtext[q], tuple(ids), tuple(text_of(p) for p in ids), clean_answer(reply) or reply, gold[q]))
    return games


def subset_prompt(game: AuditGame, mask: int) -> str:
    return build_prompt(game.question, [game.texts[i] for i in members(mask, game.k)])


def per_answer(
    token_logprobs: Callable[[list[str], list[str]], list[list[float]]],
) -> Callable[[list[str], list[list[str]]], list[list[list[float]]]]:
    """A ``score`` for ``game_values`` from a flat ``(prompts, answers) -> [pair][token]`` scorer
    (``LM.token_logprobs``, ``LM._token_logprobs``): one call on every (prompt, answer) pair, in
    order, regrouped as ``[prompt][answer][token]``."""

    def score(prompts: list[str], answers: list[list[str]]) -> list[list[list[float]]]:
        flat = token_logprobs([p for p, ans in zip(prompts, answers, strict=True) for _ in ans], [a for ans in answers for a in ans])
        out, at = [], 0
        for ans in answers:
            out.append(flat[at : at + len(ans)])
            at += len(ans)
        return out

    return score


def game_values(
    games: Sequence[AuditGame],
    masks: Mapping[int, Sequence[int]],
    score: Callable[[list[str], list[list[str]]], list[list[list[float]]]],
    value: str = "prob",
) -> list[dict[str, dict[int, float]]]:
    """Both values of every planned coalition of every game from ONE call of ``score``.

    ``masks[k]`` are the coalitions planned for games of ``k`` documents; ``score(prompts,
    answers)`` returns token log-probs ``[prompt][answer][token]``. Identical prompts are scored once,
    with the union of the answers asked of them.
    """
    answers_of: dict[str, list[str]] = {}
    for g in games:
        for m in masks[g.k]:
            want = answers_of.setdefault(subset_prompt(g, m), [])
            for a in (g.own_answer, *g.gold_answers):
                if a not in want:
                    want.append(a)
    prompts = list(answers_of)
    scores = score(prompts, [answers_of[p] for p in prompts]) if prompts else []
    table = {(p, a): lp for p, s in zip(prompts, scores, strict=True) for a, lp in zip(answers_of[p], s, strict=True)}
    out = []
    for g in games:
        support, utility = {}, {}
        for m in masks[g.k]:
            p = subset_prompt(g, m)
            support[m] = subset_value(table[(p, g.own_answer)], value)
            utility[m] = max(subset_value(table[(p, a)], "logprob") for a in g.gold_answers)
        out.append({"support": support, "utility": utility})
    return out


def shapley_rows(games: Sequence[AuditGame], values: Sequence[Mapping[str, Mapping[int, float]]], plans: Mapping[int, tuple[str, object]], seed: int) -> pd.DataFrame:
    """One row per game: ids, and per value its Shapley values, v(empty) and v(all)."""
    rows = []
    for g, vals in zip(games, values, strict=True):
        method, plan = plans[g.k]
        row = {"variant": g.variant, "qid": g.qid, "order": g.order, "k": g.k, "ids": list(g.ids), "method": method}
        for name in VALUES:
            v = vals[name]
            row[f"{name}_shapley"] = [round(float(x), 6) for x in estimate(method, v, g.k, plan, seed)]
            row[f"{name}_empty"], row[f"{name}_full"] = v[0], v[(1 << g.k) - 1]
            row[f"{name}_single"] = [round(v[1 << i] - v[0], 6) for i in range(g.k)] if all((1 << i) in v for i in range(g.k)) else None
        rows.append(row)
    return pd.DataFrame(rows)


def plans_for(ks: Sequence[int], max_exact_subsets: int, n_evaluations: int, estimator: str, seed: int) -> dict[int, tuple[str, object, list[int]]]:
    """One coalition plan per game size: (method, plan, masks). Single-document games are always exact."""
    out = {}
    for k in sorted(set(ks)):
        method, masks, plan = plan_masks(k, max_exact_subsets, n_evaluations, seed, estimator)
        if method != "exact":  # the single values v({d}) - v(empty) are always wanted: add them
            masks = sorted(set(masks) | {1 << i for i in range(k)} | {0, (1 << k) - 1})
        out[k] = (method, plan, masks)
    return out


def gain_vs_shapley(rows: pd.DataFrame) -> dict[str, float]:
    """Does a document's single-document gain (v_u({d}) - v_u(empty)) predict its Shapley utility in
    context? Mean per-game Spearman (games with >= 3 documents) and the pooled Spearman."""
    multi = rows[(rows.k >= 3) & rows.utility_single.notna()]
    if multi.empty:
        return {"games": 0, "spearman_per_game": float("nan"), "spearman_pooled": float("nan")}
    per = [spearmanr(a, b).statistic for a, b in zip(multi.utility_single, multi.utility_shapley, strict=True) if np.ptp(a) > 0 and np.ptp(b) > 0]
    pooled = spearmanr(np.concatenate(multi.utility_single.to_numpy()), np.concatenate(multi.utility_shapley.to_numpy())).statistic
    return {"games": len(multi), "spearman_per_game": round(float(np.mean(per)), 4), "spearman_pooled": round(float(pooled), 4)}


def alignment_table(rows: pd.DataFrame, retrieved: Mapping[str, Mapping[str, Sequence[str]]], ps: Sequence[float], n_boot: int, seed: int):
    """RAG-E alignment (on the support values) of every game with >= 2 documents: per-question rows
    and the summary per (variant, order), as ``alignment.audit`` computes them."""
    multi = rows[rows.k >= 2].rename(columns={"support_shapley": "shapley"})
    if multi.empty:
        return pd.DataFrame(), {}
    return alignment.audit(multi, retrieved, ps, n_boot, seed)


def paired_vs(table: pd.DataFrame, reference: str, columns: Sequence[str], n_boot: int, seed: int) -> dict[str, dict[str, dict]]:
    """Per variant and column: the paired bootstrap difference variant - ``reference`` over the questions both audited."""
    orig = table[table.order == "original"]
    ref = orig[orig.variant == reference].set_index("qid")
    out: dict[str, dict[str, dict]] = {}
    for variant, df in orig.groupby("variant", sort=False):
        if variant == reference:
            continue
        df = df.set_index("qid")
        common = df.index.intersection(ref.index).sort_values()
        out[variant] = {col: paired_interval((df.loc[common, col].astype(float) - ref.loc[common, col].astype(float)).to_numpy(), n_boot, seed) for col in columns}
    return out


ALL_VARIANTS = "all variants"


def paired_orders(table: pd.DataFrame, columns: Sequence[str], n_boot: int, seed: int) -> dict[str, dict[str, dict]]:
    """Per variant and column: shuffled minus original order, paired on the questions audited in both
    orders; and under :data:`ALL_VARIANTS` the per-question mean of those differences over the variants,
    paired on the same questions (one interval for the position control as a whole)."""
    if table.empty:
        return {}
    by_order = {o: table[table.order == o].set_index(["variant", "qid"])[list(columns)].astype(float) for o in ("original", "shuffled")}
    common = by_order["shuffled"].index.intersection(by_order["original"].index)
    if common.empty:
        return {}
    diffs = by_order["shuffled"].loc[common] - by_order["original"].loc[common]
    out: dict[str, dict[str, dict]] = {}
    for variant, df in diffs.groupby(level="variant", sort=False):
        df = df.droplevel("variant").sort_index()
        out[variant] = {col: paired_interval(df[col].to_numpy(), n_boot, seed) for col in columns}
    pooled = diffs.groupby(level="qid").mean().sort_index()
    out[ALL_VARIANTS] = {col: paired_interval(pooled[col].to_numpy(), n_boot, seed) for col in columns}
    return out


def utility_summary(rows: pd.DataFrame, gold: Mapping[str, Sequence[str]], n_boot: int, seed: int) -> dict[str, dict]:
    """Per variant (original order): the gold-answer log-prob with all its documents and with none,
    and how often its most useful document (highest utility Shapley value) is a gold passage."""
    out = {}
    for variant, df in rows[rows.order == "original"].groupby("variant", sort=False):
        top_is_gold = [ids[int(np.argmax(phi))] in set(gold[q]) for q, ids, phi in zip(df.qid, df.ids, df.utility_shapley, strict=True)]
        out[variant] = {
            "k": int(df.k.iloc[0]),
            "utility_full": bootstrap_ci(df.utility_full, n_boot, seed),
            "utility_empty": bootstrap_ci(df.utility_empty, n_boot, seed),
            "top_utility_document_is_gold": bootstrap_ci(np.asarray(top_is_gold, dtype=float), n_boot, seed),
        }
    return out
