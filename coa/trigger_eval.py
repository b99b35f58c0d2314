"""Does the model open a search when it should? Trigger precision/recall/F1 at decision points, by generation."""

from __future__ import annotations

import random
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from coa.data.cota_pairs import THINK_OPEN, ContrastivePair, pair_messages
from coa.rollout.engines.base import GenerationEngine, SamplingSettings
from coa.rollout.engines.stop import end_of_sequence_ids
from coa.formats.action_format import AUTOCOA, ActionFormat
from coa.masking import generation_prefix
from coa.prompts import PromptTemplate


@dataclass(frozen=True)
class TriggerScores:
    """How well "searched" matches "needed a search" over decision points (search is the positive class).

    Args:
        precision: searched and needed / searched (0 when it never searched).
        recall: searched and needed / needed (0 when nothing needed a search).
        f1: harmonic mean of precision and recall (0 when both are 0).
        true_positive, false_positive, false_negative, true_negative: the counts.
    """

    precision: float
    recall: float
    f1: float
    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int


def opens_search(text: str, fmt: ActionFormat = AUTOCOA) -> bool:
    """True when an action opens before the thinking closes and before an answer opens.

    >>> opens_search(" I need A's age. <begin_search> A </end_search>"), opens_search(" </think> \\\\boxed{ 3 }")
    (True, False)
    """
    at = text.find(fmt.action_open)
    if at < 0:
        return False
    ends = [i for i in (text.find(fmt.think_close), text.find(fmt.answer_open)) if i >= 0]
    return not ends or at < min(ends)


def needs_search(pair: ContrastivePair, fmt: ActionFormat = AUTOCOA) -> bool:
    """A pair's label: its chosen continuation opens a search."""
    return opens_search(pair.chosen, fmt)


def trigger_scores(searched: list[bool], needed: list[bool]) -> TriggerScores:
    """Precision, recall and F1 of `searched` against `needed`.

    >>> s = trigger_scores([True, True, False, False], [True, False, True, False])
    >>> s.precision, s.recall, s.f1
    (0.5, 0.5, 0.5)
    """
    if len(searched) != len(needed):
        raise ValueError(f"trigger_scores: {len(searched)} predictions for {len(needed)} labels")
    tp = sum(s and n for s, n in zip(searched, needed))
    fp = sum(s and not n for s, n in zip(searched, needed))
    fn = sum(n and not s for s, n in zip(searched, needed))
    tn = len(needed) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return TriggerScores(precision, recall, f1, tp, fp, fn, tn)


def fixed_subset(pairs: list[ContrastivePair], size: int, seed: int = 0) -> list[ContrastivePair]:
    """`size` pairs drawn once with `seed` (all when fewer), in file order, so every evaluation sees the same points."""
    if size >= len(pairs):
        return list(pairs)
    keep = sorted(random.Random(seed).sample(range(len(pairs)), size))
    return [pairs[i] for i in keep]


def trigger_eval(
    engine: GenerationEngine,
    tokenizer: PreTrainedTokenizerBase,
    pairs: list[ContrastivePair],
    template: PromptTemplate | None = None,
    max_new_tokens: int = 24,
    fmt: ActionFormat = AUTOCOA,
) -> TriggerScores:
    """Greedily continues each pair's prefix and scores whether a search opens before the thinking ends.

    Args:
        engine: generates from token ids (the policy's model in an HFEngine, or vLLM).
        tokenizer: the policy's tokenizer.
        pairs: decision points; `needs_search(pair)` is the label.
        template: None keeps each pair's prompt; otherwise rebuilt from its question (as the datamodule does).
        max_new_tokens: continuation budget; a search must open within it.
        fmt: the action tags.
    """
    prompts = [
        tokenizer(
            generation_prefix(tokenizer, pair_messages(p, template), THINK_OPEN + p.prefix), add_special_tokens=False
        )["input_ids"]
        for p in pairs
    ]
    settings = SamplingSettings(
        max_new_tokens=max_new_tokens, temperature=0.0, stop_strings=(fmt.action_close,),
        stop_token_ids=end_of_sequence_ids(tokenizer),
    )
    texts = [g.text for g in engine.generate(prompts, settings)]
    return trigger_scores([opens_search(t, fmt) for t in texts], [needs_search(p, fmt) for p in pairs])
