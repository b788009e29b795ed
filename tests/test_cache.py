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


def test_a_generator_given_by_path_is_keyed_by_its_weights(tmp_path, smol_tokenizer, tiny_model):
    """Retrain a generator in place: the new weights must never be served the old weights' cached log-probs."""
    import copy

    import torch

    from ragalign.core import models
    from ragalign.core.lm import LM

    tiny_model = copy.deepcopy(tiny_model)  # the fixture is shared by the session: retrain a copy
    path, cache = tmp_path / "my-generator", str(tmp_path / "cache")
    smol_tokenizer.save_pretrained(path)

    def score() -> tuple[str, float]:
        models.load_generator.cache_clear()  # a new stage process loads the model afresh
        lm = LM(str(path), "float32", cache_root=cache, show_progress=False)
        return lm.signature[0], lm.token_logprobs(["Who wrote Hamlet?"], ["Shakespeare"])[0][0]

    tiny_model.save_pretrained(path, safe_serialization=True)
    first_id, first = score()
    assert score() == (first_id, first)  # same weights: the same key, served from the cache
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(0.05)  # "retraining"
    tiny_model.save_pretrained(path, safe_serialization=True)
    second_id, second = score()
    models.load_generator.cache_clear()
    assert first_id.startswith(str(path) + "@") and second_id != first_id
    assert second != first  # recomputed with the new weights, not the old cached value
    assert models.weights_id("smollm2-135m-instruct") == "smollm2-135m-instruct"  # a packaged model: its pinned package
