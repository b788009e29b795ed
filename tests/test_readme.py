"""The README says what the files say: its generated tables are current, and every other number in it is
checked here against the file it comes from (params.yaml, dvc.yaml, a library constant, a bench result)."""

import importlib
import json
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ragalign.core import probes
from ragalign.report.summary import readme_block

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = ROOT / "results" / "metrics" / "summary.json"


def parse_table(block: str) -> pd.DataFrame:
    rows = [line.strip().strip("|").split("|") for line in block.splitlines() if line.startswith("|")]
    header, body = [c.strip() for c in rows[0]], [[c.strip() for c in r] for r in rows[2:]]
    return pd.DataFrame(body, columns=header).set_index("variant")


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [["make", "study"], ["make", "test"]]


@pytest.mark.skipif(not SUMMARY.exists(), reason="no committed summary yet")
def test_readme_table_matches_summary_json():
    full = json.loads(SUMMARY.read_text())
    summary = full["variants"]
    failed = full["validity"]["failed"]
    opening, gates = readme_block(ROOT / "README.md").split("\n\n")[:2]
    numerics = full["numerics"]
    assert opening.startswith(f"*Computed in {numerics['dtype']} on {numerics['device']} ("), "the numerics open the results"
    assert gates.startswith(f"**{len(failed)} of" if failed else "All "), "the failed gates lead the table"
    table = parse_table(readme_block(ROOT / "README.md"))
    assert set(table.index) == set(summary)
    for variant, row in table.iterrows():
        s = summary[variant]
        assert row["gold-answer log-prob [95% CI]"] == f"{s['gold_logprob']:.3f} [{s['gold_logprob_lo']:.3f}, {s['gold_logprob_hi']:.3f}]"
        assert row["EM [95% CI]"] == f"{s['em']:.3f} [{s['em_lo']:.3f}, {s['em_hi']:.3f}]"
        assert row["F1 [95% CI]"] == f"{s['f1']:.3f} [{s['f1_lo']:.3f}, {s['f1_hi']:.3f}]"
        assert row["gold passages shown"] == f"{s['gold_recall']:.3f}"
        assert row["LLM evals to build"] == f"{s['llm_evaluations']:,}"
        for col, key in (("wasted retrieval", "wasted_retrieval"), ("noise distraction", "noise_distraction")):
            assert row[col] == ("–" if s[key] is None else f"{s[key]:.3f}")


# --- every number in the README is generated or checked against the file it comes from ----------

README = ROOT / "README.md"
GENERATED = ("results", "seam", "powered", "seam_curve", "control", "timings", "bench", "numerics")  # stage 11 writes the first five, bench/report.py the others
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)*(?:e-?\d+)?(?=(?:%|x)?(?!\w))")  # 3, 3.11, 2.13.0, 3e-4, 95(%), 10(x); not bf16, 00_numerics, L6


def bench_report():
    """bench/report.py as a module (bench/ is not a package: its scripts import each other by name)."""
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    return importlib.import_module("report")


def prose(text: str) -> str:
    """The README without its generated blocks and fenced code, whitespace collapsed."""
    for name in GENERATED:
        text = re.sub(f"<!-- {name}:begin -->.*?<!-- {name}:end -->", " ", text, flags=re.S)
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    return " ".join(text.split())


def stage_graph() -> tuple[dict, dict[str, set[str]]]:
    """dvc.yaml's stages and, per stage, the stages whose outputs it depends on."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = {(o if isinstance(o, str) else next(iter(o))).rstrip("/"): name for name, st in stages.items() for o in st.get("outs", []) + st.get("metrics", [])}

    def producers(dep: str) -> set[str]:
        dep = dep.rstrip("/")
        return {s for o, s in outs.items() if dep == o or dep.startswith(o + "/") or o.startswith(dep + "/")}

    ups = {name: set().union(*(producers(d) for d in st.get("deps", []))) - {name} for name, st in stages.items()}
    return stages, ups


def ancestors(ups: dict[str, set[str]], stage: str) -> set[str]:
    seen, todo = set(), list(ups[stage])
    while todo:
        s = todo.pop()
        if s not in seen:
            seen.add(s)
            todo.extend(ups[s])
    return seen


def by_number(stages) -> dict[str, str]:
    return {name[:2]: name for name in stages}


def stage_numbers(text: str) -> set[str]:
    """'00–03 + 07' or '04, 05, 06, 08 and 09' -> the two-digit stage numbers it names."""
    out = set()
    for a, b in re.findall(r"(\d\d)(?:–(\d\d))?", text):
        out |= {f"{i:02d}" for i in range(int(a), int(b or a) + 1)}
    return out


PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def _src(path: str) -> str:
    return (ROOT / path).read_text()


def _shared(name: str) -> str:
    """A file of the shared folder beside the clone (the data's description); skipped where it is absent."""
    path = ROOT.parent / "shared" / name
    if not path.exists():
        pytest.skip(f"no {path}")
    return path.read_text()


def need(ok: bool, why: str) -> None:
    assert ok, why


def z_power() -> float:
    return float(re.search(r"Z_ALPHA, Z_POWER = [\d.]+, ([\d.]+)", _src("lib/ragalign/core/metrics.py")).group(1))


def check_gain_alpha(m: re.Match) -> None:
    stages, ups = stage_graph()
    reads = {s for s, st in stages.items() if any(p == "gain.alpha" or "gain.alpha".startswith(p + ".") for p in st.get("params", []))}
    reached = reads | {s for s in stages if ancestors(ups, s) & reads}
    assert stage_numbers(m.group(1)) == {s[:2] for s in reached}, f"gain.alpha re-runs {sorted(reached)} (dvc.yaml)"


def check_variant_paths(m: re.Match) -> None:
    stages, ups = stage_graph()
    named = by_number(stages)
    g, r, why, f, t = stage_numbers(m.group(1)), stage_numbers(m.group(2)), m.group(3), stage_numbers(m.group(4)), stage_numbers(m.group(5))
    for said, last in ((g, "05"), (r, "06"), (f, "07"), (t, "08")):
        assert said == {s[:2] for s in ancestors(ups, named[last]) | {named[last]}}, f"{named[last]}'s path in dvc.yaml"
    assert any(d.startswith("results/gainrag") for d in stages[named[why]]["deps"]), "stage 06 reads GainRAG's answers"


def check_stage_refs(m: re.Match) -> None:
    stages, _ = stage_graph()
    assert {g for g in m.groups() if g} <= set(by_number(stages)), m.group(0)


def check_peak_stages(m: re.Match) -> None:
    """The stages the README names as the most memory-hungry are the ones with the highest recorded peaks."""
    peaks = {f.stem[:2]: json.loads(f.read_text()).get("peak_rss_mib", 0) for f in (ROOT / "results" / "timings").glob("[0-9][0-9]_*.json")}
    named = {g for g in m.groups() if g}
    need(named == set(sorted(peaks, key=peaks.get, reverse=True)[: len(named)]), f"the {len(named)} highest peaks in results/timings: {sorted(peaks.items(), key=lambda kv: -kv[1])[:3]}")


def check_arxiv(m: re.Match) -> None:
    cited = [p for d in ("lib", "notebooks") for p in (ROOT / d).rglob("*.py") if m.group(1) in p.read_text()]
    assert cited, f"arXiv {m.group(1)}: the method's module or notebook cites the same paper"


def check_training_budget(m: re.Match) -> None:
    t = PARAMS["training"]
    assert (int(m.group(1)), int(m.group(2)), float(m.group(3)), int(m.group(4))) == (t["epochs"], t["group_size"], t["lr"], t["batch_size"])
    assert float(m.group(5)) == PARAMS["figret"]["lr"]


@dataclass(frozen=True)
class Claim:
    """A phrase of the README prose: its numbers are the regex's groups, ``check`` holds them to their source."""

    pattern: str
    check: Callable[[re.Match], None]
    source: str


CLAIMS = [
    Claim(r"Python (3\.11)", lambda m: need(f"python={m.group(1)}" in _src("environment.yml"), "environment.yml pins another Python"), "environment.yml"),
    Claim(r"torch==(2\.13\.0)", lambda m: need(all(f"torch=={m.group(1)}" in _src(f) for f in ("Makefile", "requirements.txt")), "the torch pin"),
          "Makefile, requirements.txt"),
    Claim(r"arXiv (\d{4}\.\d{5})", check_arxiv, "a citation: the method's module or notebook cites the same id"),
    Claim(r"\| (\d\d)(?:, (\d\d))? \|", check_stage_refs, "the question table's stage column: stages of dvc.yaml"),
    Claim(r"Intervals are (95)% percentile bootstraps", lambda m: need("level: float = 0.95" in _src("lib/ragalign/core/metrics.py"), "bootstrap_ci's level"),
          "lib/ragalign/core/metrics.py"),
    Claim(r"\((80)% power", lambda m: need(abs(statistics.NormalDist().inv_cdf(int(m.group(1)) / 100) - z_power()) < 1e-5, "metrics.Z_POWER"),
          "lib/ragalign/core/metrics.py"),
    Claim(r"exactly (0) before training", lambda m: need("exactly 0 before training" in _src("lib/ragalign/core/rerank.py"), "the zero-initialised correction"),
          "lib/ragalign/core/rerank.py"),
    Claim(r"in a group of exactly (8) rows", lambda m: need(f"DECODE_ROWS = {m.group(1)} " in _src("lib/ragalign/core/lm.py"), "lm.DECODE_ROWS"),
          "lib/ragalign/core/lm.py"),
    Claim(r"\(`training`: (\d+) epochs over the train questions' groups of (\d+) passages, AdamW at a learning rate of ([\de.-]+), "
          r"batch (\d+) groups\)\. FiGRet's bi-encoder goes through the same trainer with its own learning rate, `figret\.lr` = ([\de.-]+),",
          check_training_budget, "params.yaml training, figret.lr"),
    Claim(r"AVX-(512) BF16", lambda m: need("avx512_bf16" in _src("lib/ragalign/core/numerics.py"), "numerics.BF16_CPU_FLAGS"),
          "an instruction set's name: the flag numerics.BF16_CPU_FLAGS looks for"),
    Claim(r"emulates bf16, about (10)x slower", lambda m: need(f"EMULATED_SLOWDOWN = {m.group(1)} " in _src("lib/ragalign/core/numerics.py"),
                                                               "numerics.EMULATED_SLOWDOWN"), "lib/ragalign/core/numerics.py (issue 21's measurement)"),
    Claim(r"path through the graph below: GainRAG ([\d–]+), RADIO ([\d–]+), as stage (\d\d) reads GainRAG's test answers to compare with them, "
          r"FiGRet ([\d–]+ \+ \d\d), the tuned reader ([\d–]+ \+ \d\d)\.", check_variant_paths, "dvc.yaml: each variant stage's ancestors"),
    Claim(r"dependency of stage (01)\b", lambda m: need("${data.path}" in stage_graph()[0]["01_prepare_data"]["deps"], "01 depends on data.path"),
          "dvc.yaml"),
    Claim(r"for `gain\.alpha`: stages ((?:\d\d, )*\d\d and \d\d);", check_gain_alpha,
          "dvc.yaml: the stages whose params read gain.alpha and everything downstream"),
    Claim(r"and dense top-(1)\)", lambda m: need(PARAMS["selector"]["top_k"] == int(m.group(1)), "selector.top_k"), "params.yaml selector.top_k"),
    Claim(r"Stage (11) writes this table from `results/timings/`",
          lambda m: need(any(d.startswith("results/timings/") for d in stage_graph()[0]["11_summary"]["deps"]), "11 reads the timings"), "dvc.yaml"),
    Claim(r"Stage (10)'s wall time \(cost table\)", check_stage_refs, "a stage of dvc.yaml"),
    Claim(r"the (2) × N table", lambda m: need({k.split(":")[0] for k in json.loads(_src("results/metrics/seam.json")) if ":" in k} == {"untuned", "tuned"},
                                                "stage 09 answers with two readers"), "results/metrics/seam.json"),
    Claim(r"Stage (08) fine-tunes the generator", lambda m: need(by_number(stage_graph()[0])["08"] == "08_reader_tuning", "08 is reader tuning"), "dvc.yaml"),
    Claim(r"budgets made equal \(stage (14)\)", lambda m: need(by_number(stage_graph()[0])["14"] == "14_seam_curve", "14 is the seam curve"), "dvc.yaml"),
    Claim(r"written by stage (11)\sfrom stage (14)'s metrics", lambda m: need("results/metrics/seam_curve.json" in stage_graph()[0]["11_summary"]["deps"], "11 reads 14's metrics"),
          "dvc.yaml: stage 11 depends on stage 14's metrics"),
    Claim(r"written by stage (11) from stage (12)'s metrics", lambda m: need("results/metrics/curve.json" in stage_graph()[0]["11_summary"]["deps"], "11 reads 12's metrics"),
          "dvc.yaml: stage 11 depends on stage 12's metrics"),
    Claim(r"equivalent\" \(stage (13)\): no", lambda m: need(by_number(stage_graph()[0])["13"] == "13_powered_seam", "13 is the powered seam"), "dvc.yaml"),
    Claim(r"written by stage (11) from stage (13)'s metrics", lambda m: need("results/metrics/powered.json" in stage_graph()[0]["11_summary"]["deps"], "11 reads 13's metrics"),
          "dvc.yaml: stage 11 depends on stage 13's metrics"),
    Claim(r"Stage (09) answers every retriever-side", lambda m: need(by_number(stage_graph()[0])["09"] == "09_seam", "09 is the seam"), "dvc.yaml"),
    Claim(r"written by stage (11) from their metrics", lambda m: need({"results/metrics/reader.json", "results/metrics/seam.json"} <= set(stage_graph()[0]["11_summary"]["deps"]),
                                                                  "11 reads 08's and 09's metrics"), "dvc.yaml"),
    Claim(r"held-out loss lies above (0); the trainer restores the start", lambda m: need('keep == "beats" and verdict(interval) != BEATS' in _src("lib/ragalign/core/training.py"),
                                                                                       "training.fit's keep rule"), "lib/ragalign/core/training.py"),
    Claim(r"own format \((01)–(02) on both, (03) and (08) on SQuAD; the later", lambda m: need('FORMAT_STAGES = ("03_rag_baselines", "08_reader_tuning")' in _src("tests/test_other_benchmarks.py")
                                                                                  and '("squad", FORMAT_STAGES)' in _src("tests/test_other_benchmarks.py")
                                                                                  and '("nq_open", ("02_retrieval",))' in _src("tests/test_other_benchmarks.py"),
                                                                   "the other-benchmark tests' stages"), "tests/test_other_benchmarks.py"),
    Claim(r"HF_HUB_OFFLINE=(1)", lambda m: need("HF_HUB_OFFLINE := 1" in _src("Makefile"), "the Makefile's offline switch"), "Makefile"),
    Claim(r"contexts of more than (6) documents", lambda m: need(2 ** int(m.group(1)) == PARAMS["rag_e"]["max_exact_subsets"], "rag_e.max_exact_subsets"),
          "params.yaml rag_e.max_exact_subsets (exact Shapley up to 2^6 coalitions)"),
    Claim(r"`rag_e\.n_questions` \(default (\d+)\)", lambda m: need(int(m.group(1)) == PARAMS["rag_e"]["n_questions"], "rag_e.n_questions"), "params.yaml"),
    Claim(r"HotpotQA dev, distractor setting \(([\d,]+) questions, ([\d,]+) distinct paragraphs: the study's corpus\), SQuAD v1\.(1) dev \(([\d,]+) questions\) and NQ-open dev with its gold passages \(([\d,]+) questions\)",
          lambda m: need(all(n in _shared("DATA.md") for n in (f"{m.group(1)} questions", f"{m.group(2)} distinct paragraphs", f"{m.group(4)} questions", f"{m.group(5)} questions"))
                         and "squad_v1.1" in _src("lib/ragalign/core/benchmarks.py"), "the counts ../shared/DATA.md gives"), "../shared/DATA.md"),
    Claim(r"the reader \(stage (08)\) and the learning curve \(stage (12)\) train on others", check_stage_refs, "stages of dvc.yaml"),
    Claim(r"Stages (08) \(reader tuning\) and (14) \(the seam curve, which tunes readers too\) need the most memory", check_peak_stages,
          "results/timings/*.json peak_rss_mib"),
    Claim(r"stage (12) measures what the trainer learns now", check_stage_refs, "a stage of dvc.yaml"),
    Claim(r"trained on (\d+) to (\d+) benchmark questions outside the study's splits, .*?ranking the same (\d+) held-out questions against dense; at (\d+) and (\d+) it also",
          lambda m: need([int(g) for g in m.groups()] == [min(PARAMS["curve"]["sizes"]), max(PARAMS["curve"]["sizes"]), PARAMS["curve"]["eval_questions"], *PARAMS["curve"]["answer_sizes"]],
                         "params.yaml curve"), "params.yaml curve"),
    Claim(r"one typical RAG answer, a (\d+)-token prefill and (\d+) decode steps",
          lambda m: need((int(m.group(1)), int(m.group(2))) == (probes.PROBE_TOKENS, probes.PROBE_STEPS), "core.probes.PROBE_TOKENS, PROBE_STEPS"),
          "lib/ragalign/core/probes.py"),
    Claim(r"\(`seam\.ks`: (\d+) and (\d+) passages", lambda m: need([int(g) for g in m.groups()] == PARAMS["seam"]["ks"], "seam.ks"), "params.yaml seam.ks"),
    Claim(r"`seam\.ks` \(default `\[(\d+), (\d+)\]`\): stage (09) cuts",
          lambda m: need([int(m.group(1)), int(m.group(2))] == PARAMS["seam"]["ks"] and by_number(stage_graph()[0])["09"] == "09_seam", "seam.ks, stage 09"),
          "params.yaml seam.ks, dvc.yaml"),
    Claim(r"`selector\.top_n` \+ (1)\), and `params check` names the limit",
          lambda m: need("selector.top_n + 1" in _src("lib/ragalign/core/params.py"), "the seam.ks check in core.params"), "lib/ragalign/core/params.py"),
    Claim(r"(\d+) coalitions of the (\d+) passages shown \(every subset\)",
          lambda m: need((int(m.group(1)), int(m.group(2))) == (2 ** PARAMS["rag"]["top_k"], PARAMS["rag"]["top_k"]), "2^rag.top_k coalitions"),
          "params.yaml rag.top_k"),
]


def test_every_number_in_the_readme_prose_is_checked_against_its_source():
    """A number outside the generated blocks must sit inside a registered claim whose check reads its source file."""
    text = prose(README.read_text())
    covered: list[tuple[int, int]] = []
    for claim in CLAIMS:
        matches = list(re.finditer(claim.pattern, text))
        assert matches, f"registered claim no longer in the README (remove it or fix the pattern): {claim.pattern}"
        for m in matches:
            claim.check(m)
            covered += [m.span(g) for g in range(1, (m.re.groups or 0) + 1) if m.group(g) is not None]
    unchecked = [f"{n.group(0)!r} in ...{text[max(0, n.start() - 50):n.end() + 30]}..." for n in NUMBER.finditer(text)
                 if not any(a <= n.start() and n.end() <= b for a, b in covered)]
    assert not unchecked, "numbers in the README prose that no test checks (generate them or register a Claim):\n" + "\n".join(unchecked)


def test_the_pipeline_diagram_draws_dvc_yaml():
    """The mermaid diagram's arrows are exactly the direct dependencies of dvc.yaml that no longer path implies."""
    stages, ups = stage_graph()
    diagram = re.search(r"```mermaid\n(.*?)```", README.read_text(), flags=re.S).group(1)
    names = dict(re.findall(r"(s\d\d)\[(\w+)\]", diagram))
    edges = {(names[a], names[b]) for a, b in re.findall(r"(s\d\d)(?:\[\w+\])? --> (s\d\d)", diagram)}
    implied = {(a, b) for b, direct in ups.items() for a in direct if any(a in ancestors(ups, c) for c in direct - {a})}
    assert set(names.values()) == set(stages)
    assert edges == {(a, b) for b, direct in ups.items() for a in direct} - implied


def test_every_stage_after_00_depends_on_the_numerics_record():
    """README: results/numerics.json is a dependency of every other stage."""
    stages, _ = stage_graph()
    readers = {s for s, st in stages.items() if "results/numerics.json" in st.get("deps", [])}
    assert readers == {s for s in stages if s != "00_numerics"}
    assert "a dependency of every other stage" in prose(README.read_text())


def test_generated_bench_blocks_are_current():
    """The benchmark table and the Numerics evidence say what bench/results says: `python bench/report.py readme` rebuilds them."""
    assert bench_report().readme(ROOT, check=True) == [], "run `python bench/report.py readme`"
