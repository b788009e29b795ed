"""Benchmark readers into the study's two tables, and the seeded train/test split (no study artifact here:
``core.data`` reads the prepared tables).

- questions: ``qid, dataset, split, question, answers (list[str]), gold_pids (list[str])``
- passages: ``pid, title, text`` with ``pid`` a stable hash of (title, text)
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_PATHS = {
    "hotpotqa": "data/hotpotqa/hotpot_dev_distractor.jsonl",
    "squad": "data/squad/squad_v1.1_dev.json",
    "nq_open": "data/nq_open/nq-open-oracle.jsonl.gz",
}


class DataError(ValueError):
    """A benchmark file is missing or malformed; the message names the file and the record."""


def passage_id(title: str, text: str) -> str:
    """Stable id of a passage: survives re-runs and re-orderings of the corpus."""
    return "p" + hashlib.sha1(f"{title}\x00{text}".encode()).hexdigest()[:12]


def _field(record: dict[str, Any], name: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(record, dict) or name not in record:
        raise DataError(f"{where}: missing field {name!r}")
    value = record[name]
    if not isinstance(value, kind):
        raise DataError(f"{where}: field {name!r} should be {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def _answers(values: list[Any], where: str) -> list[str]:
    answers = [a for a in values if isinstance(a, str) and a.strip()]
    if not answers:
        raise DataError(f"{where}: empty answer list")
    return answers


def _json_lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{where}: not valid JSON ({err.msg}); is the file truncated?") from None
    except (EOFError, gzip.BadGzipFile, OSError) as err:
        raise DataError(f"{path}: cannot read ({err}); is the file truncated? try `dvc pull` again") from None


def _hotpot_id(rec: dict[str, Any], where: str) -> str:
    """The record's id; some copies of the dev set have ``id: null`` and only a ``dev_index``."""
    if isinstance(rec, dict) and isinstance(rec.get("id"), str) and rec["id"]:
        return rec["id"]
    if isinstance(rec, dict) and isinstance(rec.get("dev_index"), int):
        return f"dev-{rec['dev_index']}"
    raise DataError(f"{where}: missing field 'id' (and no 'dev_index' to fall back on)")


def read_hotpotqa(path: Path) -> tuple[list[dict], list[dict]]:
    """HotpotQA distractor: pooled context paragraphs; gold = paragraphs named in supporting_facts."""
    questions, passages = [], {}
    for where, rec in _json_lines(path):
        qid = _hotpot_id(rec, where)
        where = f"{where} (id {qid})"
        question = _field(rec, "question", where, str)
        answers = _answers([_field(rec, "answer", where, str)], where)
        facts = _field(rec, "supporting_facts", where, list)
        context = _field(rec, "context", where, list)
        by_title: dict[str, str] = {}
        for item in context:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], list)):
                raise DataError(f"{where}: field 'context' must hold [title, [sentences]] pairs")
            title, text = item[0], "".join(item[1]).strip()
            pid = passage_id(title, text)
            passages[pid] = {"pid": pid, "title": title, "text": text}
            by_title.setdefault(title, pid)
        gold = sorted({by_title[f[0]] for f in facts if isinstance(f, list) and f and f[0] in by_title})
        if not gold:
            raise DataError(f"{where}: no supporting_facts title matches a context paragraph")
        questions.append({"qid": qid, "question": question, "answers": answers, "gold_pids": gold})
    return questions, list(passages.values())


def read_squad(path: Path) -> tuple[list[dict], list[dict]]:
    """SQuAD v1.1 as a list of paragraphs; a question's gold passage is its own paragraph."""
    try:
        paragraphs = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON at line {err.lineno} ({err.msg}); is the file truncated?") from None
    if not isinstance(paragraphs, list):
        raise DataError(f"{path}: expected a JSON list of paragraphs")
    questions, passages = [], {}
    for number, para in enumerate(paragraphs):
        where = f"{path}: paragraph {number}"
        title = _field(para, "title", where, str)
        text = _field(para, "context", where, str).strip()
        pid = passage_id(title, text)
        passages[pid] = {"pid": pid, "title": title, "text": text}
        for qa in _field(para, "qas", where, list):
            qid = _field(qa, "id", where, str)
            qwhere = f"{where}, question {qid}"
            questions.append(
                {
                    "qid": qid,
                    "question": _field(qa, "question", qwhere, str),
                    "answers": _answers(_field(qa, "answers", qwhere, list), qwhere),
                    "gold_pids": [pid],
                }
            )
    return questions, list(passages.values())


def read_nq_open(path: Path) -> tuple[list[dict], list[dict]]:
    """NQ-open with oracle passages: the corpus pools every question's gold passage."""
    questions, passages = [], {}
    for where, rec in _json_lines(path):
        question = _field(rec, "question", where, str)
        answers = _answers(_field(rec, "answers", where, list), where)
        gold = []
        for ctx in _field(rec, "ctxs", where, list):
            if isinstance(ctx, dict) and ctx.get("isgold"):
                title, text = _field(ctx, "title", where, str), _field(ctx, "text", where, str).strip()
                pid = passage_id(title, text)
                passages[pid] = {"pid": pid, "title": title, "text": text}
                gold.append(pid)
        if not gold:
            raise DataError(f"{where}: no gold passage (ctxs with isgold=true)")
        qid = "nq-" + hashlib.sha1(question.encode()).hexdigest()[:10]
        questions.append({"qid": qid, "question": question, "answers": answers, "gold_pids": sorted(set(gold))})
    return questions, list(passages.values())


READERS = {"hotpotqa": read_hotpotqa, "squad": read_squad, "nq_open": read_nq_open}


def benchmark_file(dataset: str, path: str | Path | None = None) -> Path:
    """The file ``data.path`` names: a file as given, or a directory holding the versioned benchmarks
    (``data``, the default: the dataset's file under its usual name inside it)."""
    root = Path(path or "data")
    if root.is_dir() or root == Path("data"):
        return root / Path(DEFAULT_PATHS[dataset]).relative_to("data")
    return root


def read_benchmark(dataset: str, path: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(questions, passages) of a benchmark, validated: unique ids, non-empty answers, known gold."""
    if dataset not in READERS:
        raise DataError(f"unknown dataset {dataset!r}; allowed: {sorted(READERS)}")
    path = benchmark_file(dataset, path)
    if not path.exists():
        hint = " (run `dvc pull` to fetch the benchmarks)" if path.as_posix() == DEFAULT_PATHS[dataset] else ""
        raise DataError(f"benchmark file not found: {path}{hint}")
    questions, passages = READERS[dataset](path)
    if not questions:
        raise DataError(f"{path}: no questions")
    seen: set[str] = set()
    for q in questions:
        if q["qid"] in seen:
            raise DataError(f"{path}: duplicate question id {q['qid']!r}")
        seen.add(q["qid"])
    qdf = pd.DataFrame(questions)
    qdf.insert(1, "dataset", dataset)
    return qdf, pd.DataFrame(passages, columns=["pid", "title", "text"])


def split_questions(questions: pd.DataFrame, n_train: int, n_test: int, seed: int) -> pd.DataFrame:
    """A seeded sample of ``n_test`` test and ``n_train`` train questions (disjoint)."""
    if n_train + n_test > len(questions):
        raise DataError(
            f"data.n_train + data.n_test = {n_train + n_test} exceeds the {len(questions)} questions available"
        )
    order = np.random.default_rng(seed).permutation(len(questions))
    test, train = order[:n_test], order[n_test : n_test + n_train]
    out = pd.concat(
        [questions.iloc[train].assign(split="train"), questions.iloc[test].assign(split="test")], ignore_index=True
    )
    return out[["qid", "dataset", "split", "question", "answers", "gold_pids"]]
