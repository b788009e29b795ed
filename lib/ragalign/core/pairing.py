"""The seam's paired comparisons: variants answered (or scored) by two readers, the untuned generator and
the tuned reader, paired per question on the same questions. Stage 09 pairs its test questions with it,
stage 13 its fresh questions: one definition of every comparison the seam table shows.

A variant is ``method@k`` (a ranked method's top k, ``artifacts.seam_variant``) or an unranked context
(``no_retrieval``, ``oracle``); ``by`` maps ``"reader:variant"`` to that answers or scores table.
"""

from __future__ import annotations

import pandas as pd

from ragalign.core.artifacts import seam_method, seam_variant
from ragalign.core.metrics import paired_difference, paired_interval
from ragalign.core.verdicts import OUTCOMES, paired_outcomes, with_verdict

REFERENCE = "dense"  # every ranked method is paired with dense at the same k
READERS = ("untuned", "tuned")


def pair_variants(by: dict[str, pd.DataFrame], variants: list[str], n_boot: int, seed: int, margin: float, outcomes: tuple[str, ...] = OUTCOMES) -> dict:
    """Per variant, paired per question: tuned - untuned reader (``outcomes``); for a ranked method at k
    other than dense, the gold-answer log-prob against dense at the same k under each reader, "both"
    (the method read by the tuned reader against dense read by the untuned one) and the interaction.
    ``by``: "reader:variant" -> that answers (or scores) table."""
    paired = {}
    for variant in variants:
        method, k = seam_method(variant)
        entry = {"tuned_minus_untuned": paired_outcomes(by[f"tuned:{variant}"], by[f"untuned:{variant}"], n_boot, seed, margin, outcomes)}
        if k is not None and method != REFERENCE:
            ref = seam_variant(REFERENCE, k)
            for r in READERS:
                entry[f"minus_{REFERENCE}_{r}"] = with_verdict(paired_difference(by[f"{r}:{variant}"], by[f"{r}:{ref}"], "gold_logprob", n_boot, seed), margin)
            entry["both"] = with_verdict(paired_difference(by[f"tuned:{variant}"], by[f"untuned:{ref}"], "gold_logprob", n_boot, seed), margin)
            entry["interaction"] = with_verdict(interaction(by, variant, ref, n_boot, seed), margin)
        paired[variant] = entry
    return paired


def interaction(by: dict[str, pd.DataFrame], variant: str, reference: str, n_boot: int, seed: int) -> dict:
    """Per question, (variant - reference under the tuned reader) - (the same under the untuned one):
    does the retriever-side choice matter more once the reader is tuned?"""
    def gl(name: str) -> pd.Series:
        return by[name].set_index("qid").gold_logprob

    d = (gl(f"tuned:{variant}") - gl(f"tuned:{reference}")) - (gl(f"untuned:{variant}") - gl(f"untuned:{reference}"))
    return paired_interval(d.dropna().to_numpy(), n_boot, seed)
