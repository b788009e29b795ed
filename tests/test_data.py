import gzip
import json

import pytest

from ragalign.core.benchmarks import DataError, passage_id, read_benchmark, split_questions
from ragalign.smoke import hotpot_record


def test_hotpot_reader_pools_corpus_and_gold(hotpot_file):
    q, p = read_benchmark("hotpotqa", hotpot_file)
    assert len(q) == 20 and len(p) == 20 * 5
    row = q.iloc[3]
    gold_titles = set(p.set_index("pid").loc[row.gold_pids].title)
    assert gold_titles == {"Gold A3", "Gold B3"}
    assert row.answers == ["City3"]
    text = p.set_index("pid").loc[passage_id("Gold A3", "Person3 was born in City3. They lived there.")].text
    assert text == "Person3 was born in City3. They lived there."


def test_hotpot_null_id_falls_back_to_dev_index(tmp_path):
    rec = hotpot_record(0) | {"id": None, "dev_index": 53}
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    q, _ = read_benchmark("hotpotqa", path)
    assert q.qid.tolist() == ["dev-53"]


def test_passages_deduplicated_on_title_and_text(tmp_path):
    a, b = hotpot_record(0), hotpot_record(1)
    b["context"].append(a["context"][0])  # same paragraph shared by two questions
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(a) + "\n" + json.dumps(b) + "\n")
    _, p = read_benchmark("hotpotqa", path)
    assert p.pid.is_unique and len(p) == 10


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("question"), ":2 (id q1): missing field 'question'"),
        (lambda r: r.update(answer=""), ":2 (id q1): empty answer list"),
        (lambda r: r.update(context="oops"), "field 'context' should be list"),
    ],
)
def test_hotpot_bad_record_names_file_line_field(tmp_path, mutate, message):
    records = [hotpot_record(0), hotpot_record(1)]
    mutate(records[1])
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(DataError) as err:
        read_benchmark("hotpotqa", path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_truncated_line_is_reported(tmp_path):
    path = tmp_path / "trunc.jsonl"
    path.write_text(json.dumps(hotpot_record(0)) + "\n" + json.dumps(hotpot_record(1))[:50])
    with pytest.raises(DataError, match=r"trunc.jsonl:2: not valid JSON.*truncated"):
        read_benchmark("hotpotqa", path)


def test_duplicate_ids_rejected(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text(json.dumps(hotpot_record(0)) + "\n" + json.dumps(hotpot_record(0)) + "\n")
    with pytest.raises(DataError, match="duplicate question id 'q0'"):
        read_benchmark("hotpotqa", path)


def test_missing_file_says_dvc_pull(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="dvc pull"):
        read_benchmark("squad")


def test_squad_reader(tmp_path):
    data = [
        {"title": "T1", "context": "Alpha is first.", "qas": [{"id": "s1", "question": "What is first?", "answers": ["Alpha", "alpha"]}]},
        {"title": "T2", "context": "Beta is second.", "qas": [{"id": "s2", "question": "What is second?", "answers": ["Beta"]}]},
    ]
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data))
    q, p = read_benchmark("squad", path)
    assert len(p) == 2 and q.set_index("qid").loc["s2"].gold_pids == [passage_id("T2", "Beta is second.")]
    data[1]["qas"][0]["answers"] = []
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="paragraph 1, question s2: empty answer list"):
        read_benchmark("squad", path)
    path.write_text(json.dumps(data)[:40])
    with pytest.raises(DataError, match="not valid JSON"):
        read_benchmark("squad", path)


def test_nq_reader_and_truncated_gzip(tmp_path):
    recs = [
        {"question": f"q{i}?", "answers": [f"a{i}"], "ctxs": [{"title": f"T{i}", "text": f"a{i} text", "hasanswer": True, "isgold": True}], "nq_annotated_gold": {}}
        for i in range(3)
    ]
    path = tmp_path / "nq.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in recs))
    q, p = read_benchmark("nq_open", path)
    assert len(q) == 3 and len(p) == 3 and all(len(g) == 1 for g in q.gold_pids)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_benchmark("nq_open", path)


def test_split_is_seeded_and_disjoint(hotpot_file):
    q, _ = read_benchmark("hotpotqa", hotpot_file)
    a, b = split_questions(q, 8, 5, seed=1), split_questions(q, 8, 5, seed=1)
    assert a.equals(b)
    assert (a.split == "train").sum() == 8 and (a.split == "test").sum() == 5 and a.qid.is_unique
    assert not split_questions(q, 8, 5, seed=2).qid.equals(a.qid)
    with pytest.raises(DataError, match="exceeds the 20 questions"):
        split_questions(q, 15, 6, seed=1)
