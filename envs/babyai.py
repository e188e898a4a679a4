"""BabyAI language-conditioned levels on the real Minigrid engine, with Minigrid's BabyAIBot.

See :class:`BabyAIEnv`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from minigrid.envs.babyai.core.verifier import (
    GoToInstr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
)
from minigrid.minigrid_env import MiniGridEnv
from minigrid.utils.baby_ai_bot import BabyAIBot, DropSubgoal, GoNextToSubgoal

from envs.minigrid_adapter import (
    COMMANDS,
    TOGGLE,
    MinigridTextEnv,
    MinigridWorld,
    mark_seen,
    pair_split,
)

__all__ = ["BABYAI_LEVELS", "BabyAIEnv", "BabyAIWorld", "target_pairs"]

#: Level name -> Minigrid id. All are single-instruction levels (go to, pick up, put next
#: to, open) whose bot episodes fit the registered 64-step cap.
BABYAI_LEVELS: dict[str, str] = {
    "GoToObj": "BabyAI-GoToObj-v0",
    "GoToLocal": "BabyAI-GoToLocal-v0",
    "GoToDoor": "BabyAI-GoToDoor-v0",
    "PickupLoc": "BabyAI-PickupLoc-v0",
    "PutNextLocal": "BabyAI-PutNextLocal-v0",
    "OpenDoor": "BabyAI-OpenDoor-v0",
}


def _descs(instr) -> tuple[ObjDesc, ...]:
    if isinstance(instr, PutNextInstr):
        return (instr.desc_move, instr.desc_fixed)
    return (instr.desc,)


def target_pairs(engine: MiniGridEnv) -> frozenset[tuple[str, str]]:
    """The (color, type) pairs of every object the mission refers to, as matched at reset
    (a description without a color, "a ball", refers to each ball it matches)."""
    return frozenset((o.color, o.type) for d in _descs(engine.instrs) for o in d.obj_set)


@dataclass(eq=False)
class BabyAIWorld(MinigridWorld):
    """Adds the expert's memory: the cells the agent has seen, and the bot while it is in
    step with the episode (``None`` after any action it did not suggest)."""

    seen: np.ndarray = field(default=None)  # (width, height) bool, like the bot's vis_mask
    # views not yet added to ``seen`` (agent x, y, direction, image): marking is deferred to
    # the next expert call, so rollouts that never ask the expert do not pay for it
    pending: list = field(default_factory=list)
    label: str = ""  # the checklist item
    bot: BabyAIBot | None = None
    suggestion: int | None = None  # the bot's action for the current state, once asked
    box_target: bool = False  # the next toggle faces a box the mission refers to


class BabyAIEnv(MinigridTextEnv):
    """BabyAI language-conditioned levels (Chevalier-Boisvert et al., 2019) on Minigrid.

    ## Description

    An episode is one instance of a BabyAI level, drawn uniformly from ``levels``:

    * ``GoToObj``: "go to the red ball" — one object in an 8x8 room.
    * ``GoToLocal``: "go to the blue key" — 8 distractors in the same room.
    * ``GoToDoor``: "go to the red door" — four doors of the agent's room.
    * ``PickupLoc``: "pick up the key on your left" / "pick up a ball" — colors and
      locations (relative to the start pose) in descriptions, 8 distractors.
    * ``PutNextLocal``: "put the yellow key next to the purple box" — 8 objects.
    * ``OpenDoor``: "open the green door" / "open the door on your left".

    The default mixture is all six. Left out: ``Open`` and the maze levels (``GoTo``,
    ``Pickup``, ``Synth``, ...) span a 3x3 maze of rooms whose bot episodes exceed the
    64-step cap; ``GoToRedBall*`` and ``OpenRedDoor`` always name the same target, which
    leaves one split empty under held-out compositions; sequence levels (``GoToSeq``,
    ``OpenTwoDoors``, ...) would need the bot to resume mid-sequence; ``KeyInBox`` and the
    ``PutNext*Carrying`` levels are ones BabyAIBot cannot solve.

    Splits hold out compositions: a mission's targets are the objects its descriptions
    match at reset, and a (color, type) pair in
    :data:`envs.minigrid_adapter.HELD_OUT_PAIRS` (green ball, yellow ball, purple box, red
    box, blue key, grey door) makes an instance test-only; train instances target only the
    other pairs (held-out pairs may still appear there as distractors). Instances are
    drawn by rejection, with disjoint engine seeds per split (even for train, odd for test).

    The expert is Minigrid's ``BabyAIBot``, which keeps a stack of subgoals and a map of
    the cells it has seen. The env keeps that map for the agent at every step (whether or
    not the expert is asked), and keeps the bot in ``self.world`` (so snapshots copy it
    with the engine) while every action taken is the one it suggested. After any other
    action, or a restore, it rebuilds the bot from the mission and the seen map, first
    putting down whatever the agent carries (except the object a "put next to" mission
    moves). The bot explores cells it has not seen rather than using the hidden map, and
    it acts on what the agent can know: the stock bot broke ties by the grid's axes (which
    of two equally near cells or objects to go to first), which an egocentric view does
    not show, so two worlds that differ only by a rotation got different commands; here
    its ties are broken relative to the agent (see :class:`_Bot`).

    ## Action Space

    A text command: ``turn left``, ``turn right``, ``move forward``, ``pick up``,
    ``drop``, ``toggle`` — all admissible in every state (one that cannot act changes
    nothing, as in Minigrid). Minigrid's ``done`` action is not offered: these levels never
    read it.

    ## Observation Space

    ``{"goal": str, "text": str, "image": Box(0, 255, (7, 7, 3), uint8)}``: the mission,
    a rendering of the agent's egocentric 7x7 view after occlusion ("You see a red ball 2
    steps forward and 1 step left, a wall 3 steps forward. You carry a green key."), and
    Minigrid's own encoding of that view.

    ## Starting State

    The level's own generation (agent pose, objects, doors), seeded from ``np_random``.

    ## Reward

    1.0 on the step the mission is accomplished, else 0.0. With ``shaped_reward=True``,
    Minigrid's ``1 - 0.9 * step_count / max_steps`` instead (the level's own max_steps).

    ## Episode End

    ``terminated`` on success, or on failure: toggling ("opening") a box destroys it in
    Minigrid, and destroying a box the mission refers to ends the episode unsolved.
    Minigrid's own step limit is disabled: only the registered ``max_episode_steps`` (64)
    truncates.

    ## Info

    ``admissible_actions``, ``invalid_action``, ``success``, ``checklist``: one item that
    mirrors the mission's verifier, e.g. ``{"facing the red ball": False}``, ``{"carrying
    the blue key": ...}``, ``{"the green door is open": ...}``, ``{"the yellow key is next
    to the purple box": ...}``.

    ## Arguments

    * ``split``: ``"train"`` or ``"test"``.
    * ``render_mode``: ``None``, ``"ansi"`` or ``"human"``.
    * ``levels``: level names (keys of :data:`BABYAI_LEVELS`); default all.
    * ``shaped_reward``: Minigrid's step-discounted success reward instead of 1.0.

    ## Version History

    * v0: initial release (minigrid 3.2). Later in v0 (issue 16): the bot's ties are
      broken relative to the agent instead of by the grid's axes, and it matches the
      mission's objects by their current positions (the same subgoals otherwise).
    """

    LEVELS = BABYAI_LEVELS
    DEFAULT_LEVELS = tuple(BABYAI_LEVELS)

    def _instance_split(self, level: str, engine: MiniGridEnv) -> str:
        return pair_split(target_pairs(engine))

    def _make_world(self, level, engine, image, native) -> BabyAIWorld:
        world = BabyAIWorld(level, engine, image, native)
        world.seen = np.zeros((engine.width, engine.height), dtype=bool)
        world.label = _label(engine.instrs)
        self.world = world
        self._after_step(-1)
        return world

    # -- the expert's memory ----------------------------------------------------------------
    def _flush_seen(self) -> None:
        """Add the cells of every pending view to the seen map."""
        w = self.world
        for x, y, d, image in w.pending:
            mark_seen(w.seen, x, y, d, image)
        w.pending.clear()

    def _before_step(self, action: int) -> None:
        w = self.world
        if action != w.suggestion:
            w.bot = None  # out of step: rebuild when next asked
        w.suggestion = None
        if action == TOGGLE:
            e = w.engine
            cell = e.grid.get(*e.front_pos)
            w.box_target = (
                cell is not None
                and cell.type == "box"
                and any(cell is o for d in _descs(e.instrs) for o in d.obj_set)
            )

    def _after_step(self, action: int) -> None:
        w = self.world
        if w.box_target:
            w.failed = True  # the box the mission refers to is gone
            w.box_target = False
        e = w.engine
        w.pending.append((int(e.agent_pos[0]), int(e.agent_pos[1]), e.agent_dir, w.image))
        if len(w.pending) >= 256:  # bounded memory when the expert is never asked
            self._flush_seen()

    # -- contract ---------------------------------------------------------------------------
    def checklist(self) -> dict[str, bool]:
        """One item mirroring the mission's verifier, with whether it holds now."""
        w = self.world
        e = w.engine
        instr = e.instrs
        if isinstance(instr, GoToInstr):
            fx, fy = e.front_pos
            holds = any(p[0] == fx and p[1] == fy for p in instr.desc.obj_poss)
        elif isinstance(instr, PickupInstr):
            holds = any(e.carrying is o for o in instr.desc.obj_set)
        elif isinstance(instr, OpenInstr):
            holds = any(d.is_open for d in instr.desc.obj_set)
        else:
            holds = instr.objs_next()
        return {w.label: holds}

    def expert_action(self) -> str:
        """BabyAIBot's command from the current state (see the class docstring)."""
        w = self.world
        if w.suggestion is None:
            self._flush_seen()
            if w.bot is None:
                w.bot = self._fresh_bot()
            # a kept bot saw its own suggestion taken, which is what replan() assumes
            action = w.bot.replan()
            if action >= len(COMMANDS):
                raise RuntimeError(f"BabyAIBot gave up ({action!r}) on {self.goal!r}")
            w.suggestion = int(action)
        return COMMANDS[w.suggestion]

    def _fresh_bot(self) -> BabyAIBot:
        """A bot for the current state: the mission's plan, the agent's seen map, and a
        first step that puts down what the agent carries unless the plan needs it."""
        e = self.world.engine
        bot = _Bot(e)
        bot.vis_mask = self.world.seen  # shared: the env keeps it current
        carrying = e.carrying
        if carrying is None:
            return bot
        instr = e.instrs
        if isinstance(instr, PutNextInstr) and any(carrying is o for o in instr.desc_move.obj_set):
            # already holding the object to move: only the "put it next to" part remains
            bot.stack = [
                DropSubgoal(bot),
                GoNextToSubgoal(bot, instr.desc_fixed, reason="PutNext"),
            ]
            return bot
        bot.stack.append(DropSubgoal(bot))
        bot.stack.append(GoNextToSubgoal(bot, bot._find_drop_pos()))
        return bot


class _Bot(BabyAIBot):
    """``BabyAIBot`` with its ties broken relative to the agent, never by the grid's axes.

    The stock bot breaks ties by absolute directions and grid order: its breadth-first
    search expands the neighbours of a cell in an order that is "right first" facing east
    or west but "left first" facing north or south, seeds its search through blockers
    facing east, and takes the first of equally near matching objects in the grid's
    column-major order. The agent sees only an egocentric view, so two worlds that are
    the same up to a rotation look identical to it, yet got different expert commands.
    Here the search expands forward, right, left, back (relative to each search state),
    seeds every blocker search facing the agent's way, and ranks equally near objects by
    where they are relative to the agent (ahead first, then leftmost), matching each by
    its current position. Everything else is the stock bot.
    """

    def _breadth_first_search(self, initial_states, accept_fn, ignore_blockers):
        self.bfs_counter += 1
        grid = self.mission.unwrapped.grid
        queue = deque((state, None) for state in initial_states)
        previous_pos: dict = {}
        while queue:
            (i, j, di, dj), prev_pos = queue.popleft()
            if (i, j) in previous_pos:
                continue
            self.bfs_step_counter += 1
            cell = grid.get(i, j)
            previous_pos[(i, j)] = prev_pos
            if accept_fn((i, j), cell):
                path, pos = [], (i, j)
                while pos:
                    path.append(pos)
                    pos = previous_pos[pos]
                return path, (i, j), previous_pos
            if not self.vis_mask[i, j]:  # not seen: do not expand
                continue
            if cell:
                if cell.type == "wall" or (cell.type == "door" and not cell.is_open):
                    continue
                if cell.type != "door" and not ignore_blockers:
                    continue
            for k, m in ((di, dj), (-dj, di), (dj, -di), (-di, -dj)):  # fwd, right, left, back
                queue.append(((i + k, j + m, k, m), (i, j)))
        return None, None, previous_pos

    def _shortest_path(self, accept_fn, try_with_blockers=False):
        e = self.mission.unwrapped
        dx, dy = (int(v) for v in e.dir_vec)
        x, y = (int(v) for v in e.agent_pos)
        path, finish, previous_pos = self._breadth_first_search(
            [(x, y, dx, dy)], accept_fn, ignore_blockers=False
        )
        with_blockers = False
        if not path and try_with_blockers:
            with_blockers = True
            path, finish, _ = self._breadth_first_search(
                [(i, j, dx, dy) for i, j in previous_pos], accept_fn, ignore_blockers=True
            )
            if path:
                # prepend the blocker-free path to the cell the blocker search started from
                pos, extra = path[-1], []
                while pos:
                    extra.append(pos)
                    pos = previous_pos[pos]
                path = path + extra[1:]
        if path:
            path = path[::-1][1:]  # from the agent's next cell on
        return path, finish, with_blockers

    def _find_obj_pos(self, obj_desc, adjacent=False):
        e = self.mission.unwrapped
        ax, ay = (int(v) for v in e.agent_pos)
        (fx, fy), (rx, ry) = e.dir_vec, e.right_vec
        best = None
        for obj in obj_desc.obj_set:
            if obj.type == "wall" or obj is e.carrying or obj.cur_pos is None:
                continue
            pos = (int(obj.cur_pos[0]), int(obj.cur_pos[1]))
            if e.grid.get(*pos) is not obj or not self.vis_mask[pos]:
                continue  # gone (a toggled box) or not seen
            path, _, with_blockers = self._shortest_path(
                lambda p, cell, pos=pos: p == pos, try_with_blockers=True
            )
            assert path is not None
            # the stock bot's distance estimate
            distance = len(path) + ((7 if e.carrying else 4) if with_blockers else 0)
            if distance == 0:
                distance = 3 if adjacent else 2
            if adjacent and distance == 1:
                distance = 3
            vx, vy = pos[0] - ax, pos[1] - ay
            key = (distance, -(vx * fx + vy * fy), vx * rx + vy * ry)
            if best is None or key < best[0]:
                best = (key, obj, pos)
        return (None, None) if best is None else best[1:]


def _label(instr) -> str:
    """The checklist item of a mission."""
    if isinstance(instr, GoToInstr):
        return f"facing {_name(instr.desc)}"
    if isinstance(instr, PickupInstr):
        return f"carrying {_name(instr.desc)}"
    if isinstance(instr, OpenInstr):
        return f"{_name(instr.desc)} is open"
    return f"{_name(instr.desc_move)} is next to {_name(instr.desc_fixed)}"


def _name(desc: ObjDesc) -> str:
    """'the red ball' / 'the ball on your left' (the object a description names)."""
    words = [w for w in (desc.color, desc.type or "object") if w]
    text = "the " + " ".join(words)
    if desc.loc:
        text += {"front": " in front of you", "behind": " behind you"}.get(
            desc.loc, f" on your {desc.loc}"
        )
    return text
