"""coa's earlier, mostly kinder reading of AutoCoA's rule, as the reward `autocoa_lenient` (`autocoa` is the release's).

Kinder than the release: braces nest in `\\boxed{}`, a gold inside a longer answer counts, number words
go up to twenty, hedges such as "approximately" go. Stricter: no "Therefore," / last-sentence fallback,
and 「」 stay. The rule, for one model response (the prompt is not read, so its `</think>` and
`\\boxed{YOUR_ANSWER}` cannot stand in for the response's):
  - 0 unless the response closes its thinking with `</think>`;
  - 0 if the model searches again after the last `</think>`;
  - the answer is read from the text after the last `</think>`: the last `\\boxed{...}` (braces nest),
    else the last "The answer is X" / "The final answer is X" phrase (a decimal point does not end it);
  - 1 if the normalised answer equals a normalised gold answer, or if at least 70 % of a gold answer's
    distinct words appear among the answer's words (a gold inside a longer answer counts); else 0.
Normalisation is SQuAD's, number words zero..twenty become digits, and hedges ("approximately") go.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from coa.formats.action_format import AUTOCOA, ActionFormat
from coa.rewards.autocoa import WORD_OVERLAP, split_golds
from coa.rewards.base import Reward
from coa.rewards.em import normalize_answer

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


def normalize_lenient(s: str) -> str:
    """SQuAD normalisation, then number words zero..twenty to digits and filler words dropped.

    >>> normalize_lenient("About Twelve  apostles")
    '12 apostles'
    """
    words = (_NUMBER_WORDS.get(w, w) for w in normalize_answer(s).split())
    return " ".join(w for w in words if w not in _FILLERS)


def extract_final_answer(response: str, fmt: ActionFormat = AUTOCOA) -> str | None:
    """The answer after the last think-close: the last boxed span, else the last "answer is X" phrase."""
    tail = response.split(fmt.think_close)[-1]
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


def autocoa_lenient_reward(response: str, golds: str | Sequence[str] | np.ndarray) -> float:
    """1.0 if one model response answers correctly under the lenient rule, else 0.0.

    Args:
        response: the model's generation for one question, observations included.
        golds: the gold answers (any one of them suffices): a list/array of str, or a str with several
            joined by "<ans_split>", as in AutoCoA's parquet files.

    >>> autocoa_lenient_reward("<think> ... </think> \\\\boxed{Paris}", ["Paris", "Paris, France"])
    1.0
    """
    golds = split_golds(golds)
    if AUTOCOA.think_close not in response:
        return 0.0
    if AUTOCOA.action_open in response.split(AUTOCOA.think_close)[-1]:
        return 0.0
    answer = extract_final_answer(response)
    if answer is None:
        return 0.0
    pred = normalize_lenient(answer)
    if not pred:
        return 0.0
    return float(any(_matches(pred, normalize_lenient(gold)) for gold in golds))


class AutoCoALenientReward(Reward):
    """The lenient variant (`autocoa_lenient_reward`) on the response alone; the prompt is not read."""

    name = "autocoa_lenient"

    def score(self, response: str, golds: list[str], prompt: str) -> float:
        return autocoa_lenient_reward(response, golds)
