"""Candidate default models: BC training speed against accuracy on expert demos.

Each candidate trains BC (the study's settings: 50 demos plus 10 validation episodes outside
the budget, lr 1e-3, batch 32, validation every 50 updates, patience 10) on the same demos
and seeds; one JSON line per run (decisions/s of the training loop, validation accuracy,
test success on 100 held-out episodes) goes to ``results.jsonl`` beside this file.

    OMP_NUM_THREADS=1 python docs/benchmark/default-model/exp.py ENV SEED [CANDIDATE ...]
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from agents.model import ModelConfig
from learners.data import collect_demos
from learners.imitation import BCConfig, train_bc

#: "default" is the default model these candidates were measured against (2 layers, the last
#: 4 observations in the state), pinned so that the file keeps meaning it.
CANDIDATES = {
    "default": ModelConfig(n_layers=2, history_len=4),
    "h2": ModelConfig(n_layers=2, history_len=2),
    "h0": ModelConfig(n_layers=2, history_len=0),
    "1layer": ModelConfig(n_layers=1, history_len=4),
    "1layer-h2": ModelConfig(n_layers=1, history_len=2),
    "1layer-h0": ModelConfig(n_layers=1, history_len=0),
    "d32": ModelConfig(d_model=32, ff_dim=64, n_layers=2, history_len=4),
}
HERE = Path(__file__).parent


def main(env_id: str, seed: int, names: list[str]) -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        demos = Path(tmp) / "demos.jsonl"
        collect_demos(env_id, 60, demos, progress=False, seed=100_000)
        for name in names or list(CANDIDATES):
            config = BCConfig(
                env_id=env_id,
                demos=str(demos),
                episodes=50,
                val_episodes=10,
                max_updates=3000,
                seed=seed,
                eval_episodes=100,
                eval_seed=20_000,
                model=CANDIDATES[name],
                out=str(Path(tmp) / name),
                log_dir=str(Path(tmp) / "runs"),
                progress=False,
                device="cpu",
            )
            m = train_bc(config)
            row = {
                "env_id": env_id,
                "seed": seed,
                "candidate": name,
                "model": asdict(config.model),
                "samples_per_second": m["samples_per_second"],
                "updates": m["updates"],
                "hit_cap": m["hit_cap"],
                "val_accuracy": m["val_accuracy"],
                "success": m["eval"]["greedy"]["success_rate"],
                "seconds": m.get("seconds"),
            }
            print(json.dumps(row), flush=True)
            with open(HERE / "results.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
