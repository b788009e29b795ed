"""How every benchmark reports: the JSON on stdout, and in ``--out`` when given, with the machine it ran on.

A timing holds on the CPU it was measured on (bf16 is native on some and emulated, ten times
slower, on others), so every result carries ``host``: the CPU's model, family, torch kernel
capability and bf16 flags, torch's version and thread count (``ragalign.core.numerics.host``).

    python bench/report.py readme [--check]

rebuilds the README's benchmark table and its Numerics evidence from ``bench/results/*.json``
(``--check``: only say whether they are current; exit 1 if not).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ragalign.core.io import write_json
from ragalign.core.numerics import host


def study_dtype() -> str:
    """The generator dtype the study resolves to on this machine (``models.dtype`` of params.yaml: ``auto`` is
    bfloat16 where bf16 is native, else float32), so a bench times the path the study takes here."""
    from ragalign.core.numerics import resolve
    from ragalign.core.params import load

    return resolve(load()).dtype


def emit(result: dict, out: str | None) -> int:
    """Print ``result`` (with the ``host`` it ran on) and write it to ``out``; the script's exit status (0)."""
    device = "cuda" if torch.cuda.is_available() and torch.cuda.is_initialized() else "cpu"
    result = {**result, "host": host(device) | {"torch_threads": torch.get_num_threads()}}
    print(json.dumps(result, indent=2, sort_keys=True))
    if out:
        write_json(out, result)
    return 0


# --- the README's generated blocks -------------------------------------------------------------
#
# `python bench/report.py readme` rewrites two README blocks from bench/results/*.json:
#   <!-- bench:begin --> ... <!-- bench:end -->        one row per result file (the benchmark table)
#   <!-- numerics:begin --> ... <!-- numerics:end -->  what bf16 vs float32 changes (device_check, dtype_headline)
# Every number in them is formatted here from a result file; `--check` only says whether the README
# is current (exit 1 if not), which tests/test_readme.py asserts.

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
README = ROOT / "README.md"


def _g(x: float, digits: int = 2) -> str:
    """A difference or a small quantity: ``0``, ``4e-5``, ``0.083``, ``2.1``."""
    if x == 0:
        return "0"
    if abs(x) < 1e-3:
        mantissa, exp = f"{x:.0e}".split("e")
        return f"{mantissa}e{int(exp)}"
    return f"{x:.{digits}g}"


def _s(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds < 1 else f"{seconds:.1f}"


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _bf16_flags(result: dict) -> list[str] | None:
    """The CPU's native-bf16 flags (None: the result does not record its CPU)."""
    host_ = result.get("host")
    return None if host_ is None else list(host_["cpu"]["bf16_flags"])


def _gpu(result: dict) -> str | None:
    if result.get("host", {}).get("cuda_device"):
        return result["host"]["cuda_device"]
    names = result.get("device_names")
    if isinstance(names, dict):
        names = [n for n in names.values() if n]
    return ", ".join(names) if names else None


def machine(result: dict) -> str:
    """The machine a result holds on, from its ``host`` block (or what an older result recorded, said as such)."""
    gpu = _gpu(result)
    host_ = result.get("host")
    if host_ is not None:
        c = host_["cpu"]
        bf16 = f"native bf16 ({', '.join(c['bf16_flags'])})" if c["bf16_flags"] else "no native bf16"
        threads = f", {host_['torch_threads']} threads" if host_.get("torch_threads") else ""
        cpu_text = f"{c['model']} (family {c['family']}, {c['capability']}, {bf16}{threads}), torch {host_['torch']}"
    else:
        named = result.get("cpu_model")
        threads = result.get("torch_threads") or result.get("cpu_threads")
        seen = ", ".join(x for x in (f"named {named}" if named else "", f"{threads} threads" if threads else "") if x)
        cpu_text = f"CPU not recorded{f' ({seen})' if seen else ''}: family, kernel capability and bf16 support unknown"
        return f"{gpu}; its host's {cpu_text}" if gpu else cpu_text
    return f"{gpu}; host CPU {cpu_text}" if gpu else cpu_text


def bf16_scope(result: dict, kind: str) -> str:
    """What a bf16 timing holds on. ``kind``: ``speed`` (bf16 vs float32 speed) or ``timed`` (timed in bf16)."""
    from ragalign.core.numerics import BF16_CPU_FLAGS, EMULATED_SLOWDOWN

    flags = _bf16_flags(result)
    what = "bf16 vs float32 speed" if kind == "speed" else "timed in bf16"
    if flags:
        return f"{what}: holds on bf16-native CPUs only"
    if flags is not None:
        return f"{what}: bf16 is emulated on this CPU (`auto` computes in float32 here)"
    return (f"{what}: holds on bf16-native CPUs only ({' or '.join(BF16_CPU_FLAGS)}); without them bf16 runs "
            f"about {EMULATED_SLOWDOWN}x slower and `auto` computes in float32")


# --- one small function per benchmark: its result file -> the "last result" cell -----------------

def row_gain_throughput(r: dict) -> str:
    p, same, diff = r["pairs_per_s"], r["labels_equal_naive_bitwise"], r["max_abs_label_diff_vs_naive"]
    identical = ("labels bit-identical on all three" if all(same.values()) else
                 "labels against naive's: " + ", ".join(f"{k} {'bit-identical' if same[k] else f'within {_g(diff[k])}'}" for k in ("study", "padded")))
    gemm_dtype, gflops = r.get("gemm_dtype", "bf16"), r.get("gemm_peak_gflops", r.get("bf16_gemm_peak_gflops"))
    return (f"{p['study']:.1f} pairs/s vs {p['naive']:.1f} naive ({r['speedup_vs_naive']:.1f}x) vs {p['padded']:.1f} padded ({r['dtype']}, "
            f"{r['n_questions']} questions, {r['n_pairs']} pairs); {identical}; {_pct(r['roofline_fraction']['study'])} of the machine's "
            f"measured {gemm_dtype} GEMM throughput ({gflops:.0f} GFLOP/s) in useful FLOPs")


def row_prefix_sharing(r: dict) -> str:
    by_k = r["by_k"]
    speed = ", ".join(f"{v['speedup']:.1f}x at k = {k}" for k, v in sorted(by_k.items(), key=lambda kv: int(kv[0])))
    diff = max(max(v["max_abs_diff_token_logprob"], v["max_abs_diff_mean_logprob"], v["max_abs_diff_mean_prob"]) for v in by_k.values())
    same = "identical to the full forwards (max difference 0)" if diff == 0 else f"within {_g(diff)} of the full forwards"
    return (f"{speed} ({r['dtype']}); values {same} on the sampled coalitions; "
            f"canonical: {'yes' if r['prefix_values_canonical'] else 'no'}; a coalition scored alone = in its game, bit for bit: "
            f"{'yes' if r['batch_invariance_bitwise_equal'] else 'no'} ({r['batch_invariance_checked_coalitions']} checked)")


def row_shapley_convergence(r: dict) -> str:
    need = r["evaluations_to_median_spearman_0.95"]
    ns = sorted(need, key=int)
    names = {"kernelshap": "KernelSHAP (paired)", "leverageshap": "LeverageSHAP", "permutation": "permutation",
             "permutation:antithetic=true": "antithetic permutation", "pmcshap": "RAG-E's PMCSHAP"}
    parts = []
    for est in need[ns[0]]:
        counts = [need[n][est] for n in ns]
        if all(c is None for c in counts):
            at_half = [next(c["spearman_median"] for c in r["curve"][n][est] if c["budget"] == 2 ** int(n) // 2) for n in ns]
            parts.append(f"{names.get(est, est)} never (median {' / '.join(f'{x:.2f}' for x in at_half)} at 2^n / 2)")
        else:
            parts.append(f"{names.get(est, est)} {' / '.join('never' if c is None else str(c) for c in counts)}")
    games = " and ".join(f"{r['games'][n]} games at n = {n}" for n in ns)
    return f"coalitions to median Spearman >= 0.95 at n = {' / '.join(ns)}: {'; '.join(parts)} ({games}, {r['config']['repeats']} seeded repeats)"


PATHS = ("likelihood", "generation", "gain_labelling", "coalitions")
PATH_WORDS = {"likelihood": "likelihood", "generation": "generation", "gain_labelling": "gain labelling",
              "coalitions": "coalition values of the sample's games"}


def row_device_check(r: dict) -> str:
    runs = r["runs"]
    inv_s = [n for n, v in runs.items() if v["batch_invariant_scores"]]
    inv_a = [n for n, v in runs.items() if v["batch_invariant_answers"]]
    inv = ("every value batch-invariant in all runs" if len(inv_s) == len(inv_a) == len(runs)
           else f"scores batch-invariant in {len(inv_s)} of {len(runs)} runs, greedy answers in {len(inv_a)} of {len(runs)}")
    times = []
    for dev in sorted({n.split("/")[0] for n in runs}):
        dtypes = [d for d in ("bfloat16", "float32") if f"{dev}/{d}" in runs]
        per = ", ".join(f"{PATH_WORDS[p]} {' / '.join(_s(runs[f'{dev}/{d}']['seconds'][p]) for d in dtypes)}" for p in PATHS)
        times.append(f"{dev.upper() if dev == 'cuda' else 'CPU'} {' / '.join('bf16' if d == 'bfloat16' else d for d in dtypes)} s: {per}")
    cross = r["comparisons"].get("cuda/float32 vs cpu/float32")
    agree = f"; float32 CUDA = CPU to {_g(max(v for k, v in cross.items() if k.endswith('max_abs_diff')))}" if cross else ""
    return f"{r['n_questions']} questions: {inv}{agree}; {'; '.join(times)}"


def row_answering(r: dict) -> str:
    (shared, t_shared), (two, t_two) = r["seconds_per_question"].items()
    return (f"{t_shared:.2f} vs {t_two:.2f} s per question ({r['speedup']:.2f}x; {r.get('dtype', 'bfloat16')}; mean prompt {r['mean_prompt_tokens']:.0f} tokens); "
            f"{r['same_replies']} of {r['questions']} replies identical; gold-answer log-prob within {_g(r['gold_logprob_max_abs_diff'])} nats "
            f"(mean {_g(r['gold_logprob_mean_abs_diff'], 1)})")


def row_encode_precision(r: dict) -> str:
    b, f = r["precisions"]["bf16 autocast"], r["precisions"]["float32"]
    keys = sorted((k for k in f if k != "passages_per_second"), key=lambda k: (k != "mrr", int(k.split("@")[1]) if "@" in k else 0))
    same = [k for k in keys if b[k] == f[k]]
    differ = [f"{k} {b[k]:.3f} vs {f[k]:.3f}" for k in keys if b[k] != f[k]]
    quality = f"equal: {', '.join(k.replace('mrr', 'MRR') for k in same)}" + (f"; differ (bf16 vs float32): {', '.join(differ)}" if differ else "")
    return (f"{b['passages_per_second']:.0f} vs {f['passages_per_second']:.0f} passages/s ({r['speedup']:.2f}x); cosine >= {r['min_cosine']} to float32; "
            f"{r['questions']} questions, {r['passages']} passages; {quality}")


def row_train_precision(r: dict) -> str:
    f32, b16 = r["runs"]["float32"], r["runs"]["bf16_autocast"]
    if "agreement" not in r:  # the old format: one epoch that barely moved
        return (f"{r['speedup']:.2f}x faster steps with autocast ({b16['seconds_per_step']:.2f} vs {f32['seconds_per_step']:.2f} s); held-out loss "
                f"{f32['val_loss_start']} -> {f32['val_loss_best']} (float32), {b16['val_loss_start']} -> {b16['val_loss_best']} (bf16): the run barely "
                "learns, so it does not show that the precisions agree")
    a = r["agreement"]
    verdict_ = (f"descent {a['descent']:.2f} nats, more than {a['factor']:g}x the difference: the precisions agree on a run that learns" if a["learns"]
                else f"descent {a['descent']:.2g} nats is not {a['factor']:g}x the difference: this run does not show agreement")
    return (f"{r['speedup']:.2f}x faster steps with autocast ({b16['seconds_per_step']:.2f} vs {f32['seconds_per_step']:.2f} s); "
            f"held-out loss {f32['val_loss_start']:.3f} -> {f32['val_loss_best']:.3f} (float32), {b16['val_loss_start']:.3f} -> {b16['val_loss_best']:.3f} (bf16), "
            f"target first in {f32['val_target_at_1']} / {b16['val_target_at_1']} held-out groups (dense prior: {r['prior_target_at_1']}); "
            f"curves differ by at most {_g(a['val_loss_max_abs_diff'])}; {verdict_}")


def row_probe_speed(r: dict) -> str:
    runs = r["runs"]
    times = "; ".join(f"{name} {v['probe_s']:.2f} s" + ("" if name == "bfloat16" else f" ({v['over_bf16']:.2f}x)") for name, v in runs.items())
    if "probe_steps" not in r:  # the probe before it counted decode steps
        return (f"one {r['probe_tokens']}-token forward: {times}: a cold run costs about {r['float32_avx2_over_bf16']:.1f}x this "
                "machine's on an AVX2-only CPU of its clock and cores (float32, as `models.dtype=auto` resolves there)")
    prefill = "; ".join(f"{name} {v['prefill_s']:.2f} s" + ("" if name == "bfloat16" else f" ({v['prefill_over_bf16']:.2f}x)") for name, v in runs.items())
    return (f"one answer ({r['probe_tokens']}-token prefill, {r['probe_steps']} decode steps): {times}; the prefill alone: {prefill}. "
            f"A cold run costs about {r['float32_avx2_over_bf16']:.1f}x this machine's on an AVX2-only CPU of its clock and cores "
            "(float32, as `models.dtype=auto` resolves there)")


def row_smoke_cold(r: dict) -> str:
    slowest = sorted(r["stages"].items(), key=lambda kv: -kv[1])[:3]
    return (f"{r['wall_s'] / 60:.1f} min cold in {r['dtype']} (probe {r['probe_s']:.2f} s per answer before it); slowest stages: "
            + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in slowest))


def _pair_runs(name: str) -> tuple[str, str]:
    """The two runs a device_training comparison compares: ``cpu vs cuda, P`` or ``float32 vs bf16_autocast, D``."""
    left, _, tail = name.partition(", ")
    a, _, b = left.partition(" vs ")
    return (f"{a}/{tail}", f"{b}/{tail}") if a in ("cpu", "cuda") else (f"{tail}/{a}", f"{tail}/{b}")


def row_device_training(r: dict) -> str:
    from against_prior import learning, val_losses

    parts = []
    for model, label_ in (("reranker", "reranker"), ("figret", "FiGRet bi-encoder")):
        found = [learning({"a": val_losses(r["runs"][a][model]["curve"]), "b": val_losses(r["runs"][b][model]["curve"])}) | r["comparisons"][name][model]
                 for name in r["comparisons"] for a, b in [_pair_runs(name)]]
        diff = max(c["val_loss_max_abs_diff"] for c in found)
        descent = min(c["descent"] for c in found)
        kept = sum(c["same_kept_checkpoint"] for c in found)
        learns = all(c["learns"] for c in found)
        words = "learns: agreement shown" if learns else "does not learn by more than it differs: agreement not shown"
        parts.append(f"{label_}: held-out curves within {_g(diff)} of a descent of at least {_g(descent)} nats ({words}); final scores within "
                     f"{_g(max(c['final_score_max_abs_diff'] for c in found))}; same checkpoint kept in {kept} of {len(found)}")
    return f"{len(r['comparisons'])} comparisons ({'; '.join(r['comparisons'])}). " + ". ".join(parts)


def row_decoding(r: dict) -> str:
    w = r["workloads"]
    parts = []
    for name, label_ in (("rag_answers", "RAG answers decoded alone"), ("pseudo_passages", "grouped long replies (pseudo-passages)")):
        s = w[name]["seconds"]
        ratio = s["dynamic cache, eager"] / s["static cache"]
        speed = ("static cache as fast (within 2%)" if abs(ratio - 1) < 0.02 else
                 f"static cache {ratio:.2f}x faster" if ratio > 1 else f"static cache {1 / ratio:.2f}x slower")
        parts.append(f"{label_}: {speed} ({'same' if w[name]['static_same_replies'] else 'other'} replies), SDPA {'same' if w[name]['sdpa_same_replies'] else 'other'} replies")
    return f"{r['questions']} questions, {r.get('dtype', 'bfloat16')}; " + "; ".join(parts)


def row_length_chunking(r: dict) -> str:
    a, b = r["runs"]["caller's order"], r["runs"]["order of length"]
    return (f"{r['prompts']} pseudo-passage prompts ({r['prompt_lengths']} lengths), {r['new_tokens']} new tokens, {r['dtype']}: "
            f"{b['groups']} groups in {b['seconds']:.0f} s against {a['groups']} in {a['seconds']:.0f} s ({r['speedup']:.2f}x), "
            f"{'the same' if r['same_replies'] else 'other'} replies")


def row_dtype_headline(r: dict) -> str:
    n_cmp = len(r["comparisons"])
    changed = r["verdicts_changed"]
    return (f"{len(r['variants'])} variants x {r['n_questions']} test questions: {len(changed)} of {n_cmp} verdicts change; gold-answer log-prob per question "
            f"moves up to {_g(r['max_abs_gold_logprob_diff'])} nats, variant means up to {_g(r['max_abs_variant_mean_diff'])}, paired differences up to "
            f"{_g(r['max_abs_mean_shift_gold_logprob'])} (see Numerics)")


def _interval(i: dict) -> str:
    return f"{i['mean']:+.3f} [{i['lo']:+.3f}, {i['hi']:+.3f}]"


def row_reader_tuning(r: dict) -> str:
    parts = [f"{way}: {x['trainable_parameters'] / 1e6:.0f}M trainable, {x['s_per_train_example']:.2f} s per training example (its held-out passes included), held-out loss "
             f"{x['heldout_start']:.3f} -> {x['heldout_best']:.3f} ({_interval(x['best_reduction'])})" for way, x in r["runs"].items()]
    return f"{r['train_examples']} training questions, {r['questions'] - r['train_examples']} held out, one epoch (LoRA lr {r['lora_lr']:g}). " + "; ".join(parts)


def row_reader_data(r: dict) -> str:
    runs = r["runs"]
    parts = [f"{arm} ({x['training_questions']} questions): dense-context loss {x['loss']['dense']:.3f}, reading gap {x['reading_gap']:.3f}"
             + (f"; vs benchmark: dense loss {_interval(x['vs_benchmark']['loss_dense'])}, gap {_interval(x['vs_benchmark']['reading_gap'])}" if "vs_benchmark" in x else "")
             for arm, x in runs.items()]
    return f"{r['eval_questions']} further benchmark questions, paired (positive: better than `benchmark`). " + "; ".join(parts)


def row_relevance_control(r: dict) -> str:
    names = {"first_gold": "first gold", "easy_gold": "easy gold", "bridge_gold": "bridge", "gold_share_top_k": f"gold share in top {r['top_k']}"}
    parts = [f"{arm} (held-out loss {_interval(x['loss_reduction'])} lower): " + ", ".join(f"{names[m]} {_interval(d)}" for m, d in x["vs_dense"].items())
             for arm, x in r["runs"].items()]
    versus = r["runs"]["per gold"]["vs_uniform"]
    return (f"{r['questions']} training questions, {r['held_out_questions']} held out; reciprocal ranks and shares, each arm minus dense. " + "; ".join(parts)
            + f"; per gold minus uniform: first gold {_interval(versus['first_gold'])}, easy gold {_interval(versus['easy_gold'])}")


@dataclass(frozen=True)
class Bench:
    compares: str
    row: Callable[[dict], str]
    bf16: str | None = None  # "speed": the row claims bf16 vs float32 speed; "timed": it times bf16 runs
    script: str | None = None  # what writes the result, when not ``bench/NAME.py``
    machine_free: str | None = None  # why the result is the same on every machine (it times nothing), when it is

    def bf16_on_cpu(self, r: dict) -> str | None:
        """The row's bf16 claim about a CPU (None: none; a result of CUDA runs only makes no CPU claim)."""
        runs = list(r.get("runs", {})) if isinstance(r.get("runs"), dict) else []
        device_runs = bool(runs) and all("/" in k for k in runs)  # "cpu/float32", "cuda/bfloat16", ...
        if device_runs and not any(k.startswith("cpu/") for k in runs):
            return None
        return None if self.bf16 == "timed" and r.get("dtype", "bfloat16") != "bfloat16" else self.bf16  # timed in float32: no bf16 claim


BENCHES: dict[str, Bench] = {
    "gain_throughput": Bench("GainRAG labelling: the study's path (one unpadded forward per sequence, no-passage pass shared, answer positions only "
                             "through the LM head) vs the naive way (two full forwards per passage) vs padded batches", row_gain_throughput, "timed"),
    "prefix_sharing": Bench("coalition values over a prefix tree reusing the KV cache of shared document prefixes vs one full forward per coalition",
                            row_prefix_sharing, "timed"),
    "shapley_convergence": Bench("every Shapley estimator against exact values on full 2^n tables of real games (`bench/data/`), seeded repeats",
                                 row_shapley_convergence, machine_free="any machine: counts of look-ups in recorded value tables, no timing"),
    "device_check": Bench("the LM scoring, generation, gain-labelling and Shapley paths on CUDA and CPU, bf16 and float32, with batch-invariance checks",
                          row_device_check, "speed"),
    "answering": Bench("RAG answering: one shared prefill for the greedy reply and the gold answers' scores (`LM.answer`) vs decoding and scoring "
                       "in two passes", row_answering, "timed"),
    "encode_precision": Bench("embedding passages in float32 vs bf16 autocast (`retrieval.bf16_autocast`)", row_encode_precision, "speed"),
    "train_precision": Bench("reranker training steps in float32 vs bf16 autocast, on toy groups against the dense prior (a run that must learn)",
                             row_train_precision, "speed"),
    "device_training": Bench("the one trainer (`core.training.fit`) on CPU and CUDA, float32 and bf16 autocast: a reranker and FiGRet's bi-encoder "
                             "on toy sets whose targets go against the start", row_device_training),
    "decoding": Bench("greedy decoding: dynamic vs static KV cache vs SDPA attention", row_decoding, "timed"),
    "length_chunking": Bench("short prompts decoded in same-length groups: missing prompts chunked in order of length (`LM.generate`) vs in the "
                             "caller's order", row_length_chunking, "timed"),
    "reader_tuning": Bench("reader fine-tuning (`reader.tune`): every weight vs LoRA adapters (`peft`) vs the upper half of the decoder, "
                           "same examples and held-out questions", row_reader_tuning, "timed"),
    "relevance_control": Bench("the relevance control's target: both gold passages sharing it evenly vs one gold per group against hard negatives "
                               "(the study's `training.relevance_target` since this measurement), same questions, groups and steps, on stage 12's "
                               "held-out questions", row_relevance_control),
    "reader_data": Bench("reader training questions: more of the benchmark vs as many SQuAD questions (gold paragraph among same-article "
                         "distractors), on the same further benchmark questions", row_reader_data, "timed"),
    "probe_speed": Bench("the cost estimator's probe (`core.probes.probe`) in bf16, float32, and float32 with torch's kernels capped at AVX2 "
                         "(what a CPU without native bf16 runs), each in its own process", row_probe_speed, "speed"),
    "smoke_cold": Bench("a cold `make smoke` (the whole pipeline on the tiny benchmark, empty LLM cache): the reference `make smoke` "
                        "scales by the probe for its estimate, and checks its own wall time against", row_smoke_cold,
                        script="python -m ragalign.smoke --record"),
    "dtype_headline": Bench("every headline variant's test contexts answered in float32 and in bf16: how far the headline and its verdicts move",
                            row_dtype_headline),
}


def bench_of(path: Path) -> str:
    """The benchmark a result file belongs to: ``NAME.json`` or ``NAME_anything.json`` for a benchmark ``NAME``."""
    for name in sorted(BENCHES, key=len, reverse=True):
        if path.stem == name or path.stem.startswith(name + "_"):
            return name
    raise KeyError(f"{path}: no benchmark in bench/report.py BENCHES formats this result; add a row function for it")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def results(root: Path = ROOT) -> dict[Path, dict]:
    return {p: json.loads(p.read_text()) for p in sorted((root / "bench" / "results").glob("*.json"))}


def bench_table(root: Path = ROOT) -> str:
    """The README's benchmark table: one row per result file, in BENCHES order, each with the machine it holds on."""
    from ragalign.core.numerics import EMULATED_SLOWDOWN

    found = results(root)
    rows = []
    for name, bench in BENCHES.items():
        files = [p for p in found if bench_of(p) == name]
        if not files:
            rows.append(f"| `{bench.script or f'bench/{name}.py'}` | {_cell(bench.compares)} | not run yet | – |")
        for p in files:
            r = found[p]
            label_ = f"`{bench.script or f'bench/{name}.py'}`" + ("" if p.stem == name else f" (`{p.name}`)")
            kind = bench.bf16_on_cpu(r)
            where = bench.machine_free or machine(r) + (f"; {bf16_scope(r, kind)}" if kind else "")
            rows.append(f"| {label_} | {_cell(bench.compares)} | {_cell(bench.row(r))} | {_cell(where)} |")
    header = ("| benchmark | what it compares (same run) | last result | holds on |\n|---|---|---|---|")
    note = (f"Generated by `python bench/report.py readme` from `bench/results/*.json`. A timing holds on the machine in its last column: "
            f"bf16 runs natively on CPUs with AVX-512 BF16 or AMX and about {EMULATED_SLOWDOWN}x slower, emulated, on others.")
    return "\n".join([header, *rows, "", note])


# --- the Numerics block ------------------------------------------------------------------------

COMPARISONS = (  # (device_check comparison, how the README names it)
    ("cuda/float32 vs cpu/float32", "CUDA float32 vs CPU float32"),
    ("cuda/bfloat16 vs cuda/float32", "CUDA bf16 vs CUDA float32"),
    ("cpu/bfloat16 vs cpu/float32", "CPU bf16 vs CPU float32"),
)
COLUMNS = (("gold_logprob_max_abs_diff", "gold log-prob, max abs diff", _g), ("gain_label_max_abs_diff", "gain label, max abs diff", _g),
           ("best_passage_flips", "best passage flips", _pct), ("answers_changed", "greedy answers changed", _pct),
           ("shapley_max_abs_diff", "Shapley, max abs diff", _g), ("shapley_top_document_flips", "top document flips", _pct))


def device_check_table(found: dict[Path, dict]) -> tuple[str, list[str]]:
    """The dtype/device comparison table from ``device_check*.json`` (the study's unpadded path preferred), and its sentences."""
    checks = sorted((p for p in found if bench_of(p) == "device_check"), key=lambda p: "padded" in p.stem)
    if not checks:
        return "", ["`bench/device_check.py` has no result yet."]
    lines = ["| comparison | " + " | ".join(c[1] for c in COLUMNS) + " | path (file) |", "|---|" + "---:|" * len(COLUMNS) + "---|"]
    got = {}
    for key, name in COMPARISONS:
        p = next((p for p in checks if key in found[p]["comparisons"]), None)
        if p is None:
            continue
        c = got[key] = found[p]["comparisons"][key]
        path = "padded batches" if "padded" in p.stem else "the study's, unpadded"
        lines.append(f"| {name} | " + " | ".join(f(c[k]) for k, _, f in COLUMNS) + f" | {path}: `{p.name}` |")
    first = found[checks[0]]
    words = [f"From `bench/device_check.py` on the same {first['n_questions']} HotpotQA questions; measured on {machine(first)}."]
    if "cuda/float32 vs cpu/float32" in got:
        c = got["cuda/float32 vs cpu/float32"]
        words.append(f"float32 agrees across devices to {_g(max(c[k] for k, _, _ in COLUMNS if k.endswith('max_abs_diff')))} "
                     f"({_pct(c['answers_changed'])} of answers changed), so the code path is the same on CPU and CUDA.")
    b16 = [got[k] for k in ("cuda/bfloat16 vs cuda/float32", "cpu/bfloat16 vs cpu/float32") if k in got]
    if b16:
        words.append(f"bf16 against float32 moves a gold-answer log-prob by up to {_g(max(c['gold_logprob_max_abs_diff'] for c in b16))} nats and a "
                     f"gain label by up to {_g(max(c['gain_label_max_abs_diff'] for c in b16))}, changes up to {_pct(max(c['answers_changed'] for c in b16))} "
                     f"of greedy answers and {_pct(max(c['best_passage_flips'] for c in b16))} of best passages, and "
                     + ("never the document with the largest Shapley value." if all(c["shapley_top_document_flips"] == 0 for c in b16)
                        else f"the document with the largest Shapley value in up to {_pct(max(c['shapley_top_document_flips'] for c in b16))} of games."))
    return "\n".join(lines), words


def dtype_headline_text(found: dict[Path, dict]) -> str:
    """What bf16 does to the whole headline (``dtype_headline.json``), or that it is still to be measured."""
    p = next((p for p in found if bench_of(p) == "dtype_headline"), None)
    if p is None:
        return ("**The whole headline in both dtypes: still to be measured.** `bench/dtype_headline.py` answers every headline variant's test "
                "contexts in float32 and in bf16 and reports how far the gold-answer log-prob, EM/F1 and the paired differences move and "
                "whether any verdict changes; until it has run (on a bf16-native CPU or a GPU), how far bf16 moves the study's findings is "
                "known only from the small check above.")
    from ragalign.core.verdicts import label
    from ragalign.report.summary import VARIANT_SOURCES

    r = found[p]
    name = lambda v: VARIANT_SOURCES.get(v, ("", v))[1]  # noqa: E731
    margin = r["equivalence_margin"]
    rows = ["| variant | gold-answer log-prob, float32 | bf16 | per question, max / mean abs diff | F1, float32 / bf16 | greedy answers changed |",
            "|---|---:|---:|---:|---:|---:|"]
    for v, s in r["variants"].items():
        rows.append(f"| {name(v)} | {s['gold_logprob']['float32']:.3f} | {s['gold_logprob']['bfloat16']:.3f} | "
                    f"{_g(s['gold_logprob_max_abs_diff'])} / {_g(s['gold_logprob_mean_abs_diff'])} | {s['f1']['float32']:.3f} / {s['f1']['bfloat16']:.3f} | "
                    f"{_pct(s['answers_changed'])} |")
    pairs = ["| gold-answer log-prob, paired | float32 [95% CI] | verdict | bf16 [95% CI] | verdict |", "|---|---:|---|---:|---|"]
    for c in r["comparisons"]:
        if c["metric"] != "gold_logprob":
            continue
        cells = [f"{c[d]['mean']:+.3f} [{c[d]['lo']:+.3f}, {c[d]['hi']:+.3f}] | {label(c[d]['verdict'], margin)}" for d in ("float32", "bfloat16")]
        pairs.append(f"| {name(c['variant'])} − {name(c['reference'])} | {cells[0]} | {cells[1]} |")
    n_cmp, changed = len(r["comparisons"]), r["verdicts_changed"]
    size = (f"gold-answer log-probs per question move by at most {_g(r['max_abs_gold_logprob_diff'])} nats, variant means by at most "
            f"{_g(r['max_abs_variant_mean_diff'])} and paired differences by at most {_g(r['max_abs_mean_shift_gold_logprob'])} "
            f"(equivalence margin ±{margin:g})")
    if not changed:
        words = (f"No verdict changes between bf16 and float32 in any of the {n_cmp} paired comparisons (gold-answer log-prob and F1); {size}. "
                 "Results regenerated in either dtype agree to that tolerance.")
    else:
        words = (f"bf16 changes {len(changed)} of {n_cmp} verdicts: " + "; ".join(changed) + f". {size[0].upper()}{size[1:]}. The findings depend on "
                 "the dtype, so compare results only within one dtype (`results/numerics.json` records a study's).")
    head = (f"**The whole headline in both dtypes** (`bench/dtype_headline.py`, {r['n_questions']} test questions per variant, measured on "
            f"{machine(r)}): {words}")
    return "\n".join([head, "", *rows, "", *pairs])


def numerics_block(root: Path = ROOT) -> str:
    found = results(root)
    table, words = device_check_table(found)
    parts = [table, "", " ".join(words), "", dtype_headline_text(found), "", "Generated by `python bench/report.py readme` from `bench/results/`."]
    return "\n".join(parts).strip()


BLOCKS: dict[str, Callable[[Path], str]] = {"bench": bench_table, "numerics": numerics_block}


def readme(root: Path = ROOT, check: bool = False) -> list[str]:
    """Rewrite (or, with ``check``, only compare) the README's generated bench blocks; the names of the blocks that were stale."""
    from ragalign.report.summary import inject_readme, readme_block

    path = root / "README.md"
    stale = [name for name, make in BLOCKS.items() if readme_block(path, name) != make(root).strip()]
    if not check:
        for name in stale:
            inject_readme(path, BLOCKS[name](root), name=name)
    return stale


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "readme" or set(argv[1:]) - {"--check"}:
        print("usage: python bench/report.py readme [--check]   (rebuild the README's bench and numerics blocks from bench/results)", file=sys.stderr)
        return 2
    stale = readme(ROOT, check="--check" in argv)
    if "--check" in argv:
        print("README blocks stale: " + ", ".join(stale) if stale else "README blocks current")
        return 1 if stale else 0
    print("rewrote README blocks: " + ", ".join(stale) if stale else "README blocks already current")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    raise SystemExit(main())
