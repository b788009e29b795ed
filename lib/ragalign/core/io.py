"""Atomic writes: a reader never sees a half-written file, an interrupted write leaves none."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

TALLY_ENV = "RAGALIGN_CACHE_TALLY"  # where a stage's kernel writes its LLM-cache tally for the runner (core.cache.tally)
STUDY_START_ENV = "RAGALIGN_STUDY_START"  # when the study run (the ``dvc repro`` running the stage) began, unix seconds
SPENT_ENV = "RAGALIGN_SPENT"  # where a stage's kernel writes its seconds per kind of work for the runner (core.stopwatch)

def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> None:
    """Deterministic JSON (sorted keys, fixed indent), written atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=True) + "\n")


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """A parquet file written atomically, without ``df.attrs`` (pandas would store them in the file's
    metadata: side data such as a training curve's per-item held-out losses never changes an artifact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if df.attrs:
        df = df.copy(deep=False)
        df.attrs = {}
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
