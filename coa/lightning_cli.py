"""LightningCLI set up for coa: any LightningModule/DataModule by class path, OmegaConf interpolation."""

from __future__ import annotations

import sys
from pathlib import Path

import jsonargparse
import torch
from jsonargparse import ArgumentError
from lightning.pytorch.cli import LightningCLI


JSONARGPARSE_DIR = Path(jsonargparse.__file__).parent


class ConfigError(ValueError):
    """A config that cannot run; the message names the key (or the file) and says the fix. `coa` prints it alone."""


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

    def instantiate_classes(self) -> None:
        """Lightning's, but a constructor's ValueError surfaces as itself, not inside jsonargparse's union dump."""
        try:
            super().instantiate_classes()
        except ValueError as err:
            cause = constructor_error(err)
            if cause is err:
                raise
            if isinstance(cause, ValueError):
                raise ConfigError(str(cause)) from cause
            raise cause from None


def constructor_error(err: BaseException) -> BaseException:
    """The error a class raised while jsonargparse instantiated it, unwrapped from the errors jsonargparse raised
    around it ("Does not validate against any of the Union subtypes ...", which chain the original as __cause__)."""
    while err.__cause__ is not None and _raised_in_jsonargparse(err):
        err = err.__cause__
    return err


def _raised_in_jsonargparse(err: BaseException) -> bool:
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).is_relative_to(JSONARGPARSE_DIR)


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

    A bad config raises ConfigError (a ValueError) naming the config file(s) and the key jsonargparse rejected;
    a ValueError from a class's constructor (e.g. Policy's) is raised as a ConfigError with its own message.
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
        raise ConfigError(f"bad config in {where}: {e}") from None
