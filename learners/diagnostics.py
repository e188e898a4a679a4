"""Diagnostics that explain an early-experience result (issue 16, item 7).

Two questions, each with a command-line entry (``python -m learners.diagnostics``):

**Does the world model know what a command reveals?** (``wm``) A world-model head can score
a high next-observation token F1 by re-predicting what the state already says ("You arrive
at", the receptacle's name, the room) and what the command's verb fixes. What early
experience could teach beyond imitation is in the other tokens: what opening a container,
arriving somewhere or examining something *shows*. So:

* A transition ``(state, command, next observation)`` *reveals* the tokens of the next
  observation that are in neither the state's text (the goal, the current observation and
  the whole episode so far: every past observation and command) nor the command
  (:func:`revealed_tokens`). Only commands whose purpose is to look count
  (:func:`reveal_class`): a generic rule by verb (``go``/``click``/``go_back``/``move``/
  ``turn``/``search`` arrive somewhere, ``open``/``toggle`` open something, ``examine``/
  ``inspect``/``read`` and tool look-ups (``get_``, ``find_``, ``list_``) examine,
  ``look`` looks), with per-setting overrides where a verb means something else there
  (:data:`REVEAL_OVERRIDES`: Lab's ``use thermometer on X`` examines, Household's ``use``
  switches a lamp; a web click on a cancel or buy button changes the site, it does not
  navigate). Token sets are in the agent's hashed id space, as the head predicts them.
* The head's *revealed-token F1* on held-out branched transitions (the rollouts of the
  validation episodes, the same split the run validated its world model on): the head's
  predicted next observation minus the state's and the command's tokens, against the
  revealed tokens. Micro F1 pools hits over transitions (nothing revealed and nothing
  predicted costs nothing); macro F1 averages over the transitions that revealed something.
* The **count-table baseline** (:class:`CountTable`), fitted on the training episodes'
  revealing transitions: for a command it backs off from the command's exact tokens
  (``open fridge 1``) to its tokens without numbers (``open fridge``) to its verb alone
  (``open``), taking the most specific key seen at least ``min_count`` times in training,
  and predicts every token that that key revealed in at least a fraction ``threshold`` of
  its training transitions ("what opening a fridge revealed most often in training"),
  minus the tokens already in the state. ``threshold`` (0.05 to 0.95) and ``min_count``
  (1, 2, 3, 5) are chosen by two-fold cross-fitting over the training episodes (fit on
  one half, micro F1 on the other, both ways), then the table is refitted on all of them.
  It knows nothing of the state but what it subtracts: a head that does not beat it has
  not learned anything about *this* state that a lookup of the command could not give.
* *Content* tokens: the revealed tokens that name something the agent can act on, the
  entity vocabulary (:func:`entity_vocabulary`): every word of an admissible command in
  the demos but the commands' verbs and function words (``take bowl 1 from shelf 1`` ->
  bowl, 1, shelf). What is left out is what the command fixes ("arrive", "at", "closed",
  "facing", "There's nothing special about"), which the first such command of an episode
  reveals whatever the state, and plain words such as "nothing". Head and table are
  scored on content tokens the same way (both predictions cut to the vocabulary), and the
  report lists the most often revealed tokens with how often each predicted them.
* For context: the head's F1 on the whole next observation and copying the current
  observation's (as ``validate_world_model`` computes them, the mean over transitions;
  over every validation transition it equals the run's ``wm_final_val_f1``), and the share
  of a next observation's tokens that are revealed.
* Which head: an IWM run saves the network after stage 2, whose imitation updates can
  overwrite what the head learned (its ``wm_final_val_f1`` against ``wm_val_f1``). The
  ``stage1`` command (:func:`rebuild_stage_one`) rebuilds the run's stage 1 alone from its
  checkpoint's model, seed and budget (the same calls in the same order, so the same
  weights and the same ``wm_val_f1``) and saves that agent, to score the head at its best.

**Why do a policy's test episodes fail?** (``failures``) Each test episode is played with
the env's expert asked, at every state, what it would do (the contract's
``expert_action`` works from any reachable state); a step *deviates* when the agent's
command is not the expert's. Every failed episode gets exactly one primary category
(:func:`classify`). First the *step errors* (:func:`step_errors`), each a deviating step
that advanced no checklist item (a command the expert would not have given and that got
the task nowhere), or the step on which the episode ended in failure; a command the agent
repeated in a loop (below) is the loop's, not a step error:

* ``wrong answer``: the episode ended in failure (terminated without success) on an
  answer command (Lab's ``focus on``, WebNav's ``answer[...]``, Shop's buy button,
  Tools' ``respond``/``transfer``): the env judged an answer wrong.
* ``wrong transformation``: a transformation command (Household's clean/heat/cool and
  lamp switch, Lab's activate/mix/connect/close, WebNav's ``type``/``submit``/cancel,
  Cooking's cook/cut, grids' ``toggle``) that names something the goal names (the goal's
  object, or what an observation showed inside the named container) or that undid a
  checklist item: heated an apple the goal wants cool, typed another city, turned the lamp
  off. A transformation that ends the episode in failure (mixing a paint away, cancelling
  another order) counts whatever it names.
* ``skipped transformation``: a placement (``put``/``insert``/``drop``) of the goal's
  object (its words, or the contents an observation showed in it, name something the goal
  names) into a destination the goal names, which advanced nothing: the object was not
  ready (put in the fridge before it was cooled).
* ``wrong placement``: the same, into a destination the goal does not name (right object,
  wrong destination).

The primary category is the *earliest* step error. An episode without one gets the first
of these that applies:

* ``loop``: the agent chose the same command from the same observation ``loop_threshold``
  (3) times or more where the expert would have done something else (the expert's own
  repeated ``wait`` while a freezer works is no loop).
* ``search order``: the agent never observed what the task needs: the goal's object (as
  many instances as the task needs, and the lamp of a look-at-in-light task) in
  Household; the task's substance (and the thermometer for a measurement), both
  ingredient paints, the component or the seed in Lab; the page of any checklist item
  that starts with "visited" (WebNav). Only that is decided: whether an agent that did
  find it searched in a bad *order* is not (no env exposes an order to compare with but
  its expert's, and a different order is not a wrong one).
* ``ran out of steps``: the registered step cap truncated it.
* ``other``: none of the above (e.g. an unrecoverable failure on a search command).

Every category that applies is reported beside the primary one, with its evidence.

What is *not* decided, honestly: "the expert would not have given it" compares with one
expert, so an equivalent alternative (heating in the second microwave) deviates; the rule
"advanced no checklist item" keeps it out of the errors only when it did advance the
checklist, which an equivalent first step of a longer plan may not (Lab's wiring in
another order). Relevance is by words: Lab's ``put water in flower pot 1`` for a plant
goal is not the goal's object, Lab's ``activate stove`` for a goal to boil milk names
nothing of it (so it is an error only when it undoes a checklist item), and a grid's
``drop`` names no object, so skipped transformation and wrong placement are never
decided there. A two-object Household task whose second object goes into another
receptacle of the target type is counted as a skipped transformation (the checklist does
not say which receptacle it counts). Search order is undecided (never flagged) in
Cooking, Shop, Tools and the grids, whose info exposes nothing to tell whether the agent
found the target; the report says so.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents import Agent, collate
from agents.tokenizer import HashingTokenizer
from envs import make, resolve_id
from learners.config import parse_value
from learners.data import Dataset, load_dataset
from learners.evaluate import EVAL_SEED, AgentPolicy, Policy
from learners.imitation import demo_metrics, load_demos, split_episodes
from learners.lifecycle import Run
from learners.rollouts import BranchedState, load_rollouts
from learners.training import adam
from learners.world_model import IWMConfig, encode_transition, load_transitions, world_modeling

# --------------------------------------------------------------------------------------------
# Command vocabularies
# --------------------------------------------------------------------------------------------

SEARCH, TAKE, TRANSFORM, PLACE, ANSWER, OTHER = (
    "search",
    "take",
    "transform",
    "place",
    "answer",
    "other",
)
#: What a command does, by its verb (the generic rule).
VERB_KINDS: dict[str, str] = {
    **dict.fromkeys(
        ("go", "open", "examine", "look", "click", "go_back", "search", "move", "turn"), SEARCH
    ),
    **dict.fromkeys(("inspect", "read", "check", "get", "find", "list"), SEARCH),
    **dict.fromkeys(("take", "pick", "grab"), TAKE),
    **dict.fromkeys(("clean", "heat", "cool", "cook", "chop", "slice", "dice"), TRANSFORM),
    **dict.fromkeys(("prepare", "mix", "activate", "deactivate", "connect"), TRANSFORM),
    **dict.fromkeys(("disconnect", "type", "submit", "toggle", "use", "close"), TRANSFORM),
    **dict.fromkeys(("modify", "cancel", "return", "exchange", "update"), TRANSFORM),
    **dict.fromkeys(("put", "drop", "insert", "place"), PLACE),
    **dict.fromkeys(("answer", "focus", "respond", "transfer", "buy", "stop"), ANSWER),
}
#: Per-setting exceptions to :data:`VERB_KINDS` (setting name -> verb -> kind).
KIND_OVERRIDES: dict[str, dict[str, str]] = {
    "Household": {"close": OTHER, "use": TRANSFORM},  # ``use desklamp 1`` switches a lamp
    "Lab": {"use": SEARCH, "close": TRANSFORM},  # measuring reads; a closed freezer cools
}

ARRIVE, OPEN, EXAMINE, LOOK = "arrive", "open", "examine", "look"
#: Which commands reveal, by verb (the generic rule); a verb not listed reveals nothing.
REVEAL_VERBS: dict[str, str] = {
    **dict.fromkeys(("go", "click", "go_back", "move", "turn", "search"), ARRIVE),
    **dict.fromkeys(("open", "toggle"), OPEN),
    **dict.fromkeys(("examine", "inspect", "read", "check", "get", "find", "list"), EXAMINE),
    "look": LOOK,
}
#: Per-setting exceptions to :data:`REVEAL_VERBS` (setting name -> verb -> class or None).
REVEAL_OVERRIDES: dict[str, dict[str, str | None]] = {
    "Lab": {"use": EXAMINE},  # ``use thermometer on X`` shows a temperature
    "Household": {"use": None},  # ``use desklamp 1`` switches a lamp
}
#: Web buttons whose click changes the site (kind, reveal class) rather than navigating.
_BUTTONS = (("cancel", TRANSFORM), ("buy", ANSWER), ("checkout", ANSWER))

_VERB_RE = re.compile(r"[a-z_]+")


def setting_name(env_id: str | None) -> str:
    """``"earlyexp/Household-v0"`` -> ``"Household"`` (the key of the per-setting tables)."""
    if not env_id:
        return ""
    return env_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1].split("-v")[0]


def command_verb(command: str) -> str:
    """The command's verb: its first word (``go to fridge 1`` -> ``go``, ``click[Orders]`` ->
    ``click``), or a tool call's name up to its first underscore (``get_order_details(...)``
    -> ``get``) when the whole name is not a known verb."""
    match = _VERB_RE.match(command.strip().lower())
    if match is None:
        return ""
    word = match.group(0)
    if word in VERB_KINDS or word in REVEAL_VERBS or "_" not in word:
        return word
    return word.split("_", 1)[0]


def _button(command: str) -> str | None:
    """A web button's kind when ``command`` clicks one that changes the site."""
    if not command.lower().startswith("click["):
        return None
    label = command.lower()
    return next((kind for word, kind in _BUTTONS if word in label), None)


def command_kind(command: str, env_id: str | None = None) -> str:
    """What ``command`` does: search, take, transform, place, answer or other (see
    :data:`VERB_KINDS` and :data:`KIND_OVERRIDES`)."""
    button = _button(command)
    if button is not None:
        return button
    verb = command_verb(command)
    overrides = KIND_OVERRIDES.get(setting_name(env_id), {})
    if verb in overrides:
        return overrides[verb]
    return VERB_KINDS.get(verb, OTHER)


def reveal_class(command: str, env_id: str | None = None) -> str | None:
    """How ``command`` reveals (arrive, open, examine, look), or None when its purpose is not
    to look (see :data:`REVEAL_VERBS` and :data:`REVEAL_OVERRIDES`)."""
    if _button(command) is not None:
        return None
    verb = command_verb(command)
    overrides = REVEAL_OVERRIDES.get(setting_name(env_id), {})
    if verb in overrides:
        return overrides[verb]
    return REVEAL_VERBS.get(verb)


# --------------------------------------------------------------------------------------------
# Revealed tokens and token F1
# --------------------------------------------------------------------------------------------

Tokenize = Callable[[str], Iterable[Any]]
_WORDS = HashingTokenizer(vocab_size=1 << 16)


def state_tokens(
    goal: str,
    text: str,
    history: Sequence[tuple[str, str]],
    command: str,
    tokenize: Tokenize = _WORDS.tokenize,
) -> set:
    """Every token the agent has been shown or has said: the goal, the current observation,
    each past observation and command, and the command now taken."""
    tokens = set(tokenize(goal)) | set(tokenize(text)) | set(tokenize(command))
    for past_text, past_command in history:
        tokens |= set(tokenize(past_text)) | set(tokenize(past_command))
    return tokens


def revealed_tokens(
    goal: str,
    text: str,
    history: Sequence[tuple[str, str]],
    command: str,
    next_text: str,
    tokenize: Tokenize = _WORDS.tokenize,
) -> set:
    """The tokens of ``next_text`` that are in neither the state's text (``goal``, ``text``,
    the ``history`` of ``(observation, command)`` pairs) nor ``command``: what acting showed.
    Tokens are lowercased words (the default) or whatever ``tokenize`` returns (an agent's
    ``tokenizer.token_ids``)."""
    return set(tokenize(next_text)) - state_tokens(goal, text, history, command, tokenize)


def token_f1(predicted: set, actual: set) -> float:
    """Set F1 of ``predicted`` against ``actual``; 1.0 when both are empty."""
    if not predicted and not actual:
        return 1.0
    return 2 * len(predicted & actual) / (len(predicted) + len(actual))


@dataclass
class F1Tally:
    """Token-set F1 over many transitions: micro (hits pooled) and macro (the mean over the
    transitions whose actual set is non-empty), with precision and recall (micro)."""

    hits: int = 0
    predicted: int = 0
    actual: int = 0
    scores: list[float] = field(default_factory=list)

    def add(self, predicted: set, actual: set) -> None:
        """Count one transition."""
        self.hits += len(predicted & actual)
        self.predicted += len(predicted)
        self.actual += len(actual)
        if actual:
            self.scores.append(token_f1(predicted, actual))

    @property
    def precision(self) -> float:
        """Pooled hits over pooled predictions (1.0 when nothing was predicted)."""
        return self.hits / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        """Pooled hits over pooled actual tokens (1.0 when there were none)."""
        return self.hits / self.actual if self.actual else 1.0

    @property
    def micro(self) -> float:
        """F1 of the pooled counts (1.0 when nothing was predicted nor actual)."""
        size = self.predicted + self.actual
        return 2 * self.hits / size if size else 1.0

    @property
    def macro(self) -> float:
        """Mean F1 over transitions with a non-empty actual set (NaN when there are none)."""
        return float(np.mean(self.scores)) if self.scores else float("nan")


# --------------------------------------------------------------------------------------------
# The count-table baseline
# --------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"^\d+$")
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
MIN_COUNTS = (1, 2, 3, 5)


def command_keys(command: str) -> tuple[tuple[str, ...], ...]:
    """The count table's keys for ``command``, most specific first: its tokens, its tokens
    without numbers, its verb."""
    words = tuple(_WORDS.tokenize(command))
    plain = tuple(w for w in words if not _NUMBER.match(w))
    return (("=", *words), ("~", *plain), ("v", command_verb(command)))


class CountTable:
    """Predicts what a command reveals from what the same command revealed in training.

    Args:
        threshold: a token is predicted when the key revealed it in at least this fraction
            of its training transitions.
        min_count: the most specific key (see :func:`command_keys`) with at least this many
            training transitions answers; none -> nothing predicted.
    """

    def __init__(self, threshold: float = 0.5, min_count: int = 1) -> None:
        self.threshold, self.min_count = threshold, min_count
        self.seen: Counter = Counter()
        self.counts: dict[tuple[str, ...], Counter] = {}

    def fit(self, items: Iterable[tuple[str, set]]) -> CountTable:
        """Count ``(command, revealed tokens)`` pairs; returns the table."""
        for command, revealed in items:
            for key in command_keys(command):
                self.seen[key] += 1
                self.counts.setdefault(key, Counter()).update(revealed)
        return self

    def predict(self, command: str, exclude: set | frozenset = frozenset()) -> set:
        """The tokens ``command`` is predicted to reveal, minus ``exclude`` (the state's)."""
        for key in command_keys(command):
            n = self.seen.get(key, 0)
            if n >= self.min_count:
                cut = self.threshold * n
                return {t for t, c in self.counts[key].items() if c >= cut} - set(exclude)
        return set()

    @classmethod
    def tuned(
        cls,
        items: Sequence[tuple[int, str, set, set]],
        thresholds: Sequence[float] = THRESHOLDS,
        min_counts: Sequence[int] = MIN_COUNTS,
    ) -> CountTable:
        """A table fitted on ``items`` (``(episode, command, state tokens, revealed)``) with
        ``threshold`` and ``min_count`` chosen by two-fold cross-fitting over episodes (the
        best micro F1 on the held-out fold, averaged over both; ties: the first in grid
        order)."""
        episodes = sorted({e for e, *_ in items})
        half = set(episodes[::2])
        folds = [[i for i in items if i[0] in half], [i for i in items if i[0] not in half]]
        best, best_score = (thresholds[0], min_counts[0]), -1.0
        for min_count in min_counts:
            for threshold in thresholds:
                scores = []
                for fit_on, score_on in ((folds[0], folds[1]), (folds[1], folds[0])):
                    if not fit_on or not score_on:
                        continue
                    table = cls(threshold, min_count).fit((c, r) for _, c, _, r in fit_on)
                    tally = F1Tally()
                    for _, command, state, revealed in score_on:
                        tally.add(table.predict(command, state), revealed)
                    scores.append(tally.micro)
                score = float(np.mean(scores)) if scores else 0.0
                if score > best_score:
                    best, best_score = (threshold, min_count), score
        return cls(*best).fit((c, r) for _, c, _, r in items)


def entity_vocabulary(agent: Agent, dataset: Dataset) -> set:
    """Token ids of the words that name what the agent can act on: every word of every
    admissible command of ``dataset`` except the first (the verb) and function words."""
    vocab: set = set()
    commands = {c for e in dataset.episodes for s in e.steps for c in s.admissible}
    for command in commands:
        for word in _WORDS.tokenize(command)[1:]:
            if word not in _STOPWORDS and (word.isalnum() or word == "_"):
                vocab.add(agent.tokenizer.token_ids(word)[0])
    return vocab


# --------------------------------------------------------------------------------------------
# World-model report
# --------------------------------------------------------------------------------------------


@dataclass
class Move:
    """One branched transition, as the world-model report scores it."""

    episode: int
    command: str
    reveal: str | None
    state: set  # the state's and the command's token ids
    current: set  # the current observation's token ids
    next: set  # the next observation's token ids

    @property
    def revealed(self) -> set:
        """The next observation's ids in neither the state nor the command."""
        return self.next - self.state


def moves_of(agent: Agent, dataset: Dataset, state: BranchedState, env_id: str) -> list[Move]:
    """The expert's and the branched moves of ``state``, in the order of
    :func:`learners.world_model.encode_transition` (the expert's first)."""
    episode = dataset.episodes[state.episode]
    step = episode.steps[state.step]
    history = [(s.text, s.executed) for s in episode.steps[: state.step]]
    ids = agent.tokenizer.token_ids
    current = set(ids(step.text))
    moves = []
    for move in (state.expert, *state.branches):
        seen = state_tokens(episode.goal, step.text, history, move.action, ids)
        moves.append(
            Move(
                state.episode,
                move.action,
                reveal_class(move.action, env_id),
                seen,
                current,
                set(ids(move.next_text)),
            )
        )
    return moves


@torch.no_grad()
def head_predictions(
    agent: Agent,
    dataset: Dataset,
    states: Sequence[BranchedState],
    target: str,
    batch_size: int = 16,
) -> list[list[set]]:
    """The world-model head's predicted next observation (token ids) of every move of every
    state, as ``world_model_loss`` predicts it under ``target`` (``delta``: the current
    observation minus what disappears, plus what appears; ``next``: channel 0)."""
    agent.model.eval()
    out: list[list[set]] = []
    for i in range(0, len(states), batch_size):
        chunk = [
            encode_transition(agent, dataset.episodes[s.episode], s)
            for s in states[i : i + batch_size]
        ]
        batch = collate([t.state for t in chunk], [t.candidates for t in chunk], agent.device)
        logits = agent.model.world_model_logits(agent.model.encode(batch).z).float()
        appear = (logits[..., 0, :] > 0).cpu()
        disappear = (logits[..., 1, :] > 0).cpu()
        for b, transitions in enumerate(chunk):
            per_move = []
            current = torch.zeros(logits.shape[-1], dtype=torch.bool)
            current[transitions.current] = True
            for a in range(len(transitions.candidates)):
                if target == "next":
                    predicted = appear[b, a]
                else:
                    predicted = (current & ~disappear[b, a]) | appear[b, a]
                per_move.append(set(torch.nonzero(predicted).flatten().tolist()))
            out.append(per_move)
    return out


@dataclass
class WMRow:
    """One row of the world-model table: a group of validation transitions."""

    group: str
    transitions: int = 0
    revealing: int = 0  # transitions that revealed at least one token
    revealed_share: list[float] = field(default_factory=list)
    content_share: list[float] = field(default_factory=list)
    head: F1Tally = field(default_factory=F1Tally)
    table: F1Tally = field(default_factory=F1Tally)
    head_content: F1Tally = field(default_factory=F1Tally)
    table_content: F1Tally = field(default_factory=F1Tally)
    head_all: list[float] = field(default_factory=list)
    copy_all: list[float] = field(default_factory=list)

    def add(self, move: Move, predicted: set, table: set, vocab: set) -> None:
        """Count one move: its revealed tokens (and those of them in the entity ``vocab``)
        against the head's and the table's new tokens; its whole next observation against
        the head's and the copy's."""
        revealed = move.revealed
        content = revealed & vocab
        new = predicted - move.state
        self.transitions += 1
        self.revealing += bool(revealed)
        size = len(move.next) or 1
        self.revealed_share.append(len(revealed) / size)
        self.content_share.append(len(content) / size)
        self.head.add(new, revealed)
        self.table.add(table, revealed)
        self.head_content.add(new & vocab, content)
        self.table_content.add(table & vocab, content)
        self.head_all.append(token_f1(predicted, move.next))
        self.copy_all.append(token_f1(move.current, move.next))

    def as_dict(self) -> dict[str, Any]:
        """The row's numbers."""
        out: dict[str, Any] = {
            "group": self.group.strip(),
            "transitions": self.transitions,
            "revealing": self.revealing,
            "revealed_share": _mean(self.revealed_share),
            "content_share": _mean(self.content_share),
        }
        tallies = (
            ("head_revealed", self.head),
            ("table_revealed", self.table),
            ("head_content", self.head_content),
            ("table_content", self.table_content),
        )
        for name, tally in tallies:
            out[f"{name}_precision"] = tally.precision
            out[f"{name}_recall"] = tally.recall
            out[f"{name}_f1"] = tally.micro
            out[f"{name}_macro_f1"] = tally.macro
        out["head_all_f1"] = _mean(self.head_all)
        out["copy_all_f1"] = _mean(self.copy_all)
        return out


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def world_model_report(
    agent: Agent,
    demos: str | Path,
    rollouts: str | Path,
    *,
    episodes: int | None = None,
    val_fraction: float = 0.2,
    seed: int | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """The head of ``agent`` on the validation episodes' branched transitions beside the
    count-table baseline fitted on the training episodes' (see the module docstring).

    ``episodes``, ``seed`` and ``target`` default to what the run that trained ``agent``
    stored in its checkpoint (``demo_episodes``, ``seed``, ``target``), so the split is the
    run's own; ``val_fraction`` is BC's default (0.2) unless given.
    """
    meta = agent.meta
    dataset = load_dataset(demos)
    episodes = episodes if episodes is not None else meta.get("demo_episodes")
    if episodes is not None and episodes < len(dataset.episodes):
        dataset = dataset.subset(int(episodes))
    seed = int(seed if seed is not None else meta.get("seed", 0))
    target = target or meta.get("target", "delta")
    train_eps, _ = split_episodes(dataset, val_fraction, seed)
    train_seeds = {e.seed for e in train_eps}
    env_id = dataset.env_id
    train_items: list[tuple[int, str, set, set]] = []
    val_states: list[BranchedState] = []
    vocab = entity_vocabulary(agent, dataset)
    for state in load_rollouts(rollouts, dataset):
        if dataset.episodes[state.episode].seed not in train_seeds:
            val_states.append(state)
            continue
        for move in moves_of(agent, dataset, state, env_id):
            if move.reveal is not None:
                train_items.append((move.episode, move.command, move.state, move.revealed))
    table = CountTable.tuned(train_items)
    words = _word_of(agent, dataset, val_states)
    tokens: dict[int, Counter] = {}  # revealed id -> counts (revealed, content, head, table)
    rows: dict[str, WMRow] = {}

    def row(name: str) -> WMRow:
        return rows.setdefault(name, WMRow(name))

    for name in ("revealing commands", *(f"  {c}" for c in (ARRIVE, OPEN, EXAMINE, LOOK))):
        row(name)
    row("other commands")
    row("all transitions")
    predictions = head_predictions(agent, dataset, val_states, target)
    for state, predicted in zip(val_states, predictions, strict=True):
        for move, pred in zip(moves_of(agent, dataset, state, env_id), predicted, strict=True):
            guess = table.predict(move.command, move.state) if move.reveal else set()
            groups = ["all transitions"]
            if move.reveal is None:
                groups.append("other commands")
            else:
                groups += ["revealing commands", f"  {move.reveal}"]
            for name in groups:
                row(name).add(move, pred, guess, vocab)
            if move.reveal is not None:
                for t in move.revealed:
                    tally = tokens.setdefault(t, Counter())
                    tally["revealed"] += 1
                    tally["content"] += t in vocab
                    tally["head"] += t in pred
                    tally["table"] += t in guess
    return {
        "env_id": env_id,
        "agent_learner": meta.get("learner"),
        "agent_stage": "after stage 1" if meta.get("stage") == 1 else "as saved",
        "target": target,
        "seed": seed,
        "demo_episodes": len(dataset.episodes),
        "val_episodes": len(dataset.episodes) - len(train_eps),
        "table": {"threshold": table.threshold, "min_count": table.min_count},
        "table_train_transitions": len(train_items),
        "run_wm_final_val_f1": meta.get("wm_final_val_f1"),
        "rows": [r.as_dict() for r in rows.values() if r.transitions],
        "top_revealed": [
            {"token": words.get(t, str(t)), **counts}
            for t, counts in sorted(tokens.items(), key=lambda kv: -kv[1]["revealed"])[:TOP]
        ],
    }


#: How many of the most often revealed tokens the world-model report lists.
TOP = 20


def _word_of(agent: Agent, dataset: Dataset, states: Sequence[BranchedState]) -> dict[int, str]:
    """Token id -> a word it hashes from, over the texts of ``states`` (for reading ids)."""
    words: dict[int, str] = {}
    for state in states:
        episode = dataset.episodes[state.episode]
        texts = [episode.goal, *(s.text for s in episode.steps)]
        texts += [m.next_text for m in (state.expert, *state.branches)]
        for text in texts:
            for word in agent.tokenizer.tokenize(text):
                words.setdefault(agent.tokenizer.token_ids(word)[0], word)
    return words


def format_wm_report(report: dict[str, Any]) -> str:
    """The world-model report as a Markdown table."""
    table = report["table"]
    lines = [
        f"World model on revealed tokens: {report['env_id']}, agent {report['agent_learner']} "
        f"({report.get('agent_stage', 'as saved')}; target {report['target']}, seed "
        f"{report['seed']}), {report['val_episodes']} validation episodes of "
        f"{report['demo_episodes']}; count table: threshold {table['threshold']}, min count "
        f"{table['min_count']}, fitted on {report['table_train_transitions']} training "
        "transitions. Revealed: next-observation tokens in neither the state nor the command; "
        "content: revealed tokens that name something the agent can act on (a word of the "
        "demos' admissible commands, verbs and function words aside). F1 is micro (pooled), "
        "precision / recall after it.",
        "",
        "| transitions | n | revealing | revealed share | content share | head F1 revealed "
        "| table F1 revealed | head F1 content | table F1 content | head all-token F1 "
        "| copy all-token F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        looks = r["group"] not in ("other commands", "all transitions")
        indent = "&nbsp;&nbsp;" if r["group"] in (ARRIVE, OPEN, EXAMINE, LOOK) else ""
        cells = [
            indent + r["group"],
            str(r["transitions"]),
            str(r["revealing"]),
            _num(r["revealed_share"]),
            _num(r["content_share"]),
            _f1_cell(r, "head_revealed"),
            _f1_cell(r, "table_revealed") if looks else "",
            _f1_cell(r, "head_content"),
            _f1_cell(r, "table_content") if looks else "",
            _num(r["head_all_f1"]),
            _num(r["copy_all_f1"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if report.get("top_revealed"):
        lines += [
            "",
            "The tokens revealing commands revealed most often (content: an entity word), and "
            "how often the head and the table predicted them:",
            "",
            "| token | content | revealed | head predicted | table predicted |",
            "|---|---|---:|---:|---:|",
        ]
        for t in report["top_revealed"]:
            content = "yes" if t["content"] else "no"
            lines.append(
                f"| {t['token']} | {content} | {t['revealed']} | {t['head']} | {t['table']} |"
            )
    if report.get("run_wm_final_val_f1") is not None:
        lines += [
            "",
            f"The checkpoint reported wm_final_val_f1 = {report['run_wm_final_val_f1']:.3f} "
            "(the 'all transitions' head all-token F1 recomputes it).",
        ]
    return "\n".join(lines)


def _f1_cell(row: dict[str, Any], name: str) -> str:
    return (
        f"{_num(row[f'{name}_f1'])} ({_num(row[f'{name}_precision'])} / "
        f"{_num(row[f'{name}_recall'])})"
    )


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:.3f}"


def rebuild_stage_one(config: IWMConfig) -> dict[str, Any]:
    """Stage 1 of ``train_iwm(config)`` alone: the same calls in the same order from the same
    seed (so the same weights; its ``wm_val_f1`` is the run's), then ``agent.pt`` and
    ``metrics.json`` in ``config.out``. An IWM run's own checkpoint holds the network after
    stage 2, whose imitation updates may have overwritten what the world-model head learned
    (the run's ``wm_final_val_f1``); this is the head at its best, as stage 1 left it."""
    with Run(config) as run:
        dataset, agent, train_eps, _ = load_demos(run)
        wm_train, wm_val, _ = load_transitions(config, dataset, agent, train_eps)
        optimizer = adam(agent.model, config.wm_learning_rate) if config.keep_optimizer else None
        wm = world_modeling(
            agent,
            wm_train,
            wm_val,
            target=config.target,
            max_updates=config.wm_updates,
            batch_size=config.wm_batch_size,
            learning_rate=config.wm_learning_rate,
            val_every=config.val_every,
            patience=config.patience,
            seed=config.seed,
            writer=run.writer,
            progress=config.progress,
            optimizer=optimizer,
        )
        metrics = {
            **demo_metrics(dataset),
            **wm,
            "stage": 1,
            "target": config.target,
            "wm_final_val_f1": wm["wm_val_f1"],
            "wm_final_copy_f1": wm["wm_copy_f1"],
        }
        return run.finish(agent, metrics, step=wm["wm_updates"], env_kwargs=dataset.env_kwargs)


# --------------------------------------------------------------------------------------------
# Failure taxonomy
# --------------------------------------------------------------------------------------------

WRONG_ANSWER = "wrong answer"
WRONG_TRANSFORMATION = "wrong transformation"
SKIPPED_TRANSFORMATION = "skipped transformation"
WRONG_PLACEMENT = "wrong placement"
LOOP = "loop"
SEARCH_ORDER = "search order"
OUT_OF_STEPS = "ran out of steps"
OTHER_FAILURE = "other"
#: Errors of one step: a failed episode's primary category is the earliest of them.
STEP_CATEGORIES = (WRONG_ANSWER, WRONG_TRANSFORMATION, SKIPPED_TRANSFORMATION, WRONG_PLACEMENT)
#: Properties of the whole episode, in order of precedence where it has no step error.
EPISODE_CATEGORIES = (LOOP, SEARCH_ORDER, OUT_OF_STEPS, OTHER_FAILURE)
#: Every category (see the module docstring).
CATEGORIES = STEP_CATEGORIES + EPISODE_CATEGORIES


@dataclass
class StepRecord:
    """One step of a played episode."""

    text: str  # the observation the command was chosen from
    command: str
    expert: str | None  # the expert's command from the same state (None: it could not say)
    before: dict[str, bool]  # the checklist before the step
    after: dict[str, bool]  # ... and after it
    next_text: str
    invalid: bool = False

    @property
    def deviates(self) -> bool:
        """Whether the command is not the expert's."""
        return self.expert is None or self.command != self.expert

    @property
    def progressed(self) -> bool:
        """Whether some checklist item turned true on this step."""
        return any(v and not self.before.get(k, False) for k, v in self.after.items())

    @property
    def regressed(self) -> bool:
        """Whether some checklist item turned false on this step."""
        return any(v and not self.after.get(k, False) for k, v in self.before.items())


@dataclass
class EpisodeTrace:
    """A played episode: what the agent saw and did, what the expert would have done."""

    env_id: str
    seed: int
    goal: str
    first_text: str
    first_checklist: dict[str, bool]
    steps: list[StepRecord]
    success: bool
    terminated: bool
    truncated: bool

    def observations(self) -> list[str]:
        """Every observation of the episode, the first included."""
        return [self.first_text, *(s.next_text for s in self.steps)]


Act = Callable[[dict, dict], str]


def record_episode(env: Any, seed: int, act: Act, env_id: str = "") -> EpisodeTrace:
    """Play one episode of ``env`` (a made, step-capped env) from ``reset(seed=seed)`` with
    ``act(obs, info) -> command``, asking the env's expert at every state what it would do."""
    obs, info = env.reset(seed=seed)
    trace = EpisodeTrace(
        env_id, seed, obs["goal"], obs["text"], dict(info["checklist"]), [], False, False, False
    )
    while True:
        expert = _expert_of(env)
        command = act(obs, info)
        before = dict(info["checklist"])
        text = obs["text"]
        obs, _, terminated, truncated, info = env.step(command)
        trace.steps.append(
            StepRecord(
                text,
                command,
                expert,
                before,
                dict(info["checklist"]),
                obs["text"],
                bool(info.get("invalid_action", False)),
            )
        )
        if terminated or truncated:
            trace.success = bool(info["success"])
            trace.terminated, trace.truncated = bool(terminated), bool(truncated)
            return trace


@dataclass
class Diagnosis:
    """A failed episode's primary category and every category that applies (with evidence)."""

    category: str
    flags: dict[str, str]


_STOPWORDS = frozenset(
    _WORDS.tokenize(
        "a an the some any of in on into onto to from with and or then first second two it "
        "them its is are be your you task that will this when done if above below what which "
        "who how my me i put take find place make use turn focus cause change state matter "
        "substance actions action degrees celsius get"
    )
)
_PLACE_RE = re.compile(
    r"^(?:put|insert|place|move)\s+(?P<obj>.+?)\s+(?:in|on|into|onto|to)\s+(?P<dest>.+)$"
)


def _content_words(text: str) -> set[str]:
    return {w for w in _WORDS.tokenize(text) if w.isalpha() and w not in _STOPWORDS}


def placement_parts(command: str) -> tuple[str, str | None] | None:
    """``(object, destination)`` of a placement command (destination None when the command
    names none, as ``drop X``), or None when it names no object (a grid's ``drop``)."""
    command = command.strip()
    match = _PLACE_RE.match(command.lower())
    if match:
        return match.group("obj"), match.group("dest")
    verb, _, rest = command.partition(" ")
    if verb.lower() == "drop" and rest.strip():
        return rest.strip().lower(), None
    return None


def _contents(name: str, texts: Sequence[str]) -> str:
    """What the latest of ``texts`` shows in the container ``name`` ("glass cup (milk)")."""
    pattern = re.compile(re.escape(name) + r"\s*\(([^)]*)\)", re.IGNORECASE)
    for text in reversed(texts):
        found = pattern.findall(text)
        if found:
            return found[-1]
    return ""


def goal_needs(trace: EpisodeTrace) -> list[tuple[str, str, int]] | None:
    """What the agent must observe to have found what the task needs, per setting:
    ``(name, regular expression, instances needed)`` each; None where undecided (and for a
    checklist with "visited" items, which :func:`search_failure` reads directly)."""
    labels = list(trace.first_checklist)
    if any(k.lower().startswith("visited") for k in labels):
        return None
    name = setting_name(trace.env_id)
    goal = trace.goal
    if name == "Household" and labels:
        first = labels[0]
        match = re.match(r"^(?:a |first |holding )?([a-z]+)", first)
        if match is None:
            return None
        obj = match.group(1)
        count = 2 if first.startswith("first ") else 1
        needs = [(f"{count} {obj}", rf"\b{obj} \d+\b", count)]
        for label in labels[1:]:
            lamp = re.match(r"^([a-z]+) is on$", label)
            if lamp:
                needs.append((f"the {lamp.group(1)}", rf"\b{lamp.group(1)} \d+\b", 1))
        return needs
    if name == "Lab":
        names: list[str] = []
        patterns = [
            r"task is to (?:melt|boil|freeze) (.+?)\. First",
            r"measure the (?:temperature|melting point) of the (.+?)\. If",
            r"turn on the (.+?)\. First",
            r"grow a (.+?) plant from seed",
        ]
        for pattern in patterns:
            match = re.search(pattern, goal)
            if match:
                names = [match.group(1) + (" seed" if "grow a" in pattern else "")]
                if "measure the" in goal:
                    names.append("thermometer")
                break
        mix = next((re.match(r"^(.+?) paint and (.+?) paint are in", k) for k in labels), None)
        if not names and mix:
            names = [f"{mix.group(1)} paint", f"{mix.group(2)} paint"]
        if names:
            return [(n, rf"\b{re.escape(n)}\b", 1) for n in names]
    return None


def search_failure(trace: EpisodeTrace) -> tuple[bool | None, str]:
    """Whether the agent never observed what the task needs (None: undecided here), and
    the evidence."""
    visited = [k for k in trace.first_checklist if k.lower().startswith("visited")]
    if visited:
        states = [trace.first_checklist, *(s.after for s in trace.steps)]
        missed = [k for k in visited if not any(c.get(k, False) for c in states)]
        if missed:
            return True, f"never {missed[0]}"
        return False, ""
    needs = goal_needs(trace)
    if needs is None:
        return None, ""
    texts = trace.observations()
    missed = []
    for name, pattern, count in needs:
        regex = re.compile(pattern, re.IGNORECASE)
        if len({m.group(0).lower() for t in texts for m in regex.finditer(t)}) < count:
            missed.append(name)
    if not missed:
        return False, ""
    searches = {s.command for s in trace.steps if command_kind(s.command, trace.env_id) == SEARCH}
    return True, f"never observed {' and '.join(missed)} ({len(searches)} distinct search commands)"


def _names_goal(words: set[str], goal_words: set[str]) -> bool:
    return bool(words & goal_words)


def step_errors(trace: EpisodeTrace, loop_threshold: int = 3) -> list[tuple[int, str, str]]:
    """The episode's step errors ``(step index, category, evidence)`` in step order, at most
    one per step: wrong answer, wrong transformation, skipped transformation, wrong
    placement (see the module docstring). A command in a loop (its observation and command
    repeated ``loop_threshold`` times) is the loop's, not a step error."""
    env_id = trace.env_id
    goal_words = _content_words(trace.goal)
    repeats = Counter((s.text, s.command) for s in trace.steps if s.deviates)
    texts = [trace.first_text]
    errors: list[tuple[int, str, str]] = []
    last = len(trace.steps) - 1
    for t, step in enumerate(trace.steps):
        kind = command_kind(step.command, env_id)
        fatal = trace.terminated and t == last
        looped = repeats[(step.text, step.command)] >= loop_threshold
        wrong = step.deviates and not step.progressed and not step.invalid and not looped
        where = f"step {t + 1}: {step.command!r} where the expert would {_expert_phrase(step)}"
        if fatal and kind == ANSWER:
            errors.append((t, WRONG_ANSWER, f"step {t + 1}: {step.command!r} ended the episode"))
        elif kind == TRANSFORM and (fatal or wrong):
            rest = step.command.strip().partition(" ")[2]
            words = _content_words(rest) | _content_words(_contents(rest, texts))
            if fatal:
                errors.append((t, WRONG_TRANSFORMATION, f"{where} (ended the episode)"))
            elif _names_goal(words, goal_words) or step.regressed:
                why = "undid a checklist item" if step.regressed else "no checklist item advanced"
                errors.append((t, WRONG_TRANSFORMATION, f"{where} ({why})"))
        elif kind == PLACE and (fatal or wrong):
            parts = placement_parts(step.command)
            if parts is not None:
                obj, dest = parts
                words = _content_words(obj) | _content_words(_contents(obj, texts))
                if _names_goal(words, goal_words):
                    if dest is not None and _names_goal(_content_words(dest), goal_words):
                        category, why = SKIPPED_TRANSFORMATION, "the goal's destination, "
                        why += "but no checklist item advanced: the object was not ready"
                    else:
                        category, why = WRONG_PLACEMENT, "a destination the goal does not name"
                    errors.append((t, category, f"{where} ({why})"))
        texts.append(step.next_text)
    return errors


def classify(trace: EpisodeTrace, loop_threshold: int = 3) -> Diagnosis:
    """The primary category of a failed episode and every category that applies (see the
    module docstring for the rules and their precedence)."""
    if trace.success:
        raise ValueError("classify() takes a failed episode; this one succeeded")
    errors = step_errors(trace, loop_threshold)
    flags: dict[str, str] = {}
    for _, category, evidence in errors:
        flags.setdefault(category, evidence)
    repeats = Counter((s.text, s.command) for s in trace.steps if s.deviates)
    if repeats:
        (_, command), n = repeats.most_common(1)[0]
        if n >= loop_threshold:
            flags[LOOP] = f"{command!r} from the same observation {n} times"
    missed, evidence = search_failure(trace)
    if missed:
        flags[SEARCH_ORDER] = evidence
    if trace.truncated:
        flags[OUT_OF_STEPS] = f"truncated after {len(trace.steps)} steps"
    if errors:
        primary = errors[0][1]  # the earliest step error
    else:
        primary = next((c for c in EPISODE_CATEGORIES if c in flags), OTHER_FAILURE)
    if primary == OTHER_FAILURE:
        last = trace.steps[-1].command if trace.steps else None
        flags[OTHER_FAILURE] = (
            f"ended in failure on {last!r}" if trace.terminated and last else "none applies"
        )
    return Diagnosis(primary, {c: flags[c] for c in CATEGORIES if c in flags})


def _expert_phrase(step: StepRecord) -> str:
    return f"{step.expert!r}" if step.expert is not None else "(unknown)"


def record_episodes(
    policy: Policy,
    env_id: str,
    seeds: Sequence[int],
    *,
    split: str = "test",
    env_kwargs: dict[str, Any] | None = None,
    lockstep: int = 16,
) -> list[EpisodeTrace]:
    """:func:`record_episode` for a :class:`~learners.evaluate.Policy` over ``seeds``, up
    to ``lockstep`` episodes side by side as :func:`learners.evaluate.evaluate` plays them
    (so a model policy scores them in one forward pass, and a greedy one makes the same
    choices ``evaluate`` does). Returns the traces in the order of ``seeds``."""
    env_id = resolve_id(env_id)
    pool = [
        make(env_id, split=split, **(env_kwargs or {})) for _ in range(min(lockstep, len(seeds)))
    ]
    traces: dict[int, EpisodeTrace] = {}
    live: dict[int, tuple[int, dict, dict, EpisodeTrace]] = {}  # slot -> (i, obs, info, trace)
    queue = iter(range(len(seeds)))

    def start(slot: int) -> None:
        i = next(queue, None)
        if i is None:
            return
        obs, info = pool[slot].reset(seed=seeds[i])
        policy.reset(slot)
        trace = EpisodeTrace(
            env_id, seeds[i], obs["goal"], obs["text"], dict(info["checklist"]), [], *[False] * 3
        )
        live[slot] = (i, obs, info, trace)

    for slot in range(len(pool)):
        start(slot)
    while live:
        slots = sorted(live)
        experts = {slot: _expert_of(pool[slot]) for slot in slots}
        commands = policy.act(slots, [live[s][1] for s in slots], [live[s][2] for s in slots])
        for slot, command in zip(slots, commands, strict=True):
            i, obs, info, trace = live[slot]
            after, _, terminated, truncated, new_info = pool[slot].step(command)
            trace.steps.append(
                StepRecord(
                    obs["text"],
                    command,
                    experts[slot],
                    dict(info["checklist"]),
                    dict(new_info["checklist"]),
                    after["text"],
                    bool(new_info.get("invalid_action", False)),
                )
            )
            live[slot] = (i, after, new_info, trace)
            if terminated or truncated:
                trace.success = bool(new_info["success"])
                trace.terminated, trace.truncated = bool(terminated), bool(truncated)
                traces[i] = trace
                del live[slot]
                start(slot)
    for env in pool:
        env.close()
    return [traces[i] for i in range(len(seeds))]


def _expert_of(env: Any) -> str | None:
    try:
        return env.unwrapped.expert_action()
    except Exception:  # an expert that cannot answer from here: compare with nothing
        return None


def failure_taxonomy(
    agent: Agent | Policy,
    env_id: str,
    *,
    episodes: int = 100,
    split: str = "test",
    seed: int = EVAL_SEED,
    greedy: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    loop_threshold: int = 3,
) -> dict[str, Any]:
    """Play ``agent`` (greedy or sampled, as ``earlyexp eval`` plays it; or any
    :class:`~learners.evaluate.Policy`) on instances ``seed .. seed+episodes-1`` of
    ``split`` and diagnose every failed episode."""
    env_id = resolve_id(env_id)
    policy = AgentPolicy(agent, greedy, seed) if isinstance(agent, Agent) else agent
    seeds = list(range(seed, seed + episodes))
    traces = record_episodes(policy, env_id, seeds, split=split, env_kwargs=env_kwargs)
    records = []
    families: Counter = Counter()
    for trace in traces:
        family = goal_family(env_id, trace.goal, trace.first_checklist)
        families[family] += 1
        if trace.success:
            continue
        diagnosis = classify(trace, loop_threshold)
        records.append(
            {
                "seed": trace.seed,
                "goal": trace.goal,
                "family": family,
                "steps": len(trace.steps),
                "category": diagnosis.category,
                "flags": diagnosis.flags,
                "checklist": trace.steps[-1].after if trace.steps else trace.first_checklist,
                "first_unmet": first_unmet(trace),
            }
        )
    return {
        "env_id": env_id,
        "split": split,
        "episodes": episodes,
        "greedy": greedy,
        "successes": sum(t.success for t in traces),
        "families": dict(families),
        "failures": records,
        "search_decided": _search_decided(env_id, split, seed, env_kwargs),
    }


def first_unmet(trace: EpisodeTrace) -> str | None:
    """The first checklist item (in the env's order; the settings list sub-goals in the
    order a solution meets them) that never held during the episode; None if each held."""
    states = [trace.first_checklist, *(s.after for s in trace.steps)]
    return next((k for k in trace.first_checklist if not any(c.get(k) for c in states)), None)


def goal_family(env_id: str, goal: str, checklist: dict[str, bool]) -> str:
    """The task family of an instance, per setting, from its goal and checklist (Household's
    task types, Lab's families, WebNav's task kinds); elsewhere the goal's first word."""
    name = setting_name(env_id)
    keys = list(checklist)
    if name == "Household" and keys:
        if keys[0].startswith("holding "):
            return "look at in light"
        if keys[0].startswith("first "):
            return "two objects"
        state = re.match(r"^\w+ is (clean|hot|cool)$", keys[0])
        return (
            {"clean": "clean", "hot": "heat", "cool": "cool"}[state.group(1)] if state else "pick"
        )
    if name == "Lab":
        for pattern, family in (
            (r"task is to (melt|boil|freeze) ", None),
            (r"measure the temperature", "measure temperature"),
            (r"measure the melting point", "melting point"),
            (r"create .* paint", "mix paint"),
            (r"turn on the", "power component"),
            (r"grow a", "grow plant"),
        ):
            match = re.search(pattern, goal)
            if match:
                return family or match.group(1)
    if name == "WebNav" and keys:
        if keys[-1] == "answered correctly":
            what = next((w for w in ("order", "thread") if w in keys[0]), "account")
            return f"ask about {what}"
        return re.sub(r"\s+", " ", re.sub(r"#\d+|'[^']*'", "", keys[-1])).strip()
    words = goal.split()
    return words[0].lower() if words else ""


def _search_decided(env_id: str, split: str, seed: int, env_kwargs: dict | None) -> bool:
    """Whether search order can be decided on this setting (looked up on one instance)."""
    env = make(env_id, split=split, **(env_kwargs or {}))
    obs, info = env.reset(seed=seed)
    env.close()
    trace = EpisodeTrace(
        env_id, seed, obs["goal"], obs["text"], info["checklist"], [], *[False] * 3
    )
    visited = any(k.lower().startswith("visited") for k in info["checklist"])
    return visited or goal_needs(trace) is not None


def format_taxonomy(report: dict[str, Any], examples: bool = True) -> str:
    """The failure taxonomy as Markdown: primary categories, every flag, an example each."""
    failures = report["failures"]
    n = len(failures)
    primary = Counter(f["category"] for f in failures)
    flagged = Counter(c for f in failures for c in f["flags"])
    mode = "greedy" if report["greedy"] else "sampled"
    head = "| setting | episodes | success | failures | " + " | ".join(CATEGORIES) + " |"
    rule = "|---|---:|---:|---:|" + "---:|" * len(CATEGORIES)

    def row(counts: Counter) -> str:
        cells = [
            f"{counts[c]} ({100 * counts[c] / n:.0f}%)" if n and counts[c] else "0"
            for c in CATEGORIES
        ]
        return (
            f"| {setting_name(report['env_id'])} | {report['episodes']} | "
            f"{report['successes'] / report['episodes']:.2f} | {n} | " + " | ".join(cells) + " |"
        )

    lines = [
        f"Failure taxonomy: {report['env_id']} ({report['split']} split, {mode}); "
        "primary category (the earliest step error, else the first of loop, search order, "
        "ran out of steps, other that applies), % of failures:",
        "",
        head,
        rule,
        row(primary),
        "",
        "Every category that applies (an episode counts in each of its flags):",
        "",
        head,
        rule,
        row(flagged),
    ]
    if not report.get("search_decided", True):
        lines += ["", "Search order is not decided on this setting (see the module docstring)."]
    families = report.get("families", {})
    if families:
        lines += [
            "",
            "Primary categories by task family:",
            "",
            "| family | episodes | success | failures | " + " | ".join(CATEGORIES) + " |",
            rule,
        ]
        for family, total in sorted(families.items()):
            mine = [f for f in failures if f.get("family") == family]
            counts = Counter(f["category"] for f in mine)
            cells = [str(counts[c]) if counts[c] else "0" for c in CATEGORIES]
            lines.append(
                f"| {family} | {total} | {(total - len(mine)) / total:.2f} | {len(mine)} | "
                + " | ".join(cells)
                + " |"
            )
    if examples and failures:
        lines += ["", "| category | seed | goal | evidence |", "|---|---:|---|---|"]
        for category in CATEGORIES:
            example = next((f for f in failures if f["category"] == category), None)
            if example is not None:
                goal = example["goal"].replace("|", "/")
                evidence = example["flags"][category].replace("|", "/")
                lines.append(f"| {category} | {example['seed']} | {goal} | {evidence} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def stage_one_config(args: argparse.Namespace) -> IWMConfig:
    """The :class:`IWMConfig` of the ``stage1`` command: the run's model, seed, learner, demo
    budget and target from ``--like`` (its checkpoint), ``--seed`` and ``--set`` over them."""
    header = load_dataset(args.demos)
    values: dict[str, Any] = {}
    if args.like is not None:
        like = Agent.load(args.like)
        meta = like.meta
        values = {"model": like.config.model, "seed": meta.get("seed", 0)}
        for key, name in (("learner", "learner"), ("episodes", "demo_episodes")):
            if meta.get(name) is not None:
                values[key] = meta[name]
        if meta.get("target") is not None:
            values["target"] = meta["target"]
    if args.seed is not None:
        values["seed"] = args.seed
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        values[key] = parse_value(IWMConfig, key, text)
    return IWMConfig(
        **{
            "env_id": header.env_id,
            "demos": str(args.demos),
            "rollout_file": str(args.rollouts),
            "out": str(args.out),
            "eval_episodes": 0,
            "progress": False,
            **values,
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m learners.diagnostics wm ...`` / ``... failures ...``; prints Markdown."""
    parser = argparse.ArgumentParser(
        prog="python -m learners.diagnostics",
        description="Diagnostics that explain an early-experience result (see the module "
        "docstring of learners/diagnostics.py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    wm = sub.add_parser("wm", help="world-model F1 on revealed tokens vs a count-table baseline")
    wm.add_argument("--agent", required=True, help="checkpoint with a trained world-model head")
    wm.add_argument("--demos", required=True, help="the demos file the run trained on")
    wm.add_argument("--rollouts", required=True, help="the rollout file of those demos")
    wm.add_argument("--episodes", type=int, default=None, help="demo budget (default: the run's)")
    wm.add_argument("--val-fraction", type=float, default=0.2, help="the run's (default 0.2)")
    wm.add_argument("--seed", type=int, default=None, help="the run's seed (default: stored)")
    wm.add_argument("--target", choices=("delta", "next"), default=None)
    stage = sub.add_parser(
        "stage1",
        help="rebuild an IWM run's stage 1 (world modeling alone) and save that agent",
    )
    stage.add_argument("--demos", required=True, help="the demos file the run trained on")
    stage.add_argument("--rollouts", required=True, help="the rollout file it trained on")
    stage.add_argument("--out", required=True, help="directory for agent.pt and metrics.json")
    stage.add_argument(
        "--like",
        default=None,
        help="the run's agent.pt: its model, seed, learner, demo budget and target (else the "
        "defaults, and --seed)",
    )
    stage.add_argument("--seed", type=int, default=None)
    stage.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="other IWMConfig fields the run changed (wm_updates=500 ...)",
    )
    fails = sub.add_parser("failures", help="failure taxonomy of a policy's test episodes")
    fails.add_argument("--agent", required=True, help="agent checkpoint")
    fails.add_argument("--env", required=True, help="registered env id")
    fails.add_argument("--episodes", type=int, default=100)
    fails.add_argument("--split", default="test")
    fails.add_argument("--seed", type=int, default=EVAL_SEED, help="first instance seed")
    fails.add_argument("--sampled", action="store_true", help="sample instead of greedy")
    fails.add_argument("--env-kwargs", default="{}", help="envs.make arguments, as JSON")
    fails.add_argument("--loop-threshold", type=int, default=3)
    for p in (wm, fails):
        p.add_argument("--json", default=None, help="also write the report to this JSON file")
        p.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.command == "stage1":
        metrics = rebuild_stage_one(stage_one_config(args))
        print(
            f"stage 1 rebuilt: wm_val_f1 {metrics['wm_val_f1']:.3f}, wm_copy_f1 "
            f"{metrics['wm_copy_f1']:.3f}, {metrics['wm_updates']} updates; "
            f"saved {Path(args.out) / 'agent.pt'}"
        )
        return 0
    agent = Agent.load(args.agent).to(args.device)
    if args.command == "wm":
        report = world_model_report(
            agent,
            args.demos,
            args.rollouts,
            episodes=args.episodes,
            val_fraction=args.val_fraction,
            seed=args.seed,
            target=args.target,
        )
        print(format_wm_report(report))
    else:
        report = failure_taxonomy(
            agent,
            args.env,
            episodes=args.episodes,
            split=args.split,
            seed=args.seed,
            greedy=not args.sampled,
            env_kwargs=json.loads(args.env_kwargs),
            loop_threshold=args.loop_threshold,
        )
        print(format_taxonomy(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


__all__ = [
    "CATEGORIES",
    "CountTable",
    "Diagnosis",
    "EpisodeTrace",
    "F1Tally",
    "StepRecord",
    "classify",
    "command_kind",
    "failure_taxonomy",
    "format_taxonomy",
    "format_wm_report",
    "record_episode",
    "reveal_class",
    "revealed_tokens",
    "token_f1",
    "world_model_report",
]

if __name__ == "__main__":
    sys.exit(main())
