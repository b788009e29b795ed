"""How every benchmark reports: the JSON on stdout, and in ``--out`` when given."""

from __future__ import annotations

import json

from ragalign.core.io import write_json


def emit(result: dict, out: str | None) -> int:
    """Print ``result`` and write it to ``out``; the script's exit status (0)."""
    print(json.dumps(result, indent=2, sort_keys=True))
    if out:
        write_json(out, result)
    return 0
