"""Early experience: branch from every expert state, try other commands, record what they did.

For each step of each expert episode: restore the expert's state, execute K alternative
commands (never the expert's), and record ``(command, next observation, reward,
terminated)`` for each, plus the expert's own transition. No reward is used to choose
anything; the supervision is what the agent's own actions did.

Rollout file format (``earlyexp-rollouts``, version 2): UTF-8 JSON Lines.

* header: ``{"format": "earlyexp-rollouts", "version": 2, "env_id": str, "split": str,
  "demos": str, "demo_episodes": int, "k": int | "all", "proposer": "uniform" | "policy",
  "temperature": float | null, "seed": int}``
* one line per expert state: ``{"episode": int, "step": int, "expert": T, "branches": [T, ...]}``
  with ``T = {"action": str, "next_text": str, "reward": float, "terminated": bool}``; the
  state itself (goal, observation, history) is step ``step`` of episode ``episode`` of the
  demos file, so the two files are used together.
* footer: ``{"end": true, "states": int, "branches": int, "sha256": str}``, sealed and checked
  like a dataset's (learners/data.py)

Lines are streamed to a temporary file and renamed into place at the end, so collection
holds one state's branches in memory and a kill never leaves a file that looks complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents import Agent
from agents.files import atomic_write
from envs import make
from envs.progress import progress_bar
from learners.data import Dataset, DatasetError, Episode, RecordWriter, iter_records

FORMAT = "earlyexp-rollouts"
VERSION = 2
PROPOSERS = ("uniform", "policy")


class BranchDivergedError(RuntimeError):
    """Replaying an expert episode did not reproduce its recorded observation."""


@dataclass
class Transition:
    """What one command did from a state."""

    action: str
    next_text: str
    reward: float
    terminated: bool


#: ``propose(goal, text, history, admissible, expert, k, rng)`` -> up to ``k`` distinct
#: admissible commands other than ``expert`` (every other one when ``k`` is None).
Proposer = Callable[
    [str, str, Sequence[tuple[str, str]], list[str], str, "int | None", np.random.Generator],
    list[str],
]


def propose_uniform(
    goal: str,
    text: str,
    history: Sequence[tuple[str, str]],
    admissible: list[str],
    expert: str,
    k: int | None,
    rng: np.random.Generator,
) -> list[str]:
    """Up to ``k`` distinct admissible commands other than the expert's, uniformly at random
    (all of them when ``k`` is None), in admissible order."""
    others = [a for a in admissible if a != expert]
    if k is None or k >= len(others):
        return others
    return [others[i] for i in sorted(rng.choice(len(others), size=k, replace=False))]


def policy_proposer(agent: Agent, temperature: float = 1.0) -> Proposer:
    """A proposer sampling from ``agent``'s policy at ``temperature``: ``k`` draws, the expert's
    command and repeats dropped, then refilled uniformly from the remaining commands when the
    policy proposed fewer than ``k`` distinct ones (a confident policy repeats itself)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")

    def propose(
        goal: str,
        text: str,
        history: Sequence[tuple[str, str]],
        admissible: list[str],
        expert: str,
        k: int | None,
        rng: np.random.Generator,
    ) -> list[str]:
        others = [a for a in admissible if a != expert]
        if k is None or k >= len(others):
            return others
        logits = agent.state_logits(goal, text, history, admissible) / temperature
        probs = np.exp(logits - logits.max())
        draws = rng.choice(len(admissible), size=k, p=probs / probs.sum())
        chosen = list(dict.fromkeys(admissible[i] for i in draws if admissible[i] != expert))
        rest = [a for a in others if a not in chosen]
        refill = propose_uniform(goal, text, history, rest, expert, k - len(chosen), rng)
        return chosen + refill

    return propose


def _transition(env: Any, action: str) -> Transition:
    obs, reward, terminated, _, _ = env.step(action)
    return Transition(action, obs["text"], float(reward), bool(terminated))


def branch_episode(
    env: Any,
    env_id: str,
    episode: Episode,
    k: int | None,
    rng: np.random.Generator,
    propose: Proposer = propose_uniform,
) -> list[tuple[Transition, list[Transition]]]:
    """Branch at every step of ``episode`` on the unwrapped env; return (expert, branches) per step.

    ``propose`` picks the ``k`` alternatives (None = every admissible command but the expert's).

    Uses ``get_state``/``set_state`` when the env has them, else replays the episode's
    executed prefix from ``reset(seed)``. Either way the restored observation must equal the
    recorded one, or :class:`BranchDivergedError` names the env, seed and step.
    """
    can_snapshot = hasattr(env, "get_state") and hasattr(env, "set_state")
    obs, _ = env.reset(seed=episode.seed)
    results = []
    for t, step in enumerate(episode.steps):
        if obs["text"] != step.text:
            raise BranchDivergedError(
                f"{env_id}: seed {episode.seed}, step {t}: the env shows {obs['text']!r}, "
                f"the demos recorded {step.text!r}; the env is not deterministic or the demos are from another version"
            )
        branches = []
        snapshot = env.get_state() if can_snapshot else None
        history = [(s.text, s.executed) for s in episode.steps[:t]]
        alternatives = propose(
            episode.goal, step.text, history, step.admissible, step.executed, k, rng
        )
        for action in alternatives:
            if can_snapshot:
                env.set_state(snapshot)
            else:
                _replay(env, env_id, episode, t)
            branches.append(_transition(env, action))
        if can_snapshot:
            env.set_state(snapshot)
        else:
            _replay(env, env_id, episode, t)
        expert = _transition(env, step.executed)
        obs = {"text": expert.next_text}
        results.append((expert, branches))
    return results


def _replay(env: Any, env_id: str, episode: Episode, t: int) -> None:
    obs, _ = env.reset(seed=episode.seed)
    for i, step in enumerate(episode.steps[:t]):
        if obs["text"] != step.text:
            raise BranchDivergedError(
                f"{env_id}: replay of seed {episode.seed} diverged at step {i}: got {obs['text']!r}, "
                f"recorded {step.text!r}"
            )
        obs, *_ = env.step(step.executed)
    if obs["text"] != episode.steps[t].text:
        raise BranchDivergedError(
            f"{env_id}: replay of seed {episode.seed} diverged at step {t}: got {obs['text']!r}, "
            f"recorded {episode.steps[t].text!r}"
        )


def collect_rollouts(
    demos: Dataset,
    demos_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    k: int | None = 8,
    seed: int = 0,
    proposer: str = "uniform",
    agent: Agent | None = None,
    temperature: float = 1.0,
    progress: bool = True,
) -> dict[str, int]:
    """Branch from every state of ``demos`` and stream the rollout file to ``out``.

    ``k`` alternatives per state (None = every admissible command), chosen by ``proposer``:
    ``"uniform"``, or ``"policy"`` (sampled from ``agent`` at ``temperature``). Returns counts.
    """
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be a positive integer or None (all), got {k!r}")
    if proposer == "uniform":
        propose = propose_uniform
    elif proposer == "policy":
        if agent is None:
            raise ValueError(
                "the policy proposer samples from an agent: give one (--proposer-agent CHECKPOINT)"
            )
        propose = policy_proposer(agent, temperature)
    else:
        raise ValueError(f"unknown proposer {proposer!r}; choose one of {PROPOSERS}")
    env = make(demos.env_id, split=demos.split, **demos.env_kwargs).unwrapped
    rng = np.random.default_rng(seed)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "env_id": demos.env_id,
        "split": demos.split,
        "demos": str(demos_path),
        "demo_episodes": len(demos.episodes),
        "k": "all" if k is None else k,
        "proposer": proposer,
        "temperature": temperature if proposer == "policy" else None,
        "seed": seed,
    }
    states = branches = 0
    with atomic_write(out) as f:
        lines = RecordWriter(f)
        lines.write(header)
        episodes = progress_bar(
            demos.episodes, desc=f"rollouts {demos.env_id}", unit="ep", disable=not progress
        )
        for i, episode in enumerate(episodes):
            for t, (expert, alternatives) in enumerate(
                branch_episode(env, demos.env_id, episode, k, rng, propose)
            ):
                record = {
                    "episode": i,
                    "step": t,
                    "expert": asdict(expert),
                    "branches": [asdict(b) for b in alternatives],
                }
                lines.write(record)
                states += 1
                branches += len(alternatives)
        lines.end(states=states, branches=branches)
    env.close()
    return {"states": states, "branches": branches}


@dataclass
class BranchedState:
    """Step ``step`` of demo episode ``episode``: the expert's transition and the branches."""

    episode: int
    step: int
    expert: Transition
    branches: list[Transition]


def load_rollouts(path: str | os.PathLike, demos: Dataset) -> Iterator[BranchedState]:
    """Stream a rollout file's states, checked against the ``demos`` they branch from.

    States of episodes beyond ``demos`` (a prefix budget of the file's demos) are skipped.

    Raises :class:`DatasetError` naming the file and the problem: another format or env,
    a record that points outside the demos or disagrees with them, a torn or missing end,
    an edit (checksum) or lines after the end. Those are found when the stream reaches the
    end, so use the states only once it is exhausted.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such rollout file (create one with `earlyexp rollouts`)")
    records = iter_records(path)
    _, header = next(records)
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise DatasetError(
            f"{path}: not an {FORMAT} version {VERSION} file "
            f"(format {header.get('format')!r}, version {header.get('version')!r})"
        )
    if header.get("env_id") != demos.env_id:
        raise DatasetError(
            f"{path}: the rollouts are from {header.get('env_id')!r}, the demos from {demos.env_id!r}"
        )
    branches = 0
    for states, (number, record) in enumerate(records):
        if record.get("end") is True:
            if (record.get("states"), record.get("branches")) != (states, branches):
                raise DatasetError(
                    f"{path}: the footer promises {record.get('states')} states and "
                    f"{record.get('branches')} branches, the file holds {states} and {branches}"
                )
            return
        try:
            state = BranchedState(
                int(record["episode"]),
                int(record["step"]),
                Transition(**record["expert"]),
                [Transition(**b) for b in record["branches"]],
            )
            if state.episode >= len(demos.episodes):
                branches += len(state.branches)
                continue  # an episode beyond a demo budget (budgets take prefixes)
            step = demos.episodes[state.episode].steps[state.step]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DatasetError(
                f"{path}: line {number} is not a rollout record of these demos ({exc!r})"
            ) from None
        if state.expert.action != step.executed:
            raise DatasetError(
                f"{path}: line {number}: the expert's command {state.expert.action!r} is not the "
                f"demos' {step.executed!r}; were the rollouts collected from other demos?"
            )
        branches += len(state.branches)
        yield state
    raise DatasetError(f"{path}: no end-of-file record (the file is truncated); collect it again")
