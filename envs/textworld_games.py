"""TextWorld challenges (``tw-cooking``, ``tw-treasure_hunter``) behind the earlyexp env contract.

Games are generated with the installed ``textworld`` package (its challenge registry, the
machinery behind ``tw-make``), never downloaded, on first use, into a cache directory, in
parallel. An episode plays one game of the split's pool on TextWorld's own engine pieces:
the compiled ``.z8`` story under Jericho for the text, and TextWorld's ``GameProgression``
state machine (the ``.json`` game) for admissible commands, quests, win/loss and the
winning policy, kept in lockstep exactly as ``textworld.start(...)`` does for a ``.z8``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import jericho
import textworld
from textworld.envs.wrappers.tw_inform7 import _detect_i7_events_debug_tags
from textworld.generator.game import Game, GameOptions, GameProgression
from textworld.generator.inform7 import Inform7Game

from envs.contract import TextEnv, check_split
from envs.progress import progress_bar

__all__ = [
    "CHALLENGES",
    "DEFAULT_GAMES",
    "TextWorldEnv",
    "cache_root",
    "game_pool",
    "raw_steps_per_second",
]

#: At most this many admissible commands (the RL learners' action mask); see
#: :meth:`TextWorldEnv.admissible_actions`.
MAX_ACTIONS = 64
#: Games per split when ``games`` is not given.
DEFAULT_GAMES = 100
#: Bump when the layout or content of a cache entry changes (it is part of the cache key).
CACHE_FORMAT = 1
_MARKER = "complete.json"
_FILES = ("game.json", "game.z8")
# Seeds of game ``i``: ``offset + i * _ATTEMPTS + attempt``; a generation that fails (a map
# that admits no quest of the asked length) retries with the next attempt's seed.
_ATTEMPTS = 16
_SEED_OFFSET = {"train": 0, "test": 1 << 24}


# --------------------------------------------------------------------------------------------
# Challenges: difficulty settings and their validation
# --------------------------------------------------------------------------------------------


def _cooking_settings(split: str, **kw: Any) -> dict[str, Any]:
    for flag in ("open", "cook", "cut", "drop"):
        if not isinstance(kw[flag], bool):
            raise ValueError(f"tw-cooking: {flag} must be a bool, got {kw[flag]!r}")
    for name in ("recipe", "take", "go"):
        if not isinstance(kw[name], int) or isinstance(kw[name], bool):
            raise ValueError(f"tw-cooking: {name} must be an int, got {kw[name]!r}")
    if not 1 <= kw["recipe"] <= 5:
        raise ValueError(f"tw-cooking: recipe must be 1-5 ingredients, got {kw['recipe']}")
    if not 0 <= kw["take"] <= kw["recipe"]:
        raise ValueError(f"tw-cooking: take must be 0-recipe ({kw['recipe']}), got {kw['take']}")
    if kw["go"] not in (1, 6, 9, 12):
        raise ValueError(f"tw-cooking: go (rooms) must be 1, 6, 9 or 12, got {kw['go']}")
    if kw["drop"]:
        # tw-cooking builds no walkthrough with a limited inventory (a TextWorld "BUG" note),
        # so its quests carry no winning policy and the expert would have nothing to follow.
        raise ValueError("tw-cooking: drop=True is not supported (TextWorld gives no expert)")
    # TextWorld's own food/preparation split: test recipes hold unseen foods or preparations.
    return {**kw, "recipe_seed": 0, "split": split}


def _treasure_settings(split: str, **kw: Any) -> dict[str, Any]:
    level = kw["level"]
    if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 30:
        raise ValueError(f"tw-treasure_hunter: level must be an int in 1-30, got {level!r}")
    # No food split here: the test split differs by its disjoint seed range only.
    return dict(kw)


@dataclass(frozen=True)
class Challenge:
    """A TextWorld challenge: its default difficulty and how it maps to ``make`` settings."""

    name: str
    defaults: dict[str, Any]
    settings: Callable[..., dict[str, Any]]  # (split, **difficulty) -> textworld settings


#: Supported challenges and their default difficulty (override any key as a kwarg).
CHALLENGES: dict[str, Challenge] = {
    "tw-cooking": Challenge(
        "tw-cooking",
        {"recipe": 2, "take": 2, "go": 6, "open": True, "cook": True, "cut": True, "drop": False},
        _cooking_settings,
    ),
    "tw-treasure_hunter": Challenge("tw-treasure_hunter", {"level": 15}, _treasure_settings),
}


def _resolve(challenge: str, split: str, difficulty: dict[str, Any]) -> dict[str, Any]:
    """Validate ``difficulty`` for ``challenge`` and return the full TextWorld settings."""
    if challenge not in CHALLENGES:
        raise ValueError(
            f"unknown challenge {challenge!r}; expected one of {', '.join(CHALLENGES)}"
        )
    spec = CHALLENGES[challenge]
    unknown = set(difficulty) - set(spec.defaults)
    if unknown:
        raise ValueError(
            f"{challenge}: unknown difficulty setting(s) {sorted(unknown)}; "
            f"expected some of {sorted(spec.defaults)}"
        )
    return spec.settings(check_split(split), **{**spec.defaults, **difficulty})


# --------------------------------------------------------------------------------------------
# The game cache
# --------------------------------------------------------------------------------------------


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where generated games live: ``cache_dir``, else ``$EARLYEXP_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/earlyexp`` (default ``~/.cache/earlyexp``); games go under
    ``textworld/``."""
    if cache_dir is None:
        cache_dir = os.environ.get("EARLYEXP_CACHE_DIR")
    if cache_dir is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        cache_dir = Path(xdg) / "earlyexp"
    return Path(cache_dir) / "textworld"


def _pool_dir(root: Path, challenge: str, split: str, settings: dict[str, Any]) -> Path:
    """The cache directory of one (challenge, split, settings, textworld version) pool."""
    key = json.dumps(
        {"challenge": challenge, "split": split, "settings": settings, "format": CACHE_FORMAT},
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return root / f"{challenge}-{split}-tw{textworld.__version__}-{digest}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry_ok(entry: Path) -> bool:
    """Whether a cache entry is complete: its marker exists and every checksum matches."""
    try:
        marker = json.loads((entry / _MARKER).read_text())
        return all(_sha256(entry / name) == marker["sha256"][name] for name in _FILES)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _build_entry(
    challenge: str, settings: dict[str, Any], split: str, index: int, entry: str
) -> str:
    """Generate and compile game ``index`` into ``entry`` (run in a worker process).

    Written into a temporary sibling directory, completed with a checksum marker, then
    renamed into place, so a killed process leaves no entry that looks complete.
    """
    final = Path(entry)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    from textworld.challenges import CHALLENGES as TW_CHALLENGES  # loads every generator

    _, make, _ = TW_CHALLENGES[challenge]
    try:
        for attempt in range(_ATTEMPTS):
            seed = _SEED_OFFSET[split] + index * _ATTEMPTS + attempt
            options = GameOptions()
            options.seeds = seed
            options.path = str(tmp / "game.z8")
            options.force_recompile = True
            try:
                game = make(dict(settings), options)
            except textworld.generator.QuestGenerationError:
                continue
            textworld.generator.compile_game(game, options)
            break
        else:
            raise RuntimeError(f"{challenge} {split} game {index}: no seed generated a game")
        (tmp / "game.ni").unlink(missing_ok=True)  # Inform7 source, not needed to play
        marker = {
            "sha256": {name: _sha256(tmp / name) for name in _FILES},
            "seed": seed,
            "challenge": challenge,
            "settings": settings,
            "textworld": textworld.__version__,
        }
        (tmp / _MARKER).write_text(json.dumps(marker, sort_keys=True))
        try:
            tmp.rename(final)
        except OSError:  # another process finished the same entry first: keep its copy
            if not _entry_ok(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entry


def game_pool(
    challenge: str = "tw-cooking",
    split: str = "train",
    games: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    **difficulty: Any,
) -> list[Path]:
    """The ``.z8`` paths of a split's game pool, generating missing or broken entries.

    An entry without a valid completion marker (a killed generation, a truncated or edited
    file) is deleted and rebuilt. Generation runs in a process pool (``workers``, default
    the available cores) with a progress bar.
    """
    games = DEFAULT_GAMES if games is None else games
    if not isinstance(games, int) or isinstance(games, bool) or games < 1:
        raise ValueError(f"games must be a positive int, got {games!r}")
    settings = _resolve(challenge, split, difficulty)
    pool = _pool_dir(cache_root(cache_dir), challenge, split, settings)
    entries = [pool / f"game{i:04d}" for i in range(games)]
    todo = [i for i, entry in enumerate(entries) if not _entry_ok(entry)]
    for i in todo:
        shutil.rmtree(entries[i], ignore_errors=True)
    if todo:
        pool.mkdir(parents=True, exist_ok=True)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        workers = max(1, min(len(todo), workers or cores or 1))
        # fork where available: spawn would re-run an unguarded user script in every worker;
        # the workers touch nothing of the parent but the textworld generator
        method = "fork" if "fork" in get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(workers, mp_context=get_context(method)) as executor:
            jobs = [
                executor.submit(_build_entry, challenge, settings, split, i, str(entries[i]))
                for i in todo
            ]
            desc = f"generating {challenge} {split} games"
            for job in progress_bar(as_completed(jobs), total=len(jobs), desc=desc, unit="game"):
                job.result()
    return [entry / "game.z8" for entry in entries]


_LOADED: dict[Path, tuple[Game, Inform7Game]] = {}


def _load_game(path: Path) -> tuple[Game, Inform7Game]:
    """The TextWorld game of a ``.z8`` (its ``.json`` twin), loaded once per process."""
    if path not in _LOADED:
        game = Game.load(str(path.with_suffix(".json")))
        _LOADED[path] = (game, Inform7Game(game))
    return _LOADED[path]


# --------------------------------------------------------------------------------------------
# Text and checklist helpers
# --------------------------------------------------------------------------------------------

_PRINTABLE = re.compile(r"[^ -~]")
_PROMPT_TAIL = re.compile(r"(Would you like to RESTART|\n>).*", re.DOTALL)


def _clean(text: str) -> str:
    """Game text as one line of printable ASCII, without the prompt or end-of-game menu."""
    text = _PROMPT_TAIL.sub("", text)
    return " ".join(_PRINTABLE.sub(" ", text).split())


def _intro(raw: str, objective: str) -> str:
    """The opening text without TextWorld's ASCII-art banner and the objective (the goal)."""
    _, found, rest = raw.partition(objective)
    return _clean(rest if found else raw)


def _goal(game: Game) -> str:
    """TextWorld's objective, followed by the game's recipe when it has one.

    The recipe is TextWorld's own ``extra.recipe`` info (the FTWP starting kit requests it),
    compacted to one line: ``Recipe: ingredients: carrot, tomato. directions: dice the
    carrot, fry the carrot, prepare meal.``
    """
    goal = _clean(game.objective)
    recipe = game.metadata.get("recipe")
    if not recipe:
        return goal
    _, _, body = recipe.partition("Ingredients:")
    ingredients, _, directions = body.partition("Directions:")

    def listed(block: str) -> str:
        return ", ".join(line.strip() for line in block.splitlines() if line.strip())

    return f"{goal} Recipe: ingredients: {listed(ingredients)}. directions: {listed(directions)}."


def _phrase(fact: Any) -> str:
    """A human-readable TextWorld fact as a checklist phrase."""
    names = [v.name for v in fact.arguments]
    if fact.name == "in" and names[1] == "I":
        return f"holding {names[0]}"
    if fact.name == "at" and names[0] == "P":
        return f"at {names[1]}"
    if fact.name == "consumed":
        return f"{names[0]} is eaten"
    if len(names) == 1:
        return f"{names[0]} is {fact.name}"
    return f"{names[0]} {fact.name} {' '.join(names[1:])}"


def _checklist_items(game: Game, i7: Inform7Game) -> tuple[tuple[str, int, Any], ...]:
    """``(label, quest index, fact)`` for every fact of a quest's winning condition that does
    not hold at the start (tw-cooking: one quest per "holding X", "X is fried", "X is
    sliced", "holding meal", "meal is eaten"; tw-treasure_hunter: "at R", "holding X")."""
    initial = game.world.state
    items = []
    for q, quest in enumerate(game.quests):
        for event in quest.win_events[:1]:
            for fact in event.condition.preconditions:
                if not initial.is_fact(fact):
                    items.append((_phrase(i7.get_human_readable_fact(fact)), q, fact))
    return tuple(items)


OPEN, COMPLETED, FAILED = 0, 1, 2


def _quest_status(game: Game, state: Any, status: tuple[int, ...]) -> tuple[int, ...]:
    """Each quest's status after a step, as TextWorld's ``QuestProgression`` decides it from
    the new state: a quest not yet done is completed when one of its win events' conditions
    holds, failed when one of its fail events' conditions holds; done quests stay done."""
    new = []
    for quest, st in zip(game.quests, status, strict=True):
        if st == OPEN:
            if any(event.is_triggering(state) for event in quest.win_events):
                st = COMPLETED
            elif any(event.is_triggering(state) for event in quest.fail_events):
                st = FAILED
        new.append(st)
    return tuple(new)


#: Compass directions, in the order the exploring expert tries exits.
DIRECTIONS = ("north", "south", "east", "west")
_OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}
#: Types that are never searched (cooking appliances hold no ingredients).
_APPLIANCES = frozenset({"oven", "toaster"})


@dataclass(frozen=True, eq=False)
class Knowledge:
    """What the agent has observed in an episode (the exploring expert's memory, derived
    from the game states it has been shown): the rooms it has been in, the exits it has
    taken (which room lies behind which exit is only known once walked through), where
    it has seen each thing (its room, supporter, open container or the inventory;
    things move only by the agent's own commands), and the containers it has seen open."""

    rooms: frozenset[str] = frozenset()
    links: tuple[tuple[str, str, str], ...] = ()  # (room, direction, room behind it)
    where: tuple[tuple[str, str], ...] = ()  # (thing, holder) as last seen
    looked: frozenset[str] = frozenset()  # containers whose contents it has seen


@dataclass(eq=False)
class Episode:
    """The mutable state of an episode besides the Jericho interpreter's memory.

    ``progression`` (no quest tracking) gives the state and valid actions at every step;
    quest outcomes are checked from the state directly. TextWorld's quest tracking, which
    replans the winning policy after every action (the expensive part), runs in
    ``tracker`` only when the expert is asked: it replays the actions it has not seen yet.
    """

    path: Path  # the game's .z8 (a snapshot restores into an env with any pool)
    progression: GameProgression  # state and valid actions
    status: tuple[int, ...]  # OPEN / COMPLETED / FAILED per quest
    actions: tuple[Any, ...]  # every game action since reset
    tracker: GameProgression  # quest tracking, synced up to ``synced`` actions
    synced: int
    read_cookbook: bool  # whether the agent has examined the cookbook
    known: Knowledge = field(default_factory=Knowledge)  # immutable: shared by copies

    def copy(self) -> Episode:
        """An independent copy (TextWorld's own ``GameProgression.copy``)."""
        return Episode(
            self.path,
            self.progression.copy(),
            self.status,
            self.actions,
            self.tracker.copy(),
            self.synced,
            self.read_cookbook,
            self.known,
        )


# --------------------------------------------------------------------------------------------
# The env
# --------------------------------------------------------------------------------------------


class TextWorldEnv(TextEnv):
    """TextWorld games (First TextWorld Problems cooking, treasure hunter) as contract envs.

    ## Description

    Each split has a pool of ``games`` games of a TextWorld challenge, generated with the
    installed ``textworld`` (``textworld.challenges``, the ``tw-make`` machinery) on first
    use into a cache (see :func:`game_pool`); an episode plays one of them, chosen by
    ``self.np_random`` at reset.

    * ``tw-cooking`` (``earlyexp/Cooking-v0``): find the cookbook in the kitchen, read the
      recipe, gather its ingredients, cook (stove: fried, oven: roasted, BBQ: grilled) and
      cut (slice, dice, chop with the knife) them as directed, ``prepare meal``, ``eat
      meal``. Splits are TextWorld's own: train games use training foods with training
      preparations; test games use test foods, or training foods with held-out
      preparations, so no test recipe ingredient (food, cooking, cutting) occurs in train.
    * ``tw-treasure_hunter`` (``earlyexp/TreasureHunter-v0``): follow the objective's
      directions through a maze of rooms and doors and pick up the named object, not the
      wrong one. TextWorld has no held-out split here: test games come from a disjoint
      seed range (``2**24`` upwards; train from 0).

    Backend: TextWorld's pure-Python ``.json`` backend has no narrative at all (every
    observation is "[To get text observation use the '.z8' file instead of the '.json'
    one.]"), so the text comes from the compiled ``.z8`` run by Jericho, with TextWorld's
    ``GameProgression`` tracking the same game in lockstep from the story's action trace,
    which is what ``textworld.start`` does for a ``.z8``. Unlike that wrapper, the winning
    policy (the expensive part) is only computed when the expert is asked, and snapshots
    copy the ``GameProgression`` and the interpreter memory instead of calling
    ``env.copy()``, which also deep-copies the whole game (about 160 ms per copy here).

    The expert builds on TextWorld's winning policy (``policy_commands``) from the current
    state: the quest's walkthrough, which TextWorld replans after any action (undoing the
    agent's own detours first). It first reads the cookbook (``examine cookbook``) once
    that is admissible, as in the FTWP walkthroughs, so that the recipe is in the history
    of a policy imitating it.

    * ``tw-treasure_hunter``: the walkthrough's first command. The objective states every
      step of the walkthrough ("go east, then open the passageway, then travel south, ...
      pick up the key"), so the expert knows nothing the agent is not told.
    * ``tw-cooking``: the walkthrough is written by a generator that knows the whole map
      (it walked straight to the kitchen and opened the one container holding an
      ingredient), so the expert follows it only where the agent knows what it involves
      and explores the rest. It keeps what the agent has observed (``Episode.known``: the
      rooms it has been in, the exits it has walked through, where it has seen each thing,
      the containers it has seen inside). It does the walkthrough's next step that is not
      a move when it has seen every thing that step involves in a room it has been in
      (walking there over the exits it knows); otherwise it explores: in the nearest room
      it has been in with something unexplored, it opens the closed containers it has not
      seen inside (cooking appliances aside), then goes through the exits it has not taken
      (north, south, east, west), opening doors on the way. It solves every game from any
      reachable state, in about 13 steps on average from reset (about 12 for the
      walkthrough alone).

    ## Action Space

    A text command (``str``); ``info["admissible_actions"]`` is TextWorld's
    ``admissible_commands`` (sorted, deduplicated; it has no meta-commands to drop; only
    when there are more than 64, which a random agent holding many things can reach, the
    ``put X on S`` / ``insert X into C`` commands are left out: ``drop X`` remains):
    ``go east``, ``open fridge``, ``take carrot from fridge``, ``cook carrot with stove``,
    ``slice carrot with knife``, ``prepare meal``, ``eat meal``, ``examine X``, ``look``,
    ``inventory``, ...

    ## Observation Space

    ``{"goal": str, "text": str}``: TextWorld's ``objective`` (for cooking games followed by
    the recipe, TextWorld's ``extra.recipe`` info, which the FTWP starting kit also hands
    its agents) and the game's feedback, each one line of printable ASCII (the opening
    banner, the prompt and the end-of-game menu removed; at reset, the starting room's
    description). The recipe is in the goal because a policy whose history window is shorter
    than an episode otherwise forgets the cookbook it read: without it, BC solved most of its
    own training games and none of the test games.

    ## Starting State

    The game's own start: a room of the map, some ingredients possibly in the inventory
    (tw-cooking ``take`` < ``recipe``), containers and doors closed (``open``).

    ## Reward

    1.0 on the step that wins the game (every TextWorld quest completed), else 0.0 — the
    outcome, not TextWorld's intermediate score.

    ## Episode End

    ``terminated`` when the game is won, or lost (TextWorld's ``lost``: a failed or
    unfinishable quest, e.g. eating an ingredient, burning it by cooking it twice, cutting
    it the wrong way, taking the wrong object). Never truncated by the env itself: the
    registered ``max_episode_steps`` (100) truncates.

    ## Info

    ``admissible_actions``, ``invalid_action``, ``success``, ``checklist``: one item per
    fact of a quest's winning condition that is false at the start, true once the quest is
    completed (TextWorld scores one point per such quest) or while the fact holds, e.g.
    ``{"holding carrot": ..., "carrot is fried": ..., "carrot is sliced": ..., "holding
    meal": ..., "meal is eaten": ...}`` or ``{"at cookhouse": ..., "holding latchkey":
    ...}``.

    ## Arguments

    * ``split``: ``"train"`` or ``"test"``.
    * ``challenge``: ``"tw-cooking"`` or ``"tw-treasure_hunter"`` (see :data:`CHALLENGES`).
    * ``cache_dir``: cache root (default ``$EARLYEXP_CACHE_DIR`` or the user cache dir).
    * ``games``: games per split (default 100).
    * difficulty, tw-cooking: ``recipe`` (ingredients, 1-5; default 2), ``take`` (how many
      to find, 0-recipe; 2), ``go`` (rooms, 1/6/9/12; 6), ``open``, ``cook``, ``cut`` (default
      True), ``drop`` (False; True is refused: TextWorld gives no walkthrough for it).
      tw-treasure_hunter: ``level`` (1-30; default 15: 10 rooms, doors and containers, a
      6-action quest).
    * ``render_mode``: ``None``, ``"ansi"`` or ``"human"``.

    ``reset(options={"game": i})`` plays game ``i`` of the pool (for evaluating every game).

    ## Version History

    * v0: initial release (textworld 1.7.0). Later in v0 (issue 16): the tw-cooking expert
      explores what the agent has not seen instead of following the walkthrough through
      it.
    """

    def __init__(
        self,
        split: str = "train",
        challenge: str = "tw-cooking",
        cache_dir: str | os.PathLike | None = None,
        games: int | None = None,
        render_mode: str | None = None,
        **difficulty: Any,
    ) -> None:
        super().__init__(split, render_mode)
        self.challenge = challenge
        self.difficulty = difficulty
        self.games = DEFAULT_GAMES if games is None else games
        self.cache_dir = cache_dir
        # fail fast on bad arguments; the pool itself is built on first reset
        _resolve(challenge, split, difficulty)
        if not isinstance(self.games, int) or isinstance(self.games, bool) or self.games < 1:
            raise ValueError(f"games must be a positive int, got {games!r}")
        self.world: Episode | None = None
        self._paths: list[Path] | None = None
        self._frotz: jericho.FrotzEnv | None = None
        self._frotz_path: Path | None = None
        self._game: Game | None = None
        self._i7: Inform7Game | None = None
        self._items: tuple[tuple[str, int, Any], ...] = ()
        self._requested: int | None = None

    # -- engine -----------------------------------------------------------------------------
    def _pool(self) -> list[Path]:
        """The split's game files, generated (or checked) on first use."""
        if self._paths is None:
            self._paths = game_pool(
                self.challenge, self.split, self.games, self.cache_dir, **self.difficulty
            )
        return self._paths

    def _use_game(self, path: Path) -> None:
        """Make the game at ``path`` the one the interpreter runs."""
        if path == self._frotz_path:
            return
        self._game, self._i7 = _load_game(path)
        self._items = _checklist_items(self._game, self._i7)
        with warnings.catch_warnings():
            # Jericho knows no TextWorld game; we use none of its score/move/change detection
            warnings.simplefilter("ignore", jericho.UnsupportedGameWarning)
            if self._frotz is None:
                self._frotz = jericho.FrotzEnv(str(path), seed=0)
            else:
                self._frotz.load(str(path))
        self._frotz_path = path

    def close(self) -> None:
        if self._frotz is not None:
            self._frotz.close()
            self._frotz, self._frotz_path = None, None

    # -- contract hooks ---------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict, dict]:
        """Start an episode on a game of the pool chosen by ``self.np_random``, or on game
        ``options["game"]`` (an index into the pool) if given."""
        self._requested = None if options is None else options.get("game")
        return super().reset(seed=seed, options=options)

    def _generate(self) -> tuple[str, str]:
        n = len(self._pool())
        index = int(self.np_random.integers(n))  # drawn either way: same RNG stream
        if self._requested is not None:
            if not isinstance(self._requested, int) or not 0 <= self._requested < n:
                raise ValueError(f"options['game'] must be a game index 0-{n - 1}")
            index = self._requested
        path = self._pool()[index]
        self._use_game(path)
        raw, _ = self._frotz.reset()
        self._frotz.step("tw-trace-actions")  # print the Inform7 action events we track
        progression = GameProgression(self._game, track_quests=False)
        status = _quest_status(self._game, progression.state, (OPEN,) * len(self._game.quests))
        tracker = GameProgression(self._game, track_quests=True)
        self.world = Episode(path, progression, status, (), tracker, 0, False)
        self._observe(())
        return _goal(self._game), _intro(raw, self._game.objective)

    def admissible_actions(self) -> list[str]:
        """TextWorld's admissible commands in the current state (sorted)."""
        actions = self.world.progression.valid_actions
        commands = sorted(set(self._i7.gen_commands_from_actions(actions)))
        if len(commands) > MAX_ACTIONS:
            # Holding many things multiplies "put X on S" / "insert X into C" (one per item
            # and holder); "drop X" still puts each down, and no quest needs a placement.
            commands = [c for c in commands if not c.startswith(("put ", "insert "))]
        return commands

    def _execute(self, command: str) -> str:
        raw, *_ = self._frotz.step(command)
        events, text = _detect_i7_events_debug_tags(raw)
        w = self.world
        done = []
        for event in events:
            action = self._i7.detect_action(event, w.progression.valid_actions)
            if action is not None:
                w.progression.update(action)
                w.actions += (action,)
                w.status = _quest_status(self._game, w.progression.state, w.status)
                done.append(action)
        if command == "examine cookbook":
            w.read_cookbook = True
        self._observe(done)
        return _clean(text)

    # -- what the agent has observed --------------------------------------------------------
    def _observe(self, actions: list) -> None:
        """Add what the agent is shown now to ``world.known``: the room it is in, the exits
        it just walked through (``actions``), and the things in view (in the room, on its
        supporters, in its open containers, recursively, and in the inventory)."""
        w = self.world
        k = w.known
        facts: dict[str, list[tuple[str, ...]]] = {}
        for fact in w.progression.state.facts:
            facts.setdefault(fact.name, []).append(tuple(v.name for v in fact.arguments))
        here = next(r for p, r in facts["at"] if p == "P")
        links = list(k.links)
        for action in actions:
            if action.name.startswith("go/"):
                _, a, b = (v.name for v in action.variables)
                d = action.name[3:]
                links += [(a, d, b), (b, _OPPOSITE[d], a)]
        where = dict(k.where)
        shut = {c for (c,) in facts.get("closed", []) + facts.get("locked", [])}
        pairs = [(x, h) for x, h in facts.get("at", []) if x != "P"]
        pairs += facts.get("on", []) + facts.get("in", [])
        shown = {here, "I"}
        grew = True
        while grew:  # things whose holder is shown and not shut, recursively
            grew = False
            for x, h in pairs:
                if h in shown and x not in shown and h not in shut:
                    shown.add(x)
                    where[x] = h
                    grew = True
        is_open = {c for (c,) in facts.get("open", [])}
        looked = k.looked | {c for c in shown if c in is_open}
        w.known = Knowledge(
            k.rooms | {here}, tuple(dict.fromkeys(links)), tuple(where.items()), looked
        )

    def checklist(self) -> dict[str, bool]:
        """Each quest fact that was false at the start: done once its quest is completed
        (sticky, like TextWorld's score) or while it holds."""
        w = self.world
        state = w.progression.state
        return {
            label: w.status[q] == COMPLETED or state.is_fact(fact) for label, q, fact in self._items
        }

    def _succeeded(self) -> bool:
        # TextWorld's ``won``: every non-optional quest with win events is completed
        status = self.world.status
        return all(
            status[q] == COMPLETED
            for q, quest in enumerate(self._game.quests)
            if quest.win_events and not quest.optional
        )

    def _failed(self) -> bool:
        # TextWorld's ``lost``: a non-optional quest has failed
        status = self.world.status
        return any(
            status[q] == FAILED for q, quest in enumerate(self._game.quests) if not quest.optional
        )

    def expert_action(self) -> str:
        """The expert's command from the current state (after reading the cookbook, once
        it is admissible): on tw-cooking, TextWorld's winning policy restricted to what
        the agent has observed, exploring the rest (:meth:`_explorer`); on other
        challenges, the first command of TextWorld's winning policy."""
        if not self.world.read_cookbook and "examine cookbook" in self._admissible:
            return "examine cookbook"
        w = self.world
        for action in w.actions[w.synced :]:
            w.tracker.update(action)
        w.synced = len(w.actions)
        policy = w.tracker.winning_policy
        if not policy:
            raise RuntimeError(
                "expert: TextWorld has no winning policy here (the game is won, lost or "
                "unfinishable)"
            )
        if self.challenge == "tw-cooking":
            return self._explorer(policy)
        return self._command(policy[0])

    # -- the exploring expert ---------------------------------------------------------------
    def _command(self, action: Any) -> str:
        return self._i7.gen_commands_from_actions([action])[0]

    def _explorer(self, policy: tuple) -> str:
        """The policy's next step if the agent knows everything it involves, else the next
        step of exploring.

        TextWorld's policy is the quest's walkthrough, written by a generator that knows
        the whole map: it walks straight to the kitchen and opens the one container that
        holds an ingredient. Here only its next step that is not a move or a door (those
        are the exploring expert's own, over the map the agent has walked) is followed, and
        only when every thing it involves has been seen (``Knowledge.where``) in a room the
        agent has been in; opening a container is followed only for one the agent has seen
        inside (a move would otherwise tell it where an unseen ingredient is). Otherwise it
        explores (:meth:`_explore`).
        """
        k = self.world.known
        where = dict(k.where)
        here = self._room()
        step = next((a for a in policy if not _moves(a)), None)
        if step is not None and self._knows(step, where, k):
            room = _room_of(step)
            if room is None or room == here:
                return self._command(step)
            return self._towards(here, room)
        return self._explore(here)

    def _room(self) -> str:
        return next(
            f.arguments[1].name
            for f in self.world.progression.state.facts
            if f.name == "at" and f.arguments[0].name == "P"
        )

    @staticmethod
    def _knows(action: Any, where: dict[str, str], k: Knowledge) -> bool:
        """Whether the agent has seen every thing ``action`` involves, and its room."""
        if action.name == "open/c":
            # reopening a container the agent has seen inside
            return any(v.name in k.looked for v in action.variables)
        for v in action.variables:
            if v.type not in _ABSTRACT and v.name not in where:
                return False
        room = _room_of(action)
        return room is None or room in k.rooms

    def _routes(self, here: str) -> dict[str, tuple[str, str] | None]:
        """Rooms the agent has been in, in breadth-first order from ``here`` over the exits it
        has walked through (directions in :data:`DIRECTIONS` order), each with the room and
        direction it is reached from."""
        links = {(a, d): b for a, d, b in self.world.known.links}
        prev: dict[str, tuple[str, str] | None] = {here: None}
        queue = [here]
        for room in queue:
            for d in DIRECTIONS:
                nxt = links.get((room, d))
                if nxt is not None and nxt not in prev:
                    prev[nxt] = (room, d)
                    queue.append(nxt)
        return prev

    def _towards(self, here: str, room: str) -> str:
        """The next command on the shortest known way from ``here`` to ``room``."""
        prev = self._routes(here)
        if room not in prev:
            raise RuntimeError(f"expert: no known way to {room}")
        while prev[room][0] != here:
            room = prev[room][0]
        return self._walk(prev[room][1])

    def _walk(self, direction: str) -> str:
        """Go ``direction`` from the current room, opening the door there first if closed."""
        valid = self.world.progression.valid_actions
        for a in valid:
            if a.name == f"go/{direction}":
                return self._command(a)
        here = self._room()
        state = self.world.progression.state
        behind = {
            f.arguments[0].name
            for f in state.facts
            if f.name == f"{direction}_of" and f.arguments[1].name == here
        }
        doors = {
            f.arguments[1].name
            for f in state.facts
            if f.name == "link" and f.arguments[0].name == here and f.arguments[2].name in behind
        }
        for a in valid:
            if a.name == "open/d" and any(v.name in doors for v in a.variables):
                return self._command(a)
        raise RuntimeError(f"expert: cannot go {direction} from {here}")

    def _explore(self, here: str) -> str:
        """The next step of exploring: in the nearest room the agent has been in (breadth
        first over the exits it has walked through) that still has something unexplored,
        open its closed containers it has not seen inside (cooking appliances aside; by
        name), then go through its exits it has not walked through (in :data:`DIRECTIONS`
        order), opening a closed door first."""
        k = self.world.known
        walked = {(a, d) for a, d, _ in k.links}
        facts: dict[str, list] = {}
        for f in self.world.progression.state.facts:
            facts.setdefault(f.name, []).append(f.arguments)
        closed = {c.name for (c,) in facts.get("closed", [])}
        names = self._game.infos
        for room in self._routes(here):
            boxes = sorted(
                (names[c.name].name or c.name, c.name)
                for c, r in facts.get("at", [])
                if r.name == room
                and c.name in closed
                and c.type not in _APPLIANCES
                and c.name not in k.looked
            )
            exits = [
                d
                for d in DIRECTIONS
                if (room, d) not in walked
                and any(r.name == room for _, r in facts.get(f"{d}_of", []))
            ]
            if not boxes and not exits:
                continue
            if room != here:
                return self._towards(here, room)
            if boxes:
                box = boxes[0][1]
                for a in self.world.progression.valid_actions:
                    if a.name == "open/c" and any(v.name == box for v in a.variables):
                        return self._command(a)
            return self._walk(exits[0])
        raise RuntimeError("expert: nothing left to explore and nothing it knows to do")

    # -- branching --------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """A snapshot: the episode (TextWorld progressions copied) and the interpreter memory."""
        w = self.world
        return {
            "world": w.copy() if w else None,
            "frotz": self._frotz.get_state() if w else None,
            "goal": self.goal,
            "text": self._text,
            "admissible": list(self._admissible),
            "done": self._done,
            "rng": self.np_random.bit_generator.state,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`get_state` snapshot (it stays reusable: nothing of it is shared)."""
        if state["world"] is not None:
            self._use_game(state["world"].path)
            self._frotz.set_state(state["frotz"])
            self.world = state["world"].copy()
        self.goal = state["goal"]
        self._text = state["text"]
        self._admissible = list(state["admissible"])
        self._done = state["done"]
        self.np_random.bit_generator.state = state["rng"]


#: Types of the policy's arguments that are not things in the world (or are the player's).
_ABSTRACT = frozenset({"P", "I", "r", "RECIPE", "ingredient", "meal"})


def _moves(action: Any) -> bool:
    """Whether a policy action only moves the player (a step or a door on the way)."""
    return action.name.startswith("go/") or action.name in ("open/d", "close/d")


def _room_of(action: Any) -> str | None:
    """The room an action must be done in (its ``at(P, r)`` precondition), if any."""
    for p in action.preconditions:
        if p.name == "at" and p.arguments[0].name == "P":
            return p.arguments[1].name
    return None


# --------------------------------------------------------------------------------------------
# Raw engine throughput, for comparison with the adapter
# --------------------------------------------------------------------------------------------


def raw_steps_per_second(
    challenge: str = "tw-cooking",
    split: str = "train",
    steps: int = 5000,
    seed: int = 0,
    backend: str = "z8",
    cap: int = 100,
    games: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    **difficulty: Any,
) -> float:
    """Steps/s of plain ``textworld.start`` on the same pool, random admissible commands.

    ``backend`` ``"z8"`` (Jericho + state tracking, text) or ``"json"`` (TextWorld's
    pure-Python state machine, no text). Each episode (ended by the game or ``cap`` steps)
    loads a random game of the pool, as the adapter's reset does; loading is timed too.
    """
    if backend not in ("z8", "json"):
        raise ValueError(f"backend must be 'z8' or 'json', got {backend!r}")
    paths = game_pool(challenge, split, games, cache_dir, **difficulty)
    if backend == "json":
        paths = [p.with_suffix(".json") for p in paths]
    rng = random.Random(seed)
    infos = textworld.EnvInfos(admissible_commands=True, won=True, lost=True)
    env = textworld.start(str(paths[0]), request_infos=infos)
    start = time.perf_counter()
    done = True
    t = 0
    for _ in range(steps):
        if done or t >= cap:
            env.load(str(rng.choice(paths)))
            state, t = env.reset(), 0
        state, _, done = env.step(rng.choice(state["admissible_commands"]))
        t += 1
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed
