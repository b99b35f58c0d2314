"""SFTDataModule: its tokenizer is the policy's (added tags, chat template), so the ids it trains on are the policy's."""

import json

import pytest
import torch

from coa.data.messages import Trajectory
from coa.datamodules.sft import SFTDataModule
from coa.masking import tokenize_chat
from coa.policy import Policy
from coa.prompts import PromptTemplate

TEMPLATE = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}{% endfor %}" \
           "{% if add_generation_prompt %}[assistant] {% endif %}"
RESPONSE = "<think> x <begin_search> Ada </end_search> <search_result> y </search_result> </think> \\boxed{ z }"


def test_added_tags_and_chat_template_give_the_policys_ids(multi_token_model_dir, tmp_path):
    settings = dict(chat_template=TEMPLATE, add_action_tokens=True)
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": RESPONSE}]}))
    data = SFTDataModule(str(path), tokenizer_path=str(multi_token_model_dir), prompt="short", **settings)
    example = data.tokenize(Trajectory("t", "Q?", RESPONSE))
    policy = Policy(str(multi_token_model_dir), **settings)
    expected = tokenize_chat(policy.tokenizer, PromptTemplate("short").messages("Q?"), RESPONSE, True)
    assert example == expected
    tags = set(policy.new_token_pieces)
    assert len(tags) == 6 and tags <= set(example.input_ids)  # every tag is one id in the training data
    assert data.tokenizer.decode(example.input_ids).startswith("[user] ")


def test_stage3_variant_leaves_only_the_observation_open_tag_untrained(multi_token_model_dir, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": RESPONSE}]}))
    data = SFTDataModule(
        str(path), tokenizer_path=str(multi_token_model_dir), prompt="short", mask_observations=False, mask_observation_open=True
    )
    example = data.tokenize(Trajectory("t", "Q?", RESPONSE))
    opener = data.tokenizer.encode(" <search_result>", add_special_tokens=False)
    assert len(opener) > 1  # the tag is several tokens here, and all of them lose their loss
    trained = data.tokenizer.decode([i for i, m in zip(example.input_ids, example.loss_mask) if m])
    assert "<search_result>" not in trained.replace("</search_result>", "")
    assert "</search_result>" in trained and " y " in trained and "</end_search>" in trained


def test_observation_weight_on_a_multi_token_tokenizer_weighs_every_piece_of_the_tags(multi_token_model_dir, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": RESPONSE}]}))
    data = SFTDataModule(
        str(path), tokenizer_path=str(multi_token_model_dir), prompt="short", mask_observations=False, observation_weight=0.1
    )
    example = data.tokenize(Trajectory("t", "Q?", RESPONSE))
    assert len(data.tokenizer.encode("</search_result>", add_special_tokens=False)) > 1
    weighted = data.tokenizer.decode([i for i, m in zip(example.input_ids, example.loss_mask) if m == 0.1])
    assert weighted.strip() == "<search_result> y </search_result>"
    batch = data._collate([example])
    assert batch.loss_mask.dtype == torch.float32 and batch.loss_mask.max().item() == 1.0


@pytest.mark.parametrize("settings", [dict(observation_weight=0.0), dict(observation_weight=1.5),
                                      dict(observation_weight=0.5, mask_observations=True)])
def test_observation_weight_out_of_range_or_on_masked_observations_is_refused(settings, tmp_path):
    with pytest.raises(ValueError, match="observation_weight"):
        SFTDataModule(str(tmp_path / "train.jsonl"), tokenizer_path="unused", **settings)
