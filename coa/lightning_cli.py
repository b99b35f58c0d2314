"""LightningCLI set up for coa: any LightningModule/DataModule by class path, OmegaConf interpolation, a list item
by its position (`--trainer.callbacks.0.init_args.group_size=4`), the parsed config in the logger's run config."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jsonargparse
import torch
import yaml
from jsonargparse import ArgumentError, Namespace, get_loader
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback


JSONARGPARSE_DIR = Path(jsonargparse.__file__).parent


class ConfigError(ValueError):
    """A config that cannot run; the message names the key (or the file) and says the fix. `coa` prints it alone."""


# `--trainer.callbacks.0.init_args.group_size=4`: list key, position, key inside the item, value (or the next argument)
LIST_ITEM_ARG = re.compile(
    r"--(?P<list>[A-Za-z_][\w.]*?)\.(?P<index>-?\d+)\.(?P<key>[A-Za-z_][\w.]*)(?:=(?P<value>.*))?", re.S
)


class ConfigToLoggers(SaveConfigCallback):
    """Lightning's config.yaml, and the same parsed config as every logger's hyperparameters (W&B: the run config),
    so settings no module saves (the LoRA rank, the rollout's group size, a sweep's values) sit beside the metrics."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        # Lightning calls this on global rank 0 only: one W&B run config, not one per process
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            logger.log_hyperparams(config)


class CoaCLI(LightningCLI):
    """LightningCLI plus `--torch_threads` (CPU runs are often fastest with 1 thread per process), `--corpus` and
    list items by position."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--torch_threads", type=int | None, default=None,
            help="torch.set_num_threads for this process (None: torch's default)",
        )
        parser.add_argument(
            "--corpus", type=str | None, default=None,
            help="corpus JSONL for configs whose tools search one (they read it as a relative ${...corpus})",
        )

    def parse_arguments(self, parser, args) -> None:
        """Lightning's, plus `--trainer.callbacks.0.init_args.group_size=4`: jsonargparse only reaches the last item of
        a list (`--trainer.callbacks.init_args.X`); a W&B sweep over the rollout's group size needs the first.
        The items are set on the list as every other argument left it, then the whole config is parsed again."""
        argv = sys.argv[1:] if args is None else args
        if not isinstance(argv, list):
            return super().parse_arguments(parser, args)
        rest, items = split_list_item_args(argv)
        if not items:
            return super().parse_arguments(parser, args)
        # --print_config would print (and exit) before the items are set
        first = [a for a in rest if not (isinstance(a, str) and a.startswith("--print_config"))]
        extra = list_item_args(parser.parse_args(first), items)
        try:
            self.config = parser.parse_args(rest + extra)
        except ArgumentError as e:  # jsonargparse names the whole list; say which of the user's values it rejected
            given = " ".join(f"--{name}.{index}.{key}={value}" for name, index, key, value in items)
            raise ConfigError(f"{given}: {innermost_error(str(e))}") from None

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


def split_list_item_args(args: list[str]) -> tuple[list[str], list[tuple[str, int, str, str]]]:
    """The arguments that name a list item by its position, as (list key, position, key in the item, value), apart.

    >>> split_list_item_args(["fit", "--trainer.callbacks.0.init_args.group_size=4", "--model.init_args.lr=0.1"])
    (['fit', '--model.init_args.lr=0.1'], [('trainer.callbacks', 0, 'init_args.group_size', '4')])
    """
    rest, items = [], []
    i = 0
    while i < len(args):
        match = LIST_ITEM_ARG.fullmatch(args[i]) if isinstance(args[i], str) else None
        if match is None:
            rest.append(args[i])
        else:
            value = match["value"]
            if value is None:  # `--key value`
                i += 1
                if i == len(args):
                    raise ConfigError(f"{args[i - 1]} needs a value")
                value = args[i]
            items.append((match["list"], int(match["index"]), match["key"], value))
        i += 1
    return rest, items


def list_item_args(config, items: list[tuple[str, int, str, str]]) -> list[str]:
    """`--LIST=[...]` arguments: each list as parsed in `config`, with the named items' keys set to their values
    (read as jsonargparse reads a command-line value; the second parse checks their types)."""
    prefix = f"{config.subcommand}." if config.get("subcommand") else ""
    lists: dict[str, list] = {}
    for list_key, index, key, value in items:
        if list_key not in lists:
            parsed = config.get(prefix + list_key)
            if not isinstance(parsed, list):
                raise ConfigError(f"--{list_key}.{index}.{key}: {list_key} is not a list here ({parsed!r}); "
                                  f"set it with --{list_key}.{key} instead")
            lists[list_key] = [x.as_dict() if isinstance(x, Namespace) else x for x in parsed]
        items_ = lists[list_key]
        if not -len(items_) <= index < len(items_):
            raise ConfigError(f"--{list_key}.{index}.{key}: {list_key} has {len(items_)} items; "
                              f"name one by its position, 0..{len(items_) - 1}")
        item = items_[index]
        *path, last = key.split(".")
        for part in path:
            if not isinstance(item.get(part), dict):
                item[part] = {}
            item = item[part]
        item[last] = get_loader("yaml")(value)
    return [f"--{k}={json.dumps(v, default=str)}" for k, v in lists.items()]


def innermost_error(message: str) -> str:
    """The item's own complaint in a jsonargparse error about a list ("Problem with given class_path 'X': Option 'y'
    is not accepted"), without the union dump around it; the whole message where it has none."""
    lines = message.splitlines()
    starts = [i for i, line in enumerate(lines) if "Problem with given class_path" in line]
    if not starts:
        return message
    head = lines[starts[-1]]
    indent = len(head) - len(head.lstrip())
    why = []
    for line in lines[starts[-1] + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        why.append(line.strip())
    return " ".join([head.strip().lstrip("- "), *filter(None, why)])


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
            save_config_callback=ConfigToLoggers,
            save_config_kwargs={"overwrite": True},
            args=args,
            run=run,
        )
    except ArgumentError as e:
        where = ", ".join(config_files(argv)) or "the command line"
        raise ConfigError(f"bad config in {where}: {e}") from None
