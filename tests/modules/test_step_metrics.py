import csv

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from coa.modules.step_metrics import log_step_metrics


class Counting(L.LightningModule):
    """Logs the step number through `self.log` and through `log_step_metrics`, side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch, batch_idx: int):
        step = float(self.trainer.global_step)
        self.log("native/step", step)
        log_step_metrics(self, {"direct/step": step, "direct/calls": 1.0}, summed=["direct/calls"],
                         prog_bar=["direct/step"])
        return (self.weight - 1.0) ** 2

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.zeros(6, 1), batch_size=1)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(tmp_path, **trainer_args) -> tuple[L.Trainer, list[dict]]:
    trainer = L.Trainer(
        max_steps=6, logger=CSVLogger(tmp_path), enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu", **trainer_args,
    )
    trainer.fit(Counting())
    with open(next(tmp_path.glob("lightning_logs/version_*/metrics.csv"))) as f:
        return trainer, list(csv.DictReader(f))


def rows_with(rows: list[dict], name: str) -> dict[int, float]:
    return {int(r["step"]): float(r[name]) for r in rows if r.get(name)}


def test_metrics_land_at_the_steps_and_values_self_log_uses(tmp_path):
    _, rows = fit(tmp_path, log_every_n_steps=2, enable_checkpointing=False)
    native, direct = rows_with(rows, "native/step"), rows_with(rows, "direct/step")
    assert native == {1: 1.0, 3: 3.0, 5: 5.0}  # every 2nd step, as log_every_n_steps=2 says
    assert direct == native
    assert rows_with(rows, "direct/calls") == {1: 1.0, 3: 1.0, 5: 1.0}


def test_a_checkpoint_can_monitor_a_directly_logged_metric(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="direct/calls", mode="max", every_n_train_steps=3)
    trainer, _ = fit(tmp_path, log_every_n_steps=1, callbacks=[checkpoint])
    assert float(trainer.callback_metrics["direct/calls"]) == 1.0
    assert float(trainer.callback_metrics["direct/step"]) == 5.0  # the progress-bar value is there too
    assert checkpoint.best_model_path.endswith(".ckpt")
