"""Stage 09: which side of the seam to align. Every retriever-side method's test ranking, cut at each
``seam.ks`` (the same k for every method, so no row compares one passage with five), answered by the
untuned and by the tuned reader (the 2 x N table, paired per question with dense at the same k), and
GainRAG re-run with the tuned reader as its teacher (the "both sides" cell of RA-DIT's ablation)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ragalign.core import artifacts
from ragalign.core.artifacts import seam_variant
from ragalign.core.data import load_passages, load_questions
from ragalign.core.lm import LM
from ragalign.core.metrics import paired_difference, paired_interval
from ragalign.core.pairing import READERS, REFERENCE, pair_variants
from ragalign.core.params import Params
from ragalign.core.rag import PassageStore, answer_questions, summarise
from ragalign.core.rerank import rerank, train_reranker
from ragalign.core.retrieval import passage_texts, top_pids
from ragalign.core.seed import seed_everything
from ragalign.core.validity import loss_gate, ranker_gate
from ragalign.core.verdicts import paired_outcomes, with_verdict
from ragalign.methods.gainrag.labels import best_gain_summary, build_pairs, label_table, planned_cost, score_pairs
from ragalign.methods.gainrag.pseudo import is_pseudo, pseudo_texts
from ragalign.methods.gainrag.selector import (
    context_texts,
    drop_pseudo,
    selector_candidates,
    selector_groups,
    top_contexts,
)

# The ranked retriever-side methods: (method, its test ranking, the answers table of its own stage).
RANKED = (
    ("bm25", artifacts.BM25, artifacts.BASELINE_ANSWERS),
    ("dense", artifacts.DENSE, artifacts.BASELINE_ANSWERS),
    ("reranker", artifacts.RERANKER_RANKINGS, artifacts.BASELINE_ANSWERS),
    ("gainrag", artifacts.SELECTOR_RANKINGS, artifacts.GAIN_ANSWERS),
    ("radio", artifacts.RADIO_RANKINGS, artifacts.RADIO_ANSWERS),
    ("figret", artifacts.FIGRET_RANKINGS, artifacts.FIGRET_ANSWERS),
)
UNRANKED = ("no_retrieval", "oracle")  # contexts that have no k: none, and the gold passages (stage 03)
COUPLED = "gainrag_coupled"


@dataclass
class Result:
    test: pd.DataFrame
    answers: pd.DataFrame  # one row per (reader, variant, question)
    summary: dict  # "reader:variant" -> em, f1, gold_logprob
    table: pd.DataFrame  # the 2 x N table
    paired: dict  # per variant: tuned - untuned; method@k - dense@k under each reader; both sides (tuned method - untuned dense); the interaction
    coupled: dict  # the coupled GainRAG at each k against its uncoupled version and dense, answered by the tuned reader
    validity: dict


def own_k(P: Params, method: str) -> int:
    """How many passages ``method``'s own stage showed the generator."""
    return {"gainrag": P.selector.top_k, "radio": P.radio.top_k}.get(method, P.rag.top_k)


def seam_contexts(P: Params, test: pd.DataFrame) -> dict[str, dict[str, list[str]]]:
    """variant -> qid -> context pids: no retrieval and the oracle as stage 03 passed them, and every ranked
    method's top ``k`` for each ``seam.ks``. A method's top ``k`` at its own stage's k must be the contexts
    that stage answered with: the rankings are the same artifacts, so a difference is a bug, not a choice."""
    qids = set(test.qid)
    baseline = artifacts.BASELINE_ANSWERS.read()
    contexts = {v: stage_contexts(baseline, v, qids) for v in UNRANKED}
    for method, ranking, answers in RANKED:
        ranked = top_pids(ranking.read().query("qid in @qids"))
        own = stage_contexts(answers.read(), method, qids)
        k = own_k(P, method)
        if {q: p[:k] for q, p in ranked.items()} != own:
            raise RuntimeError(f"{method}'s top {k} in {ranking.path} is not what {answers.stage} answered with: re-run {answers.stage}")
        for k in P.seam.ks:
            contexts[seam_variant(method, k)] = {q: p[:k] for q, p in ranked.items()}
    return contexts


def stage_contexts(answers: pd.DataFrame, variant: str, qids: set[str]) -> dict[str, list[str]]:
    """qid -> the context pids ``variant`` answered with in its own stage."""
    rows = answers[(answers.variant == variant) & answers.qid.isin(qids)]
    return {q: list(p) for q, p in zip(rows.qid, rows.context_pids, strict=True)}


def seam_table(paired: dict, summary: dict) -> pd.DataFrame:
    """One row per retriever-side variant: the gold-answer log-prob under each reader and the paired
    differences (tuned - untuned; variant - dense at the same k under each reader; the interaction)."""
    rows = {}
    for v, p in paired.items():
        rows[v] = {
            "untuned": summary[f"untuned:{v}"]["gold_logprob"]["mean"],
            "tuned": summary[f"tuned:{v}"]["gold_logprob"]["mean"],
            "tuned - untuned": p["tuned_minus_untuned"]["gold_logprob"],
            f"- {REFERENCE} (untuned)": p.get(f"minus_{REFERENCE}_untuned"),
            f"- {REFERENCE} (tuned)": p.get(f"minus_{REFERENCE}_tuned"),
            "interaction": p.get("interaction"),
        }
    return pd.DataFrame(rows).T


def run(P: Params) -> Result:
    seed_everything(P.training.seed)
    questions, passages = load_questions(), load_passages()
    test = questions[questions.split == "test"].reset_index(drop=True)
    lm = LM.from_params(P.models)
    tuned = LM(str(artifacts.READER.at()), lm.dtype, device=lm.device)
    store = PassageStore(passages, lm, P.rag.max_passage_tokens)
    pseudo = artifacts.PSEUDO.read()
    ptext = pseudo_texts(pseudo)

    def text_of(pid: str) -> str:  # pseudo-passages as stage 05 passed them, corpus passages as the store cuts them
        return ptext[pid] if is_pseudo(pid) else store[pid]

    def answer(model: LM, reader: str, variant: str, ctx: dict[str, list[str]]) -> pd.DataFrame:
        rows = answer_questions(model, test, ctx, store, f"{reader}:{variant}", P.rag.max_new_tokens, context_texts=context_texts(ctx, text_of))
        return rows.assign(reader=reader)

    contexts = seam_contexts(P, test)
    answers = [answer(model, reader, v, ctx) for v, ctx in contexts.items() for reader, model in zip(READERS, (lm, tuned), strict=True)]
    answering = {"llm_evaluations": lm.evaluations + tuned.evaluations, "llm_forward_tokens": lm.forward_tokens + tuned.forward_tokens}

    # ---- both sides: GainRAG with the tuned reader as its teacher --------------------------------
    labels_untuned = artifacts.GAIN_LABELS.read()
    train = questions[questions.qid.isin(set(labels_untuned.qid))]
    dense = artifacts.DENSE.read()
    coupled, validity = {}, {}
    if P.reader.coupled:
        pairs = build_pairs(train, dense, P.gain.k, store, pseudo)
        labels = label_table(pairs, score_pairs(tuned, pairs, P.gain.alpha, desc="gain labels (tuned teacher)"), dense, train)
        coupled["labelling_cost"] = planned_cost(tuned, pairs)  # from the plan: the gain cache's hits never change it
        selector_text = passage_texts(passages) | ptext
        groups = selector_groups(labels, train, selector_text, P.training.group_size, P.training.seed, temperature=P.selector.temperature)
        selector, curve = train_reranker(P.models.encoder, groups, P.training, desc="coupled selector", prior_max_length=P.retrieval.max_length)
        ranking = rerank(selector, test, selector_candidates(dense, P.selector.top_n, pseudo), selector_text, COUPLED, desc="coupled selector", priors=dense)
        answers += [answer(tuned, "tuned", seam_variant(COUPLED, k), top_contexts(ranking, k)) for k in P.seam.ks]
        best_u, best_t = best_gain_summary(labels_untuned), best_gain_summary(labels)
        both = best_u.merge(best_t, on="qid", suffixes=("_untuned", "_tuned"))
        coupled["best_gain_is_gold"] = {
            "untuned_teacher": round(float(both.is_gold_untuned.mean()), 4),
            "tuned_teacher": round(float(both.is_gold_tuned.mean()), 4),
            "difference": with_verdict(paired_interval((both.is_gold_tuned.astype(float) - both.is_gold_untuned.astype(float)).to_numpy(), P.rag.n_bootstrap, P.data.seed)),
        }
        coupled["label_mean"] = {"untuned_teacher": round(float(labels_untuned.label.mean()), 4), "tuned_teacher": round(float(labels.label.mean()), 4)}
        validity["coupled_selector_heldout_loss"] = loss_gate(curve, P.rag.n_bootstrap, P.data.seed)
        validity["coupled_selector_vs_dense_ranking"] = ranker_gate(drop_pseudo(ranking), dense[dense.qid.isin(set(test.qid))], test, n_boot=P.rag.n_bootstrap, seed=P.data.seed)
        artifacts.COUPLED_LABELS.write(labels.drop(columns=["kind"]))
        artifacts.COUPLED_RANKINGS.write(ranking)

    answers = pd.concat(answers, ignore_index=True)
    summary = summarise(answers, P.rag.n_bootstrap, seed=P.data.seed)
    by = {v: df for v, df in answers.groupby("variant", sort=False)}
    n_boot, seed, margin = P.rag.n_bootstrap, P.data.seed, P.rag.equivalence_margin
    paired = pair_variants(by, list(contexts), n_boot, seed, margin)
    if P.reader.coupled:
        coupled["vs_uncoupled"] = {str(k): paired_outcomes(by[f"tuned:{seam_variant(COUPLED, k)}"], by[f"tuned:{seam_variant('gainrag', k)}"], n_boot, seed, margin) for k in P.seam.ks}
        coupled["both"] = {  # RA-DIT's "both sides" cell: the coupled selector's contexts, tuned reader, against dense and the untuned generator
            str(k): with_verdict(paired_difference(by[f"tuned:{seam_variant(COUPLED, k)}"], by[f"untuned:{seam_variant(REFERENCE, k)}"], "gold_logprob", n_boot, seed), margin)
            for k in P.seam.ks
        }
        coupled["vs_dense"] = {str(k): paired_outcomes(by[f"tuned:{seam_variant(COUPLED, k)}"], by[f"tuned:{seam_variant(REFERENCE, k)}"], n_boot, seed, margin) for k in P.seam.ks}
    table = seam_table(paired, summary)
    artifacts.SEAM_ANSWERS.write(answers)
    artifacts.SEAM_METRICS.write(
        {**summary, "ks": list(P.seam.ks), "paired": paired, "coupled": coupled, "validity": validity,
         "cost": {"answering": answering, "coupled_labelling": coupled.get("labelling_cost")}}
    )
    return Result(test, answers, summary, table, paired, coupled, validity)
