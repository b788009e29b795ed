import sqlite3

import pytest

from ragalign.core.cache import Cache, make_key


def test_map_computes_missing_only_and_dedups(tmp_path):
    cache, calls = Cache("t", tmp_path), []

    def compute(items):
        calls.extend(items)
        return [x * 2 for x in items]

    keys = [make_key(x) for x in [1, 2, 2, 3]]
    assert cache.map(keys, [1, 2, 2, 3], compute) == [2, 4, 4, 6]
    assert calls == [1, 2, 3]
    assert Cache("t", tmp_path).map(keys, [1, 2, 2, 3], compute) == [2, 4, 4, 6]
    assert calls == [1, 2, 3]  # a new process reads everything back


def test_map_chunks_alike_work_together_and_answers_in_key_order(tmp_path):
    """``sort_key`` orders the missing items before chunking (alike work in one chunk); values come back in key order."""
    cache, chunks = Cache("t", tmp_path), []

    def compute(items):
        chunks.append(list(items))
        return [-x for x in items]

    items = [5, 1, 4, 1, 3, 2]
    assert cache.map([make_key(x) for x in items], items, compute, chunk_size=2, sort_key=lambda x: x) == [-5, -1, -4, -1, -3, -2]
    assert chunks == [[1, 2], [3, 4], [5]]


def test_interrupted_map_keeps_finished_chunks(tmp_path):
    cache = Cache("t", tmp_path)
    keys = [make_key(i) for i in range(10)]

    def flaky(items):
        if 6 in items:
            raise KeyboardInterrupt
        return [float(i) for i in items]

    with pytest.raises(KeyboardInterrupt):
        cache.map(keys, list(range(10)), flaky, chunk_size=3)
    assert len(Cache("t", tmp_path)) == 6  # chunks [0,1,2] and [3,4,5] were committed
    seen = []
    out = Cache("t", tmp_path).map(keys, list(range(10)), lambda xs: seen.extend(xs) or [float(i) for i in xs], chunk_size=3)
    assert out == [float(i) for i in range(10)] and seen == [6, 7, 8, 9]


def test_corrupt_entry_is_recomputed_not_trusted(tmp_path):
    cache = Cache("t", tmp_path)
    key = make_key("a")
    cache.put_many({key: [1.0, 2.0]})
    with sqlite3.connect(cache.path) as conn:
        conn.execute("UPDATE entries SET value = ? WHERE key = ?", ("[1.0, 9.0]", key))
    fresh = Cache("t", tmp_path)
    with pytest.warns(UserWarning, match="corrupt cache entry"):
        assert fresh.map([key], ["a"], lambda items: [[1.0, 2.0]]) == [[1.0, 2.0]]
    assert fresh.misses == 1


def test_corrupt_file_is_moved_aside(tmp_path):
    (tmp_path / "t.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.warns(UserWarning, match="corrupt"):
        cache = Cache("t", tmp_path)
    assert cache.map([make_key(1)], [1], lambda xs: xs) == [1]
    assert (tmp_path / "t.corrupt").exists()


def test_keys_depend_on_every_part():
    assert make_key("m", "p", 1) != make_key("m", "p", 2) != make_key("m2", "p", 1)
    assert make_key("m", {"a": 1, "b": 2}) == make_key("m", {"b": 2, "a": 1})


def _score(path, cache: str) -> tuple[str, float, int]:
    """(key, log-prob of the first answer token, cache misses) through a new ``LM`` in this process."""
    from ragalign.core.lm import LM

    lm = LM(str(path), "float32", cache_root=cache, show_progress=False)
    value = lm.token_logprobs(["Who wrote Hamlet?"], ["Shakespeare"])[0][0]
    return lm.signature[0], value, lm.cache.misses


def _plain_transformers(path) -> float:
    """The same log-prob straight from transformers, no cache, no memo."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    prompt = tok.apply_chat_template([{"role": "user", "content": "Who wrote Hamlet?"}], tokenize=True, add_generation_prompt=True)
    prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
    answer = tok("Shakespeare", add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([prompt + answer[:1]])).logits[0, len(prompt) - 1].float()
    return torch.log_softmax(logits, -1)[answer[0]].item()


@pytest.fixture
def generator_dir(tmp_path, smol_tokenizer, tiny_model):
    """A copy of the tiny generator saved as a local model directory (weights, config, tokenizer)."""
    import copy

    path = tmp_path / "my-generator"
    smol_tokenizer.save_pretrained(path)
    copy.deepcopy(tiny_model).save_pretrained(path, safe_serialization=True)
    return path


def test_a_generator_retrained_in_place_gets_its_new_weights_values(generator_dir, tmp_path):
    """Retrain in place within one process, clearing nothing: the new weights' values, under a new key,
    and a later process reading the cache gets them too (the stale-memo bug of issue 29)."""
    import torch
    from transformers import AutoModelForCausalLM

    cache = str(tmp_path / "cache")
    first_key, first, _ = _score(generator_dir, cache)
    assert _score(generator_dir, cache)[:2] == (first_key, first)  # same files: same key, served from the cache
    model = AutoModelForCausalLM.from_pretrained(generator_dir, dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.mul_(0.5)  # "retraining"
    model.save_pretrained(generator_dir, safe_serialization=True)

    second_key, second, misses = _score(generator_dir, cache)
    truth = _plain_transformers(generator_dir)
    assert second_key != first_key and misses == 1
    assert second == pytest.approx(truth, abs=1e-5) and abs(second - first) > 1e-3
    assert _score(generator_dir, str(tmp_path / "empty"))[1] == second  # what the cache holds is what the weights give


def test_a_tokenizer_change_alone_is_a_cache_miss(generator_dir, tmp_path):
    from transformers import AutoTokenizer

    cache = str(tmp_path / "cache")
    first_key, _, _ = _score(generator_dir, cache)
    tok = AutoTokenizer.from_pretrained(generator_dir)
    tok.chat_template = tok.chat_template.replace("<|im_start|>assistant", "<|im_start|>assistant ")
    tok.save_pretrained(generator_dir)
    key, _, misses = _score(generator_dir, cache)
    assert key != first_key and misses == 1


def test_the_content_id_reads_bytes_not_timestamps(generator_dir):
    """A file rewritten with the same size and modification time still changes the id."""
    import os

    from ragalign.core import models

    before = models.content_id(generator_dir)
    config = generator_dir / "config.json"
    stat, text = config.stat(), config.read_text()
    assert '"hidden_act": "silu"' in text
    config.write_text(text.replace('"hidden_act": "silu"', '"hidden_act": "gelu"'))
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert config.stat().st_size == stat.st_size and models.content_id(generator_dir) != before


def test_the_generator_key_names_dtype_device_and_library_versions(generator_dir, monkeypatch):
    import transformers

    from ragalign.core import models

    key = models.generator_key(generator_dir, "float32", "cpu")
    assert key != models.generator_key(generator_dir, "bfloat16", "cpu")
    assert key != models.generator_key(generator_dir, "float32", "cuda")
    assert key == models.generator_key(generator_dir, "float32", "cpu")
    monkeypatch.setattr(transformers, "__version__", "0.0.0")
    assert key != models.generator_key(generator_dir, "float32", "cpu")


def test_the_tally_counts_values_computed_and_values_a_warm_cache_served(tmp_path, monkeypatch):
    """A stage is cold when nothing it read came from an earlier run: a value this process computed and
    reads again is no hit; the same value read by a new process is."""
    from ragalign.core import cache as C

    monkeypatch.setattr(C, "_TALLY", {})
    monkeypatch.setattr(C, "_WRITTEN", set())
    monkeypatch.setenv(C.TALLY_ENV, str(tmp_path / "tally.json"))
    monkeypatch.delenv(C.STUDY_START_ENV, raising=False)
    keys = [make_key(i) for i in range(3)]
    first = Cache("t", tmp_path)
    first.map(keys[:2], [0, 1], lambda xs: xs)
    first.map(keys, [0, 1, 2], lambda xs: xs)  # two read back from this process's own writes, one computed
    assert C.tally() == {"t": {"hits": 0, "shared": 0, "computed": 3}} and first.hits == 2
    monkeypatch.setattr(C, "_WRITTEN", set())  # a new process, the same cache on disk
    Cache("t", tmp_path).map(keys, [0, 1, 2], lambda xs: xs)
    assert C.tally() == {"t": {"hits": 3, "shared": 0, "computed": 3}}
    import json

    assert json.loads((tmp_path / "tally.json").read_text()) == C.tally()  # what the runner reads


def test_values_an_earlier_stage_of_the_same_study_run_computed_are_shared_not_hits(tmp_path, monkeypatch):
    """A cold study computes each value once and later stages read it: that is no warm run. Only values
    written before the study run began are hits; entries of a cache from before entries kept their time
    count as hits (their time is unknown)."""
    import sqlite3
    import time

    from ragalign.core import cache as C

    monkeypatch.setattr(C, "_TALLY", {})
    monkeypatch.setattr(C, "_WRITTEN", set())
    monkeypatch.delenv(C.TALLY_ENV, raising=False)
    old = sqlite3.connect(tmp_path / "t.sqlite")  # the old schema: no write time
    with old:
        old.execute("CREATE TABLE entries (key TEXT PRIMARY KEY, value TEXT, checksum TEXT)")
        old.execute("INSERT INTO entries VALUES (?, ?, ?)", (make_key("old"), "7", C._checksum("7")))
    old.close()
    Cache("t", tmp_path).put_many({make_key("before"): 1})
    time.sleep(0.01)
    monkeypatch.setenv(C.STUDY_START_ENV, str(time.time()))  # the study run begins
    Cache("t", tmp_path).put_many({make_key("earlier stage"): 2})  # stage A of the run (another process)
    monkeypatch.setattr(C, "_WRITTEN", set())  # stage B, a new process
    keys = [make_key(k) for k in ("old", "before", "earlier stage", "new")]
    values = Cache("t", tmp_path).map(keys, ["old", "before", "earlier stage", "new"], lambda xs: [9 for _ in xs])
    assert values == [7, 1, 2, 9]
    assert C.tally() == {"t": {"hits": 2, "shared": 1, "computed": 1}}


def test_the_study_run_began_with_the_outermost_dvc_process_or_the_stage(monkeypatch):
    from ragalign import runner

    monkeypatch.delenv(runner.STUDY_START_ENV, raising=False)
    assert runner.study_started(123.0) == 123.0  # pytest has no dvc above it: the stage is its own run
    monkeypatch.setenv(runner.STUDY_START_ENV, "42.5")
    assert runner.study_started(123.0) == 42.5


def test_a_stage_under_dvc_repro_dates_the_study_run_from_dvc(tmp_path, monkeypatch):
    """Run as ``dvc repro`` runs a stage (python .../dvc repro -> sh -> runner): the run began when dvc did."""
    import subprocess
    import sys
    import time

    from ragalign import runner

    monkeypatch.delenv(runner.STUDY_START_ENV, raising=False)
    fake_dvc = tmp_path / "dvc"
    stage = "from ragalign.runner import study_started; import time; print(study_started(time.time()))"
    fake_dvc.write_text(f"import subprocess, sys, time\ntime.sleep(0.5)\nsubprocess.run(['sh', '-c', sys.executable + ' -c \"{stage}\"'])\n")
    before = time.time()
    shown = subprocess.run([sys.executable, str(fake_dvc), "repro", "12_x"], capture_output=True, text=True, check=True)
    started = float(shown.stdout)
    assert before - 1 < started < before + 0.4  # dvc's start, not the stage's (0.5 s later)


def test_a_stage_is_cold_only_when_no_value_came_from_the_cache():
    from ragalign.runner import temperature

    assert temperature({})["cold"] and temperature({"lm": {"hits": 0, "computed": 5}})["cold"]
    assert not temperature({"lm": {"hits": 1, "computed": 5}, "gain": {"hits": 0, "computed": 2}})["cold"]
    assert temperature({"lm": {"hits": 0, "shared": 13, "computed": 418}})["cold"]  # read from an earlier stage of the run
