"""Run naming and TensorBoard logging, the same for every learner (CleanRL's conventions)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from agents.files import atomic_write


def run_name(env_id: str, learner: str, seed: int) -> str:
    """``{env}__{learner}__{seed}__{time}``, with the env id's slashes made path-safe."""
    return f"{env_id.replace('/', '_').replace(':', '_')}__{learner}__{seed}__{int(time.time())}"


def open_writer(log_dir: str | os.PathLike, name: str, config: dict[str, Any]) -> SummaryWriter:
    """A TensorBoard writer under ``log_dir/name`` with the run's config as a text table."""
    writer = SummaryWriter(str(Path(log_dir) / name))
    table = "\n".join(f"|{key}|{value}|" for key, value in config.items())
    writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")
    return writer


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON atomically."""
    with atomic_write(path) as f:
        json.dump(payload, f, indent=2)
        f.write("\n")


def log_evaluation(writer: SummaryWriter, results: dict[str, Any], step: int) -> None:
    """Log an ``evaluate_agent`` result (greedy, sampled, random) under ``eval/*`` at ``step``."""
    greedy = results["greedy"]
    writer.add_scalar("eval/success_rate", greedy.success_rate, step)
    writer.add_scalar("eval/success_rate_sampled", results["sampled"].success_rate, step)
    writer.add_scalar("eval/random_success_rate", results["random"].success_rate, step)
    writer.add_scalar("eval/valid_action_rate", greedy.valid_action_rate, step)
    writer.add_scalar("eval/mean_episode_length", greedy.mean_episode_length, step)
