"""One process of the tensor-parallel rollout test: `python tp_episodes.py OUT_JSON` with torchrun's variables set.

Two processes form one tensor-parallel group. Their engine works as vLLM's does under tensor parallelism: each
`generate` gathers the group's requests, every process runs all of them, and each keeps its own part, so a
process that skips a call leaves the other waiting (here, until gloo's timeout fails it). The model is played
back from a script per prompt; the environment is the policy simulating the search tool, so it generates too.
Rank 0's episode answers at once, rank 1's searches twice: they finish at different turns.
"""

from __future__ import annotations

import datetime
import json
import sys

import torch.distributed as dist

from coa.models.tokenizer import train_tokenizer
from coa.rollout.engines.base import Generation, GenerationEngine, SamplingSettings
from coa.rollout.engines.hf import finish
from coa.rollout.engines.tensor_parallel import TensorParallelGroup
from coa.rollout.environments import SimulatedEnvironment
from coa.rollout.runner import RolloutRunner, RolloutSettings

TEXTS = ["<think> I need Ada. <begin_search> Ada </end_search> <search_result> Ada: city Lisbon. </search_result> "
         "Ada's city Lisbon. </think> \\boxed{Lisbon} Bob?"] * 4
SCRIPTS = {  # what the model writes after each prompt, one entry per generate call that continues it
    "Bob?": [" </think> \\boxed{Bob}<eos>"],
    "Ada?": [
        "<think> <begin_search> Ada </end_search>", " Ada: city Lisbon. </search_result>",
        " <begin_search> Lisbon </end_search>", " Lisbon: a city. </search_result>",
        " </think> \\boxed{Lisbon}<eos>",
    ],
}


class GroupScriptedEngine(GenerationEngine):
    """A scripted model behind vLLM's tensor-parallel protocol (`TensorParallelGroup`); counts its calls."""

    def __init__(self, tokenizer, group: TensorParallelGroup) -> None:
        self.tokenizer, self.group = tokenizer, group
        first = {tokenizer.encode(p, add_special_tokens=False)[0]: p for p in SCRIPTS}
        self.turns = {k: [tokenizer.encode(t.replace("<eos>", tokenizer.eos_token), add_special_tokens=False)
                          for t in SCRIPTS[p]] for k, p in first.items()}
        self.calls: list[int] = []  # requests this process brought to each call

    def generate(self, prompts: list[list[int]], settings: SamplingSettings, generator=None) -> list[Generation]:
        self.calls.append(len(prompts))
        everyone, mine = self.group.gather([list(p) for p in prompts])
        outputs = [finish(self.tokenizer, self.turns[p[0]].pop(0), settings) for p in everyone]
        return outputs[mine]

    def any_active(self, active: bool) -> bool:
        return self.group.any(active)


def main(out: str) -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=20))
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    engine = GroupScriptedEngine(tokenizer, TensorParallelGroup.of_size(2))
    runner = RolloutRunner(engine, SimulatedEnvironment(), tokenizer, settings=RolloutSettings(max_actions=3))
    question = "Bob?" if dist.get_rank() == 0 else "Ada?"
    (rollout,) = runner.run([tokenizer.encode(question, add_special_tokens=False)])
    result = {"text": runner.text(rollout), "actions": rollout.actions, "truncated": rollout.truncated,
              "calls": engine.calls}
    with open(out, "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
