"""VLLMEngine: guard errors, token-exact stop cuts and weight naming on CPU; generation and weight sync on a GPU."""

import importlib.util
import os
import sys
import types

import pytest
import torch

from coa.rollout.engines.base import Generation, SamplingSettings
from coa.rollout.engines.vllm import INSTALL_HINT, VLLMEngine, VLLMSettings, _launcher_env, _sampling_params, to_generation
from coa.models.tiny import TinyModelConfig, build_tiny_model
from coa.models.tokenizer import train_tokenizer
from coa.policy import LoraSettings, Policy

STOP = "</end_search>"
TEXTS = [
    "Ada Vell was born in Orlin. <begin_search> Ada Vell </end_search>.",
    "Orlin is a city in Mereth </end_search>.\n",
    "search for </end_search>. then answer",
] * 3
SEARCH = "Look up <begin_search> Ada Vell </end_search>. Then"


@pytest.fixture(scope="module")
def tokenizer():
    tok = train_tokenizer(TEXTS, vocab_size=300, tags_as_tokens=False)  # as in real tokenizers
    assert len(tok.encode(STOP, add_special_tokens=False)) > 1  # the premise: a stop string of several tokens
    return tok


@pytest.fixture(scope="module")
def model_dir(tokenizer, tmp_path_factory):
    # head_dim 64 and 2 layers: kernels vLLM has for every dtype, and still a model of a few MB.
    config = TinyModelConfig(
        hidden_size=128, num_layers=2, num_heads=2, intermediate_size=256, max_position_embeddings=512
    )
    return build_tiny_model(tokenizer, config, tmp_path_factory.mktemp("vllm_tiny"))


def encode(tok, text):
    return tok.encode(text, add_special_tokens=False)


# --- guards -------------------------------------------------------------------------------------------------


def test_without_vllm_the_error_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    with pytest.raises(RuntimeError, match=r"pip install 'coa\[vllm\]' on a machine with a CUDA GPU") as err:
        VLLMEngine(str(tmp_path))
    assert str(err.value) == INSTALL_HINT


def test_with_vllm_but_no_cuda_the_error_says_so(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"needs a CUDA GPU and none is visible"):
        VLLMEngine(str(tmp_path))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("gpu_memory_utilization", 0.0, "gpu_memory_utilization=0.0 must be in"),
        ("gpu_memory_utilization", 1.5, "gpu_memory_utilization=1.5 must be in"),
        ("tensor_parallel_size", 0, "tensor_parallel_size=0 must be at least 1"),
        ("dtype", "fp8", "dtype='fp8' is not one of"),
        ("max_model_len", 0, "max_model_len=0 must be positive"),
        ("sleep_level", 3, "sleep_level=3 must be 1"),
    ],
)
def test_settings_name_the_bad_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        VLLMSettings(**{field: value})


def test_an_unknown_setting_is_named_before_vllm_is_looked_for(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) gpu_memory, tp; the settings are gpu_memory_util"):
        VLLMEngine(str(tmp_path), gpu_memory=0.3, tp=2)
    with pytest.raises(ValueError, match="gpu_memory_utilization=2 must be in"):
        VLLMEngine(str(tmp_path), gpu_memory_utilization=2)


def test_from_policy_runs_in_the_policys_dtype_unless_told(monkeypatch, model_dir):
    seen = []
    monkeypatch.setattr(VLLMEngine, "__init__", lambda self, *args, **kwargs: seen.append((args, kwargs)))
    policy = Policy(str(model_dir), dtype="bfloat16")
    VLLMEngine.from_policy(policy, gpu_memory_utilization=0.4)
    VLLMEngine.from_policy(policy, dtype="float16")
    assert seen[0] == ((str(model_dir), policy.tokenizer, False), {"gpu_memory_utilization": 0.4, "dtype": "bfloat16"})
    assert seen[1][1] == {"dtype": "float16"}


def test_from_policy_refuses_tags_added_in_this_run_since_vllm_loads_the_directory(multi_token_model_dir):
    policy = Policy(str(multi_token_model_dir), add_action_tokens=True)
    assert policy.new_token_pieces
    with pytest.raises(ValueError, match="add_action_tokens added .* tag tokens in this run"):
        VLLMEngine.from_policy(policy)


def test_launcher_env_describes_a_world_of_one_and_is_restored(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.9")
    with _launcher_env():
        assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == ("0", "1", "0")
        assert os.environ["MASTER_ADDR"] == "127.0.0.9" and int(os.environ["MASTER_PORT"]) > 0
    assert "RANK" not in os.environ and "MASTER_PORT" not in os.environ
    assert os.environ["MASTER_ADDR"] == "127.0.0.9"


# --- vLLM output -> Generation ------------------------------------------------------------------------------


def test_a_stop_string_cuts_the_ids_inside_the_token_that_runs_past_it(tokenizer):
    ids = encode(tokenizer, SEARCH)
    dot = encode(tokenizer, ">.")
    assert len(dot) == 1 and dot[0] in ids  # "...search" then ">." : one token straddles the end of the stop string
    end = ids.index(dot[0])
    # vLLM hands back its ids uncut: through the straddling token and, here, two more after it.
    g = to_generation(tokenizer, ids[: end + 3], "stop", STOP, SamplingSettings(stop_strings=(STOP,)))
    assert g.text == "Look up <begin_search> Ada Vell </end_search>"
    assert g.token_ids == ids[:end] + encode(tokenizer, ">")  # tokens before kept as generated, ">." re-encoded
    assert g.unsampled == 1  # ">" was never sampled: it gets no policy-gradient loss
    assert tokenizer.decode(g.token_ids) == g.text
    assert (g.finish_reason, g.stop) == ("stop", STOP)


def test_a_stop_string_ending_on_a_token_boundary_keeps_the_ids(tokenizer):
    ids = encode(tokenizer, "Ada Vell </end_search>")
    g = to_generation(tokenizer, ids, "stop", STOP, SamplingSettings(stop_strings=("</a>", STOP)))
    assert (g.token_ids, g.text, g.finish_reason, g.stop, g.unsampled) == (ids, "Ada Vell </end_search>", "stop", STOP, 0)


def test_the_earliest_of_several_stop_strings_wins(tokenizer):
    ids = encode(tokenizer, "Ada Vell </end_search>. then")
    g = to_generation(tokenizer, ids, "stop", ". then", SamplingSettings(stop_strings=(". then", "Vell")))
    assert (g.text, g.stop) == ("Ada Vell", "Vell")


def test_a_stop_token_is_kept_as_the_last_id_and_left_out_of_the_text(tokenizer):
    eos = tokenizer.eos_token_id
    ids = encode(tokenizer, "Ada Vell") + [eos]
    g = to_generation(tokenizer, ids, "stop", eos, SamplingSettings(stop_token_ids=(eos,)))
    assert g == Generation(ids, "Ada Vell", "eos", eos)


def test_length_keeps_everything(tokenizer):
    ids = encode(tokenizer, "Ada Vell was")
    g = to_generation(tokenizer, ids, "length", None, SamplingSettings(stop_strings=(STOP,)))
    assert g == Generation(ids, "Ada Vell was", "length", None)


def test_the_vllm_mapping_agrees_with_the_hf_engine(tokenizer):
    finish = pytest.importorskip("coa.rollout.engines.hf").finish
    eos = tokenizer.eos_token_id
    settings = SamplingSettings(stop_strings=(STOP,), stop_token_ids=(eos,))
    ids = encode(tokenizer, SEARCH)
    cut = ids.index(encode(tokenizer, ">.")[0]) + 1
    cases = [
        (ids[:cut], "stop", STOP),  # vLLM stops on the token that completes the stop string
        (encode(tokenizer, "Ada Vell") + [eos], "stop", eos),
        (encode(tokenizer, "Ada Vell was"), "length", None),
    ]
    for token_ids, reason, stop in cases:
        assert to_generation(tokenizer, token_ids, reason, stop, settings) == finish(tokenizer, token_ids, settings)


def test_an_aborted_request_or_a_missing_stop_string_raises(tokenizer):
    with pytest.raises(RuntimeError, match="finish_reason='abort'"):
        to_generation(tokenizer, [5], "abort", None, SamplingSettings())
    with pytest.raises(ValueError, match="do not hold it"):
        to_generation(tokenizer, encode(tokenizer, "Ada"), "stop", STOP, SamplingSettings(stop_strings=(STOP,)))


def test_sampling_params_carry_coas_stops_and_the_request_seed():
    settings = SamplingSettings(
        max_new_tokens=7, temperature=0.0, top_p=0.5, stop_strings=(STOP,), stop_token_ids=(1, 2)
    )
    kwargs = _sampling_params(dict, settings, seed=11)
    assert kwargs == dict(
        n=1, max_tokens=7, temperature=0.0, top_p=1.0, seed=11, stop=[STOP], include_stop_str_in_output=True,
        stop_token_ids=[1, 2], ignore_eos=True, detokenize=True, skip_special_tokens=False,
        spaces_between_special_tokens=False,
    )
    assert _sampling_params(dict, SamplingSettings(temperature=0.7, top_p=0.5), seed=0)["top_p"] == 0.5


# --- weights (names, merging, QLoRA: tests/rollout/engines/test_weights.py) -----------------------------------


def _lora_policy(model_dir):
    policy = Policy(str(model_dir), lora=LoraSettings(r=2, alpha=4))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:  # B starts at zero; make the adapter do something
                p.copy_(torch.randn(p.shape, generator=g))
    return policy


# --- on a GPU with vLLM -------------------------------------------------------------------------------------

needs_vllm = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None or not torch.cuda.is_available(), reason="needs vLLM and a CUDA GPU"
)


@pytest.fixture(scope="module")
def engine(model_dir, tokenizer):
    # One engine for the module: vLLM keeps process-wide state (its process group), so it is built once.
    return VLLMEngine(
        str(model_dir), tokenizer,
        gpu_memory_utilization=0.2, dtype="float32", max_model_len=256, enable_sleep_mode=True, enforce_eager=True,
    )


def _cuda_policy(model_dir, lora=None):
    return Policy(str(model_dir), lora=lora).to("cuda")


def _prompts(tok):
    return [encode(tok, t) for t in ("Ada Vell was born in", "Orlin is a city", "search for")]


@torch.no_grad()
def _hf_greedy(policy, prompts, settings):
    """The reference: HF `generate`, greedy, one prompt at a time (no padding), stopping on the stop tokens."""
    policy.eval()
    out = []
    for p in prompts:
        ids = torch.tensor([p], device="cuda")
        new = policy.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=settings.max_new_tokens,
            do_sample=False, eos_token_id=list(settings.stop_token_ids), pad_token_id=policy.tokenizer.pad_token_id,
        )
        out.append(new[0, len(p):].tolist())
    return out


@pytest.mark.gpu
@needs_vllm
def test_greedy_vllm_equals_greedy_hf(engine, model_dir, tokenizer):
    policy = _cuda_policy(model_dir)
    engine.sync_weights(policy)
    settings = SamplingSettings(max_new_tokens=16, stop_token_ids=(tokenizer.eos_token_id,))
    got = engine.generate(_prompts(tokenizer), settings)
    assert [g.token_ids for g in got] == _hf_greedy(policy, _prompts(tokenizer), settings)
    assert all(tokenizer.decode(g.token_ids[:-1] if g.finish_reason == "eos" else g.token_ids) == g.text for g in got)


@pytest.mark.gpu
@needs_vllm
def test_a_stop_string_ending_inside_a_token_is_cut_exactly(engine, model_dir, tokenizer):
    engine.sync_weights(_cuda_policy(model_dir))
    prompt = _prompts(tokenizer)[0]
    free = engine.generate([prompt], SamplingSettings(max_new_tokens=24))[0]
    # A stop string that ends one character into a multi-character token k of the free continuation.
    spans = [tokenizer.decode(free.token_ids[:i]) for i in range(len(free.token_ids) + 1)]
    k = next(
        i for i in range(1, len(free.token_ids))
        if free.text.startswith(spans[i + 1]) and len(spans[i + 1]) - len(spans[i]) >= 2 and len(spans[i]) >= 3
    )
    stop = free.text[len(spans[k]) - 3 : len(spans[k]) + 1]
    end = free.text.index(stop) + len(stop)
    g = engine.generate([prompt], SamplingSettings(max_new_tokens=24, stop_strings=(stop,)))[0]
    assert (g.finish_reason, g.stop, g.text) == ("stop", stop, free.text[:end])
    assert tokenizer.decode(g.token_ids) == g.text
    n_before = max(i for i, s in enumerate(spans) if len(s) <= end and free.text.startswith(s))
    assert g.token_ids[:n_before] == free.token_ids[:n_before]


@pytest.mark.gpu
@needs_vllm
def test_synced_full_weights_change_what_vllm_generates(engine, model_dir, tokenizer):
    policy = _cuda_policy(model_dir)
    settings = SamplingSettings(max_new_tokens=16, stop_token_ids=(tokenizer.eos_token_id,))
    engine.sync_weights(policy)
    before = [g.token_ids for g in engine.generate(_prompts(tokenizer), settings)]
    g = torch.Generator(device="cuda").manual_seed(1)
    with torch.no_grad():
        for p in policy.parameters():  # an "optimizer step" big enough to change the greedy path
            p.add_(0.5 * p.abs().mean() * torch.randn(p.shape, generator=g, device="cuda"))
    engine.sync_weights(policy)
    after = [g.token_ids for g in engine.generate(_prompts(tokenizer), settings)]
    assert after == _hf_greedy(policy, _prompts(tokenizer), settings)
    assert after != before


@pytest.mark.gpu
@needs_vllm
def test_synced_lora_weights_reach_vllm_through_sleep_and_wake(engine, model_dir, tokenizer):
    policy = _lora_policy(model_dir).to("cuda")
    settings = SamplingSettings(max_new_tokens=16, stop_token_ids=(tokenizer.eos_token_id,))
    engine.sleep()  # the trainer's turn: vLLM's weights and KV cache leave the GPU
    engine.sync_weights(policy)  # wakes the weights to load into them
    got = [g.token_ids for g in engine.generate(_prompts(tokenizer), settings)]  # wakes the KV cache
    assert got == _hf_greedy(policy, _prompts(tokenizer), settings)  # HF runs the adapter unmerged


@pytest.mark.gpu
@needs_vllm
def test_sampling_follows_the_callers_generator(engine, model_dir, tokenizer):
    engine.sync_weights(_cuda_policy(model_dir))
    prompt = _prompts(tokenizer)[0]
    settings = SamplingSettings(max_new_tokens=16, temperature=1.0)

    def sample(seed):
        return [g.token_ids for g in engine.generate([prompt] * 4, settings, torch.Generator().manual_seed(seed))]

    first = sample(3)
    assert sample(3) == first  # same generator state, same samples
    assert len({tuple(t) for t in first}) > 1  # a repeated prompt samples apart
    assert sample(4) != first
