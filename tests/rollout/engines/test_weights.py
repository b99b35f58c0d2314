"""The weights an engine loads: LoRA merged into copies in float32 (the bf16 base never written), a 4-bit base
dequantised without reading the disk, Hugging Face names as the base model has them."""

import importlib.util

import pytest
import torch
from transformers import AutoModelForCausalLM

from coa.models.tiny import TinyModelConfig, build_tiny_model
from coa.models.tokenizer import train_tokenizer
from coa.policy import LoraSettings, Policy
from coa.rollout.engines.weights import policy_weights

TEXTS = ["Ada Vell was born in Orlin. <begin_search> Ada Vell </end_search>.", "Orlin is a city in Mereth."] * 3


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    # head_dim 64 as the GPU tests' model; tied embeddings, as TinyModelConfig builds them
    config = TinyModelConfig(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=256, max_position_embeddings=512)
    return build_tiny_model(train_tokenizer(TEXTS, vocab_size=300), config, tmp_path_factory.mktemp("weights_tiny"))


def base_names(model_dir) -> set[str]:
    return {name for name, _ in AutoModelForCausalLM.from_pretrained(model_dir).named_parameters()}


def lora_policy(model_dir, dtype="float32", **lora) -> Policy:
    """A LoRA policy whose adapters change the outputs (B starts at zero; here it is drawn)."""
    policy = Policy(str(model_dir), dtype=dtype, lora=LoraSettings(r=2, alpha=4, **lora))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return policy


def base_weights(policy: Policy) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_" not in n}


def q_proj(policy: Policy):
    return policy.model.base_model.model.model.layers[0].self_attn.q_proj


def test_the_bf16_base_is_bit_for_bit_unchanged_after_100_syncs(model_dir):
    policy = lora_policy(model_dir, dtype="bfloat16")
    before = base_weights(policy)
    # the premise: merging into the bf16 base in place and unmerging (what a sync did) does not give it back
    q = q_proj(policy)
    w0 = q.base_layer.weight.detach().clone()
    with torch.no_grad():
        for _ in range(100):
            q.merge()
            q.unmerge()
    moved = (q.base_layer.weight != w0).float().mean().item()
    assert moved > 0.001, moved
    with torch.no_grad():
        q.base_layer.weight.copy_(w0)
    for _ in range(100):
        for _ in policy_weights(policy.model, torch.bfloat16):  # what VLLMEngine.sync_weights hands to vLLM
            pass
    after = base_weights(policy)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[n], before[n]) for n in before)


def test_a_merged_weight_is_the_float32_merge_cast_to_the_base_dtype(model_dir):
    policy = lora_policy(model_dir, dtype="bfloat16")
    q = q_proj(policy)
    a, b = q.lora_A["default"].weight.float(), q.lora_B["default"].weight.float()
    expected = (q.base_layer.weight.float() + 2.0 * (b @ a)).to(torch.bfloat16)  # scaling = alpha / r = 2
    merged = dict(policy_weights(policy.model, torch.bfloat16))["model.layers.0.self_attn.q_proj.weight"]
    assert merged.dtype == torch.bfloat16 and torch.equal(merged, expected)
    assert not torch.equal(merged, q.base_layer.weight)  # the adapter is in it


def test_the_synced_weights_compute_what_the_lora_policy_computes(model_dir):
    policy = lora_policy(model_dir)
    ids = torch.tensor([[3, 4, 5, 6]])
    plain = AutoModelForCausalLM.from_pretrained(model_dir)
    missing, unexpected = plain.load_state_dict(dict(policy_weights(policy.model)), strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}  # tied to the embedding, given once
    torch.testing.assert_close(plain(input_ids=ids).logits, policy(ids, torch.ones_like(ids)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("lora", [None, {}, {"target_modules": ("all-linear",)}], ids=["full", "lora-qkvo", "lora-all"])
def test_names_are_the_base_models_each_once(model_dir, lora):
    policy = Policy(str(model_dir)) if lora is None else lora_policy(model_dir, **lora)
    names = [name for name, _ in policy_weights(policy.model)]
    assert set(names) == base_names(model_dir) and len(names) == len(set(names))


def test_full_fine_tuning_hands_over_the_parameters_themselves(model_dir):
    policy = Policy(str(model_dir))
    params = dict(policy.model.named_parameters())
    assert all(t.data_ptr() == params[name].data_ptr() for name, t in policy_weights(policy.model))  # no copies


def test_trained_tag_rows_reach_the_embedding_and_nothing_else_moves(multi_token_model_dir):
    policy = Policy(str(multi_token_model_dir), lora=LoraSettings(r=2, alpha=4), add_action_tokens=True)
    layer = policy.model.base_model.model.model.embed_tokens.token_adapter
    with torch.no_grad():
        layer.trainable_tokens_delta["default"].add_(1.0)  # "trained" rows
    base = layer.base_layer.weight.detach().clone()
    weights = dict(policy_weights(policy.model))
    rows = torch.tensor(layer.token_indices["default"])
    embedding = weights["model.embed_tokens.weight"]
    assert torch.equal(embedding[rows], layer.trainable_tokens_delta["default"])
    others = torch.ones(len(base), dtype=torch.bool)
    others[rows] = False
    assert torch.equal(embedding[others], base[others]) and torch.equal(layer.base_layer.weight, base)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes (pip install 'coa[qlora]')")
def test_a_4bit_base_is_dequantised_not_reloaded_from_disk(model_dir, monkeypatch):
    from peft import get_peft_model
    from peft.utils.integrations import dequantize_module_weight
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    quantised = AutoModelForCausalLM.from_pretrained(
        model_dir, quantization_config=config, device_map={"": "cpu"}, dtype=torch.bfloat16
    )
    model = get_peft_model(quantised, LoraSettings(r=2, alpha=4).to_peft())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.01)
    names = base_names(model_dir)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda *a, **k: pytest.fail("read the disk"))
    for _ in range(3):  # three optimizer steps' syncs
        weights = dict(policy_weights(model, torch.bfloat16))
    q = model.base_model.model.model.layers[0].self_attn.q_proj
    delta = 2.0 * (q.lora_B["default"].weight.float() @ q.lora_A["default"].weight.float())
    expected = (dequantize_module_weight(q.base_layer).float() + delta).to(torch.bfloat16)
    assert torch.equal(weights["model.layers.0.self_attn.q_proj.weight"], expected)
    up = model.base_model.model.model.layers[0].mlp.up_proj  # quantised, no adapter
    assert torch.equal(weights["model.layers.0.mlp.up_proj.weight"], dequantize_module_weight(up).to(torch.bfloat16))
    assert set(weights) == names and type(q.base_layer.weight).__name__ == "Params4bit"
