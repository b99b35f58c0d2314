"""autocoa_lenient: the kinder variant of AutoCoA's reward rule, on hand-written outputs."""

import numpy as np

from coa.rewards.autocoa import AutoCoAReward, autocoa_reward
from coa.rewards.autocoa_lenient import (
    AutoCoALenientReward,
    autocoa_lenient_reward,
    extract_final_answer,
    normalize_lenient,
)

SEARCH = (
    "<begin_search> Ada Moreau </end_search> "
    "<search_result> Ada Moreau was born in Lisbon. </search_result>"
)


def test_boxed_answer_after_think_scores_one():
    assert autocoa_lenient_reward(f"<think> Where? {SEARCH} </think> \\boxed{{Lisbon}}", "Lisbon") == 1.0
    assert autocoa_lenient_reward(f"<think> Where? {SEARCH} </think> \\boxed{{Porto}}", "Lisbon") == 0.0


def test_any_gold_suffices_and_numpy_golds_work():
    out = "<think> x </think> \\boxed{Lisboa}"
    assert autocoa_lenient_reward(out, ["Lisbon", "Lisboa"]) == 1.0
    assert autocoa_lenient_reward(out, np.array(["Lisbon", "Lisboa"], dtype=object)) == 1.0
    assert autocoa_lenient_reward(out, np.array(["Lisbon", "Porto"], dtype=object)) == 0.0
    assert autocoa_lenient_reward(out, "Lisbon<ans_split>Lisboa") == 1.0  # the parquet's joined form


def test_no_think_close_scores_zero():
    assert autocoa_lenient_reward("<think> x \\boxed{Lisbon}", "Lisbon") == 0.0


def test_search_after_last_think_close_scores_zero():
    out = f"<think> x </think> {SEARCH} \\boxed{{Lisbon}}"
    assert autocoa_lenient_reward(out, "Lisbon") == 0.0
    # a search before the last </think> is fine, even after an earlier one
    out = f"<think> a </think> <think> {SEARCH} </think> \\boxed{{Lisbon}}"
    assert autocoa_lenient_reward(out, "Lisbon") == 1.0


def test_last_boxed_after_think_is_the_answer():
    assert extract_final_answer("<think> x </think> \\boxed{Porto} no, \\boxed{Lisbon}") == "Lisbon"
    # a boxed answer inside the thinking does not count
    assert extract_final_answer("<think> \\boxed{Lisbon} </think> I am not sure") is None
    assert autocoa_lenient_reward("<think> \\boxed{Lisbon} </think> I am not sure", "Lisbon") == 0.0


def test_boxed_braces_nest():
    out = "<think> x </think> \\boxed{a{b}c}"
    assert extract_final_answer(out) == "a{b}c"
    # punctuation goes in normalisation: "a{b}c" -> "abc"; a non-nesting reader would see "a{b" -> "ab"
    assert autocoa_lenient_reward(out, "abc") == 1.0


def test_flexible_fallback_reads_answer_phrases():
    assert autocoa_lenient_reward("<think> x </think> The answer is Lisbon.", "Lisbon") == 1.0
    # a decimal point is not a sentence end; the last phrase wins
    out = "<think> x </think> My first answer is 2. The final answer is: 3.5 million.\nDone"
    assert extract_final_answer(out) == "3.5 million"
    assert autocoa_lenient_reward(out, "3.5 million") == 1.0
    assert autocoa_lenient_reward("<think> x </think> Lisbon", "Lisbon") == 0.0


def test_normalisation_maps_number_words_and_drops_fillers():
    assert normalize_lenient("About Twelve  apostles") == "12 apostles"
    assert normalize_lenient("twenty") == "20"
    assert autocoa_lenient_reward("<think> x </think> \\boxed{twelve}", "12") == 1.0
    assert autocoa_lenient_reward("<think> x </think> \\boxed{approximately 300}", "300") == 1.0
    # number words map one word at a time: "three hundred" -> "3 hundred", not "300"
    assert autocoa_lenient_reward("<think> x </think> \\boxed{around three hundred}", "300") == 0.0


def test_seventy_percent_of_gold_words_scores_one():
    # gold {new, york, city}: all 3 found -> 1; 2 of 3 = 67 % < 70 % -> 0
    assert autocoa_lenient_reward("<think> x </think> \\boxed{the city of New York}", "New York City") == 1.0
    assert autocoa_lenient_reward("<think> x </think> \\boxed{York City}", "New York City") == 0.0
    # 10 gold words: 7 found is exactly 70 % -> 1; 6 found -> 0
    gold = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    assert autocoa_lenient_reward("<think> x </think> \\boxed{alpha beta gamma delta epsilon zeta eta}", gold) == 1.0
    assert autocoa_lenient_reward("<think> x </think> \\boxed{alpha beta gamma delta epsilon zeta}", gold) == 0.0


def test_empty_or_missing_answer_scores_zero():
    assert autocoa_lenient_reward("<think> x </think> \\boxed{}", "Lisbon") == 0.0
    assert autocoa_lenient_reward("<think> x </think> \\boxed{the}", "Lisbon") == 0.0
    assert autocoa_lenient_reward("<think> x </think> \\boxed{Lisbon", "Lisbon") == 0.0



def test_the_prompt_is_not_read_and_kinder_cases_differ_from_the_release():
    prompt = "<think></think> Answer in \\boxed{YOUR_ANSWER}."
    assert AutoCoALenientReward()(["It is \\boxed{Lisbon}"], [["Lisbon"]], [prompt]) == [0.0]
    assert AutoCoAReward()(["It is \\boxed{Lisbon}"], [["Lisbon"]], [prompt]) == [1.0]  # the prompt's </think> counts
    # the release scores 0 for each (substring rule, first "}", "approximately" kept); the lenient rule 1
    for response, gold in [("\\boxed{Paris, France}", "Paris"), ("\\boxed{a{b}c}", "abc"), ("\\boxed{approximately 300}", "300")]:
        assert autocoa_lenient_reward("<think> x </think> " + response, gold) == 1.0
        assert autocoa_reward("<think> x </think> " + response, gold) == 0.0
