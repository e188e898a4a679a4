"""Minigrid keys-and-doors levels on the real Minigrid engine, with a search planner expert
that explores what the agent has not seen.

See :class:`DoorKeyEnv`; the planner is :func:`plan_action`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from minigrid.core.world_object import Door, WorldObj
from minigrid.minigrid_env import MiniGridEnv

from envs.minigrid_adapter import (
    COMMANDS,
    DROP,
    FORWARD,
    LEFT,
    PICKUP,
    RIGHT,
    TOGGLE,
    MinigridTextEnv,
    MinigridWorld,
    mark_seen,
    pair_split,
)

__all__ = ["DOORKEY_LEVELS", "DoorKeyEnv", "DoorKeyWorld", "plan_action"]

#: Level name -> Minigrid id: small sizes a text agent can solve within 100 steps.
DOORKEY_LEVELS: dict[str, str] = {
    "DoorKey-5x5": "MiniGrid-DoorKey-5x5-v0",
    "DoorKey-6x6": "MiniGrid-DoorKey-6x6-v0",
    "KeyCorridorS3R1": "MiniGrid-KeyCorridorS3R1-v0",
    "UnlockPickup": "MiniGrid-UnlockPickup-v0",
}

_DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # Minigrid's DIR_TO_VEC
_MOVABLE = frozenset({"key", "ball", "box"})


def _door_split(door_pos: tuple[int, int]) -> str:
    """DoorKey layouts: a door at (column, row) with column + row divisible by 3 is
    test-only (5x5: the door in row 1; 6x6: doors at (2, 1) and (3, 3))."""
    return "test" if sum(door_pos) % 3 == 0 else "train"


@dataclass(eq=False)
class DoorKeyWorld(MinigridWorld):
    """Adds the objects the checklist and the planner refer to (the engine's own objects,
    so a snapshot copies them consistently with the grid), and the planner's memory: the
    cells the agent has seen."""

    door: Door | None = None  # the locked door of the level
    target: WorldObj | None = None  # the object to pick up (None: reach the goal square)
    target_toggled: bool = False  # the next toggle faces the target box
    seen: np.ndarray = field(default=None)  # (width, height) bool: cells the agent has seen


class DoorKeyEnv(MinigridTextEnv):
    """Minigrid keys and doors: find the key, unlock the door, reach the goal or the object.

    ## Description

    An episode is one instance of a Minigrid level, drawn uniformly from ``levels``:

    * ``DoorKey-5x5``, ``DoorKey-6x6``: "use the key to open the door and then get to the
      goal" — a wall splits the room; its door is locked, the yellow key lies on the
      agent's side, the goal square on the other.
    * ``KeyCorridorS3R1``: "pick up the purple ball" — a corridor of 1x1 rooms; the ball is
      behind a locked door, its key behind a closed one.
    * ``UnlockPickup``: "pick up the red box" — two rooms joined by a locked door; the key
      is in the agent's room, the box in the other.

    The default mixture is all four. Larger sizes (DoorKey-8x8/16x16, KeyCorridorS3R2+)
    and BlockedUnlockPickup are left out for the length of their episodes in text.

    Splits hold out compositions where the level has them: the target object's (color,
    type) pair (:data:`envs.minigrid_adapter.HELD_OUT_PAIRS`: green or yellow ball, purple
    or red box) makes a KeyCorridor / UnlockPickup instance test-only; DoorKey has one
    mission and fixed colors, so its split holds out layouts instead (the door's position
    in the splitting wall: column + row divisible by 3 is test-only). Engine seeds are
    disjoint per split (even for train, odd for test).

    The expert (:func:`plan_action`) plans from the current state over what the agent has
    seen: the env keeps a map of every cell any of the agent's views showed
    (``DoorKeyWorld.seen``, BabyAIBot's ``vis_mask``); seen cells hold what the engine
    holds (only the agent changes a grid), unseen ones are unknown and never planned
    through. While the objective (goal square, target object) is unseen it explores:
    it turns and walks to face the nearest unseen cell, opening closed doors on the way,
    except that once it has seen the level's locked door it fetches that door's key (when
    seen; else it explores for it) and unlocks the door, as the missions say. Once the
    objective is seen and reachable it goes to the goal square, or faces the target and
    picks it up; if a locked door separates them, it unlocks that one first. Navigation is
    a breadth-first search over (position, direction), moves tried forward, left, right
    (relative to the agent, which cannot see which way is north), that opens closed doors
    on its way and moves an object blocking the only path. Whatever the agent carries
    that the plan does not need is put down first, on the nearest free seen cell whose
    occupation keeps every remaining subgoal (and, while exploring, some unseen cell)
    reachable. It solves every instance from any reachable state, in about 15 steps on
    average (at most about 27) from reset.

    ## Action Space

    A text command: ``turn left``, ``turn right``, ``move forward``, ``pick up``,
    ``drop``, ``toggle`` — all admissible in every state (one that cannot act changes
    nothing, as in Minigrid). Minigrid's ``done`` action is not offered: these levels never
    read it.

    ## Observation Space

    ``{"goal": str, "text": str, "image": Box(0, 255, (7, 7, 3), uint8)}``: the mission,
    a rendering of the agent's egocentric 7x7 view after occlusion ("You see a locked
    yellow door 2 steps forward and 1 step right, a wall 3 steps forward. You carry a
    yellow key."), and Minigrid's own encoding of that view.

    ## Starting State

    The level's own generation, seeded from ``np_random``.

    ## Reward

    1.0 on the step the goal square is reached / the target is picked up, else 0.0. With
    ``shaped_reward=True``, Minigrid's ``1 - 0.9 * step_count / max_steps`` instead (the
    level's own max_steps).

    ## Episode End

    ``terminated`` on success, or on failure: toggling the target box destroys it in
    Minigrid (UnlockPickup), which ends the episode unsolved. Minigrid's own step limit is
    disabled: only the registered ``max_episode_steps`` (100) truncates.

    ## Info

    ``admissible_actions``, ``invalid_action``, ``success``, ``checklist``, e.g.
    ``{"the yellow door is unlocked": True, "at the goal": False}`` or ``{"the red door is
    unlocked": ..., "carrying the red box": ...}``.

    ## Arguments

    * ``split``: ``"train"`` or ``"test"``.
    * ``render_mode``: ``None``, ``"ansi"`` or ``"human"``.
    * ``levels``: level names (keys of :data:`DOORKEY_LEVELS`); default all.
    * ``shaped_reward``: Minigrid's step-discounted success reward instead of 1.0.

    ## Version History

    * v0: initial release (minigrid 3.2). Later in v0 (issue 16): the expert plans over
      the cells the agent has seen and explores the rest, instead of over the full grid
      (it walked straight to a key or a goal the agent had not seen).
    """

    LEVELS = DOORKEY_LEVELS
    DEFAULT_LEVELS = tuple(DOORKEY_LEVELS)

    def _instance_split(self, level: str, engine: MiniGridEnv) -> str:
        target = getattr(engine, "obj", None)
        if target is not None:
            return pair_split(frozenset({(target.color, target.type)}))
        return _door_split(_locked_door(engine).cur_pos)

    def _make_world(self, level, engine, image, native) -> DoorKeyWorld:
        world = DoorKeyWorld(
            level,
            engine,
            image,
            native,
            door=_locked_door(engine),
            target=getattr(engine, "obj", None),
            seen=np.zeros((engine.width, engine.height), dtype=bool),
        )
        _look(world)
        return world

    def _before_step(self, action: int) -> None:
        w = self.world
        if action == TOGGLE and w.target is not None:
            e = w.engine
            w.target_toggled = e.grid.get(*e.front_pos) is w.target and w.target.type == "box"

    def _after_step(self, action: int) -> None:
        w = self.world
        if w.target_toggled:
            w.failed = True  # the target box is gone
            w.target_toggled = False
        _look(w)

    def checklist(self) -> dict[str, bool]:
        """Door unlocked, then goal reached / target carried."""
        w = self.world
        e = w.engine
        items = {f"the {w.door.color} door is unlocked": not w.door.is_locked}
        if w.target is None:
            cell = e.grid.get(*e.agent_pos)
            items["at the goal"] = cell is not None and cell.type == "goal"
        else:
            items[f"carrying the {w.target.color} {w.target.type}"] = e.carrying is w.target
        return items

    def expert_action(self) -> str:
        """The planner's command from the current state, using only the cells the agent has
        seen (see :func:`plan_action`)."""
        w = self.world
        return COMMANDS[plan_action(w.engine, w.target, w.seen)]


def _look(world: DoorKeyWorld) -> None:
    """Add the cells of the agent's current view to what it has seen."""
    e = world.engine
    mark_seen(world.seen, int(e.agent_pos[0]), int(e.agent_pos[1]), e.agent_dir, world.image)


def _locked_door(engine: MiniGridEnv) -> Door:
    """The level's locked door (each level here has exactly one)."""
    for cell in engine.grid.grid:
        if cell is not None and cell.type == "door" and cell.is_locked:
            return cell
    raise ValueError(f"{type(engine).__name__} has no locked door")


# --------------------------------------------------------------------------------------------
# The planner
# --------------------------------------------------------------------------------------------


class _Planner:
    """One planning call over a fixed engine state and the cells the agent has seen (see
    :func:`plan_action`). Only seen cells are known: their contents are the engine's
    (nothing changes in a grid but by the agent's own actions), every other cell is
    unknown and never stood on or planned through."""

    def __init__(self, engine: MiniGridEnv, target: WorldObj | None, seen: np.ndarray) -> None:
        self.e = engine
        self.grid = engine.grid
        self.w, self.h = engine.width, engine.height
        self.target = target
        self.seen = seen
        self.carrying = engine.carrying
        self.pos = (int(engine.agent_pos[0]), int(engine.agent_pos[1]))
        self.dir = int(engine.agent_dir)

    # -- cells ------------------------------------------------------------------------------
    def cell(self, p: tuple[int, int]) -> WorldObj | None:
        return self.grid.get(*p)

    def inside(self, p: tuple[int, int]) -> bool:
        return 0 <= p[0] < self.w and 0 <= p[1] < self.h

    def walkable(self, p: tuple[int, int], movable: bool = False, locked: bool = False) -> bool:
        """Whether the agent can stand on ``p`` as far as it knows (closed doors count: it
        opens them); a cell it has not seen is not."""
        if not self.seen[p]:
            return False
        c = self.grid.get(*p)
        if c is None or c.type in ("goal", "floor"):
            return True
        if c.type == "door":
            return locked or not c.is_locked
        return movable and c.type in _MOVABLE

    def neighbours(self, p: tuple[int, int]):
        x, y = p
        for dx, dy in _DIRS:
            q = (x + dx, y + dy)
            if self.inside(q):
                yield q

    def reach(
        self,
        start: tuple[int, int],
        movable: bool = False,
        locked: bool = False,
        blocked: tuple[int, int] | None = None,
    ) -> dict[tuple[int, int], tuple[int, int] | None]:
        """Known cells reachable from ``start`` (with BFS parents)."""
        parent: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
        queue = deque([start])
        while queue:
            p = queue.popleft()
            for q in self.neighbours(p):
                if q not in parent and q != blocked and self.walkable(q, movable, locked):
                    parent[q] = p
                    queue.append(q)
        return parent

    def seen_objects(self, kind: str):
        """Objects of ``kind`` on cells the agent has seen, in grid order."""
        w = self.w
        for i, c in enumerate(self.grid.grid):
            if c is not None and c.type == kind and self.seen[i % w, i // w]:
                yield c

    # -- subgoals ---------------------------------------------------------------------------
    def objective_cells(self) -> set[tuple[int, int]] | None:
        """Cells from which the objective is achieved: the goal square itself, or any cell
        next to the target; ``None`` while the agent has not seen it."""
        if self.target is None:
            goal = next(self.seen_objects("goal"), None)
            return None if goal is None else {tuple(goal.cur_pos)}
        pos = tuple(self.target.cur_pos)
        return set(self.neighbours(pos)) if self.seen[pos] else None

    def door_to(self, goal: set[tuple[int, int]]) -> Door | None:
        """The locked door on a known path to ``goal`` (the one nearest the agent), if any."""
        parent = self.reach(self.pos, movable=True, locked=True)
        p = next((p for p in parent if p in goal), None)
        door = None
        while p is not None:
            c = self.cell(p)
            if c is not None and c.type == "door" and c.is_locked:
                door = c  # keep walking back: the one nearest the agent wins
            p = parent[p]
        return door

    def frontier(self) -> set[tuple[int, int]]:
        """Known walkable cells (locked doors included) next to a cell not seen yet."""
        return {
            p
            for p in self.reach(self.pos, movable=True, locked=True)
            if any(not self.seen[q] for q in self.neighbours(p))
        }

    def important(self, door: Door | None, explore: bool) -> list[set[tuple[int, int]]]:
        """Cell sets the agent must still be able to reach after putting something down."""
        goal = self.objective_cells()
        sets = [] if goal is None else [goal]
        if door is not None:
            sets.append(set(self.neighbours(tuple(door.cur_pos))))
            key = self.find_key(door.color)
            if key is not None:
                sets.append(set(self.neighbours(tuple(key.cur_pos))))
        if explore and goal is None:
            frontier = self.frontier()
            if frontier:
                sets.append(frontier)
        return sets

    def find_key(self, color: str) -> WorldObj | None:
        return next((c for c in self.seen_objects("key") if c.color == color), None)

    # -- navigation -------------------------------------------------------------------------
    def navigate(self, accept, movable: bool = False) -> tuple[int | None, tuple | None]:
        """BFS over (position, direction) to the nearest pose ``accept(pos, dir)`` holds in;
        returns (first action, that pose), (None, pose) if already there, (None, None) if
        unreachable. Forward steps may enter closed doors (and movable objects if allowed).
        Moves are tried forward, left, right: relative to the agent, so the plan does not
        depend on which way is north, which the agent cannot see."""
        start = (self.pos, self.dir)
        if accept(*start):
            return None, start
        first: dict[tuple, int | None] = {start: None}
        queue = deque([start])
        while queue:
            p, d = queue.popleft()
            dx, dy = _DIRS[d]
            q = (p[0] + dx, p[1] + dy)
            moves = [(LEFT, (p, (d - 1) % 4)), (RIGHT, (p, (d + 1) % 4))]
            if self.inside(q) and self.walkable(q, movable):
                moves.insert(0, (FORWARD, (q, d)))
            for action, state in moves:
                if state in first:
                    continue
                first[state] = action if first[(p, d)] is None else first[(p, d)]
                if accept(*state):
                    return first[state], state
                queue.append(state)
        return None, None

    def front(self, p: tuple[int, int], d: int) -> tuple[int, int]:
        return (p[0] + _DIRS[d][0], p[1] + _DIRS[d][1])

    def go_and(self, target_pos: tuple[int, int], action: int, door: Door | None) -> int:
        """Face ``target_pos`` and do ``action`` there."""

        def facing(p, d):
            return self.front(p, d) == target_pos

        return self.move(facing, action, door)

    def move(self, accept, final: int, door: Door | None, clear: bool = True) -> int:
        """The next command towards a pose ``accept`` holds in, then ``final``; with
        ``clear``, move objects out of the way if nothing else gets there."""
        step, pose = self.navigate(accept)
        if pose is None and clear:
            # only movable objects are in the way: walk up to the first one and move it
            step, pose = self.navigate(accept, movable=True)
        if pose is None:
            raise RuntimeError("the planner found no path (unsolvable state)")
        if step is None:
            return final
        if step == FORWARD:
            c = self.cell(self.front(self.pos, self.dir))
            if c is not None and c.type == "door" and not c.is_open:
                return TOGGLE
            if c is not None and c.type in _MOVABLE:
                return self.put_down(door) if self.carrying is not None else PICKUP
        return step

    def put_down(self, door: Door | None) -> int:
        """The next command to put the carried object on the nearest free known cell that
        keeps every remaining subgoal reachable from where the agent then stands (and, while
        the objective is unseen, some unexplored cell, if any drop does)."""
        for explore in (True, False):
            needed = self.important(door, explore)

            def ok(p, d, needed=needed):
                c = self.front(p, d)
                if not self.inside(c) or not self.seen[c] or self.cell(c) is not None:
                    return False
                region = self.reach(p, locked=True, blocked=c)
                return all(any(q in region for q in cells) for cells in needed)

            if self.navigate(ok)[1] is not None or not explore:
                return self.move(ok, DROP, door, clear=False)
        raise AssertionError("unreachable")

    def explore(self, door: Door | None) -> int:
        """The next command towards facing the nearest cell not seen yet (the front cell is
        always in view, so facing one shows it)."""

        def unseen(p, d):
            c = self.front(p, d)
            return self.inside(c) and not self.seen[c]

        return self.move(unseen, FORWARD, door)

    # -- the plan ---------------------------------------------------------------------------
    def action(self) -> int:
        goal = self.objective_cells()
        if goal is not None:
            if goal & self.reach(self.pos, movable=True).keys():
                return self.achieve()
            door = self.door_to(goal)
        else:
            # the mission's locked door, once seen: what lies behind it is the way on
            door = next((d for d in self.seen_objects("door") if d.is_locked), None)
        if door is not None:
            carrying = self.carrying
            if carrying is not None and carrying.type == "key" and carrying.color == door.color:
                return self.go_and(tuple(door.cur_pos), TOGGLE, door)
            if carrying is not None:
                return self.put_down(door)
            key = self.find_key(door.color)
            if key is not None:
                return self.go_and(tuple(key.cur_pos), PICKUP, door)
        return self.explore(door)

    def achieve(self) -> int:
        """The next command of the objective, reachable without unlocking anything."""
        if self.target is None:
            goal = next(iter(self.objective_cells()))
            return self.move(lambda p, d: self.front(p, d) == goal, FORWARD, None)
        if self.carrying is not None:
            return self.put_down(None)
        return self.go_and(tuple(self.target.cur_pos), PICKUP, None)


def plan_action(engine: MiniGridEnv, target: WorldObj | None, seen: np.ndarray) -> int:
    """The planner's Minigrid action from the engine's current state and the cells the
    agent has seen (``seen``, a (width, height) bool map).

    ``target`` is the object to pick up, or ``None`` to reach the goal square. Acts from
    any state on what the agent knows: while the objective (goal square, target) has not
    been seen it explores, except that once the level's locked door has been seen it
    fetches that door's key (when seen) and unlocks the door; it puts down objects the
    plan does not need where they block nothing, moves blockers, then completes the
    objective.
    """
    return _Planner(engine, target, seen).action()
