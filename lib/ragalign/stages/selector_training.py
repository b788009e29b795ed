"""Stage 05: the GainRAG selector (gain labels distilled into a reranker that starts from dense),
its ablations, and their answers against the stage-03 baselines."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ragalign.core import artifacts
from ragalign.core.data import load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.metrics import paired_interval
from ragalign.core.params import Params
from ragalign.core.rag import PassageStore, answer_questions, build_cost, summarise
from ragalign.core.rerank import CrossEncoder, rerank, train_reranker
from ragalign.core.retrieval import passage_texts
from ragalign.core.seed import seed_everything
from ragalign.core.validity import difference_gate, loss_gate, ranker_gate
from ragalign.core.verdicts import paired_outcomes
from ragalign.methods.gainrag.pseudo import pseudo_texts
from ragalign.methods.gainrag.selector import (
    context_texts,
    drop_pseudo,
    pseudo_selection_rate,
    selector_candidates,
    selector_groups,
    top_contexts,
)


@dataclass
class Result:
    test: pd.DataFrame
    n_groups: int
    curves: pd.DataFrame  # step, split, loss, selector
    val: pd.DataFrame  # selector -> initial, best held-out loss
    selection: pd.DataFrame  # variant -> pseudo_selection_rate, gold_at_top_k
    answers: pd.DataFrame
    summary: dict
    baseline_summary: dict  # the stage-03 variants, summarised the same way
    diffs: dict  # other variant -> metric -> paired difference (GainRAG minus it), with its verdict (paired_outcomes)
    validity: dict
    labelling_cost: dict  # stage 04's cost block
    top: str  # the dense top-k reference variant


def gold_hits(ranking: pd.DataFrame, test: pd.DataFrame, k: int) -> pd.Series:
    """Per test question (by qid, in ``test`` order): 1.0 when the top k of ``ranking`` holds a gold passage, else 0.0."""
    tops = top_contexts(ranking, k)
    return pd.Series({q.qid: float(bool(set(tops.get(q.qid, [])) & set(q.gold_pids))) for q in test.itertuples()})


def gold_at_top_k(ranking: pd.DataFrame, test: pd.DataFrame, k: int) -> float:
    """Share of test questions whose top k (of ``ranking``) holds a gold passage."""
    return float(gold_hits(ranking, test, k).mean())


def gold_at_top_k_gate(ranking: pd.DataFrame, start: pd.DataFrame, test: pd.DataFrame, k: int, n_boot: int, seed: int) -> dict:
    """Does ``ranking`` put a gold passage in its top k more often than ``start`` (the ranking it began
    from)? Paired per test question; ``did not move`` when both show the same top k everywhere."""
    mine, base = gold_hits(ranking, test, k), gold_hits(start, test, k)
    a, b = top_contexts(ranking, k), top_contexts(start, k)
    unmoved = all(list(a.get(q, [])) == list(b.get(q, [])) for q in test.qid)
    return difference_gate(paired_interval((mine - base).to_numpy(), n_boot, seed), unmoved=unmoved) | {
        "selector": float(mine.mean()),
        "dense": float(base.mean()),
    }


def run(P: Params) -> Result:
    seed_everything(P.training.seed)
    questions, passages = load_questions(), load_passages()
    test = questions[questions.split == "test"]
    labels, pseudo, dense = artifacts.GAIN_LABELS.read(), artifacts.PSEUDO.read(), artifacts.DENSE.read()
    stats04 = artifacts.LABELLING_STATS.read()
    train = questions[questions.qid.isin(set(labels.qid))]
    # the selector reads passages as the stage-03 reranker does; pseudo-passages as generated
    pseudo_text = pseudo_texts(pseudo)
    selector_text = passage_texts(passages) | pseudo_text

    def train_selector(label_col: str, name: str):
        groups = selector_groups(labels, train, selector_text, P.training.group_size, P.training.seed, label_col=label_col, temperature=P.selector.temperature)
        model, curve = train_reranker(P.models.encoder, groups, P.training, desc=name, prior_max_length=P.retrieval.max_length)
        return model, curve.assign(selector=name), groups

    selector, curve, groups = train_selector("label", "gainrag")
    selector_a0, curve_a0, _ = train_selector("label_ppl", "gainrag_alpha0")
    curves = pd.concat([curve, curve_a0], ignore_index=True)
    val = curves[curves.split == "val"].groupby("selector").loss.agg(initial="first", best="min").round(4)

    candidates = selector_candidates(dense, P.selector.top_n, pseudo)
    rankings = {
        "gainrag": rerank(selector, test, candidates, selector_text, "gainrag", desc="selector", priors=dense),
        "gainrag_alpha0": rerank(selector_a0, test, candidates, selector_text, "gainrag_alpha0", desc="selector α=0", priors=dense),
    }
    rankings["gainrag_no_pseudo"] = drop_pseudo(rankings["gainrag"], "gainrag_no_pseudo")
    relevance = CrossEncoder.load(P.models.encoder, artifacts.RELEVANCE_RERANKER.at(), P.training.max_length)
    rankings["no_distillation"] = rerank(relevance, test, candidates, selector_text, "no_distillation", desc="relevance reranker", priors=dense)
    top = f"dense_top{P.selector.top_k}"
    rankings[top] = dense[dense.qid.isin(set(test.qid))]
    selection = pd.DataFrame(
        {name: {"pseudo_selection_rate": pseudo_selection_rate(r, P.selector.top_k), "gold_at_top_k": gold_at_top_k(r, test, P.selector.top_k)} for name, r in rankings.items()}
    ).T.round(4)

    lm = LM.from_params(P.models)
    store = PassageStore(passages, lm, P.rag.max_passage_tokens)

    def gen_text(pid: str) -> str:  # pseudo-passages as generated, corpus passages as the store cuts them
        return pseudo_text[pid] if pid in pseudo_text else store[pid]

    contexts = {name: top_contexts(r, P.selector.top_k) for name, r in rankings.items()}
    answers = pd.concat(
        [answer_questions(lm, test, ctx, store, name, P.rag.max_new_tokens, context_texts=context_texts(ctx, gen_text)) for name, ctx in contexts.items()],
        ignore_index=True,
    )
    summary = summarise(answers, P.rag.n_bootstrap, seed=P.data.seed)

    base_answers = artifacts.BASELINE_ANSWERS.read()
    baseline_summary = summarise(base_answers, P.rag.n_bootstrap, seed=P.data.seed)
    others = {v: answers[answers.variant == v] for v in summary if v != "gainrag"}
    others.update({f"baseline:{v}": df for v, df in base_answers.groupby("variant", sort=False)})
    mine = answers[answers.variant == "gainrag"]
    n_boot, seed = P.rag.n_bootstrap, P.data.seed
    diffs = {name: paired_outcomes(mine, df, n_boot, seed, P.rag.equivalence_margin) for name, df in others.items()}
    validity = {
        "selector_heldout_loss": loss_gate(curve, n_boot, seed),
        "selector_alpha0_heldout_loss": loss_gate(curve_a0, n_boot, seed),
        "selector_vs_dense_ranking": ranker_gate(drop_pseudo(rankings["gainrag"]), rankings[top], test, n_boot=n_boot, seed=seed),
        "gold_at_top_k_vs_dense": gold_at_top_k_gate(rankings["gainrag"], rankings[top], test, P.selector.top_k, n_boot, seed),
    }
    cost04 = stats04["cost"]

    def gain_cost(v: str) -> dict[str, int]:
        """Every GainRAG variant pays for the pseudo-passages and the gain labels; "no distillation" for the pseudo-passages only."""
        if v == top:
            return build_cost()
        labelled = v != "no_distillation"
        return build_cost(
            cost04["pseudo_generation"]["evaluations"] + labelled * cost04["labelling"]["evaluations"],
            cost04["pseudo_generation"]["forward_tokens"] + labelled * cost04["labelling"]["forward_tokens"],
        )

    selector.save(artifacts.SELECTOR.path)
    artifacts.SELECTOR_CURVE.write(curves.round(6).to_dict(orient="records"))
    artifacts.SELECTOR_RANKINGS.write(rankings["gainrag"])
    artifacts.GAIN_ANSWERS.write(answers)
    artifacts.GAIN_METRICS.write(
        {
            **summary,
            "selection": selection.to_dict(orient="index"),
            "pseudo_selection_rate": float(selection.loc["gainrag", "pseudo_selection_rate"]),
            "vs_variants": diffs,
            "validity": validity,
            "selector_training": {"groups": len(groups), "val_loss": val.to_dict(orient="index"), "temperature": P.selector.temperature},
            "labels": stats04["stats"],
            "build_cost": {v: gain_cost(v) for v in summary},
            "cost": {
                "labelling": cost04["labelling"],
                "pseudo_generation": cost04["pseudo_generation"],
                "labelling_naive_evaluations": cost04["labelling_naive"]["evaluations"],
                "answer_llm_evaluations_this_stage": len(answers),
            },
        }
    )
    return Result(test, len(groups), curves, val, selection, answers, summary, baseline_summary, diffs, validity, cost04, top)
