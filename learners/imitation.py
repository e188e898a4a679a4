"""Behaviour cloning over the admissible commands, with early stopping on held-out episodes.

DAgger (below BC) adds rounds of learner rollouts labelled by the env's expert.

Reads top to bottom: load demos -> split episodes into train/validation -> tokenize into
on-disk stores (learners/store.py) -> minibatch cross-entropy over each state's admissible
commands -> keep the weights with the best validation accuracy -> save the agent ->
evaluate on the test split beside a random policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter

from agents import Agent, LMAgent, LMConfig, collate
from envs import make
from learners.config import RunConfig, option
from learners.data import (
    Dataset,
    Decision,
    Episode,
    encode_decisions,
    load_dataset,
    run_expert_episode,
)
from learners.lifecycle import Run
from learners.store import TokenStore
from learners.training import fit_early_stopped


@dataclass
class BCConfig(RunConfig):
    """Behaviour cloning. Every field is a flag of ``earlyexp train --learner bc``."""

    learner: str = option("bc", "the registered learner this run trains as")
    out: str = option("runs/bc", "directory for ``agent.pt`` and ``metrics.json``")
    demos: str = option("demos.jsonl", "expert dataset file (from ``earlyexp collect``)")
    episodes: int | None = option(
        None, "use only the first N demo episodes (a data budget); None = all", low=1
    )
    max_updates: int = option(
        3000, "gradient updates at most (early stopping usually ends sooner)", low=1
    )
    batch_size: int = option(32, "decisions per minibatch", low=1)
    learning_rate: float = option(1e-3, "Adam step size", low=0)
    val_fraction: float = option(
        0.2, "fraction of demo episodes held out for early stopping (at least one episode)", low=0
    )
    val_episodes: int | None = option(
        None,
        "validation episodes kept outside the demo budget: the demo file's first N episodes, "
        "the budget the next --episodes (the same validation for every budget and learner); "
        "None: --val-fraction of the budget",
        low=1,
    )
    val_every: int = option(50, "updates between validation passes", low=1)
    patience: int = option(10, "validation passes without improvement before stopping", low=1)

    #: The learner trains a language-model agent's thoughts (``--lm-reflect``): sr only.
    trains_thoughts: ClassVar[bool] = False

    def problems(self) -> list[str]:
        """Every bad value, and a reflecting LM agent for a learner that trains no thoughts."""
        problems = super().problems()
        if isinstance(self.model, LMConfig) and self.model.reflect and not self.trains_thoughts:
            problems.append(
                f"--lm-reflect: learner {self.learner!r} trains no thoughts, so its agent "
                "would act on thoughts it never learned; the sr learner trains them"
            )
        return problems

    @property
    def bc_updates(self) -> int:
        """The imitation updates at most (a subclass may give imitation part of the budget)."""
        return self.max_updates


def split_episodes(dataset: Dataset, val_fraction: float, seed: int) -> tuple[list, list]:
    """Hold out whole episodes (seeded) so validation states are never seen in training."""
    n = len(dataset.episodes)
    if n < 2:
        raise ValueError(
            "behaviour cloning needs at least 2 demo episodes (1 to train, 1 to validate)"
        )
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    val = set(order[:n_val].tolist())
    train = [e for i, e in enumerate(dataset.episodes) if i not in val]
    return train, [e for i, e in enumerate(dataset.episodes) if i in val]


#: Among checkpoints of equal validation accuracy, a lower validation NLL counts only when it
#: is lower by more than this: a loss creeping down by 0.001 per validation on a flat
#: accuracy once reset the patience until the update cap (Tools, quick profile, seed 3).
NLL_TIE_DELTA = 0.01

#: A policy loss on a minibatch of decisions: the loss, and scalars to log (tag -> value).
PolicyLoss = Callable[[Agent, list[Decision]], tuple[torch.Tensor, dict[str, float]]]


def encode_for(agent: Agent | LMAgent, episodes: Iterable[Episode]) -> Iterator[Decision]:
    """:func:`learners.data.encode_decisions`; for a language-model agent, each decision's
    ``state`` is its prompt and its candidates are the commands as the model writes them."""
    if not isinstance(agent, LMAgent):
        yield from encode_decisions(agent, episodes)
        return
    for episode in episodes:
        history: list[tuple[str, str]] = []
        for step in episode.steps:
            yield Decision(
                agent.encode_prompt(episode.goal, step.text, history, step.admissible),
                [agent.encode_command(a) for a in step.admissible],
                step.admissible.index(step.action),
            )
            history.append((step.text, step.executed))


def policy_nll(agent: Agent | LMAgent, decisions: list[Decision]) -> torch.Tensor:
    """Mean negative log-likelihood of the expert's commands under the policy (a language-
    model agent: of their tokens given the prompt, the supervised fine-tuning loss)."""
    if isinstance(agent, LMAgent):
        targets = [d.candidates[d.target] for d in decisions]
        return agent.command_nll([d.state for d in decisions], targets)
    device = agent.device
    batch = collate([d.state for d in decisions], [d.candidates for d in decisions], device)
    logits, _ = agent.model(batch)
    targets = torch.tensor([d.target for d in decisions], device=device)
    return F.cross_entropy(logits.float(), targets)


def state_length(item: Any) -> int:
    """The state tokens of a training item (a :class:`Decision`, a world-model transition):
    what its minibatch is padded to, so the key of length bucketing."""
    return len(item.state)


@torch.no_grad()
def validate(
    agent: Agent, decisions: Sequence[Decision], batch_size: int = 256
) -> tuple[float, float]:
    """Validation NLL and accuracy (argmax equals the expert's command); a language-model
    agent's logits are its ranking scores (summed log-likelihoods of the commands)."""
    agent.model.eval()
    total_nll, correct = 0.0, 0
    if isinstance(agent, LMAgent):
        for d in decisions:
            scores = agent.score(d.state, d.candidates)
            total_nll -= float(torch.from_numpy(scores).log_softmax(-1)[d.target])
            correct += int(np.argmax(scores)) == d.target
        return total_nll / len(decisions), correct / len(decisions)
    for i in range(0, len(decisions), batch_size):
        chunk = decisions[i : i + batch_size]
        batch = collate([d.state for d in chunk], [d.candidates for d in chunk], agent.device)
        logits, _ = agent.model(batch)
        logits = logits.float()
        targets = torch.tensor([d.target for d in chunk], device=logits.device)
        total_nll += F.cross_entropy(logits, targets, reduction="sum").item()
        correct += (logits.argmax(-1) == targets).sum().item()
    return total_nll / len(decisions), correct / len(decisions)


def behaviour_cloning(
    agent: Agent,
    train: Sequence[Decision],
    val: Sequence[Decision],
    *,
    max_updates: int,
    batch_size: int,
    learning_rate: float,
    val_every: int,
    patience: int,
    seed: int,
    writer: SummaryWriter | None = None,
    progress: bool = True,
    global_step: int = 0,
    loss: PolicyLoss | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Fit ``agent``'s policy to ``train`` in place; stop early on ``val``; keep the weights of
    the best validation accuracy (lowest validation NLL among equals).

    Shared by BC, the imitation stage of implicit world modeling, and any learner that
    brings its own ``loss`` (a minibatch's loss and the scalars to log; default: the NLL of
    the expert's commands).
    """

    def loss_fn(chunk: list[Decision]) -> tuple[torch.Tensor, dict[str, float]]:
        if loss is not None:
            return loss(agent, chunk)
        nll = policy_nll(agent, chunk)
        # A language model's loss is per command token: another meaning, another name.
        tag = "losses/bc_token_nll" if isinstance(agent, LMAgent) else "losses/bc_nll"
        return nll, {tag: nll.item()}

    def validation() -> dict[str, float]:
        nll, accuracy = validate(agent, val)
        return {"losses/bc_val_nll": nll, "charts/bc_val_accuracy": accuracy}

    def score(result: dict[str, float]) -> tuple[float, float]:
        # Accuracy first, ties by NLL: NLL turns up early from overconfidence on ambiguous
        # decisions while the easy ones are still being learned.
        return result["charts/bc_val_accuracy"], -result["losses/bc_val_nll"]

    fit = fit_early_stopped(
        agent.model,
        train,
        loss_fn,
        validation,
        score,
        max_updates=max_updates,
        batch_size=batch_size,
        learning_rate=learning_rate,
        val_every=val_every,
        patience=patience,
        seed=seed,
        writer=writer,
        global_step=global_step,
        desc="bc",
        progress=progress,
        optimizer=optimizer,
        length=state_length,
        min_delta=(0.0, NLL_TIE_DELTA),
    )
    best = fit.pop("best")
    return {
        **fit,
        "val_nll": best["losses/bc_val_nll"],
        "val_accuracy": best["charts/bc_val_accuracy"],
    }


def train_bc(config: BCConfig) -> dict[str, Any]:
    """Run behaviour cloning end to end; write ``agent.pt`` and ``metrics.json`` to ``config.out``."""
    with Run(config) as run:
        dataset, agent, train_eps, val = load_demos(run, language_model=True)
        train = TokenStore(Decision, encode_for(agent, train_eps), config.out)
        fit = fit_policy(agent, train, val, config, run.writer)
        metrics = {**demo_metrics(dataset, config.val_episodes), **fit}
        return run.finish(agent, metrics, step=fit["updates"], env_kwargs=dataset.env_kwargs)


@dataclass
class BCShortConfig(BCConfig):
    """BC with the imitation budget of the IWM run it controls: at most ``max_updates -
    wm_updates`` updates, the cap of ``iwm --budget matched``'s BC stage. Without it, a
    matched IWM run that is worse than BC may only have had fewer imitation updates."""

    learner: str = option("bc-short", "the registered learner this run trains as")
    out: str = option("runs/bc-short", "directory for ``agent.pt`` and ``metrics.json``")
    wm_updates: int = option(
        1000, "world-model updates of the matched IWM run; BC keeps max_updates minus these", low=0
    )

    def problems(self) -> list[str]:
        """BC's problems, and a world-model share that leaves BC no updates."""
        problems = super().problems()
        numbers = isinstance(self.wm_updates, int) and isinstance(self.max_updates, int)
        if numbers and self.wm_updates >= self.max_updates:
            problems.append(
                f"wm_updates ({self.wm_updates}) must be smaller than max_updates "
                f"({self.max_updates}): BC gets the difference"
            )
        return problems

    @property
    def bc_updates(self) -> int:
        """``max_updates - wm_updates``."""
        return self.max_updates - self.wm_updates


@dataclass
class DAggerConfig(BCConfig):
    """DAgger: BC on the demos, then rounds of rolling out the learner on the train split,
    labelling every state it visits with the env's expert, and retraining on all labels."""

    learner: str = option("dagger", "the registered learner this run trains as")
    out: str = option("runs/dagger", "directory for ``agent.pt`` and ``metrics.json``")
    iterations: int = option(4, "rounds of learner rollouts labelled by the expert", low=0)
    rollouts: int = option(20, "learner episodes per round (fresh train instances)", low=1)


#: DAgger's rollouts use train-split instance seeds from here on, away from the demos'.
DAGGER_SEED = 1_000_000


def run_learner_episode(env: Any, agent: Agent, seed: int, rng: np.random.Generator) -> Episode:
    """One episode of ``agent`` acting (sampling, so rounds cover more states), every
    visited state labelled with the expert's command."""
    agent.reset()
    return run_expert_episode(
        env, seed, lambda obs, info: agent.act(obs, info, greedy=False, rng=rng)
    )


def train_dagger(config: DAggerConfig) -> dict[str, Any]:
    """Run DAgger end to end; write ``agent.pt`` and ``metrics.json`` to ``config.out``."""
    with Run(config) as run:
        dataset, agent, train_eps, val = load_demos(run)
        env = make(config.env_id, split="train", **dataset.env_kwargs)
        rng = np.random.default_rng(config.seed)
        train = TokenStore(Decision, encode_decisions(agent, train_eps), config.out)
        labelled_steps = sum(len(e.steps) for e in train_eps)
        fit = fit_policy(agent, train, val, config, run.writer)
        updates, learner_success, hit_cap = fit["updates"], [], fit["hit_cap"]
        for round_ in range(config.iterations):
            first = DAGGER_SEED + round_ * config.rollouts
            rollouts = [
                run_learner_episode(env, agent, s, rng)
                for s in range(first, first + config.rollouts)
            ]
            learner_success.append(float(np.mean([e.success for e in rollouts])))
            run.writer.add_scalar("charts/dagger_rollout_success", learner_success[-1], updates)
            train.extend(encode_decisions(agent, rollouts))  # aggregate: every label so far
            labelled_steps += sum(len(e.steps) for e in rollouts)
            fit = fit_policy(agent, train, val, config, run.writer, updates)
            updates += fit["updates"]
            hit_cap = hit_cap or fit["hit_cap"]
        env.close()
        metrics = {
            **demo_metrics(dataset, config.val_episodes),
            **fit,
            "updates": updates,
            "hit_cap": hit_cap,  # any round's fit
            "labelled_steps": labelled_steps,
            "rollout_success": learner_success,
        }
        return run.finish(agent, metrics, step=updates, env_kwargs=dataset.env_kwargs)


def load_demos(
    run: Run, language_model: bool = False
) -> tuple[Dataset, Agent, list[Episode], TokenStore[Decision]]:
    """Load the demo budget of ``run.config``, build the run's fresh agent, and hold out
    validation episodes (their decisions tokenized into a store on disk, in ``config.out``).
    ``language_model``: the learner trains a language-model agent too (``--agent lm``)."""
    config = run.config
    dataset = load_dataset(config.demos, env_id=config.env_id)
    if config.val_episodes is not None:
        dataset, train_eps, val_eps = _outside_budget(dataset, config)
    else:
        if config.episodes is not None:
            dataset = dataset.subset(config.episodes)
        train_eps, val_eps = split_episodes(dataset, config.val_fraction, config.seed)
    agent = run.new_agent(language_model=language_model, env_kwargs=dataset.env_kwargs)
    val = TokenStore(Decision, encode_for(agent, val_eps), config.out)
    return dataset, agent, train_eps, val


def _outside_budget(dataset: Dataset, config: BCConfig) -> tuple[Dataset, list, list]:
    """The first ``val_episodes`` episodes to validate on, the next ``episodes`` (default:
    the rest) to train on, and the dataset cut to both (a prefix of the file, so rollouts
    keep naming its episodes by their index)."""
    n_val, total = config.val_episodes, len(dataset.episodes)
    n_train = config.episodes if config.episodes is not None else total - n_val
    if n_train < 1 or n_val + n_train > total:
        raise ValueError(
            f"{config.demos}: {total} demo episodes cannot hold {n_val} validation episodes "
            f"and a budget of {n_train}; collect at least {n_val + max(n_train, 1)}"
        )
    dataset = dataset.subset(n_val + n_train)
    return dataset, dataset.episodes[n_val:], dataset.episodes[:n_val]


def fit_policy(
    agent: Agent,
    train: Sequence[Decision],
    val: Sequence[Decision],
    config: BCConfig,
    writer: SummaryWriter,
    global_step: int = 0,
    loss: PolicyLoss | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """:func:`behaviour_cloning` with the settings of ``config`` (at most
    ``config.bc_updates`` updates; ``loss`` replaces the NLL; ``optimizer`` continues one)."""
    return behaviour_cloning(
        agent,
        train,
        val,
        max_updates=config.bc_updates,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        val_every=config.val_every,
        patience=config.patience,
        seed=config.seed,
        writer=writer,
        progress=config.progress,
        global_step=global_step,
        loss=loss,
        optimizer=optimizer,
    )


def demo_metrics(dataset: Dataset, val_episodes: int | None = None) -> dict[str, Any]:
    """What every run trained on demos reports about its data: the demo budget (without the
    ``val_episodes`` kept outside it, the dataset's first)."""
    budget = dataset.episodes[val_episodes or 0 :]
    return {
        "demo_episodes": len(budget),
        "demo_steps": sum(len(e.steps) for e in budget),
        **({"val_episodes": val_episodes} if val_episodes is not None else {}),
    }
