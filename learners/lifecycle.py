"""One run lifecycle for every learner: seed, run directory, TensorBoard, save, metrics, and
the test-split evaluation beside the random policy.

A learner's train function reads top to bottom around it::

    def train_mine(config: MyConfig) -> dict:
        with Run(config) as run:
            agent = run.new_agent()
            ...                                   # train, logging to run.writer
            return run.finish(agent, {"updates": n}, step=n)

Logging follows CleanRL: runs are named ``{env}__{learner}__{seed}__{time}`` under
``config.log_dir``, the config is logged as a text table, and scalars are named
``losses/*``, ``charts/*`` (one meaning each), ``eval/*`` (the test split) and ``wm/*``
(world-model quality); the README has the table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from agents import (
    Agent,
    AgentConfig,
    GenerationPolicy,
    LMAgent,
    LMConfig,
    ModelConfig,
    resolve_device,
)
from agents.files import atomic_write
from agents.lm import new_lm_agent
from learners.config import RunConfig
from learners.evaluate import (
    EVAL_SEED,
    AgentPolicy,
    EvalResult,
    RandomPolicy,
    evaluate,
    evaluate_agent,
)

#: Learners that train the language-model agent (``--agent lm``), as the refusal names them.
LM_LEARNERS = ("bc", "bc-short", "iwm (modes sequential, mixed)", "sr", "rl")


def run_name(env_id: str, learner: str, seed: int) -> str:
    """``{env}__{learner}__{seed}__{time}``, with the ids' slashes and colons made path-safe."""
    safe = f"{env_id}__{learner}".replace("/", "_").replace(":", "_")
    return f"{safe}__{seed}__{int(time.time())}"


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


def log_evaluation(writer: SummaryWriter, results: dict[str, EvalResult], step: int) -> None:
    """Log an ``evaluate_agent`` result (greedy, sampled, random) under ``eval/*`` at ``step``."""
    greedy = results["greedy"]
    writer.add_scalar("eval/success_rate", greedy.success_rate, step)
    writer.add_scalar("eval/success_rate_sampled", results["sampled"].success_rate, step)
    writer.add_scalar("eval/random_success_rate", results["random"].success_rate, step)
    writer.add_scalar("eval/valid_action_rate", greedy.valid_action_rate, step)
    writer.add_scalar("eval/mean_episode_length", greedy.mean_episode_length, step)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (as stable-baselines3 does)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def flat_config(config: RunConfig) -> dict[str, Any]:
    """The config as one flat dict; the model's fields as ``model.<name>``."""
    flat = {}
    for key, value in dataclasses.asdict(config).items():
        if isinstance(value, dict) and key == "model":
            flat.update({f"model.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def new_agent(
    config: RunConfig,
    *,
    language_model: bool = False,
    env_kwargs: dict[str, Any] | None = None,
) -> Agent | LMAgent:
    """A fresh agent of ``config.model`` (None: the default), weights seeded by ``config.seed``.

    An :class:`agents.LMConfig` makes a language-model agent (a tiny one's tokenizer trained
    on ``config.env_id``'s train split, made with ``env_kwargs``), for a learner that trains
    one and says so with ``language_model=True``; for any other it is an error.
    """
    if isinstance(config.model, LMConfig):
        if not language_model:
            raise ValueError(
                f"learner {config.learner!r} does not train the language-model agent "
                f"(--agent lm) yet; learners that do: {', '.join(LM_LEARNERS)}"
            )
        return new_lm_agent(config.model, config.seed, config.env_id, env_kwargs)
    model = config.model if config.model is not None else ModelConfig()
    return Agent(AgentConfig(model=model), seed=config.seed)


def evaluate_run_agent(
    agent: Agent | LMAgent, env_id: str, *, seed: int = EVAL_SEED, **common: Any
) -> dict[str, EvalResult]:
    """:func:`learners.evaluate.evaluate_agent`; for a language-model agent that generates,
    its generated commands greedy and sampled (an inadmissible one is a step the env
    rejects), the same model ranking the admissible commands greedily (``ranked``), and
    the random policy, on the same instances."""
    if not (isinstance(agent, LMAgent) and agent.config.acting == "generate"):
        return evaluate_agent(agent, env_id, seed=seed, **common)
    common["seed"] = seed
    return {
        "greedy": evaluate(
            GenerationPolicy(agent, True, seed), env_id, desc="eval greedy", **common
        ),
        "sampled": evaluate(
            GenerationPolicy(agent, False, seed), env_id, desc="eval sampled", **common
        ),
        "ranked": evaluate(AgentPolicy(agent, True, seed), env_id, desc="eval ranked", **common),
        "random": evaluate(RandomPolicy(seed), env_id, desc="eval random", **common),
    }


class Run:
    """The lifecycle of one training run of ``config`` (a :class:`RunConfig`).

    Entering seeds every generator with ``config.seed``, creates ``config.out`` and opens the
    TensorBoard writer (``self.writer``) with the config table; :meth:`finish` saves the
    agent, evaluates it on the test split beside a random policy, and writes
    ``metrics.json``. Leaving with an error closes the writer and re-raises. ``self.device``
    is ``config.device`` resolved (a GPU asked for and missing is an error here).
    """

    def __init__(self, config: RunConfig) -> None:
        if not isinstance(config, RunConfig):
            raise TypeError(f"a run needs a RunConfig, got {type(config).__name__}")
        self.config = config
        self.device = resolve_device(config.device)  # before any work: a missing GPU fails now
        self.out = Path(config.out)
        self.started = time.perf_counter()
        seed_everything(config.seed)
        self.out.mkdir(parents=True, exist_ok=True)
        name = run_name(config.env_id, config.learner, config.seed)
        self.writer = open_writer(config.log_dir, name, flat_config(config))

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.writer.close()

    def new_agent(
        self, *, language_model: bool = False, env_kwargs: dict[str, Any] | None = None
    ) -> Agent | LMAgent:
        """A fresh agent of the config's architecture, its weights seeded by ``config.seed``,
        on the run's device (:func:`new_agent`: ``language_model=True`` from a learner that
        trains the language-model agent)."""
        agent = new_agent(self.config, language_model=language_model, env_kwargs=env_kwargs)
        return agent.to(self.device)

    def finish(
        self,
        agent: Agent | LMAgent,
        metrics: dict[str, Any],
        *,
        step: int,
        env_kwargs: dict[str, Any] | None = None,
        evaluation: dict[str, EvalResult] | None = None,
    ) -> dict[str, Any]:
        """Save ``agent.pt``, evaluate on ``config.eval_split`` (logged at ``step``;
        ``evaluation`` when the learner already evaluated the final agent), write
        ``metrics.json``.

        Returns ``metrics`` led by env_id, learner and seed, with ``eval`` (greedy, sampled,
        random) and ``eval_split`` when ``config.eval_episodes > 0``, and ``wall_seconds``.
        """
        config = self.config
        metrics = {
            "env_id": config.env_id,
            "learner": config.learner,
            "seed": config.seed,
            **metrics,
            "device": str(self.device),
        }
        agent.save(self.out / "agent.pt", meta=metrics)
        if config.eval_episodes > 0:
            if evaluation is None:
                evaluation = evaluate_run_agent(
                    agent,
                    config.env_id,
                    split=config.eval_split,
                    seed=config.eval_seed,
                    episodes=config.eval_episodes,
                    env_kwargs=env_kwargs,
                    progress=config.progress,
                )
                log_evaluation(self.writer, evaluation, step)
            metrics["eval"] = {name: result.as_dict() for name, result in evaluation.items()}
            metrics["eval_split"] = config.eval_split
        metrics["wall_seconds"] = time.perf_counter() - self.started
        self.writer.close()
        write_json(self.out / "metrics.json", metrics)
        return metrics
