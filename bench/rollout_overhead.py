"""Multi-turn overhead: a rollout that searches vs one plain `generate` of as many tokens (target ≤ 25 %).

    python bench/rollout_overhead.py              # 32 prompts, greedy, ~1 min on 2 cores
    python bench/rollout_overhead.py --hidden 256 --layers 4 --repeats 3

A tiny random Llama is overfitted on a few multi-search trajectories of a small embedded world
(their questions asked again, so its greedy rollouts really search, 2+ times each, on the real BM25
`search` tool over that world's corpus). Then, alternately, `--repeats` times each:

  rollout  `RolloutRunner.run` (HFEngine, RealEnvironment over BM25Search topk=1, greedy) on the batch;
  plain    one `HFEngine.generate` on the same prompts, no stop strings or tokens, max_new_tokens = the
           rollouts' mean response length (policy tokens + observations), so both write as many tokens.

The rollout's time is split by timing the model instance's `generate` and `forward` and the tool's
`call`: "prefill" is the first forward of each generate call (turn 1 reads the prompt, as plain
does; later turns read only what was appended since, the observation: inside the runner's session
HFEngine keeps each micro-batch's KV cache, `coa/rollout/engines/prefix_cache.py`; the column
"re-prefill" is those later first forwards),
"decode" the rest of generate, "stop watch" the StopStringWatch checks inside it, "tool" BM25,
"runner" what is left (cutting at stop strings, encoding observations, bookkeeping). The overhead
is given from the medians and from the fastest run of each side (the least disturbed by other jobs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from coa.rollout.engines.base import SamplingSettings
from coa.rollout.engines.hf import HFEngine, StopStringWatch
from coa.formats.action_format import AUTOCOA
from coa.masking import tokenize_chat
from coa.models.forward_args import body_and_head
from coa.models.tiny import TinyModelConfig, build_tiny_model
from coa.models.tokenizer import train_tokenizer
from coa.policy import Policy
from coa.prompts import INSTRUCTIONS, PromptTemplate
from coa.rollout.environments import RealEnvironment
from coa.rollout.runner import RolloutRunner, RolloutSettings
from coa.tools.bm25 import BM25Search
from coa.world.build import build_world
from coa.world.config import WorldConfig

WORLD = dict(persons=40, cities=10, countries=5, companies=10, books=20, train=200, dev=20, test=20, topk=1)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def pick_trajectories(world: Path, n: int, min_searches: int) -> list[tuple[str, str]]:
    """(question, response) of the first `n` SFT trajectories with at least `min_searches` searches."""
    picked = []
    for line in open(world / "sft" / "train.jsonl"):
        row = json.loads(line)
        response = row["messages"][-1]["content"]
        if response.count(AUTOCOA.action_close) >= min_searches:
            question = row["messages"][0]["content"].split("Question: ", 1)[1]
            picked.append((question, response))
        if len(picked) == n:
            return picked
    raise SystemExit(f"{world}: fewer than {n} trajectories with {min_searches}+ searches")


def overfit(model_dir: Path, trajectories: list[tuple[str, str]], steps: int, out: Path, lr: float = 3e-3) -> Path:
    """Trains the model on the trajectories (loss on the policy's tokens) until it reproduces them greedily."""
    policy = Policy(str(model_dir))
    examples = [tokenize_chat(policy.tokenizer, PromptTemplate("short").messages(q), r, True) for q, r in trajectories]
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), policy.tokenizer.pad_token_id)
    attention = torch.zeros_like(ids)
    loss_mask = torch.zeros_like(ids)
    for row, e in enumerate(examples):
        ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
        attention[row, : len(e.input_ids)] = 1
        loss_mask[row, : len(e.input_ids)] = torch.tensor(e.loss_mask)
    target = (loss_mask * attention)[:, 1:]
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    for step in range(steps):
        loss = -policy.target_logprobs(ids, attention, target).mean()
        if os.environ.get("BENCH_DEBUG") and step % 100 == 0:
            print(f"    step {step} loss {loss.item():.4f}", flush=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"  overfitted {len(examples)} trajectories, {steps} steps, final loss {loss.item():.4f}", flush=True)
    return policy.save_pretrained(out)


class Timers:
    """Wraps the engine's generation of a micro-batch, the decoder's `forward` (decoding calls the decoder, then the
    output layer), the tool's `call` and StopStringWatch; sums seconds per part."""

    def __init__(self, model: torch.nn.Module, engine: HFEngine, tool: BM25Search) -> None:
        self.seconds = {"generate": 0.0, "prefill": 0.0, "prefill_first": 0.0, "tool": 0.0, "stop_watch": 0.0}
        self.generate_calls = 0
        self.forwards = 0  # model forwards: 1 prefill + decode steps per generate call
        self.widths: list[str] = []  # "rows x decode steps" of each generate call
        self._first_forward = False
        inner_generate = engine._generate_batch  # one micro-batch: shared-prompt prefill, decoding loop, cut
        engine._generate_batch = lambda batch, *a: self._on_generate(lambda: inner_generate(batch, *a), batch.ids.shape[0])
        self._wrap(body_and_head(model)[0], "forward", self._on_forward)  # what decoding calls (the whole model too)
        self._wrap(tool, "call", lambda fn: self._timed("tool", fn))
        watch = StopStringWatch.__call__
        StopStringWatch.__call__ = lambda w, *a, **k: self._timed("stop_watch", lambda: watch(w, *a, **k))

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.generate_calls = 0
        self.forwards = 0
        self.widths = []

    @staticmethod
    def _wrap(obj, name: str, around) -> None:
        inner = getattr(obj, name)
        setattr(obj, name, lambda *a, **k: around(lambda: inner(*a, **k)))

    def _timed(self, key: str, fn):
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[key] += time.perf_counter() - start

    def _on_generate(self, fn, rows: int):
        self._first_forward = True
        self.generate_calls += 1
        forwards = self.forwards
        out = self._timed("generate", fn)
        self.widths.append(f"{rows}x{self.forwards - forwards - 1}")
        return out

    def _on_forward(self, fn):
        self.forwards += 1
        if not self._first_forward:
            return fn()
        self._first_forward = False
        key = "prefill_first" if self.generate_calls == 1 else "prefill"
        return self._timed(key, fn)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=32, help="episodes per batch (the questions, repeated)")
    parser.add_argument("--questions", type=int, default=4, help="distinct trajectories taught and asked")
    parser.add_argument("--min-searches", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=300, help="overfitting steps")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side, alternating")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    torch.set_num_threads(args.threads)
    print(f"python bench/rollout_overhead.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"cpus {os.cpu_count()}, torch threads {args.threads}, load average (1/5/15 min) at start {load()}")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_world(work / "world", WorldConfig(seed=0, prompt="short", **WORLD))
        corpus = [json.loads(line)["contents"] for line in open(work / "world" / "corpus.jsonl")]
        sft = [json.loads(line)["messages"][-1]["content"] for line in open(work / "world" / "sft" / "train.jsonl")]
        tokenizer = train_tokenizer(corpus + sft + list(INSTRUCTIONS.values()), vocab_size=1024)
        heads = max(1, args.hidden // 64)
        config = TinyModelConfig(hidden_size=args.hidden, num_layers=args.layers, num_heads=heads,
                                 intermediate_size=int(args.hidden * 2.7), max_position_embeddings=2048)
        random_dir = build_tiny_model(tokenizer, config, work / "random")
        trajectories = pick_trajectories(work / "world", args.questions, args.min_searches)
        model_dir = overfit(random_dir, trajectories, args.train_steps, work / "model")

        policy = Policy(str(model_dir))
        policy.model.eval()
        tool = BM25Search(str(work / "world" / "corpus.jsonl"), topk=1)
        engine = HFEngine(policy.model, policy.tokenizer, batch_size=args.prompts)
        timers = Timers(policy.model, engine, tool)
        settings = RolloutSettings(max_actions=5, max_turn_tokens=256, max_response_tokens=1024, temperature=0.0)
        runner = RolloutRunner(engine, RealEnvironment(tool), policy.tokenizer, AUTOCOA, settings)
        template = PromptTemplate("short")
        questions = [trajectories[i % len(trajectories)][0] for i in range(args.prompts)]
        texts = [policy.tokenizer.apply_chat_template(template.messages(q), add_generation_prompt=True, tokenize=False)
                 for q in questions]
        prompts = [policy.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

        rollouts = runner.run(prompts)  # warm-up, and the lengths the plain run must match
        response_tokens = statistics.mean(len(r.response_ids) for r in rollouts)
        policy_tokens = statistics.mean(sum(r.policy_mask) for r in rollouts)
        searches = statistics.mean(r.tool_calls for r in rollouts)
        if min(r.tool_calls for r in rollouts) < args.min_searches:
            print(f"  warning: some rollouts searched fewer than {args.min_searches} times "
                  f"(min {min(r.tool_calls for r in rollouts)}); train longer (--train-steps)")
        plain_settings = {
            "plain": SamplingSettings(max_new_tokens=round(response_tokens), temperature=0.0),
            "plain, policy tokens only": SamplingSettings(max_new_tokens=round(policy_tokens), temperature=0.0),
        }
        engine.generate(prompts, plain_settings["plain"])  # warm-up

        runs = {"rollout": [], **{side: [] for side in plain_settings}}
        for _ in range(args.repeats):
            for side in runs:
                timers.reset()
                before = load()
                start = time.perf_counter()
                if side == "rollout":
                    runner.run(prompts)
                else:
                    engine.generate(prompts, plain_settings[side])
                total = time.perf_counter() - start
                runs[side].append({"total": total, **timers.seconds, "calls": timers.generate_calls,
                                   "forwards": timers.forwards, "widths": " + ".join(timers.widths),
                                   "load": f"{before} → {load()}"})

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[side])

    r_total = med("rollout", "total")
    print()
    print(f"{args.prompts} prompts ({args.questions} questions x {args.prompts // args.questions}), greedy, "
          f"model {policy.model.num_parameters() / 1e6:.2f} M params ({args.hidden} hidden x {args.layers} layers), "
          f"BM25 top-1 over {len(corpus)} passages; per episode: {searches:.1f} searches, {response_tokens:.0f} "
          f"response "
          f"tokens ({policy_tokens:.0f} from the policy); "
          f"median of {args.repeats} runs each")
    print()
    print("| run | total s | generate calls (rows x decode steps) | forwards | prefill turn 1 s | re-prefill s "
          "| decode s | stop watch s | tool s | runner s | load avg before → after, per run |")
    print("|" + "---|" * 11)
    for side in runs:
        decode = med(side, "generate") - med(side, "prefill") - med(side, "prefill_first") - med(side, "stop_watch")
        runner_s = med(side, "total") - med(side, "generate") - med(side, "tool")
        print(f"| {side} | {med(side, 'total'):.3f} | {runs[side][0]['calls']} ({runs[side][0]['widths']}) | "
              f"{runs[side][0]['forwards']} | {med(side, 'prefill_first'):.3f} | "
              f"{med(side, 'prefill'):.3f} | {decode:.3f} | {med(side, 'stop_watch'):.3f} | {med(side, 'tool'):.3f} | "
              f"{runner_s:.3f} | {'; '.join(r['load'] for r in runs[side])} |")
    print()
    parts = {
        "re-prefill": med("rollout", "prefill"),
        "tool": med("rollout", "tool"),
        "stop watch": med("rollout", "stop_watch"),
        "runner": r_total - med("rollout", "generate") - med("rollout", "tool"),
    }
    print("| rollout vs | new tokens | overhead (rollout / plain - 1) | overhead, fastest runs | target | met "
          "| extra s | "
          + " | ".join(f"{k} s" for k in parts) + " | decode + turn-1 prefill, vs plain s |")
    print("|" + "---|" * (8 + len(parts)))
    for side, sampling in plain_settings.items():
        p_total = med(side, "total")
        extra = r_total - p_total
        overhead = r_total / p_total - 1
        fastest = min(r["total"] for r in runs["rollout"]) / min(r["total"] for r in runs[side]) - 1
        met = "yes" if overhead <= 0.25 else "no"
        cells = [f"{v:.3f}" for v in (*parts.values(), extra - sum(parts.values()))]
        print(f"| {side} | {sampling.max_new_tokens} | {overhead:.1%} | {fastest:.1%} | ≤ 25 % | {met} | {extra:.3f} | "
              + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
