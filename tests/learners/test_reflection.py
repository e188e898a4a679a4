"""Self-reflection (sr): the teacher picks the expert's command from the evidence on a toy
env where only the outcome says which command is right, its verdicts, the distillation loss,
the config, and a run through the CLI.

Importing this module registers ``toy/Boxes-v0``, as a user's own env would."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from agents import MASKED_LOGIT, Agent, AgentConfig, ModelConfig, collate
from benchmarks.cli import build_parser, main
from envs import TextEnv, register
from learners import get_learner
from learners.config import values_from_args
from learners.data import collect_demos, load_dataset
from learners.reflection import ReflectedDecision, SRConfig, distill_loss, reflect, train_sr
from learners.rollouts import collect_rollouts
from learners.world_model import indexed_episodes, load_transitions, outcome_decisions

HOUSEHOLD = "earlyexp/Household-v0"
SMALL = ModelConfig(d_model=32, n_layers=1, ff_dim=64, lookahead=True)
#: The toy's model: its few words need no large vocabulary, and the updates cost less.
TOY = ModelConfig(vocab_size=1024, d_model=32, n_layers=1, ff_dim=64, lookahead=True)
OBJECTS = {
    "train": ["apple", "key", "book", "mug", "pen", "cup", "bread", "lamp"],
    "test": ["fork", "egg", "soap", "vase"],
}


@dataclass
class Boxes:
    contents: list[str]
    wanted: str
    opened: list[bool]


class BoxesEnv(TextEnv):
    """Four closed boxes that look alike, one holding the goal's object: only the outcome of
    opening a box ("Inside it there is a key.") says which one is right. Held-out objects on
    the test split."""

    def _generate(self) -> tuple[str, str]:
        pool = OBJECTS[self.split]
        contents = [pool[int(i)] for i in self.np_random.permutation(len(pool))[:4]]
        wanted = contents[int(self.np_random.integers(4))]
        self.world = Boxes(contents, wanted, [False] * 4)
        return f"find the {wanted}.", self._describe()

    def _describe(self) -> str:
        return "You see box 1, box 2, box 3 and box 4."

    def admissible_actions(self) -> list[str]:
        closed = [f"open box {i + 1}" for i, is_open in enumerate(self.world.opened) if not is_open]
        return [*closed, "look"]

    def _execute(self, command: str) -> str:
        if command == "look":
            return self._describe()
        i = int(command.split()[-1]) - 1
        self.world.opened[i] = True
        return f"You open box {i + 1}. Inside it there is a {self.world.contents[i]}."

    def checklist(self) -> dict[str, bool]:
        w = self.world
        found = any(o and c == w.wanted for o, c in zip(w.opened, w.contents, strict=True))
        return {f"the {w.wanted} is found": found}

    def expert_action(self) -> str:
        return f"open box {self.world.contents.index(self.world.wanted) + 1}"


register(
    "toy/Boxes-v0", "tests.learners.test_reflection:BoxesEnv", max_episode_steps=6, family="toy"
)


@pytest.fixture(scope="module")
def boxes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("boxes")
    demos, rollouts = root / "demos.jsonl", root / "rollouts.jsonl"
    dataset = collect_demos("toy/Boxes-v0", 80, demos, progress=False)
    collect_rollouts(dataset, demos, rollouts, k=None, progress=False)  # every other command
    return demos, rollouts


def test_the_teacher_picks_the_expert_from_the_evidence(boxes, tmp_path: Path) -> None:
    demos, rollouts = boxes
    metrics = train_sr(
        SRConfig(
            env_id="toy/Boxes-v0",
            demos=str(demos),
            rollout_file=str(rollouts),
            out=str(tmp_path / "sr"),
            max_updates=220,
            wm_updates=200,
            wm_learning_rate=3e-3,
            val_every=20,
            patience=20,
            eval_episodes=0,
            log_dir=str(tmp_path / "runs"),
            progress=False,
            model=TOY,
        )
    )
    # With the outcomes of the tried commands (the evidence) the teacher finds the box;
    # chance is 1/5 (four boxes and "look"). Seeds 0-3 gave 0.62-0.94 on 16 states.
    assert metrics["teacher_val_accuracy"] >= 0.55, metrics
    assert metrics["wm_val_f1"] > metrics["wm_copy_f1"] + 0.2, metrics  # it learned the world
    # The policy that has to predict the outcome cannot know where the object is: near chance
    # (seeds 0-3: 0.06-0.25).
    assert metrics["val_accuracy"] <= 0.4, metrics


def test_verdicts_are_distributions_over_the_tried_commands(boxes, tmp_path: Path) -> None:
    demos, rollouts = boxes
    dataset = load_dataset(demos)
    agent = Agent(AgentConfig(SMALL), seed=0)
    config = SRConfig(demos=str(demos), rollout_file=str(rollouts), out=str(tmp_path))
    train = dataset.episodes[:10]
    wm_train, _, positions = load_transitions(config, dataset, agent, train)
    evidence = list(
        outcome_decisions(agent, indexed_episodes(dataset, train), wm_train, positions, "delta")
    )
    # Pretend one command was not tried: it gets no share of the verdict.
    evidence[0].observed[1] = 0
    verdicts = list(reflect(agent, evidence, temperature=2.0))
    assert len(verdicts) == len(evidence) == 10
    for verdict in verdicts:
        log_probs = np.asarray(verdict.teacher, dtype=np.int32).view(np.float32)
        tried = np.asarray(verdict.tried, dtype=bool)
        assert np.exp(log_probs[tried]).sum() == pytest.approx(1.0, abs=1e-5)
        assert (log_probs[~tried] == 0).all()
    assert verdicts[0].tried[1] == 0 and sum(verdicts[0].tried) == 4

    # The distillation term vanishes when the policy already agrees with the teacher.
    loss = distill_loss(config)
    own = list(reflect_student(agent, verdicts))
    _, scalars = loss(agent, own)
    assert scalars["losses/sr_kl"] == pytest.approx(0.0, abs=1e-5)
    _, scalars = loss(agent, verdicts)  # the teacher reads evidence the policy has to predict
    assert scalars["losses/sr_kl"] > 0


@torch.no_grad()
def reflect_student(agent: Agent, verdicts: list[ReflectedDecision]):
    """Verdicts replaced by the policy's own distribution (predicted outcomes) over the tried
    commands."""
    agent.model.eval()
    batch = collate([v.state for v in verdicts], [v.candidates for v in verdicts])
    logits = agent.model(batch)[0]
    for row, v in zip(logits, verdicts, strict=True):
        tried = torch.tensor(v.tried + [0] * (len(row) - len(v.tried)), dtype=torch.bool)
        own = row.masked_fill(~tried, MASKED_LOGIT).log_softmax(-1)[: len(v.tried)].numpy()
        own = np.where(tried[: len(v.tried)].numpy(), own, 0.0).astype(np.float32)
        yield ReflectedDecision(
            v.state, v.candidates, v.target, own.view(np.int32).tolist(), v.tried
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(scorer="consequence"), "scorer must be 'lookahead'"),
        (dict(mode="joint"), "sr needs its stage 1"),
        (dict(branches="expert"), "branches 'all'"),
        (dict(lookahead_observed=1.0), "sr does not use lookahead_observed"),
        (dict(teacher_temperature=0.0), "teacher_temperature must be > 0"),
    ],
)
def test_sr_refuses_what_has_no_meaning_for_it(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SRConfig(**change)


def test_sr_runs_through_the_cli_and_its_checkpoint_round_trips(tmp_path: Path) -> None:
    demos = tmp_path / "demos.jsonl"
    collect_demos(HOUSEHOLD, 4, demos, progress=False)
    out = tmp_path / "sr"
    argv = ["train", HOUSEHOLD, "--learner", "sr", "--demos", str(demos), "--k", "2"]
    argv += ["--out", str(out), "--log-dir", str(tmp_path), "--max-updates", "12"]
    argv += ["--wm-updates", "6", "--val-every", "3", "--eval-episodes", "2", "--no-progress"]
    argv += ["--device", "cpu", "--d-model", "32", "--n-layers", "1", "--ff-dim", "64"]
    argv += ["--mode", "sequential-joint"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["learner"] == "sr" and metrics["mode"] == "sequential-joint"
    assert metrics["updates"] == metrics["wm_updates"] + metrics["bc_updates"] <= 12
    assert 0 <= metrics["teacher_val_accuracy"] <= 1 and "eval" in metrics
    assert (out / "rollouts.jsonl").exists()  # collected from the demos: k=2
    agent = Agent.load(out / "agent.pt")
    assert agent.config.model.lookahead and agent.meta["learner"] == "sr"
    again = Agent.load(out / "agent.pt", expected_config=agent.config)
    state = ("put a apple in fridge.", "You are in the kitchen.", [], ["go to fridge 1", "look"])
    assert np.array_equal(agent.state_logits(*state), again.state_logits(*state))
    learner = get_learner("sr")
    assert learner.needs_rollouts and learner.make_config(out="x").budget == "matched"
    config = learner.make_config(out="x", distill_weight=0.5, model=ModelConfig(d_model=32))
    assert config.model.lookahead  # sr turns the model's look-ahead on
    words = shlex.split(learner.command(config))
    args = build_parser().parse_args(words[1:])
    assert learner.make_config(**values_from_args(learner.config, args)) == config
