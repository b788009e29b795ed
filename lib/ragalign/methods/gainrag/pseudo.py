"""GainRAG's pseudo-passages: what the generator itself writes as background for a question.

The *pseudo-passage* is what the generator itself writes as background for the question (the
paper's instruction, which asks for "N/A" when unsure). An "N/A" pseudo-passage is not a candidate:
it gets no label and the selector never sees it (an empty passage would only duplicate the
no-passage prompt, whose gain is zero by construction).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ragalign.core.lm import LM

PSEUDO_INSTRUCTION = (
    "Please provide background for the question below in 100 words. Do not respond with anything other "
    'than background. If you do not know or are unsure, please generate "N/A" directly.'
)
PSEUDO_PREFIX = "pseudo:"


def pseudo_pid(qid: str) -> str:
    """The pid of a question's pseudo-passage."""
    return f"{PSEUDO_PREFIX}{qid}"


def pseudo_texts(pseudo: pd.DataFrame) -> dict[str, str]:
    """pid -> text of the pseudo-passages table (``results/gainrag/pseudo.parquet``)."""
    return {pseudo_pid(r.qid): r.text for r in pseudo.itertuples()}


def is_pseudo(pid: str) -> bool:
    return str(pid).startswith(PSEUDO_PREFIX)


def pseudo_prompt(question: str) -> str:
    """The paper's instruction for a background passage written by the generator."""
    return f"{PSEUDO_INSTRUCTION}\n\nQuestion: {question}"


def is_na(text: str) -> bool:
    """True when a pseudo-passage is the model's 'N/A' (or empty): it then is no candidate."""
    core = text.strip().strip("\"'.*:()[] ").lower()
    return core in {"", "n/a", "na", "none", "unknown"} or core.startswith(("n/a", "na.", "na ", "na,"))


def generate_pseudo(
    lm: LM, questions: pd.DataFrame, max_new_tokens: int, max_tokens: int | None = None
) -> pd.DataFrame:
    """``qid, text, is_na`` for every question; ``text`` cut to ``max_tokens`` LM tokens when given."""
    replies = lm.generate([pseudo_prompt(q) for q in questions.question], max_new_tokens, desc="pseudo-passages")
    texts = [lm.truncate(r, max_tokens) if max_tokens else r for r in replies]
    return pd.DataFrame({"qid": questions.qid.to_numpy(), "text": texts, "is_na": [is_na(t) for t in texts]})


def planned_generate_cost(lm: LM, prompts: Sequence[str], max_new_tokens: int) -> dict[str, int]:
    """What a cold ``lm.generate`` run adds to ``lm.evaluations`` / ``lm.forward_tokens`` (deterministic)."""
    unique = list(dict.fromkeys(prompts))
    return {
        "evaluations": len(unique),
        "forward_tokens": sum(len(lm.prompt_ids(p)) + max_new_tokens for p in unique),
    }
