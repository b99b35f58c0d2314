"""The rollout engine as a callback: before each GRPO step, roll out the batch's prompts with the current weights."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch

from coa.distributed import summed_over_processes
from coa.rollout.engines.base import GenerationEngine
from coa.rollout.engines.hf import HFEngine
from coa.rollout.engines.streams import RowStreams, episode_seed
from coa.formats.action_format import action_format as tags_of
from coa.modules.step_metrics import log_step_metrics
from coa.rewards.base import Reward, reward_from_config
from coa.rewards.em import exact_match
from coa.rollout.batch import collate_rollouts
from coa.rollout.environments import Environment
from coa.rollout.runner import Rollout, RolloutRunner, RolloutSettings


SUMMED_SUFFIXES = ("_calls", "_errors", "_probes", "tokens_per_s")  # counts (and throughput) add up over processes
TRUNCATION = ("zero", "no_loss", "reward")


class RolloutCallback(L.Callback):
    """Generation → environment → generation … for every prompt of the batch, `group_size` times; then rewards.

    Hands the GRPO module a `RolloutBatch` (`pl_module.rollouts`) and logs what the rollouts did.
    Each episode samples from its own random stream, seeded by (`seed`, the optimizer step, its place in the
    global batch, its question's id, its place in the group): a resumed run draws the same rollouts, and so does
    a run whose batch is split over several processes (each rank's prompts are its slice of the global batch).

    Args:
        environment: answers actions: RealEnvironment, SimulatedEnvironment, MixedEnvironment or a subclass.
        reward: a reward by name (exact_match, f1, autocoa, autocoa_lenient), class path or {class_path, init_args}.
        group_size: episodes per prompt (G). Paper: 5.
        action_format: the tags (a built-in name or a mapping).
        max_actions: environment calls per episode before the budget message. Paper: 10.
        max_turn_tokens: new tokens per generation call (a turn that reaches it goes on in the next call).
        max_response_tokens: all response tokens of an episode; one that runs out of them is truncated.
        truncation: what a truncated episode (out of response tokens before it ended) trains on: "zero" (reward 0,
            whatever it wrote: an answer boxed before the budget ran out earns nothing, so running on is never
            rewarded), "no_loss" (its tokens get no loss; its reward still counts in its group's mean and std, as
            DAPO's overlong filtering) or "reward" (scored as any other, as AutoCoA's release does).
        temperature: sampling temperature. Paper: 0.6.
        top_p: nucleus sampling.
        engine: "hf" (transformers generate; CPU or GPU) or "vllm" (colocated vLLM, `coa[vllm]`, CUDA; it needs
            the WeightSync callback, which pushes the weights after optimizer steps; the engine sleeps after each
            batch's rollouts, freeing its GPU memory for the update, and wakes for the next).
        engine_args: extra constructor arguments of the engine (vLLM: gpu_memory_utilization, ...).
        generation_batch_size: prompts per HF generate call.
        seed: seeds the rollouts' sampling and the environment's draws.
        samples_every_n_steps: log a W&B table of sample rollouts every N steps (0: never).
        num_samples: rollouts in that table.
    """

    def __init__(
        self,
        environment: Environment,
        reward: str | dict = "exact_match",
        group_size: int = 4,
        action_format: str | dict = "autocoa",
        max_actions: int = 5,
        max_turn_tokens: int = 128,
        max_response_tokens: int = 512,
        truncation: str = "zero",
        temperature: float = 1.0,
        top_p: float = 1.0,
        engine: str = "hf",
        engine_args: dict | None = None,
        generation_batch_size: int = 64,
        seed: int = 0,
        samples_every_n_steps: int = 25,
        num_samples: int = 4,
    ) -> None:
        if group_size < 1:
            raise ValueError(f"RolloutCallback.group_size={group_size} must be >= 1 (GRPO needs >= 2 to learn)")
        if engine not in ("hf", "vllm"):
            raise ValueError(f"RolloutCallback.engine={engine!r} must be 'hf' or 'vllm'")
        if truncation not in TRUNCATION:
            raise ValueError(f"RolloutCallback.truncation={truncation!r} must be one of {', '.join(TRUNCATION)}")
        self.environment = environment
        self.reward = reward_from_config(reward)
        self.group_size = group_size
        self.fmt = tags_of(action_format)
        self.settings = RolloutSettings(max_actions, max_turn_tokens, max_response_tokens, temperature, top_p)
        self.truncation = truncation
        self.engine_name, self.engine_args = engine, dict(engine_args or {})
        self.generation_batch_size = generation_batch_size
        self.samples_every_n_steps, self.num_samples = samples_every_n_steps, num_samples
        self.seed = seed
        self.engine: GenerationEngine | None = None
        self.runner: RolloutRunner | None = None
        self.synced_step: int | None = None  # the optimizer step whose weights the engine holds; None: from disk

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.runner is not None:
            return
        policy = pl_module.policy
        self.engine = self._build_engine(policy)
        self.runner = RolloutRunner(self.engine, self.environment, policy.tokenizer, self.fmt, self.settings)

    def _build_engine(self, policy) -> GenerationEngine:
        if self.engine_name == "vllm":
            from coa.rollout.engines.vllm import VLLMEngine

            return VLLMEngine.from_policy(policy, **self.engine_args)
        return HFEngine(policy.model, policy.tokenizer, batch_size=self.generation_batch_size, **self.engine_args)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from coa.callbacks.weight_sync import WeightSync

        if self.engine is not None and self.engine.holds_own_weights:
            if not any(isinstance(c, WeightSync) for c in trainer.callbacks):
                raise ValueError(
                    f"RolloutCallback.engine={self.engine_name!r} keeps its own copy of the weights, and no "
                    "coa.callbacks.weight_sync.WeightSync callback pushes the trained ones to it: every rollout would "
                    "come from the starting weights. Add `- class_path: coa.callbacks.weight_sync.WeightSync` to "
                    "trainer.callbacks (configs/rl2.yaml has it)"
                )

    def sync_weights(self, policy, step: int) -> None:
        """Makes the engine generate with the policy's weights of optimizer step `step`."""
        if self.engine is not None:
            self.engine.sync_weights(policy)
            self.synced_step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: list, batch_idx: int) -> None:
        if self.synced_step is None:  # the engine loaded the weights on disk; a resumed run's differ (WeightSync syncs after)
            self.sync_weights(pl_module.policy, trainer.global_step)
        self.environment.set_step(trainer.global_step)
        items = [item for item in batch for _ in range(self.group_size)]  # a prompt's group stays together
        start = time.perf_counter()
        streams = self.episode_streams(batch, trainer.global_step, trainer.global_rank)
        rollouts = self.runner.run([i.prompt_ids for i in items], [i.golds for i in items], streams)
        self.engine.sleep()  # the update's turn: vLLM frees its weights and KV cache until the next sync/rollouts
        generation_s = time.perf_counter() - start
        texts = [self.runner.text(r) for r in rollouts]
        scores = score_rollouts(self.reward, self.runner, rollouts, items, texts)
        rewards, trained = for_truncation(scores, [r.truncated for r in rollouts], self.truncation)
        pl_module.rollouts = collate_rollouts(
            rollouts, rewards, self.group_size, pl_module.policy.tokenizer.pad_token_id, self.settings.temperature,
            trained,
        )
        self._log(pl_module, rollouts, texts, items, rewards, generation_s)
        if self.samples_every_n_steps and trainer.global_step % self.samples_every_n_steps == 0:
            self._log_samples(trainer, items, texts, rewards)

    def episode_streams(self, batch: list, step: int, rank: int) -> RowStreams:
        """One stream per episode of the batch (its prompts times the group), the same on any number of processes."""
        first = rank * len(batch)  # this rank's slice of the global batch (coa's sampler hands out slices)
        return RowStreams.from_seeds([
            episode_seed(self.seed, step, first + position, item.id, member)
            for position, item in enumerate(batch) for member in range(self.group_size)
        ])

    def _log(self, pl_module, rollouts: list[Rollout], texts: list[str], items: list, rewards: list[float], seconds: float) -> None:
        n = len(rollouts)
        parsed = [self.fmt.parse_output(t) for t in texts]
        reward = torch.tensor(rewards)
        generated = sum(sum(r.policy_mask) for r in rollouts)
        metrics = {
            "rollout/reward_mean": reward.mean().item(),
            "rollout/reward_std": reward.std().item() if n > 1 else 0.0,
            "rollout/em": sum(exact_match(p.answer, i.golds) for p, i in zip(parsed, items)) / n,
            "rollout/format_error_rate": sum(bool(p.errors) for p in parsed) / n,
            "rollout/truncated_rate": sum(r.truncated for r in rollouts) / n,
            "rollout/actions": sum(len(r.actions) for r in rollouts) / n,
            "rollout/response_tokens": sum(len(r.response_ids) for r in rollouts) / n,
            "rollout/real_calls": float(sum(r.real_calls for r in rollouts)),
            "rollout/simulated_calls": float(sum(r.simulated_calls for r in rollouts)),
            "rollout/tool_errors": float(sum(r.tool_errors for r in rollouts)),
            "perf/gen_tokens_per_s": generated / max(seconds, 1e-9),
        }
        summed = [name for name in metrics if name.endswith(SUMMED_SUFFIXES)]  # counts add up, rates average
        log_step_metrics(pl_module, metrics, summed=summed, prog_bar=["rollout/reward_mean"])
        # the environment's counts differ in keys from process to process (no call, no key): summed first
        env = self.environment.metrics(summed_over_processes(self.environment.pop_counts()))
        log_step_metrics(pl_module, env, synced=True)  # the same on every process

    def _log_samples(self, trainer: L.Trainer, items: list, texts: list[str], rewards: list[float]) -> None:
        log_table = getattr(trainer.logger, "log_table", None)
        if log_table is None or not trainer.is_global_zero:
            return
        rows = [
            [trainer.global_step, i.id, i.prompt_text[-300:], " | ".join(i.golds), t, r]
            for i, t, r in list(zip(items, texts, rewards))[: self.num_samples]
        ]
        log_table(key="rollout/samples", columns=["step", "id", "prompt_tail", "golds", "response", "reward"], data=rows)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed}  # the streams follow from it and the step: nothing else to restore

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("seed", self.seed) != self.seed:
            raise ValueError(
                f"RolloutCallback.seed={self.seed}, but the checkpoint was written with seed {state_dict['seed']}: "
                "resume with the seed it was trained with (or start afresh) so the rollouts continue where they were"
            )


def score_rollouts(reward: Reward, runner: RolloutRunner, rollouts: list[Rollout], items: list, texts: list[str]) -> list[float]:
    """The reward of each episode. A reward that scores the decoded sequence (`Reward.scores_decoded_sequence`, as
    `autocoa` does, after AutoCoA's release) gets prompt and response as one `decode` of their ids gives them, the
    end-of-sequence token's text included; others get `texts` (the response without it) and the prompt's text."""
    golds = [i.golds for i in items]
    if reward.scores_decoded_sequence:
        prompts, responses = zip(*(runner.decoded(r) for r in rollouts)) if rollouts else ((), ())
        return reward(list(responses), golds, list(prompts))
    return reward(texts, golds, [i.prompt_text for i in items])


def for_truncation(rewards: list[float], truncated: list[bool], truncation: str) -> tuple[list[float], list[bool] | None]:
    """(rewards, which episodes get loss or None for all) under a `RolloutCallback.truncation` setting.

    >>> for_truncation([1.0, 1.0], [True, False], "zero"), for_truncation([1.0, 1.0], [True, False], "no_loss")
    (([0.0, 1.0], None), ([1.0, 1.0], [False, True]))
    """
    if truncation == "zero":
        return [0.0 if t else r for r, t in zip(rewards, truncated)], None
    if truncation == "no_loss":
        return list(rewards), [not t for t in truncated]
    return list(rewards), None
