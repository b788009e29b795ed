"""Generator alignment: fine-tune the reader on what the retriever really returns.

The other side of the seam (RA-DIT, arXiv 2310.01352; RAFT, arXiv 2403.10131): instead of teaching the
retriever what the generator needs, teach the generator to read the retriever's real output.

- **Examples** (:func:`reader_examples`): one per training question, its dense top-k passages in the
  study's prompt (:func:`ragalign.core.rag.build_prompt`), the first gold answer as the target. For a
  seeded share ``p_no_gold`` of the questions (RAFT's P) the gold passages are taken out of the list
  (the next dense passages fill in), so the reader also learns to answer, or not, from distractors.
  Questions of an extra reading-comprehension benchmark (SQuAD) show their gold paragraph among
  distractors of the same article (:func:`distractor_contexts`).
- **Loss**: mean token NLL of the answer and the end-of-turn token after the prompt (the answer-only
  loss: the prompt tokens are context, not targets). Each example goes through the model alone, unpadded.
- **Training**: the study's one trainer (:func:`ragalign.core.training.fit`): a seeded held-out part of
  the training questions, the weights kept only where they beat the untrained start there.
- **What is trained** (``reader.tune``): ``full`` (every weight), ``lora`` (``peft`` adapters on every
  linear layer of the decoder, merged after training) or ``top_half`` (the upper half of the decoder
  layers, the rest frozen: no backward through the lower half). ``bench/reader_tuning.py`` measures
  the three on the same examples.

The tuned generator is saved as safetensors with its tokenizer, so ``models.generator`` (or
:class:`ragalign.core.lm.LM`) loads it by path; the LLM cache keys it by its files' content (``models.generator_key``).
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ragalign.core.lm import LM
from ragalign.core.models import LOAD_KWARGS, generator_path, to_device
from ragalign.core.rag import build_prompt
from ragalign.core.training import batched_values, fit

TUNE = ("full", "lora", "top_half")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Example:
    """One reader-training example: the prompt's token ids and the target's (answer + end of turn)."""

    qid: str
    prompt: tuple[int, ...]
    target: tuple[int, ...]
    has_gold: bool  # a gold passage is among the shown ones


def training_contexts(
    ranked: Mapping[str, Sequence[str]], gold: Mapping[str, Sequence[str]], k: int, p_no_gold: float, seed: int
) -> dict[str, list[str]]:
    """qid -> the k passages a training question shows: its dense top k, or for a seeded share
    ``p_no_gold`` of the questions (RAFT's P) the top k of its ranking with the gold passages removed."""
    qids = sorted(ranked)
    rng = random.Random(seed)
    no_gold = set(rng.sample(qids, round(len(qids) * p_no_gold)))
    return {q: [p for p in ranked[q] if q not in no_gold or p not in set(gold[q])][:k] for q in qids}


def distractor_contexts(questions: pd.DataFrame, passages: pd.DataFrame, k: int, p_no_gold: float, seed: int) -> dict[str, list[str]]:
    """qid -> the k passages shown with a question of a benchmark the study retrieves nothing for (an
    extra reading-comprehension set such as SQuAD): its gold passages among seeded distractors, other
    passages of the same title first (SQuAD: the article's other paragraphs), in a seeded order; for
    a seeded share ``p_no_gold`` of the questions (RAFT's P) distractors only."""
    rng = random.Random(seed)
    by_title = passages.groupby("title").pid.apply(list).to_dict()
    title_of = dict(zip(passages.pid, passages.title, strict=True))
    every = passages.pid.tolist()
    qids = questions.qid.tolist()
    no_gold = set(rng.sample(qids, round(len(qids) * p_no_gold)))
    out = {}
    for q in questions.itertuples():
        gold = [] if q.qid in no_gold else list(q.gold_pids)[:k]
        near = [p for t in dict.fromkeys(title_of[g] for g in q.gold_pids) for p in by_title[t] if p not in q.gold_pids]
        pool = rng.sample(near, min(len(near), k - len(gold)))
        while len(gold) + len(pool) < k:  # short articles: any other passage fills in
            p = rng.choice(every)
            if p not in q.gold_pids and p not in pool:
                pool.append(p)
        shown = gold + pool
        rng.shuffle(shown)
        out[q.qid] = shown
    return out


def reader_examples(lm: LM, questions: pd.DataFrame, contexts: Mapping[str, Sequence[str]], text_of: Callable[[str], str]) -> list[Example]:
    """One :class:`Example` per question (in ``questions`` order): its contexts' texts in the study's
    prompt, its first gold answer followed by the end-of-turn token as the target."""
    eos = lm.tokenizer.eos_token_id
    out = []
    for q in questions.itertuples():
        pids = list(contexts[q.qid])
        prompt = lm.prompt_ids(build_prompt(q.question, [text_of(p) for p in pids]))
        target = [*lm.answer_ids(q.answers[0]), eos]
        out.append(Example(q.qid, tuple(prompt), tuple(target), bool(set(pids) & set(q.gold_pids))))
    return out


def example_losses(model: torch.nn.Module, examples: Sequence[Example]) -> torch.Tensor:
    """Mean token NLL of each example's target after its prompt, one unpadded forward each: [len(examples)].
    Only the target positions go through the LM head."""
    device = next(model.parameters()).device
    losses = []
    for ex in examples:
        ids = torch.tensor([[*ex.prompt, *ex.target[:-1]]], device=device)
        hidden = model.model(input_ids=ids).last_hidden_state[0, len(ex.prompt) - 1 :]
        logits = model.lm_head(hidden).float()
        losses.append(torch.nn.functional.cross_entropy(logits, torch.tensor(ex.target, device=device)))
    return torch.stack(losses)


def load_trainable(name: str, tune: str, lora_r: int = 16) -> torch.nn.Module:
    """The generator in float32 on the chosen device, fresh (not the evaluation copy), with the weights
    ``tune`` trains unfrozen (``lora``: a ``peft`` model whose adapters start at zero)."""
    from transformers import AutoModelForCausalLM

    if tune not in TUNE:
        raise ValueError(f"reader.tune must be one of {TUNE} (got {tune!r})")
    model = AutoModelForCausalLM.from_pretrained(generator_path(name), dtype=torch.float32, attn_implementation="eager", **LOAD_KWARGS)
    model.config.use_cache = False
    if tune == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0, target_modules=list(LORA_TARGETS)))
    elif tune == "top_half":
        model.requires_grad_(False)
        layers = model.model.layers
        for layer in layers[len(layers) // 2 :]:
            layer.requires_grad_(True)
        model.model.norm.requires_grad_(True)
    else:
        model.requires_grad_(True)
    return to_device(model)


def causal_lm(model: torch.nn.Module) -> torch.nn.Module:
    """The plain causal LM inside ``model`` (a ``peft`` wrapper's base model; itself otherwise)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def train_reader(
    name: str, examples: Sequence[Example], *, tune: str, lr: float, epochs: int, batch_size: int, val_fraction: float,
    seed: int, autocast: bool, lora_r: int = 16, evals_per_epoch: int = 2, desc: str = "reader",
) -> tuple[torch.nn.Module, pd.DataFrame]:
    """Fine-tune generator ``name`` on ``examples`` with the study's trainer; returns (the plain causal LM
    with the kept weights, LoRA merged; the training curve with per-held-out-question losses)."""
    model = load_trainable(name, tune, lora_r)
    plain = causal_lm(model)
    curve = fit(
        model,
        list(examples),
        lambda batch: example_losses(plain, batch).mean(),
        None,  # the held-out loss: the mean of item_losses
        epochs=epochs, lr=lr, batch_size=batch_size, val_fraction=val_fraction, seed=seed, evals_per_epoch=evals_per_epoch,
        autocast=autocast, desc=desc, item_losses=lambda held_out: batched_values(lambda b: example_losses(plain, b), held_out),
    )
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.requires_grad_(False)
    return model.eval(), curve


def save_reader(model: torch.nn.Module, tokenizer, path: str | Path) -> Path:
    """Save a tuned generator (safetensors, float32, with its tokenizer) atomically to ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.replace(path)
    return path


def reading_gap(answers: pd.DataFrame, with_: str = "oracle", without: str = "no_retrieval") -> pd.Series:
    """Per question (one reader's answers, by ``context``): gold-answer log-prob with ``with_`` contexts minus with ``without``: how much the reader reads."""
    by = answers.pivot(index="qid", columns="context", values="gold_logprob")
    return by[with_] - by[without]
