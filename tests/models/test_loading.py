"""One tokenizer set-up for the policy and the datamodules: pad fallback, a chat template for base models."""

import pytest

from coa.models.loading import DEFAULT_CHAT_TEMPLATE, check_same_tokenizer, load_tokenizer
from coa.models.tokenizer import train_tokenizer


def test_no_pad_and_no_chat_template_get_fallbacks(tmp_path):
    tok = train_tokenizer(["some words to learn from"] * 20, vocab_size=300)
    tok.pad_token, tok.chat_template = None, None
    tok.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="no chat template"):
        loaded = load_tokenizer(str(tmp_path))
    assert loaded.pad_token == loaded.eos_token and loaded.padding_side == "left"
    assert loaded.chat_template == DEFAULT_CHAT_TEMPLATE
    text = loaded.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text == "User: hi\nAssistant:"


SHORT_TEMPLATE = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"


@pytest.fixture
def tokenizer_dir(tmp_path):
    tok = train_tokenizer(["some words to learn from <begin_search> x </end_search>"] * 20, vocab_size=300, tags_as_tokens=False)
    tok.save_pretrained(tmp_path / "tok")
    return str(tmp_path / "tok")


def test_chat_template_setting_takes_a_jinja_text_or_a_file(tokenizer_dir, tmp_path):
    file = tmp_path / "chat.jinja"
    file.write_text(SHORT_TEMPLATE)
    for value in (SHORT_TEMPLATE, str(file)):
        loaded = load_tokenizer(tokenizer_dir, chat_template=value)
        assert loaded.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "[user] hi\n"


def test_chat_template_neither_jinja_nor_a_file_names_the_setting(tokenizer_dir):
    with pytest.raises(ValueError, match=r"chat_template='nope.jinja' is neither a Jinja template .* nor an existing file"):
        load_tokenizer(tokenizer_dir, chat_template="nope.jinja")


def test_add_action_tokens_gives_each_tag_one_id(tokenizer_dir):
    plain, added = load_tokenizer(tokenizer_dir), load_tokenizer(tokenizer_dir, add_action_tokens=True)
    assert len(added) == len(plain) + 6
    assert len(added.encode("</end_search>", add_special_tokens=False)) == 1


def test_tokenizers_of_policy_and_data_must_agree(tokenizer_dir):
    plain = load_tokenizer(tokenizer_dir)
    check_same_tokenizer(plain, load_tokenizer(tokenizer_dir))
    with pytest.raises(ValueError, match="policy.add_action_tokens and data.add_action_tokens differ"):
        check_same_tokenizer(load_tokenizer(tokenizer_dir, add_action_tokens=True), plain)
    with pytest.raises(ValueError, match="policy.chat_template and data.chat_template differ"):
        check_same_tokenizer(load_tokenizer(tokenizer_dir, chat_template=SHORT_TEMPLATE), plain)
