"""One prepared check for a lent GPU machine: the `gpu` tests, the weight sync into vLLM, a bench of a ~0.5B model.

    python bench/gpu_check.py                        # H100: pytest -m gpu, the sync check, the bench (<= 10 min)
    python bench/gpu_check.py --smoke                # CPU, tiny model, a few tokens: the same code path, < 1 min
    python bench/gpu_check.py --skip-tests --sections gen-hf sft --out table.md

The model has Qwen2-0.5B's shape (hidden 896, 24 layers, 14 query / 2 KV heads, MLP 4864, a 151,936-token
vocabulary, tied embeddings: 494 M parameters) with random weights built here, since nothing can be
downloaded; its tokenizer is a 4,096-token BPE trained here on the embedded world's passages, padded with
unused tokens to the model's vocabulary (`pad_vocabulary`; the random model samples those nearly always, so
the text means nothing: every rate counts token ids). Weights bfloat16, LoRA r=16, alpha=32 on q, k, v, o
(the adapters train in float32, as peft keeps them).

Sections, each in a process of its own (so its peak memory is its own, and a crash or a missing vLLM
costs one row): first the weight sync (`sync-vllm`: after `sync_weights`, vLLM's log-probs of a fixed
completion must equal the policy's, for full fine-tuning and for LoRA, and differ from the weights it had
before; then sleep must free vLLM's memory and waking must give the same log-probs), then generation through coa's engines (HFEngine runs the LoRA policy unmerged; VLLMEngine
takes the merged weights by `sync_weights`, as in training), an SFT step (the loss tokens' log-probs,
backward, AdamW), and a GRPO step (Lightning + RolloutCallback + GRPOModule, one step = rollouts +
update) with each engine. Peak memory is torch's peak allocated on the GPU (vLLM's included: it runs in
the process, and takes `gpu_memory_utilization` of the card for weights and KV cache by design), or the
process's peak RSS on CPU (--smoke).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from coa.rewards.base import Reward

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("sync-vllm", "gen-hf", "sft", "grpo-hf", "gen-vllm", "grpo-vllm")  # the sync check first: it matters most
SYNC_MEAN_TOL = 0.05  # mean |log p vLLM - log p policy| over the completion's tokens (bf16 kernels differ this much)
VLLM_MISSING = "skipped: vLLM is not installed (pip install 'coa[vllm]' on a CUDA machine)"


@dataclass(frozen=True)
class Shape:
    """What is built and how much is run; `FULL` on a GPU, `SMOKE` on CPU."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    mlp: int
    vocab: int  # the model's (Qwen2 pads its vocabulary past the tokenizer's, as here)
    tokenizer_vocab: int
    dtype: str
    gen_prompts: int  # generation: prompts x prompt tokens + new tokens
    gen_prompt_tokens: int
    gen_new_tokens: int
    sft_rows: int  # SFT: rows x tokens, loss on the last sft_loss_tokens of each
    sft_tokens: int
    sft_loss_tokens: int
    grpo_prompts: int  # GRPO: prompts x group, new tokens per episode
    grpo_group: int
    grpo_new_tokens: int
    warmup_steps: int  # steps run before the measured ones (CUDA kernels, allocator, vLLM graphs)
    measured_steps: int
    budget_s: int  # the whole run, tests included: sections left when it is spent are reported as not run


FULL = Shape(896, 24, 14, 2, 4864, 151_936, 4096, "bfloat16", 64, 128, 256, 8, 1024, 512, 4, 8, 256, 2, 5, 540)
SMOKE = Shape(64, 2, 4, 2, 128, 4096, 512, "float32", 4, 16, 8, 2, 64, 32, 2, 2, 8, 1, 2, 120)


# ---------------------------------------------------------------- assets


def build_model(out: Path, shape: Shape) -> int:
    """Saves a random Qwen2 of `shape` with a BPE tokenizer trained on the embedded world to `out` (and GRPO's
    questions beside it); returns its number of parameters."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from coa.models.tokenizer import train_tokenizer
    from coa.prompts import INSTRUCTIONS
    from coa.world.config import WorldConfig
    from coa.world.encyclopedia import generate_world

    world = generate_world(WorldConfig(seed=0), random.Random(0))
    tokenizer = train_tokenizer([e.passage(world) for e in world.entities.values()] + list(INSTRUCTIONS.values()),
                                vocab_size=shape.tokenizer_vocab)
    config = AutoConfig.for_model(
        "qwen2", vocab_size=shape.vocab, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads, intermediate_size=shape.mlp,
        max_position_embeddings=4096, tie_word_embeddings=True, rms_norm_eps=1e-6,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # initialising 494 M weights is quicker there
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, shape.dtype))
    model.save_pretrained(out)
    params = model.num_parameters()
    del model
    if device == "cuda":
        torch.cuda.empty_cache()  # the sections run in processes of their own: leave them the card
    tokenizer.save_pretrained(out)
    pad_vocabulary(out / "tokenizer.json", shape.vocab)
    qa = out.parent / "qa.jsonl"  # GRPO's prompts: one question, asked again and again
    question = "Which city was the author of The Glass Harbor born in?"
    qa.write_text("".join(json.dumps({"id": f"q{i}", "question": question, "golden_answers": ["Orlin"]}) + "\n"
                          for i in range(64)))
    return params


def pad_vocabulary(path: Path, size: int) -> None:
    """Gives every id of the model's vocabulary a token (`<|unused_N|>`, never produced by encoding).

    A random model samples the ids past the trained tokenizer nearly always, and coa's HFEngine stop-string
    watch indexes a table as long as the tokenizer with them (an IndexError); Qwen2's own tokenizer is 271
    ids short of its vocabulary too, but a trained model next to never samples those.
    """
    data = json.loads(path.read_text())
    vocab = data["model"]["vocab"]
    for added in data["added_tokens"]:  # in the model's vocabulary too, so their ids stay as they are
        vocab.setdefault(added["content"], added["id"])
    for i in range(len(vocab), size):
        vocab[f"<|unused_{i}|>"] = i
    path.write_text(json.dumps(data, ensure_ascii=False))


# ---------------------------------------------------------------- sections (each in its own process)


def load_policy(model_dir: Path, shape: Shape):
    from coa.policy import LoraSettings, Policy

    return Policy(str(model_dir), dtype=shape.dtype, lora=LoraSettings(r=16, alpha=32))


def device_of() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_generation(engine_name: str, model_dir: Path, shape: Shape, args: argparse.Namespace) -> dict:
    import torch

    from coa.rollout.engines.base import SamplingSettings

    policy = load_policy(model_dir, shape).to(device_of()).eval()
    if engine_name == "hf":
        from coa.rollout.engines.hf import HFEngine

        engine = HFEngine(policy.model, policy.tokenizer, batch_size=shape.gen_prompts)
    else:
        from coa.rollout.engines.vllm import VLLMEngine

        engine = VLLMEngine.from_policy(policy, **vllm_settings(shape, args))
        engine.sync_weights(policy)  # the LoRA adapter merged into vLLM's weights, as every GRPO step does
    rng = random.Random(0)
    low = len(policy.tokenizer.all_special_ids)
    prompts = [[rng.randrange(low, len(policy.tokenizer)) for _ in range(shape.gen_prompt_tokens)]
               for _ in range(shape.gen_prompts)]
    settings = SamplingSettings(max_new_tokens=shape.gen_new_tokens, temperature=1.0)  # no stop: every token
    engine.generate(prompts, SamplingSettings(max_new_tokens=4, temperature=1.0), torch.Generator().manual_seed(1))
    synchronize()
    start = time.perf_counter()
    generations = engine.generate(prompts, settings, torch.Generator().manual_seed(0))
    synchronize()
    seconds = time.perf_counter() - start
    tokens = sum(len(g.token_ids) for g in generations)
    return {"value": f"{tokens / seconds:,.0f} tokens/s",
            "detail": f"{shape.gen_prompts} prompts x {shape.gen_prompt_tokens} tokens + {shape.gen_new_tokens} "
                      f"sampled (T=1): {tokens} tokens in {seconds:.2f} s"}


def run_sft(model_dir: Path, shape: Shape, args: argparse.Namespace) -> dict:
    import torch

    policy = load_policy(model_dir, shape).to(device_of())
    policy.train()
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    g = torch.Generator().manual_seed(0)
    low = len(policy.tokenizer.all_special_ids)
    ids = torch.randint(low, len(policy.tokenizer), (shape.sft_rows, shape.sft_tokens), generator=g).to(device_of())
    attention = torch.ones_like(ids)
    targets = torch.zeros(shape.sft_rows, shape.sft_tokens - 1, dtype=torch.long, device=ids.device)
    targets[:, -shape.sft_loss_tokens:] = 1  # SFTModule's loss: the loss tokens' log-probs alone
    times = []
    for _ in range(shape.warmup_steps + shape.measured_steps):
        synchronize()
        start = time.perf_counter()
        loss = -policy.target_logprobs(ids, attention, targets).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        synchronize()
        times.append(time.perf_counter() - start)
    step_s = sorted(times[shape.warmup_steps:])[len(times[shape.warmup_steps:]) // 2]
    return {"value": f"{shape.sft_rows * shape.sft_tokens / step_s:,.0f} tokens/s",
            "detail": f"[{shape.sft_rows}, {shape.sft_tokens}] per step, loss on the last {shape.sft_loss_tokens} of "
                      f"each row, AdamW: {step_s:.3f} s/step (median of {shape.measured_steps})"}


def run_grpo(engine_name: str, model_dir: Path, shape: Shape, args: argparse.Namespace) -> dict:
    import lightning as L

    from coa.callbacks.rollout import RolloutCallback
    from coa.callbacks.weight_sync import WeightSync
    from coa.datamodules.prompts import PromptDataModule
    from coa.modules.grpo import GRPOModule
    from coa.rollout.environments import RealEnvironment
    from coa.rollout.runner import UnavailableTool

    starts: list[float] = []
    rollout_s: list[float] = []

    class StepStart(L.Callback):  # before the RolloutCallback
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            synchronize()
            starts.append(time.perf_counter())

    class RolloutEnd(L.Callback):  # after it
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            synchronize()
            rollout_s.append(time.perf_counter() - starts[-1])

    policy = load_policy(model_dir, shape)
    module = GRPOModule(policy, lr=1e-5, warmup_steps=0)
    data = PromptDataModule(str(model_dir.parent / "qa.jsonl"), tokenizer_path=str(model_dir),
                            batch_size=shape.grpo_prompts, prompt="short")
    engine_args = vllm_settings(shape, args) if engine_name == "vllm" else {}
    rollout = RolloutCallback(
        RealEnvironment(UnavailableTool()), reward=f"{__name__}.LengthModReward", group_size=shape.grpo_group,
        max_actions=0, max_turn_tokens=shape.grpo_new_tokens, max_response_tokens=shape.grpo_new_tokens,
        truncation="reward", temperature=1.0, engine=engine_name, engine_args=engine_args, samples_every_n_steps=0,
    )
    trainer = L.Trainer(
        max_steps=shape.warmup_steps + shape.measured_steps + 1,  # one more start closes the last measured step
        accelerator="gpu" if device_of() == "cuda" else "cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=[StepStart(), rollout, RolloutEnd(), WeightSync()],
    )
    trainer.fit(module, datamodule=data)
    gaps = [b - a for a, b in zip(starts, starts[1:])][shape.warmup_steps:]
    step_s = sorted(gaps)[len(gaps) // 2]
    share = sum(rollout_s[shape.warmup_steps:len(starts) - 1]) / sum(gaps)
    episodes = shape.grpo_prompts * shape.grpo_group
    return {"value": f"{step_s:.2f} s/step",
            "detail": f"{shape.grpo_prompts} prompts x {shape.grpo_group} = {episodes} episodes x "
                      f"{shape.grpo_new_tokens} new tokens; rollouts {share:.0%} of the step "
                      f"(median of {len(gaps)} steps)"}


def run_sync_check(model_dir: Path, shape: Shape, args: argparse.Namespace) -> dict:
    """vLLM's log-probs of fixed completions after `sync_weights`, against the policy's: full fine-tuning, then LoRA.

    Each policy is moved away from the weights on disk (a random step for full fine-tuning; drawn B matrices for
    LoRA), so a sync that never reaches vLLM leaves its log-probs at the old weights: `before` shows how far
    those are, and the check needs `after` under SYNC_MEAN_TOL and under a fifth of `before`. Then the engine
    sleeps (the memory it frees is measured) and wakes: the log-probs must come back the same.
    """
    import torch

    from coa.policy import LoraSettings, Policy
    from coa.rollout.engines.vllm import VLLMEngine

    device = device_of()
    g = torch.Generator().manual_seed(0)
    low = 8
    sequences = torch.randint(low, shape.tokenizer_vocab, (4, 2 * shape.gen_prompt_tokens), generator=g)
    completion = shape.gen_prompt_tokens  # log-probs compared on the second half of each sequence
    engine = None
    lines, passed = [], True
    for name, lora in (("full", None), ("lora", LoraSettings(r=16, alpha=32))):
        policy = Policy(str(model_dir), dtype=shape.dtype, lora=lora).to(device).eval()
        engine = engine or VLLMEngine.from_policy(policy, **vllm_settings(shape, args))
        before = engine_logprobs(engine, sequences, completion)  # the weights vLLM holds now (disk, or the last sync)
        move_away(policy, g)
        expected = policy_logprobs(policy, sequences.to(device), completion)
        engine.sync_weights(policy)
        after = engine_logprobs(engine, sequences, completion)
        gap_before, gap_after = (before - expected).abs().mean().item(), (after - expected).abs().mean().item()
        ok = gap_after < SYNC_MEAN_TOL and gap_after < gap_before / 5
        passed &= ok
        lines.append(f"{name}: mean |vLLM - policy| {gap_after:.4f} after sync, {gap_before:.4f} before "
                     f"(max {(after - expected).abs().max().item():.3f}) {'ok' if ok else 'FAILED'}")
        del policy
    free_before = torch.cuda.mem_get_info()[0] if device == "cuda" else 0
    engine.sleep()
    freed = (torch.cuda.mem_get_info()[0] - free_before) / 2**30 if device == "cuda" else 0.0
    woken = engine_logprobs(engine, sequences, completion)
    same = (woken - after).abs().max().item() < 1e-3
    passed &= same and (freed > 0 or not engine.settings.enable_sleep_mode)
    lines.append(f"sleep freed {freed:.2f} GiB; log-probs after waking {'the same' if same else 'DIFFER'}")
    return {"value": "passed" if passed else "FAILED", "detail": "; ".join(lines)}


def move_away(policy, generator) -> None:
    """Moves the policy's outputs away from the weights on disk: a random step, or (LoRA) drawn B matrices."""
    import torch

    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if policy.lora is None:
                p.add_(p.abs().mean() * torch.randn(p.shape, generator=generator).to(p))
            elif "lora_B" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=generator).to(p))


def policy_logprobs(policy, sequences, completion: int):
    import torch

    targets = torch.zeros(sequences.shape[0], sequences.shape[1] - 1, dtype=torch.long, device=sequences.device)
    targets[:, completion - 1:] = 1
    with torch.no_grad():
        flat = policy.target_logprobs(sequences, torch.ones_like(sequences), targets)
    return flat.view(sequences.shape[0], -1).float().cpu()


def engine_logprobs(engine, sequences, completion: int):
    import torch

    rows = engine.token_logprobs(sequences.tolist())
    return torch.tensor([row[completion - 1:] for row in rows])


def vllm_settings(shape: Shape, args: argparse.Namespace) -> dict:
    return {"gpu_memory_utilization": args.vllm_memory, "max_model_len": 2048, "enforce_eager": args.vllm_eager}


def worker(args: argparse.Namespace) -> None:
    """One section in this process; writes {value, detail, peak_memory} as JSON to `args.result`."""
    shape = SMOKE if args.smoke else FULL
    model_dir = Path(args.model_dir)
    section = args.worker
    if section.endswith("vllm") and importlib.util.find_spec("vllm") is None:
        result = {"value": VLLM_MISSING}
    else:
        engine = section.split("-")[1] if "-" in section else ""
        if section == "sync-vllm":
            result = run_sync_check(model_dir, shape, args)
        elif section.startswith("gen"):
            result = run_generation(engine, model_dir, shape, args)
        elif section == "sft":
            result = run_sft(model_dir, shape, args)
        else:
            result = run_grpo(engine, model_dir, shape, args)
        result["peak_memory"] = peak_memory()
    Path(args.result).write_text(json.dumps(result))


def peak_memory() -> str:
    import resource

    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (GPU, torch peak allocated)"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (peak RSS)"


class LengthModReward(Reward):
    """A reward with no meaning that varies between completions: (characters mod 7) / 7."""

    name = "gpu_check_length_mod"

    def score(self, response: str, golds: list[str], prompt: str) -> float:
        return (len(response) % 7) / 7


# ---------------------------------------------------------------- driver


def run_tests(args: argparse.Namespace) -> str:
    """`pytest -m gpu` (collection errors of modules whose packages are missing do not stop the rest)."""
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", *args.tests]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.tests_timeout_s)
    except subprocess.TimeoutExpired:
        return f"timed out after {args.tests_timeout_s} s"
    output = proc.stdout + proc.stderr
    print(output[-6000:], flush=True)
    summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped|error|deselected)", line)]
    return summary[-1].strip("= ") if summary else f"exit {proc.returncode}, no summary line"


def run_section(section: str, model_dir: Path, args: argparse.Namespace, timeout_s: int) -> dict:
    result = model_dir.parent / f"{section}.json"
    cmd = [sys.executable, __file__, "--worker", section, "--model-dir", str(model_dir), "--result", str(result),
           "--vllm-memory", str(args.vllm_memory)] + (["--smoke"] if args.smoke else []) + (
           ["--vllm-eager"] if args.vllm_eager else [])
    env = {**os.environ, "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "TQDM_DISABLE": "1"}
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"value": f"failed: timed out after {timeout_s} s"}
    if proc.returncode or not result.is_file():
        sys.stderr.write(f"--- {section} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}\n")
        last = next((line for line in reversed(proc.stderr.splitlines()) if line.strip()), "no output")
        return {"value": f"failed: {last[:160]}"}
    out = json.loads(result.read_text())
    out["wall_s"] = time.perf_counter() - started
    return out


ROW_NAMES = {
    "sync-vllm": "weight sync into vLLM: log-probs equal the policy's (full, LoRA), sleep and wake",
    "gen-hf": "generation, coa HFEngine (LoRA unmerged)",
    "gen-vllm": "generation, coa VLLMEngine (LoRA merged by sync_weights)",
    "sft": "SFT step (LoRA)",
    "grpo-hf": "GRPO step, HF rollouts",
    "grpo-vllm": "GRPO step, vLLM rollouts",
}


def versions() -> str:
    """The device and the versions of what the numbers depend on ("-": not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    def of(name: str) -> str:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            return f"{name} -"

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    names = ("torch", "transformers", "peft", "lightning", "vllm", "bitsandbytes")
    return f"{device}; " + ", ".join(of(name) for name in names)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny model, a few tokens: checks the script")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--skip-tests", action="store_true", help="no pytest -m gpu")
    parser.add_argument("--tests", nargs="+", default=["tests"], help="what pytest -m gpu collects")
    parser.add_argument("--tests-timeout-s", type=int, default=300)
    parser.add_argument("--budget-s", type=int, default=None, help="the whole run (default: 540 on a GPU, 120 --smoke)")
    parser.add_argument("--vllm-memory", type=float, default=0.3, help="vLLM's gpu_memory_utilization")
    parser.add_argument("--vllm-eager", action="store_true", help="vLLM without CUDA graphs (quicker start)")
    parser.add_argument("--workdir", default=None, help="keep the model here (default: a temporary folder)")
    parser.add_argument("--out", default=None, help="also write the report (markdown) to this file")
    parser.add_argument("--worker", choices=SECTIONS, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no bars between the report's lines
    shape = SMOKE if args.smoke else FULL
    if not args.smoke and not torch.cuda.is_available():
        sys.exit("bench/gpu_check.py: no CUDA GPU is visible; run it on a GPU machine, or --smoke to check it on CPU")
    lines = [f"python bench/gpu_check.py {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip(), "",
             f"{versions()}", ""]
    print("\n".join(lines), flush=True)
    started = time.perf_counter()
    budget_s = args.budget_s or shape.budget_s
    args.tests_timeout_s = min(args.tests_timeout_s, budget_s)
    tests = "not run (--skip-tests)" if args.skip_tests else run_tests(args)
    tests_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        build_start = time.perf_counter()
        model_dir = work / "model"
        params = build_model(model_dir, shape)
        build_s = time.perf_counter() - build_start
        rows = {}
        for section in [s for s in SECTIONS if s in args.sections]:
            left_s = int(budget_s - (time.perf_counter() - started))
            if section.endswith("vllm") and importlib.util.find_spec("vllm") is None:
                rows[section] = {"value": VLLM_MISSING}
            elif left_s < 20:
                rows[section] = {"value": f"not run: the {budget_s} s budget is spent (--budget-s)"}
            else:
                rows[section] = run_section(section, model_dir, args, left_s)
            print(f"  {section}: {rows[section]['value']}", flush=True)

    lines += [
        f"pytest -m gpu: {tests} ({tests_s:.0f} s)", "",
        f"Model: Qwen2-shaped, {params / 1e6:.1f} M parameters (hidden {shape.hidden}, {shape.layers} layers, "
        f"{shape.heads}/{shape.kv_heads} heads, MLP {shape.mlp}, vocabulary {shape.vocab:,}, tokenizer "
        f"{shape.tokenizer_vocab:,}), random weights built here in {build_s:.0f} s, {shape.dtype}; "
        f"LoRA r=16, alpha=32 on q, k, v, o" + ("; --smoke: CPU, tiny, numbers mean nothing" if args.smoke else ""),
        "",
        "| measure | result | peak memory | setting | section wall s |",
        "|---|---|---|---|---|",
    ]
    for section, row in rows.items():
        wall = f"{row['wall_s']:.0f}" if "wall_s" in row else "–"
        lines.append(f"| {ROW_NAMES[section]} | {row['value']} | {row.get('peak_memory', '–')} | "
                     f"{row.get('detail', '–')} | {wall} |")
    report = "\n".join(lines)
    print("\n" + report.split("\n\n", 2)[-1])
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()
