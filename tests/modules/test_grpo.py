"""GRPOModule: the loss by hand on a fixed batch, a seeded run whose reward rises, SIGKILL + resume, configs."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from coa.lightning_cli import run_lightning_cli
from coa.losses.grpo import group_advantages
from coa.modules.grpo import GRPOModule
from coa.policy import Policy
from coa.rollout.batch import RolloutBatch, collate_rollouts
from coa.rollout.runner import Rollout
from rl_runs import logged, rl_args, rl_config

ROOT = Path(__file__).resolve().parents[2]



def fixed_batch(pad: int) -> RolloutBatch:
    # two groups of two; row 0: prompt [5, 6], policy tokens 7 8, observation 9, policy token 10
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [5, 6, 11, 12, pad, pad], [13, 14, 15, 16, 17, pad], [13, 14, 18, pad, pad, pad]])
    attention = (ids != pad).long()
    loss = torch.tensor([[0, 0, 1, 1, 0, 1], [0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0], [0, 0, 1, 0, 0, 0]])
    return RolloutBatch(ids, attention, loss, torch.tensor([1.0, 0.0, 0.5, 0.5]), group_size=2)


def run_one_step(module: GRPOModule, batch: RolloutBatch, grads: dict | None = None) -> float:
    """One training step outside a Trainer: the module's optimizer and schedule, set up by hand. `grads` gets the
    gradients each optimizer step took (the module frees them right after)."""
    config = module.configure_optimizers()
    optimizer, schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    if grads is not None:
        step = optimizer.step
        optimizer.step = lambda: (grads.update(
            {n: p.grad.clone() for n, p in module.policy.named_parameters() if p.grad is not None}), step())
    module.optimizers = lambda: optimizer
    module.lr_schedulers = lambda: schedule
    module.manual_backward = lambda loss: loss.backward()
    module._log_step = lambda *a, **k: None  # logging needs a Trainer
    module.rollouts = batch
    return float(module.training_step([], 0))


def test_on_policy_loss_is_minus_the_mean_advantage_over_policy_tokens(small_model_dir):
    module = GRPOModule(Policy(str(small_model_dir)), lr=0.0, kl_coef=0.0, max_grad_norm=None, scale_advantages=False)
    module._trainer = type("T", (), {"max_steps": 1})()
    batch = fixed_batch(module.policy.tokenizer.pad_token_id)
    # advantages: group 1 -> [0.5, -0.5], group 2 -> [0, 0]; loss tokens per row: 3, 2, 3, 1 (targets of positions >= 1)
    adv = group_advantages(batch.rewards, 2)
    assert adv.tolist() == [0.5, -0.5, 0.0, 0.0]
    expected = -(3 * 0.5 + 2 * -0.5) / 9  # ratio 1 on-policy: token_mean of -A
    assert run_one_step(module, batch) == pytest.approx(expected, abs=1e-6)


def test_the_output_layer_sees_only_the_policy_tokens(small_model_dir):
    module = GRPOModule(Policy(str(small_model_dir)), lr=1e-3, kl_coef=0.1, max_grad_norm=None)
    module._trainer = type("T", (), {"max_steps": 1})()
    batch = fixed_batch(module.policy.tokenizer.pad_token_id)
    seen = []
    head = module.policy.model.get_output_embeddings()
    handle = head.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].reshape(-1, inputs[0].shape[-1]).shape[0]))
    run_one_step(module, batch)
    handle.remove()
    policy_targets = int((batch.loss_mask[:, 1:] * batch.attention_mask[:, 1:]).sum())
    assert policy_targets == 9 and seen == [9]  # one call, on the 9 positions that predict a policy token


def test_a_seeded_tiny_run_raises_the_mean_reward(small_world, small_model_dir, tmp_path, reward_on_path):
    reward, _ = reward_on_path
    config = rl_config(tmp_path, reward=reward, group_size=8)
    root = tmp_path / "run"
    run_lightning_cli(rl_args(config, small_world, small_model_dir, root, 24) + ["--model.init_args.lr=0.03"])
    rewards = logged(root, "rollout/reward_mean")
    assert len(rewards) == 24
    first, last = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    print(f"mean reward, steps 1-4: {first:.3f}; steps 21-24: {last:.3f}")  # quoted in closing notes (pytest -s)
    assert last > first + 0.1, rewards


def test_sigkill_mid_rl_then_resume_gives_the_same_rewards_and_weights(small_world, small_model_dir, tmp_path, reward_on_path):
    reward, reward_dir = reward_on_path
    config = rl_config(tmp_path, reward=reward)
    steps = 9
    ref_root = tmp_path / "ref"
    run_lightning_cli(rl_args(config, small_world, small_model_dir, ref_root, steps) + ["--model.init_args.lr=0.03"])

    root = tmp_path / "crash"
    args = rl_args(config, small_world, small_model_dir, root, steps) + ["--model.init_args.lr=0.03"]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": f"{ROOT}{os.pathsep}{reward_dir}"}
    proc = subprocess.Popen([sys.executable, "-m", "coa.cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while time.time() < deadline and not any((root / "checkpoints").glob("*step=3*.ckpt")):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (root / "model").exists()

    run_lightning_cli(args + ["--ckpt_path", "last"])
    print(f"final reward: uninterrupted {logged(ref_root, 'rollout/reward_mean')[-1]}, killed at step 3 and resumed "
          f"{logged(root, 'rollout/reward_mean')[-1]}")
    assert logged(root, "rollout/reward_mean")[-1] == pytest.approx(logged(ref_root, "rollout/reward_mean")[-1], abs=1e-9)
    ref_w = AutoModelForCausalLM.from_pretrained(ref_root / "model").state_dict()
    res_w = AutoModelForCausalLM.from_pretrained(root / "model").state_dict()
    assert all(torch.allclose(v, res_w[k], atol=1e-6) for k, v in ref_w.items())


def test_rl1_makes_no_real_tool_call_and_logs_simulation_fidelity(small_world, small_model_dir, tmp_path, teach):
    import json

    first = json.loads((small_world / "sft" / "train.jsonl").read_text().splitlines()[0])
    question = first["messages"][0]["content"].split("Now, please answer the user's question below:")[-1].strip()
    model_dir = teach(small_model_dir, question, first["messages"][-1]["content"], tmp_path / "taught")
    qa = tmp_path / "taught.jsonl"  # the overfit model searches on the question it was taught
    qa.write_text(json.dumps({"id": "q", "question": question, "golden_answers": ["x"]}) + "\n")
    config = rl_config(tmp_path, stage="rl1", max_turn_tokens=48, max_response_tokens=160)
    root = tmp_path / "rl1"
    run_lightning_cli(rl_args(config, small_world, model_dir, root, 3) + [
        "--model.init_args.lr=1e-3", f"--data.init_args.train_path={qa}", "--data.init_args.batch_size=1",
    ])
    print(f"simulated calls {sum(logged(root, 'rollout/simulated_calls')):.0f}, real calls "
          f"{sum(logged(root, 'rollout/real_calls')):.0f}, sim_fidelity {logged(root, 'env/sim_fidelity')}")
    assert sum(logged(root, "rollout/simulated_calls")) > 0
    assert sum(logged(root, "rollout/real_calls")) == 0
    assert sum(logged(root, "env/fidelity_probes")) > 0
    assert all(0.0 <= f <= 1.0 for f in logged(root, "env/sim_fidelity"))


def test_an_entropy_bonus_has_the_gradient_of_minus_its_coefficient_times_the_entropy(small_model_dir):
    results = []
    for coef in (0.0, 0.5):
        module = GRPOModule(Policy(str(small_model_dir)), lr=0.0, kl_coef=0.0, entropy_coef=coef, max_grad_norm=None)
        module._trainer = type("T", (), {"max_steps": 1})()
        batch = fixed_batch(module.policy.tokenizer.pad_token_id)
        batch.rewards = torch.tensor([1.0, 1.0, 0.5, 0.5])  # every advantage 0: only the bonus moves the policy
        module.policy.zero_grad()
        grads = {}
        module.manual_backward = lambda loss: (loss.backward(), grads.update(
            {n: p.grad.clone() for n, p in module.policy.named_parameters() if p.grad is not None}))
        config = module.configure_optimizers()
        module.optimizers, module.lr_schedulers = (lambda: config["optimizer"]), (lambda: config["lr_scheduler"]["scheduler"])
        module._log_step = lambda *a, **k: None
        module.rollouts = batch
        results.append((float(module.training_step([], 0)), grads, module, batch))
    (loss0, grads0, _, _), (loss1, grads1, module, batch) = results
    assert loss0 == 0.0 and all(float(g.abs().max()) == 0.0 for g in grads0.values())
    targets = batch.loss_mask[:, 1:] * batch.attention_mask[:, 1:]
    module.policy.zero_grad()
    _, entropy = module.policy.target_logprobs_and_entropy(batch.input_ids, batch.attention_mask, targets, entropy_grad=True)
    (-0.5 * entropy.mean()).backward()  # token_mean of -c * H, c = 0.5
    assert loss1 == pytest.approx(float(-0.5 * entropy.mean()), rel=1e-5)
    for name, p in module.policy.named_parameters():
        torch.testing.assert_close(grads1[name], p.grad, atol=1e-7, rtol=1e-4, msg=name)


def test_a_constant_schedule_keeps_the_rate_after_warm_up(small_model_dir):
    rates = {}
    for schedule in ("cosine", "constant"):
        module = GRPOModule(Policy(str(small_model_dir)), lr=0.01, warmup_steps=2, lr_schedule=schedule)
        module._trainer = type("T", (), {"max_steps": 10})()
        config = module.configure_optimizers()
        optimizer, lr_schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
        seen = []
        for _ in range(10):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            lr_schedule.step()
        rates[schedule] = seen
    assert rates["constant"] == pytest.approx([0.005] + [0.01] * 9)
    assert rates["cosine"][:2] == pytest.approx([0.005, 0.01]) and rates["cosine"][-1] < 0.002
    with pytest.raises(ValueError, match="lr_schedule='linear' must be one of"):
        GRPOModule(Policy(str(small_model_dir)), lr_schedule="linear")


def test_the_modules_defaults_are_the_configs(small_model_dir):
    import yaml

    module = GRPOModule(Policy(str(small_model_dir)))
    for stage in ("rl1", "rl2"):
        config = yaml.safe_load((ROOT / "configs" / f"{stage}.yaml").read_text())["model"]["init_args"]
        for key in ("scale_advantages", "kl_clamp", "entropy_coef", "lr_schedule"):
            assert config.get(key, module.hparams[key]) == module.hparams[key], (stage, key)
    assert module.hparams.scale_advantages is True  # the release's GRPO divides by the group's std


def test_the_full_fine_tuning_reference_waits_in_cpu_memory(small_model_dir):
    module = GRPOModule(Policy(str(small_model_dir)), lr=0.0, kl_coef=0.1, offload_reference=True, max_grad_norm=None)
    module._trainer = type("T", (), {"max_steps": 1})()
    moved = []
    module.policy.offload_reference = lambda: moved.append(True)  # on CPU, "to CPU" moves nothing: count the calls
    run_one_step(module, fixed_batch(module.policy.tokenizer.pad_token_id))
    assert moved == [True] and module.policy._reference is not None


def test_micro_batches_give_the_same_step_as_the_whole_batch(small_model_dir):
    losses = []
    for size in (None, 1):
        module = GRPOModule(Policy(str(small_model_dir)), lr=0.0, kl_coef=0.1, max_grad_norm=None, micro_batch_size=size)
        module._trainer = type("T", (), {"max_steps": 1})()
        losses.append(run_one_step(module, fixed_batch(module.policy.tokenizer.pad_token_id)))
    assert losses[1] == pytest.approx(losses[0], abs=1e-6)


def grouped_rollouts(pad: int) -> RolloutBatch:
    """Two groups of three; prompts of 5 and 8 tokens, responses of 4, 7, 2 and 6, 1, 3; one observation token."""
    gen = torch.Generator().manual_seed(0)
    rollouts = []
    for prompt_length, response_lengths in ((5, (4, 7, 2)), (8, (6, 1, 3))):
        prompt = torch.randint(3, 300, (prompt_length,), generator=gen).tolist()
        for n in response_lengths:
            rollouts.append(Rollout(prompt, torch.randint(3, 300, (n,), generator=gen).tolist(), [1] * n))
    rollouts[1].policy_mask[3] = 0
    return collate_rollouts(rollouts, [1.0, 0.0, 0.5, 0.2, 0.9, 0.4], 3, pad, temperature=0.6)


@pytest.mark.parametrize(
    ("micro_batch_size", "first_forward"),
    [(None, (2, 8)), (3, (1, 5)), (2, (2, 12))],  # a micro-batch of 2 splits a group of 3: whole rows
)
def test_shared_prompt_step_equals_the_whole_row_step(small_model_dir, micro_batch_size, first_forward):
    results = []
    for share_prompt in (False, True):
        module = GRPOModule(
            Policy(str(small_model_dir)), lr=0.0, kl_coef=0.1, updates_per_batch=2, max_grad_norm=None,
            micro_batch_size=micro_batch_size, share_prompt=share_prompt,
        )
        module._trainer = type("T", (), {"max_steps": 1})()
        seen = []
        embeddings = module.policy.model.get_input_embeddings()
        embeddings.register_forward_hook(lambda m, inputs, out: seen.append(tuple(inputs[0].shape)))
        grads: dict = {}
        loss = run_one_step(module, grouped_rollouts(module.policy.tokenizer.pad_token_id), grads)
        results.append((loss, grads, seen[0]))
    (plain_loss, plain_grads, plain_first), (shared_loss, shared_grads, shared_first) = results
    assert plain_first[0] == (micro_batch_size or 6) and shared_first == first_forward
    assert shared_loss == pytest.approx(plain_loss, abs=1e-6)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, atol=1e-5 * float(grad.abs().max()), rtol=0, msg=name)
