"""PolicyStage checkpoints: a LoRA run saves and restores its adapters alone and resumes to the same losses."""

import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from coa.lightning_cli import run_lightning_cli

LORA = "{r: 4, alpha: 8}"  # default targets q, k, v, o
STEPS = 8


@pytest.fixture(scope="session")
def fit_args(sft_fit_args):
    def build(world: Path, model_dir: Path, root: Path, lora: str | None = LORA) -> list[str]:
        args = sft_fit_args(world, model_dir, root, STEPS) + ["--trainer.logger=false"]
        return args + ([f"--model.init_args.policy.init_args.lora={lora}"] if lora else [])

    return build


def step_checkpoint(root: Path, step: int) -> Path:
    return next((root / "checkpoints").glob(f"*step={step}.ckpt"))


def resume_root(tmp_path: Path, checkpoint: Path) -> Path:
    """A run directory whose `last` checkpoint is `checkpoint`: as if a run had died right after writing it."""
    root = tmp_path / "resumed"
    (root / "checkpoints").mkdir(parents=True)
    shutil.copy(checkpoint, root / "checkpoints" / "last.ckpt")
    return root


@pytest.fixture(scope="module")
def lora_run(small_world, small_model_dir, tmp_path_factory, fit_args) -> tuple[Path, float, dict[str, torch.Tensor]]:
    """An uninterrupted 8-step LoRA run (checkpoints at steps 4 and 8): its root, last loss and full state_dict."""
    root = tmp_path_factory.mktemp("lora_run")
    cli = run_lightning_cli(fit_args(small_world, small_model_dir, root))
    assert cli.trainer.global_step == STEPS
    return root, float(cli.trainer.callback_metrics["train/loss"]), cli.model.state_dict()


def test_lora_checkpoint_holds_the_adapters_and_their_optimizer_state_only(lora_run, tmp_path):
    root, _, full_state = lora_run
    path = step_checkpoint(root, 4)
    checkpoint = torch.load(path, weights_only=False)
    names = list(checkpoint["state_dict"])
    assert names and all("lora_" in n for n in names)
    assert len(names) == 2 * 4 * 2  # layers x (q, k, v, o) x (A, B)
    assert len(checkpoint["optimizer_states"][0]["state"]) == len(names)  # AdamW moments of those alone
    assert checkpoint["loops"] and checkpoint["lr_schedulers"]  # Lightning's own state, as ever
    # the same checkpoint as it was before: every weight of the model, frozen base included
    torch.save({**checkpoint, "state_dict": full_state}, tmp_path / "full.ckpt")
    assert path.stat().st_size < (tmp_path / "full.ckpt").stat().st_size / 3


def test_lora_run_resumed_from_a_mid_checkpoint_ends_with_the_same_loss_and_weights(
    lora_run, small_world, small_model_dir, tmp_path, fit_args
):
    root, reference_loss, _ = lora_run
    resumed_root = resume_root(tmp_path, step_checkpoint(root, 4))
    resumed = run_lightning_cli(fit_args(small_world, small_model_dir, resumed_root) + ["--ckpt_path", "last"])
    assert resumed.trainer.global_step == STEPS
    assert float(resumed.trainer.callback_metrics["train/loss"]) == pytest.approx(reference_loss, abs=1e-6)
    reference_w = AutoModelForCausalLM.from_pretrained(root / "model").state_dict()
    resumed_w = AutoModelForCausalLM.from_pretrained(resumed_root / "model").state_dict()
    assert reference_w.keys() == resumed_w.keys()
    assert all(torch.allclose(v, resumed_w[k], atol=1e-6) for k, v in reference_w.items())
    untrained = AutoModelForCausalLM.from_pretrained(small_model_dir).state_dict()
    assert not torch.equal(resumed_w["model.layers.0.self_attn.q_proj.weight"],
                           untrained["model.layers.0.self_attn.q_proj.weight"])  # the adapter was merged in


def test_full_fine_tuning_cannot_resume_a_lora_checkpoint(lora_run, small_world, small_model_dir, tmp_path, fit_args):
    root, _, _ = lora_run
    resumed_root = resume_root(tmp_path, step_checkpoint(root, 4))
    lacks = r"last.ckpt lacks \d+ of the \d+ weights this policy trains \(policy.lora=None"
    with pytest.raises(ValueError, match=lacks):
        run_lightning_cli(fit_args(small_world, small_model_dir, resumed_root, lora=None) + ["--ckpt_path", "last"])


ADDED_TOKENS = "--model.init_args.policy.init_args.add_action_tokens=true"  # the data's follows by interpolation


@pytest.fixture(scope="module")
def added_tokens_run(small_world, multi_token_model_dir, tmp_path_factory, fit_args) -> tuple[Path, float]:
    """An uninterrupted 8-step LoRA run that adds the (multi-token) tags as tokens: its root and last loss."""
    root = tmp_path_factory.mktemp("added_tokens_run")
    cli = run_lightning_cli(fit_args(small_world, multi_token_model_dir, root) + [ADDED_TOKENS])
    assert len(cli.model.policy.new_token_pieces) == 6  # every tag was several tokens
    return root, float(cli.trainer.callback_metrics["train/loss"])


def test_added_tokens_checkpoint_holds_their_rows_not_the_embedding(added_tokens_run):
    root, _ = added_tokens_run
    state = torch.load(step_checkpoint(root, 4), weights_only=False)["state_dict"]
    rows = [n for n in state if "lora_" not in n]
    assert rows == ["policy.model.base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta.default"]
    assert state[rows[0]].shape == (6, 32)  # the six tags x hidden size; the tied head shares them


def test_added_tokens_lora_run_resumed_ends_with_the_same_loss_and_tag_rows(
    added_tokens_run, small_world, multi_token_model_dir, tmp_path, fit_args
):
    root, reference_loss = added_tokens_run
    resumed_root = resume_root(tmp_path, step_checkpoint(root, 4))
    resumed = run_lightning_cli(
        fit_args(small_world, multi_token_model_dir, resumed_root) + [ADDED_TOKENS, "--ckpt_path", "last"]
    )
    assert float(resumed.trainer.callback_metrics["train/loss"]) == pytest.approx(reference_loss, abs=1e-6)
    reference_w = AutoModelForCausalLM.from_pretrained(root / "model").state_dict()
    resumed_w = AutoModelForCausalLM.from_pretrained(resumed_root / "model").state_dict()
    assert all(torch.allclose(v, resumed_w[k], atol=1e-6) for k, v in reference_w.items())
    tags = resumed.model.policy.new_token_pieces
    start = resumed.model.policy.model.get_input_embeddings().token_adapter.base_layer.weight
    exported = resumed_w["model.embed_tokens.weight"]
    assert exported.shape[0] == start.shape[0] and not torch.allclose(exported[list(tags)], start[list(tags)])


def test_data_without_the_policys_added_tokens_fails_naming_both_settings(small_world, multi_token_model_dir, tmp_path, fit_args):
    args = fit_args(small_world, multi_token_model_dir, tmp_path) + [ADDED_TOKENS]
    with pytest.raises(ValueError, match="policy.add_action_tokens and data.add_action_tokens differ"):
        run_lightning_cli(args + ["--data.init_args.add_action_tokens=false"])
