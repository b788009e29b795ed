"""Stage 08: generator alignment. The reader fine-tuned on what the dense retriever really returns
(``methods.reader``), gated against its untuned start, and measured on the test questions with no
passage, with the gold passages and with the dense top-k: does it read, or only know answers?"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from ragalign.core import artifacts
from ragalign.core.benchmarks import read_benchmark
from ragalign.core.data import load_benchmark, load_splits
from ragalign.core.lm import LM
from ragalign.core.metrics import paired_interval
from ragalign.core.params import Params
from ragalign.core.question_sets import reader_questions
from ragalign.core.rag import PassageStore, answer_questions, summarise
from ragalign.core.retrieval import rankings_of, top_pids
from ragalign.core.seed import seed_everything
from ragalign.core.training import HELDOUT
from ragalign.core.validity import loss_gate
from ragalign.core.verdicts import paired_outcomes, with_verdict
from ragalign.methods import reader

CONTEXTS = ("no_retrieval", "oracle", "dense")  # what the tuned reader is measured with on the test split
FAIR_CONTEXTS = ("dense",)  # the fair-budget reader's reported row
# The targets for the tuned reader (dense top-k log-prob gain in nats; EM with the gold passages).
TARGETS = {"dense_gain_nats": 1.3, "oracle_em": 0.15}


@dataclass
class Result:
    questions: pd.DataFrame  # the reader's training questions: qid, source (study train | benchmark), has_gold
    curves: pd.DataFrame  # step, epoch, split, loss, reader
    answers: pd.DataFrame  # the test answers: reader x context
    summary: dict  # "reader:context" -> em, f1, gold_logprob
    tuned_vs_untuned: dict  # reader -> context -> paired outcomes (tuned minus untuned)
    reading: dict  # reader -> paired (oracle - no retrieval) gap, and its change against the untuned reader
    targets: dict
    validity: dict
    timing: dict  # reader -> training seconds (wall time: shown in the report, never in the metrics file)

    @property
    def training_sets(self) -> pd.DataFrame:
        """Per set and source: how many training questions, and the share shown a gold passage."""
        return self.questions.groupby(["set", "source"]).agg(questions=("qid", "size"), shown_a_gold_passage=("has_gold", "mean")).round(3)

    @property
    def examples(self) -> pd.DataFrame:
        """Answers with the gold passages by the untuned and the tuned reader, a few test questions."""
        rows = self.answers[self.answers.variant.isin(["untuned:oracle", "tuned:oracle"])].head(10)
        return rows[["variant", "qid", "answer", "em", "f1", "gold_logprob"]]


def training_examples(P: Params, lm: LM, questions: pd.DataFrame, passages: pd.DataFrame) -> list[reader.Example]:
    """One example per training question (in ``questions`` order): the study's questions with their
    dense top-k (:func:`dense_contexts`), an extra benchmark's with their gold among same-article
    distractors; a share ``reader.p_no_gold`` of either without the gold passages, drawn within each
    ``set``, so the tuned reader's examples are the same with or without ``reader.fair_budget``."""
    R, k = P.reader, P.rag.top_k
    own = questions[questions.source != R.extra_dataset].drop_duplicates("qid")
    gold = dict(zip(own.qid, own.gold_pids, strict=True))
    ranked = dense_contexts(own)
    contexts: dict[str, list[str]] = {}
    for _, part in own.groupby("set", sort=True):  # RAFT's P drawn within each set: one set's draw never depends on another's
        contexts |= reader.training_contexts({q: ranked[q] for q in part.qid}, gold, k, R.p_no_gold, R.seed)
    corpus = passages
    extra = questions[questions.source == R.extra_dataset]
    if len(extra):
        _, extra_passages = read_benchmark(R.extra_dataset)
        contexts |= reader.distractor_contexts(extra, extra_passages, k, R.p_no_gold, R.seed)
        corpus = pd.concat([passages, extra_passages], ignore_index=True).drop_duplicates("pid")
    store = PassageStore(corpus, lm, P.rag.max_passage_tokens)
    return reader.reader_examples(lm, questions, contexts, store.__getitem__)


def dense_contexts(questions: pd.DataFrame, root: str = ".") -> dict[str, list[str]]:
    """qid -> stage 02's dense top ``retrieval.k`` of each question (it ranks every benchmark question)."""
    return top_pids(rankings_of(artifacts.DENSE.read(root), questions.qid))


def run(P: Params) -> Result:
    R = P.reader
    seed_everything(R.seed)
    train, test, passages = load_splits()
    lm = LM.from_params(P.models)
    store = PassageStore(passages, lm, P.rag.max_passage_tokens)
    questions = reader_questions(P, load_benchmark(), train, test)
    examples = training_examples(P, lm, questions, passages)
    questions["has_gold"] = [e.has_gold for e in examples]
    sets = {name: [e for e, s in zip(examples, questions.set, strict=True) if s == name] for name in questions.set.unique()}

    test_contexts = {"no_retrieval": {}, "oracle": dict(zip(test.qid, test.gold_pids, strict=True)), "dense": top_pids(artifacts.DENSE.read(), P.rag.top_k)}

    def answer_all(model: LM, name: str, contexts: Sequence[str] = CONTEXTS) -> pd.DataFrame:
        return pd.concat(
            [answer_questions(model, test, test_contexts[c], store, f"{name}:{c}", P.rag.max_new_tokens) for c in contexts], ignore_index=True
        ).assign(reader=name, context=lambda d: d.variant.str.split(":").str[1])

    answers = [answer_all(lm, "untuned")]
    curves, validity, timing, sizes = [], {}, {}, {}
    autocast = P.numerics().training_autocast
    for name, items in sets.items():
        started = pd.Timestamp.now()
        model, curve = reader.train_reader(
            P.models.generator, items, tune=R.tune, lr=R.lr, epochs=R.epochs, batch_size=R.batch_size, val_fraction=R.val_fraction,
            seed=R.seed, autocast=autocast, lora_r=R.lora_r, evals_per_epoch=R.evals_per_epoch, desc=f"reader ({name})",
        )
        held = curve.attrs[HELDOUT]
        timing[name] = {"train_s": round((pd.Timestamp.now() - started).total_seconds(), 1), "examples": len(items), "heldout_questions": len(set(held["qid"]))}
        print(f"reader ({name}): trained on {len(items)} examples in {timing[name]['train_s']} s", file=sys.stderr, flush=True)
        sizes[name] = {"examples": len(items), "heldout_questions": len(set(held["qid"]))}
        target = artifacts.READER if name == "tuned" else artifacts.FAIR_READER
        reader.save_reader(model, lm.tokenizer, target.path)
        del model
        tuned = LM(str(target.path), lm.dtype, device=lm.device)
        answers.append(answer_all(tuned, name, CONTEXTS if name == "tuned" else FAIR_CONTEXTS))
        curves.append(curve.assign(reader=name))
        validity[f"{name.replace(' ', '_')}_heldout_loss"] = loss_gate(curve, P.rag.n_bootstrap, P.data.seed)
    answers = pd.concat(answers, ignore_index=True)
    summary = summarise(answers, P.rag.n_bootstrap, seed=P.data.seed)
    by = {v: df for v, df in answers.groupby("variant", sort=False)}
    n_boot, seed, margin = P.rag.n_bootstrap, P.data.seed, P.rag.equivalence_margin
    tuned_vs_untuned = {
        name: {c: paired_outcomes(by[f"{name}:{c}"], by[f"untuned:{c}"], n_boot, seed, margin) for c in CONTEXTS if f"{name}:{c}" in by} for name in sets
    }
    gaps = {name: reader.reading_gap(answers[answers.reader == name]) for name in ("untuned", "tuned")}
    reading = {
        name: {
            "gap": with_verdict(paired_interval(gaps[name].to_numpy(), n_boot, seed), margin),
            **({"gap_change": with_verdict(paired_interval((gaps[name] - gaps["untuned"]).to_numpy(), n_boot, seed), margin)} if name != "untuned" else {}),
        }
        for name in gaps
    }
    main = tuned_vs_untuned["tuned"]
    dense_gain = main["dense"]["gold_logprob"]["mean"]
    oracle_em = summary["tuned:oracle"]["em"]["mean"]
    targets = {
        "dense_gain_nats": {"target": TARGETS["dense_gain_nats"], "value": dense_gain, "met": bool(dense_gain >= TARGETS["dense_gain_nats"])},
        "reads": {"target": "gold - no retrieval gap grows, interval excluding 0", "value": reading["tuned"]["gap_change"]["mean"],
                  "met": bool(reading["tuned"]["gap_change"]["lo"] > 0)},
        "oracle_em": {"target": TARGETS["oracle_em"], "value": oracle_em, "met": bool(oracle_em >= TARGETS["oracle_em"])},
    }
    curves = pd.concat(curves, ignore_index=True)
    questions = questions.drop(columns=["answers", "gold_pids"])
    artifacts.READER_QUESTIONS.write(questions)
    artifacts.READER_CURVE.write(curves)
    artifacts.READER_ANSWERS.write(answers)
    artifacts.READER_METRICS.write(
        {
            **summary,
            "training": {
                "tune": R.tune, "questions": questions.groupby(["set", "source"]).size().unstack(fill_value=0).to_dict(orient="index"),
                "shown_a_gold_passage": round(float(questions.has_gold.mean()), 4), "p_no_gold": R.p_no_gold, "sets": sizes,
                "autocast": autocast,
            },
            "tuned_vs_untuned": tuned_vs_untuned,
            "reading": reading,
            "targets": targets,
            "validity": validity,
            "cost": {"llm_evaluations": lm.evaluations, "llm_forward_tokens": lm.forward_tokens, "train_examples": int(sum(len(s) for s in sets.values()) * R.epochs)},
        }
    )
    return Result(questions, curves, answers, summary, tuned_vs_untuned, reading, targets, validity, timing)

