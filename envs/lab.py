"""A ScienceWorld-like lab text game: state of matter, measurement, paint mixing, circuits, plants.

Pure Python, in-house, fast. Five connected rooms (hallway, kitchen, workshop, greenhouse,
art studio) hold fixtures (stove, freezer, cupboard, flower pots, grow light, ...), portable
vessels, substances with a temperature and a state of matter, paints, circuit parts and
seeds. Time advances one tick after every command: substances on a lit stove warm, those in a
closed freezer cool, and their state of matter follows their melting and boiling points;
seeds in a watered flower pot under the lit grow light grow.

The static part of an instance (things, their kinds, names, substance properties) lives in an
immutable :class:`Layout` shared between snapshots; the mutable part (agent room, held thing,
each thing's location, temperatures, paint colours, growth, circuit links, focus) is a few
flat lists in :class:`World`, so ``get_state`` / ``set_state`` are exact and cheap.

Held-out test compositions (``TEST_COMPOSITIONS``; the train split never generates them):
melting wax, boiling milk, freezing orange juice, measuring the temperature of soup,
measuring the melting point of gallium, making orange or grey paint, powering the buzzer,
growing a sunflower. Every other ``(family, subject)`` pair is train-only. The knowledge
split ``novel`` names soup, the buzzer and the sunflower, which train shows only in what
the agent sees (``NOVEL_ENTITIES``, ``NOVEL_COMPOSITIONS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envs.contract import KNOWLEDGE_SPLIT, TextEnv

__all__ = [
    "FAMILIES",
    "NOVEL_COMPOSITIONS",
    "NOVEL_ENTITIES",
    "TEST_COMPOSITIONS",
    "LabEnv",
    "Layout",
    "Task",
    "World",
    "compositions",
]

# --------------------------------------------------------------------------------------------
# Static tables
# --------------------------------------------------------------------------------------------

# Thing kinds. Rooms are things too, so a location is always a thing index.
ROOM, RECEP, VESSEL, POT, TOOL, BOX, PART, SEED, SUBST, LIGHT = range(10)
INV, GONE = -1, -2  # locations: in the agent's inventory / consumed by paint mixing
SOLID, LIQUID, GAS = 0, 1, 2
STATE_WORDS = ("solid", "liquid", "gas")

ROOMS = ("hallway", "kitchen", "workshop", "greenhouse", "art studio")
HALL, KITCHEN, WORKSHOP, GREENHOUSE, STUDIO = range(5)
NROOMS = len(ROOMS)
_DOORS = (
    (HALL, KITCHEN),
    (HALL, WORKSHOP),
    (HALL, GREENHOUSE),
    (HALL, STUDIO),
    (KITCHEN, GREENHOUSE),
    (WORKSHOP, STUDIO),
)
EXITS: tuple[tuple[int, ...], ...] = tuple(
    tuple(sorted({b for a, b in _DOORS if a == r} | {a for a, b in _DOORS if b == r}))
    for r in range(NROOMS)
)


def _next_hops() -> tuple[tuple[int, ...], ...]:
    """``NEXT_HOP[a][b]``: the room to go to from ``a`` on a shortest path to ``b`` (BFS)."""
    table = []
    for src in range(NROOMS):
        first = {src: src}
        frontier = [src]
        while frontier:
            nxt = []
            for r in frontier:
                for e in EXITS[r]:
                    if e not in first:
                        first[e] = e if r == src else first[r]
                        nxt.append(e)
            frontier = nxt
        table.append(tuple(first[d] for d in range(NROOMS)))
    return tuple(table)


NEXT_HOP = _next_hops()


def _distances() -> tuple[tuple[int, ...], ...]:
    """``DIST[a][b]``: the number of moves from room ``a`` to room ``b``."""
    table = []
    for a in range(NROOMS):
        row = []
        for b in range(NROOMS):
            n, r = 0, a
            while r != b:
                r, n = NEXT_HOP[r][b], n + 1
            row.append(n)
        table.append(tuple(row))
    return tuple(table)


DIST = _distances()
_GO_CMD = tuple(f"go to {r}" for r in ROOMS)

# Fixtures: (name, kind, room, preposition, openable). Same in every instance, right after
# the rooms, so their indices are constants.
_FIXTURES = (
    ("bench", RECEP, HALL, "on", False),
    ("stove", RECEP, KITCHEN, "on", False),
    ("freezer", RECEP, KITCHEN, "in", True),
    ("counter", RECEP, KITCHEN, "on", False),
    ("cupboard", RECEP, KITCHEN, "in", True),
    ("workbench", RECEP, WORKSHOP, "on", False),
    ("shelf", RECEP, GREENHOUSE, "on", False),
    ("flower pot 1", POT, GREENHOUSE, "in", False),
    ("flower pot 2", POT, GREENHOUSE, "in", False),
    ("grow light", LIGHT, GREENHOUSE, "", False),
    ("table", RECEP, STUDIO, "on", False),
)
BENCH, STOVE, FREEZER, COUNTER, CUPBOARD, WORKBENCH, SHELF, POT1, POT2, GROWLIGHT, TABLE = range(
    NROOMS, NROOMS + len(_FIXTURES)
)
#: Where the expert puts down what it holds, per room (a surface that never closes).
DROP = (BENCH, COUNTER, WORKBENCH, SHELF, TABLE)
#: Where the expert looks for a thing it has not seen (see ``Layout.places``), by the
#: generation rules an agent can learn: a kitchen vessel (and what it holds) on the counter
#: or in the cupboard, or in the freezer when cold; the thermometer on the counter or the
#: workbench; the watering can and the seeds on the greenhouse shelf; paint jars on the table.
KITCHEN_PLACES = (COUNTER, CUPBOARD, FREEZER)
COLD_PLACES = (COUNTER, FREEZER, CUPBOARD)  # for a subject the goal names frozen
THERMOMETER_PLACES = (COUNTER, WORKBENCH)

STOVE_STEP, STOVE_MAX = 20, 250  # degrees per tick on a lit stove, and its ceiling
FREEZER_STEP, FREEZER_MIN = 10, -20  # degrees per tick in a closed freezer, and its floor
ROOM_TEMP = 20
GROWN = 4  # ticks of water + light from seed to grown plant (seedling at 2)


@dataclass(frozen=True)
class Substance:
    """A substance's names in each state of matter and its transition points (deg C)."""

    names: tuple[str, str, str | None]  # solid, liquid, gas (None: no gas phase here)
    mp: int
    bp: int | None


SUBSTANCES: dict[str, Substance] = {
    "water": Substance(("ice", "water", "steam"), 0, 100),
    "tea": Substance(("frozen tea", "tea", "tea vapor"), 0, 100),
    "milk": Substance(("frozen milk", "milk", "milk vapor"), -1, 100),
    "soup": Substance(("frozen soup", "soup", "soup vapor"), -2, 100),
    "orange juice": Substance(
        ("frozen orange juice", "orange juice", "orange juice vapor"), -5, 100
    ),
    "apple juice": Substance(("frozen apple juice", "apple juice", "apple juice vapor"), -5, 100),
    "lemonade": Substance(("frozen lemonade", "lemonade", "lemonade vapor"), -12, 100),
    "chocolate": Substance(("chocolate", "melted chocolate", None), 30, None),
    "butter": Substance(("butter", "melted butter", None), 35, None),
    "gallium": Substance(("gallium", "liquid gallium", None), 30, None),
    "wax": Substance(("wax", "melted wax", None), 60, None),
}
_PAINT = Substance(("", "", None), -100, None)  # paints never freeze or boil here
BASE_PAINTS = ("red", "blue", "yellow", "white", "black")
#: Paint recipes: two base colours -> the mixed colour. Other mixtures do not mix.
RECIPES: dict[frozenset[str], str] = {
    frozenset(("red", "blue")): "violet",
    frozenset(("blue", "yellow")): "green",
    frozenset(("red", "yellow")): "orange",
    frozenset(("red", "white")): "pink",
    frozenset(("blue", "white")): "light blue",
    frozenset(("black", "white")): "grey",
}
_INGREDIENTS = {color: tuple(sorted(pair)) for pair, color in RECIPES.items()}
COMPONENTS = ("red light bulb", "green light bulb", "blue light bulb", "motor", "buzzer", "fan")
SPECIES = ("bean", "pea", "tomato", "pumpkin", "carrot", "sunflower")
BOX_COLORS = ("red", "green", "blue", "yellow", "purple", "white")
KITCHEN_VESSELS = ("metal pot", "glass cup", "ceramic bowl", "tin cup")
_STAGES = ("seed", "seed", "seedling", "seedling", "plant")

MELT, BOIL, FREEZE = "melt", "boil", "freeze"
MEASURE, MELTING_POINT = "measure temperature", "measure melting point"
MIX, POWER, GROW = "mix paint", "power component", "grow plant"
FAMILIES: tuple[str, ...] = (MELT, BOIL, FREEZE, MEASURE, MELTING_POINT, MIX, POWER, GROW)
_TARGET_STATE = {MELT: LIQUID, BOIL: GAS, FREEZE: SOLID}

Composition = tuple[str, str]  # (family, subject: substance, colour, component or species)

_ALL_COMPOSITIONS: dict[str, tuple[str, ...]] = {
    MELT: ("water", "orange juice", "chocolate", "butter", "gallium", "wax"),
    BOIL: ("water", "tea", "orange juice", "apple juice", "milk"),
    FREEZE: ("water", "tea", "milk", "apple juice", "lemonade", "orange juice"),
    MEASURE: ("water", "tea", "milk", "orange juice", "apple juice", "lemonade", "soup"),
    MELTING_POINT: ("chocolate", "butter", "wax", "gallium"),
    MIX: ("violet", "green", "pink", "light blue", "orange", "grey"),
    POWER: COMPONENTS,
    GROW: SPECIES,
}
#: The held-out compositions: generated only on the test split (fixed, seed-independent).
TEST_COMPOSITIONS: frozenset[Composition] = frozenset(
    {
        (MELT, "wax"),
        (BOIL, "milk"),
        (FREEZE, "orange juice"),
        (MEASURE, "soup"),
        (MELTING_POINT, "gallium"),
        (MIX, "orange"),
        (MIX, "grey"),
        (POWER, "buzzer"),
        (GROW, "sunflower"),
    }
)
#: The knowledge split's held-out names: no train goal names them, nor does any command on
#: the train expert's path, yet train instances show them as distractors (soup in a kitchen
#: vessel, a buzzer among the workshop's circuit parts, a sunflower seed on the greenhouse
#: shelf), where the expert's path or a command branched off it sees them (see
#: :class:`LabEnv`).
NOVEL_ENTITIES: tuple[str, ...] = ("soup", "buzzer", "sunflower")
#: The compositions of the knowledge split ``novel``: every family over a held-out name.
NOVEL_COMPOSITIONS: tuple[Composition, ...] = (
    (MELT, "soup"),
    (BOIL, "soup"),
    (FREEZE, "soup"),
    (MEASURE, "soup"),
    (MELTING_POINT, "soup"),
    (POWER, "buzzer"),
    (GROW, "sunflower"),
)
_SPLIT_COMPS: dict[str, dict[str, tuple[str, ...]]] = {
    split: {
        fam: tuple(s for s in subs if ((fam, s) in TEST_COMPOSITIONS) == (split == "test"))
        for fam, subs in _ALL_COMPOSITIONS.items()
    }
    for split in ("train", "test")
}
_SPLIT_COMPS["novel"] = {
    fam: tuple(s for f, s in NOVEL_COMPOSITIONS if f == fam)
    for fam in FAMILIES
    if any(f == fam for f, _ in NOVEL_COMPOSITIONS)
}
#: The families a split draws from (train and test: all, drawn as before the novel split).
_FAMILIES_OF = {
    split: FAMILIES if split != "novel" else tuple(_SPLIT_COMPS["novel"]) for split in _SPLIT_COMPS
}


def compositions(split: str) -> tuple[Composition, ...]:
    """The ``(family, subject)`` compositions ``split`` generates; train and test are
    disjoint, and the knowledge split ``novel`` names only :data:`NOVEL_ENTITIES`."""
    if split not in _SPLIT_COMPS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(_SPLIT_COMPS)}")
    return tuple((f, s) for f, subs in _SPLIT_COMPS[split].items() for s in subs)


# --------------------------------------------------------------------------------------------
# Instance state
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Layout:
    """The immutable part of an instance (per thing index). Shared, never copied."""

    names: tuple[str, ...]  # "" for a thing whose name changes (substance, paint, seed)
    kind: tuple[int, ...]
    home: tuple[int, ...]  # room of a thing that never moves (fixtures, boxes, parts), else -1
    openable: tuple[bool, ...]
    prep: tuple[str, ...]
    sub: tuple[Substance | None, ...]
    species: tuple[str, ...]
    substances: tuple[int, ...]
    seeds: tuple[int, ...]
    vessels: tuple[int, ...]  # portable vessels
    battery: int
    wires: tuple[int, ...]
    comps: tuple[int, ...]
    thermometer: int
    water: int
    fixed: tuple[tuple[int, ...], ...]  # per room, the things that never move (by index)
    movers: tuple[int, ...]  # things that can move: portables and substances
    # Per thing, the fixtures it can start in or on, in the order the expert looks there
    # (empty for things that never move): from the generation rules and the goal only.
    places: tuple[tuple[int, ...], ...]

    def __deepcopy__(self, memo: dict) -> Layout:
        return self


@dataclass(frozen=True, eq=False)
class Task:
    """The immutable goal of an instance."""

    family: str
    subject_key: str  # substance key, colour, component or species
    goal: str
    subject: int  # thing index (substance, component or seed); -1 for paint mixing
    target: int  # target state of matter (state-change tasks)
    threshold: int  # degrees (measurement tasks)
    above: int  # box to focus on if the measured value is above the threshold
    below: int
    colors: tuple[str, str]  # ingredient colours (paint mixing)
    labels: tuple[str, ...]  # checklist keys

    def __deepcopy__(self, memo: dict) -> Task:
        return self


@dataclass(eq=False, slots=True)
class World:
    """All mutable episode state, as flat per-thing lists."""

    layout: Layout
    task: Task
    room: int
    held: int  # thing in the agent's hands (-1: none); at most one
    loc: list[int]  # container (or room) of each thing; INV held, GONE mixed away
    is_open: list[bool]
    on: list[bool]  # stove and grow light
    temp: list[int]
    color: list[str]  # paint colours ("" for other things)
    growth: list[int]
    links: list[tuple[int, ...]]  # circuit connections of each part (at most two)
    focus: int  # thing focused on as the task subject (-1: none)
    reading: int | None  # last thermometer reading of the task substance
    read_melted: bool  # the task substance was measured while melted
    won: bool  # a correct final answer (box, mixed paint) was focused on
    failed: bool  # a wrong focus: unrecoverable
    # What the agent has observed (the expert's memory, derived from the observations):
    seen: int = 0  # bitmask of things it has seen (described in a room, a fixture or held)
    looked: int = 0  # bitmask of fixtures whose contents it has seen (open or openless)

    def __deepcopy__(self, memo: dict) -> World:
        return World(
            self.layout,
            self.task,
            self.room,
            self.held,
            self.loc[:],
            self.is_open[:],
            self.on[:],
            self.temp[:],
            self.color[:],
            self.growth[:],
            self.links[:],
            self.focus,
            self.reading,
            self.read_melted,
            self.won,
            self.failed,
            self.seen,
            self.looked,
        )


_COLUMNS = ("names", "kind", "home", "openable", "prep", "sub", "species", "loc", "temp", "color")
#: The rows (in ``_COLUMNS`` order) every instance starts with: rooms, then fixtures.
_TEMPLATE: tuple[tuple, ...] = tuple(
    (name, ROOM, r, False, "", None, "", r, ROOM_TEMP, "") for r, name in enumerate(ROOMS)
) + tuple(
    (name, kind, room, openable, prep, None, "", room, ROOM_TEMP, "")
    for name, kind, room, prep, openable in _FIXTURES
)


class _Builder:
    """Accumulates an instance's things as rows (static columns and initial mutable values)."""

    def __init__(self) -> None:
        self.rows = list(_TEMPLATE)

    def add(
        self,
        name: str,
        kind: int,
        loc: int,
        *,
        home: int = -1,
        sub: Substance | None = None,
        species: str = "",
        temp: int = ROOM_TEMP,
        color: str = "",
    ) -> int:
        prep = "in" if kind in (VESSEL, POT) else ""
        self.rows.append((name, kind, home, False, prep, sub, species, loc, temp, color))
        return len(self.rows) - 1

    def columns(self) -> dict[str, tuple]:
        return dict(zip(_COLUMNS, zip(*self.rows, strict=True), strict=True))


# --------------------------------------------------------------------------------------------
# The env
# --------------------------------------------------------------------------------------------


class LabEnv(TextEnv):
    """ScienceWorld-like lab text game with eight task families.

    ## Description

    Five rooms (hallway, kitchen, workshop, greenhouse, art studio; the hallway joins them
    all, and kitchen-greenhouse and workshop-art studio share doors). The kitchen has a
    stove, a freezer, a counter, a cupboard and vessels holding substances; the workshop a
    battery, three wires and two electrical components; the greenhouse two flower pots, a
    grow light, a watering can and seeds; the art studio jars of paint. A thermometer lies
    on the counter or the workbench. Every command takes one tick, after which:

    * each substance in a vessel on the lit stove warms by 20 deg C (to at most 250), each
      one in a vessel in the closed freezer cools by 10 deg C (to at least -20); a substance
      is solid at or below its melting point, a gas at or above its boiling point, else
      liquid, and its name follows (``ice`` / ``water`` / ``steam``);
    * a seed in a flower pot that holds liquid water, with the grow light on, grows: a
      seedling after 2 such ticks, a grown plant after 4.

    Task families (``(family, subject)`` compositions, see :func:`compositions`):

    * ``melt`` / ``boil`` / ``freeze`` a substance: focus on it, then change its state;
    * ``measure temperature``: measure a substance with the thermometer, then focus on the
      box the goal names for a reading above / not above a threshold;
    * ``measure melting point``: heat a solid until it melts, measure it once melted, then
      focus on the box for its melting point above / not above a threshold;
    * ``mix paint``: put the two right paints in one vessel and ``mix`` it, focus on the
      new paint (red+blue=violet, blue+yellow=green, red+yellow=orange, red+white=pink,
      blue+white=light blue, black+white=grey);
    * ``power component``: focus on it, then connect battery, wires and component into a
      closed loop (battery - wire - component - wire - battery lights it);
    * ``grow plant``: focus on the seed, plant it in a flower pot, water the pot, turn on
      the grow light and wait until it is a grown plant.

    Focusing is an answer, as in ScienceWorld: focusing on anything but the task's subject
    (or the right box, or the target paint) ends the episode in failure, and so does
    mixing away a paint the target colour needs.

    Splits hold out compositions: ``TEST_COMPOSITIONS`` (melt wax, boil milk, freeze orange
    juice, measure soup, melting point of gallium, orange and grey paint, the buzzer, the
    sunflower) occur only on the test split, every other composition only on train.

    The knowledge split ``novel`` (``split="novel"``) is a second test split, the positive
    control of learning from outcomes: its goals name what no goal of the train split and
    no command of its expert's path names, but what its observations show. It holds out
    three names (:data:`NOVEL_ENTITIES`): soup, the buzzer and the sunflower, in seven
    compositions (:data:`NOVEL_COMPOSITIONS`: melt, boil, freeze soup, measure its
    temperature or its melting point; power the buzzer; grow a sunflower); the rest of an
    instance is drawn as on train. On the train split they occur only as distractors (each
    seen in 12-16% of the train instances): soup in a kitchen vessel (on the
    counter, in the cupboard, or frozen in the freezer), a buzzer among the workshop's
    parts, a sunflower seed on the greenhouse shelf, seen on entering the room or opening
    the fixture, on the expert's path or one branched command off it. What a novel goal
    needs that demonstrations never show is what the name refers to and where it is (which
    room, which fixture), and for soup, that it freezes only below -2 deg C. The train and
    test splits are unchanged by it.

    The expert (:meth:`expert_action`) is a planner acting from any reachable state on
    what the agent can know: the goal, the rooms' fixed contents (fixtures, boxes, circuit
    parts) and where it has seen things (``World.seen``: every thing described in a room,
    in an opened fixture or held; things move only by the agent's own commands). A thing
    it has not seen yet it searches for, by the generation rules an agent can learn: a
    kitchen vessel on the counter, then in the cupboard, then in the freezer (the freezer
    before the cupboard when the goal names the substance frozen, which it is only below
    room temperature); the thermometer on the counter or the workbench, whichever is
    nearer. It looks in the nearest place whose contents it has not seen (``World.looked``)
    and opens it if closed. Then it focuses on the subject, puts down whatever blocks its
    hands, moves substances into portable vessels when they sit in a flower pot, heats on
    the stove or cools in the freezer until the target state, measures with the
    thermometer, separates stray paints before mixing, and rewires the circuit by removing
    links that do not belong to the cheapest battery-wire-component-wire loop. It solves
    every instance, in about 7 steps on average (at most about 15) from reset.

    ## Action Space

    A text command (``str``); ``info["admissible_actions"]`` lists those valid now (at most
    about 50): ``go to R`` (adjacent rooms), ``open X`` / ``close X``, ``activate X`` /
    ``deactivate X`` (stove, grow light), ``pick up X`` (hands empty), ``put X on/in Y``
    (the held thing onto a fixture, or a seed into a flower pot), ``put S in V`` (a visible
    substance into another visible vessel), ``use thermometer on S`` (holding it), ``mix V``
    (two or more paints in it), ``connect X to Y`` (a wire and a free terminal),
    ``disconnect X``, ``focus on X`` (substances, paints, seeds, components, boxes),
    ``look``, ``wait``, ``inventory``. Only things in the current room (not inside a
    closed fixture) and in the inventory can be acted on.

    ## Observation Space

    ``{"goal": str, "text": str}``: the task and the feedback of the last command, plus
    any visible change the tick caused ("The ice melts into water."). Moving to a room,
    ``look`` and ``wait`` describe the room; temperatures are only seen by measuring.

    ## Starting State

    The agent stands in a random room with empty hands, the stove and grow light are off,
    the freezer and cupboard closed, no wires connected. The task's substance is solid
    (in the freezer, at -10 deg C, when it melts below room temperature) for ``melt`` and
    ``melting point``, liquid at 20 deg C for ``boil`` / ``freeze``, and at a random
    temperature for ``measure temperature``. No task is solved at reset.

    ## Reward

    1.0 on the step the task is completed, else 0.0.

    ## Episode End

    ``terminated`` on success or on a failure (a wrong focus, or an ingredient paint mixed
    away). Never truncated by the env itself: the registered ``max_episode_steps`` (60)
    truncates.

    ## Info

    ``admissible_actions`` (list[str]), ``invalid_action`` (bool), ``success`` (bool),
    ``checklist`` (dict[str, bool]), e.g. ``{"focused on the water": True, "the water is on
    the stove": True, "the stove is on": True, "the water is gas": False}``.

    ## Arguments

    * ``split``: ``"train"``, ``"test"`` or ``"novel"`` (the knowledge split).
    * ``render_mode``: ``None``, ``"ansi"`` or ``"human"``.

    ## Version History

    * v0: initial release. Later in v0 (issue 16): the expert searches for the task's
      substance and the thermometer where it has not looked yet instead of going straight
      to them (it opened the one closed fixture that held the substance, and walked to the
      room of the thermometer, before the agent could know either); about 0.06 steps more
      per episode on average. Then the knowledge split ``novel`` (train and test
      instances unchanged).
    """

    knowledge_split = KNOWLEDGE_SPLIT
    knowledge_entities = NOVEL_ENTITIES

    def __init__(self, split: str = "train", render_mode: str | None = None) -> None:
        super().__init__(split, render_mode)
        self.world: World | None = None
        # command -> operation, derived from ``world`` by ``admissible_actions``
        self._ops: dict[str, tuple] = {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot taken by :meth:`get_state` (the snapshot stays reusable)."""
        super().set_state(state)
        self.admissible_actions()  # rebuild the derived command -> operation map

    # -- generation -------------------------------------------------------------------------
    def _generate(self) -> tuple[str, str]:
        rng = self.np_random

        def pick(seq: Any) -> Any:
            return seq[int(rng.integers(len(seq)))]

        def shuffled(seq: Any) -> list:
            return [seq[int(i)] for i in rng.permutation(len(seq))]

        family = pick(_FAMILIES_OF[self.split])
        key = pick(_SPLIT_COMPS[self.split][family])
        b = _Builder()

        # kitchen: the task substance (state and measure families) and distractors, each in
        # its own vessel on the counter or in the cupboard (cold ones in the freezer)
        kitchen_task = family in (MELT, BOIL, FREEZE, MEASURE, MELTING_POINT)
        pool = [s for s in SUBSTANCES if s not in ("water", key)]
        subs: list[tuple[str, int]] = []  # (substance key, temperature)
        if kitchen_task:
            sub = SUBSTANCES[key]
            if family == MEASURE:
                # odd multiples of 5 (-15..85): never equal to a threshold (multiple of 10),
                # and heating/cooling steps of 20/10 keep it so
                temp = 10 * int(rng.integers(-2, 9)) + 5
            elif family in (MELT, MELTING_POINT) and sub.mp < ROOM_TEMP:
                temp = -10
            else:
                temp = ROOM_TEMP
            subs.append((key, temp))
        for _ in range(int(rng.integers(1, 3))):
            d = pick([s for s in pool if s not in {k for k, _ in subs}])
            subs.append((d, -10 if rng.random() < 0.25 else ROOM_TEMP))
        subs = shuffled(subs)
        vessel_names = shuffled(KITCHEN_VESSELS)
        subject = -1
        places: dict[int, tuple[int, ...]] = {}
        for i, name in enumerate(vessel_names):
            if i < len(subs):
                skey, temp = subs[i]
                # cold things are kept in the freezer
                place = FREEZER if temp < ROOM_TEMP else pick((COUNTER, CUPBOARD))
                v = b.add(name, VESSEL, place)
                s = b.add("", SUBST, v, sub=SUBSTANCES[skey], temp=temp)
                order = KITCHEN_PLACES
                if kitchen_task and skey == key:
                    subject = s
                    sub = SUBSTANCES[key]
                    if temp <= sub.mp < ROOM_TEMP:
                        # the goal names it frozen, which it is only below room temperature
                        order = COLD_PLACES
                places[v] = places[s] = order
            else:
                places[b.add(name, VESSEL, pick((COUNTER, CUPBOARD)))] = KITCHEN_PLACES
        # greenhouse: the watering can holds the water unless the water is a kitchen task
        can = b.add("watering can", VESSEL, SHELF)
        places[can] = (SHELF,)
        if kitchen_task and key == "water":
            water = subject
        else:
            water = b.add("", SUBST, can, sub=SUBSTANCES["water"])
            places[water] = (SHELF,)
        seeds = [key] if family == GROW else []
        seeds.append(pick([s for s in SPECIES if s not in seeds]))
        for sp in shuffled(seeds):
            s = b.add("", SEED, SHELF, species=sp)
            places[s] = (SHELF,)
            if family == GROW and sp == key:
                subject = s
        thermometer = b.add("thermometer", TOOL, pick(THERMOMETER_PLACES))
        places[thermometer] = THERMOMETER_PLACES
        above = below = -1
        threshold = 0
        if family in (MEASURE, MELTING_POINT):
            c1, c2 = (BOX_COLORS[int(i)] for i in rng.permutation(len(BOX_COLORS))[:2])
            above = b.add(f"{c1} box", BOX, KITCHEN, home=KITCHEN)
            below = b.add(f"{c2} box", BOX, KITCHEN, home=KITCHEN)
            if family == MEASURE:
                threshold = int(rng.integers(0, 9)) * 10
            else:
                mp = SUBSTANCES[key].mp
                threshold = mp + pick((-20, -10, 10, 20))
        # workshop: battery, three wires, two components
        battery = b.add("battery", PART, WORKSHOP, home=WORKSHOP)
        comps = [key] if family == POWER else []
        comps.append(pick([c for c in COMPONENTS if c not in comps]))
        comp_ids = []
        for c in shuffled(comps):
            comp_ids.append(b.add(c, PART, WORKSHOP, home=WORKSHOP))
            if family == POWER and c == key:
                subject = comp_ids[-1]
        wires = tuple(b.add(f"wire {i}", PART, WORKSHOP, home=WORKSHOP) for i in (1, 2, 3))
        # art studio: jars of paint (the two ingredients plus distractors) and an empty jar
        colors: tuple[str, str] = ("", "")
        if family == MIX:
            colors = _INGREDIENTS[key]
            others = [c for c in BASE_PAINTS if c not in colors]
            paints = [*colors, *shuffled(others)[: int(rng.integers(1, 3))]]
        else:
            paints = shuffled(BASE_PAINTS)[:3]
        paints = shuffled(paints)
        for i, color in enumerate(paints, start=1):
            jar = b.add(f"jar {i}", VESSEL, TABLE)
            places[jar] = places[b.add("", SUBST, jar, sub=_PAINT, color=color)] = (TABLE,)
        places[b.add(f"jar {len(paints) + 1}", VESSEL, TABLE)] = (TABLE,)

        c = b.columns()
        kind = c["kind"]

        def of_kind(k: int) -> tuple[int, ...]:
            return tuple(i for i, x in enumerate(kind) if x == k)

        layout = Layout(
            names=c["names"],
            kind=kind,
            home=c["home"],
            openable=c["openable"],
            prep=c["prep"],
            sub=c["sub"],
            species=c["species"],
            substances=of_kind(SUBST),
            seeds=of_kind(SEED),
            vessels=of_kind(VESSEL),
            battery=battery,
            fixed=tuple(
                tuple(t for t in range(NROOMS, len(kind)) if c["home"][t] == r)
                for r in range(NROOMS)
            ),
            movers=tuple(t for t in range(len(kind)) if c["home"][t] < 0),
            wires=wires,
            comps=tuple(sorted(comp_ids)),
            thermometer=thermometer,
            water=water,
            places=tuple(places.get(t, ()) for t in range(len(kind))),
        )
        n = len(kind)
        goal, labels = self._goal(family, key, subject, layout, c["temp"], threshold, above, below)
        task = Task(
            family=family,
            subject_key=key,
            goal=goal,
            subject=subject,
            target=_TARGET_STATE.get(family, -1),
            threshold=threshold,
            above=above,
            below=below,
            colors=colors,
            labels=labels,
        )
        self.world = World(
            layout=layout,
            task=task,
            room=int(rng.integers(NROOMS)),
            held=-1,
            loc=list(c["loc"]),
            is_open=[False] * n,
            on=[False] * n,
            temp=list(c["temp"]),
            color=list(c["color"]),
            growth=[0] * n,
            links=[()] * n,
            focus=-1,
            reading=None,
            read_melted=False,
            won=False,
            failed=False,
        )
        self._observe()
        return goal, self._describe_room()

    @staticmethod
    def _goal(
        family: str,
        key: str,
        subject: int,
        layout: Layout,
        temps: tuple[int, ...],
        threshold: int,
        above: int,
        below: int,
    ) -> tuple[str, tuple[str, ...]]:
        """The goal text and checklist labels of a task."""
        if family in (MELT, BOIL, FREEZE, MEASURE, MELTING_POINT):
            sub = SUBSTANCES[key]
            t = temps[subject]
            shown = sub.names[SOLID if t <= sub.mp else LIQUID]
        if family in _TARGET_STATE:
            goal = (
                f"Your task is to {family} {shown}. First, focus on the substance. Then, "
                "take actions that will cause it to change its state of matter."
            )
            heat = family != FREEZE
            where = "on the stove" if heat else "in the freezer"
            return goal, (
                f"focused on the {key}",
                f"the {key} is {where}",
                "the stove is on" if heat else "the freezer is closed",
                f"the {key} is {STATE_WORDS[_TARGET_STATE[family]]}",
            )
        if family in (MEASURE, MELTING_POINT):
            what = "temperature" if family == MEASURE else "melting point"
            goal = (
                f"Your task is to measure the {what} of the {shown}. If it is above "
                f"{threshold} degrees celsius, focus on the {layout.names[above]}. If it is "
                f"below {threshold} degrees celsius, focus on the {layout.names[below]}."
            )
            if family == MEASURE:
                return goal, (
                    "holding the thermometer",
                    f"the {key} is measured",
                    "focused on the right box",
                )
            return goal, (
                "holding the thermometer",
                f"the {key} is melted",
                f"the {key} is measured after melting",
                "focused on the right box",
            )
        if family == MIX:
            a, b = _INGREDIENTS[key]
            goal = (
                f"Your task is to use chemistry to create {key} paint. When you are done, "
                f"focus on the {key} paint."
            )
            return goal, (
                f"{a} paint and {b} paint are in one container",
                f"{key} paint is made",
                f"focused on the {key} paint",
            )
        if family == POWER:
            goal = (
                f"Your task is to turn on the {key}. First, focus on the {key}. Then, "
                "build an electrical circuit that powers it."
            )
            return goal, (
                f"focused on the {key}",
                "the battery is wired",
                f"the {key} is wired",
                f"the {key} is on",
            )
        goal = (
            f"Your task is to grow a {key} plant from seed. First, focus on the {key} seed. "
            f"Then, make it grow into a {key} plant."
        )
        return goal, (
            f"focused on the {key} seed",
            f"the {key} seed is in a flower pot",
            f"the {key} seed has water",
            "the grow light is on",
            f"the {key} plant is grown",
        )

    # -- reading the state ------------------------------------------------------------------
    def _state(self, s: int) -> int:
        w = self.world
        sub = w.layout.sub[s]
        t = w.temp[s]
        if t <= sub.mp:
            return SOLID
        if sub.bp is not None and t >= sub.bp:
            return GAS
        return LIQUID

    def _name(self, t: int) -> str:
        w = self.world
        lay = w.layout
        name = lay.names[t]
        if name:
            return name
        if lay.kind[t] == SEED:
            return f"{lay.species[t]} {_STAGES[min(w.growth[t], GROWN)]}"
        color = w.color[t]
        if color:
            return f"{color} paint"
        return lay.sub[t].names[self._state(t)]

    def _locate(self, t: int) -> tuple[int, int]:
        """The room ``t`` is in (``INV``/``GONE``) and the closed fixture hiding it (or -1)."""
        w = self.world
        loc = w.loc
        openable = w.layout.openable
        is_open = w.is_open
        closed = -1
        c = loc[t]
        while c >= NROOMS:
            if openable[c] and not is_open[c]:
                closed = c
            c = loc[c]
        return c, closed

    def _visible(self, t: int) -> bool:
        room, closed = self._locate(t)
        return closed < 0 and (room == INV or room == self.world.room)

    def _visible_things(self) -> list[int]:
        """Things the agent can act on: in the current room (not in a closed fixture) or held.

        Fixed things first, then movable ones, each in index order."""
        w = self.world
        r = w.room
        loc = w.loc
        lay = w.layout
        openable = lay.openable
        is_open = w.is_open
        out = list(lay.fixed[r])
        for t in lay.movers:
            c = loc[t]
            while c >= NROOMS:
                if openable[c] and not is_open[c]:
                    break
                c = loc[c]
            else:
                if c in (r, INV):
                    out.append(t)
        return out

    def _paints_in(self, v: int) -> list[int]:
        w = self.world
        loc = w.loc
        return [s for s in w.layout.substances if loc[s] == v and w.color[s]]

    def _paint_of(self, color: str) -> int:
        w = self.world
        for s in w.layout.substances:
            if w.color[s] == color and w.loc[s] != GONE:
                return s
        return -1

    def _powered(self) -> set[int]:
        """Components on a closed loop through the battery (every part has <= 2 links)."""
        w = self.world
        links = w.links
        bat = w.layout.battery
        if len(links[bat]) < 2:
            return set()
        prev, cur = bat, links[bat][0]
        loop = set()
        while cur != bat:
            nxt = [x for x in links[cur] if x != prev]
            if len(links[cur]) < 2 or not nxt:
                return set()
            loop.add(cur)
            prev, cur = cur, nxt[0]
        return loop & set(w.layout.comps)

    def _water_in(self, pot: int) -> bool:
        w = self.world
        water = w.layout.water
        return water >= 0 and w.loc[water] == pot and self._state(water) == LIQUID

    # -- rules ------------------------------------------------------------------------------
    def admissible_actions(self) -> list[str]:
        """The commands valid now: exits, then per visible thing, then look/wait/inventory."""
        w = self.world
        lay = w.layout
        kind = lay.kind
        held = w.held
        loc = w.loc
        ops: list[tuple] = [("go", r) for r in EXITS[w.room]]
        vis = self._visible_things()
        vessels = [v for v in vis if kind[v] == VESSEL or kind[v] == POT]
        hold_thermo = held == lay.thermometer
        for t in vis:
            k = kind[t]
            if k == RECEP:
                closed = False
                if lay.openable[t]:
                    closed = not w.is_open[t]
                    ops.append(("open" if closed else "close", t))
                if t == STOVE:
                    ops.append(("deactivate" if w.on[t] else "activate", t))
                if held >= 0 and not closed:
                    ops.append(("put", held, t))
            elif k == SUBST:
                here = loc[t]
                ops.extend(("puts", t, v) for v in vessels if v != here)
                if hold_thermo:
                    ops.append(("use", t))
                ops.append(("focus", t))
            elif k == VESSEL:
                if held < 0:
                    ops.append(("pick", t))
                if len(self._paints_in(t)) >= 2:
                    ops.append(("mix", t))
            elif k == POT:
                if held >= 0 and kind[held] == SEED:
                    ops.append(("put", held, t))
                if len(self._paints_in(t)) >= 2:
                    ops.append(("mix", t))
            elif k == SEED:
                if held < 0:
                    ops.append(("pick", t))
                ops.append(("focus", t))
            elif k == TOOL:
                if held < 0:
                    ops.append(("pick", t))
            elif k == LIGHT:
                ops.append(("deactivate" if w.on[t] else "activate", t))
            elif k == BOX:
                ops.append(("focus", t))
            elif k == PART:
                links = w.links
                if t in lay.comps:
                    ops.append(("focus", t))
                if links[t]:
                    ops.append(("disconnect", t))
                if len(links[t]) < 2:
                    # a wire joins any part with a free terminal (each pair listed once)
                    for u in lay.wires:
                        if u > t and len(links[u]) < 2 and u not in links[t]:
                            ops.append(("connect", t, u))
        ops += [("look",), ("wait",), ("inventory",)]
        name = {t: self._name(t) for t in vis}.__getitem__  # every op names visible things
        fmt = self._fmt
        self._ops = {fmt(op, name): op for op in ops}
        return list(self._ops)

    def _fmt(self, op: tuple, name: Any = None) -> str:
        """The command text of an operation (``name``: thing index -> name, if cached)."""
        verb = op[0]
        if verb == "go":
            return _GO_CMD[op[1]]
        if verb in ("look", "wait", "inventory"):
            return verb
        name = name or self._name
        if verb == "put":
            return f"put {name(op[1])} {self.world.layout.prep[op[2]]} {name(op[2])}"
        if verb == "puts":
            return f"put {name(op[1])} in {name(op[2])}"
        if verb == "pick":
            return f"pick up {name(op[1])}"
        if verb == "use":
            return f"use thermometer on {name(op[1])}"
        if verb == "connect":
            return f"connect {name(op[1])} to {name(op[2])}"
        if verb == "focus":
            return f"focus on {name(op[1])}"
        return f"{verb} {name(op[1])}"  # open, close, activate, deactivate, mix, ...

    def _execute(self, command: str) -> str:
        # Only admissible commands reach here, and ``_ops`` maps each to its operation.
        op = self._ops[command]
        parts = [self._apply(op), *self._tick()]
        if op[0] == "wait":  # waiting shows the room as the tick left it
            parts.append(self._describe_room())
        if op[0] in ("go", "open"):  # only arriving and opening show new things
            self._observe()
        return " ".join(parts)

    def _observe(self) -> None:
        """Record what the agent sees now: the things in view (described on arrival, on
        opening a fixture, or held) and the fixtures whose contents are in view."""
        w = self.world
        lay = w.layout
        seen, looked = w.seen, w.looked
        for t in self._visible_things():
            seen |= 1 << t
            if lay.kind[t] == RECEP and not (lay.openable[t] and not w.is_open[t]):
                looked |= 1 << t
        w.seen, w.looked = seen, looked

    def _apply(self, op: tuple) -> str:
        w = self.world
        lay = w.layout
        verb = op[0]
        name = self._name
        if verb == "go":
            w.room = op[1]
            return f"You move to the {ROOMS[op[1]]}. {self._describe_room()}"
        if verb == "look":
            return self._describe_room()
        if verb == "wait":
            return "You wait."
        if verb == "inventory":
            if w.held < 0:
                return "You are holding nothing."
            return f"You are holding {self._describe(w.held)}."
        t = op[1]
        if verb == "open":
            w.is_open[t] = True
            inside = [self._describe(x) for x in range(len(w.loc)) if w.loc[x] == t]
            return f"You open the {name(t)}. In it: {' and '.join(inside) or 'nothing'}."
        if verb == "close":
            w.is_open[t] = False
            return f"You close the {name(t)}."
        if verb in ("activate", "deactivate"):
            w.on[t] = verb == "activate"
            return f"The {name(t)} is now {'on' if w.on[t] else 'off'}."
        if verb == "pick":
            w.loc[t] = INV
            w.held = t
            return f"You pick up the {name(t)}."
        if verb == "put":
            w.loc[t] = op[2]
            w.held = -1
            return f"You put the {name(t)} {lay.prep[op[2]]} the {name(op[2])}."
        if verb == "puts":
            w.loc[t] = op[2]
            return f"You move the {name(t)} to the {name(op[2])}."
        if verb == "use":
            temp = w.temp[t]
            if t == w.task.subject:
                w.reading = temp
                w.read_melted = w.read_melted or temp > lay.sub[t].mp
            return f"The thermometer measures a temperature of {temp} degrees celsius."
        if verb == "focus":
            return self._focus(t)
        if verb == "mix":
            return self._mix(t)
        before = self._powered()
        if verb == "connect":
            u = op[2]
            w.links[t] += (u,)
            w.links[u] += (t,)
            text = f"The {name(t)} is now connected to the {name(u)}."
        else:  # disconnect
            for u in w.links[t]:
                w.links[u] = tuple(x for x in w.links[u] if x != t)
            w.links[t] = ()
            text = f"The {name(t)} is now disconnected."
        after = self._powered()
        for c in sorted(after - before):
            text += f" The {name(c)} turns on."
        for c in sorted(before - after):
            text += f" The {name(c)} turns off."
        return text

    def _focus(self, t: int) -> str:
        w = self.world
        task = w.task
        fam = task.family
        if fam in (MEASURE, MELTING_POINT):
            if fam == MEASURE:
                value = w.reading
            else:
                value = w.layout.sub[task.subject].mp if w.read_melted else None
            right = -1 if value is None else task.above if value > task.threshold else task.below
            w.won, w.failed = t == right, t != right
        elif fam == MIX:
            w.won = w.color[t] == task.subject_key
            w.failed = not w.won
        elif t == task.subject:
            w.focus = t
        else:
            w.failed = True
        return f"You focus on the {self._name(t)}."

    def _mix(self, v: int) -> str:
        w = self.world
        paints = self._paints_in(v)
        colors = [w.color[p] for p in paints]
        result = RECIPES.get(frozenset(colors)) if len(colors) == 2 else None
        if result is None:
            return "The paints do not mix into a new color."
        w.color[paints[0]] = result
        w.loc[paints[1]] = GONE
        return f"The {colors[0]} paint and {colors[1]} paint mix into {result} paint."

    def _tick(self) -> list[str]:
        """Advance time one tick: heating, cooling and plant growth; the visible changes."""
        w = self.world
        lay = w.layout
        loc = w.loc
        temp = w.temp
        events = []
        stove_on = w.on[STOVE]
        cold = not w.is_open[FREEZER]
        for s in lay.substances:
            v = loc[s]
            if v < 0:
                continue
            c = loc[v]
            if c == STOVE and stove_on:
                new = min(temp[s] + STOVE_STEP, STOVE_MAX)
            elif c == FREEZER and cold:
                new = max(temp[s] - FREEZER_STEP, FREEZER_MIN)
            else:
                continue
            if new == temp[s]:
                continue
            old_state = self._state(s)
            old_name = self._name(s)
            temp[s] = new
            state = self._state(s)
            if state != old_state and self._visible(s):
                verb = ("freezes", "melts", "condenses", "boils")[
                    (state > old_state) + 2 * (state == GAS or old_state == GAS)
                ]
                events.append(f"The {old_name} {verb} into {self._name(s)}.")
        if w.on[GROWLIGHT]:
            for s in lay.seeds:
                p = loc[s]
                if p >= 0 and lay.kind[p] == POT and w.growth[s] < GROWN and self._water_in(p):
                    old_name = self._name(s)
                    w.growth[s] += 1
                    new_name = self._name(s)
                    if new_name != old_name and self._visible(s):
                        events.append(f"The {old_name} grows into a {new_name}.")
        return events

    # -- text -------------------------------------------------------------------------------
    def _describe(self, t: int) -> str:
        """A thing with its state and contents, e.g. "a stove (off) with a metal pot (water)"."""
        w = self.world
        lay = w.layout
        k = lay.kind[t]
        text = f"a {self._name(t)}"
        if k in (RECEP, LIGHT):
            if t == STOVE or k == LIGHT:
                text += " (on)" if w.on[t] else " (off)"
            if lay.openable[t] and not w.is_open[t]:
                return text + " (closed)"
            inside = [self._describe(x) for x in range(len(w.loc)) if w.loc[x] == t]
            if inside:
                text += f" {lay.prep[t]} which is " + " and ".join(inside)
        elif k in (VESSEL, POT):
            inside = [self._name(x) for x in range(len(w.loc)) if w.loc[x] == t]
            text += f" ({' and '.join(inside)})" if inside else " (empty)"
        elif k == PART and t in lay.comps:
            text += " (on)" if t in self._powered() else " (off)"
        return text

    def _describe_room(self) -> str:
        w = self.world
        r = w.room
        loc = w.loc
        things = [self._describe(t) for t in range(NROOMS, len(loc)) if loc[t] == r]
        text = f"You are in the {ROOMS[r]}. You see {'; '.join(things) or 'nothing'}."
        if r == WORKSHOP:
            links = w.links
            pairs = [
                f"{self._name(a)}-{self._name(b)}"
                for a in range(len(links))
                for b in links[a]
                if a < b
            ]
            text += f" Connections: {', '.join(pairs) if pairs else 'none'}."
        return text + f" Exits: {', '.join(ROOMS[e] for e in EXITS[r])}."

    # -- outcome ----------------------------------------------------------------------------
    def checklist(self) -> dict[str, bool]:
        """The task's sub-goals in words, each with whether it holds now."""
        w = self.world
        t = w.task
        fam = t.family
        labels = t.labels
        s = t.subject
        loc = w.loc
        if fam in _TARGET_STATE:
            place, ok = (STOVE, w.on[STOVE]) if fam != FREEZE else (FREEZER, not w.is_open[FREEZER])
            values: tuple[bool, ...] = (
                w.focus == s,
                loc[loc[s]] == place,
                ok,
                self._state(s) == t.target,
            )
        elif fam == MEASURE:
            values = (w.held == w.layout.thermometer, w.reading is not None, w.won)
        elif fam == MELTING_POINT:
            values = (
                w.held == w.layout.thermometer,
                self._state(s) != SOLID,
                w.read_melted,
                w.won,
            )
        elif fam == MIX:
            made = self._paint_of(t.subject_key) >= 0
            a, b = (self._paint_of(c) for c in t.colors)
            values = (made or (a >= 0 and b >= 0 and loc[a] == loc[b]), made, w.won)
        elif fam == POWER:
            values = (
                w.focus == s,
                len(w.links[w.layout.battery]) == 2,
                len(w.links[s]) == 2,
                s in self._powered(),
            )
        else:
            pot = loc[s]
            in_pot = pot >= 0 and w.layout.kind[pot] == POT
            values = (
                w.focus == s,
                in_pot,
                in_pot and self._water_in(pot),
                w.on[GROWLIGHT],
                w.growth[s] >= GROWN,
            )
        return dict(zip(labels, values, strict=True))

    def _succeeded(self) -> bool:
        w = self.world
        t = w.task
        fam = t.family
        if fam in (MEASURE, MELTING_POINT, MIX):
            return w.won
        if w.focus != t.subject:
            return False
        if fam in _TARGET_STATE:
            return self._state(t.subject) == t.target
        if fam == POWER:
            return t.subject in self._powered()
        return w.growth[t.subject] >= GROWN

    def _failed(self) -> bool:
        w = self.world
        if w.failed:
            return True
        t = w.task
        if t.family == MIX and self._paint_of(t.subject_key) < 0:
            # an ingredient was mixed into another colour: the target cannot be made
            return any(self._paint_of(c) < 0 for c in t.colors)
        return False

    # -- expert -----------------------------------------------------------------------------
    def expert_action(self) -> str:
        """The planner's command from the current state (any reachable, unfinished state),
        using only what the agent could know: a thing it has not seen is searched for (see
        :meth:`_search` and the class docstring), never fetched from where it is hidden.

        State change: focus on the substance, then heat it on the lit stove or cool it in
        the closed freezer, then wait. Measurement: hold the thermometer, (heat the solid
        until it melts,) measure, focus on the right box. Mixing: bring the two ingredient
        paints into one vessel without other paints, mix, focus on the result. Circuit:
        focus on the component, then remove links that do not belong to the cheapest
        battery-wire-component-wire loop and add the missing ones. Plant: focus on the
        seed, plant it, water its pot, turn on the grow light, wait.
        """
        op = self._plan()
        return self._fmt(op)

    def _plan(self) -> tuple:
        w = self.world
        t = w.task
        fam = t.family
        s = t.subject
        if fam in (MELT, BOIL, FREEZE, POWER, GROW) and w.focus != s:
            return self._reach(s) or ("focus", s)
        if fam in _TARGET_STATE:
            state = self._state(s)
            op = self._heat(s) if state < t.target else self._cool(s)
            return op or ("wait",)
        if fam == MEASURE:
            if w.reading is None:
                return self._measure(s)
            box = t.above if w.reading > t.threshold else t.below
            return self._reach(box) or ("focus", box)
        if fam == MELTING_POINT:
            if w.read_melted:
                box = t.above if w.layout.sub[s].mp > t.threshold else t.below
                return self._reach(box) or ("focus", box)
            if self._state(s) == SOLID:
                op = self._heat(s)
                if op:
                    return op
            return self._measure(s)
        if fam == MIX:
            return self._plan_mix()
        if fam == POWER:
            return self._plan_circuit()
        return self._plan_grow()

    def _reach(self, t: int) -> tuple | None:
        """Make ``t`` visible: go towards its room, open the fixture hiding it; None if it is.

        A thing the agent has not seen yet (and that is not fixed in its room) is searched
        for instead (:meth:`_search`): where it is, is what the agent does not know."""
        w = self.world
        if w.layout.home[t] < 0 and not w.seen >> t & 1:
            return self._search(t)
        room, closed = self._locate(t)
        if room == INV:
            return None
        if room != w.room:
            return ("go", NEXT_HOP[w.room][room])
        if closed >= 0:
            return ("open", closed)
        return None

    def _search(self, t: int) -> tuple:
        """The next step of looking for ``t``, which the agent has not seen: go to the
        nearest fixture of ``Layout.places[t]`` whose contents it has not seen (ties in
        that order) and open it if it is closed (an openless one shows them on arrival)."""
        w = self.world
        lay = w.layout
        here = DIST[w.room]
        left = [f for f in lay.places[t] if not w.looked >> f & 1]
        if not left:
            # unreachable: a thing not seen yet is where the generation rules put things
            raise RuntimeError(f"expert: looked everywhere for the {lay.names[t] or t}")
        f = min(left, key=lambda f: here[lay.home[f]])  # min keeps the first of a tie
        if w.room != lay.home[f]:
            return ("go", NEXT_HOP[w.room][lay.home[f]])
        return ("open", f)

    def _hold(self, t: int) -> tuple | None:
        """Get ``t`` into the hands (putting down whatever else is there); None if held."""
        w = self.world
        if w.held == t:
            return None
        if w.held >= 0:
            return ("put", w.held, DROP[w.room])
        return self._reach(t) or ("pick", t)

    def _place(self, t: int, r: int) -> tuple | None:
        """Put portable ``t`` in/on fixture ``r``; None if it is there."""
        w = self.world
        if w.loc[t] == r:
            return None
        op = self._hold(t)
        if op:
            return op
        home = w.layout.home[r]
        if w.room != home:
            return ("go", NEXT_HOP[w.room][home])
        if w.layout.openable[r] and not w.is_open[r]:
            return ("open", r)
        return ("put", t, r)

    def _move_substance(self, s: int, dest: int) -> tuple | None:
        """Move substance ``s`` into vessel ``dest``; None if it is there."""
        w = self.world
        src = w.loc[s]
        if src == dest:
            return None
        if self._visible(s) and self._visible(dest):
            return ("puts", s, dest)
        kind = w.layout.kind
        if w.held == src:
            return self._reach(dest)
        if w.held == dest:
            return self._reach(s)
        if kind[src] == VESSEL:
            return self._hold(src)
        if kind[dest] == VESSEL:
            return self._hold(dest)
        return self._reach(s)  # both flower pots: same room

    def _into_portable(self, s: int) -> tuple | None:
        """Get substance ``s`` into a portable vessel (it may sit in a flower pot)."""
        w = self.world
        lay = w.layout
        if lay.kind[w.loc[s]] == VESSEL:
            return None
        held = w.held
        if held >= 0 and lay.kind[held] == VESSEL:
            return self._move_substance(s, held)
        full = {w.loc[x] for x in lay.substances}
        # vessels the agent has seen (the one it emptied into the pot among them)
        known = [v for v in lay.vessels if w.seen >> v & 1] or list(lay.vessels)
        empty = [v for v in known if v not in full]
        return self._hold(empty[0] if empty else known[0])

    def _heat(self, s: int) -> tuple | None:
        """Get ``s`` onto the lit stove; None once it is heating."""
        op = self._into_portable(s) or self._place(self.world.loc[s], STOVE)
        if op:
            return op
        if not self.world.on[STOVE]:
            return self._reach(STOVE) or ("activate", STOVE)
        return None

    def _cool(self, s: int) -> tuple | None:
        """Get ``s`` into the closed freezer; None once it is cooling."""
        op = self._into_portable(s) or self._place(self.world.loc[s], FREEZER)
        if op:
            return op
        if self.world.is_open[FREEZER]:
            return self._reach(FREEZER) or ("close", FREEZER)
        return None

    def _measure(self, s: int) -> tuple:
        thermo = self.world.layout.thermometer
        return self._hold(thermo) or self._reach(s) or ("use", s)

    def _plan_mix(self) -> tuple:
        w = self.world
        t = w.task
        target = self._paint_of(t.subject_key)
        if target >= 0:
            return self._reach(target) or ("focus", target)
        pa, pb = (self._paint_of(c) for c in t.colors)
        va = w.loc[pa]
        if w.loc[pb] != va:
            return self._move_substance(pb, va)
        extras = [p for p in self._paints_in(va) if p not in (pa, pb)]
        if extras:
            # another paint would spoil the mixture: move it to some other vessel first
            others = [
                v for v in self._visible_things() if v != va and w.layout.kind[v] in (VESSEL, POT)
            ]
            known = [v for v in w.layout.vessels if v != va and w.seen >> v & 1]
            dest = others[0] if others else (known or [v for v in w.layout.vessels if v != va])[0]
            return self._move_substance(extras[0], dest)
        return self._reach(va) or ("mix", va)

    def _plan_circuit(self) -> tuple:
        w = self.world
        lay = w.layout
        if w.room != WORKSHOP:
            return ("go", NEXT_HOP[w.room][WORKSHOP])
        bat, comp = lay.battery, w.task.subject
        links = w.links
        edges = {(a, b) for a in range(len(links)) for b in links[a] if a < b}
        best = None
        for wa in lay.wires:
            for wb in lay.wires:
                if wa == wb:
                    continue
                want = {tuple(sorted(e)) for e in ((bat, wa), (wa, comp), (comp, wb), (wb, bat))}
                core = {bat, comp, wa, wb}
                bad = sorted(e for e in edges - want if e[0] in core or e[1] in core)
                cost = len(want - edges) + len(bad)
                if best is None or cost < best[0]:
                    best = (cost, want, core, bad)
        _, want, core, bad = best
        if bad:
            a, b = bad[0]
            # cut the stray part loose; between two core parts, cut the wire
            if a not in core:
                return ("disconnect", a)
            if b not in core:
                return ("disconnect", b)
            return ("disconnect", a if a in lay.wires else b)
        a, b = min(want - edges)
        return ("connect", a, b)

    def _plan_grow(self) -> tuple:
        w = self.world
        lay = w.layout
        s = w.task.subject
        water = lay.water
        pot = w.loc[s]
        if pot < 0 or lay.kind[pot] != POT:
            pot = w.loc[water] if lay.kind[w.loc[water]] == POT else POT1
            return self._place(s, pot)
        state = self._state(water)
        if state != LIQUID:
            op = self._heat(water) if state == SOLID else self._cool(water)
            return op or ("wait",)
        op = self._move_substance(water, pot)
        if op:
            return op
        if not w.on[GROWLIGHT]:
            return self._reach(GROWLIGHT) or ("activate", GROWLIGHT)
        return ("wait",)
