"""An adapter from a Minigrid engine to the earlyexp env contract, and its text rendering.

:class:`MinigridTextEnv` runs one real Minigrid env per level (``minigrid`` 3.2) and exposes
it as a contract env: the goal is the engine's mission, the text is a natural-language
rendering of the agent's egocentric view (the engine's own ``gen_obs`` image: the 7x7
partial view after occlusion, so it says exactly what the agent sees), and the native
``image`` observation is kept beside it. A setting (``envs.babyai``, ``envs.doorkey``)
supplies the levels, the split rule, the checklist and the expert.

The rendering reads the image only: every visible object with its color, state and position
relative to the agent ("a red ball 2 steps forward and 1 step left", "a locked yellow door 3
steps forward"), the nearest wall straight ahead, to the left and to the right, and what the
agent carries (the engine draws the carried object in the agent's own cell). Phrases are
precomputed; a step reads 49 cells once.
"""

from __future__ import annotations

import contextlib
import io
import random
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid-* and BabyAI-* Gymnasium ids)
import numpy as np
from gymnasium import spaces
from minigrid.core.constants import IDX_TO_COLOR, OBJECT_TO_IDX
from minigrid.minigrid_env import MiniGridEnv

from envs.contract import TextEnv

__all__ = [
    "COMMANDS",
    "HELD_OUT_PAIRS",
    "MinigridTextEnv",
    "MinigridWorld",
    "describe_view",
    "mark_seen",
    "pair_split",
    "raw_steps_per_second",
]

#: The text commands, in Minigrid's action order (``Actions.left`` .. ``Actions.toggle``).
#: Minigrid's ``done`` action (6) is left out: no level used here reads it.
COMMANDS: tuple[str, ...] = ("turn left", "turn right", "move forward", "pick up", "drop", "toggle")
ACTION_OF: dict[str, int] = {c: a for a, c in enumerate(COMMANDS)}
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE = range(6)

#: Minigrid's own step limit is pushed out of reach: only the registered cap truncates.
ENGINE_MAX_STEPS = 1 << 30

#: (color, object type) pairs only the test split uses as a mission's target. Each color
#: once, each type at least once, so both splits see every color and every type.
HELD_OUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("green", "ball"),
        ("yellow", "ball"),
        ("purple", "box"),
        ("red", "box"),
        ("blue", "key"),
        ("grey", "door"),
    }
)


def pair_split(pairs: set[tuple[str, str]] | frozenset[tuple[str, str]]) -> str:
    """The split a mission whose targets have these (color, type) pairs belongs to: ``"test"``
    if any pair is held out, else ``"train"``."""
    return "test" if pairs & HELD_OUT_PAIRS else "train"


# --------------------------------------------------------------------------------------------
# Text rendering
# --------------------------------------------------------------------------------------------

_VIEW = 7  # Minigrid's default agent_view_size; the agent sits at (3, 6) looking to j = 0
_AGENT = (_VIEW // 2, _VIEW - 1)
_WALL = OBJECT_TO_IDX["wall"]
_EMPTY = OBJECT_TO_IDX["empty"]


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def _where(i: int, j: int) -> str:
    """Relative position of view cell (i, j) in words."""
    fwd, side = _AGENT[1] - j, i - _AGENT[0]
    lateral = f"{_steps(abs(side))} {'right' if side > 0 else 'left'}" if side else ""
    if not fwd:
        return lateral
    return f"{_steps(fwd)} forward" + (f" and {lateral}" if lateral else "")


def _object_names() -> dict[tuple[int, int, int], str]:
    """Name of every (type, color, state) encoding an object can have, with its article."""
    names: dict[tuple[int, int, int], str] = {}
    for c, color in IDX_TO_COLOR.items():
        for kind in ("key", "ball", "box"):
            names[OBJECT_TO_IDX[kind], c, 0] = f"a {color} {kind}"
        for s, state in enumerate(("an open", "a closed", "a locked")):
            names[OBJECT_TO_IDX["door"], c, s] = f"{state} {color} door"
        names[OBJECT_TO_IDX["floor"], c, 0] = f"a {color} floor tile"
        names[OBJECT_TO_IDX["goal"], c, 0] = "the goal"
        names[OBJECT_TO_IDX["lava"], c, 0] = "lava"
        names[_WALL, c, 0] = "a wall"
    return names


_NAMES = _object_names()
#: The view cells, nearest first, each with its phrase and which wall line it is on
#: (0: straight ahead, 1: left in the agent's row, 2: right in the agent's row, -1: none).
_ORDER: tuple[tuple[int, int, str, int], ...] = tuple(
    (
        i,
        j,
        _where(i, j),
        0 if i == _AGENT[0] else (1 if i < _AGENT[0] else 2) if j == _AGENT[1] else -1,
    )
    for i, j in sorted(
        ((i, j) for i in range(_VIEW) for j in range(_VIEW) if (i, j) != _AGENT),
        key=lambda c: (abs(c[0] - _AGENT[0]) + _AGENT[1] - c[1], _AGENT[1] - c[1], c[0]),
    )
)


def describe_view(image: np.ndarray) -> str:
    """Render a Minigrid egocentric view image (7x7x3, ``gen_obs()["image"]``) as text.

    Lists every visible object nearest first with its position relative to the agent, the
    nearest wall straight ahead, to the left and to the right, and what the agent carries.
    Cells the agent cannot see (encoded 0) are never mentioned.
    """
    cells = image.tolist()
    items = []
    walls = [False, False, False]
    for i, j, where, line in _ORDER:
        t, c, s = cells[i][j]
        if t <= _EMPTY:  # unseen or empty
            continue
        if t == _WALL:
            # only the nearest wall of each line: enough to know the room's extent ahead
            # and beside, without listing every wall cell
            if line < 0 or walls[line]:
                continue
            walls[line] = True
        items.append(f"{_NAMES[t, c, s]} {where}")
    text = f"You see {', '.join(items)}." if items else "You see nothing."
    t, c, s = cells[_AGENT[0]][_AGENT[1]]
    if t > _EMPTY:  # the engine draws the carried object in the agent's own cell
        text += f" You carry {_NAMES[t, c, s]}."
    return text


def _view_offsets() -> tuple[np.ndarray, np.ndarray]:
    """Per agent direction, the world offset (dx, dy) of each view cell (i, j) from the
    agent (the inverse of Minigrid's ``get_view_coords``)."""
    dirs = ((1, 0), (0, 1), (-1, 0), (0, -1))
    i, j = np.meshgrid(np.arange(_VIEW), np.arange(_VIEW), indexing="ij")
    fwd, side = _AGENT[1] - j, i - _AGENT[0]
    dx = np.stack([fwd * fx + side * -fy for fx, fy in dirs])
    dy = np.stack([fwd * fy + side * fx for fx, fy in dirs])
    return dx, dy


_VIEW_DX, _VIEW_DY = _view_offsets()


def mark_seen(seen: np.ndarray, x: int, y: int, d: int, image: np.ndarray) -> None:
    """Mark in ``seen`` (a (width, height) bool map of the grid) the cells an egocentric
    view ``image`` shows from pose (``x``, ``y``, direction ``d``): the cells the agent
    sees (encoded non-zero after occlusion), like BabyAIBot's ``vis_mask``."""
    width, height = seen.shape
    xs, ys = _VIEW_DX[d] + x, _VIEW_DY[d] + y
    vis = (image[:, :, 0] != 0) & (xs >= 0) & (ys >= 0) & (xs < width) & (ys < height)
    seen[xs[vis], ys[vis]] = True


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class MinigridWorld:
    """The mutable episode state: the Minigrid engine itself, plus what the adapter tracks.

    Deep-copying it copies the engine (grid, agent, mission verifier, engine RNG), so the
    base class's ``get_state`` / ``set_state`` are exact.
    """

    level: str
    engine: MiniGridEnv
    image: np.ndarray  # the engine's last egocentric view
    native_max_steps: int  # the level's own max_steps, for the shaped reward
    success: bool = False
    failed: bool = False


class MinigridTextEnv(TextEnv):
    """Base of a contract env over Minigrid levels (see the module docstring).

    A setting sets :attr:`LEVELS` (level name -> Minigrid Gymnasium id) and
    :attr:`DEFAULT_LEVELS`, and implements :meth:`_instance_split` (which split an instance
    just generated by the engine belongs to), :meth:`_make_world`, :meth:`checklist` and
    :meth:`expert_action`. Hooks :meth:`_before_step` / :meth:`_after_step` see each engine
    step.
    """

    LEVELS: dict[str, str] = {}
    DEFAULT_LEVELS: tuple[str, ...] = ()
    #: Resets tried per instance before giving up (the split rule rejects instances).
    MAX_TRIES = 1000

    def __init__(
        self,
        split: str = "train",
        render_mode: str | None = None,
        levels: tuple[str, ...] | list[str] | None = None,
        shaped_reward: bool = False,
    ) -> None:
        super().__init__(split, render_mode)
        levels = tuple(self.DEFAULT_LEVELS if levels is None else levels)
        unknown = [lv for lv in levels if lv not in self.LEVELS]
        if not levels or unknown:
            raise ValueError(
                f"unknown level(s) {unknown or list(levels)!r}; expected a non-empty selection "
                f"of {', '.join(self.LEVELS)}"
            )
        self.levels = levels
        self.shaped_reward = bool(shaped_reward)
        self.observation_space = spaces.Dict(
            {
                "goal": self.observation_space["goal"],
                "text": self.observation_space["text"],
                "image": spaces.Box(0, 255, (_VIEW, _VIEW, 3), np.uint8),
            }
        )
        # One engine per level, built once; reset regenerates its whole grid.
        self._engines: dict[str, MiniGridEnv] = {}
        self._native: dict[str, int] = {}
        for level in dict.fromkeys(levels):
            engine = gym.make(self.LEVELS[level]).unwrapped
            self._engines[level] = engine
            self._native[level] = engine.max_steps

    # -- hooks a setting implements ---------------------------------------------------------
    def _instance_split(self, level: str, engine: MiniGridEnv) -> str:
        """The split of the instance the engine just generated."""
        raise NotImplementedError

    def _make_world(self, level: str, engine: MiniGridEnv, image: np.ndarray, native: int):
        """Build ``self.world`` for a freshly generated instance."""
        return MinigridWorld(level, engine, image, native)

    def _before_step(self, action: int) -> None:
        """Called before the engine steps (e.g. to notice what the action will touch)."""

    def _after_step(self, action: int) -> None:
        """Called after the engine stepped and ``world.image`` was updated."""

    # -- TextEnv hooks ----------------------------------------------------------------------
    def _generate(self) -> tuple[str, str]:
        rng = self.np_random
        level = self.levels[int(rng.integers(len(self.levels)))]
        engine = self._engines[level]
        # Inner seeds of the two splits are disjoint (even / odd); the split rule then
        # rejects instances whose target composition belongs to the other split.
        parity = int(self.split == "test")
        for _ in range(self.MAX_TRIES):
            engine.max_steps = self._native[level]
            with contextlib.redirect_stdout(io.StringIO()):  # BabyAI prints its rejections
                obs, _ = engine.reset(seed=2 * int(rng.integers(1 << 30)) + parity)
            if self._instance_split(level, engine) == self.split:
                break
        else:
            raise RuntimeError(
                f"level {level!r} generated no {self.split} instance in {self.MAX_TRIES} tries"
            )
        # BabyAI levels recompute max_steps at reset: read the native value after it
        native = engine.max_steps
        engine.max_steps = ENGINE_MAX_STEPS
        self.world = self._make_world(level, engine, obs["image"], native)
        return engine.mission, describe_view(obs["image"])

    def admissible_actions(self) -> list[str]:
        """All six commands, always (a command that cannot act, e.g. ``drop`` with empty
        hands, is a valid step that changes nothing, as in Minigrid)."""
        return list(COMMANDS)

    def _execute(self, command: str) -> str:
        w = self.world
        action = ACTION_OF[command]
        self._before_step(action)
        obs, reward, terminated, _, _ = w.engine.step(action)
        w.image = obs["image"]
        # Minigrid rewards success only; a termination without reward is its own failure
        # (lava, a BabyAI verifier failure).
        w.success = bool(terminated and reward > 0)
        w.failed = w.failed or bool(terminated and not w.success)
        self._after_step(action)
        return describe_view(w.image)

    def _succeeded(self) -> bool:
        return self.world.success

    def _failed(self) -> bool:
        return self.world.failed

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = super().step(action)
        if reward and self.shaped_reward:
            w = self.world
            reward = 1 - 0.9 * (w.engine.step_count / w.native_max_steps)
        return obs, reward, terminated, truncated, info

    def _obs(self) -> dict[str, Any]:
        # a copy: an invalid command returns the same view again, and callers keep obs
        return {"goal": self.goal, "text": self._text, "image": self.world.image.copy()}

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()


def raw_steps_per_second(level: str, steps: int = 5000, seed: int = 0) -> float:
    """Steps per second of a raw Minigrid env (``gym.make(level)``, e.g.
    ``"BabyAI-GoToLocal-v0"``) under seeded random actions (the six commands' actions),
    resetting at episode ends as the engine decides. The baseline the adapter is held to."""
    env = gym.make(level)
    rng = random.Random(seed)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            env.reset(seed=seed)
            start = time.perf_counter()
            for _ in range(steps):
                _, _, terminated, truncated, _ = env.step(rng.randrange(len(COMMANDS)))
                if terminated or truncated:
                    env.reset()
            return steps / (time.perf_counter() - start)
    finally:
        env.close()
