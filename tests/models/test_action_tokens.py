"""add_action_tokens: the tags become plain tokens, their rows start as the mean of their pieces', peft trains them."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from coa.formats.action_format import AUTOCOA
from coa.models.action_tokens import action_token_ids, add_tag_tokens, grow_embeddings, trainable_token_modules
from coa.models.tokenizer import train_tokenizer
from coa.policy import LoraSettings, Policy

TEXTS = ["<think> Who? <begin_search> Ada </end_search> <search_result> Ada was born in Orlin. </search_result> </think>"] * 8


@pytest.fixture
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=300, tags_as_tokens=False)


def tiny_model(vocab_size: int, tied: bool) -> torch.nn.Module:
    config = AutoConfig.for_model(
        "llama", vocab_size=vocab_size, hidden_size=4, num_hidden_layers=1, num_attention_heads=1,
        num_key_value_heads=1, intermediate_size=8, tie_word_embeddings=tied,
    )
    return AutoModelForCausalLM.from_config(config)


def test_tags_become_plain_tokens_that_decode_without_specials(tokenizer):
    before = {tag: tokenizer.encode(tag, add_special_tokens=False) for tag in AUTOCOA.tags}
    size = len(tokenizer)
    pieces = add_tag_tokens(tokenizer)
    assert sorted(pieces) == list(range(size, size + 6)) and len(tokenizer) == size + 6
    for tag in AUTOCOA.tags:
        (token,) = tokenizer.encode(tag, add_special_tokens=False)
        assert pieces[token] == before[tag]
    text = "<think> x <begin_search> Ada </end_search> <search_result> y </search_result> </think>"
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False), skip_special_tokens=True) == text
    assert action_token_ids(tokenizer) == sorted(pieces)


def test_adding_twice_adds_nothing(tokenizer):
    add_tag_tokens(tokenizer)
    size = len(tokenizer)
    assert add_tag_tokens(tokenizer) == {} and len(tokenizer) == size


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_new_rows_are_the_mean_of_their_pieces_rows(tied):
    model = tiny_model(5, tied)
    with torch.no_grad():
        for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
            layer.weight.copy_(torch.arange(20.0).view(5, 4))  # row i = [4i, 4i+1, 4i+2, 4i+3]
    grow_embeddings(model, 7, {5: [0, 2], 6: [1, 3, 4]})
    # row 5 = (row 0 + row 2) / 2 = [4, 5, 6, 7]; row 6 = (row 1 + row 3 + row 4) / 3 = [32/3, 35/3, 38/3, 41/3]
    expected = torch.tensor([[4.0, 5.0, 6.0, 7.0], [32 / 3, 35 / 3, 38 / 3, 41 / 3]])
    for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
        assert layer.weight.shape == (7, 4)
        torch.testing.assert_close(layer.weight[5:].detach(), expected)
    assert model.config.vocab_size == 7


def test_spare_rows_take_the_new_ids_and_nothing_shrinks():
    model = tiny_model(8, tied=True)  # a vocabulary padded beyond the tokenizer's 6 tokens, as Qwen's
    grow_embeddings(model, 7, {6: [0, 1]})
    weight = model.get_input_embeddings().weight
    assert weight.shape[0] == 8
    torch.testing.assert_close(weight[6].detach(), weight[:2].mean(0).detach())


@pytest.mark.parametrize("tied, names", [(True, ["embed_tokens"]), (False, ["embed_tokens", "lm_head"])])
def test_trainable_token_modules_name_the_head_only_when_untied(tied, names):
    assert trainable_token_modules(tiny_model(5, tied)) == names


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def multi_token_dir(request, tmp_path_factory):
    """A tiny Llama whose tokenizer splits every tag into several tokens, with a tied or an untied head."""
    tok = train_tokenizer(TEXTS, vocab_size=300, tags_as_tokens=False)
    out = tmp_path_factory.mktemp("multi_token")
    torch.manual_seed(0)
    tiny_model(len(tok), tied=request.param).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def adam_steps(policy: Policy, steps: int = 3) -> torch.Tensor:
    """A few steps on a text with every tag; returns its ids."""
    ids = policy.tokenizer(TEXTS[:1], return_tensors="pt")["input_ids"]
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        loss = -policy.token_logprobs(ids, torch.ones_like(ids)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return ids


def test_under_lora_the_new_rows_train_and_no_other(multi_token_dir):
    policy = Policy(str(multi_token_dir), lora=LoraSettings(r=2), add_action_tokens=True)
    trained = [n for n, p in policy.named_parameters() if p.requires_grad]
    rows = [n for n in trained if "lora_" not in n]
    tied = policy.model.config.tie_word_embeddings
    assert len(rows) == (1 if tied else 2) and all("trainable_tokens_delta" in n for n in rows)
    before = {name: layer.weight.detach().clone() for name, layer in embedding_layers(policy)}
    adam_steps(policy)
    new = sorted(policy.new_token_pieces)
    for name, layer in embedding_layers(policy):
        after = layer.token_adapter.get_merged_weights(["default"]) if hasattr(layer, "token_adapter") else layer.weight
        assert not torch.allclose(after[new], before[name][new]), name  # the tags' rows moved
        torch.testing.assert_close(after[: new[0]], before[name][: new[0]])  # every other row stayed


def embedding_layers(policy: Policy) -> list[tuple[str, torch.nn.Module]]:
    model = policy.model
    return [("input", model.get_input_embeddings()), ("output", model.get_output_embeddings())]


@pytest.mark.parametrize("lora", [None, LoraSettings(r=2)], ids=["full", "lora"])
def test_the_export_loads_in_plain_transformers_with_the_tags_as_tokens(multi_token_dir, tmp_path, lora):
    policy = Policy(str(multi_token_dir), lora=lora, add_action_tokens=True)
    ids = adam_steps(policy)
    out = policy.save_pretrained(tmp_path / "export")
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    policy.eval()
    torch.testing.assert_close(reloaded(input_ids=ids).logits, policy(ids, torch.ones_like(ids)), atol=1e-5, rtol=1e-5)
    assert AutoTokenizer.from_pretrained(out)(TEXTS[0])["input_ids"] == ids[0].tolist()
    again = Policy(str(out), lora=lora, add_action_tokens=True)  # the next stage: nothing more to add
    assert again.new_token_pieces == {} and len(again.tokenizer) == len(policy.tokenizer)


def test_full_fine_tuning_reference_has_the_grown_vocabulary(multi_token_dir):
    policy = Policy(str(multi_token_dir), add_action_tokens=True)
    ids = policy.tokenizer(TEXTS[:1], return_tensors="pt")["input_ids"]
    mask = torch.ones_like(ids)
    torch.testing.assert_close(policy.reference_logprobs(ids, mask, mask).sum, policy.sequence_logprobs(ids, mask, mask).sum)
