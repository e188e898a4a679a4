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

With ``--rationales model`` (a pretrained model: smollm2 or a path) the model writes each
rationale itself before it is fine-tuned, as in the paper: it is shown the goal, the
observation, what the same tried commands did and the expert's command, and asked in one
sentence why that command is the best step (:func:`rationale_request`); its greedy answer,
then ``So: <command>.``, is the thought it learns to write.

Where the template differs from the paper: it is not written by a prompted language model;
it names at most ``RATIONALE_MOVES`` of the tried commands, in a seeded order, each outcome
cut to ``RATIONALE_WORDS`` words; and it states no reason ("the goal needs X"), only what
each command did and the choice. Its training data are the branched demo states only (every
demo state is branched), so every example has a thought.

IWM's flags for the rollouts (``--k``, ``--rollout-file``, ``--proposer``) and BC's for
training apply; the policy model's SR options (the teacher, distillation, the world-model
weight, ``--mode``) do not, and a value other than their default is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents import LMAgent
from envs.progress import progress_bar
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
    if config.rationales == "model" and not config.model.pretrained:
        problems.append(
            "--rationales model: a tiny model trained from scratch writes no language before "
            "it is fine-tuned; use a pretrained model (--lm-model smollm2 or a path) or the "
            "template (--rationales template)"
        )
    return problems


def _gist(text: str) -> str:
    """An outcome as a rationale quotes it: one line, at most ``RATIONALE_WORDS`` words."""
    words = text.split()
    cut = " ".join(words[:RATIONALE_WORDS])
    return cut + ("..." if len(words) > RATIONALE_WORDS else "")


def _moves(state: BranchedState, rng: np.random.Generator) -> list[Any]:
    """The tried moves a rationale names: the expert's and up to ``RATIONALE_MOVES - 1``
    alternatives, in a random order."""
    others = list(state.branches)
    keep = rng.permutation(len(others))[: RATIONALE_MOVES - 1]
    moves = [state.expert, *(others[i] for i in keep)]
    return [moves[i] for i in rng.permutation(len(moves))]


def rationale(state: BranchedState, rng: np.random.Generator) -> str:
    """The rationale of a branched state: what the expert's command and up to
    ``RATIONALE_MOVES - 1`` alternatives did, in a random order, then the expert's choice."""
    parts = [f"If I {m.action}: {_gist(m.next_text)}" for m in _moves(state, rng)]
    return " ".join(parts) + f" So: {state.expert.action}."


def rationale_request(goal: str, text: str, state: BranchedState, rng: np.random.Generator) -> str:
    """What a model is asked when it writes the rationale itself (``--rationales model``,
    the paper's way): the goal, the observation, what the same moves as the template's did,
    and the expert's command, whose reason it is to give in one sentence."""
    tried = "".join(f"- {m.action}: {_gist(m.next_text)}\n" for m in _moves(state, rng))
    return (
        f"Goal: {goal}\nObservation: {text}\nWhat these actions did when tried:\n{tried}"
        f"The best next action is: {state.expert.action}. In one sentence, explain why it "
        "is the best step towards the goal."
    )


def written_rationale(
    agent: LMAgent, goal: str, text: str, state: BranchedState, rng: np.random.Generator
) -> str:
    """The model's own rationale of a branched state: its greedy answer to
    :func:`rationale_request` (one line, at most ``max_thought_tokens``), then the choice."""
    tok = agent.tokenizer
    request = tok.prefix + list(tok.encode(rationale_request(goal, text, state, rng)))
    prompt = request + (tok.suffix if tok.chat else list(tok.encode("\nAnswer:")))
    said = agent.generate(prompt, max_tokens=agent.config.max_thought_tokens)
    return f"{said} So: {state.expert.action}."


def reflection_example(
    agent: LMAgent, episode: Episode, state: BranchedState, seed: int, written: bool = False
) -> LMExample:
    """The example of a branched state: the state's prompt up to ``Thought:``, then the
    rationale (the template's, or ``written`` by the model itself), ``Action:`` and the
    expert's command as the target."""
    step = episode.steps[state.step]
    history = [(s.text, s.executed) for s in episode.steps[: state.step]]
    rng = np.random.default_rng([seed, episode.seed, state.step])
    context = agent.encode_prompt(episode.goal, step.text, history, step.admissible, reflect=True)
    if written:
        thought = written_rationale(agent, episode.goal, step.text, state, rng)
    else:
        thought = rationale(state, rng)
    target = agent.encode_thought(thought) + agent.encode_command(state.expert.action)
    return LMExample(context, target, IMITATION)


def train_lm_sr(config: SRConfig) -> dict[str, Any]:
    """SR on the language-model agent end to end (``learners.reflection.train_sr``
    dispatches here); writes ``agent.pt`` and ``metrics.json`` to ``config.out``."""
    with Run(config) as run:
        dataset, agent, train_eps, _ = load_demos(run, language_model=True)
        train = TokenStore(LMExample, directory=config.out)
        val = TokenStore(LMExample, directory=config.out)
        written = config.rationales == "model"
        states = branched_states(config, dataset, train_eps)
        if written:  # the model writes every rationale before it is fine-tuned: slow
            states = progress_bar(
                states, desc="rationales", unit="state", disable=not config.progress
            )
        for training, episode, state in states:
            (train if training else val).append(
                reflection_example(agent, episode, state, config.seed, written)
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
            "rationales": config.rationales,
        }
        return run.finish(agent, metrics, step=fit["updates"], env_kwargs=dataset.env_kwargs)
