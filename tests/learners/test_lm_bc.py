"""Behaviour cloning of the language-model agent (``earlyexp train --learner bc --agent lm``):
supervised fine-tuning on the expert's command tokens beats the random policy, ranking and
generating; the run is deterministic, reproducible from its command, saves a checkpoint
that acts as evaluated, and the learners that do not train the LM agent refuse it."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from agents import LMAgent, ModelConfig, load_agent, resolve_device
from benchmarks.cli import build_parser, main
from learners import get_learner
from learners.config import values_from_args
from learners.data import collect_demos
from learners.evaluate import EVAL_SEED, AgentPolicy, evaluate
from learners.imitation import BCConfig, DAggerConfig, train_bc
from learners.lifecycle import new_agent
from tests.devices import EXACT_ON_CPU, NEEDS_GPU
from tests.learners.lm_corridor import CORRIDOR, REQUIRES_LM, TINY

pytestmark = REQUIRES_LM


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lm") / "corridor.jsonl"
    collect_demos(CORRIDOR, 16, path, progress=False)
    return path


def _config(demos: Path, out: Path, **values) -> BCConfig:
    common = dict(
        env_id=CORRIDOR,
        demos=str(demos),
        out=str(out),
        max_updates=150,
        batch_size=16,
        learning_rate=3e-3,
        val_every=25,
        patience=3,
        eval_episodes=20,
        log_dir=str(out.parent / "runs"),
        progress=False,
        model=TINY,
    )
    return BCConfig(**{**common, **values})


#: ``earlyexp train`` of a generating tiny LM on the corridor (TINY, acting generate).
WORDS = [
    *("train", f"tests.envs.toy_env:{CORRIDOR}", "--learner", "bc"),
    *("--max-updates", "150", "--batch-size", "16", "--learning-rate", "0.003"),
    *("--val-every", "25", "--patience", "3", "--eval-episodes", "20", "--no-progress"),
    *("--agent", "lm", "--lm-acting", "generate", "--lm-vocab-size", "300"),
    *("--lm-d-model", "64", "--lm-ff-dim", "128", "--lm-corpus-episodes", "8"),
]


@pytest.fixture(scope="module")
def trained(demos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path, str]:
    """The command, its run directory and what it printed."""
    root = tmp_path_factory.mktemp("lm-run")
    words = [*WORDS, "--demos", str(demos), "--out", str(root / "bc")]
    words += ["--log-dir", str(root / "runs")]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(words) == 0
    return words, root / "bc", printed.getvalue()


def test_bc_fine_tunes_the_tiny_lm_past_the_random_policy(trained) -> None:
    _, out, printed = trained
    metrics = json.loads((out / "metrics.json").read_text())
    generated, ranked = metrics["eval"]["greedy"], metrics["eval"]["ranked"]
    chance = metrics["eval"]["random"]
    assert "ranked" in printed and "random" in printed  # the CLI's table has every policy
    # The test split's doors are at odd cells, the demos' at even ones. Seen here: ranking
    # 1.00 in 4.9 steps, writing the command 0.90 in 7.2 (valid-action rate 0.67: at a door
    # in a corridor's last cell it wrote "go right", then "open dor", and looped), the random
    # policy 0.55 in 18.8. On 2026-11-30 the same run wrote 0.85 in 8.4 at a valid-action
    # rate of 0.57: the machine's CPU had changed (AVX-512 now; the same packages, and
    # transformers 5.18, tokenizers 0.23.2 or numpy 2.4.5 give the same). An untrained
    # model writes almost no admissible command.
    assert ranked["success_rate"] >= max(0.9, chance["success_rate"] + 0.3), metrics["eval"]
    assert generated["success_rate"] >= max(0.75, chance["success_rate"] + 0.2), metrics["eval"]
    for result in (ranked, generated):
        assert result["mean_episode_length"] < chance["mean_episode_length"] / 2
    assert generated["valid_action_rate"] >= 0.5, generated  # it writes admissible commands
    assert metrics["val_accuracy"] >= 0.9
    assert metrics["device"].split(":")[0] == resolve_device("auto").type  # --device auto


def test_the_checkpoint_acts_as_evaluated_and_the_command_rebuilds_the_run(trained) -> None:
    words, out, _ = trained
    metrics = json.loads((out / "metrics.json").read_text())
    agent = load_agent(out / "agent.pt")
    assert isinstance(agent, LMAgent) and agent.config == replace(TINY, acting="generate")
    assert agent.meta["learner"] == "bc" and agent.meta["val_accuracy"] == metrics["val_accuracy"]
    for policy, name in ((AgentPolicy(agent, True, EVAL_SEED), "ranked"),):
        result = evaluate(policy, CORRIDOR, episodes=20).as_dict()
        assert result == metrics["eval"][name]
    learner = get_learner("bc")
    config = learner.make_config(
        **{**values_from_args(BCConfig, build_parser().parse_args(words)), "env_id": CORRIDOR}
    )
    command = shlex.split(learner.command(config))
    assert command[command.index("--agent") : command.index("--agent") + 2] == ["--agent", "lm"]
    args = build_parser().parse_args(command[1:])
    assert learner.make_config(**{**values_from_args(BCConfig, args), "env_id": CORRIDOR}) == config


@EXACT_ON_CPU
def test_bc_on_the_lm_is_deterministic(demos: Path, tmp_path: Path) -> None:
    runs = [
        train_bc(_config(demos, tmp_path / name, max_updates=10, val_every=5, eval_episodes=0))
        for name in ("a", "b")
    ]
    assert runs[0]["val_nll"] == runs[1]["val_nll"]
    first, second = (LMAgent.load(tmp_path / name / "agent.pt") for name in ("a", "b"))
    for (name, x), (_, y) in zip(
        first.model.state_dict().items(), second.model.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name


@NEEDS_GPU
def test_bc_of_the_lm_on_a_gpu_learns_the_corridor_and_saves_for_the_cpu(
    demos: Path, tmp_path: Path
) -> None:
    metrics = train_bc(_config(demos, tmp_path / "gpu", device="cuda"))  # bf16 autocast
    agent = load_agent(tmp_path / "gpu" / "agent.pt")
    assert metrics["device"].startswith("cuda") and agent.device == torch.device("cpu")
    chance = metrics["eval"]["random"]["success_rate"]
    ranked = evaluate(AgentPolicy(agent, True, EVAL_SEED), CORRIDOR, episodes=20)
    assert ranked.success_rate >= max(0.9, chance + 0.3), metrics["eval"]


def test_lm_flags_need_agent_lm_and_model_flags_refuse_it() -> None:
    def parse(*flags: str) -> dict:
        args = build_parser().parse_args(["train", CORRIDOR, "--learner", "bc", *flags])
        return values_from_args(BCConfig, args)

    with pytest.raises(ValueError, match="--lm-model: flags of the language-model agent; add"):
        parse("--lm-model", "tiny")
    with pytest.raises(ValueError, match="--d-model: flags of the policy model"):
        parse("--agent", "lm", "--d-model", "32")
    plain = parse("--d-model", "32")
    assert plain["model"] == ModelConfig(d_model=32)
    # JSON (a results row, a profile) comes back as the right config
    assert BCConfig(model=dataclasses.asdict(TINY)).model == TINY
    assert BCConfig(model={"d_model": 32}).model == ModelConfig(d_model=32)
    # The default agent's config has no new field: sweep hashes of earlier runs still match.
    assert "agent" not in dataclasses.asdict(BCConfig()) and BCConfig().model is None


def test_learners_that_do_not_train_the_lm_refuse_it(tmp_path: Path) -> None:
    config = DAggerConfig(model=TINY, out=str(tmp_path / "dagger"), learner="dagger")
    with pytest.raises(
        ValueError, match="learner 'dagger' does not train the language-model agent"
    ):
        new_agent(config)
