"""Loss masks: prompt never has loss; observations (their tags included) have none in stage 2, all in stage 3."""

import pytest

from coa.masking import char_mask_to_tokens, observation_spans, tokenize_chat
from coa.models.tokenizer import train_tokenizer

RESPONSE = (
    "<think> I need Ada's city. <begin_search> Ada </end_search> <search_result> (1) Ada: city Lisbon. "
    "</search_result> Ada's city Lisbon. </think> \\boxed{Lisbon}"
)
PROMPT = [{"role": "user", "content": "Where does Ada live?"}]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([RESPONSE, "Where does Ada live?"] * 4, vocab_size=300)


def test_observation_span_covers_the_leading_space_and_both_tags():
    (start, end), = observation_spans(RESPONSE)
    assert RESPONSE[start:end] == " <search_result> (1) Ada: city Lisbon. </search_result>"


def test_unclosed_observation_runs_to_the_end():
    assert observation_spans("a <search_result> b") == [(1, 19)]


def test_char_mask_to_tokens_masks_any_token_touching_a_span():
    # tokens: [0,3) [3,5) [5,9); span [4,6) touches the 2nd and 3rd
    assert char_mask_to_tokens([(0, 3), (3, 5), (5, 9)], [(4, 6)]) == [1, 0, 0]


def _pieces(tokenizer, example):
    return [(tokenizer.decode([i]), m) for i, m in zip(example.input_ids, example.loss_mask)]


def test_stage2_masks_prompt_and_exactly_the_observation(tokenizer):
    example = tokenize_chat(tokenizer, PROMPT, RESPONSE, mask_observations=True)
    pieces = _pieces(tokenizer, example)
    masked = "".join(p for p, m in pieces if m == 0)
    trained = "".join(p for p, m in pieces if m == 1)
    prompt_text = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    assert masked == prompt_text + " <search_result> (1) Ada: city Lisbon. </search_result>"
    # The policy's own text, the action's close tag included, and the end-of-sequence token keep loss.
    assert trained == RESPONSE.replace(" <search_result> (1) Ada: city Lisbon. </search_result>", "") + tokenizer.eos_token
    assert ("</end_search>", 1) in pieces and ("<search_result>", 0) in pieces and ("</search_result>", 0) in pieces


def test_stage3_trains_on_every_response_token(tokenizer):
    example = tokenize_chat(tokenizer, PROMPT, RESPONSE, mask_observations=False)
    pieces = _pieces(tokenizer, example)
    trained = "".join(p for p, m in pieces if m == 1)
    assert trained == RESPONSE + tokenizer.eos_token
    prompt_len = len(tokenizer.apply_chat_template(PROMPT, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"])
    assert example.loss_mask[:prompt_len] == [0] * prompt_len


def test_observation_tokens_match_what_a_rollout_appends(tokenizer):
    # The rollout encodes the observation alone and appends the ids: they must equal the SFT tokens.
    from coa.formats.action_format import AUTOCOA

    example = tokenize_chat(tokenizer, PROMPT, RESPONSE, mask_observations=True)
    appended = tokenizer.encode(AUTOCOA.format_observation("(1) Ada: city Lisbon."), add_special_tokens=False)
    masked_in_response = [i for i, m in zip(example.input_ids, example.loss_mask) if m == 0][-len(appended):]
    assert masked_in_response == appended
