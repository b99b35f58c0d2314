"""`coa export`: a stage's Lightning checkpoint -> the model directory the stage writes when it ends.

  coa export --config configs/sft2.yaml --ckpt_path runs/sft2/checkpoints/last.ckpt [--out DIR] [--key=value ...]
  coa export --config configs/sft2.yaml --ckpt_path last        # the last.ckpt of the config's checkpoint folder

The config (and its --key=value overrides) must be the run's: a LoRA run's checkpoint holds the adapters
alone, put back onto the base at policy.model_name_or_path. The export is a plain Hugging Face directory
(LoRA merged in; transformers and vLLM load it), with the adapter alone in DIR/adapter.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coa export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", "-c", required=True, help="the stage's YAML, as the run was started with")
    p.add_argument("--ckpt_path", required=True, help="a checkpoint the run wrote, or `last` (the run's last.ckpt)")
    p.add_argument("--out", default=None, help="the model directory to write (default: the config's export_dir)")
    return p


def main(argv: list[str]) -> None:
    args, overrides = parser().parse_known_args(argv)
    from coa.lightning_cli import ConfigError, run_lightning_cli
    from coa.modules.stage import PolicyStage, export_policy, load_stage_checkpoint, stage_card
    from coa.policy import ADAPTER_DIR

    if args.ckpt_path != "last" and not Path(args.ckpt_path).is_file():
        sys.exit(f"coa export: --ckpt_path {args.ckpt_path} is no file")
    try:  # run=False: the module and datamodule are built, nothing trains; no logger is started
        cli = run_lightning_cli(["--config", args.config, *overrides, "--trainer.logger=false"], run=False)
    except ConfigError as e:
        sys.exit(f"coa export: {e}")
    checkpoint = Path(args.ckpt_path)
    if args.ckpt_path == "last":  # as `coa fit --ckpt_path last` finds it: in the ModelCheckpoint's folder
        folder = getattr(cli.trainer.checkpoint_callback, "dirpath", None)
        checkpoint = Path(folder or ".", "last.ckpt")
        if folder is None or not checkpoint.is_file():
            sys.exit(f"coa export: --ckpt_path last: no {checkpoint} (the config's ModelCheckpoint dirpath)")
    module = cli.model
    if not isinstance(module, PolicyStage):
        sys.exit(f"coa export: {args.config}: model {type(module).__name__} trains no policy (no PolicyStage)")
    out = args.out or module.hparams.get("export_dir")
    if not out:
        sys.exit(f"coa export: {args.config} sets no model.init_args.export_dir; pass --out DIR")
    try:
        load_stage_checkpoint(module, checkpoint)
    except ValueError as e:  # a checkpoint of other LoRA settings: the message names them
        sys.exit(f"coa export: {e}")
    export_policy(module.policy, Path(out), stage_card(module.policy, cli.datamodule))
    adapter = Path(out) / ADAPTER_DIR
    print(json.dumps({"out": str(out), "adapter": str(adapter) if adapter.is_dir() else None}))
