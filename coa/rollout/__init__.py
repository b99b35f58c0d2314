"""Rollouts: generation engines, environments (real, simulated, mixed) and the multi-turn loop. No Lightning here."""

from coa.rollout.batch import RolloutBatch, collate_rollouts
from coa.rollout.environments import (
    ActionRequest, Environment, MixedEnvironment, Observation, RealEnvironment, SimulatedEnvironment,
)
from coa.rollout.runner import BUDGET_MESSAGE, Rollout, RolloutRunner, RolloutSettings, UnavailableTool

__all__ = [
    "ActionRequest", "BUDGET_MESSAGE", "Environment", "MixedEnvironment", "Observation", "RealEnvironment",
    "Rollout", "RolloutBatch", "RolloutRunner", "RolloutSettings", "SimulatedEnvironment", "UnavailableTool",
    "collate_rollouts",
]
