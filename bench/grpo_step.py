"""Seconds per GRPO step, coa (Lightning + RolloutCallback) vs TRL's GRPOTrainer, same model, prompt and settings.

    pip install -e '.[bench]'            # TRL, in a venv of its own (see bench/README.md)
    python bench/grpo_step.py            # 0.66M and 34M params, 3 sides x 3 rounds x 7 measured steps, ~20 min
    python bench/grpo_step.py --sizes small --steps 4 --rounds 1     # a quick look

A step is one prompt x 8 completions (TRL's default num_generations=8, per-device batch 8), exactly
64 new tokens each (EOS and the action tags are suppressed in sampling on both sides, so neither
can stop early), temperature 1, lr 1e-5, KL β 0.001 to a reference, μ = 1, token-mean loss (TRL
"dapo": Σ over every completion token of the batch / their number = coa's token_mean), advantages
not scaled by std (TRL scale_rewards="none", coa scale_advantages=False), grad-norm clip 1, one
torch thread. The reward is `LengthModReward` below on both sides. Single turn, no tool: coa's
environment is a RealEnvironment over UnavailableTool, never called (max_actions=0).

Three sides: "coa" decodes eagerly, as by default; "coa, compiled decoding" is the same run with the
HF engine's opt-in `compile: true` (`engine_args`), whose ~20 s of compiling falls in the dropped warm-up
steps; TRL generates with transformers' `generate`, eagerly, as GRPOTrainer does by default. The target
is judged on eager coa against TRL; the compiled row shows what the option adds.

Each side runs in its own subprocess, alternately (coa, TRL, coa-compiled, coa, ...) so the machine's other
load hits both alike; the load average is recorded before and after each run. A step's time is the
gap between the starts of consecutive steps (Lightning on_train_batch_start, TRL on_step_begin); the
first `--warmup` steps are dropped. "CPU s/step" is the same gap in this process's CPU time
(`time.process_time`, one torch thread): other jobs on the shared cores stretch the wall time, much
less the CPU time, so its ratio is the steadier one. "generate" is the time inside generation: TRL's
call of the model's `generate` (the bench wraps the model instance's method), coa's decoding loop
(`coa.rollout.engines.decode.decode`, or `generate` for generation configs that need it),
"rollout" (coa only) is the RolloutCallback's whole hook: generation, reward, collation, metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from coa.rewards.base import Reward

SIZES = {  # name -> (hidden, layers, heads, intermediate); vocabulary 2048, tied embeddings
    "small": (128, 2, 4, 344),    # 0.66 M parameters
    "large": (512, 8, 8, 2048),   # 34.6 M parameters
}
VOCAB = 2048
TARGETS = {"small": 2.0, "large": 1.2}  # TRL s/step ÷ coa s/step that coa must reach
COMPLETIONS, NEW_TOKENS, LR, BETA = 8, 64, 1e-5, 0.001
SIDES = {  # worker name -> its name in the tables; run in this order within each round
    "coa": "coa",
    "trl": "TRL",
    "coa-compiled": "coa, compiled decoding",
}
QUESTION = "Which city was the author of The Glass Harbor born in?"


class LengthModReward(Reward):
    """A reward with no meaning that varies between completions: (characters mod 7) / 7."""

    name = "bench_length_mod"

    def score(self, response: str, golds: list[str], prompt: str) -> float:
        return (len(response) % 7) / 7


def length_mod_reward(completions: list[str], **kwargs) -> list[float]:
    """The same reward in TRL's signature."""
    return [LengthModReward().score(c, [], "") for c in completions]


# ---------------------------------------------------------------- assets


def build_assets(work: Path, sizes: list[str]) -> dict[str, Path]:
    """A tokenizer trained on the embedded world's passages, one random Llama per size, and a one-question QA file."""
    from coa.models.tiny import TinyModelConfig, build_tiny_model
    from coa.models.tokenizer import train_tokenizer
    from coa.prompts import INSTRUCTIONS
    from coa.world.config import WorldConfig
    from coa.world.encyclopedia import generate_world

    # Tokenizer text: the passages of a default-size embedded world (enough text for 2048 BPE tokens).
    world = generate_world(WorldConfig(seed=0), random.Random(0))
    texts = [e.passage(world) for e in world.entities.values()]
    tokenizer = train_tokenizer(texts + list(INSTRUCTIONS.values()), vocab_size=VOCAB)
    # The same question on every step: both sides see the same prompt ids, so prompt length is no noise.
    qa = work / "qa.jsonl"
    qa.write_text("".join(json.dumps({"id": f"q{i}", "question": QUESTION, "golden_answers": ["Orlin"]}) + "\n"
                          for i in range(64)))
    dirs = {"qa": qa}
    for size in sizes:
        hidden, layers, heads, inter = SIZES[size]
        config = TinyModelConfig(hidden_size=hidden, num_layers=layers, num_heads=heads, intermediate_size=inter,
                                 max_position_embeddings=512)
        out = build_tiny_model(tokenizer, config, work / size)
        forbid_early_stops(out)
        dirs[size] = out
    return dirs


def forbid_early_stops(model_dir: Path) -> None:
    """Writes `suppress_tokens` (EOS, pad, the special and tag tokens) into the model's generation config.

    With those logits at -inf no completion can end before `max_new_tokens` (no EOS, no action close
    tag), on either side: coa's HFEngine reads the model's generation config, TRL gets the same list
    in `generation_kwargs` (`suppressed_ids`).
    """
    from transformers import GenerationConfig

    config = GenerationConfig.from_pretrained(model_dir)
    config.suppress_tokens = suppressed_ids(model_dir)
    config.save_pretrained(model_dir)


def suppressed_ids(model_dir: Path) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return sorted(set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder))


def prompt_text(model_dir: Path) -> str:
    """The chat-formatted prompt, exactly as coa's PromptDataModule writes it (TRL gets this text as is)."""
    from transformers import AutoTokenizer

    from coa.prompts import PromptTemplate

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    messages = PromptTemplate("short").messages(QUESTION)
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


# ---------------------------------------------------------------- timing shared by both sides


@dataclass
class Clock:
    """Step starts and the time spent inside `generate` (and coa's rollout hook) since the last start."""

    starts: list[float]
    cpu_starts: list[float]
    generate_s: list[float]
    rollout_s: list[float]
    _rollout_start: float = 0.0

    def step_start(self) -> None:
        self.starts.append(time.perf_counter())
        self.cpu_starts.append(time.process_time())
        self.generate_s.append(0.0)
        self.rollout_s.append(0.0)

    def wrap_generate(self, model) -> None:
        """Times every `model.generate` call (the instance's method only; transformers is not touched)."""
        model.generate = self.timed(model.generate)

    def timed(self, inner):
        """`inner`, adding the seconds spent in it to the current step's generation time."""

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                if self.generate_s:
                    self.generate_s[-1] += time.perf_counter() - start

        return timed

    def steps(self, warmup: int) -> list[dict]:
        """Measured steps: the gap to the next start (wall and this process's CPU) and its generate / rollout seconds."""
        cpu = [b - a for a, b in zip(self.cpu_starts, self.cpu_starts[1:])]
        return [
            {"s": b - a, "cpu_s": c, "generate_s": g, "rollout_s": r}
            for a, b, c, g, r in zip(self.starts, self.starts[1:], cpu, self.generate_s, self.rollout_s)
        ][warmup:]


def run_coa(model_dir: Path, qa: Path, num_steps: int, clock: Clock, compile_decoding: bool = False) -> dict:
    import lightning as L

    from coa.callbacks.rollout import RolloutCallback
    from coa.datamodules.prompts import PromptDataModule
    from coa.modules.grpo import GRPOModule
    from coa.policy import Policy
    from coa.rollout.environments import RealEnvironment
    from coa.rollout.runner import UnavailableTool

    class StepStart(L.Callback):  # first in the list: fires before the RolloutCallback
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            clock.step_start()
            clock._rollout_start = time.perf_counter()

    class RolloutEnd(L.Callback):  # after it
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            clock.rollout_s[-1] = time.perf_counter() - clock._rollout_start

    import coa.rollout.engines.hf as hf_engine

    policy = Policy(str(model_dir))
    clock.wrap_generate(policy.model)  # models whose generation config needs transformers' generate
    hf_engine.decode = clock.timed(hf_engine.decode)  # coa's own decoding loop, used otherwise
    module = GRPOModule(policy, lr=LR, warmup_steps=0, clip_eps=0.2, kl_coef=BETA, scale_advantages=False,
                        loss_aggregation="token_mean", updates_per_batch=1, max_grad_norm=1.0)
    data = PromptDataModule(str(qa), tokenizer_path=str(model_dir), batch_size=1, prompt="short")
    rollout = RolloutCallback(
        RealEnvironment(UnavailableTool()), reward=f"{__name__}.LengthModReward", group_size=COMPLETIONS,
        max_actions=0, max_turn_tokens=NEW_TOKENS, max_response_tokens=NEW_TOKENS, temperature=1.0, top_p=1.0,
        samples_every_n_steps=0, engine_args={"compile": compile_decoding},
    )
    trainer = L.Trainer(
        max_steps=num_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", devices=1, num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=[StepStart(), rollout, RolloutEnd()],
    )
    trainer.fit(module, datamodule=data)
    metrics = trainer.callback_metrics
    return {"completion_tokens": float(metrics["rollout/response_tokens"]),
            "prompt_tokens": len(data.train_set[0].prompt_ids)}


def run_trl(model_dir: Path, num_steps: int, clock: Clock) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    class StepStart(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            clock.step_start()

    class Lengths(TrainerCallback):
        lengths: list[float] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "completions/mean_length" in logs:
                self.lengths.append(logs["completions/mean_length"])

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    clock.wrap_generate(model)
    text = prompt_text(model_dir)
    args = GRPOConfig(
        output_dir=str(model_dir / "trl_out"), max_steps=num_steps, learning_rate=LR, lr_scheduler_type="constant",
        per_device_train_batch_size=COMPLETIONS, num_generations=COMPLETIONS, gradient_accumulation_steps=1,
        max_completion_length=NEW_TOKENS, temperature=1.0, top_p=1.0, top_k=0, beta=BETA, num_iterations=1,
        epsilon=0.2, loss_type="dapo", scale_rewards="none", max_grad_norm=1.0, weight_decay=0.0,
        generation_kwargs={"suppress_tokens": suppressed_ids(model_dir)},
        use_cpu=True, bf16=False, fp16=False, report_to="none", logging_steps=1, save_strategy="no",
        disable_tqdm=True, dataloader_num_workers=0, seed=0, log_completions=False,
    )
    lengths = Lengths()
    trainer = GRPOTrainer(
        model=model, reward_funcs=[length_mod_reward], args=args,
        train_dataset=Dataset.from_list([{"prompt": text}] * 64), processing_class=tokenizer,
        callbacks=[StepStart(), lengths],
    )
    trainer.train()
    return {"completion_tokens": statistics.mean(lengths.lengths) if lengths.lengths else float("nan"),
            "prompt_tokens": len(tokenizer(text, add_special_tokens=False)["input_ids"])}


def worker(args: argparse.Namespace) -> None:
    """One side, one size, in this process; writes its step times as JSON to `args.out`."""
    import torch

    torch.set_num_threads(args.threads)
    model_dir = Path(args.model_dir)
    clock = Clock([], [], [], [])
    num_steps = args.warmup + args.steps + 1  # one more start closes the last measured step
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    if args.worker in ("coa", "coa-compiled"):
        info = run_coa(model_dir, Path(args.qa), num_steps, clock, compile_decoding=args.worker == "coa-compiled")
    else:
        info = run_trl(model_dir, num_steps, clock)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    Path(args.out).write_text(json.dumps({"steps": clock.steps(args.warmup), **info}))


# ---------------------------------------------------------------- driver


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def count_params(model_dir: Path) -> int:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).num_parameters()


def run_side(side: str, model_dir: Path, qa: Path, args: argparse.Namespace, out: Path) -> dict:
    before = load()
    cmd = [sys.executable, __file__, "--worker", side, "--model-dir", str(model_dir), "--qa", str(qa),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads), "--out", str(out)]
    env = {**os.environ, "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
        raise SystemExit(f"{side} worker failed (exit {proc.returncode})")
    result = json.loads(out.read_text())
    result.update(side=side, load_before=before, load_after=load(), wall_s=time.perf_counter() - started)
    return result


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarise(runs: list[dict]) -> dict:
    steps = [s for r in runs for s in r["steps"]]
    total = sum(s["s"] for s in steps)
    return {
        "median_s": median([s["s"] for s in steps]),
        "cpu_s": median([s["cpu_s"] for s in steps]),
        "min_s": min(s["s"] for s in steps), "max_s": max(s["s"] for s in steps),
        "per_run": [median([s["s"] for s in r["steps"]]) for r in runs],
        "n": len(steps),
        "generate_share": sum(s["generate_s"] for s in steps) / total,
        "rollout_share": sum(s["rollout_s"] for s in steps) / total,
        "completion_tokens": statistics.mean(r["completion_tokens"] for r in runs),
        "prompt_tokens": runs[0]["prompt_tokens"],
        "loads": "; ".join(f"{r['load_before']} → {r['load_after']}" for r in runs),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--steps", type=int, default=7, help="measured steps per run (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=2, help="steps dropped at the start of each run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per side and size, alternating coa / TRL")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each side")
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES),
                        help="coa: eager decoding, as by default; coa-compiled: HFEngine(compile=True); trl")
    parser.add_argument("--workdir", default=None, help="keep models and data here (default: a temporary folder)")
    # internal: one side in a subprocess
    parser.add_argument("--worker", choices=list(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--qa", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--profile", default=None, help="with --worker: write cProfile stats here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars between the table's lines
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if args.worker:
        return worker(args)

    trl_version = "not run"
    if "trl" in args.sides:
        import trl

        trl_version = trl.__version__
    print(f"python bench/grpo_step.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"cpus {os.cpu_count()}, torch threads {args.threads}, trl {trl_version}, "
          f"load average (1/5/15 min) at start {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        assets = build_assets(work, args.sizes)
        rows = {}
        for size in args.sizes:
            runs: dict[str, list[dict]] = {side: [] for side in args.sides}
            for r in range(args.rounds):
                for side in args.sides:
                    result = run_side(side, assets[size], assets["qa"], args, work / f"{size}_{side}_{r}.json")
                    runs[side].append(result)
                    print(f"  {size} {side} round {r}: median {median([s['s'] for s in result['steps']]):.3f} s/step, "
                          f"load {result['load_before']} → {result['load_after']}", flush=True)
            rows[size] = (count_params(assets[size]), {side: summarise(runs[side]) for side in args.sides})
    print_tables(rows, args)


def print_tables(rows: dict[str, tuple[int, dict[str, dict]]], args: argparse.Namespace) -> None:
    print()
    print(f"{COMPLETIONS} completions per step (1 prompt x {COMPLETIONS}) x {NEW_TOKENS} new tokens, "
          f"{args.steps} measured steps x {args.rounds} runs per side (first {args.warmup} of each run dropped)")
    print()
    print("| model | side | s/step median | min–max | median per run | CPU s/step median | steps | generate share "
          "| rollout hook share "
          "| prompt / completion tokens | load avg before → after, per run |")
    print("|" + "---|" * 11)
    for size, (params, sides) in rows.items():
        for side, s in sides.items():
            rollout = "–" if side == "trl" else f"{s['rollout_share']:.0%}"
            print(f"| {params / 1e6:.2f} M | {SIDES[side]} | {s['median_s']:.3f} | {s['min_s']:.3f}–{s['max_s']:.3f} | "
                  f"{', '.join(f'{x:.3f}' for x in s['per_run'])} | {s['cpu_s']:.3f} | {s['n']} | "
                  f"{s['generate_share']:.0%} | {rollout} | "
                  f"{s['prompt_tokens']} / {s['completion_tokens']:.0f} | {s['loads']} |")
    if "trl" not in args.sides:
        return
    print()
    print("| model | coa side | TRL s/step | coa s/step | TRL / coa (wall) | TRL / coa (CPU) | target | met (wall; CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for size, (params, sides) in rows.items():
        ref = sides["trl"]
        for side, coa in sides.items():
            if side == "trl":
                continue
            ratio, cpu_ratio = ref["median_s"] / coa["median_s"], ref["cpu_s"] / coa["cpu_s"]
            met = "; ".join("yes" if r >= TARGETS[size] else "no" for r in (ratio, cpu_ratio))
            print(f"| {params / 1e6:.2f} M | {SIDES[side]} | {ref['median_s']:.3f} | {coa['median_s']:.3f} | "
                  f"{ratio:.2f}x | {cpu_ratio:.2f}x | ≥ {TARGETS[size]}x | {met} |")


if __name__ == "__main__":
    main()
