"""autocoa: AutoCoA's released reward rule, case by case against the scores the release itself printed."""

import numpy as np
import pytest

from coa.prompts import PromptTemplate
from coa.rewards.autocoa import AutoCoAReward, autocoa_reward, extract_autocoa_answer, normalize_autocoa, split_golds

# The first row of the release's hotpot_qa/train.parquet (its user message equals this one, byte for byte)
# in a Qwen-style chat wrapping, as the release's reward manager decodes the templated prompt ids: the
# instruction holds `<think></think>` and `\boxed{YOUR_ANSWER}`, both read by the rule.
QUESTION = 'Who is an English author, known for her award-winning novel "Chocolat", Joanne Harris or Alice Walker ?'
PROMPT = "<|im_start|>user\n" + PromptTemplate("autocoa").user_message(QUESTION) + "<|im_end|>\n<|im_start|>assistant\n"
T = "<think> x </think> "
SEARCH = (
    "<begin_search> Ada Moreau </end_search> "
    "<search_result> Ada Moreau was born in Lisbon. </search_result>"
)
GREEK = "alpha beta gamma delta epsilon zeta eta theta iota kappa"

# (prompt, response, ground_truth, expected): `expected` is what the release printed for
# compute_score(prompt + response, ground_truth) in ADaM-BJTU/AutoCoA at commit
# b8cb53f55b7737fab16a1d26bf0d17757e7cfec5, file RL_training/verl/utils/reward_score/hotpotqa.py
# (last changed in 4390249ee66903b80b00805a17cccd1bfc7d0341), run unmodified outside this repo.
RELEASE_CASES = [
    pytest.param("", "\\boxed{Lisbon}", "Lisbon", 0.0, id="no_think_close"),
    pytest.param("", "", "Lisbon", 0.0, id="empty_everything"),
    pytest.param("", T + "\\boxed{Lisbon}", "", 0.0, id="empty_gold"),
    pytest.param("", "<think> Where? " + SEARCH + " </think> \\boxed{Lisbon}", "Lisbon", 1.0, id="boxed_right"),
    pytest.param("", "<think> Where? " + SEARCH + " </think> \\boxed{Porto}", "Lisbon", 0.0, id="boxed_wrong"),
    pytest.param("", T + SEARCH + " \\boxed{Lisbon}", "Lisbon", 0.0, id="search_after_last_think"),
    pytest.param("", "<think> a </think> <think> " + SEARCH + " </think> \\boxed{Lisbon}", "Lisbon", 1.0, id="search_before_last_think"),
    pytest.param("", "<think> \\boxed{Lisbon} </think> I am not sure", "Lisbon", 0.0, id="box_only_inside_think"),
    pytest.param("", T + "\\boxed{Porto} no, \\boxed{Lisbon}", "Lisbon", 1.0, id="last_box_wins"),
    pytest.param("", T + "\\boxed{a{b}c}", "abc", 0.0, id="box_reads_to_first_brace"),
    pytest.param("", T + "\\boxed{a{b}c}", "ab", 1.0, id="box_reads_to_first_brace_ab"),
    pytest.param("", T + "\\boxed{\\text{Lisbon}}", "Lisbon", 0.0, id="box_with_text_macro"),
    pytest.param("", T + "\\boxed{Lisbon", "Lisbon", 0.0, id="unclosed_box"),
    pytest.param("", T + "\\boxed{}", "Lisbon", 0.0, id="empty_box"),
    pytest.param("", T + "\\boxed{A}", "the", 1.0, id="box_and_gold_both_normalise_empty"),
    pytest.param("", T + "\\boxed{Lisbon}", "the", 0.0, id="gold_normalises_empty"),
    pytest.param("", T + "The answer is Lisbon.", "Lisbon", 1.0, id="answer_is"),
    pytest.param("", T + "THE ANSWER IS: Lisbon", "Lisbon", 1.0, id="answer_is_colon_upper"),
    pytest.param("", T + "The answer is Porto. No, the answer is Lisbon.", "Lisbon", 0.0, id="first_answer_is_wins"),
    pytest.param("", T + "The answer is 3.5 million.", "3.5 million", 0.0, id="answer_is_stops_at_decimal_point"),
    pytest.param("", T + "The answer is Lisbon\nand that is all", "Lisbon", 0.0, id="answer_is_runs_over_newline"),
    pytest.param("", T + "My answer is Lisbon.", "Lisbon", 0.0, id="my_answer_is_not_a_phrase"),
    pytest.param("", T + "Therefore, Lisbon.", "Lisbon", 1.0, id="therefore"),
    pytest.param("", T + "Therefore Lisbon", "Lisbon", 0.0, id="therefore_without_comma"),
    pytest.param("", T + "Thus, the city is Lisbon.", "Lisbon", 0.0, id="thus_sentence"),
    pytest.param("", T + "So, Lisbon.", "Lisbon", 1.0, id="so"),
    pytest.param("", T + "Also, Lisbon.", "Lisbon", 1.0, id="so_inside_also"),
    pytest.param("", T + "Hence, Lisbon", "Lisbon", 1.0, id="hence_no_period"),
    pytest.param("", T + "In conclusion, Lisbon.", "Lisbon", 1.0, id="in_conclusion"),
    pytest.param("", T + "So, maybe Porto. The answer is Lisbon.", "Lisbon", 0.0, id="first_marker_wins"),
    pytest.param("", T + "Lisbon.", "Lisbon", 1.0, id="last_sentence_with_period"),
    pytest.param("", T + "Lisbon", "Lisbon", 1.0, id="last_sentence_no_period"),
    pytest.param("", T + "I checked. Lisbon", "Lisbon", 0.0, id="last_sentence_is_second_last_piece"),
    pytest.param("", T + "Porto. Lisbon.", "Lisbon", 1.0, id="last_sentence_two_periods"),
    pytest.param("", T + "It is Lisbon.", "Lisbon", 0.0, id="last_sentence_whole_clause"),
    pytest.param("", "<think> x </think>", "Lisbon", 0.0, id="think_close_then_nothing"),
    pytest.param("", T + "\\boxed{three}", "3", 1.0, id="number_word_three"),
    pytest.param("", T + "\\boxed{Three}", "three", 1.0, id="number_word_both_sides"),
    pytest.param("", T + "\\boxed{twelve}", "12", 0.0, id="number_word_twelve_not_mapped"),
    pytest.param("", T + "\\boxed{one hundred}", "100", 0.0, id="number_word_one_hundred"),
    pytest.param("", T + "\\boxed{just Lisbon}", "Lisbon", 1.0, id="filler_just"),
    pytest.param("", T + "\\boxed{What}", "So What", 1.0, id="filler_so_in_gold"),
    pytest.param("", T + "\\boxed{approximately 300}", "300", 0.0, id="approximately_is_not_a_filler"),
    pytest.param("", T + "\\boxed{「Lisbon」}", "Lisbon", 1.0, id="corner_brackets"),
    pytest.param("", T + "\\boxed{『Lisbon』}", "Lisbon", 1.0, id="white_corner_brackets"),
    pytest.param("", T + "\\boxed{“Lisbon”}", "Lisbon", 0.0, id="curly_quotes_kept"),
    pytest.param("", T + "\\boxed{Paris, France}", "Paris", 0.0, id="substring_pred_longer"),
    pytest.param("", T + "\\boxed{Paris}", "Paris, France", 0.0, id="substring_pred_shorter"),
    pytest.param("", T + "\\boxed{New York City}", "New York", 0.0, id="substring_beats_full_overlap"),
    pytest.param("", T + "\\boxed{the city of New York}", "New York City", 1.0, id="overlap_all_gold_words"),
    pytest.param("", T + "\\boxed{York City}", "New York City", 0.0, id="overlap_substring_shorter"),
    pytest.param("", T + "\\boxed{kappa iota theta eta zeta epsilon delta}", GREEK, 1.0, id="overlap_7_of_10"),
    pytest.param("", T + "\\boxed{kappa iota theta eta zeta epsilon}", GREEK, 0.0, id="overlap_6_of_10"),
    pytest.param("", T + "\\boxed{Harris Joanne Sylvie}", "Joanne Michèle Sylvie Harris", 1.0, id="overlap_3_of_4_accents"),
    pytest.param("", T + "\\boxed{Joanne Harris}", "Joanne Michèle Sylvie Harris", 0.0, id="overlap_2_of_4"),
    pytest.param("", T + "\\boxed{Lisboa}", "Lisbon<ans_split>Lisboa", 1.0, id="ans_split_second"),
    pytest.param("", T + "\\boxed{Porto}", "Lisbon<ans_split>Lisboa", 0.0, id="ans_split_none"),
    pytest.param("", T + "\\boxed{Lisboa}", " Lisbon <ans_split> Lisboa ", 1.0, id="ans_split_spaces"),
    pytest.param("", T + "\\boxed{A}", "<ans_split>Lisbon", 0.0, id="ans_split_empty_piece"),
    pytest.param("", T + "\\boxed{Lisbon}", "Lisbon<ans_split>Lisboa", 1.0, id="ans_split_first"),
    pytest.param("", T + "\\boxed{Lisbon}. The answer is Porto.", "Lisbon", 1.0, id="box_beats_answer_phrase"),
    pytest.param(PROMPT, T + "\\boxed{Lisbon}", "Lisbon", 1.0, id="prompt_think_boxed"),
    pytest.param(PROMPT, "It is \\boxed{Lisbon}", "Lisbon", 1.0, id="prompt_no_think_boxed"),
    pytest.param(PROMPT, "Lisbon.", "Lisbon", 0.0, id="prompt_no_think_no_box"),
    pytest.param(PROMPT, "I do not know", "YOUR_ANSWER", 1.0, id="prompt_no_think_no_box_placeholder_gold"),
    pytest.param(PROMPT, T + "The answer is Lisbon.", "Lisbon", 1.0, id="prompt_think_no_box_answer_is"),
    pytest.param(PROMPT, SEARCH, "Lisbon", 0.0, id="prompt_no_think_search"),
    pytest.param(PROMPT, "<think> " + SEARCH + " \\boxed{Lisbon}", "Lisbon", 0.0, id="prompt_no_think_box_in_response_thinking"),
    pytest.param(PROMPT, "<think> x \\boxed{Lisbon}", "Lisbon", 1.0, id="prompt_no_think_box_in_thinking"),
    pytest.param(PROMPT, "The answer is Lisbon.", "Lisbon", 0.0, id="prompt_no_think_answer_is"),
    pytest.param(PROMPT, T + "The answer is Lisbon<|im_end|>", "Lisbon", 0.0, id="prompt_eos_after_phrase"),
    pytest.param(PROMPT, T + "\\boxed{Lisbon}<|im_end|>", "Lisbon", 1.0, id="prompt_eos_after_box"),
    pytest.param(PROMPT, "<think> x </think>", "Lisbon", 0.0, id="prompt_think_nothing_after"),
]


@pytest.mark.parametrize(("prompt", "response", "ground_truth", "expected"), RELEASE_CASES)
def test_scores_as_the_release_printed(prompt, response, ground_truth, expected):
    assert autocoa_reward(response, ground_truth, prompt) == expected


@pytest.mark.parametrize(("prompt", "response", "ground_truth", "expected"), RELEASE_CASES)
def test_the_reward_class_scores_prompt_plus_response(prompt, response, ground_truth, expected):
    assert AutoCoAReward()([response], [ground_truth], [prompt]) == [expected]


def test_golds_as_a_list_or_array_score_as_the_joined_string():
    # the release raises AttributeError: 'list' (or 'numpy.ndarray') object has no attribute 'split';
    # here they score as "Lisbon<ans_split>Lisboa" does (release: 1.0 for Lisbon and Lisboa, 0.0 for Porto)
    for golds in (["Lisbon", "Lisboa"], np.array(["Lisbon", "Lisboa"], dtype=object), ["Lisbon<ans_split>Lisboa"]):
        assert split_golds(golds) == ["Lisbon", "Lisboa"]
        assert autocoa_reward(T + "\\boxed{Lisboa}", golds) == 1.0
        assert autocoa_reward(T + "\\boxed{Porto}", golds) == 0.0
    with pytest.raises(ValueError, match="each gold answer must be a str, got int"):
        autocoa_reward(T + "\\boxed{1}", [1])


def test_normalisation_and_extraction_steps():
    assert normalize_autocoa("So, 『The』 Nine  Muses!") == "9 muses"
    assert normalize_autocoa("twelve") == "twelve"  # only zero..nine become digits
    assert normalize_autocoa(None) == ""
    assert extract_autocoa_answer(T + "\\boxed{a{b}c}") == "ab"  # up to the first }, then { is punctuation
    assert extract_autocoa_answer(T + "Also, Lisbon.") == "lisbon"  # "So," matches inside "Also,"
    assert extract_autocoa_answer(T + "I checked. Lisbon") == "i checked"  # the piece before the last "."
    assert extract_autocoa_answer("<think> x </think>  ") is None
    # no </think> in the response: the prompt's is the last, and its placeholder box is the answer
    assert extract_autocoa_answer(PROMPT + "Lisbon.") == "youranswer"
