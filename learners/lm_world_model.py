"""Implicit world modeling (IWM) on the language-model agent (``--learner iwm --agent lm``).

The paper's objective exactly: one network is the policy and the world model through the
same next-token loss. A world-model example is the state's prompt (goal, history,
observation, admissible commands, ``Action:``), a command the rollouts tried from it, the cue
``Observation:``, and then the next observation's text and the end token; only the next
observation's tokens are predicted (:meth:`agents.LMAgent.encode_outcome`), with the loss
imitation uses for the expert command's tokens (:meth:`agents.LMAgent.command_nll`). The
examples are every move the rollouts recorded (the K branched commands and the expert's
own), from the same file and collection as the policy model's IWM (learners/world_model.py).
No reward is used.

Modes (``--mode``):

* ``sequential`` (the paper's): stage 1 trains on the world-model examples
  (``--wm-updates``, ``--wm-batch-size``, ``--wm-learning-rate``), early-stopped on the
  world-model loss of the validation episodes' rollouts; stage 2 is BC from that checkpoint
  (``--learning-rate``: set it below ``--wm-learning-rate`` for the paper's lower rate).
* ``mixed``: one stage, BC's, whose minibatches are drawn from the world-model and the
  imitation examples shuffled together; a minibatch's loss is the imitation token loss plus
  ``--wm-weight`` times the world-model token loss, each the mean over its own tokens (an
  observation has ten times a command's tokens: one mean over all would drown the command).

The policy model's ``joint`` and ``sequential-joint`` modes, its look-ahead scorer, the
shuffled-outcomes control and ``--target`` (the LM predicts the observation's text) do not
apply; the first three are refused, each in one line. ``--budget`` and the rest of BC's
flags mean what they mean for the policy model; both stages early-stop, and the policy
stage validates by ranking the validation decisions, as BC on the LM does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

from agents import LMAgent, autocast
from learners.data import Dataset, Decision, Episode
from learners.imitation import demo_metrics, encode_for, fit_policy, load_demos, state_length
from learners.lifecycle import Run
from learners.rollouts import BranchedState
from learners.store import TokenStore
from learners.training import adam, fit_early_stopped
from learners.world_model import LM_MODES, IWMConfig, branched_states

#: ``LMExample.kind``: the expert's command after the prompt, or an outcome after a command.
IMITATION, WORLD_MODEL = 0, 1


@dataclass
class LMExample:
    """One next-token example: ``target``'s tokens are predicted after ``state``'s."""

    state: list[int]  # the context (named as the other items are, for length bucketing)
    target: list[int]
    kind: int  # IMITATION or WORLD_MODEL


def lm_problems(config: IWMConfig) -> list[str]:
    """What an IWM config asks of a language-model agent that it cannot do, one line each."""
    problems = []
    if config.mode not in LM_MODES:
        problems.append(
            f"mode {config.mode!r} is the policy model's; the language-model agent "
            f"(--agent lm) trains with --mode {' or '.join(LM_MODES)}"
        )
    if config.scorer != "consequence":
        problems.append(
            f"scorer {config.scorer!r} reads the policy model's world-model head; the "
            "language-model agent (--agent lm) ranks commands by their likelihood: "
            "--scorer consequence"
        )
    if config.outcomes != "observed":
        problems.append(
            f"outcomes {config.outcomes!r}: the control is built for the policy model only, "
            "not the language-model agent (--agent lm)"
        )
    return problems


def outcome_examples(
    agent: LMAgent, states: Iterable[tuple[Episode, BranchedState]]
) -> Iterator[LMExample]:
    """The world-model examples of branched states: one per move (the expert's, then each
    branch), its context the state's prompt and the command, its target the next observation."""
    for episode, state in states:
        step = episode.steps[state.step]
        history = [(s.text, s.executed) for s in episode.steps[: state.step]]
        for move in (state.expert, *state.branches):
            context, target = agent.encode_outcome(
                episode.goal, step.text, history, step.admissible, move.action, move.next_text
            )
            yield LMExample(context, target, WORLD_MODEL)


def imitation_examples(decisions: Iterable[Decision]) -> Iterator[LMExample]:
    """BC's decisions (:func:`learners.imitation.encode_for`) as examples: the expert's command."""
    for d in decisions:
        yield LMExample(d.state, d.candidates[d.target], IMITATION)


def load_outcomes(
    config: IWMConfig, dataset: Dataset, agent: LMAgent, train_eps: Sequence[Episode]
) -> tuple[TokenStore[LMExample], TokenStore[LMExample]]:
    """The rollouts' world-model examples in on-disk stores: those of ``train_eps`` to train
    on, those of the validation episodes to validate the world model."""
    wm_train = TokenStore(LMExample, directory=config.out)
    wm_val = TokenStore(LMExample, directory=config.out)
    for training, episode, state in branched_states(config, dataset, train_eps):
        (wm_train if training else wm_val).extend(outcome_examples(agent, [(episode, state)]))
    return wm_train, wm_val


def example_loss(
    agent: LMAgent, chunk: list[LMExample], wm_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """A minibatch's loss: the imitation examples' token NLL plus ``wm_weight`` times the
    world-model examples' (each the mean over its own tokens), and both to log."""
    total, scalars = None, {}
    for kind, weight, tag in (
        (IMITATION, 1.0, "losses/bc_token_nll"),
        (WORLD_MODEL, wm_weight, "losses/wm_token_nll"),
    ):
        part = [e for e in chunk if e.kind == kind]
        if part:
            nll = agent.command_nll([e.state for e in part], [e.target for e in part])
            scalars[tag] = nll.item()
            total = weight * nll if total is None else total + weight * nll
    assert total is not None, "an empty minibatch"
    return total, scalars


@torch.no_grad()
def world_model_nll(agent: LMAgent, examples: Sequence[LMExample], batch_size: int = 32) -> float:
    """The world model's loss on ``examples``: the mean NLL of their target tokens."""
    agent.model.eval()
    total, tokens = 0.0, 0
    with autocast(agent.device):
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            n = sum(len(e.target) for e in chunk)
            nll = agent.command_nll([e.state for e in chunk], [e.target for e in chunk])
            total, tokens = total + nll.item() * n, tokens + n
    return total / max(tokens, 1)


def fit_next_tokens(
    agent: LMAgent,
    train: Sequence[LMExample],
    val: Sequence[LMExample],
    tag: str,
    config: IWMConfig,
    *,
    max_updates: int,
    batch_size: int,
    learning_rate: float,
    writer: SummaryWriter | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    desc: str = "train",
) -> dict[str, Any]:
    """Fit the LM in place to the target tokens of ``train``; keep the weights of the lowest
    mean target-token NLL on ``val`` (validated as ``tag``), stopping early after
    ``config.patience`` passes. :func:`learners.training.fit_early_stopped`'s results, plus
    ``initial_val_loss`` (before any update) and ``seconds``."""
    initial = world_model_nll(agent, val)
    started = time.perf_counter()
    fit = fit_early_stopped(
        agent.model,
        train,
        lambda chunk: example_loss(agent, chunk),
        lambda: {tag: world_model_nll(agent, val)},
        lambda result: (-result[tag],),
        max_updates=max_updates,
        batch_size=batch_size,
        learning_rate=learning_rate,
        val_every=config.val_every,
        patience=config.patience,
        seed=config.seed,
        writer=writer,
        desc=desc,
        progress=config.progress,
        optimizer=optimizer,
        length=state_length,
    )
    return {**fit, "initial_val_loss": initial, "seconds": time.perf_counter() - started}


def lm_world_modeling(
    agent: LMAgent,
    train: Sequence[LMExample],
    val: Sequence[LMExample],
    config: IWMConfig,
    writer: SummaryWriter | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Stage 1 of ``sequential``: fit the LM to the world-model examples in place; keep the
    weights of the lowest validation loss; stop early after ``config.patience`` passes."""
    tag = "losses/wm_val_token_nll"
    fit = fit_next_tokens(
        agent,
        train,
        val,
        tag,
        config,
        max_updates=config.wm_updates,
        batch_size=config.wm_batch_size,
        learning_rate=config.wm_learning_rate,
        writer=writer,
        optimizer=optimizer,
        desc="world model",
    )
    return {
        "wm_updates": fit["updates"],
        "wm_best_update": fit["best_update"],
        "wm_hit_cap": fit["hit_cap"],
        "wm_initial_val_loss": fit["initial_val_loss"],
        "wm_val_loss": fit["best"][tag],
        "wm_seconds": fit["seconds"],
    }


def train_lm_iwm(config: IWMConfig) -> dict[str, Any]:
    """IWM on the language-model agent end to end (``learners.world_model.train_iwm``
    dispatches here); writes ``agent.pt`` and ``metrics.json`` to ``config.out``."""
    with Run(config) as run:
        dataset, agent, train_eps, val = load_demos(run, language_model=True)
        wm_train, wm_val = load_outcomes(config, dataset, agent, train_eps)
        optimizer = adam(agent.model, config.wm_learning_rate) if config.keep_optimizer else None
        if config.mode == "sequential":
            wm = lm_world_modeling(agent, wm_train, wm_val, config, run.writer, optimizer)
            decisions = TokenStore(Decision, encode_for(agent, train_eps), config.out)
            fit = fit_policy(
                agent, decisions, val, config, run.writer, wm["wm_updates"], None, optimizer
            )
        else:  # mixed: one stage over both kinds of example, shuffled together
            wm = {"wm_updates": 0, "wm_initial_val_loss": world_model_nll(agent, wm_val)}
            imitation = imitation_examples(encode_for(agent, train_eps))
            examples = TokenStore(LMExample, chain(imitation, iter(wm_train)), config.out)
            weight = config.wm_weight

            def loss(agent: LMAgent, chunk: list[LMExample]) -> tuple[torch.Tensor, dict]:
                return example_loss(agent, chunk, weight)

            fit = fit_policy(agent, examples, val, config, run.writer, 0, loss, optimizer)
        # What the policy stage left of the world model (or, mixed, what it learned).
        after = world_model_nll(agent, wm_val)
        run.writer.add_scalar("wm/final_val_token_nll", after, wm["wm_updates"] + fit["updates"])
        metrics = {
            **demo_metrics(dataset, config.val_episodes),
            **wm,
            **fit,
            "wm_examples": len(wm_train),
            "bc_updates": fit["updates"],
            "updates": wm["wm_updates"] + fit["updates"],
            "hit_cap": fit["hit_cap"],  # the policy's stage; stage 1's is wm_hit_cap
            "budget": config.budget,
            "target": "text",
            "mode": config.mode,
            "wm_final_val_loss": after,
        }
        return run.finish(agent, metrics, step=metrics["updates"], env_kwargs=dataset.env_kwargs)
