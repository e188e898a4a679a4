"""Experts act on what the agent can know (issue 16, item 8), in every registered setting.

An imitator sees the goal, every observation so far (text, and a grid's image), the
admissible commands, rewards and ends, and its own commands. An expert whose command
depends on anything else (where a hidden object is, which order holds an item) teaches
a choice no policy can learn from what it sees. So: **twin instances that look the same
to the agent get the same expert command**, from every state, on or off the expert's path.

Each test puts two envs in lockstep: the same commands (the expert's, or random admissible
ones, drawn by a shared generator) go to both, and while everything the agent has seen is
identical in both, their experts must agree. Twins come from two sources:

* **constructed twins** (:data:`TWINS`): a reset instance and a copy whose *hidden* state
  is changed where the agent has not looked yet (a goal object moved to another closed
  receptacle, the orders' contents permuted behind their links, a key moved to a cell out
  of view, the whole grid rotated, which no egocentric view can tell). The reset views are
  checked to be identical, so a maker that changed something visible fails loudly.
* **natural twins**: distinct seeds whose reset observations coincide (the same request
  in a tool-use chat), for settings whose hidden state is not otherwise perturbed here.

Both count the expert calls they compared and the pairs that later diverged (the agent
saw the difference), so a test that compared nothing fails. Three settings have audits of
their own (:data:`OWN_AUDIT`): Cooking, whose hidden part is the TextWorld walkthrough's
route (a twin walkthrough leaves by another unexplored exit); Treasure hunter, whose goal
states its walkthrough's every move; and Shop, where nothing of an instance is hidden and
the one choice, the result to open, is checked against what the result pages show.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import re
from collections import defaultdict
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest

from envs import registered_ids
from tests.envs.helpers import make_env
from tests.envs.textworld_pools import GAMES

BUILTIN_IDS = [env_id for env_id in registered_ids() if env_id.startswith("earlyexp/")]
#: Steps of one lockstep walk at most (every registered step cap is at most 100).
CAP = 60


def visible(obs: dict, info: dict, reward: float = 0.0, end: bool = False) -> tuple:
    """Everything of one step the agent can see: goal, text, image, reward, whether the
    episode ended, the admissible commands and whether the command was refused."""
    image = obs.get("image")
    return (
        obs["goal"],
        obs["text"],
        None if image is None else np.asarray(image).tobytes(),
        float(reward),
        bool(end),
        tuple(info["admissible_actions"]),
        bool(info.get("invalid_action", False)),
    )


def reset_view(env: gym.Env) -> tuple:
    """:func:`visible` of the state a contract env is in right after reset (recomputed from
    the env, so a twin maker's change to what is shown would show here)."""
    e = env.unwrapped
    e._admissible = e.admissible_actions()
    return visible(e._obs(), {"admissible_actions": e._admissible})


def lockstep(env: gym.Env, twin: gym.Env, rng: random.Random, expert: float) -> tuple[int, bool]:
    """Walk ``env`` and ``twin`` (both just reset, with identical reset views) with the
    same commands: the expert's with probability ``expert``, else a random admissible one.
    While all the agent has seen agrees, the two experts must give the same command.
    Returns (expert calls compared, whether the views diverged before the end)."""
    a, b = env.unwrapped, twin.unwrapped
    assert reset_view(a) == reset_view(b), "the twin maker changed what the agent sees"
    compared = 0
    admissible = list(a._admissible)
    for step in range(CAP):
        command = a.expert_action()
        assert b.expert_action() == command, (
            f"step {step}: the expert gives {command!r} in one twin and "
            f"{b.expert_action()!r} in the other, which look the same to the agent "
            f"(goal {a.goal!r})"
        )
        compared += 1
        if rng.random() >= expert:
            command = rng.choice(admissible)
        out_a, out_b = a.step(command), b.step(command)
        seen_a = visible(out_a[0], out_a[4], out_a[1], out_a[2] or out_a[3])
        seen_b = visible(out_b[0], out_b[4], out_b[1], out_b[2] or out_b[3])
        if seen_a != seen_b:
            return compared, True
        if out_a[2] or out_a[3]:
            return compared, False
        admissible = list(out_a[4]["admissible_actions"])
    return compared, False


# --------------------------------------------------------------------------------------------
# Constructed twins: change what the agent has not seen yet
# --------------------------------------------------------------------------------------------


def _household_twin(env, rng: random.Random) -> bool:
    """Move a goal object to another receptacle whose contents the agent has not seen, of
    a type where such objects spawn (a reset shows only the room listing)."""
    w = env.world
    t = w.task
    unseen = [r for r in range(len(w.layout.rnames)) if not w.seen >> r & 1]
    movable = [o for o in t.goal_objs if w.obj_loc[o] in unseen]
    if not movable:
        return False
    o = rng.choice(movable)
    others = [r for r in unseen if t.plausible >> r & 1 and r != w.obj_loc[o]]
    if not others:
        return False
    w.obj_loc[o] = rng.choice(others)
    return True


def _webnav_twin(env, rng: random.Random) -> bool:
    """Permute what the order pages and thread pages show (items and totals, statuses;
    thread authors and replies) among those the agent has not opened. The order list
    shows only order numbers, the forum pages only thread titles; a task that names an
    order by an item then targets the order that now holds it."""
    from envs import webnav as wn

    w = env.world
    site, task = w.site, w.task
    n_f, n_t = len(site.forums), len(site.threads)
    first_order = 5 + n_f + n_t

    def shuffle(indices: list[int]) -> dict[int, int]:
        dest = indices[:]
        while len(indices) > 1 and dest == indices:
            rng.shuffle(dest)
        return dict(zip(indices, dest, strict=True))

    orders, status, threads = list(site.orders), list(w.status), list(site.threads)
    move = shuffle([k for k in range(len(orders)) if not w.visited >> (first_order + k) & 1])
    keep_status = task.family == wn.CANCEL_ORDER and task.slot == "number"
    for src, dst in move.items():
        orders[dst] = dataclasses.replace(
            orders[dst], items=site.orders[src].items, total=site.orders[src].total
        )
        if not keep_status:
            status[dst] = w.status[src]
    move_t = shuffle([j for j in range(n_t) if not w.visited >> (5 + n_f + j) & 1])
    for src, dst in move_t.items():
        threads[dst] = dataclasses.replace(
            threads[dst], author=site.threads[src].author, replies=site.threads[src].replies
        )
    if len(move) < 2 and len(move_t) < 2:
        return False
    pages = wn._build_pages(site.variant, site.user, list(site.forums), threads, orders)
    w.site = dataclasses.replace(site, orders=tuple(orders), threads=tuple(threads), pages=pages)
    w.status = status
    if task.family == wn.CANCEL_ORDER and task.slot == "item":
        item = site.orders[task.index].items[0]  # the item the goal names
        index = next(k for k, o in enumerate(orders) if item in o.items)
        number = orders[index].number
        labels = (f"visited order {number}", f"order {number} cancelled")
        w.task = dataclasses.replace(task, index=index, page=first_order + index, labels=labels)
    env._text = env._render()
    return True


def _lab_twin(env, rng: random.Random) -> bool:
    """Swap what two fixtures hold whose contents the reset did not show (closed, or in
    another room than the agent's): counter, cupboard and freezer in the kitchen, and the
    thermometer between the counter and the workshop's workbench."""
    from envs import lab

    w = env.world
    lay = w.layout

    def hidden(f: int) -> bool:
        return lay.openable[f] or lay.home[f] != w.room

    changed = False
    places = (lab.COUNTER, lab.WORKBENCH)
    if all(hidden(f) for f in places) and rng.random() < 0.7:
        thermometer = lay.thermometer
        w.loc[thermometer] = places[1 - places.index(w.loc[thermometer])]
        changed = True
    pairs = [(lab.COUNTER, lab.CUPBOARD), (lab.CUPBOARD, lab.FREEZER), (lab.COUNTER, lab.FREEZER)]
    for f, g in pairs:
        if hidden(f) and hidden(g) and rng.random() < 0.5:
            for t, at in enumerate(w.loc):
                if at in (f, g):
                    w.loc[t] = g if at == f else f
            changed = True
    env._text = env._describe_room()
    return changed


def _view_cells(engine) -> np.ndarray:
    """The (width, height) map of the cells the agent's view shows now (Minigrid's own
    view geometry and occlusion, ``gen_obs_grid``)."""
    _, vis = engine.gen_obs_grid()
    shown = np.zeros((engine.width, engine.height), dtype=bool)
    for x in range(engine.width):
        for y in range(engine.height):
            coords = engine.relative_coords(x, y)
            shown[x, y] = coords is not None and bool(vis[coords])
    return shown


def _rotate(engine) -> None:
    """Turn the engine's whole world a quarter turn (counter-clockwise): every egocentric
    view stays the same, so the agent cannot tell; only the hidden compass changes."""
    width = engine.width

    def turn(p):
        return None if p is None else (int(p[1]), width - 1 - int(p[0]))

    grid = engine.grid.rotate_left()
    for obj in grid.grid:
        if obj is not None:
            obj.cur_pos, obj.init_pos = turn(obj.cur_pos), turn(obj.init_pos)
    engine.grid, engine.width, engine.height = grid, grid.width, grid.height
    engine.agent_pos, engine.agent_dir = turn(engine.agent_pos), (engine.agent_dir + 3) % 4


def _move_hidden_object(engine, rng: random.Random) -> bool:
    """Move a key, ball, box or the goal square the reset view does not show to another
    empty cell it does not show, in the same room (cells joined without crossing a wall or
    a door), so the level stays as solvable as it was."""
    shown = _view_cells(engine)
    grid = engine.grid
    kinds = ("key", "ball", "box", "goal")

    def room_of(start):
        cells, queue = {start}, [start]
        while queue:
            x, y = queue.pop()
            for q in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                c = grid.get(*q) if 0 <= q[0] < grid.width and 0 <= q[1] < grid.height else None
                inside = 0 <= q[0] < grid.width and 0 <= q[1] < grid.height
                if inside and q not in cells and (c is None or c.type in kinds):
                    cells.add(q)
                    queue.append(q)
        return cells

    agent = tuple(int(v) for v in engine.agent_pos)
    hidden = [
        (i % grid.width, i // grid.width)
        for i, c in enumerate(grid.grid)
        if c is not None and c.type in kinds and not shown[i % grid.width, i // grid.width]
    ]
    rng.shuffle(hidden)
    for p in hidden:
        free = sorted(q for q in room_of(p) if q != agent and grid.get(*q) is None and not shown[q])
        if free:
            q = rng.choice(free)
            obj = grid.get(*p)
            grid.set(*p, None)
            grid.set(*q, obj)
            obj.cur_pos = obj.init_pos = q
            return True
    return False


def _grid_twin(env, rng: random.Random) -> bool:
    """Rotate the whole world (a quarter, half or three-quarter turn), or move an object
    the reset view does not show; then rebuild what the env derives from the reset (the
    view, a mission's matched objects, the expert's memory)."""
    from envs.minigrid_adapter import describe_view

    w = env.world
    engine = copy.deepcopy(w.engine)  # the env reuses its engine at the next reset
    descs = _mission_objects(engine)
    if rng.random() < 0.5 or not _move_hidden_object(engine, rng):
        for _ in range(rng.randrange(1, 4)):
            _rotate(engine)
    if hasattr(engine, "instrs"):  # BabyAI: match the mission's objects again
        engine.instrs.reset_verifier(engine)
        if _mission_objects(engine) != descs or env.checklist() != {w.label: False}:
            return False  # the move changed what the mission refers to: not a twin
    image = engine.gen_obs()["image"]
    env.world = env._make_world(w.level, engine, image, w.native_max_steps)
    env._text = describe_view(image)
    return True


def _mission_objects(engine) -> list:
    """The objects each of a BabyAI mission's descriptions matches (none for DoorKey)."""
    if not hasattr(engine, "instrs"):
        return []
    from envs.babyai import _descs

    return [sorted(id(o) for o in d.obj_set) for d in _descs(engine.instrs)]


#: Per setting, a maker that changes a just-reset env's hidden state in place (``True``
#: when it found something to change).
TWINS: dict[str, Callable[[gym.Env, random.Random], bool]] = {
    "earlyexp/Household-v0": _household_twin,
    "earlyexp/WebNav-v0": _webnav_twin,
    "earlyexp/Lab-v0": _lab_twin,
    "earlyexp/BabyAI-v0": _grid_twin,
    "earlyexp/DoorKey-v0": _grid_twin,
}
#: (instances, random walk share) per constructed-twin setting, and the least compared
#: expert calls / diverged pairs a run must reach.
BUDGET = {
    "earlyexp/Household-v0": 60,
    "earlyexp/WebNav-v0": 150,
    "earlyexp/Lab-v0": 120,
    "earlyexp/BabyAI-v0": 80,
    "earlyexp/DoorKey-v0": 120,
}


def _constructed_pairs(env_id: str, request: pytest.FixtureRequest, expert: float):
    env = make_env(env_id, "test", request)
    twin = make_env(env_id, "test", request)
    maker = TWINS[env_id]
    compared = diverged = pairs = 0
    for seed in range(BUDGET[env_id]):
        rng = random.Random(seed)
        env.reset(seed=seed)
        twin.reset(seed=seed)
        if not maker(twin.unwrapped, rng):
            continue
        n, split = lockstep(env, twin, rng, expert)
        compared, diverged, pairs = compared + n, diverged + split, pairs + 1
    return compared, diverged, pairs


@pytest.mark.parametrize("expert", [1.0, 0.7])
@pytest.mark.parametrize("env_id", sorted(TWINS))
def test_constructed_twins_get_the_same_expert_command(
    env_id: str, expert: float, request: pytest.FixtureRequest
) -> None:
    """On the expert's own path (``expert=1``) and off it (30% random commands)."""
    compared, diverged, pairs = _constructed_pairs(env_id, request, expert)
    assert pairs >= BUDGET[env_id] // 3, pairs
    # a rotated twin never diverges; most others do before the episode ends
    assert compared >= 2 * pairs and diverged >= pairs // 8, (compared, diverged, pairs)


# --------------------------------------------------------------------------------------------
# Natural twins: distinct instances whose reset views coincide
# --------------------------------------------------------------------------------------------


#: Per setting, how many reset seeds (train split) to group by their reset views.
NATURAL: dict[str, int] = {"earlyexp/Tools-v0": 400}


@pytest.mark.parametrize("env_id", sorted(NATURAL))
def test_natural_twins_get_the_same_expert_command(
    env_id: str, request: pytest.FixtureRequest
) -> None:
    env = make_env(env_id, "train", request)
    twin = make_env(env_id, "train", request)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for seed in range(NATURAL[env_id]):
        env.reset(seed=seed)
        groups[reset_view(env)].append(seed)
    compared = pairs = 0
    for seeds in groups.values():
        for first, second in zip(seeds, seeds[1:], strict=False):
            env.reset(seed=first)
            twin.reset(seed=second)
            n, _ = lockstep(env, twin, random.Random(first), 0.8)
            compared, pairs = compared + n, pairs + 1
    # most pairs part at the first answer (the customer's email), some later
    assert pairs >= 10 and compared >= pairs + pairs // 10, (pairs, compared)


# --------------------------------------------------------------------------------------------
# TextWorld: twins whose walkthroughs differ where the agent has not been
# --------------------------------------------------------------------------------------------

#: Cooking games on a map (the session's tiny pool is one room): 2 ingredients, 2 of them
#: to find, 6 rooms.
MAP_GAMES, MAPS = 3, {"recipe": 2, "take": 2, "go": 6}


@pytest.fixture(scope="module")
def cooking_maps(tmp_path_factory: pytest.TempPathFactory):
    from envs.textworld_games import game_pool

    root = tmp_path_factory.mktemp("twmaps")
    game_pool("tw-cooking", "train", MAP_GAMES, root, **MAPS)
    return root


class _OtherWay:
    """A quest tracker whose walkthrough leaves the current room by another exit than the
    real one, where both lead to rooms the agent has not been in: the walkthrough of a
    world laid out differently beyond what the agent has seen (the kitchen behind the other
    door). TextWorld's walkthroughs are written by a generator that knows the whole map."""

    def __init__(self, tracker, env) -> None:
        self.tracker, self.env = tracker, env
        self.swapped = 0
        progression = env.world.progression
        self.start = next(
            f.arguments[1].name
            for f in progression.state.facts
            if f.name == "at" and f.arguments[0].name == "P"
        )

    def update(self, action) -> None:
        self.tracker.update(action)

    def copy(self) -> _OtherWay:
        twin = _OtherWay(self.tracker.copy(), self.env)
        twin.start = self.start
        return twin

    def _unvisited(self, action) -> bool:
        """Whether a move or a door opening leads to a room the agent has not been in (the
        rooms it has been in: where it started and where its steps took it)."""
        visited = {self.start}
        visited |= {
            a.variables[-1].name for a in self.env.world.actions if a.name.startswith("go/")
        }
        if not (action.name.startswith("go/") or action.name == "open/d"):
            return False
        return any(v.type == "r" and v.name not in visited for v in action.variables)

    @property
    def winning_policy(self):
        policy = self.tracker.winning_policy
        if policy and self._unvisited(policy[0]):
            others = [
                a
                for a in self.env.world.progression.valid_actions
                if self._unvisited(a) and a.name != policy[0].name
            ]
            if others:
                self.swapped += 1
                return (others[0], *policy[1:])
        return policy


def test_cooking_twins_with_the_kitchen_elsewhere(cooking_maps) -> None:
    """Cooking's expert may follow TextWorld's walkthrough only where the agent has seen
    what it involves: a twin whose walkthrough leaves by another unexplored exit gets the
    same commands (the walkthrough's own expert walked straight to the kitchen)."""
    import envs as envs_pkg

    kwargs = {"games": MAP_GAMES, "cache_dir": cooking_maps, **MAPS}
    env = envs_pkg.make("earlyexp/Cooking-v0", split="train", **kwargs).unwrapped
    twin = envs_pkg.make("earlyexp/Cooking-v0", split="train", **kwargs).unwrapped
    compared = swapped = 0
    for game in range(MAP_GAMES):
        for seed in range(3):
            env.reset(seed=seed, options={"game": game})
            twin.reset(seed=seed, options={"game": game})
            other = _OtherWay(twin.world.tracker, twin)
            twin.world.tracker = other
            n, _ = lockstep(env, twin, random.Random(seed), 0.8 if seed else 1.0)
            compared, swapped = compared + n, swapped + other.swapped
    assert swapped >= 3 and compared >= 40, (swapped, compared)


def test_treasure_hunter_expert_follows_the_stated_route(request: pytest.FixtureRequest) -> None:
    """Treasure hunter's goal states every step of its quest ("go east, then open the
    passageway, then travel south, ... pick up the key"): TextWorld's walkthrough, which
    the expert follows, takes exactly the moves the goal names, in its order (off its
    path, TextWorld's replanning undoes the agent's own steps first)."""
    env = make_env("earlyexp/TreasureHunter-v0", "train", request)
    for game in range(GAMES):
        obs, info = env.reset(seed=game, options={"game": game})
        moves = []
        while True:
            command = env.expert_action()
            moves += command.split()[1:] if command.startswith("go ") else []
            obs, _, terminated, truncated, info = env.step(command)
            if terminated or truncated:
                break
        assert info["success"]
        assert moves == re.findall(r"\b(north|south|east|west)\b", obs["goal"]), obs["goal"]


# --------------------------------------------------------------------------------------------
# Shop: nothing hidden per instance; the one choice is read off the result pages
# --------------------------------------------------------------------------------------------


def test_shop_expert_opens_the_first_match_the_pages_show(request: pytest.FixtureRequest) -> None:
    """An instance is its instruction and its suggested queries, all shown; the catalog and
    its search are the same for every instance. The expert's one choice beyond the goal is
    which result to open: the first one, in the order the result pages show them, whose
    line (title and price) matches the type, the attributes and the price bound the goal
    asks for; it pages on until one does. (Whether that product also offers the asked
    options shows only on its page: generation keeps instances where it does.)"""
    from envs.shop import NEXT, PREV, RESULTS

    env = make_env("earlyexp/Shop-v0", "train", request)
    opened = 0
    for seed in range(60):
        obs, _ = env.reset(seed=seed)
        goal = env.world.task.goal

        def match(line: str, goal=goal) -> bool:
            title, _, price = line.rpartition(" ($")
            words = [goal.ptype, *goal.attributes]
            return all(w in title for w in words) and float(price[:-1]) < goal.price_upper

        shown: list[str] = []
        while True:
            command = env.expert_action()
            on_results = env.world.page == RESULTS and command not in (PREV, NEXT)
            if on_results and command.startswith("click[") and "back to search" not in command:
                first = next(line for line in shown if match(line))
                assert first.startswith(command[6:-1] + " ($"), (seed, first, command)
                opened += 1
            obs, _, terminated, truncated, _ = env.step(command)
            if terminated or truncated:
                break
            if env.world.page == RESULTS:
                shown += [line for line in obs["text"].splitlines()[1:] if line not in shown]
    assert opened == 60


#: Settings audited above by a test of their own (no constructed or natural twins).
OWN_AUDIT = {
    "earlyexp/Shop-v0": test_shop_expert_opens_the_first_match_the_pages_show,
    "earlyexp/Cooking-v0": test_cooking_twins_with_the_kitchen_elsewhere,
    "earlyexp/TreasureHunter-v0": test_treasure_hunter_expert_follows_the_stated_route,
}


def test_every_setting_is_audited() -> None:
    """Every registered setting has constructed twins, natural twins or its own audit."""
    audited = set(TWINS) | set(NATURAL) | set(OWN_AUDIT)
    assert set(BUILTIN_IDS) <= audited, sorted(set(BUILTIN_IDS) - audited)
