"""Toy training groups whose targets go against the dense prior, and the test that a precision check learned.

A precision benchmark (float32 vs bf16 autocast, CPU vs CUDA) can only show that two ways of
training agree if the training moves: two curves that stay flat agree whatever the arithmetic. So
the training benchmarks (``train_precision.py``, ``device_training.py``) train on groups where the
dense prior is wrong and a learnable rule is right:

- each group is one question about a made-up person ("In which city was Mara Lind born?") and
  ``group_size`` passages: the one that answers it (the target), two *baits* that restate the
  question word for word and then say nothing (the dense prior ranks them first: they share the
  question's words) and facts about other people;
- the rule (a passage that repeats the question and gives no answer is not the one) is the same
  in every group, so the cross-encoder correction learns it from the training groups and the
  held-out groups' loss falls: held-out groups are other people, never seen in training.

:func:`learning` then says whether a pair of runs learned by a margin that makes their agreement
mean something: the held-out loss must fall by more than ``factor`` (10) times the largest
difference between the two runs' held-out curves, and by at least a tenth of where it started.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from ragalign.core.rerank import Group

FIRST = ["Mara", "Tomas", "Ilse", "Joren", "Anouk", "Pavel", "Greta", "Oskar", "Lene", "Matteo", "Sanne", "Viktor",
         "Elif", "Ruben", "Noor", "Casper", "Ines", "Bram", "Katya", "Hugo", "Femke", "Dario", "Yara", "Lucas"]
LAST = ["Lind", "Berger", "Okafor", "Janssen", "Moreau", "Novak", "Sato", "Quist", "Haddad", "Ferreira", "Kowalski", "Aalto"]
CITIES = ["Utrecht", "Porto", "Gdansk", "Turku", "Ghent", "Brno", "Lyon", "Bergen", "Graz", "Cork", "Bilbao", "Tartu"]
JOBS = ["glassblower", "cartographer", "beekeeper", "violin maker", "ferry pilot", "printer", "botanist", "clockmaker"]
YEARS = list(range(1901, 1990, 7))
FILLER = [
    "The town archive keeps letters, ledgers and photographs from that period.",
    "Local newspapers of the time reported on markets, weather and the harbour.",
    "Several streets in the old quarter were renamed after the war.",
    "A small museum now shows tools and instruments from the workshops of the area.",
    "Visitors often take the coastal train, which stops at every village on the way.",
    "The regional library holds a collection of maps drawn by hand.",
]
QUESTIONS = [  # (question, answer sentence, bait sentences); the answer never repeats the question's wording
    ("In which city was {p} born?", "{p} came into the world in {city} in {year}, the child of a {job}.",
     ("In which city was {p} born? That question is asked often.", "Many people wonder in which city {p} was born.")),
    ("What was the profession of {p}?", "For most of a long life {p} earned a living as a {job} in {city}.",
     ("What was the profession of {p}? Nobody seems sure.", "People keep asking what the profession of {p} was.")),
    ("In what year was {p} born?", "{p} arrived in {year}, in {city}, where the family ran a {job}'s shop.",
     ("In what year was {p} born? The question comes up a lot.", "It is often asked in what year {p} was born.")),
]


def people(n: int, seed: int) -> list[dict]:
    """``n`` distinct made-up people with a city, a job and a year (seeded)."""
    rng = random.Random(seed)
    names = [f"{f} {s}" for f in FIRST for s in LAST]
    rng.shuffle(names)
    if n > len(names):
        raise ValueError(f"at most {len(names)} toy people")
    return [{"p": name, "city": rng.choice(CITIES), "job": rng.choice(JOBS), "year": rng.choice(YEARS)} for name in names[:n]]


def groups(n: int, seed: int = 0, group_size: int = 6, filler: int = 2) -> list[Group]:
    """``n`` groups of ``group_size`` passages: the answer (target 1), two baits that restate the question
    (what the dense prior ranks first), and facts about other people; ``filler`` neutral sentences
    appended to every passage give the passages a realistic length."""
    if group_size < 4:
        raise ValueError("group_size >= 4: the answer, two baits and at least one other person")
    rng = random.Random(seed + 1)
    folk = people(n + group_size, seed)
    out = []
    for i in range(n):
        who = folk[i]
        question, answer, baits = QUESTIONS[i % len(QUESTIONS)]
        others = [QUESTIONS[(i + j) % len(QUESTIONS)][1].format(**folk[n + (i + j) % group_size]) for j in range(group_size - 3)]
        passages = [answer.format(**who), *(b.format(**who) for b in baits), *others]
        passages = [" ".join([p, *rng.sample(FILLER, filler)]) for p in passages]
        out.append(Group(f"toy{i:03d}", question.format(**who), tuple(passages), (1.0,) + (0.0,) * (group_size - 1)))
    return out


def val_losses(curve) -> list[float]:
    """The held-out losses of a training curve (a ``fit`` DataFrame or its ``to_dict(orient="list")``), in order."""
    split, loss = (curve["split"], curve["loss"]) if isinstance(curve, Mapping) else (curve.split.tolist(), curve.loss.tolist())
    return [float(v) for s, v in zip(split, loss, strict=True) if s == "val"]


def learning(runs: Mapping[str, Sequence[float]], factor: float = 10.0, min_share: float = 0.1) -> dict:
    """Did two runs (name -> held-out losses at the same evaluations) learn by more than they differ?

    Per run: the held-out loss at the start, the best one, and the descent (start - best). For the
    pair: the largest absolute difference between the two held-out curves, point by point, and
    between their best losses; ``descent`` is the smaller of the two descents; ``learns`` is true
    only when that descent exceeds ``factor`` times the curves' largest difference (the runs moved
    far more than they disagree) and ``min_share`` of the start loss (two flat curves that agree to
    the last digit have not learned either).
    """
    (a, va), (b, vb) = runs.items()
    if len(va) != len(vb):
        raise ValueError(f"{a} and {b} were evaluated at different steps ({len(va)} vs {len(vb)})")
    per = {name: {"val_loss_start": round(v[0], 4), "val_loss_best": round(min(v), 4), "descent": round(v[0] - min(v), 4)} for name, v in runs.items()}
    diff = max(abs(x - y) for x, y in zip(va, vb, strict=True))
    descent = min(v[0] - min(v) for v in (va, vb))
    return {
        "runs": per,
        "val_loss_max_abs_diff": round(diff, 4),
        "val_loss_best_abs_diff": round(abs(min(va) - min(vb)), 4),
        "descent": round(descent, 4),
        "factor": factor,
        "min_share": min_share,
        "learns": bool(descent > factor * diff and descent > min_share * max(va[0], vb[0])),
    }
