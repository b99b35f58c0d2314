"""`coa export`: a LoRA run's checkpoint (adapters alone) -> the same model directory the run exported at its end."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from coa.cli import main

STEPS = 4  # the run checkpoints every 4 steps: its last checkpoint is the state it exported


@pytest.fixture(scope="module")
def lora_run(small_world, small_model_dir, tmp_path_factory, sft_fit_args) -> tuple[list[str], Path]:
    """The arguments of a 4-step LoRA SFT2 run (without `fit`) and its root, after running it."""
    root = tmp_path_factory.mktemp("lora_run")
    args = sft_fit_args(small_world, small_model_dir, root, STEPS)[1:] + [
        "--trainer.logger=false", "--model.init_args.policy.init_args.lora={r: 4, alpha: 8}",
    ]
    main(["fit", *args])
    return args, root


def test_export_from_a_lora_checkpoint_equals_the_runs_own_export(lora_run, small_model_dir, tmp_path, capsys):
    from peft import PeftModel

    args, root = lora_run
    checkpoint = root / "checkpoints" / "last.ckpt"
    assert all("lora_" in name for name in torch.load(checkpoint, weights_only=False)["state_dict"])
    main(["export", *args, "--ckpt_path", str(checkpoint), "--out", str(tmp_path / "model")])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == {"out": str(tmp_path / "model"), "adapter": str(tmp_path / "model" / "adapter")}
    ours = AutoModelForCausalLM.from_pretrained(tmp_path / "model").state_dict()
    runs = AutoModelForCausalLM.from_pretrained(root / "model").state_dict()
    assert ours.keys() == runs.keys() and all(torch.equal(v, runs[k]) for k, v in ours.items())
    assert (tmp_path / "model" / "coa_agent.json").read_text() == (root / "model" / "coa_agent.json").read_text()
    name = "model.layers.0.self_attn.q_proj.weight"
    untrained = AutoModelForCausalLM.from_pretrained(small_model_dir)
    assert (untrained.state_dict()[name] - runs[name]).abs().max() > 1e-4  # the run's adapter was trained ...
    adapted = PeftModel.from_pretrained(untrained, tmp_path / "model" / "adapter").merge_and_unload().state_dict()
    torch.testing.assert_close(adapted[name], runs[name], atol=1e-6, rtol=0)  # ... and is the one in adapter/


def test_last_names_the_runs_last_checkpoint(lora_run, tmp_path, capsys):
    args, root = lora_run
    main(["export", *args, "--ckpt_path", "last", "--out", str(tmp_path / "model")])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["out"] == str(tmp_path / "model")
    ours = AutoModelForCausalLM.from_pretrained(tmp_path / "model").state_dict()
    runs = AutoModelForCausalLM.from_pretrained(root / "model").state_dict()
    assert all(torch.equal(v, runs[k]) for k, v in ours.items())


def test_export_with_other_lora_settings_exits_naming_them(lora_run, tmp_path):
    args, root = lora_run
    # q_proj alone: the k, v, o adapters (2 layers x 3 x A, B = 12) would be dropped from the export
    other = [*args, "--model.init_args.policy.init_args.lora={r: 4, alpha: 8, target_modules: [q_proj]}"]
    with pytest.raises(SystemExit, match=r"coa export: checkpoint .*last.ckpt holds 12 weights this policy lacks"):
        main(["export", *other, "--ckpt_path", str(root / "checkpoints" / "last.ckpt"), "--out", str(tmp_path / "m")])


def test_export_of_a_missing_checkpoint_exits_naming_it(tmp_path):
    with pytest.raises(SystemExit, match=r"--ckpt_path .*nope.ckpt is no file"):
        main(["export", "--config", "configs/sft2.yaml", "--ckpt_path", str(tmp_path / "nope.ckpt")])
