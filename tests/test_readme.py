"""The README's headline table is generated: it must say what results/metrics/summary.json says."""

import json
from pathlib import Path

import pandas as pd
import pytest

from ragalign.report.summary import readme_block

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = ROOT / "results" / "metrics" / "summary.json"


def parse_table(block: str) -> pd.DataFrame:
    rows = [line.strip().strip("|").split("|") for line in block.splitlines() if line.startswith("|")]
    header, body = [c.strip() for c in rows[0]], [[c.strip() for c in r] for r in rows[2:]]
    return pd.DataFrame(body, columns=header).set_index("variant")


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [["make", "study"], ["make", "test"]]


@pytest.mark.skipif(not SUMMARY.exists(), reason="no committed summary yet")
def test_readme_table_matches_summary_json():
    full = json.loads(SUMMARY.read_text())
    summary = full["variants"]
    failed = full["validity"]["failed"]
    assert readme_block(ROOT / "README.md").startswith(f"**{len(failed)} of" if failed else "All "), "the failed gates lead the table"
    table = parse_table(readme_block(ROOT / "README.md"))
    assert set(table.index) == set(summary)
    for variant, row in table.iterrows():
        s = summary[variant]
        assert row["gold-answer log-prob [95% CI]"] == f"{s['gold_logprob']:.3f} [{s['gold_logprob_lo']:.3f}, {s['gold_logprob_hi']:.3f}]"
        assert row["EM [95% CI]"] == f"{s['em']:.3f} [{s['em_lo']:.3f}, {s['em_hi']:.3f}]"
        assert row["F1 [95% CI]"] == f"{s['f1']:.3f} [{s['f1_lo']:.3f}, {s['f1_hi']:.3f}]"
        assert row["gold passages shown"] == f"{s['gold_recall']:.3f}"
        assert row["LLM evals to build"] == f"{s['llm_evaluations']:,}"
        for col, key in (("wasted retrieval", "wasted_retrieval"), ("noise distraction", "noise_distraction")):
            assert row[col] == ("–" if s[key] is None else f"{s[key]:.3f}")
