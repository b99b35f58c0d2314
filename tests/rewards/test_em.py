"""em: SQuAD normalisation, exact match and token F1, worked out by hand."""

import numpy as np
import pytest

from coa.rewards.em import as_gold_list, exact_match, f1_score, normalize_answer


def test_normalize_answer_lowercases_and_drops_punctuation_articles_spaces():
    assert normalize_answer("The  Quick, Brown Fox!") == "quick brown fox"
    assert normalize_answer("An apple a day") == "apple day"
    # articles go only as whole words
    assert normalize_answer("Theatre Anatomy") == "theatre anatomy"


def test_exact_match_after_normalisation():
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert exact_match("Eiffel", "eiffel tower") == 0.0


def test_exact_match_any_of_several_golds():
    assert exact_match("NYC", ["New York City", "nyc"]) == 1.0
    assert exact_match("Boston", ["New York City", "nyc"]) == 0.0


def test_none_prediction_scores_zero():
    assert exact_match(None, "Paris") == 0.0
    assert f1_score(None, "Paris") == 0.0


def test_f1_by_hand():
    # pred [cat, sat], gold [cat, sat, down]: P = 2/2, R = 2/3, F1 = 2 * 1 * 2/3 / (1 + 2/3) = 0.8
    assert f1_score("the cat sat", "cat sat down") == pytest.approx(0.8)
    # repeated tokens count once per match: P = 1/2, R = 1/1, F1 = 2/3
    assert f1_score("cat cat", "cat") == pytest.approx(2 / 3)
    assert f1_score("dog", "cat sat down") == 0.0


def test_f1_is_the_best_over_golds():
    assert f1_score("the cat sat", ["dog", "cat sat down", "cat"]) == pytest.approx(0.8)
    assert f1_score("the cat sat", ["cat sat"]) == pytest.approx(1.0)


def test_f1_yes_no_noanswer_only_match_themselves():
    # "yes" shares a token with "yes sir" but HotpotQA scores it 0
    assert f1_score("yes", "yes sir") == 0.0
    assert f1_score("no answer", "no") == 0.0
    assert f1_score("noanswer", "noanswer text") == 0.0
    assert f1_score("No.", "no") == 1.0


def test_as_gold_list_accepts_str_sequences_and_numpy_arrays():
    assert as_gold_list("Paris") == ["Paris"]
    assert as_gold_list(("Paris", "paris, france")) == ["Paris", "paris, france"]
    # parquet gives object arrays; string dtype arrays hold numpy str_
    assert as_gold_list(np.array(["Paris", "Lutetia"], dtype=object)) == ["Paris", "Lutetia"]
    golds = as_gold_list(np.array(["Paris", "Lutetia"]))
    assert golds == ["Paris", "Lutetia"] and all(type(g) is str for g in golds)


def test_numpy_golds_score_like_lists():
    golds = np.array(["New York City", "NYC"], dtype=object)
    assert exact_match("nyc", golds) == 1.0
    assert f1_score("new york", golds) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("golds", "named"), [(42, "int"), ({"a": 1}, "dict"), (["Paris", 3], "int"), (None, "NoneType")]
)
def test_as_gold_list_rejects_other_types_naming_them(golds, named):
    with pytest.raises(ValueError, match=named):
        as_gold_list(golds)


def test_as_gold_list_rejects_no_golds():
    with pytest.raises(ValueError, match="no gold answers"):
        as_gold_list([])
