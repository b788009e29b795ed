import pandas as pd
import pytest

from ragalign.report.summary import (
    context_gold_recall,
    inject_readme,
    markdown_table,
    paired_table,
    readme_block,
    same_contexts,
    says,
    timings_table,
    variant_rows,
    verdict_column,
)


def answers_fixture():
    return pd.DataFrame(
        {
            "qid": ["a", "b", "a", "b"],
            "variant": ["x", "x", "y", "y"],
            "context_pids": [["g1"], ["n"], ["g1", "g2"], ["g3"]],
            "answer": ["", "", "", ""],
            "em": [1.0, 0.0, 1.0, 1.0],
            "f1": [1.0, 0.5, 1.0, 1.0],
            "gold_logprob": [-1.0, -3.0, -0.5, -0.5],
        }
    )


QUESTIONS = pd.DataFrame({"qid": ["a", "b"], "gold_pids": [["g1", "g2"], ["g3"]]})


def test_context_gold_recall_per_variant():
    recall = context_gold_recall(answers_fixture(), QUESTIONS)
    assert recall.to_dict() == {"x": pytest.approx(0.25), "y": pytest.approx(1.0)}


def test_variant_rows_and_markdown():
    table = variant_rows(answers_fixture(), QUESTIONS, 100, 0)
    assert table.loc["x", "em"] == 0.5 and table.loc["y", "f1"] == 1.0 and table.loc["x", "gold_logprob"] == -2.0
    md = markdown_table(table, [("em", "EM"), ("f1", "F1"), ("gold_recall", "gold recall")])
    assert md.splitlines()[0] == "| variant | EM | F1 | gold recall |"
    assert "| y | 1.000 [1.000, 1.000] | 1.000 [1.000, 1.000] | 1.000 |" in md


def test_readme_injection_round_trip(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:begin -->\nold\n<!-- results:end -->\noutro\n")
    assert inject_readme(readme, "| new |\n")
    assert readme_block(readme) == "| new |"
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("outro\n")
    assert not inject_readme(readme, "| new |\n")
    (tmp_path / "bad.md").write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        inject_readme(tmp_path / "bad.md", "x")


def test_timings_table_names_the_variants_each_stage_builds(tmp_path):
    (tmp_path / "03_rag_baselines.json").write_text('{"stage": "03_rag_baselines", "wall_s": 300.0, "peak_rss_mib": 2048, "cold": true, "cache": {"lm": {"hits": 0, "computed": 9}}}')
    (tmp_path / "05_selector_training.json").write_text('{"stage": "05_selector_training", "wall_s": 90.0, "peak_rss_mib": 1024, "cold": false, '
                                                         '"cache": {"lm": {"hits": 1200, "computed": 3}}, "last_cold": {"wall_s": 600.0, "peak_rss_mib": 3072}}')
    (tmp_path / "07_figret.json").write_text('{"stage": "07_figret", "wall_s": 60.0, "peak_rss_mib": 1024}')
    lines = timings_table(tmp_path).splitlines()
    assert lines[2].startswith("| 03_rag_baselines | no retrieval, oracle (gold passages), BM25 top-k, dense top-k, relevance reranker | 5.0 min | cold | 5.0 min | 2.0 GiB |")
    assert "GainRAG, α = 0" in lines[3] and "| 1.5 min | warm (1,200 values from the cache) | 10.0 min | 3.0 GiB |" in lines[3]
    assert "| 1.0 min | not recorded | – |" in lines[4]
    assert lines[-1] == "| **total** | | **7.5 min** | not all cold | incomplete | |"
    (tmp_path / "07_figret.json").unlink()
    assert "| **total** | | **6.5 min** | not all cold | **15.0 min** | |" in timings_table(tmp_path).splitlines()
    host = '"host": {"cpu": "Xeon", "capability": "AVX512", "dtype": "bfloat16"}'
    for name, text in (("03_rag_baselines", '{"stage": "03_rag_baselines", "wall_s": 300.0, "peak_rss_mib": 2048, "cold": true, ' + host + "}"),
                       ("05_selector_training", '{"stage": "05_selector_training", "wall_s": 90.0, "peak_rss_mib": 1024, "cold": false, '
                                                '"last_cold": {"wall_s": 600.0, "peak_rss_mib": 3072, ' + host + "}}")):
        (tmp_path / f"{name}.json").write_text(text)
    text = timings_table(tmp_path, float32_factor=4.0)
    assert "A cold run of these stages: **15 min** on Xeon (AVX512, bfloat16)." in text
    assert "takes 4.0x as long" in text and "at least **1.0 h** on an AVX2-only CPU" in text


def test_headline_figure_marks_references_and_colours_verdicts(tmp_path):
    from matplotlib.colors import to_rgba

    from ragalign.report import figures

    table = pd.DataFrame(
        {"stage": ["03_rag_baselines", "03_rag_baselines", "03_rag_baselines", "05_selector_training"],
         "gold_logprob": [-4.7, -2.9, -3.9, -4.4], "gold_logprob_lo": [-5.2, -3.4, -4.4, -4.9], "gold_logprob_hi": [-4.3, -2.5, -3.4, -4.0]},
        index=["no retrieval", "oracle (gold passages)", "dense top-k", "GainRAG"],
    )
    paired = pd.DataFrame(
        {"variant": ["reranker", "gainrag"], "reference": ["dense", "dense_top1"], "kind": ["dense", "dense"],
         "mean": [0.1, -0.2], "lo": [0.05, -0.3], "hi": [0.2, 0.1]}
    )
    fig = figures.headline_figure(table, paired, tmp_path / "f.png")
    left, right = fig.axes[:2]
    assert (tmp_path / "f.png").exists()
    assert sorted(line.get_xdata()[0] for line in left.lines if line.get_label() in figures.REFERENCES) == [-4.7, -2.9]
    assert [t.get_text() for t in left.get_yticklabels()] == ["no retrieval", "GainRAG", "dense top-k", "oracle (gold passages)"]
    points = list(right.containers)  # one errorbar per comparison, bottom to top
    assert [to_rgba(c.lines[0].get_color()) for c in points] == [to_rgba("tab:green"), to_rgba("grey")]


def paired_fixture() -> pd.DataFrame:
    """dense vs no retrieval: +1 everywhere; reranker: dense's contexts; radio: within ±0.05 of dense; figret: ±0.5 noise."""
    rows = []
    for i in range(40):
        q, wiggle = f"q{i}", (-1) ** i
        rows += [
            {"qid": q, "variant": "no_retrieval", "context_pids": [], "gold_logprob": -3.0},
            {"qid": q, "variant": "dense", "context_pids": ["a", "b"], "gold_logprob": -2.0},
            {"qid": q, "variant": "reranker", "context_pids": ["a", "b"], "gold_logprob": -2.0},
            {"qid": q, "variant": "radio", "context_pids": ["b", "a"], "gold_logprob": -2.0 + 0.01 * wiggle},
            {"qid": q, "variant": "figret", "context_pids": ["c", "a"], "gold_logprob": -2.0 + 0.5 * wiggle + 0.1 * (i % 3)},
        ]
    return pd.DataFrame(rows)


def test_paired_table_judges_every_comparison_against_the_margin():
    paired = paired_table(paired_fixture(), "gold_logprob", 300, 0, margin=0.1)
    got = paired.set_index(["variant", "reference"]).verdict.to_dict()
    assert got[("dense", "no_retrieval")] == "beats"
    assert got[("reranker", "dense")] == "identical" and got[("radio", "dense")] == "equivalent" and got[("figret", "dense")] == "not told apart"
    column = verdict_column(paired, "dense", 0.1)
    assert column.to_dict() == {"reranker": "identical", "radio": "equivalent within ±0.1", "figret": "not told apart (inconclusive)"}
    assert says(paired, "radio", "dense", 0.1).startswith("RADIO is equivalent to dense top-k within ±0.1")
    assert says(paired, "dense", "no_retrieval").startswith("dense top-k beats no retrieval (+1.000")


def test_same_contexts_compares_the_passages_shown():
    answers = paired_fixture()
    by = dict(tuple(answers.groupby("variant")))
    assert same_contexts(by["dense"], by["reranker"]) and not same_contexts(by["dense"], by["radio"])  # order matters
    assert not same_contexts(by["dense"].drop(columns="context_pids"), by["reranker"])


def test_markdown_table_writes_verdict_cells_as_words():
    table = pd.DataFrame({"vs_dense": ["equivalent within ±0.1", None]}, index=["radio", "dense"])
    md = markdown_table(table, [("vs_dense", "vs dense")])
    assert "| radio | equivalent within ±0.1 |" in md and "| dense | – |" in md


def test_verdict_colours_follow_the_verdict_word():
    from ragalign.report.figures import verdict_color

    assert verdict_color({"verdict": "equivalent", "mean": 0.0, "lo": -0.05, "hi": 0.05}) == "tab:blue"
    assert verdict_color({"mean": -0.2, "lo": -0.3, "hi": -0.1}) == "tab:red"  # no verdict yet: judged without a margin
    assert verdict_color({"verdict": "identical", "mean": 0.0, "lo": 0.0, "hi": 0.0}) == "silver"


def test_the_results_name_their_numerics_and_machine():
    from ragalign.report.summary import computed_in_text

    numerics = {"device": "cpu", "dtype": "float32", "retrieval_autocast": False, "training_autocast": False, "cpu_capability": "AVX2", "torch": "2.13.0+cpu"}
    host = {"host": {"cpu": {"model": "AMD EPYC 7B13", "family": 25, "model_number": 1, "capability": "AVX2", "bf16_flags": []}}}
    line = computed_in_text(numerics, host)
    assert line.startswith("*Computed in float32 on cpu (embedding autocast off, reranker-training autocast off; torch 2.13.0+cpu, AVX2 CPU kernels)")
    assert "AMD EPYC 7B13 (family 25, model 1; no native bf16)" in line
    assert "native bf16: avx512_bf16" in computed_in_text(numerics, {"host": {"cpu": host["host"]["cpu"] | {"bf16_flags": ["avx512_bf16"]}}})


def _difference(mean: float, lo: float, hi: float, word: str) -> dict:
    return {"mean": mean, "lo": lo, "hi": hi, "n": 100, "mde": 0.1, "identical": False, "verdict": word}


def test_the_seam_block_says_which_side_moved_from_the_numbers():
    """The 2 x N block of the README: rows in the study's order (unranked, then each k), every method paired
    with dense at its own k, verdict words from the metrics, and the lead naming, per k, the retriever-side
    methods that beat dense under the tuned reader (or none)."""
    from ragalign.core.artifacts import seam_variant
    from ragalign.report.seam import SEAM_METHODS, SEAM_NAMES, seam_markdown

    none = _difference(0.02, -0.05, 0.09, "equivalent")
    ranked = ["bm25", "dense", *SEAM_METHODS]
    variants = ["oracle", "no_retrieval"] + [seam_variant(m, k) for k in (5, 1) for m in ranked[::-1]]  # any order
    seam = {"ks": [1, 5], "paired": {}, "coupled": {}}
    for v in variants:
        seam[f"untuned:{v}"] = {"gold_logprob": {"mean": -4.0}}
        seam[f"tuned:{v}"] = {"gold_logprob": {"mean": -2.0}}
        seam["paired"][v] = {"tuned_minus_untuned": {"gold_logprob": _difference(2.0, 1.8, 2.2, "beats")}}
        if "@" in v and not v.startswith("dense"):
            seam["paired"][v] |= {"minus_dense_untuned": none, "minus_dense_tuned": none, "both": _difference(2.1, 1.9, 2.3, "beats"), "interaction": none}
    reader = {"reading": {"tuned": {"gap_change": _difference(0.4, 0.1, 0.7, "beats")}}}
    text = seam_markdown(seam, 0.1, reader=reader)
    assert "with dense top-1, the reader tuned on dense top-k beats the untuned generator (" in text
    assert "with dense top-5, the reader tuned on dense top-k beats" in text
    assert "at k = 1, no retriever-side method beats dense top-1" in text and "Does it read?" in text
    table = next(block for block in text.split("\n\n") if block.startswith("| retriever side"))
    rows = [line.split(" | ")[0].lstrip("| ") for line in table.splitlines()[2:]]
    names = [SEAM_NAMES[m] for m in ranked]
    assert rows == ["no retrieval", "oracle (gold passages)"] + [f"{n} top-1" for n in names] + [f"{n} top-5" for n in names]
    two_by_two = [line for line in text.splitlines() if line.startswith("| RADIO |")]
    assert two_by_two == ["| RADIO | +0.020 [-0.050, +0.090] equivalent | +2.000 [+1.800, +2.200] beats | +2.100 [+1.900, +2.300] beats | "
                          "+0.020 [-0.050, +0.090] equivalent |"]  # RA-DIT's 2 x 2 at the largest k: retriever alone, reader alone, both, interaction
    seam["paired"]["radio@5"]["minus_dense_tuned"] = _difference(0.3, 0.1, 0.5, "beats")
    text = seam_markdown(seam, 0.1, reader=reader)
    assert "at k = 5, RADIO beats dense top-5" in text and "at k = 1, no retriever-side method beats dense top-1" in text
