"""Stage 07: FiGRet. Rounds of LLM feedback (relevance, comprehensiveness, purity) train the
bi-encoder with a dual curriculum; the final retriever re-indexes the corpus and serves the test set."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ragalign.core import artifacts
from ragalign.core.data import load_splits
from ragalign.core.lm import LM
from ragalign.core.params import Params
from ragalign.core.rag import PassageStore, answer_questions, build_cost, summarise
from ragalign.core.retrieval import DenseEncoder, corpus_strings, dense_search, retrieval_quality, to_ranking, top_pids
from ragalign.core.seed import seed_everything
from ragalign.core.validity import chance_gate, loss_gate, ranker_gate
from ragalign.core.verdicts import paired_outcomes
from ragalign.methods.figret.examples import examples_table
from ragalign.methods.figret.judge import judge_auc, judge_auc_interval
from ragalign.methods.figret.rounds import round_table, run_ablations, run_rounds
from ragalign.methods.figret.training import search_pool


@dataclass
class Result:
    test: pd.DataFrame
    ks: list[int]
    sizes: pd.Series  # questions examined, pool sizes, corpus
    history: pd.DataFrame  # recall per round and pool
    per_round: pd.DataFrame
    examples: pd.DataFrame
    judged: pd.DataFrame  # every judged passage, with its round
    sets: pd.DataFrame  # every judged passage set, with its round
    curves: pd.DataFrame  # training curves, with their round
    auc: dict  # the judge's AUC, gold vs non-gold, per judgement
    quality: dict  # figret / dense -> recall@k, mrr on the whole corpus (test)
    answers: pd.DataFrame
    summary: dict  # FiGRet's em, f1, gold_logprob
    baselines: dict  # the stage-03 dense and reranker summaries
    diff: dict  # metric -> paired difference, FiGRet minus dense
    diff_reranker: dict  # gold log-prob, FiGRet minus the relevance reranker
    validity: dict
    ablations: pd.DataFrame
    q0: dict  # the stage-02 retriever's quality in the test pool
    evaluations: int
    forward_tokens: int

    @property
    def separation(self) -> pd.DataFrame:
        """The judge's mean relevance and purity log-odds for gold and non-gold passages, and its mean
        comprehensiveness for complete minus incomplete passage sets."""
        judged, sets = self.judged, self.sets
        out = pd.DataFrame({"relevance": judged.groupby("is_gold").relevance.mean(), "purity": judged.groupby("is_gold").purity.mean()})
        out = out.rename(index={True: "gold", False: "non-gold"})
        out.loc["complete set / incomplete set", "comprehensiveness"] = sets[sets.complete].comprehensiveness.mean() - sets[~sets.complete].comprehensiveness.mean()
        return out.round(3)

    @property
    def examples_by_objective(self) -> pd.DataFrame:
        """Examples per round and objective: how many, over how many questions, their mean margin and negatives."""
        return self.examples.groupby(["round", "objective"]).agg(
            n=("qid", "size"), questions=("qid", "nunique"), mean_margin=("margin", "mean"), negatives=("n_negatives", "mean")
        ).round(3)

    @property
    def objective_counts(self) -> dict[str, int]:
        """How many examples each objective got, over all rounds."""
        return {str(k): int(v) for k, v in self.examples.objective.value_counts().items()}


def run(P: Params) -> Result:
    F = P.figret
    seed_everything(P.training.seed)
    train, test, passages = load_splits()
    corpus = corpus_strings(passages)
    passage_text = dict(zip(passages.pid, corpus, strict=True))
    row_of = {p: i for i, p in enumerate(passages.pid)}
    dense, passage_emb = artifacts.DENSE.read(), artifacts.PASSAGE_EMB.read()
    dense_ranked = top_pids(dense)
    lm = LM.from_params(P.models)
    store = PassageStore(passages, lm, P.rag.max_passage_tokens)

    # the train questions FiGRet examines each round (a seeded sample, the same in every round)
    examined = train.sample(n=min(F.n_questions, len(train)), random_state=P.training.seed).sort_values("qid")
    # Re-embedding the 15k-passage corpus costs minutes, so between rounds and for the ablations the
    # retriever searches candidate pools; only the final retriever re-indexes the whole corpus.
    # train pool: the examined questions' stage-02 dense top-k and their gold passages (labels are
    # legitimately available in train); test pool: the test questions' stage-02 dense top `figret.pool_k`
    # (no labels; in it, recall@k of the stage-02 retriever equals its full-index recall for k <= pool_k).
    train_pool = sorted({p for q in examined.qid for p in dense_ranked[q]} | {p for g in examined.gold_pids for p in g})
    test_pool = sorted({p for q in test.qid for p in dense_ranked[q][: F.pool_k]})
    ks = sorted({1, 2, P.rag.top_k, 10} & set(range(1, P.retrieval.k + 1)))
    train_kwargs = dict(epochs=P.training.epochs, lr=F.lr, batch_size=P.training.batch_size, temperature=F.temperature, val_fraction=P.training.val_fraction, seed=P.training.seed)

    def fresh_encoder() -> DenseEncoder:
        return DenseEncoder(P.models.encoder, P.retrieval.max_length, autocast=P.numerics().retrieval_autocast)

    encoder = fresh_encoder()
    base = search_pool(encoder, test, test_pool, passage_text, P.retrieval.k, "figret", P.retrieval.encode_batch_size, pool_emb=passage_emb[[row_of[p] for p in test_pool]])
    q0 = retrieval_quality(base, test, ks)
    history = [{"round": 0, "split": "test (pool)", **q0}]
    history.append({"round": 0, "split": "train examined (pool)", **retrieval_quality(dense[dense.qid.isin(examined.qid)], examined, ks)})
    rounds, later = run_rounds(
        lm,
        encoder,
        examined,
        {q: dense_ranked[q] for q in examined.qid},
        store,
        passage_text,
        n_rounds=F.rounds,
        pools={"train examined (pool)": (examined, train_pool), "test (pool)": (test, test_pool)},
        ks=ks,
        search_k=P.retrieval.k,
        encode_batch_size=P.retrieval.encode_batch_size,
        judge=dict(top_k=P.rag.top_k, k=F.k, n_negatives=F.n_negatives, judge_batch=F.judge_batch, max_new_tokens=P.rag.max_new_tokens),
        train=train_kwargs,
    )
    history = pd.concat([pd.DataFrame(history), later], ignore_index=True)
    examples = pd.concat([examples_table(rd.examples) for rd in rounds], ignore_index=True)
    judged = pd.concat([rd.passages.assign(round=rd.round) for rd in rounds], ignore_index=True)
    sets = pd.concat([rd.sets.assign(round=rd.round) for rd in rounds], ignore_index=True)
    curves = pd.concat([rd.curve.assign(round=rd.round) for rd in rounds], ignore_index=True)
    auc = judge_auc(judged)

    # the final retriever on the whole corpus
    new_emb = encoder.embed(corpus, P.retrieval.encode_batch_size, desc="re-embed corpus")
    idx, scores = dense_search(new_emb, encoder.embed(test.question.tolist(), P.retrieval.encode_batch_size), P.retrieval.k)
    ranking = to_ranking(test.qid, idx, scores, passages.pid, "figret")
    quality = {"figret": retrieval_quality(ranking, test, ks), "dense": retrieval_quality(dense[dense.qid.isin(test.qid)], test, ks)}
    built = build_cost(lm.evaluations, lm.forward_tokens)  # rounds and judgements: what building FiGRet cost
    answers = answer_questions(lm, test, top_pids(ranking, P.rag.top_k), store, "figret", P.rag.max_new_tokens)
    summary = summarise(answers, P.rag.n_bootstrap, seed=P.data.seed)["figret"]
    base_answers = artifacts.BASELINE_ANSWERS.read()
    baselines = summarise(base_answers[base_answers.variant.isin(["dense", "reranker"])], P.rag.n_bootstrap, seed=P.data.seed)
    n_boot, seed, margin = P.rag.n_bootstrap, P.data.seed, P.rag.equivalence_margin
    diff = paired_outcomes(answers, base_answers[base_answers.variant == "dense"], n_boot, seed, margin)
    diff_reranker = paired_outcomes(answers, base_answers[base_answers.variant == "reranker"], n_boot, seed, margin)["gold_logprob"]
    auc_interval = judge_auc_interval(judged, n_boot, seed)
    validity = {
        "retriever_vs_dense_ranking": ranker_gate(ranking, dense[dense.qid.isin(test.qid)], test, n_boot=n_boot, seed=seed),
        "judge_relevance_vs_chance": chance_gate(auc_interval["relevance"]),
        "judge_purity_vs_chance": chance_gate(auc_interval["purity"]),
        # each round's retriever against the weights it started from, on its held-out examples (the keep rule)
        **{f"retriever_heldout_loss_round_{rd.round}": loss_gate(rd.curve, n_boot, seed) for rd in rounds if rd.curve is not None},
    }

    if F.ablations:  # one round from the stage-02 weights on the round-1 examples, in the test pool
        abl, _ = run_ablations(fresh_encoder, rounds[0].examples, passage_text, test, test_pool, k=P.retrieval.k, ks=ks, encode_batch_size=P.retrieval.encode_batch_size, **train_kwargs)
        q1 = history[(history["round"] == 1) & (history.split == "test (pool)")].drop(columns=["round", "split"]).iloc[0].to_dict()
        ref = [{"variant": "stage-02 dense", **q0, "n_examples": 0}, {"variant": "dual curriculum, all objectives", **q1, "n_examples": len(rounds[0].examples)}]
        abl = pd.concat([pd.DataFrame(ref), abl], ignore_index=True)
    else:
        abl = pd.DataFrame(columns=["variant", *[f"recall@{k}" for k in ks], "mrr", "n_examples"])

    per_round = round_table(rounds)
    encoder.save(artifacts.FIGRET_RETRIEVER.path)
    artifacts.FIGRET_RANKINGS.write(ranking)
    artifacts.FIGRET_ANSWERS.write(answers)
    artifacts.FIGRET_EXAMPLES.write(examples)
    artifacts.FIGRET_METRICS.write(
        {
            "test": {
                "retrieval": quality,
                "answers": {"figret": summary, **baselines},
                "paired_difference_vs_dense": diff,
                "paired_gold_logprob_vs_reranker": diff_reranker,
            },
            "validity": validity,
            "build_cost": {"figret": built},
            "rounds": history.to_dict(orient="records"),
            "per_round": per_round.to_dict(orient="records"),
            "judge_auc_gold_vs_nongold": auc,
            "judge_auc_interval": auc_interval,
            "ablations_one_round_test_pool": abl.to_dict(orient="records"),
            "pools": {"train": len(train_pool), "test": len(test_pool)},
            "cost": {"llm_evaluations": lm.evaluations, "llm_forward_tokens": lm.forward_tokens},
        }
    )
    sizes = pd.Series({"train questions examined": len(examined), "train pool": len(train_pool), "test pool": len(test_pool), "corpus": len(passages)})
    return Result(test, ks, sizes, history, per_round, examples, judged, sets, curves, auc, quality, answers, summary, baselines, diff, diff_reranker, validity, abl, q0, lm.evaluations, lm.forward_tokens)
