"""Every params rule fails before any model loads, naming the key, the value and what is allowed."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ragalign.core.params import Params, ParamsError, load, validate

ROOT = Path(__file__).resolve().parents[1]


def defaults() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def with_change(dotted: str, value) -> dict:
    raw = defaults()
    *path, last = dotted.split(".")
    node = raw
    for key in path:
        node = node[key]
    node[last] = value
    return raw


def test_committed_params_are_valid_and_match_schema_defaults():
    assert validate(defaults()) == Params()


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("gain.alpha", -0.1, ["gain.alpha", "greater than or equal to 0", "-0.1"]),
        ("data.dataset", "trivia", ["data.dataset", "'hotpotqa', 'squad' or 'nq_open'", "trivia"]),
        ("data.dataset", "", ["data.dataset", "hotpotqa"]),
        ("data.n_train", "many", ["data.n_train", "valid integer", "many"]),
        ("data.n_test", 0, ["data.n_test", "greater than or equal to 1"]),
        ("rag.top_k", 50, ["rag.top_k=50 exceeds retrieval.k=20", "1..20"]),
        ("gain.k", 21, ["gain.k=21 exceeds retrieval.k=20"]),
        ("selector.top_k", 12, ["selector.top_k=12 exceeds selector.top_n + 1"]),
        ("radio.top_k", 25, ["radio.top_k=25 exceeds"]),
        ("radio.neg_ranks", [0, 3], ["radio.neg_ranks [0]"]),
        ("radio.mix", 1.5, ["radio.mix", "less than or equal to 1"]),
        ("rag_e.warg_p", [0.5, 1.0], ["warg_p", "(0, 1)"]),
        ("rag_e.value", "odds", ["rag_e.value", "'prob' or 'logprob'"]),
        ("models.generator", "no-such/model-anywhere", ["models.generator", "no-such/model-anywhere", "huggingface-cli download"]),
        ("models.dtype", "float16", ["models.dtype", "'bfloat16' or 'float32'"]),
        ("training.val_fraction", 1.0, ["training.val_fraction", "less than 1"]),
        ("data.extra_knob", 3, ["data.extra_knob", "unknown key"]),
        ("training.prior_temperature", "fitted", ["training.prior_temperature", "'fit'", "valid number"]),
        ("training.prior_temperature", 0, ["training.prior_temperature", "greater than 0"]),
        ("curve.answer_sizes", [300], ["curve.answer_sizes [300] are not in curve.sizes"]),
        ("curve.sizes", [2, 50], ["curve.sizes.0", "greater than or equal to 5"]),
    ],
)
def test_bad_values_name_key_value_and_allowed(key, value, expected):
    with pytest.raises(ParamsError) as err:
        validate(with_change(key, value))
    for fragment in expected:
        assert fragment in str(err.value), str(err.value)


def test_unknown_section_rejected():
    raw = defaults() | {"gainrag": {"alpha": 1}}
    with pytest.raises(ParamsError, match="gainrag: unknown key"):
        validate(raw)


def test_local_model_dir_must_hold_safetensors(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ParamsError, match="only safetensors"):
        validate(with_change("models.encoder", str(tmp_path)))


def test_load_reports_missing_and_broken_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load(bad)


def test_check_command(tmp_path):
    good = subprocess.run([sys.executable, "-m", "ragalign.core.params", "check", str(ROOT / "params.yaml")], capture_output=True, text=True)
    assert good.returncode == 0 and "ok" in good.stdout
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(with_change("gain.alpha", -1)))
    out = subprocess.run([sys.executable, "-m", "ragalign.core.params", "check", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1 and "gain.alpha" in out.stderr


def test_estimator_names_match_the_shapley_registry():
    from ragalign.audit.shapley import ESTIMATORS
    from ragalign.core.param_sections import SHAPLEY_ESTIMATORS

    assert sorted(SHAPLEY_ESTIMATORS) == sorted(ESTIMATORS)
    with pytest.raises(ParamsError, match="rag_e.estimator"):
        validate({"rag_e": {"estimator": "magic"}})


def test_sizes_beyond_the_benchmark_name_the_key_and_the_largest_allowed_value():
    from ragalign.core.params import size_problems

    params = validate(defaults())  # 200 train + 100 test questions, 200 held out by the curve, at most 800 for a point
    assert size_problems(params, 1578) == []
    problems = size_problems(params, 1200)  # 900 outside the splits: the curve's 800 + 200 do not fit, the reader's 500 and the powered 400 do
    assert [p.split(" ")[0] for p in problems] == ["curve.sizes", "seam_curve.sizes"] and "largest allowed value: 700" in problems[0]
    assert "seam_curve.sizes asks for 400" in problems[1] and "largest allowed value: 200" in problems[1]  # the train split alone is left to it
    problems = size_problems(params, 1199)  # one fewer: the powered rows' 400 fresh questions no longer fit beside the reader's 500
    assert [p.split(" ")[0] for p in problems] == ["curve.sizes", "powered.n_questions", "seam_curve.sizes"] and "largest allowed value: 399" in problems[1]
    problems = size_problems(params, 600)
    assert [p.split(" ")[0] for p in problems] == ["reader.n_questions", "curve.sizes", "powered.n_questions", "seam_curve.sizes"] and "largest allowed: 300" in problems[0]


def test_check_command_refuses_a_curve_larger_than_the_benchmark(tmp_path):
    from ragalign.core.params import main
    from ragalign.smoke import write_benchmark

    write_benchmark(tmp_path, "hotpotqa", n=40)
    raw = with_change("curve.sizes", [50])
    raw["data"] |= {"path": str(tmp_path / "data"), "n_train": 16, "n_test": 8}
    raw["reader"]["n_questions"] = 10
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["check", str(path)]) == 1
