"""AutoCoA's RL reward rule (`hotpotqa.py` in their verl fork), offered as the named reward `autocoa`.

The rule, for one whole model output:
  - 0 unless the output closes its thinking with `</think>`;
  - 0 if the model searches again after the last `</think>`;
  - the answer is read from the text after the last `</think>`: the last `\\boxed{...}` (braces nest),
    else the last "The answer is X" / "The final answer is X" phrase;
  - 1 if the normalised answer equals a normalised gold answer, or if at least 70 % of a gold answer's
    distinct words appear among the answer's words; else 0.
Normalisation is SQuAD's plus two extras from the release: number words become digits, filler words go.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

from coa.formats.action_format import AUTOCOA, ActionFormat
from coa.rewards.em import as_gold_list, normalize_answer

# zero..twenty; the release maps zero..nine, the rest only widens what counts as the same answer.
_NUMBER_WORDS = {
    word: str(i)
    for i, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
# Hedges a model puts before an answer ("approximately 300"), plus the release's list (well, so, just, ...).
_FILLERS = frozenset(
    "approximately about around roughly nearly almost "
    "well so basically actually literally simply just um uh".split()
)
# "The answer is Paris." / "the final answer is: 3.5" -> the text up to a sentence end or a line break.
_ANSWER_PHRASE = re.compile(r"\b(?:final\s+)?answer\s+is\b[\s:]*(.+?)(?=\.\s|\.$|\n|$)", re.IGNORECASE)
# A gold answer counts as found when this share of its distinct words is in the prediction.
WORD_OVERLAP = 0.7


def normalize_autocoa(s: str) -> str:
    """SQuAD normalisation, then number words zero..twenty to digits and filler words dropped.

    >>> normalize_autocoa("About Twelve  apostles")
    '12 apostles'
    """
    words = (_NUMBER_WORDS.get(w, w) for w in normalize_answer(s).split())
    return " ".join(w for w in words if w not in _FILLERS)


def extract_final_answer(output: str, fmt: ActionFormat = AUTOCOA) -> str | None:
    """The answer after the last think-close: the last boxed span, else the last "answer is X" phrase."""
    tail = output.split(fmt.think_close)[-1]
    boxed = fmt.extract_answer(tail)
    if boxed is not None:
        return boxed
    phrases = _ANSWER_PHRASE.findall(tail)
    return phrases[-1].strip() if phrases else None


def _matches(pred: str, gold: str) -> bool:
    """Equal normalised answers, or at least WORD_OVERLAP of the gold's distinct words in the prediction."""
    if pred == gold:
        return True
    gold_words = set(gold.split())
    if not gold_words:  # a gold that normalises to nothing matches only an empty prediction
        return False
    return len(gold_words & set(pred.split())) >= WORD_OVERLAP * len(gold_words)


def autocoa_reward(output: str, golds: str | Sequence[str] | np.ndarray) -> float:
    """1.0 if one whole model output answers correctly under AutoCoA's rule, else 0.0.

    Args:
        output: the model's generation for one question, observations included.
        golds: the gold answers (any one of them suffices).

    >>> autocoa_reward("<think> ... </think> \\\\boxed{Paris}", ["Paris", "Paris, France"])
    1.0
    """
    golds = as_gold_list(golds)
    if AUTOCOA.think_close not in output:
        return 0.0
    if AUTOCOA.action_open in output.split(AUTOCOA.think_close)[-1]:
        return 0.0
    answer = extract_final_answer(output)
    if answer is None:
        return 0.0
    pred = normalize_autocoa(answer)
    if not pred:
        return 0.0
    return float(any(_matches(pred, normalize_autocoa(gold)) for gold in golds))


class FormatFlags(TypedDict):
    """Ways one model output breaks the action format; each True is a violation."""

    unclosed_tag: bool
    """An action opened and not closed, or thinking never closed."""
    search_after_answer: bool
    """An action after the last think-close, where only the answer belongs."""
    no_answer: bool
    """No closed answer span (`\\boxed{...}`)."""
    too_many_actions: bool
    """More actions than the search budget allows."""


def format_penalty(output: str, max_actions: int, fmt: ActionFormat = AUTOCOA) -> FormatFlags:
    """Named format violations of one model output, for penalties and `rollout/format/*` counts.

    Args:
        output: the model's generation for one question.
        max_actions: the search budget; more actions than this sets `too_many_actions`.
        fmt: the action tags the model was trained to write.
    """
    errors = set(fmt.format_errors(output))
    return FormatFlags(
        unclosed_tag=bool(errors & {"unclosed_action", "unclosed_think"}),
        search_after_answer="action_after_answer" in errors,
        no_answer="no_answer" in errors,
        too_many_actions=fmt.count_actions(output) > max_actions,
    )
