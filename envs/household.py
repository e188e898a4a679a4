"""An ALFWorld-like household text game: six task types over numbered receptacles and objects.

Pure Python, in-house, fast (tens of thousands of steps per second). The static part of an
instance (receptacles, object names, precomputed command strings) lives in an immutable
:class:`Layout` shared between snapshots; the mutable part (agent position, held object,
object positions and states, open receptacles, lamps, which receptacles the agent has
looked in) is a few small lists and a bitmask in :class:`World`, so ``get_state`` /
``set_state`` are exact and cheap.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from envs.contract import KNOWLEDGE_SPLIT, TextEnv

__all__ = [
    "NOVEL_OBJECTS",
    "TASK_TYPES",
    "HouseholdEnv",
    "Layout",
    "Task",
    "World",
    "compositions",
    "goal_texts",
    "layout_names",
]

# --------------------------------------------------------------------------------------------
# Static tables
# --------------------------------------------------------------------------------------------

PICK = "pick_and_place"
CLEAN = "pick_clean_then_place"
HEAT = "pick_heat_then_place"
COOL = "pick_cool_then_place"
LIGHT = "look_at_obj_in_light"
TWO = "pick_two_obj_and_place"
TASK_TYPES: tuple[str, ...] = (PICK, CLEAN, HEAT, COOL, LIGHT, TWO)

# Object-state bits; a task's ``need`` is one of them. They double as capability bits.
IS_CLEAN, IS_HOT, IS_COOL, CAN_LIGHT = 1, 2, 4, 8
_NEED_OF_TASK = {CLEAN: IS_CLEAN, HEAT: IS_HOT, COOL: IS_COOL}
_STATE_WORD = {IS_CLEAN: "clean", IS_HOT: "hot", IS_COOL: "cool"}
# The appliance receptacle type that applies each transformation, and the command verb.
_APPLIANCE = {IS_CLEAN: "sinkbasin", IS_HOT: "microwave", IS_COOL: "fridge"}
_VERB = {IS_CLEAN: "clean", IS_HOT: "heat", IS_COOL: "cool"}
_APPLIANCE_BIT = {rtype: bit for bit, rtype in _APPLIANCE.items()}

#: Receptacle types: (openable, preposition).
RECEPTACLES: dict[str, tuple[bool, str]] = {
    "armchair": (False, "on"),
    "bathtubbasin": (False, "in"),
    "bed": (False, "on"),
    "cabinet": (True, "in"),
    "coffeemachine": (False, "in"),
    "coffeetable": (False, "on"),
    "countertop": (False, "on"),
    "desk": (False, "on"),
    "diningtable": (False, "on"),
    "drawer": (True, "in"),
    "dresser": (False, "on"),
    "fridge": (True, "in"),
    "garbagecan": (False, "in"),
    "handtowelholder": (False, "on"),
    "laundryhamper": (False, "in"),
    "microwave": (True, "in"),
    "safe": (True, "in"),
    "shelf": (False, "on"),
    "sidetable": (False, "on"),
    "sinkbasin": (False, "in"),
    "sofa": (False, "on"),
    "stoveburner": (False, "on"),
    "toilet": (False, "on"),
    "toiletpaperhanger": (False, "on"),
    "towelholder": (False, "on"),
    "tvstand": (False, "on"),
}

_C, _H, _K, _L = IS_CLEAN, IS_HOT, IS_COOL, CAN_LIGHT
_FOOD = ("countertop", "diningtable", "fridge", "sinkbasin", "garbagecan", "microwave")
_DISH = ("countertop", "diningtable", "cabinet", "shelf", "sinkbasin", "microwave", "fridge")
_TOOL = ("countertop", "diningtable", "drawer", "sinkbasin")
_SMALL = ("desk", "sidetable", "dresser", "shelf", "drawer", "safe", "coffeetable")

#: Portable object types: (capability bits, receptacle types where it sensibly goes).
#: The places are both where it spawns and where place-tasks may ask to put it.
OBJECTS: dict[str, tuple[int, tuple[str, ...]]] = {
    # kitchen food
    "apple": (_C | _H | _K, _FOOD),
    "tomato": (_C | _H | _K, _FOOD),
    "potato": (_C | _H | _K, (*_FOOD, "stoveburner")),
    "egg": (_C | _H, _FOOD),
    "lettuce": (_C | _K, _FOOD[:-1]),
    "bread": (_H | _K, ("countertop", "diningtable", "fridge", "garbagecan", "microwave")),
    # kitchenware
    "mug": (_C | _H | _K | _L, (*_DISH, "coffeemachine", "desk", "sidetable", "dresser")),
    "cup": (_C | _H | _K, _DISH),
    "plate": (_C | _H | _K, _DISH),
    "bowl": (_C | _K | _L, (*_DISH, "desk", "sidetable", "dresser", "coffeetable")),
    "pan": (_C | _K, ("countertop", "stoveburner", "cabinet", "sinkbasin", "fridge")),
    "pot": (_C | _K, ("countertop", "stoveburner", "cabinet", "sinkbasin", "fridge", "shelf")),
    "knife": (_C, _TOOL),
    "spoon": (_C, _TOOL),
    "fork": (_C, _TOOL),
    "spatula": (_C, _TOOL),
    "ladle": (_C, _TOOL),
    "dishsponge": (_C, ("countertop", "sinkbasin", "cabinet", "drawer", "bathtubbasin")),
    "saltshaker": (0, ("countertop", "diningtable", "cabinet", "shelf", "drawer")),
    "peppershaker": (0, ("countertop", "diningtable", "cabinet", "shelf", "drawer")),
    "winebottle": (_K, ("countertop", "diningtable", "fridge", "cabinet", "shelf", "garbagecan")),
    "soapbottle": (0, ("countertop", "cabinet", "shelf", "garbagecan", "toilet")),
    # bedroom / living room
    "book": (_L, ("desk", "sidetable", "dresser", "shelf", "bed", "sofa", "coffeetable")),
    "cd": (_L, (*_SMALL, "garbagecan")),
    "pen": (_L, _SMALL[:5]),
    "pencil": (_L, _SMALL[:5]),
    "keychain": (_L, (*_SMALL, "sofa", "armchair")),
    "creditcard": (_L, (*_SMALL, "sofa", "armchair", "diningtable")),
    "cellphone": (_L, ("desk", "sidetable", "dresser", "bed", "sofa", "armchair", "coffeetable")),
    "alarmclock": (_L, ("desk", "sidetable", "dresser", "shelf")),
    "watch": (_L, _SMALL),
    "laptop": (_L, ("desk", "bed", "sofa", "coffeetable", "diningtable")),
    "pillow": (_L, ("bed", "sofa", "armchair")),
    "remotecontrol": (_L, ("sofa", "armchair", "coffeetable", "sidetable", "tvstand", "dresser")),
    "vase": (_L, ("shelf", "sidetable", "coffeetable", "dresser", "tvstand", "diningtable")),
    "statue": (_L, ("shelf", "sidetable", "coffeetable", "dresser", "tvstand", "desk")),
    "newspaper": (_L, ("sofa", "coffeetable", "sidetable", "armchair", "diningtable")),
    "box": (_L, ("coffeetable", "sidetable", "shelf", "dresser", "sofa", "armchair")),
    "tissuebox": (_L, ("sidetable", "coffeetable", "dresser", "shelf", "toilet", "countertop")),
    # bathroom
    "soapbar": (_C, ("countertop", "sinkbasin", "bathtubbasin", "toilet", "cabinet", "shelf")),
    "cloth": (_C, ("countertop", "sinkbasin", "bathtubbasin", "cabinet", "drawer", "shelf")),
    "towel": (0, ("towelholder", "countertop", "bathtubbasin", "cabinet", "shelf")),
    "handtowel": (0, ("handtowelholder", "countertop", "cabinet", "shelf")),
    "toiletpaper": (0, ("toiletpaperhanger", "toilet", "countertop", "cabinet", "shelf")),
    "spraybottle": (0, ("countertop", "cabinet", "toilet", "shelf", "garbagecan", "drawer")),
    "candle": (0, ("countertop", "toilet", "shelf", "cabinet", "bathtubbasin", "drawer")),
}

#: Lamp types and the receptacle types a lamp stands on (or beside).
LAMPS: dict[str, tuple[str, ...]] = {
    "desklamp": ("desk", "sidetable", "dresser"),
    "floorlamp": ("sidetable", "dresser"),
}

_KITCHEN = (
    "apple",
    "tomato",
    "potato",
    "egg",
    "lettuce",
    "bread",
    "mug",
    "cup",
    "plate",
    "bowl",
    "pan",
    "pot",
    "knife",
    "spoon",
    "fork",
    "spatula",
    "ladle",
    "dishsponge",
    "saltshaker",
    "peppershaker",
    "winebottle",
    "soapbottle",
)
_BEDROOM = (
    "book",
    "cd",
    "pen",
    "pencil",
    "keychain",
    "creditcard",
    "cellphone",
    "alarmclock",
    "laptop",
    "pillow",
    "watch",
    "mug",
    "bowl",
    "box",
    "statue",
)
_LIVING = (
    "book",
    "keychain",
    "creditcard",
    "cellphone",
    "remotecontrol",
    "vase",
    "statue",
    "pillow",
    "laptop",
    "newspaper",
    "box",
    "watch",
    "tissuebox",
    "bowl",
)
_BATHROOM = (
    "soapbar",
    "cloth",
    "towel",
    "handtowel",
    "toiletpaper",
    "spraybottle",
    "candle",
    "soapbottle",
    "dishsponge",
    "tissuebox",
)


@dataclass(frozen=True)
class LayoutSpec:
    """A scene template variant: receptacle types with count ranges, lamps, object pool."""

    name: str
    receptacles: tuple[tuple[str, int, int], ...]
    objects: tuple[str, ...]
    lamps: tuple[str, ...] = ()
    test_only: bool = False

    @property
    def rtypes(self) -> frozenset[str]:
        return frozenset(r for r, _, _ in self.receptacles)


def _spec(
    name: str, recs: str, objects: tuple[str, ...], lamps: str = "", test_only: bool = False
) -> LayoutSpec:
    # "cabinet 3-6, fridge" -> (("cabinet", 3, 6), ("fridge", 1, 1))
    parsed = []
    for part in recs.split(","):
        rtype, _, rng = part.strip().partition(" ")
        lo, _, hi = (rng or "1").partition("-")
        parsed.append((rtype, int(lo), int(hi or lo)))
    return LayoutSpec(name, tuple(parsed), tuple(objects), tuple(lamps.split()), test_only)


#: Every scene layout. ``test_only`` layouts are generated only on the test split.
LAYOUTS: tuple[LayoutSpec, ...] = (
    _spec(
        "kitchen-1",
        "countertop 1-2, cabinet 3-6, drawer 2-4, fridge, microwave, sinkbasin, "
        "stoveburner 2-4, diningtable, garbagecan, coffeemachine",
        _KITCHEN,
    ),
    _spec(
        "kitchen-2",
        "countertop 2-3, cabinet 2-4, drawer 1-3, fridge, microwave, sinkbasin, "
        "stoveburner 2, shelf 1-3, garbagecan, coffeemachine",
        _KITCHEN,
    ),
    _spec(
        "kitchen-galley",
        "countertop, cabinet 5-8, drawer 3-5, fridge, microwave, sinkbasin, stoveburner 2, "
        "shelf, diningtable, garbagecan",
        _KITCHEN,
        test_only=True,
    ),
    _spec(
        "livingroom-1",
        "sofa, armchair, coffeetable, sidetable 1-2, tvstand, shelf 2-4, drawer 3-5, garbagecan",
        _LIVING,
        "floorlamp",
    ),
    _spec(
        "livingroom-2",
        "sofa 1-2, armchair, coffeetable, sidetable 2, dresser, shelf 1-2, drawer 2-4, "
        "diningtable, garbagecan",
        _LIVING,
        "desklamp floorlamp",
    ),
    _spec(
        "livingroom-open",
        "sofa, armchair 2, coffeetable 1-2, sidetable, tvstand, dresser, drawer 3-5, "
        "diningtable, garbagecan",
        _LIVING,
        "desklamp",
        test_only=True,
    ),
    _spec(
        "bedroom-1",
        "bed, desk, sidetable 1-2, dresser, drawer 3-6, shelf 2-4, garbagecan, laundryhamper",
        _BEDROOM,
        "desklamp",
    ),
    _spec(
        "bedroom-2",
        "bed, desk 1-2, sidetable, drawer 2-4, shelf 1-3, safe, armchair, garbagecan",
        _BEDROOM,
        "desklamp floorlamp",
    ),
    _spec(
        "bedroom-studio",
        "bed 1-2, desk, dresser, sidetable 2, drawer 4-6, shelf 1-2, safe, garbagecan",
        _BEDROOM,
        "floorlamp desklamp",
        test_only=True,
    ),
    _spec(
        "bathroom-1",
        "countertop, sinkbasin 1-2, toilet, bathtubbasin, cabinet 2-4, drawer 2-4, towelholder, "
        "handtowelholder, toiletpaperhanger, garbagecan",
        _BATHROOM,
    ),
    _spec(
        "bathroom-2",
        "countertop, sinkbasin, toilet, bathtubbasin, cabinet 1-2, shelf 2-3, towelholder, "
        "handtowelholder, toiletpaperhanger, garbagecan",
        _BATHROOM,
    ),
    _spec(
        "bathroom-double",
        "countertop 2, sinkbasin 2, toilet, bathtubbasin, cabinet 4, drawer 3-5, shelf, "
        "towelholder, toiletpaperhanger, garbagecan",
        _BATHROOM,
        test_only=True,
    ),
)

Composition = tuple[str, str, str]  # (task type, object type, target receptacle or lamp type)


def _targets(task: str, otype: str) -> tuple[str, ...]:
    """Target types that make a sensible goal for ``task`` over ``otype`` (before layouts)."""
    caps, places = OBJECTS[otype]
    if task in (PICK, TWO):
        return places
    if task == LIGHT:
        return tuple(LAMPS) if caps & CAN_LIGHT else ()
    need = _NEED_OF_TASK[task]
    if not caps & need:
        return ()
    # A target that is the transforming appliance itself ("put a clean X in sinkbasin")
    # makes a degenerate goal; ALFWorld has none.
    return tuple(p for p in places if p != _APPLIANCE[need])


def _feasible(comp: Composition, spec: LayoutSpec) -> bool:
    task, otype, target = comp
    if otype not in spec.objects:
        return False
    rtypes = spec.rtypes
    if task == LIGHT:
        return target in spec.lamps and any(p in rtypes for p in OBJECTS[otype][1])
    if target not in rtypes:
        return False
    if task in _NEED_OF_TASK and _APPLIANCE[_NEED_OF_TASK[task]] not in rtypes:
        return False
    # goal objects never spawn in a target-type receptacle, so they need another place
    return any(p in rtypes and p != target for p in OBJECTS[otype][1])


def _partition() -> tuple[dict[str, tuple[Composition, ...]], dict[Composition, tuple]]:
    """The fixed train/test partition of compositions, and each one's usable layouts.

    Per task type, compositions are ordered by a CRC32 of their text (stable across
    processes and machines, unlike ``hash``); those no train layout can realize go to test,
    then the first ones in that order until about 20% of the type is held out.
    """
    train_layouts = [s for s in LAYOUTS if not s.test_only]
    split: dict[str, list[Composition]] = {"train": [], "test": []}
    for task in TASK_TYPES:
        comps = sorted(
            {
                (task, o, t)
                for o in OBJECTS
                for t in _targets(task, o)
                if any(_feasible((task, o, t), s) for s in LAYOUTS)
            },
            key=lambda c: (zlib.crc32("|".join(c).encode()), c),
        )
        n_test = max(1, round(0.2 * len(comps)))
        test = [c for c in comps if not any(_feasible(c, s) for s in train_layouts)]
        test += [c for c in comps if c not in test][: max(0, n_test - len(test))]
        split["test"] += sorted(test)
        split["train"] += sorted(c for c in comps if c not in test)
    usable: dict[Composition, tuple] = {}
    for name, comps in split.items():
        pool = LAYOUTS if name == "test" else train_layouts
        for c in comps:
            usable[c] = tuple(s for s in pool if _feasible(c, s))
    return {k: tuple(v) for k, v in split.items()}, usable


_SPLIT_COMPS, _USABLE_LAYOUTS = _partition()

#: The knowledge split's held-out object types (see :class:`HouseholdEnv`): with
#: ``knowledge=True`` no train goal names them (so no train expert command does), but
#: they spawn as distractors as before, where the train split's observations show them.
NOVEL_OBJECTS: tuple[str, ...] = (
    "lettuce",
    "bread",
    "spatula",
    "winebottle",
    "pillow",
    "alarmclock",
    "remotecontrol",
    "spraybottle",
)


def _knowledge_partition() -> tuple[tuple[Composition, ...], tuple[Composition, ...], dict]:
    """The knowledge variant's train compositions (the train split's, less those of a novel
    object type), the novel split's (every composition of a novel object type that a train
    layout realizes) and each novel composition's usable layouts (train layouts only)."""
    train_layouts = [s for s in LAYOUTS if not s.test_only]
    novel = sorted(
        {
            (task, o, t)
            for task in TASK_TYPES
            for o in NOVEL_OBJECTS
            for t in _targets(task, o)
            if any(_feasible((task, o, t), s) for s in train_layouts)
        }
    )
    usable = {c: tuple(s for s in train_layouts if _feasible(c, s)) for c in novel}
    train = tuple(c for c in _SPLIT_COMPS["train"] if c[1] not in NOVEL_OBJECTS)
    return train, tuple(novel), usable


_KNOWLEDGE_TRAIN, _NOVEL_COMPS, _NOVEL_USABLE = _knowledge_partition()
#: Compositions per task type of each pool a split draws from ("train-knowledge": the train
#: split with ``knowledge=True``).
_COMPS_BY_TYPE = {
    split: {t: tuple(c for c in comps if c[0] == t) for t in TASK_TYPES}
    for split, comps in (
        *_SPLIT_COMPS.items(),
        ("train-knowledge", _KNOWLEDGE_TRAIN),
        ("novel", _NOVEL_COMPS),
    )
}


def compositions(split: str, knowledge: bool = False) -> tuple[Composition, ...]:
    """The ``(task type, object type, target type)`` compositions ``split`` generates.

    Fixed and seed-independent; train and test are disjoint. ``knowledge``: those of the
    knowledge variant (the train split without :data:`NOVEL_OBJECTS`; test unchanged); the
    knowledge split ``"novel"`` exists only there and names only :data:`NOVEL_OBJECTS`.
    """
    if split == "novel" and knowledge:
        return _NOVEL_COMPS
    if split not in _SPLIT_COMPS:
        splits = (*_SPLIT_COMPS, "novel (with knowledge=True)")
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(splits)}")
    return _KNOWLEDGE_TRAIN if knowledge and split == "train" else _SPLIT_COMPS[split]


def layout_names(split: str, knowledge: bool = False) -> tuple[str, ...]:
    """The scene layouts ``split`` can generate (the test split adds test-only layouts;
    the novel split uses the train split's)."""
    compositions(split, knowledge)
    return tuple(s.name for s in LAYOUTS if split == "test" or not s.test_only)


_GOAL_TEMPLATES = {
    PICK: ("put a {o} {p} {r}.", "put some {o} {p} {r}."),
    CLEAN: ("put a clean {o} {p} {r}.", "clean some {o} and put it {p} {r}."),
    HEAT: ("put a hot {o} {p} {r}.", "heat some {o} and put it {p} {r}."),
    COOL: ("put a cool {o} {p} {r}.", "cool some {o} and put it {p} {r}."),
    LIGHT: ("look at {o} under the {r}.", "examine the {o} with the {r}."),
    TWO: ("put two {o} {p} {r}.", "find two {o} and put them {p} {r}."),
}


def goal_texts(comp: Composition) -> tuple[str, ...]:
    """Every goal text a composition can be phrased as (each names it uniquely)."""
    task, otype, target = comp
    prep = RECEPTACLES[target][1] if target in RECEPTACLES else ""
    return tuple(t.format(o=otype, p=prep, r=target) for t in _GOAL_TEMPLATES[task])


def _search_order(rtypes: list[str], otype: str, target: str) -> dict[str, Any]:
    """The order in which the expert looks for an ``otype`` goal object (as ``Task`` fields).

    It depends only on the goal and the room listing, so an agent can learn it: first the
    receptacles of a type where ``otype`` spawns (the placement table, minus the target
    type, where goal objects never start), then the rest; within each group, receptacles
    that show their contents on arrival before those that must be opened (one step to
    inspect instead of two, at equal odds), then the listing order.
    """
    homes = {p for p in OBJECTS[otype][1] if p != target}
    order = sorted(
        range(len(rtypes)),
        key=lambda i: (rtypes[i] not in homes, RECEPTACLES[rtypes[i]][0], i),
    )
    plausible = sum(1 << i for i, t in enumerate(rtypes) if t in homes)
    return {"search": tuple(order), "plausible": plausible}


# --------------------------------------------------------------------------------------------
# Instance state
# --------------------------------------------------------------------------------------------


def _listing(names: list[str]) -> str:
    return ", ".join(f"a {n}" for n in names) if names else "nothing"


@dataclass(frozen=True, eq=False)
class Layout:
    """The immutable part of an instance, with the command strings precomputed.

    Shared (not copied) by snapshots: it never changes after generation.
    """

    name: str
    rnames: tuple[str, ...]
    rtypes: tuple[str, ...]
    openable: tuple[bool, ...]
    prep: tuple[str, ...]
    appliance: tuple[int, ...]  # state bit the receptacle applies (0: none)
    onames: tuple[str, ...]
    otypes: tuple[str, ...]
    ocaps: tuple[int, ...]
    lnames: tuple[str, ...]
    ltypes: tuple[str, ...]
    lhost: tuple[int, ...]
    lamps_at: tuple[tuple[int, ...], ...]
    rindex: dict[str, int]
    oindex: dict[str, int]
    lindex: dict[str, int]
    go_cmd: tuple[str, ...]
    go_except: tuple[tuple[str, ...], ...]
    open_cmd: tuple[str, ...]
    close_cmd: tuple[str, ...]
    exam_cmd: tuple[str, ...]
    exam_obj_cmd: tuple[str, ...]
    use_cmd: tuple[str, ...]
    intro: str

    def __deepcopy__(self, memo: dict) -> Layout:
        return self

    @classmethod
    def build(
        cls,
        name: str,
        rtypes: list[str],
        otypes: list[str],
        ltypes: list[str],
        lhost: list[int],
    ) -> Layout:
        """Number receptacles and objects per type (in the given order) and precompute text."""

        def number(types: list[str]) -> tuple[str, ...]:
            seen: dict[str, int] = {}
            out = []
            for t in types:
                seen[t] = seen.get(t, 0) + 1
                out.append(f"{t} {seen[t]}")
            return tuple(out)

        rnames, onames, lnames = number(rtypes), number(otypes), number(ltypes)
        n = len(rnames)
        go_cmd = tuple(f"go to {r}" for r in rnames)
        return cls(
            name=name,
            rnames=rnames,
            rtypes=tuple(rtypes),
            openable=tuple(RECEPTACLES[t][0] for t in rtypes),
            prep=tuple(RECEPTACLES[t][1] for t in rtypes),
            appliance=tuple(_APPLIANCE_BIT.get(t, 0) for t in rtypes),
            onames=onames,
            otypes=tuple(otypes),
            ocaps=tuple(OBJECTS[t][0] for t in otypes),
            lnames=lnames,
            ltypes=tuple(ltypes),
            lhost=tuple(lhost),
            lamps_at=tuple(tuple(i for i, h in enumerate(lhost) if h == r) for r in range(n)),
            rindex={r: i for i, r in enumerate(rnames)},
            oindex={o: i for i, o in enumerate(onames)},
            lindex={lamp: i for i, lamp in enumerate(lnames)},
            go_cmd=go_cmd,
            go_except=tuple(go_cmd[:i] + go_cmd[i + 1 :] for i in range(n)),
            open_cmd=tuple(f"open {r}" for r in rnames),
            close_cmd=tuple(f"close {r}" for r in rnames),
            exam_cmd=tuple(f"examine {r}" for r in rnames),
            exam_obj_cmd=tuple(f"examine {o}" for o in onames),
            use_cmd=tuple(f"use {lamp}" for lamp in lnames),
            intro="You are in the middle of a room. Looking quickly around you, you see "
            + ", ".join(f"a {r}" for r in rnames)
            + ".",
        )


@dataclass(frozen=True, eq=False)
class Task:
    """The immutable goal of an instance, resolved to receptacle/object/lamp indices."""

    kind: str
    otype: str
    target: str  # receptacle type, or lamp type for look_at_obj_in_light
    goal: str
    need: int  # state bit the goal object must have (0: none)
    count: int  # how many goal objects must share one target receptacle
    goal_objs: tuple[int, ...]  # every object of the goal type
    is_target: tuple[bool, ...]  # per receptacle, plus a False for index -1 (held)
    targets: tuple[int, ...]
    appliance: int  # receptacle that applies ``need`` (-1: none)
    lamp: int  # lamp index for look_at_obj_in_light (-1: none)
    labels: tuple[str, ...]  # checklist keys
    # The expert's search orders, computed from the goal and the room listing only:
    search: tuple[int, ...]  # every receptacle, in the order to look for a goal object
    plausible: int  # bitmask of receptacles where a goal object can spawn (prefix of search)
    lamp_search: tuple[int, ...]  # receptacles a target lamp can stand on (light task)

    def __deepcopy__(self, memo: dict) -> Task:
        return self


@dataclass(eq=False, slots=True)
class World:
    """All mutable episode state; ``-1`` means "middle of the room" / "in hand" / "nothing"."""

    layout: Layout
    task: Task
    loc: int  # receptacle the agent is at
    held: int  # object in hand
    obj_loc: list[int]  # receptacle of each object (-1: held)
    flags: list[int]  # IS_CLEAN | IS_HOT | IS_COOL bits of each object
    is_open: list[bool]  # per receptacle
    lamp_on: list[bool]  # per lamp
    seen: int  # bitmask of receptacles whose contents the agent has observed

    def __deepcopy__(self, memo: dict) -> World:
        # Layout and Task are immutable and shared; the lists are flat ints/bools.
        return World(
            self.layout,
            self.task,
            self.loc,
            self.held,
            self.obj_loc[:],
            self.flags[:],
            self.is_open[:],
            self.lamp_on[:],
            self.seen,
        )


# --------------------------------------------------------------------------------------------
# The env
# --------------------------------------------------------------------------------------------


class HouseholdEnv(TextEnv):
    """ALFWorld-like household text game with six task types.

    ## Description

    A procedurally generated room (kitchen, living room, bedroom or bathroom, in several
    layout variants) with 10-22 numbered receptacles (``countertop 1``, ``cabinet 3``,
    ``fridge 1``, ...), some of which open and close, 6-13 portable objects (``apple 2``,
    ``mug 1``, ``keychain 1``, ...) and sometimes lamps. The goal is one of ALFWorld's six
    task types:

    * ``pick_and_place``: "put a apple in fridge." / "put some mug on countertop."
    * ``pick_clean_then_place``: "put a clean X in Y." (clean X with a sinkbasin)
    * ``pick_heat_then_place``: "put a hot X in Y." (heat X with the microwave)
    * ``pick_cool_then_place``: "put a cool X in Y." (cool X with the fridge)
    * ``look_at_obj_in_light``: "look at X under the desklamp." (hold X next to the lamp
      and turn it on)
    * ``pick_two_obj_and_place``: "put two X in Y." (both in the same receptacle)

    Splits hold out compositions: every valid ``(task type, object type, target type)`` is
    assigned once and for all to train (about 80%) or test (about 20%) — see
    :func:`compositions` — and some layouts (``kitchen-galley``, ``livingroom-open``,
    ``bedroom-studio``, ``bathroom-double``) occur only on the test split.

    The knowledge split ``novel`` is a second test split, the positive control of learning
    from outcomes: its goals name what no goal of the train split and no command of its
    expert's path names, but what the train split's observations show. The default train
    split names every one of the 46 object types in some goal, so the knowledge split
    comes with a variant of it: ``knowledge=True`` holds eight object types
    (:data:`NOVEL_OBJECTS`: lettuce, bread, spatula, winebottle, pillow, alarmclock,
    remotecontrol, spraybottle; kitchen, bedroom, living room and bathroom ones) out of
    the train split's goals (526 of its 617 compositions remain; the test split is
    unchanged), while they still spawn as distractors where the placement table puts them.
    There the agent sees them on arriving at an openless receptacle or opening one, on the
    expert's path or one branched command off it (every ``go to R`` from the middle of
    the room branches off the first demonstrated step): each in 4-18% of the train
    instances (the bathroom's spraybottle least: bathrooms are 8% of the instances).
    ``split="novel"`` (only with
    ``knowledge=True``) asks for them in all six task types (108 compositions, on train
    layouts only). What a novel goal needs that demonstrations never show is what the
    name refers to in what the agent sees, and where such an object tends to be: the
    expert looks first in the receptacle types it spawns in, which for a novel type only
    the outcomes of going and opening have shown.

    The expert (:meth:`expert_action`) acts on the agent's information, like ALFWorld's
    hand-coded expert, not on the hidden state: it fetches a goal object only once the
    agent has seen where it is (arrived at its receptacle while open or openless, opened
    it, or put the object there); until then it searches, going to the first receptacle not
    yet looked in, in a fixed order that depends only on the goal and the room listing
    (types where the object spawns, openless before openable, then listing order), and
    opening it if closed. It finds a lamp the same way. Appliances and targets are named in
    the room listing. It solves every instance from any reachable state, in about 9 steps
    on average (at most about 30) from reset.

    ## Action Space

    A text command (``str``); ``info["admissible_actions"]`` lists the ones valid now:
    ``go to R``, ``open R``, ``close R``, ``take O from R``, ``put O in R`` / ``put O on R``
    (the receptacle's own preposition), ``clean O with R``, ``heat O with R``,
    ``cool O with R``, ``use L`` (toggle a lamp), ``examine R``, ``examine O`` (held
    object), ``inventory``, ``look``. Objects can only be taken from, or put in, the
    receptacle the agent is at, and only when it is open (or does not open). The agent
    holds at most one object.

    ## Observation Space

    ``{"goal": str, "text": str}``: the task instruction and the feedback of the last
    command, in ALFWorld's phrasing ("You arrive at cabinet 2. The cabinet 2 is closed.").

    ## Starting State

    The agent stands in the middle of the room holding nothing; every openable receptacle
    is closed, every lamp off, every object clean of states. No goal object starts in a
    target-type receptacle, so no task is solved at reset.

    ## Reward

    1.0 on the step the task is completed, else 0.0.

    ## Episode End

    ``terminated`` when every checklist item holds. Never truncated by the env itself: the
    registered ``max_episode_steps`` (50) truncates.

    ## Info

    ``admissible_actions`` (list[str]), ``invalid_action`` (bool), ``success`` (bool),
    ``checklist`` (dict[str, bool]), e.g. ``{"apple is clean": True,
    "a clean apple is in fridge": False}``, ``{"first pen in drawer": ..., "second pen in
    drawer": ...}`` or ``{"holding book": ..., "desklamp is on": ..., "next to the
    desklamp": ...}``.

    ## Arguments

    * ``split``: ``"train"``, ``"test"`` or, with ``knowledge=True``, ``"novel"`` (the
      knowledge split).
    * ``render_mode``: ``None``, ``"ansi"`` or ``"human"``.
    * ``knowledge``: the knowledge variant (default ``False``): the train split names no
      object type of :data:`NOVEL_OBJECTS` in a goal, and the novel split exists. Pass it
      for every split of a study that tests on ``novel`` (a dataset's ``env_kwargs``).

    ## Version History

    * v0: initial release. The expert searches receptacles it has not observed instead of
      going straight to the hidden goal object (an omniscient oracle, which a policy that
      sees only the observations cannot imitate). Later in v0 (issue 16): the knowledge
      split ``novel`` and the ``knowledge=True`` variant of the train split it is made
      against (the default train and test instances unchanged).
    """

    def __init__(
        self, split: str = "train", render_mode: str | None = None, knowledge: bool = False
    ) -> None:
        if split == KNOWLEDGE_SPLIT and not knowledge:
            raise ValueError(
                "Household's novel split is made with knowledge=True, which also makes its "
                "train split name none of the novel object types in a goal (the default train "
                "split names every object type): pass knowledge=True for every split of the study"
            )
        self.knowledge = bool(knowledge)
        if self.knowledge:
            self.knowledge_split = KNOWLEDGE_SPLIT
            self.knowledge_entities = NOVEL_OBJECTS
        super().__init__(split, render_mode)
        self.world: World | None = None
        pool = "train-knowledge" if self.knowledge and split == "train" else split
        self._comps_by_type = _COMPS_BY_TYPE[pool]
        self._usable = _NOVEL_USABLE if split == KNOWLEDGE_SPLIT else _USABLE_LAYOUTS

    # -- generation -------------------------------------------------------------------------
    def _generate(self) -> tuple[str, str]:
        rng = self.np_random
        kind = TASK_TYPES[int(rng.integers(len(TASK_TYPES)))]
        comps = self._comps_by_type[kind]
        comp = comps[int(rng.integers(len(comps)))]
        layouts = self._usable[comp]
        spec = layouts[int(rng.integers(len(layouts)))]
        _, otype, target = comp

        rtypes: list[str] = []
        for rtype, lo, hi in spec.receptacles:
            rtypes += [rtype] * int(rng.integers(lo, hi + 1))
        by_type: dict[str, list[int]] = {}
        for i, t in enumerate(rtypes):
            by_type.setdefault(t, []).append(i)

        def pick(seq: list[Any] | tuple[Any, ...]) -> Any:
            return seq[int(rng.integers(len(seq)))]

        ltypes = list(spec.lamps)
        lhost = []
        for lamp in ltypes:
            hosts = [i for t in LAMPS[lamp] for i in by_type.get(t, ())]
            lhost.append(pick(hosts))

        # goal objects (never in a target-type receptacle), then distractors of other types
        n_goal = int(rng.integers(2, 4)) if kind == TWO else int(rng.integers(1, 3))
        goal_homes = [i for p in OBJECTS[otype][1] if p != target for i in by_type.get(p, ())]
        placed: list[tuple[str, int]] = [(otype, pick(goal_homes)) for _ in range(n_goal)]
        pool = [o for o in spec.objects if o != otype and any(p in by_type for p in OBJECTS[o][1])]
        for _ in range(int(rng.integers(5, 11))):
            o = pick(pool)
            placed.append((o, pick([i for p in OBJECTS[o][1] for i in by_type.get(p, ())])))
        # shuffle so that neither listing order nor numbering gives the goal object away
        placed = [placed[int(i)] for i in rng.permutation(len(placed))]
        otypes = [o for o, _ in placed]

        layout = Layout.build(spec.name, rtypes, otypes, ltypes, lhost)
        goal = pick(goal_texts(comp))
        goal_objs = tuple(i for i, o in enumerate(otypes) if o == otype)
        search = _search_order(rtypes, otype, target)
        if kind == LIGHT:
            task = Task(
                kind,
                otype,
                target,
                goal,
                need=0,
                count=1,
                goal_objs=goal_objs,
                is_target=(False,) * (len(rtypes) + 1),
                targets=(),
                appliance=-1,
                lamp=ltypes.index(target),
                labels=(f"holding {otype}", f"{target} is on", f"next to the {target}"),
                **search,
                lamp_search=tuple(i for i, t in enumerate(rtypes) if t in LAMPS[target]),
            )
        else:
            need = _NEED_OF_TASK.get(kind, 0)
            prep = RECEPTACLES[target][1]
            if kind == TWO:
                labels = (f"first {otype} {prep} {target}", f"second {otype} {prep} {target}")
            elif need:
                word = _STATE_WORD[need]
                labels = (f"{otype} is {word}", f"a {word} {otype} is {prep} {target}")
            else:
                labels = (f"a {otype} is {prep} {target}",)
            task = Task(
                kind,
                otype,
                target,
                goal,
                need=need,
                count=2 if kind == TWO else 1,
                goal_objs=goal_objs,
                # the extra trailing False makes is_target[-1] (a held object) False
                is_target=tuple(t == target for t in rtypes) + (False,),
                targets=tuple(by_type[target]),
                appliance=by_type[_APPLIANCE[need]][0] if need else -1,
                lamp=-1,
                labels=labels,
                **search,
                lamp_search=(),
            )
        self.world = World(
            layout=layout,
            task=task,
            loc=-1,
            held=-1,
            obj_loc=[r for _, r in placed],
            flags=[0] * len(placed),
            is_open=[False] * len(rtypes),
            lamp_on=[False] * len(ltypes),
            seen=0,
        )
        return goal, layout.intro

    # -- rules ------------------------------------------------------------------------------
    def admissible_actions(self) -> list[str]:
        """The commands valid now: local actions first, then ``go to``, then the rest."""
        w = self.world
        lay = w.layout
        r = w.loc
        held = w.held
        if r < 0:
            acts = list(lay.go_cmd)
        else:
            acts = []
            visible = True
            if lay.openable[r]:
                visible = w.is_open[r]
                acts.append(lay.close_cmd[r] if visible else lay.open_cmd[r])
            rname = lay.rnames[r]
            if held < 0:
                if visible:
                    onames = lay.onames
                    for o, at in enumerate(w.obj_loc):
                        if at == r:
                            acts.append(f"take {onames[o]} from {rname}")
            else:
                oname = lay.onames[held]
                if visible:
                    acts.append(f"put {oname} {lay.prep[r]} {rname}")
                bit = lay.appliance[r]
                if bit & lay.ocaps[held]:
                    acts.append(f"{_VERB[bit]} {oname} with {rname}")
            for lamp in lay.lamps_at[r]:
                acts.append(lay.use_cmd[lamp])
            acts.append(lay.exam_cmd[r])
            acts.extend(lay.go_except[r])
        if held >= 0:
            acts.append(lay.exam_obj_cmd[held])
        acts.append("inventory")
        acts.append("look")
        return acts

    def _describe(self, r: int) -> str:
        """What the agent sees at receptacle ``r``."""
        w = self.world
        lay = w.layout
        rname = lay.rnames[r]
        if lay.openable[r] and not w.is_open[r]:
            return f"The {rname} is closed."
        names = [lay.lnames[i] for i in lay.lamps_at[r]]
        onames = lay.onames
        names += [onames[o] for o, at in enumerate(w.obj_loc) if at == r]
        if lay.openable[r]:
            text = f"The {rname} is open. In it, you see {_listing(names)}."
        else:
            text = f"{lay.prep[r].capitalize()} the {rname}, you see {_listing(names)}."
        for i in lay.lamps_at[r]:
            text += f" The {lay.lnames[i]} is {'on' if w.lamp_on[i] else 'off'}."
        return text

    def _execute(self, command: str) -> str:
        # Only admissible commands reach here, so the parse can trust the command's shape
        # and the receptacle involved is always the one the agent is at.
        w = self.world
        lay = w.layout
        verb, _, rest = command.partition(" ")
        r = w.loc
        if verb == "go":
            r = w.loc = lay.rindex[rest[3:]]
            if not lay.openable[r] or w.is_open[r]:
                w.seen |= 1 << r
            return f"You arrive at {lay.rnames[r]}. {self._describe(r)}"
        if verb == "take":
            o = lay.oindex[rest.partition(" from ")[0]]
            w.obj_loc[o] = -1
            w.held = o
            return f"You pick up the {lay.onames[o]} from the {lay.rnames[r]}."
        if verb == "put":
            o = w.held
            w.obj_loc[o] = r
            w.held = -1
            return f"You put the {lay.onames[o]} {lay.prep[r]} the {lay.rnames[r]}."
        if verb == "open":
            w.is_open[r] = True
            w.seen |= 1 << r
            return f"You open the {lay.rnames[r]}. {self._describe(r)}"
        if verb == "close":
            w.is_open[r] = False
            return f"You close the {lay.rnames[r]}."
        if verb in ("clean", "heat", "cool"):
            o = w.held
            bit = lay.appliance[r]
            # heating undoes cooling and vice versa; cleaning keeps the temperature
            w.flags[o] = (w.flags[o] & IS_CLEAN) | bit if bit != IS_CLEAN else w.flags[o] | bit
            return f"You {verb} the {lay.onames[o]} using the {lay.rnames[r]}."
        if verb == "use":
            i = lay.lindex[rest]
            on = w.lamp_on[i] = not w.lamp_on[i]
            return f"You turn {'on' if on else 'off'} the {rest}."
        if verb == "examine":
            if rest in lay.rindex:
                return self._describe(r)
            o = w.held
            states = [_STATE_WORD[b] for b in (IS_CLEAN, IS_HOT, IS_COOL) if w.flags[o] & b]
            if not states:
                return f"There's nothing special about {lay.onames[o]}."
            return f"This is a {', '.join(states)} {lay.onames[o]}."
        if verb == "inventory":
            if w.held < 0:
                return "You are not carrying anything."
            return f"You are carrying: a {lay.onames[w.held]}."
        # look
        if r < 0:
            return lay.intro
        return f"You are facing the {lay.rnames[r]}. {self._describe(r)}"

    def checklist(self) -> dict[str, bool]:
        """The task's sub-goals in words, each with whether it holds now."""
        w = self.world
        t = w.task
        labels = t.labels
        if t.kind == LIGHT:
            held = w.held
            return {
                labels[0]: held >= 0 and w.layout.otypes[held] == t.otype,
                labels[1]: w.lamp_on[t.lamp],
                labels[2]: w.loc == w.layout.lhost[t.lamp],
            }
        obj_loc = w.obj_loc
        is_target = t.is_target
        if t.count == 2:
            best = self._keeper_count()[1]
            return {labels[0]: best >= 1, labels[1]: best >= 2}
        need = t.need
        if not need:
            return {labels[0]: any(is_target[obj_loc[o]] for o in t.goal_objs)}
        flags = w.flags
        done = [o for o in t.goal_objs if flags[o] & need]
        return {
            labels[0]: bool(done),
            labels[1]: any(is_target[obj_loc[o]] for o in done),
        }

    def _keeper_count(self) -> tuple[int, int]:
        """For two-object tasks: the target receptacle holding most goal objects, and how many
        (ties go to the lowest index; ``(-1, 0)`` when none holds any)."""
        w = self.world
        t = w.task
        obj_loc = w.obj_loc
        is_target = t.is_target
        counts: dict[int, int] = {}
        for o in t.goal_objs:
            r = obj_loc[o]
            if is_target[r]:
                counts[r] = counts.get(r, 0) + 1
        if not counts:
            return -1, 0
        best = max(counts.values())
        return min(r for r, c in counts.items() if c == best), best

    # -- expert -----------------------------------------------------------------------------
    def _closed(self, r: int) -> bool:
        return self.world.layout.openable[r] and not self.world.is_open[r]

    def _place_target(self, pos: int, opened: int = -1) -> tuple[int, int]:
        """The target receptacle to put a ready goal object in from ``pos``, and the cost
        (go + open + put); ``opened`` is a receptacle the plan will already have opened."""
        t = self.world.task
        if t.count == 2:
            keeper, n = self._keeper_count()
            if n:
                return keeper, (pos != keeper) + (self._closed(keeper) and keeper != opened) + 1
        best = None
        for r in t.targets:
            cost = (pos != r) + (self._closed(r) and r != opened) + 1
            if best is None or cost < best[1]:
                best = (r, cost)
        return best

    def _candidate(self) -> tuple[int, int] | None:
        """The goal object to fetch next among those the agent knows the place of (cheapest
        remaining plan) and its receptacle; ``None`` when it knows of none."""
        w = self.world
        t = w.task
        lay = w.layout
        seen = w.seen
        keeper = self._keeper_count()[0] if t.count == 2 else -1
        host = lay.lhost[t.lamp] if t.kind == LIGHT else -1
        pos0 = w.loc
        best = None
        for o in t.goal_objs:
            r = w.obj_loc[o]
            # only objects in a receptacle whose contents the agent has observed (including
            # every one it put somewhere itself): the rest it has to search for
            if r < 0 or r == keeper or not seen >> r & 1:
                continue
            cost = (pos0 != r) + self._closed(r) + 1
            pos = r
            if t.kind == LIGHT:
                if seen >> host & 1:  # the lamp has been seen
                    cost += (pos != host) + (not w.lamp_on[t.lamp])
            else:
                if t.need and not w.flags[o] & t.need:
                    cost += (pos != t.appliance) + 1
                    pos = t.appliance
                cost += self._place_target(pos, opened=r)[1]
            if best is None or cost < best[0]:
                best = (cost, o, r)
        return None if best is None else (best[1], best[2])

    def _search_next(self) -> int:
        """The receptacle to look in next for a goal object: the one the agent stands at if
        it is an unobserved plausible home (it only needs opening), else the first
        unobserved one in the task's fixed search order."""
        w = self.world
        t = w.task
        seen = w.seen
        loc = w.loc
        if loc >= 0 and not seen >> loc & 1 and t.plausible >> loc & 1:
            return loc
        for r in t.search:
            if not seen >> r & 1:
                return r
        # Unreachable: a goal object the agent has not seen is in an unobserved receptacle.
        raise RuntimeError("expert: every receptacle observed and no goal object known")

    def expert_action(self) -> str:
        """The expert's command from the current state, using only what the agent could know.

        It acts on the observation history, never on hidden state: the room listing, the
        goal, which receptacles' contents the agent has observed (arrived at one that is
        open or does not open, or opened one) and what it did itself. Holds a wrong object
        -> put it down (here, or at the next receptacle to fetch from or search). Holds a
        goal object -> transform it if needed, then put it in the target (for two objects,
        the target already holding one), or, for the lamp task, go to the lamp (searching
        the receptacle types a lamp stands on if it has not been seen) and turn it on. Else,
        if it has seen a goal object still to be fetched, fetch the one with the cheapest
        remaining plan; otherwise search: go to the first unobserved receptacle in a fixed
        order that depends only on the goal and the room listing (types where the object
        spawns, openless before openable, then listing order; see :func:`_search_order`),
        open it if closed, and continue.
        """
        w = self.world
        lay = w.layout
        t = w.task
        held = w.held
        loc = w.loc
        if held >= 0 and lay.otypes[held] == t.otype:
            oname = lay.onames[held]
            if t.kind == LIGHT:
                host = lay.lhost[t.lamp]
                if not w.seen >> host & 1:
                    # lamp hosts never open: arriving shows whether the lamp is there
                    return lay.go_cmd[next(r for r in t.lamp_search if not w.seen >> r & 1)]
                if loc != host:
                    return lay.go_cmd[host]
                if not w.lamp_on[t.lamp]:
                    return lay.use_cmd[t.lamp]
                return "look"  # already solved
            if t.need and not w.flags[held] & t.need:
                app = t.appliance
                if loc != app:
                    return lay.go_cmd[app]
                return f"{_VERB[t.need]} {oname} with {lay.rnames[app]}"
            r = self._place_target(loc)[0]
            if loc != r:
                return lay.go_cmd[r]
            if self._closed(r):
                return lay.open_cmd[r]
            return f"put {oname} {lay.prep[r]} {lay.rnames[r]}"
        candidate = self._candidate()
        r = candidate[1] if candidate is not None else self._search_next()
        if held >= 0:
            # a wrong object: drop it here if we can, else where we fetch or search next
            if loc >= 0 and not self._closed(loc):
                return f"put {lay.onames[held]} {lay.prep[loc]} {lay.rnames[loc]}"
            if loc != r:
                return lay.go_cmd[r]
            return lay.open_cmd[r]
        if loc != r:
            return lay.go_cmd[r]
        if self._closed(r) or candidate is None:
            return lay.open_cmd[r]
        return f"take {lay.onames[candidate[0]]} from {lay.rnames[r]}"
