"""AutoCoA's RL reward rule, exactly as released (`hotpotqa.compute_score`, flexible mode), as the reward `autocoa`.

Source: github.com/ADaM-BJTU/AutoCoA, RL_training/verl/utils/reward_score/hotpotqa.py (commit 4390249).
The release scores the decoded prompt + response, for each gold split from the ground-truth string on
"<ans_split>"; the output earns 1.0 if any gold scores 1:
  - 0 if the text is empty, has no `</think>`, or has `<begin_search>` after the last `</think>`;
  - the answer is read from the text after the last `</think>`: the last `\\boxed{...}` up to the first
    `}` (no nesting), else the first "The answer is" / "Therefore," / "Thus," / "So," / "In conclusion," /
    "Hence," (any case, even inside a word: "Also,") read up to the first `.`, else the piece before the
    last `.` (the whole text when it has none);
  - answer and gold are normalised (`normalize_autocoa`); equal -> 1; one a substring of the other -> 0;
    else 1 when at least 70 % of the gold's distinct words are among the answer's, else 0.
AutoCoA's prompt holds `<think></think>` and `\\boxed{YOUR_ANSWER}`: a response with no `</think>` is
read after the prompt's, and its answer is "youranswer" unless the response writes a box of its own.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np

from coa.formats.action_format import AUTOCOA
from coa.rewards.base import Reward
from coa.rewards.em import as_gold_list

ANSWER_SEPARATOR = "<ans_split>"  # the release's ground truth is one string, several golds joined with it
WORD_OVERLAP = 0.7

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPECIAL = re.compile(r"[\"'「」『』()\[\]{}]")
_NUMBER_WORDS = [(re.compile(rf"\b{word}\b"), str(i)) for i, word in enumerate(
    "zero one two three four five six seven eight nine".split()
)]
_FILLERS = re.compile(r"\b(well|so|basically|actually|literally|simply|just|um|uh)\b")
_BOXED = re.compile(r"\\boxed\{([^}]*)\}")
_MARKER = re.compile(r"(The answer is|Therefore,|Thus,|So,|In conclusion,|Hence,)[:\s]+([^\.]+)", re.IGNORECASE)


def normalize_autocoa(s: str | None) -> str:
    """The release's normalisation: lower-case, drop ASCII punctuation and a/an/the, strip 「」『』,
    number words zero..nine to digits, drop filler words (well, so, just, ...), collapse whitespace.

    >>> normalize_autocoa("So, 『The』 Nine  Muses!")
    '9 muses'
    """
    if s is None:
        return ""
    s = _SPECIAL.sub("", _ARTICLES.sub(" ", s.lower().translate(_PUNCTUATION)))
    for word, digit in _NUMBER_WORDS:
        s = word.sub(digit, s)
    return " ".join(_FILLERS.sub(" ", s).split())


def extract_autocoa_answer(text: str) -> str | None:
    """The normalised answer the release reads after the last `</think>` of `text`; None when that is empty.

    >>> extract_autocoa_answer("<think> x </think> \\\\boxed{a{b}c}")
    'ab'
    """
    tail = text.strip().split(AUTOCOA.think_close)[-1].strip()
    boxes = _BOXED.findall(tail)
    if boxes:
        return normalize_autocoa(boxes[-1].strip())
    marker = _MARKER.search(tail)
    if marker:
        return normalize_autocoa(marker.group(2).strip())
    if not tail:
        return None
    pieces = tail.split(".")
    return normalize_autocoa(pieces[-2].strip() if len(pieces) > 1 else pieces[-1].strip())


def _matches(answer: str, gold: str) -> bool:
    """The release's comparison of a normalised answer with one normalised gold."""
    if answer == gold:
        return True
    if gold in answer or answer in gold:
        return False
    gold_words = set(gold.split())
    return len(gold_words & set(answer.split())) >= len(gold_words) * WORD_OVERLAP


def split_golds(golds: str | Sequence[str] | np.ndarray) -> list[str]:
    """The golds the release compares against: a str split on "<ans_split>"; a list or array as if joined with it."""
    text = golds if isinstance(golds, str) else ANSWER_SEPARATOR.join(as_gold_list(golds))
    return text.split(ANSWER_SEPARATOR)


def autocoa_reward(response: str, golds: str | Sequence[str] | np.ndarray, prompt: str = "") -> float:
    """1.0 if `prompt + response` answers correctly under AutoCoA's released rule, else 0.0.

    Args:
        response: the model's generation for one question, observations included.
        golds: the ground truth: a str (several golds joined with "<ans_split>", as the release stores it),
            or a list/array of str (the release raises AttributeError on these; here any one suffices).
        prompt: the decoded prompt the response continues; the release scores the two together.

    >>> autocoa_reward("<think> ... </think> \\\\boxed{Paris}", "Paris<ans_split>Paris, France")
    1.0
    """
    text = prompt + response
    if not text or AUTOCOA.think_close not in text:
        return 0.0
    if AUTOCOA.action_open in text.split(AUTOCOA.think_close)[-1]:
        return 0.0
    answer = extract_autocoa_answer(text)
    if answer is None:
        return 0.0
    return float(any(gold and _matches(answer, normalize_autocoa(gold)) for gold in split_golds(golds)))


class AutoCoAReward(Reward):
    """AutoCoA's released reward rule (`autocoa_reward`) on prompt + response, as the release decodes them: one
    `tokenizer.decode` of the prompt and response ids, special tokens and the end of sequence included (an answer
    read by the "So," or last-sentence rules then runs into the end-of-sequence text, which the release scores)."""

    name = "autocoa"
    scores_decoded_sequence = True

    def score(self, response: str, golds: list[str], prompt: str) -> float:
        return autocoa_reward(response, golds, prompt)
