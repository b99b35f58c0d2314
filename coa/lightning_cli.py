"""LightningCLI set up for coa: any LightningModule/DataModule by class path, OmegaConf interpolation."""

from __future__ import annotations

import torch
from lightning.pytorch.cli import LightningCLI


class CoaCLI(LightningCLI):
    """LightningCLI plus a `--torch_threads` setting (CPU runs are often fastest with 1 thread per process)."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--torch_threads", type=int | None, default=None,
            help="torch.set_num_threads for this process (None: torch's default)",
        )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("torch_threads"):
            torch.set_num_threads(int(config["torch_threads"]))


def run_lightning_cli(args: list[str], run: bool = True) -> CoaCLI:
    """Runs `coa fit|validate|test|predict --config X.yaml ...` (or builds the CLI without running)."""
    import lightning as L

    return CoaCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        parser_kwargs={"parser_mode": "omegaconf+"},
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )
