"""Determinism on CPU: the same config and seed give the same bytes, weights and results.

Already tested elsewhere, so not repeated here: demo collection on the toy env
(tests/learners/test_data.py), BC weights on the toy env (tests/learners/test_imitation.py),
IWM weights from a given rollout file (tests/learners/test_world_model.py), seeded
``evaluate`` policies (tests/learners/test_evaluate.py). Here the whole Household pipeline
runs twice in one process (IWM collecting its own rollouts, metrics and ``evaluate_agent``
compared too), and BC runs via the CLI in two processes with different hash seeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from agents import Agent, AgentConfig, ModelConfig
from learners.data import collect_demos
from learners.evaluate import evaluate_agent
from learners.imitation import BCConfig, train_bc
from learners.world_model import IWMConfig, train_iwm
from tests.devices import EXACT_ON_CPU

ROOT = Path(__file__).resolve().parents[2]
HOUSEHOLD = "earlyexp/Household-v0"
SMALL = AgentConfig(ModelConfig(d_model=32, n_layers=1, ff_dim=64))


def _timeless(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` without wall-clock measurements (``*seconds``, ``*per_second``)."""
    return {k: v for k, v in metrics.items() if "second" not in k}


def _pipeline(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Demos -> BC -> IWM (collecting its rollouts) -> evaluation, in ``root`` with relative
    paths (the rollout file's header records the demos path)."""
    root.mkdir()
    monkeypatch.chdir(root)
    collect_demos(HOUSEHOLD, 6, "demos.jsonl", seed=0, progress=False)
    common = dict(
        env_id=HOUSEHOLD,
        demos="demos.jsonl",
        seed=0,
        log_dir="runs",
        progress=False,
        model=SMALL.model,
    )
    bc = train_bc(BCConfig(**common, out="bc", max_updates=40, val_every=5, eval_episodes=0))
    iwm = train_iwm(
        IWMConfig(
            **common,
            out="iwm",
            k="3",
            max_updates=20,
            wm_updates=8,
            val_every=4,
            eval_episodes=0,
        ),
    )
    agent = Agent.load("bc/agent.pt", expected_config=SMALL)
    # The demo instances of the train split: the barely trained agent solves some of them,
    # so the numbers are not all at their floor (the test split gives 0 successes, 50 steps).
    evaluation = evaluate_agent(agent, HOUSEHOLD, split="train", seed=0, episodes=6)
    return {
        "demos": (root / "demos.jsonl").read_bytes(),
        "rollouts": (root / "iwm" / "rollouts.jsonl").read_bytes(),
        "bc": Agent.load("bc/agent.pt").model.state_dict(),
        "iwm": Agent.load("iwm/agent.pt").model.state_dict(),
        "bc_metrics": _timeless(bc),
        "iwm_metrics": _timeless(iwm),
        "evaluation": {name: result.as_dict() for name, result in evaluation.items()},
    }


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str):
    assert a.keys() == b.keys(), what
    for name in a:
        assert torch.equal(a[name], b[name]), f"{what}: {name} differs"


@EXACT_ON_CPU
def test_the_pipeline_twice_in_one_process_is_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _pipeline(tmp_path / "first", monkeypatch)
    second = _pipeline(tmp_path / "second", monkeypatch)

    # The comparisons below are not vacuous: there is data, training moved the weights
    # (differently for BC and IWM), and the evaluation is off its floor.
    assert first["demos"].count(b"\n") == 8 and first["rollouts"].count(b"\n") > 20
    untrained = Agent(SMALL, seed=0).model.state_dict()
    for learner in ("bc", "iwm"):
        moved = [n for n in untrained if not torch.equal(untrained[n], first[learner][n])]
        assert moved, f"{learner} did not change any weight"
    assert any(not torch.equal(first["bc"][n], first["iwm"][n]) for n in untrained)
    assert first["iwm_metrics"]["wm_updates"] == 8 and first["bc_metrics"]["updates"] > 0
    assert any(r["mean_episode_length"] < 50 for r in first["evaluation"].values())

    assert first["demos"] == second["demos"]
    assert first["rollouts"] == second["rollouts"]
    _assert_same_weights(first["bc"], second["bc"], "bc")
    _assert_same_weights(first["iwm"], second["iwm"], "iwm")
    assert first["bc_metrics"] == second["bc_metrics"]
    assert first["iwm_metrics"] == second["iwm_metrics"]
    assert first["evaluation"] == second["evaluation"]


# One interpreter per run: collect, train BC, evaluate on the demo instances (train split).
CLI_RUN = """
import sys
from benchmarks.cli import main

out, env = sys.argv[1], "earlyexp/Household-v0"
assert main(["collect", env, "--episodes", "6", "--out", out + "/demos.jsonl"]) == 0
assert main(["train", env, "--learner", "bc", "--demos", out + "/demos.jsonl", "--out",
             out + "/bc", "--max-updates", "10", "--val-every", "5", "--eval-episodes", "0",
             "--no-progress", "--log-dir", out + "/runs"]) == 0
print("EVAL", end=" ", flush=True)
assert main(["eval", out + "/bc/agent.pt", "--env", env, "--split", "train", "--seed", "0",
             "--episodes", "6", "--json"]) == 0
"""


@EXACT_ON_CPU
def test_bc_via_the_cli_in_two_processes_is_identical(tmp_path: Path) -> None:
    """Different PYTHONHASHSEEDs, the same torch thread count (bitwise equality across
    thread counts is not something torch promises)."""
    runs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"hash{hash_seed}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": hash_seed}
        env["OMP_NUM_THREADS"] = "1"
        runs.append(
            (
                out,
                subprocess.Popen(
                    [sys.executable, "-c", CLI_RUN, str(out)],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    results = []
    for out, process in runs:
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
        evaluation = json.loads(stdout.split("EVAL ", 1)[1])
        checkpoint = torch.load(out / "bc" / "agent.pt", weights_only=True)
        metrics = json.loads((out / "bc" / "metrics.json").read_text())
        results.append((out, evaluation, checkpoint, metrics))
    (out_a, eval_a, ckpt_a, metrics_a), (out_b, eval_b, ckpt_b, metrics_b) = results

    assert (out_a / "demos.jsonl").read_bytes() == (out_b / "demos.jsonl").read_bytes()
    _assert_same_weights(ckpt_a["state_dict"], ckpt_b["state_dict"], "bc across processes")
    assert _timeless(metrics_a) == _timeless(metrics_b)
    for name in ("greedy", "sampled", "random", "expert"):
        assert eval_a[name] == eval_b[name], name
    assert eval_a["episodes"] == 6 and eval_a["expert"]["success_rate"] == 1.0
