"""Self-reflection (SR) on the language-model agent (``--learner sr --agent lm``).

The paper's recipe with written rationales. At every branched state of the rollouts the
agent's own tries show what the expert's command and the alternatives do; a *rationale* is
written from those outcomes by a template, one line, using only the commands and the next
observations (never reward, success or the checklist)::

    If I go to fridge 1: The fridge 1 is closed. If I open drawer 2: You open the
    drawer 2. In it, you see a knife 1. So: open drawer 2.

The agent is fine-tuned with the next-token loss on the rationale and then the expert's
command after the state's prompt (``Thought:`` ... ``Action:`` ...), one stage, early-stopped
on the same loss over the validation episodes' branched states. It acts the same way: it
writes its thought (greedy, at most ``--lm-max-thought-tokens``), then ranks the admissible
commands after it, or generates one (``LMConfig.reflect``, which this learner turns on).

Where it differs from the paper: the rationale is a template, not written by a prompted
language model (an option to let a generative model write it is not built yet); it names
at most ``RATIONALE_MOVES`` of the tried commands, in a seeded order, each outcome cut to
``RATIONALE_WORDS`` words; and it states no reason ("the goal needs X"), only what each
command did and the choice. Its training data are the branched demo states only (every
demo state is branched), so every example has a thought.

IWM's flags for the rollouts (``--k``, ``--rollout-file``, ``--proposer``) and BC's for
training apply; the policy model's SR options (the teacher, distillation, the world-model
weight, ``--mode``) do not, and a value other than their default is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents import LMAgent
from learners.data import Episode
from learners.imitation import demo_metrics, load_demos
from learners.lifecycle import Run
from learners.lm_world_model import IMITATION, LMExample, fit_next_tokens
from learners.reflection import SRConfig
from learners.rollouts import BranchedState
from learners.store import TokenStore
from learners.world_model import branched_states

#: Tried commands a rationale names at most (the expert's and up to this many less one).
RATIONALE_MOVES = 4
#: Words of each outcome a rationale quotes at most.
RATIONALE_WORDS = 12
#: The policy model's SR options: the LM's SR uses none of them.
_POLICY_MODEL_OPTIONS = ("distill_weight", "teacher_temperature", "wm_weight", "mode")


def lm_sr_problems(config: SRConfig) -> list[str]:
    """What an SR config asks of a language-model agent that it cannot do, one line each."""
    problems = [
        f"--{name.replace('_', '-')} is an option of sr on the policy model; sr on the "
        "language-model agent (--agent lm) writes rationales and fine-tunes on them"
        for name in _POLICY_MODEL_OPTIONS
        if getattr(config, name) != getattr(SRConfig, name)
    ]
    if config.branches != "all":
        problems.append(
            "sr's rationales compare the expert's outcome with the alternatives': branches 'all'"
        )
    return problems


def _gist(text: str) -> str:
    """An outcome as a rationale quotes it: one line, at most ``RATIONALE_WORDS`` words."""
    words = text.split()
    cut = " ".join(words[:RATIONALE_WORDS])
    return cut + ("..." if len(words) > RATIONALE_WORDS else "")


def rationale(state: BranchedState, rng: np.random.Generator) -> str:
    """The rationale of a branched state: what the expert's command and up to
    ``RATIONALE_MOVES - 1`` alternatives did, in a random order, then the expert's choice."""
    others = list(state.branches)
    keep = rng.permutation(len(others))[: RATIONALE_MOVES - 1]
    moves = [state.expert, *(others[i] for i in keep)]
    order = rng.permutation(len(moves))
    parts = [f"If I {moves[i].action}: {_gist(moves[i].next_text)}" for i in order]
    return " ".join(parts) + f" So: {state.expert.action}."


def reflection_example(
    agent: LMAgent, episode: Episode, state: BranchedState, seed: int
) -> LMExample:
    """The example of a branched state: the state's prompt up to ``Thought:``, then the
    rationale, ``Action:`` and the expert's command as the target."""
    step = episode.steps[state.step]
    history = [(s.text, s.executed) for s in episode.steps[: state.step]]
    rng = np.random.default_rng([seed, episode.seed, state.step])
    context = agent.encode_prompt(episode.goal, step.text, history, step.admissible, reflect=True)
    target = agent.encode_thought(rationale(state, rng)) + agent.encode_command(state.expert.action)
    return LMExample(context, target, IMITATION)


def train_lm_sr(config: SRConfig) -> dict[str, Any]:
    """SR on the language-model agent end to end (``learners.reflection.train_sr``
    dispatches here); writes ``agent.pt`` and ``metrics.json`` to ``config.out``."""
    with Run(config) as run:
        dataset, agent, train_eps, _ = load_demos(run, language_model=True)
        train = TokenStore(LMExample, directory=config.out)
        val = TokenStore(LMExample, directory=config.out)
        for training, episode, state in branched_states(config, dataset, train_eps):
            (train if training else val).append(
                reflection_example(agent, episode, state, config.seed)
            )
        if not len(val):
            raise ValueError(
                "sr on the language-model agent validates on the validation episodes' "
                "branched states, and the rollouts have none: collect rollouts of every "
                "demo episode (earlyexp rollouts) or let the run collect them"
            )
        tag = "losses/sr_val_token_nll"
        fit = fit_next_tokens(
            agent,
            train,
            val,
            tag,
            config,
            max_updates=config.bc_updates,  # one stage: max_updates
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            writer=run.writer,
            desc="sr",
        )
        initial, seconds = fit.pop("initial_val_loss"), fit.pop("seconds")
        metrics = {
            **demo_metrics(dataset, config.val_episodes),
            **fit,
            "sr_examples": len(train),
            "sr_initial_val_token_nll": initial,
            "sr_val_token_nll": fit["best"][tag],
            "sr_seconds": seconds,
            "wm_updates": 0,
            "bc_updates": fit["updates"],
            "mode": "rationale",
        }
        return run.finish(agent, metrics, step=fit["updates"], env_kwargs=dataset.env_kwargs)
