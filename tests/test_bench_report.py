"""bench/report.py's README blocks from small fake results, and the precision benchmarks' "does it learn" rule."""

import importlib
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))
report = importlib.import_module("report")
against_prior = importlib.import_module("against_prior")

NATIVE = {"cpu": {"vendor": "GenuineIntel", "model": "Intel Xeon Fake", "family": 6, "model_number": 143, "capability": "AVX512",
                  "bf16_flags": ["amx_bf16", "avx512_bf16"]}, "torch": "2.13.0+cpu", "python": "3.11.7", "torch_threads": 2}
EMULATED = {"cpu": {"vendor": "AuthenticAMD", "model": "AMD EPYC Fake", "family": 25, "model_number": 1, "capability": "AVX2", "bf16_flags": []},
            "torch": "2.13.0+cpu", "python": "3.11.7", "torch_threads": 2}
PATH_SECONDS = {"likelihood": 1.0, "generation": 2.0, "gain_labelling": 3.0, "coalitions": 4.0}
DIFFS = {"gold_logprob_max_abs_diff": 0.12, "gain_label_max_abs_diff": 0.4, "best_passage_flips": 0.0, "answers_changed": 0.25,
         "shapley_max_abs_diff": 0.002, "shapley_top_document_flips": 0.0}


def device_check(host=None) -> dict:
    run = {"batch_invariant_scores": True, "batch_invariant_answers": True, "seconds": PATH_SECONDS}
    out = {"n_questions": 3, "device_names": {"cuda": None}, "runs": {"cpu/bfloat16": run, "cpu/float32": run},
           "comparisons": {"cpu/bfloat16 vs cpu/float32": DIFFS}}
    return out | ({"host": host} if host else {"cpu_model": "Old CPU", "cpu_threads": 4})


def comparison(variant: str, reference: str, words: tuple[str, str], shift: float) -> dict:
    f32 = {"mean": 0.05, "lo": -0.05, "hi": 0.08, "verdict": words[0]}
    b16 = {"mean": 0.05 + shift, "lo": -0.05 + shift, "hi": 0.08 + shift, "verdict": words[1]}
    return {"metric": "gold_logprob", "variant": variant, "reference": reference, "kind": "dense", "float32": f32, "bfloat16": b16,
            "verdict_changes": words[0] != words[1], "mean_shift": shift}


def dtype_headline(changed: bool) -> dict:
    variant = {"gold_logprob": {"float32": -3.9, "bfloat16": -3.92}, "gold_logprob_max_abs_diff": 0.151, "gold_logprob_mean_abs_diff": 0.03,
               "em": {"float32": 0.0, "bfloat16": 0.0}, "f1": {"float32": 0.05, "bfloat16": 0.06}, "answers_changed": 0.2, "n": 100}
    comparisons = [comparison("radio", "dense", ("equivalent", "equivalent"), 0.001),
                   comparison("figret", "dense", ("not told apart", "beats" if changed else "not told apart"), 0.07)]
    return {"n_questions": 100, "variants": {"dense": variant, "radio": variant, "figret": variant}, "comparisons": comparisons,
            "verdicts_changed": ["gold_logprob: figret - dense: not told apart -> beats"] if changed else [],
            "max_abs_gold_logprob_diff": 0.151, "max_abs_mean_shift_gold_logprob": 0.07, "max_abs_variant_mean_diff": 0.02,
            "equivalence_margin": 0.1, "seconds": {"float32": 10.0, "bfloat16": 5.0}, "host": NATIVE}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "device_check_fake.json").write_text(json.dumps(device_check()))
    (tmp_path / "README.md").write_text("intro 1 2 3\n<!-- bench:begin -->\nold\n<!-- bench:end -->\nmiddle\n"
                                        "<!-- numerics:begin -->\n<!-- numerics:end -->\nend\n")
    return tmp_path


def write(root: Path, name: str, result: dict) -> None:
    (root / "bench" / "results" / name).write_text(json.dumps(result))


def test_numerics_block_says_the_headline_is_still_to_be_measured_without_its_result(root):
    block = report.numerics_block(root)
    assert "still to be measured" in block
    assert "| CPU bf16 vs CPU float32 | 0.12 | 0.4 | 0% | 25% | 0.002 | 0% |" in block
    assert "on the same 3 HotpotQA questions" in block and "CPU not recorded (named Old CPU, 4 threads)" in block
    assert "| `bench/dtype_headline.py` |" in report.bench_table(root) and "not run yet" in report.bench_table(root)


def test_numerics_block_from_a_dtype_headline_without_verdict_changes(root):
    write(root, "dtype_headline.json", dtype_headline(changed=False))
    block = report.numerics_block(root)
    assert "still to be measured" not in block
    assert "No verdict changes between bf16 and float32 in any of the 2 paired comparisons" in block
    assert "move by at most 0.15 nats, variant means by at most 0.02 and paired differences by at most 0.07 (equivalence margin ±0.1)" in block
    assert "| dense top-k | -3.900 | -3.920 | 0.15 / 0.03 | 0.050 / 0.060 | 20% |" in block
    assert "| RADIO − dense top-k | +0.050 [-0.050, +0.080] | equivalent within ±0.1 |" in block
    assert "Intel Xeon Fake (family 6, AVX512, native bf16 (amx_bf16, avx512_bf16), 2 threads)" in block


def test_numerics_block_lists_the_verdicts_bf16_changes(root):
    write(root, "dtype_headline.json", dtype_headline(changed=True))
    block = report.numerics_block(root)
    assert "bf16 changes 1 of 2 verdicts: gold_logprob: figret - dense: not told apart -> beats." in block
    assert "No verdict changes" not in block


def test_readme_rewrites_its_two_blocks_and_nothing_else(root):
    assert report.readme(root, check=True) == ["bench", "numerics"]
    assert report.readme(root) == ["bench", "numerics"]
    text = (root / "README.md").read_text()
    assert text.startswith("intro 1 2 3\n<!-- bench:begin -->\n| benchmark |") and "\nmiddle\n" in text and text.endswith("<!-- numerics:end -->\nend\n")
    assert report.readme(root, check=True) == []


def test_the_machine_column_names_the_cpu_and_where_bf16_timings_hold(root):
    write(root, "encode_precision.json", {"precisions": {"bf16 autocast": {"passages_per_second": 10.0, "mrr": 0.5},
                                                          "float32": {"passages_per_second": 20.0, "mrr": 0.5}},
                                          "speedup": 0.5, "min_cosine": 0.9999, "questions": 4, "passages": 8, "host": EMULATED})
    table = report.bench_table(root)
    row = next(line for line in table.splitlines() if "encode_precision" in line)
    assert "10 vs 20 passages/s (0.50x)" in row
    assert "AMD EPYC Fake (family 25, AVX2, no native bf16, 2 threads)" in row and "bf16 is emulated on this CPU" in row
    old = next(line for line in table.splitlines() if "device_check_fake" in line)
    assert "CPU not recorded" in old and "holds on bf16-native CPUs only" in old
    assert "native bf16 (amx_bf16, avx512_bf16)" in report.machine({"host": NATIVE})
    assert "NVIDIA Fake" in report.machine({"host": NATIVE | {"cuda_device": "NVIDIA Fake"}})


# Results of runs on a lent GPU machine before `emit` recorded the host: they name the GPU and the host's CPU model
# only, and no GPU is at hand to run them again. Nothing may join this list.
UNHOSTED_DEVICE_RESULTS = {"device_check_h200.json", "device_check_h200_padded_batches.json", "device_training_h100.json"}


def test_every_committed_result_names_the_machine_it_holds_on():
    """Each file in bench/results has a ``host`` block, or times nothing (its row says "any machine"); the three
    older GPU results are the only exceptions, and their rows say what is not recorded."""
    for path, result in report.results(ROOT).items():
        bench = report.BENCHES[report.bench_of(path)]
        if path.name in UNHOSTED_DEVICE_RESULTS:
            assert "not recorded" in report.machine(result), path.name
        elif bench.machine_free is None:
            assert {"model", "family", "capability", "bf16_flags"} <= set(result.get("host", {}).get("cpu", {})), f"{path.name}: no host block"
    table = report.bench_table(ROOT)
    assert "any machine: counts of look-ups" in next(line for line in table.splitlines() if "shapley_convergence" in line)


def test_a_result_no_benchmark_formats_is_an_error(root):
    write(root, "mystery.json", {})
    with pytest.raises(KeyError, match="mystery.json"):
        report.bench_table(root)


def test_train_precision_rows_say_whether_the_run_learned():
    old = {"runs": {"float32": {"seconds_per_step": 2.0, "val_loss_start": 0.8161, "val_loss_best": 0.8159},
                    "bf16_autocast": {"seconds_per_step": 1.0, "val_loss_start": 0.8161, "val_loss_best": 0.8159}}, "speedup": 2.0}
    assert "barely learns, so it does not show that the precisions agree" in report.row_train_precision(old)
    run = {"seconds_per_step": 1.0, "val_loss_start": 3.7, "val_loss_best": 1.2, "val_target_at_1": "9/13"}
    new = {"runs": {"float32": run, "bf16_autocast": run}, "speedup": 1.0, "prior_target_at_1": "0/13",
           "agreement": against_prior.learning({"float32": [3.7, 2.0, 1.2], "bf16_autocast": [3.7, 2.01, 1.21]})}
    assert "the precisions agree on a run that learns" in report.row_train_precision(new)
    new["agreement"] = against_prior.learning({"float32": [3.7, 2.0, 1.2], "bf16_autocast": [3.7, 2.5, 1.5]})
    assert "does not show agreement" in report.row_train_precision(new)


def test_learning_needs_a_descent_ten_times_the_difference_and_a_tenth_of_the_start():
    assert against_prior.learning({"a": [3.0, 2.0, 1.0], "b": [3.0, 2.05, 1.05]})["learns"]  # 2.0 > 10 x 0.05
    assert not against_prior.learning({"a": [3.0, 2.0, 1.0], "b": [3.0, 2.3, 1.3]})["learns"]  # 1.7 < 10 x 0.3
    flat = against_prior.learning({"a": [0.8161, 0.8160, 0.8159], "b": [0.8161, 0.8160, 0.8159]})
    assert flat["val_loss_max_abs_diff"] == 0 and not flat["learns"]  # agree to the digit, but nothing moved
    assert against_prior.learning({"a": [3.0, 1.0], "b": [3.0, 1.1]})["runs"]["b"] == {"val_loss_start": 3.0, "val_loss_best": 1.1, "descent": 1.9}
    with pytest.raises(ValueError):
        against_prior.learning({"a": [3.0, 1.0], "b": [3.0]})


def test_toy_groups_put_the_answer_first_and_the_baits_restate_the_question():
    groups = against_prior.groups(12, seed=0, group_size=6, filler=2)
    assert len({g.qid for g in groups}) == 12 and len({g.query for g in groups}) == 12  # every group another person
    for g in groups:
        assert g.target == (1.0, 0.0, 0.0, 0.0, 0.0, 0.0) and len(g.passages) == 6
        who = re.search(r"[A-Z][a-z]+ [A-Z][a-z]+", g.query).group(0)
        assert who in g.passages[0] and who not in " ".join(g.passages[3:])  # the answer names the person, the others do not
        assert g.query in g.passages[1]  # a bait repeats the question word for word
    assert against_prior.groups(12, seed=0) == against_prior.groups(12, seed=0)  # seeded
