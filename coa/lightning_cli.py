"""LightningCLI set up for coa: any LightningModule/DataModule by class path, OmegaConf interpolation."""

from __future__ import annotations

import sys

import torch
from jsonargparse import ArgumentError
from lightning.pytorch.cli import LightningCLI


class CoaCLI(LightningCLI):
    """LightningCLI plus `--torch_threads` (CPU runs are often fastest with 1 thread per process) and `--corpus`."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--torch_threads", type=int | None, default=None,
            help="torch.set_num_threads for this process (None: torch's default)",
        )
        parser.add_argument(
            "--corpus", type=str | None, default=None,
            help="corpus JSONL for configs whose tools search one (they read it as a relative ${...corpus})",
        )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("torch_threads"):
            torch.set_num_threads(int(config["torch_threads"]))


def config_files(args: list[str]) -> list[str]:
    """The files given with --config/-c, to name them in errors."""
    files = []
    for i, a in enumerate(args):
        if a in ("--config", "-c") and i + 1 < len(args):
            files.append(args[i + 1])
        elif a.startswith("--config="):
            files.append(a.split("=", 1)[1])
    return files


def run_lightning_cli(args: list[str] | None = None, run: bool = True) -> CoaCLI:
    """Runs `coa fit|validate|test|predict --config X.yaml ...` (or builds the CLI without running).

    A bad config raises ValueError naming the config file(s) and the key jsonargparse rejected.
    """
    import lightning as L

    argv = sys.argv[1:] if args is None else args
    try:
        return CoaCLI(
            L.LightningModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=0,
            parser_kwargs={"parser_mode": "omegaconf+", "exit_on_error": False},
            save_config_kwargs={"overwrite": True},
            args=args,
            run=run,
        )
    except ArgumentError as e:
        where = ", ".join(config_files(argv)) or "the command line"
        raise ValueError(f"bad config in {where}: {e}") from None
