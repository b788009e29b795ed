"""Stage 11: the study's headline table: every variant under one generator, corpus and budget, with
the gold-answer likelihood, paired same-k differences, validity gates, build cost and the RAG-E audit."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ragalign.core import artifacts
from ragalign.core.data import load_questions
from ragalign.core.params import Params
from ragalign.core.probes import avx2_factor
from ragalign.report.control import control_block
from ragalign.report.seam import powered_block, seam_curve_block, seam_markdown
from ragalign.report.summary import (
    AUDITED,
    TUNED_AUDIT,
    VARIANT_SOURCES,
    alignment_columns,
    build_costs,
    computed_in_text,
    failed_gates_text,
    inject_readme,
    markdown_table,
    paired_table,
    timings_table,
    validity_gates,
    variant_rows,
    verdict_column,
)


@dataclass
class Result:
    test: pd.DataFrame
    table: pd.DataFrame  # one row per variant (display name), with its stage
    paired: pd.DataFrame  # every paired gold-log-prob comparison
    gates: dict
    gate_line: str  # the failed gates, as the README says them
    headline: str  # the markdown table
    caption: str
    n_audit: int
    p_warg: float
    margin: float  # rag.equivalence_margin (nats of gold-answer log-prob)
    seam: str  # the 2 x N table (which side of the seam), markdown
    powered: dict  # stage 13's metrics: the key rows on fresh questions
    seam_curve: dict  # stage 14's metrics: every learner at equal budgets
    reader: dict  # stage 08's metrics: the tuned reader against the untuned generator
    audit_paired: dict  # audited variant (display name) -> RAG-E measure -> paired difference against dense (stage 10's metrics)
    failure_ranges: dict  # stage 10's ranges of the failure rates over its audited variants (the ranges report 10 quotes)
    mde_range: tuple[float, float]  # smallest detectable difference of the paired comparisons that differ, lowest and highest


HEADLINE_COLUMNS = [
    ("gold_logprob", "gold-answer log-prob [95% CI]"),
    ("d_reranker", "− relevance reranker, same k [95% CI]"),
    ("d_dense", "− dense, same k [95% CI]"),
    ("vs_dense", "vs dense, same k (equivalence ±{m:g})"),
    ("em", "EM [95% CI]"),
    ("f1", "F1 [95% CI]"),
    ("gold_recall", "gold passages shown"),
    ("warg", "WARG@{p}"),
    ("wasted_retrieval", "wasted retrieval"),
    ("noise_distraction", "noise distraction"),
    ("llm_evaluations", "LLM evals to build"),
]


def run(P: Params, readme: str = "README.md") -> Result:
    test = load_questions(split="test")
    metrics = {name: a.read() for name, a in artifacts.METHOD_METRICS.items()}
    audit = artifacts.AUDIT_METRICS.read()
    answers = pd.concat([a.read() for a in artifacts.ANSWER_TABLES], ignore_index=True)
    answers = answers[answers.variant.isin(VARIANT_SOURCES)]
    p_warg = P.rag_e.warg_p[len(P.rag_e.warg_p) // 2]

    table = variant_rows(answers, test, P.rag.n_bootstrap, seed=P.data.seed)
    margin = P.rag.equivalence_margin
    paired = paired_table(answers, "gold_logprob", P.rag.n_bootstrap, P.data.seed, margin)
    for kind in ("reranker", "dense"):
        d = paired[paired.kind == kind].set_index("variant")[["mean", "lo", "hi"]]
        table = table.join(d.rename(columns={"mean": f"d_{kind}", "lo": f"d_{kind}_lo", "hi": f"d_{kind}_hi"}))
    table["vs_dense"] = verdict_column(paired, "dense", margin).reindex(table.index)
    reader, seam_metrics = artifacts.READER_METRICS.read(), artifacts.SEAM_METRICS.read()
    gates = validity_gates(metrics | {"reader": reader, "seam": seam_metrics})
    seam = seam_markdown(seam_metrics, margin, audit.get("variants", {}).get(TUNED_AUDIT), reader)
    table = table.join(pd.DataFrame(build_costs(metrics)).T)
    align = pd.DataFrame(alignment_columns(audit, p_warg)).T
    align = align[align.index.isin(list(AUDITED.values()))]  # the headline's generator; the tuned reader's audit is in the seam block
    align.index = [next(v for v, a in AUDITED.items() if a == name) for name in align.index]
    table = table.join(align)
    table["stage"] = [VARIANT_SOURCES[v][0] for v in table.index]
    table.index = pd.Index([VARIANT_SOURCES[v][1] for v in table.index], name="variant")

    columns = [(c, h.format(p=f"{p_warg:g}", m=margin)) for c, h in HEADLINE_COLUMNS]
    headline = markdown_table(table.drop(columns=["stage"]), columns)
    n_audit = audit["config"]["n_questions"]
    caption = (
        f"{len(test)} test questions ({P.data.dataset}); the generator sees {P.selector.top_k} passage(s) in the GainRAG variants and "
        f"dense top-1, {P.radio.top_k} in RADIO and {P.rag.top_k} elsewhere; gold passages shown = mean share of a question's gold passages in the "
        f"generator's context; WARG and failure rates from the RAG-E audit of {n_audit} questions per variant (each variant's own "
        "context; – = not audited or one document); build cost excludes answering the test split. Gold-answer log-prob = the generator's mean token "
        "log-probability of the gold answer after the variant's prompt (best over gold answers); the two difference columns pair "
        "each method with the relevance reranker and with dense retrieval showing the same number of passages (GainRAG: the "
        "relevance reranker on the same candidates, and dense top-1). vs dense: beats / worse when the paired 95% interval "
        f"excludes 0, equivalent when it lies inside ±{margin:g} nats, not told apart (inconclusive) otherwise, identical when "
        "both showed the same passages. Generated by stage 11_summary."
    )
    gate_line = failed_gates_text(gates)
    numerics = artifacts.NUMERICS.read()
    computed_in = computed_in_text(numerics, artifacts.HOST.read() if artifacts.HOST.exists() else None)

    summary = {
        "variants": {
            name: {k: (None if pd.isna(v) else (int(v) if k in ("n", "llm_evaluations", "llm_tokens") else round(float(v), 4))) for k, v in row.drop(["stage", "vs_dense"]).items()}
            | {"stage": row.stage, "verdict_vs_dense": None if pd.isna(row.vs_dense) else row.vs_dense}
            for name, row in table.iterrows()
        },
        "paired_gold_logprob": paired.round(4).to_dict(orient="records"),
        "equivalence_margin": margin,
        "numerics": numerics,
        "validity": {"gates": gates, "failed": [g for g, v in gates.items() if not v.get("passed", False)]},
        "warg_p": p_warg,
        "n_test": len(test),
        "n_audited": n_audit,
        "seam": {v: {"tuned_minus_untuned": p["tuned_minus_untuned"]["gold_logprob"], "interaction": p.get("interaction")} for v, p in seam_metrics["paired"].items()},
    }
    artifacts.SUMMARY_METRICS.write(summary)
    artifacts.HEADLINE.write(headline + "\n" + caption + "\n")
    # wall times go to the README only, never into the report: they change from run to run
    inject_readme(readme, timings_table(float32_factor=avx2_factor()), name="timings")
    figures = "\n\n![variants](figures/summary_variants.png)\n![cost and alignment](figures/summary_cost_alignment.png)\n"
    inject_readme(readme, computed_in + "\n\n" + gate_line + "\n\n" + headline + "\n" + caption + figures)
    inject_readme(readme, seam, name="seam")
    powered = artifacts.POWERED_METRICS.read()
    inject_readme(readme, powered_block(powered), name="powered")
    seam_curve = artifacts.SEAM_CURVE_METRICS.read()
    inject_readme(readme, seam_curve_block(seam_curve), name="seam_curve")
    inject_readme(readme, control_block(artifacts.CURVE_METRICS.read()), name="control")
    blocks = audit.get("variants", {})
    audit_paired = {VARIANT_SOURCES[v][1]: blocks[a]["paired_vs_dense"] for v, a in AUDITED.items() if blocks.get(a, {}).get("paired_vs_dense")}
    differing = paired[(paired.kind != "retrieval") & ~paired.identical].mde  # identical contexts say nothing about power
    mde_range = (float(differing.min()), float(differing.max())) if len(differing) else (float("nan"), float("nan"))
    return Result(test, table, paired, gates, gate_line, headline, caption, n_audit, p_warg, margin, seam, powered, seam_curve, reader, audit_paired,
                  audit.get("failure_ranges") or {}, mde_range)
