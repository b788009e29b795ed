"""Stage 10: the RAG-E audit of every variant on the context it passes to the generator:
Shapley values of its documents (support of the generator's own answer, utility of the gold one),
WARG and failure modes, the shuffled-order control, and Integrated Gradients of the retrievers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ragalign.audit import alignment, games, integrated_gradients, variants
from ragalign.audit.coalitions import prefix_token_logprobs
from ragalign.core import artifacts
from ragalign.core.data import load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.params import Params
from ragalign.core.rag import PassageStore
from ragalign.core.retrieval import passage_string
from ragalign.core.seed import seed_everything
from ragalign.methods.gainrag import pseudo as gainrag_pseudo


@dataclass
class Result:
    test: pd.DataFrame
    status: pd.DataFrame  # variant -> available, missing inputs
    audited: list[variants.Variant]
    tops: dict  # variant -> qid -> pids shown to the generator
    n_games: int
    n_shuffled_questions: int
    plans: dict  # k -> (method, plan, masks)
    n_distinct_prompts: int
    evaluations: int  # (prompt, answer) evaluations requested, cache hits included
    rows: pd.DataFrame  # one row per game: values and Shapley values
    align: pd.DataFrame  # one row per (variant, order, question): WARG, failure modes
    summary: dict  # (variant, order) -> measure -> mean, lo, hi
    paired: dict  # variant -> measure -> paired difference against dense
    orders: dict  # variant (and games.ALL_VARIANTS) -> measure -> shuffled minus original, paired on the shuffled questions
    utility: dict  # variant -> gold-answer utility summary
    gain_link: dict  # single-document gain vs Shapley value in context
    confusion: dict  # variant -> rank-against-rank fractions (original order)
    ig: dict  # (variant, qid) -> TokenAttribution
    ig_table: pd.DataFrame
    quality: dict  # variant -> EM/F1 of its answers
    metrics: dict  # results/metrics/rag_e.json
    audit_table: pd.DataFrame  # per variant: gold log-prob, F1, WARG and failure rates in both orders

    @property
    def paired_table(self) -> pd.DataFrame:
        """Each variant minus dense retrieval, per measure: the interval, its verdict word, ``mde`` and ``n``."""
        return differences_table(self.paired, "difference", mde=True)

    @property
    def orders_table(self) -> pd.DataFrame:
        """The position control: shuffled minus original order, per variant and measure, with its verdict word."""
        return differences_table(self.orders, "shuffled − original")

    @property
    def ig_median_gap(self) -> float:
        """The median relative completeness gap of the Integrated Gradients explanations (NaN for none)."""
        return float(self.ig_table["relative gap"].median()) if not self.ig_table.empty else float("nan")


def interval_text(ci: dict, digits: int = 2) -> str:
    """``mean [lo, hi]``."""
    return f"{ci['mean']:.{digits}f} [{ci['lo']:.{digits}f}, {ci['hi']:.{digits}f}]"


def differences_table(blocks: dict, column: str, mde: bool = False) -> pd.DataFrame:
    """One row per (variant, measure) of paired differences: the interval, its verdict word (``core.verdicts``), n."""
    from ragalign.core.verdicts import label, verdict

    return pd.DataFrame(
        [{"variant": v, "measure": m, column: interval_text(d), "verdict": label(verdict(d)), **({"mde": d["mde"]} if mde else {}), "n": d["n"]}
         for v, block in blocks.items() for m, d in block.items()]
    )


def mid_p(ps: list[float]) -> float:
    """The WARG persistence the tables report: the middle of ``rag_e.warg_p``."""
    return ps[len(ps) // 2]


def explain_retrievers(audited, test: pd.DataFrame, tops: dict, text_of, P: Params) -> dict:
    """IG of each differentiable retriever's score for the top document of the first ``rag_e.ig_questions`` questions."""
    E, out = P.rag_e, {}
    qtext = dict(zip(test.qid, test.question, strict=True))
    for v in audited:
        if not v.differentiable or v.reader is not None or E.ig_questions == 0:
            continue  # a variant with its own reader shows another variant's ranking: its retriever is explained there
        length = P.retrieval.max_length if v.kind == "bi-encoder" else P.training.max_length
        explain = integrated_gradients.retriever_explainer(v.kind, v.model.path if v.model else None, P.models.encoder, length, E.ig_steps, E.ig_baseline)
        for q in test.qid.tolist()[: E.ig_questions]:
            out[(v.name, q)] = explain(qtext[q], text_of(tops[v.name][q][0]))
    return out


def run(P: Params) -> Result:
    E = P.rag_e
    seed_everything(E.seed)
    questions, passages = load_questions(), load_passages()
    test = questions[questions.split == "test"].head(E.n_questions).reset_index(drop=True)
    status = variants.check()
    audited = [v for v in variants.VARIANTS if status.set_index("variant").loc[v.name, "available"]]
    if not audited:
        raise FileNotFoundError(f"no variant has its rankings yet: {status.missing.tolist()}")

    lm = LM.from_params(P.models)
    store = PassageStore(passages, lm, P.rag.max_passage_tokens)
    raw_text = {p.pid: passage_string(p.title, p.text) for p in passages.itertuples()}
    pseudo = gainrag_pseudo.pseudo_texts(artifacts.PSEUDO.read()) if any(v.name == "gainrag" for v in audited) else {}

    def gen_text(pid: str) -> str:
        """A passage as the generator reads it (pseudo-passages as stage 05 passed them)."""
        return lm.truncate(pseudo[pid], P.rag.max_passage_tokens) if gainrag_pseudo.is_pseudo(pid) else store[pid]

    def ret_text(pid: str) -> str:
        """A passage as the retrievers read it."""
        return pseudo[pid] if gainrag_pseudo.is_pseudo(pid) else raw_text[pid]

    context_k = {"gainrag": P.selector.top_k, "radio": P.radio.top_k}
    tops = {v.name: variants.top_k(v, test.qid.tolist(), context_k.get(v.name, P.rag.top_k)) for v in audited}

    # each generator plays the games of the variants it reads (the study's, or stage 08's tuned reader)
    readers = {v.reader.path if v.reader else None for v in audited}
    models = {path: lm if path is None else LM(str(artifacts.READER.at()), lm.dtype, device=lm.device) for path in sorted(readers, key=str)}
    audit_games, values, evaluations = [], [], 0
    for path, model in models.items():
        mine = {v.name: tops[v.name] for v in audited if (v.reader.path if v.reader else None) == path}
        played = games.build_games(model, test, mine, gen_text, P.rag.max_new_tokens, E.shuffled_questions, E.seed)
        plans = games.plans_for([g.k for g in played], E.max_exact_subsets, E.mc_evaluations, E.estimator, E.seed)
        before = model.evaluations
        values += games.game_values(played, {k: masks for k, (_, _, masks) in plans.items()}, lambda ps, ans, m=model: prefix_token_logprobs(m, ps, ans, desc="coalitions"), E.value)
        evaluations += model.evaluations - before
        audit_games += played
    plans = games.plans_for([g.k for g in audit_games], E.max_exact_subsets, E.mc_evaluations, E.estimator, E.seed)
    rows = games.shapley_rows(audit_games, values, {k: (m, plan) for k, (m, plan, _) in plans.items()}, E.seed)
    n_distinct = len({games.subset_prompt(g, m) for g in audit_games for m in plans[g.k][2]})

    align, summary = games.alignment_table(rows, tops, E.warg_p, P.rag.n_bootstrap, E.seed)
    p_mid = mid_p(E.warg_p)
    paired = games.paired_vs(align, "dense", ["wasted", "noise", f"warg_ext@{p_mid:g}"], P.rag.n_bootstrap, E.seed) if not align.empty else {}
    orders = games.paired_orders(align, ["wasted", "noise"], P.rag.n_bootstrap, E.seed)
    utility = games.utility_summary(rows, dict(zip(test.qid, test.gold_pids, strict=True)), P.rag.n_bootstrap, E.seed)
    gain_link = games.gain_vs_shapley(rows[rows.order == "original"])
    confusion = {}
    for v in audited:
        df = align[(align.variant == v.name) & (align.order == "original")]
        if not df.empty:
            k = len(tops[v.name][df.qid.iloc[0]])
            confusion[v.name] = alignment.rank_confusion([(tops[v.name][q], g) for q, g in zip(df.qid, df.gen, strict=True)], k)

    ig = explain_retrievers(audited, test, tops, ret_text, P)
    ig_table = integrated_gradients.ig_summary(ig)
    quality = {v.name: variants.answer_quality(v, P.rag.n_bootstrap, P.data.seed) for v in audited}
    missing = status[~status.available]

    metrics = {
        "config": {
            "n_questions": len(test),
            "shuffled_questions": len({g.qid for g in audit_games if g.order == "shuffled"}),
            "value": E.value,
            "utility": "mean token log-prob of the gold answer (best over gold answers)",
            "shapley": {str(k): {"method": m, "coalitions": len(masks)} for k, (m, _, masks) in plans.items()},
            "answer_scored": "cleaned",
        },
        "missing_variants": {r.variant: r.missing for r in missing.itertuples()},
        "gain_vs_shapley": gain_link,
        "shuffled_minus_original": orders.get(games.ALL_VARIANTS),
        "failure_ranges": alignment.failure_ranges(summary),
        "variants": {
            v.name: {
                "kind": v.kind,
                "documents": utility[v.name]["k"],
                "answer_quality": quality[v.name],
                "utility": utility[v.name],
                "original": alignment.metrics_block(summary[(v.name, "original")], E.warg_p) if (v.name, "original") in summary else None,
                "shuffled": alignment.metrics_block(summary[(v.name, "shuffled")], E.warg_p) if (v.name, "shuffled") in summary else None,
                "paired_vs_dense": paired.get(v.name),
                "shuffled_minus_original": orders.get(v.name),
                "ig": ig_block(ig_table, v.name) if v.differentiable and v.reader is None else None,
            }
            for v in audited
        },
    }
    artifacts.AUDIT_METRICS.write(metrics)
    artifacts.AUDIT_GAMES.write(rows)
    return Result(
        test, status, audited, tops, len(audit_games), metrics["config"]["shuffled_questions"], plans, n_distinct, evaluations,
        rows, align, summary, paired, orders, utility, gain_link, confusion, ig, ig_table, quality, metrics,
        audit_table(audited, utility, quality, summary, mid_p(E.warg_p)),
    )


def audit_table(audited, utility: dict, quality: dict, summary: dict, p: float) -> pd.DataFrame:
    """One row per audited variant: documents shown, gold log-prob with all of them, F1, WARG at ``p``
    (both forms) and the failure rates in the original and shuffled orders (None where not measured)."""

    def mean_of(v: str, order: str, key: str) -> float | None:
        return summary[(v, order)][key]["mean"] if (v, order) in summary else None

    return pd.DataFrame(
        [
            {
                "variant": v.name,
                "documents": utility[v.name]["k"],
                "gold log-prob (all documents)": utility[v.name]["utility_full"]["mean"],
                "F1": quality[v.name]["f1"]["mean"] if quality[v.name] else None,
                f"WARG@{p:g}": mean_of(v.name, "original", f"warg_truncated@{p:g}"),
                f"WARG_ext@{p:g}": mean_of(v.name, "original", f"warg_ext@{p:g}"),
                "wasted": mean_of(v.name, "original", "wasted"),
                "noise": mean_of(v.name, "original", "noise"),
                "wasted (shuffled)": mean_of(v.name, "shuffled", "wasted"),
                "noise (shuffled)": mean_of(v.name, "shuffled", "noise"),
            }
            for v in audited
        ]
    ).set_index("variant")


def ig_block(ig_table: pd.DataFrame, variant: str) -> dict | None:
    """How many pairs IG explained for ``variant`` and their mean completeness gap (None if none)."""
    if ig_table.empty or not (ig_table.variant == variant).any():
        return None
    mine = ig_table[ig_table.variant == variant]
    return {"n": len(mine), "mean_relative_gap": round(float(np.mean(mine["relative gap"])), 4)}
