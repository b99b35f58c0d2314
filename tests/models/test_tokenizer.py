"""train_tokenizer: deterministic, tags are single tokens, any text round-trips, the chat template."""

from pathlib import Path

from transformers import AutoTokenizer

from coa.formats.action_format import AUTOCOA
from coa.models.tokenizer import ASSISTANT, EOS, USER, train_tokenizer

TEXTS = [
    "<think> Where was Ada born? <begin_search> Ada Moreau </end_search> "
    "<search_result> Ada Moreau was born in Lisbon. </search_result> </think> \\boxed{Lisbon}",
    "Bob Lindqvist works at Nordwave. Nordwave is based in Oslo.",
] * 3


def test_same_texts_give_identical_tokenizer_json(tmp_path: Path):
    train_tokenizer(TEXTS, vocab_size=300).save_pretrained(tmp_path / "a")
    train_tokenizer(TEXTS, vocab_size=300).save_pretrained(tmp_path / "b")
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()


def test_tags_and_specials_are_single_tokens():
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    for tag in [*AUTOCOA.tags, EOS, USER, ASSISTANT]:
        ids = tokenizer(tag, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, tag
    assert tokenizer.pad_token_id is not None and tokenizer.eos_token_id is not None
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_any_text_round_trips():
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    text = "Zoë's café — 東京 42% <think>x</think>\n\ttabs  and  spaces \\boxed{a{b}}"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_chat_template_renders_and_reloads(tmp_path: Path):
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    messages = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "<think> A </think>"}]
    assert reloaded.apply_chat_template(messages, tokenize=False) == f"{USER}Q?{ASSISTANT}<think> A </think>{EOS}"
    prompt = reloaded.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == f"{USER}Q?{ASSISTANT}"
    ids = reloaded(prompt, add_special_tokens=False)["input_ids"]
    assert reloaded.decode(ids) == prompt
    assert ids[-1] == reloaded.convert_tokens_to_ids(ASSISTANT)
