"""Policy: log-prob math, references, LoRA on/off, loading foreign HF dirs and YAML, saving."""

import math
import shutil
import time
from pathlib import Path

import pytest
import torch

from coa.models.tiny import TinyModelConfig, build_tiny_model
from coa.models.tokenizer import train_tokenizer
from coa.policy import (
    ADAPTER_DIR, LoraSettings, Policy, gather_logprobs, masked_sequence_logprobs, scatter_sequence_logprobs,
)

TEXTS = [
    "<think> Who founded Acme? <begin_search> Acme founder </end_search> "
    "<search_result> Acme was founded by Ada Moreau in Lisbon. </search_result> "
    "The founder is Ada Moreau. </think> \\boxed{Ada Moreau}",
    "Bob Lindqvist was born in Oslo and works at Nordwave as an engineer.",
] * 4
TINY = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=64)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    return build_tiny_model(tokenizer, TINY, tmp_path_factory.mktemp("tiny"))


def batch(policy: Policy) -> tuple[torch.Tensor, torch.Tensor]:
    enc = policy.tokenizer(["Acme was founded by Ada", "Bob works at Nordwave as an engineer"], padding=True,
                           return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def sgd_step(policy: Policy, ids: torch.Tensor, attn: torch.Tensor) -> None:
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1.0)
    loss = -policy.sequence_logprobs(ids, attn, attn).mean.mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def test_gather_logprobs_by_hand():
    # V=3. pos 0: uniform -> log(1/3); pos 1: logits [ln 2, 0, 0] -> probs [1/2, 1/4, 1/4], target 0 -> log(1/2)
    logits = torch.tensor([[[0.0, 0.0, 0.0], [math.log(2), 0.0, 0.0], [5.0, 1.0, 2.0]]])
    ids = torch.tensor([[2, 1, 0]])
    out = gather_logprobs(logits, ids)
    assert out.shape == (1, 2)
    torch.testing.assert_close(out, torch.tensor([[math.log(1 / 3), math.log(1 / 2)]]))


def test_masked_sequence_logprobs_by_hand():
    token = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[0, 1, 1], [0, 0, 0]])
    out = masked_sequence_logprobs(token, mask)
    torch.testing.assert_close(out.token, torch.tensor([[0.0, -2.0, -3.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(out.sum, torch.tensor([-5.0, 0.0]))
    torch.testing.assert_close(out.mean, torch.tensor([-2.5, 0.0]))  # -5 / 2; no loss tokens -> 0 / 1


def test_scatter_sequence_logprobs_by_hand():
    # targets in row-major order: row 0 has two (-2, -3), row 1 none
    out = scatter_sequence_logprobs(torch.tensor([-2.0, -3.0]), torch.tensor([[0, 1, 1], [0, 0, 0]]))
    torch.testing.assert_close(out.token, torch.tensor([[0.0, -2.0, -3.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(out.sum, torch.tensor([-5.0, 0.0]))
    torch.testing.assert_close(out.mean, torch.tensor([-2.5, 0.0]))


def test_sequence_logprobs_match_log_softmax_gather(model_dir):
    policy = Policy(str(model_dir))
    ids, attn = batch(policy)
    loss_mask = attn.clone()
    loss_mask[:, -2] = 0
    out = policy.sequence_logprobs(ids, attn, loss_mask)
    logits = policy(ids, attn)
    expected = torch.log_softmax(logits, -1)[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
    target_mask = loss_mask[:, 1:].bool()
    torch.testing.assert_close(out.token, expected * target_mask)
    torch.testing.assert_close(out.sum, (expected * target_mask).sum(-1))
    torch.testing.assert_close(out.mean, out.sum / target_mask.sum(-1))


def test_left_padding_does_not_change_logprobs(model_dir):
    policy = Policy(str(model_dir))
    ids, attn = batch(policy)
    assert policy.tokenizer.padding_side == "left" and attn[0, 0] == 0  # the short row is padded
    n = int(attn[0].sum())
    alone = policy.token_logprobs(ids[:1, -n:], attn[:1, -n:])
    padded = policy.token_logprobs(ids[:1], attn[:1])[:, -(n - 1):]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


def test_lora_reference_is_base_model_and_diverges_after_step(model_dir):
    from transformers import AutoModelForCausalLM

    policy = Policy(str(model_dir), lora=LoraSettings(r=4))
    ids, attn = batch(policy)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    base_logits = base(input_ids=ids, attention_mask=attn, position_ids=(attn.cumsum(-1) - 1).clamp(min=0)).logits
    expected = masked_sequence_logprobs(gather_logprobs(base_logits, ids), attn[:, 1:])
    ref = policy.reference_logprobs(ids, attn, attn)
    torch.testing.assert_close(ref.token, expected.token)
    assert not ref.sum.requires_grad
    # LoRA's B starts at zero: policy == reference until a step moves it
    torch.testing.assert_close(policy.sequence_logprobs(ids, attn, attn).sum, ref.sum)
    sgd_step(policy, ids, attn)
    after = policy.sequence_logprobs(ids, attn, attn).sum
    assert (after - ref.sum).abs().min() > 1e-3
    torch.testing.assert_close(policy.reference_logprobs(ids, attn, attn).sum, ref.sum)


def test_full_reference_is_frozen_copy_outside_state_dict(model_dir):
    policy = Policy(str(model_dir))
    ids, attn = batch(policy)
    names = set(policy.state_dict())
    ref = policy.reference_logprobs(ids, attn, attn)
    assert set(policy.state_dict()) == names  # the reference registers nothing
    assert all(p.requires_grad for p in policy.parameters())
    sgd_step(policy, ids, attn)
    assert (policy.sequence_logprobs(ids, attn, attn).sum - ref.sum).abs().min() > 1e-3
    torch.testing.assert_close(policy.reference_logprobs(ids, attn, attn).sum, ref.sum)


def test_full_reference_first_used_after_a_step_is_still_the_start(model_dir):
    policy = Policy(str(model_dir))
    ids, attn = batch(policy)
    start = policy.sequence_logprobs(ids, attn, attn).sum.detach()
    sgd_step(policy, ids, attn)
    torch.testing.assert_close(policy.reference_logprobs(ids, attn, attn).sum, start)


def test_lora_switches_which_parameters_train(model_dir):
    full = Policy(str(model_dir))
    assert all(p.requires_grad for p in full.parameters())
    lora = Policy(str(model_dir), lora=LoraSettings(r=2, target_modules=("q_proj", "v_proj")))
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert len(trainable) == TINY.num_layers * 2 * 2  # layers x (q, v) x (A, B)


def test_gradient_checkpointing_backward_reaches_lora(model_dir):
    policy = Policy(str(model_dir), lora=LoraSettings(r=2), gradient_checkpointing=True)
    policy.train()
    ids, attn = batch(policy)
    calls = []
    policy.model.get_base_model().model.layers[0].mlp.register_forward_pre_hook(lambda *_: calls.append(1))
    policy.sequence_logprobs(ids, attn, attn).mean.sum().backward()
    assert len(calls) == 2  # forward, then recomputed in backward
    grads = [p.grad for n, p in policy.named_parameters() if "lora_A" in n]
    assert grads and all(g is not None for g in grads)


@pytest.fixture(scope="module")
def foreign_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Qwen2 model + word-level tokenizer written by plain transformers, no coa code."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out = tmp_path_factory.mktemp("foreign")
    raw = Tokenizer(models.WordLevel({"<pad>": 0, "<eos>": 1, "a": 2, "b": 3, "c": 4}, unk_token="<pad>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>").save_pretrained(out)
    config = Qwen2Config(vocab_size=5, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    torch.manual_seed(1)
    Qwen2ForCausalLM(config).save_pretrained(out)
    return out


def test_loads_a_directory_written_by_plain_transformers(foreign_dir):
    from transformers import Qwen2ForCausalLM

    original = Qwen2ForCausalLM.from_pretrained(foreign_dir).eval()
    policy = Policy(str(foreign_dir))
    ids = policy.tokenizer(["a b c a"], return_tensors="pt")["input_ids"]
    assert ids.tolist() == [[2, 3, 4, 2]]
    torch.testing.assert_close(policy(ids, torch.ones_like(ids)), original(input_ids=ids).logits)


def test_yaml_class_path_with_lora_dict_builds_a_policy(foreign_dir):
    from jsonargparse import ArgumentError, ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--policy", type=Policy)  # what LightningCLI does for `policy: Policy` in a module
    cfg = parser.parse_string(
        f"policy: {{class_path: coa.policy.Policy, init_args: {{model_name_or_path: '{foreign_dir}', lora: {{r: 4}}}}}}"
    )
    policy = parser.instantiate(cfg).policy
    assert isinstance(policy, Policy) and policy.lora == LoraSettings(r=4)
    assert any("lora_A" in n for n in trainable_names(policy))
    with pytest.raises(ArgumentError, match="bogus"):  # unknown keys fail at load
        parser.parse_string(
            f"policy: {{class_path: coa.policy.Policy, init_args: {{model_name_or_path: x, lora: {{bogus: 1}}}}}}"
        )


@pytest.mark.parametrize("lora", [None, LoraSettings(r=4)], ids=["full", "lora"])
def test_save_pretrained_round_trips_with_lora_merged(model_dir, tmp_path, lora):
    from transformers import AutoModelForCausalLM

    policy = Policy(str(model_dir), lora=lora)
    ids, attn = batch(policy)
    sgd_step(policy, ids, attn)
    out = policy.save_pretrained(tmp_path / "saved")
    assert not (out / "adapter_config.json").exists()  # at the top, transformers would load it as a peft model
    assert (out / ADAPTER_DIR / "adapter_config.json").exists() == (lora is not None)
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in reloaded.named_parameters())
    again = Policy(str(out))
    torch.testing.assert_close(again(ids, attn), policy(ids, attn), atol=1e-5, rtol=1e-5)
    if lora is not None:  # merging worked on a copy: the policy still trains its adapter
        assert trainable_names(policy) and all("lora_" in n for n in trainable_names(policy))


# Max |logit difference| allowed between the live LoRA policy and its export. float32: merging computes
# (W + s·B·A)·x instead of W·x + s·B·(A·x), a few float32 roundings apart (measured 1.2e-7). bfloat16 / float16:
# the merged weight W + s·B·A is rounded to the dtype while the live adapter runs in float32 (peft keeps it
# there), so logits may differ by a few units in the last place; with every logit in [-1, 1) (asserted) that
# is 2**-8 (bfloat16) or 2**-11 (float16) per unit (measured: 1 unit each); 4 units are allowed.
MERGE_ATOL = {"float32": 1e-5, "bfloat16": 4 * 2**-8, "float16": 4 * 2**-11}


@pytest.mark.parametrize("dtype", list(MERGE_ATOL))
def test_merge_export_round_trip_keeps_the_logits(model_dir, tmp_path, dtype):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    policy = Policy(str(model_dir), dtype=dtype, lora=LoraSettings(r=4, target_modules=("all-linear",)))
    ids, attn = batch(policy)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):  # LoRA's B starts at zero: a few steps make the adapter matter
        (-policy.sequence_logprobs(ids, attn, attn).mean.mean()).backward()
        optimizer.step()
        optimizer.zero_grad()
    policy.eval()
    real = attn.bool()  # padding positions are not compared
    with torch.no_grad():
        live = policy(ids, attn).float()[real]
        with policy.model.disable_adapter():
            untrained = policy(ids, attn).float()[real]
    atol = MERGE_ATOL[dtype]
    assert live.abs().max() < 1  # the premise of the tolerance above
    assert (live - untrained).abs().max() > 10 * atol  # the adapter changed the logits: the test can fail

    out = policy.save_pretrained(tmp_path / "export")
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)  # left padding, as the policy does

    def logits(model: torch.nn.Module) -> torch.Tensor:
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=attn, position_ids=position_ids).logits.float()[real]

    merged = AutoModelForCausalLM.from_pretrained(out).eval()  # plain transformers, no peft, no coa
    assert next(merged.parameters()).dtype == policy.torch_dtype
    assert not any("lora" in name for name, _ in merged.named_parameters())
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=policy.torch_dtype)
    adapted = PeftModel.from_pretrained(base, out / ADAPTER_DIR).eval()  # the adapter alone, on its base
    print(f"\n{dtype}: max |logit difference| merged export {(logits(merged) - live).abs().max():.2e}, base + adapter "
          f"{(logits(adapted) - live).abs().max():.2e}, adapter's own effect {(live - untrained).abs().max():.2f}; "
          f"tolerance {atol:.2e}")
    torch.testing.assert_close(logits(merged), live, atol=atol, rtol=0)
    torch.testing.assert_close(logits(adapted), live, atol=atol, rtol=0)  # the live computation: measured 0


def test_no_adapter_is_written_when_the_tags_were_added_in_this_run(multi_token_model_dir, tmp_path):
    policy = Policy(str(multi_token_model_dir), lora=LoraSettings(r=2), add_action_tokens=True)
    assert policy.new_token_pieces  # the base on disk lacks the tags' rows: no adapter would load on it
    with pytest.warns(UserWarning, match="no adapter written .* added 6 tag tokens in this run"):
        out = policy.save_pretrained(tmp_path / "export")
    assert not (out / ADAPTER_DIR).exists() and (out / "model.safetensors").exists()


def test_the_chat_template_setting_is_saved_with_the_export(model_dir, tmp_path):
    from transformers import AutoTokenizer

    template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    out = Policy(str(model_dir), chat_template=template).save_pretrained(tmp_path / "saved")
    assert AutoTokenizer.from_pretrained(out).chat_template == template
    assert Policy(str(out)).tokenizer.apply_chat_template([{"role": "user", "content": "q"}], tokenize=False) == "<user>q"


def test_bfloat16_weights_give_float32_logprobs(model_dir):
    policy = Policy(str(model_dir), dtype="bfloat16")
    assert next(policy.parameters()).dtype == torch.bfloat16
    ids, attn = batch(policy)
    assert policy.sequence_logprobs(ids, attn, attn).token.dtype == torch.float32


def trainable_names(policy: Policy) -> list[str]:
    return [n for n, p in policy.named_parameters() if p.requires_grad]


def test_missing_directory_names_path_and_fix(tmp_path):
    missing = tmp_path / "no_model"
    with pytest.raises(ValueError, match="coa quickstart") as err:
        Policy(str(missing))
    assert str(missing) in str(err.value)


def test_incomplete_directory_lists_missing_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="model.safetensors") as err:
        Policy(str(tmp_path))
    assert "tokenizer.json" in str(err.value) and "config.json is" not in str(err.value)


def test_hub_id_offline_fails_at_once_with_the_download_command():
    start = time.perf_counter()
    with pytest.raises(ValueError) as err:  # conftest sets HF_HUB_OFFLINE=1, huggingface_hub's offline mode
        Policy("no-such-org/no-such-model")
    assert time.perf_counter() - start < 1  # no retries
    assert str(err.value) == (
        "policy.model_name_or_path='no-such-org/no-such-model' is no local directory and the Hugging Face hub cannot "
        "be reached (offline); download it on a machine with a network "
        "(hf download no-such-org/no-such-model --local-dir DIR) and pass DIR"
    )


def test_hub_id_offline_loads_from_the_hub_cache(model_dir, tmp_path, monkeypatch):
    from huggingface_hub import constants

    repo = tmp_path / "models--some-org--tiny"  # the hub cache's layout: refs/main names the snapshot
    shutil.copytree(model_dir, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    cached = Policy("some-org/tiny")
    assert cached.local_files_only
    ids, attn = batch(cached)
    torch.testing.assert_close(cached(ids, attn), Policy(str(model_dir))(ids, attn))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": "fp32"}, "policy.dtype='fp32'"),
        ({"load_in_bits": 3, "lora": LoraSettings()}, "must be 4, 8 or null"),
        ({"load_in_bits": 4}, "needs policy.lora"),
    ],
)
def test_bad_settings_name_the_field(model_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Policy(str(model_dir), **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_quantised_loading_without_cuda_says_what_to_install(model_dir):
    with pytest.raises(RuntimeError, match=r"coa\[qlora\]") as err:
        Policy(str(model_dir), lora=LoraSettings(), load_in_bits=4)
    assert "CUDA" in str(err.value)


@pytest.mark.parametrize("lora", [None, LoraSettings(r=4)], ids=["full", "lora"])
def test_target_logprobs_equal_the_full_path_at_the_targets(model_dir, lora):
    policy = Policy(str(model_dir), lora=lora)
    ids, attn = batch(policy)
    sgd_step(policy, ids, attn)  # a LoRA adapter starts as a no-op: move it, so the test sees it
    target = torch.zeros(ids.shape[0], ids.shape[1] - 1, dtype=torch.long)
    target[:, ::2] = 1
    target = target * attn[:, 1:]
    full = policy.token_logprobs(ids, attn)[target.bool()]
    assert torch.allclose(policy.target_logprobs(ids, attn, target), full, atol=1e-5)


def test_target_logprobs_at_a_temperature_are_those_of_the_tempered_logits(small_model_dir):
    policy = Policy(str(small_model_dir))
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    attention = torch.ones_like(ids)
    target = torch.tensor([[0, 1, 0, 1]])
    logits = policy(ids, attention)[:, :-1][target.bool()]  # positions predicting tokens 7 and 9
    expected = torch.log_softmax(logits / 0.5, -1).gather(-1, torch.tensor([[7], [9]]))[:, 0]
    assert torch.allclose(policy.target_logprobs(ids, attention, target, temperature=0.5), expected, atol=1e-5)
    assert not torch.allclose(policy.target_logprobs(ids, attention, target), expected, atol=1e-3)
