"""Exact match and token F1 against gold answers (SQuAD/HotpotQA evaluation), and the rewards `exact_match`, `f1`."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

from coa.rewards.base import Reward

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
# HotpotQA's F1: a yes/no/noanswer on either side scores only when both sides are the same word.
_SPECIAL = frozenset({"yes", "no", "noanswer"})


def normalize_answer(s: str) -> str:
    """SQuAD normalisation: lower-case, drop punctuation, drop articles a/an/the, collapse whitespace.

    >>> normalize_answer("The  Eiffel-Tower!")
    'eiffeltower'
    """
    s = s.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", s).split())


def as_gold_list(golds: str | Sequence[str] | np.ndarray) -> list[str]:
    """Gold answers as a list of str, from a str, a list/tuple of str or a numpy array (parquet gives those).

    Raises ValueError naming the type when `golds` is none of these, an element is not a str, or it is empty.
    """
    if isinstance(golds, str):
        return [golds]
    if isinstance(golds, np.ndarray):
        golds = golds.tolist()
    if not isinstance(golds, (list, tuple)):
        raise ValueError(
            f"gold answers must be a str, a list/tuple of str or a numpy array, got {type(golds).__name__}"
        )
    for gold in golds:
        if not isinstance(gold, str):
            raise ValueError(f"each gold answer must be a str, got {type(gold).__name__}: {gold!r}")
    if not golds:
        raise ValueError("no gold answers given; each question needs at least one")
    return list(golds)


def exact_match(prediction: str | None, golds: str | Sequence[str] | np.ndarray) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0 (also for None)."""
    golds = as_gold_list(golds)
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(gold) for gold in golds))


def _f1_one(pred: str, gold: str) -> float:
    """Token F1 = 2PR / (P + R) of two normalised answers, P = common / |pred|, R = common / |gold|."""
    if (pred in _SPECIAL or gold in _SPECIAL) and pred != gold:
        return 0.0
    common = Counter(pred.split()) & Counter(gold.split())
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred.split())
    recall = num_same / len(gold.split())
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str | None, golds: str | Sequence[str] | np.ndarray) -> float:
    """SQuAD token F1 of the prediction, the best over gold answers; 0.0 for None.

    >>> round(f1_score("the cat sat", "cat sat down"), 2)
    0.8
    """
    golds = as_gold_list(golds)
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction)
    return max(_f1_one(pred, normalize_answer(gold)) for gold in golds)


class ExactMatchReward(Reward):
    """`exact_match` of the response's answer span (`fmt.parse_output(response).answer`)."""

    name = "exact_match"

    def score(self, response: str, golds: list[str], prompt: str) -> float:
        return exact_match(self.fmt.parse_output(response).answer, golds)


class F1Reward(Reward):
    """`f1_score` of the response's answer span (`fmt.parse_output(response).answer`)."""

    name = "f1"

    def score(self, response: str, golds: list[str], prompt: str) -> float:
        return f1_score(self.fmt.parse_output(response).answer, golds)
