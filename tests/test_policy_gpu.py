"""Policy on a CUDA GPU (marked `gpu`, left out of CI): QLoRA loading (4- and 8-bit bitsandbytes), a training step
and its export; vLLM loads the merged export and decodes greedily as transformers does. Each test skips naming
what is missing (CUDA, bitsandbytes, vLLM). `python bench/gpu_check.py` runs them with the GPU bench."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from coa.models.tiny import TinyModelConfig, build_tiny_model
from coa.models.tokenizer import train_tokenizer
from coa.policy import ADAPTER_DIR, LoraSettings, Policy, gather_logprobs, masked_sequence_logprobs

pytestmark = pytest.mark.gpu

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
needs_bitsandbytes = pytest.mark.skipif(
    importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes (pip install 'coa[qlora]')"
)
needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vLLM (pip install 'coa[vllm]')")

TEXTS = [
    "Ada Vell was born in Orlin. <begin_search> Ada Vell </end_search> She wrote The Glass Harbor.",
    "Orlin is a city in Mereth, on the river Sael. Mereth is a country whose capital is Calder.",
    "Calder Works is a company founded in Calder by Bob Lindqvist.",
] * 3
PROMPTS = ["Ada Vell was born in", "Orlin is a city", "Calder Works is"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # head_dim 64: kernels that bitsandbytes and vLLM have for every dtype; still a model of a few MB
    config = TinyModelConfig(
        hidden_size=128, num_layers=2, num_heads=2, intermediate_size=256, max_position_embeddings=512
    )
    return build_tiny_model(train_tokenizer(TEXTS, vocab_size=300), config, tmp_path_factory.mktemp("gpu_tiny"))


def texts_batch(policy: Policy, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    enc = policy.tokenizer(TEXTS[:3], padding=True, return_tensors="pt")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def train_steps(policy: Policy, ids: torch.Tensor, attn: torch.Tensor, steps: int, lr: float = 1e-2) -> None:
    """AdamW on the trainable weights, maximising the mean log-prob of the batch (SFT on it)."""
    policy.train()
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        (-policy.sequence_logprobs(ids, attn, attn).mean.mean()).backward()
        optimizer.step()
        optimizer.zero_grad()
    policy.eval()


@torch.no_grad()
def policy_logprob(policy: Policy, ids: torch.Tensor, attn: torch.Tensor) -> float:
    return float(policy.sequence_logprobs(ids, attn, attn).mean.mean())


@torch.no_grad()
def mean_logprob(model: torch.nn.Module, ids: torch.Tensor, attn: torch.Tensor) -> float:
    """Mean over the batch of the length-normalised log-prob of each row, under a plain HF (or peft) model."""
    logits = model(input_ids=ids, attention_mask=attn, position_ids=(attn.cumsum(-1) - 1).clamp(min=0)).logits
    return float(masked_sequence_logprobs(gather_logprobs(logits, ids), attn[:, 1:]).mean.mean())


@needs_cuda
@needs_bitsandbytes
@pytest.mark.parametrize("bits", [4, 8])
def test_qlora_loads_quantised_trains_and_exports_what_it_learnt(model_dir, tmp_path, bits):
    import bitsandbytes as bnb
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    policy = Policy(str(model_dir), dtype="bfloat16", lora=LoraSettings(r=8, target_modules=("all-linear",)),
                    load_in_bits=bits)
    base_layer = policy.model.get_base_model().model.layers[0].self_attn.q_proj.base_layer
    assert isinstance(base_layer, bnb.nn.Linear4bit if bits == 4 else bnb.nn.Linear8bitLt)
    assert base_layer.weight.device.type == "cuda"
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)  # the quantised base stays frozen
    ids, attn = texts_batch(policy, "cuda")
    before = policy_logprob(policy, ids, attn)
    train_steps(policy, ids, attn, steps=1)
    assert policy_logprob(policy, ids, attn) > before + 1e-3  # one step on the quantised base moved the adapters
    train_steps(policy, ids, attn, steps=4)
    live_gain = policy_logprob(policy, ids, attn) - before

    out = policy.save_pretrained(tmp_path / "export")  # the base reloaded unquantised, the adapter merged in
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16).to("cuda").eval()
    assert getattr(merged.config, "quantization_config", None) is None
    assert not any(isinstance(m, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)) for m in merged.modules())
    untrained = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).to("cuda").eval()
    base_lp = mean_logprob(untrained, ids, attn)
    # The export drops the quantisation error, so its numbers differ from the live QLoRA policy's by it;
    # what it learnt must be there: at least half the live gain in mean log-prob of the training rows.
    assert mean_logprob(merged, ids, attn) - base_lp > 0.5 * live_gain > 0
    adapted = PeftModel.from_pretrained(untrained, out / ADAPTER_DIR).eval()  # the adapter alone, unquantised base
    # bfloat16 merged weights vs the adapter run unmerged (float32): a few bfloat16 roundings apart
    torch.testing.assert_close(mean_logprob(adapted, ids, attn), mean_logprob(merged, ids, attn), atol=2e-2, rtol=0)


VLLM_GREEDY = """
import json, sys
from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt

model_dir, prompts, max_tokens = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
llm = LLM(model=model_dir, dtype="float32", gpu_memory_utilization=0.2, max_model_len=256, enforce_eager=True, seed=0)
outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts],
                       SamplingParams(temperature=0.0, max_tokens=max_tokens), use_tqdm=False)
print("GREEDY " + json.dumps([list(o.outputs[0].token_ids) for o in outputs]))
"""


def vllm_greedy(model_dir: Path, prompts: list[list[int]], max_tokens: int) -> list[list[int]]:
    """Greedy continuations from a plain `vllm.LLM` on `model_dir`, in a process of its own: vLLM keeps
    process-wide state (its process group), which the engine tests of this pytest process may hold already."""
    proc = subprocess.run(
        [sys.executable, "-c", VLLM_GREEDY, str(model_dir), json.dumps(prompts), str(max_tokens)],
        capture_output=True, text=True, timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("GREEDY ")]
    assert proc.returncode == 0 and lines, f"vLLM failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("GREEDY "))


@torch.no_grad()
def hf_greedy(model: torch.nn.Module, prompts: list[list[int]], max_tokens: int, eos: int, pad: int) -> list[list[int]]:
    """Greedy continuations from transformers' `generate`, one prompt at a time (no padding), stopping at EOS."""
    out = []
    for p in prompts:
        ids = torch.tensor([p], device=model.device)
        new = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                             do_sample=False, eos_token_id=eos, pad_token_id=pad)
        out.append(new[0, len(p):].tolist())
    return out


@needs_cuda
@needs_vllm
def test_vllm_loads_the_merged_lora_export_and_decodes_greedily_as_transformers(model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    policy = Policy(str(model_dir), lora=LoraSettings(r=8, target_modules=("all-linear",)))  # float32, on CPU
    ids, attn = texts_batch(policy, "cpu")
    train_steps(policy, ids, attn, steps=40)  # the adapter learns the texts: greedy decoding continues them
    out = policy.save_pretrained(tmp_path / "export")
    prompts = [policy.tokenizer.encode(p, add_special_tokens=False) for p in PROMPTS]
    eos, pad = policy.tokenizer.eos_token_id, policy.tokenizer.pad_token_id
    n = 16

    got = vllm_greedy(out, prompts, n)  # first: this test's own CUDA tensors do not compete with vLLM's start
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).to("cuda").eval()
    expected = hf_greedy(merged, prompts, n, eos, pad)
    assert got == expected
    untrained = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to("cuda").eval()
    assert hf_greedy(untrained, prompts, n, eos, pad) != expected  # vLLM ran the adapter, not the base alone
