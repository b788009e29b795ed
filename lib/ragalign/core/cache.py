"""On-disk cache of expensive evaluations (LLM scores, generations, subset values).

One SQLite file per namespace; each entry is keyed by a hash of everything that determines it
(model, prompt, decoding settings) and stored with a checksum, so an interrupted stage resumes
from what it finished and a corrupted entry is recomputed instead of trusted. Each entry keeps the
time it was written, so a stage can tell a value an earlier run left (a warm run) from one an earlier
stage of the same study run computed (work a cold study does once and shares).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ragalign.core.io import STUDY_START_ENV, TALLY_ENV, atomic_write_text
from ragalign.core.models import cache_dir

_TALLY: dict[str, dict[str, int]] = {}  # namespace -> {"hits", "shared", "computed"}: this process's cached values
_WRITTEN: set[tuple[str, str]] = set()  # (namespace, key) this process computed: reading them back is no hit


def tally() -> dict[str, dict[str, int]]:
    """Per namespace, the values this process computed (``computed``) and those it read that it had not:
    ``hits`` were written before the study run began (a warm run), ``shared`` by an earlier stage of the
    same run (work a cold study also does once; :func:`study_start`)."""
    return {ns: dict(counts) for ns, counts in sorted(_TALLY.items())}


def study_start() -> float:
    """When the study run this process belongs to began (``STUDY_START_ENV``, set by the runner); without
    one, every value found that this process did not compute is a hit."""
    return float(os.environ.get(STUDY_START_ENV) or "inf")


def _count(namespace: str, hits: int, shared: int, computed: int) -> None:
    counts = _TALLY.setdefault(namespace, {"hits": 0, "shared": 0, "computed": 0})
    counts["hits"] += hits
    counts["shared"] += shared
    counts["computed"] += computed
    if os.environ.get(TALLY_ENV):  # the stage's kernel reports to the runner that times it
        atomic_write_text(os.environ[TALLY_ENV], json.dumps(tally(), sort_keys=True))


def make_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _checksum(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


class Cache:
    """A persistent key -> JSON value store with atomic batched writes."""

    def __init__(self, namespace: str, root: str | Path | None = None):
        root = Path(root) if root is not None else cache_dir()
        root.mkdir(parents=True, exist_ok=True)
        self.namespace = namespace
        self.path = root / f"{namespace}.sqlite"
        self.hits = 0
        self.misses = 0
        self._written_at: dict[str, float | None] = {}  # key -> when the value found was written
        self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=120)
            conn.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT, checksum TEXT, written REAL)")
            columns = {row[1] for row in conn.execute("PRAGMA table_info(entries)")}
            if "written" not in columns:  # a cache from before entries kept their time: theirs is unknown (NULL)
                conn.execute("ALTER TABLE entries ADD COLUMN written REAL")
            conn.execute("PRAGMA journal_mode=WAL")
            return conn
        except sqlite3.DatabaseError:
            broken = self.path.with_suffix(".corrupt")
            warnings.warn(f"cache file {self.path} is corrupt; moved to {broken} and starting afresh", stacklevel=2)
            self.path.replace(broken)
            return self._connect()

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """Values of the keys that are present and intact."""
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT key, value, checksum, written FROM entries WHERE key IN ({marks})", chunk)
            for key, value, checksum, written in rows:
                if checksum != _checksum(value):
                    warnings.warn(f"corrupt cache entry {key[:12]} in {self.path.name}; recomputing", stacklevel=2)
                    continue
                try:
                    found[key] = json.loads(value)
                except json.JSONDecodeError:
                    continue
                self._written_at[key] = written
        return found

    def count(self, keys: Sequence[str], found: dict[str, Any], computed: int) -> None:
        """Tally a lookup of ``keys``: ``hits``/``misses`` here (served from the cache / not), and for the
        process (:func:`tally`) the values found that it had not computed itself, split by :meth:`warm`,
        and those ``computed``."""
        self.hits += sum(k in found for k in keys)
        self.misses += sum(k not in found for k in keys)
        earlier = [key for key in found if (self.namespace, key) not in _WRITTEN]
        warm = sum(self.warm(key) for key in earlier)
        _count(self.namespace, warm, len(earlier) - warm, computed)

    def warm(self, key: str) -> bool:
        """Whether a value found was written before the study run began (unknown times count as before)."""
        written = self._written_at.get(key)
        return written is None or written < study_start()

    def put_many(self, items: dict[str, Any]) -> None:
        """Write entries in one transaction (all or nothing)."""
        rows, now = [], time.time()
        for key, value in items.items():
            blob = json.dumps(value, ensure_ascii=False)
            rows.append((key, blob, _checksum(blob), now))
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO entries (key, value, checksum, written) VALUES (?, ?, ?, ?)", rows)
        _WRITTEN.update((self.namespace, key) for key in items)

    def map(
        self,
        keys: Sequence[str],
        items: Sequence[Any],
        compute: Callable[[list[Any]], list[Any]],
        chunk_size: int = 64,
        sort_key: Callable[[Any], Any] | None = None,
    ) -> list[Any]:
        """Values for ``items``: cached ones read, missing ones computed in chunks and stored. ``sort_key``
        orders the missing items before they are chunked, so that a chunk holds alike work (prompts of one
        length decode together: ``LM.generate``); the values must not depend on the order."""
        assert len(keys) == len(items)
        found = self.get_many(keys)
        todo = [i for i, key in enumerate(keys) if key not in found]
        # Deduplicate identical work (same key) before computing.
        unique: dict[str, int] = {}
        for i in todo:
            unique.setdefault(keys[i], i)
        order = sorted(unique.values(), key=lambda i: sort_key(items[i])) if sort_key else list(unique.values())
        self.count(keys, found, len(order))
        for start in range(0, len(order), chunk_size):
            chunk = order[start : start + chunk_size]
            values = compute([items[i] for i in chunk])
            new = {keys[i]: v for i, v in zip(chunk, values, strict=True)}
            self.put_many(new)
            # Round-trip through JSON so fresh and cached values are bit-identical.
            found.update(json.loads(json.dumps(new)))
        return [found[key] for key in keys]

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
