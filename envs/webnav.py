"""A WebArena-like web application: a forum, an account area and an order administration.

Pure Python, in-house, fast. Each instance generates a small site (from ``self.np_random``)
whose pages are rendered as a compact accessibility tree; the agent clicks links, types
into form fields, submits forms, goes back and answers questions. Tasks are judged like
WebArena's: a programmatic check of the final site state or of the given answer, never
of the action sequence.

The static part of an instance (pages, links, texts, precomputed command strings) lives in
an immutable :class:`Site` shared between snapshots; the mutable part (current page,
history, address, form drafts, order statuses, posted replies) is a few small lists and
tuples in :class:`World`, so ``get_state`` / ``set_state`` are exact and cheap.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from envs.contract import KNOWLEDGE_SPLIT, TextEnv

__all__ = [
    "FAMILIES",
    "NOVEL_SLOTS",
    "VARIANTS",
    "Site",
    "Task",
    "WebNavEnv",
    "World",
    "compositions",
    "goal_templates",
    "variant_names",
]

# --------------------------------------------------------------------------------------------
# Static tables
# --------------------------------------------------------------------------------------------

ASK_ADDRESS = "ask_address"
UPDATE_ADDRESS = "update_address"
ASK_ORDER = "ask_order"
CANCEL_ORDER = "cancel_order"
ASK_THREAD = "ask_thread"
POST_REPLY = "post_reply"
FAMILIES: tuple[str, ...] = (
    ASK_ADDRESS,
    UPDATE_ADDRESS,
    ASK_ORDER,
    CANCEL_ORDER,
    ASK_THREAD,
    POST_REPLY,
)
#: Families judged by the given answer (the rest by the final site state).
INFO_FAMILIES = frozenset({ASK_ADDRESS, ASK_ORDER, ASK_THREAD})

#: Address fields: (form label, word used in goals).
FIELDS: tuple[tuple[str, str], ...] = (
    ("Street", "street"),
    ("City", "city"),
    ("State", "state"),
    ("Zip", "zip code"),
)
REPLY_FIELD = "Message"

TOPICS: dict[str, tuple[str, ...]] = {
    "Travel": (
        "Cheap flights to Lisbon",
        "Packing light for a week",
        "Best time to visit Kyoto",
        "Train or bus across Spain",
    ),
    "Cooking": (
        "Sourdough starter tips",
        "Cast iron care",
        "Quick weeknight pasta",
        "Spice rack essentials",
    ),
    "Gardening": (
        "Tomatoes keep splitting",
        "Compost in winter",
        "Plants for deep shade",
        "Raised bed soil mix",
    ),
    "Photography": (
        "First prime lens",
        "Night sky settings",
        "Editing skin tones",
        "Tripod for hiking",
    ),
    "Books": (
        "Favorite science fiction",
        "Audiobooks for commutes",
        "Short story collections",
        "Beating a reading slump",
    ),
    "Gaming": (
        "Coop games for two",
        "Retro console setup",
        "Speedrun routes",
        "Board games for six",
    ),
}

#: Per family, the slots (field, attribute, reference or forum topic) a task can ask about.
SLOTS: dict[str, tuple[str, ...]] = {
    ASK_ADDRESS: tuple(f for _, f in FIELDS),
    UPDATE_ADDRESS: tuple(f for _, f in FIELDS),
    ASK_ORDER: ("status", "total", "date"),
    CANCEL_ORDER: ("number", "item"),
    ASK_THREAD: ("replies", "author", "forum"),
    POST_REPLY: tuple(TOPICS),
}
#: The held-out compositions: generated only on the test split. Each held-out field or
#: attribute is still seen in train, in another family or on the pages.
TEST_SLOTS: dict[str, tuple[str, ...]] = {
    ASK_ADDRESS: ("zip code",),
    UPDATE_ADDRESS: ("state",),
    ASK_ORDER: ("total",),
    CANCEL_ORDER: ("item",),
    ASK_THREAD: ("author",),
    POST_REPLY: ("Photography", "Gaming"),
}

#: The knowledge split ``novel``'s slots: orders named by an item they contain (a product,
#: which no train goal and no train expert command names; train shows products only on
#: order pages). Asking is new; cancelling by item is the test split's too.
NOVEL_SLOTS: dict[str, tuple[str, ...]] = {
    ASK_ORDER: ("status by item", "date by item", "total by item"),
    CANCEL_ORDER: ("item",),
}

Composition = tuple[str, str]  # (task family, slot)


@dataclass(frozen=True)
class Variant:
    """A site variant: the site name and the labels of its navigation, links and buttons."""

    name: str
    site: str
    home: str
    forums: str
    account: str
    orders: str
    edit: str
    save: str
    post: str
    cancel: str
    test_only: bool = False


#: Site variants. ``test_only`` variants are generated only on the test split.
VARIANTS: tuple[Variant, ...] = (
    Variant(
        "classic",
        "Greenfield",
        "Home",
        "Forums",
        "Account",
        "Orders",
        "Edit address",
        "Save",
        "Post reply",
        "Cancel order",
    ),
    Variant(
        "portal",
        "Harbor Hub",
        "Start",
        "Community",
        "Profile",
        "Purchases",
        "Change address",
        "Update",
        "Send reply",
        "Cancel this order",
    ),
    Variant(
        "modern",
        "Northwind",
        "Dashboard",
        "Discussions",
        "My Account",
        "Order History",
        "Update address",
        "Save changes",
        "Post",
        "Request cancellation",
        test_only=True,
    ),
)

FIRST_NAMES = ("Ann", "Ben", "Carla", "Dev", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jon")
LAST_NAMES = ("Lee", "Park", "Moreno", "Shah", "Novak", "Berg", "Costa", "Reyes", "Okafor")
USERS = (
    "alice",
    "bob",
    "chen",
    "dana",
    "eli",
    "fatima",
    "gus",
    "hana",
    "ivan",
    "jules",
    "kofi",
    "lena",
    "marco",
    "nina",
)
STREET_NAMES = ("Oak", "Maple", "Pine", "Cedar", "Elm", "Birch", "Lake", "Hill", "River", "Mill")
STREET_KINDS = ("St", "Ave", "Rd", "Ln")
CITIES = (
    "Austin",
    "Boston",
    "Denver",
    "Portland",
    "Seattle",
    "Chicago",
    "Phoenix",
    "Atlanta",
    "Miami",
    "Dallas",
    "Madison",
    "Tucson",
    "Omaha",
    "Raleigh",
)
STATES = (
    "Texas",
    "Oregon",
    "Colorado",
    "Ohio",
    "Maine",
    "Utah",
    "Georgia",
    "Florida",
    "Nevada",
    "Iowa",
    "Kansas",
    "Idaho",
    "Vermont",
    "Arizona",
)
#: Replies other users have written (thread content).
REPLY_TEXTS = (
    "Great question.",
    "Same here.",
    "Good point.",
    "Works for me.",
    "Any updates?",
    "Following this.",
    "Try the other way.",
)
#: Replies the agent can type (four per instance are offered).
MESSAGES = (
    "Thanks for sharing!",
    "I have the same problem.",
    "Great tip, it worked for me.",
    "Can you post a photo?",
    "I would try another approach.",
    "Count me in!",
    "This helped a lot.",
)
#: Products and their prices in cents.
PRODUCTS: dict[str, int] = {
    "blue mug": 1250,
    "desk lamp": 3499,
    "wool socks": 899,
    "phone case": 1599,
    "yoga mat": 2750,
    "water bottle": 1800,
    "notebook": 450,
    "usb cable": 999,
    "backpack": 5400,
    "coffee beans": 1375,
    "tea kettle": 3200,
    "sunglasses": 2499,
    "headphones": 7900,
    "plant pot": 1125,
    "candle set": 1950,
}
_PRODUCT_NAMES = tuple(PRODUCTS)
STATUSES = ("Pending", "Processing", "Shipped", "Delivered", "Cancelled")
CANCELLABLE = frozenset({"Pending", "Processing"})

_GOALS: dict[tuple[str, str], tuple[str, ...]] = {
    (ASK_ADDRESS, ""): (
        "What {f} is in my shipping address?",
        "Find the {f} of my shipping address.",
    ),
    (UPDATE_ADDRESS, ""): (
        "Change the {f} in my shipping address to {v}.",
        "Update my shipping address so that the {f} is {v}.",
    ),
    (ASK_ORDER, "status"): (
        "What is the status of order #{n}?",
        "Check the status of my order #{n}.",
    ),
    (ASK_ORDER, "total"): (
        "What is the total of order #{n}?",
        "How much did order #{n} cost in total?",
    ),
    (ASK_ORDER, "date"): ("On what date was order #{n} placed?", "When did I place order #{n}?"),
    (ASK_ORDER, "status by item"): (
        "What is the status of my order that contains the {i}?",
        "Check the status of the order in which I bought the {i}.",
    ),
    (ASK_ORDER, "date by item"): (
        "On what date did I order the {i}?",
        "When did I place the order that contains the {i}?",
    ),
    (ASK_ORDER, "total by item"): (
        "What is the total of my order that contains the {i}?",
        "How much did the order with the {i} cost in total?",
    ),
    (CANCEL_ORDER, "number"): ("Cancel order #{n}.", "Please cancel my order #{n}."),
    (CANCEL_ORDER, "item"): (
        "Cancel my order that contains the {i}.",
        "Cancel the order in which I bought the {i}.",
    ),
    (ASK_THREAD, "replies"): (
        "How many replies does the thread '{t}' have?",
        "Count the replies in the thread '{t}'.",
    ),
    (ASK_THREAD, "author"): (
        "Who started the thread '{t}'?",
        "Which user posted the thread '{t}'?",
    ),
    (ASK_THREAD, "forum"): (
        "In which forum is the thread '{t}'?",
        "Which forum contains the thread '{t}'?",
    ),
    (POST_REPLY, ""): (
        "Post the reply '{m}' in the thread '{t}'.",
        "Reply '{m}' to the thread '{t}'.",
    ),
}


def compositions(split: str) -> tuple[Composition, ...]:
    """The ``(task family, slot)`` compositions ``split`` generates (fixed; train and test
    are disjoint; the knowledge split ``novel`` names orders by a product)."""
    if split not in ("train", "test", "novel"):
        raise ValueError(f"unknown split {split!r}; expected one of train, test, novel")
    if split == "novel":
        return tuple((fam, slot) for fam, slots in NOVEL_SLOTS.items() for slot in slots)
    return tuple(
        (fam, slot)
        for fam in FAMILIES
        for slot in SLOTS[fam]
        if (slot in TEST_SLOTS[fam]) == (split == "test")
    )


def goal_templates(comp: Composition) -> tuple[str, ...]:
    """The goal phrasings of a composition, with ``{f}`` (field), ``{v}`` (new value),
    ``{n}`` (order number), ``{i}`` (item), ``{t}`` (thread title), ``{m}`` (message)."""
    family, slot = comp
    if slot not in SLOTS.get(family, ()) + NOVEL_SLOTS.get(family, ()):
        raise ValueError(f"unknown composition {comp!r}")
    key = "" if family in (ASK_ADDRESS, UPDATE_ADDRESS, POST_REPLY) else slot
    return _GOALS[(family, key)]


def variant_names(split: str) -> tuple[str, ...]:
    """The site variants ``split`` can generate (the test split adds test-only variants)."""
    compositions(split)
    return tuple(v.name for v in VARIANTS if split == "test" or not v.test_only)


_SLOTS_BY_SPLIT = {
    split: {fam: tuple(s for f, s in compositions(split) if f == fam) for fam in FAMILIES}
    for split in ("train", "test", "novel")
}
#: The families a split draws from (train and test: all, drawn as before the novel split).
_FAMILIES_BY_SPLIT = {
    split: tuple(f for f in FAMILIES if split != "novel" or f in NOVEL_SLOTS)
    for split in _SLOTS_BY_SPLIT
}
#: The novel split's sites are the train split's variants: only the goals' names are new.
_VARIANTS_BY_SPLIT = {
    split: tuple(v for v in VARIANTS if split == "test" or not v.test_only)
    for split in ("train", "test", "novel")
}

# --------------------------------------------------------------------------------------------
# Instance state
# --------------------------------------------------------------------------------------------

# Page kinds. Page ids: 0 home, 1 forum index, 2 account, 3 address form, 4 order list,
# then one page per forum, per thread and per order.
HOME, FORUMS, ACCOUNT, EDIT, ORDERS, FORUM, THREAD, ORDER = range(8)


@dataclass(frozen=True, eq=False)
class Thread:
    """A forum thread: title, forum index, author and the replies others wrote."""

    title: str
    forum: int
    author: str
    replies: tuple[tuple[str, str], ...]  # (author, text)


@dataclass(frozen=True, eq=False)
class Order:
    """An order of the signed-in user."""

    number: str  # "#1042"
    date: str
    items: tuple[str, ...]
    total: str


@dataclass(frozen=True, eq=False)
class Page:
    """One page: its kind, the entity it shows, its links and its precomputed text."""

    kind: int
    ref: int  # index of the forum / thread / order shown (-1: none)
    chain: tuple[int, ...]  # pages from the section index down to this one
    clicks: tuple[str, ...]  # click commands of its links (navigation bar first)
    click_to: dict[int, str]  # target page -> click command
    link_target: dict[str, int]  # link label -> target page
    head: str  # rendered navigation bar, heading and static elements


@dataclass(frozen=True, eq=False)
class Site:
    """The immutable part of an instance, with page text and commands precomputed.

    Shared (not copied) by snapshots: it never changes after generation.
    """

    variant: Variant
    user: str
    username: str
    forums: tuple[str, ...]
    threads: tuple[Thread, ...]
    orders: tuple[Order, ...]
    pages: tuple[Page, ...]
    field_cmds: tuple[str, ...]  # type commands of the address form
    message_cmds: tuple[str, ...]  # type commands of the reply box
    field_index: dict[str, int]  # form label -> address field index

    def __deepcopy__(self, memo: dict) -> Site:
        return self


@dataclass(frozen=True, eq=False)
class Task:
    """The immutable goal: family, slot, the page where it is done and its target."""

    family: str
    slot: str
    goal: str
    page: int  # page where the task is completed
    index: int  # address field, order or thread index
    value: str  # value to type (update / reply); "" for other families
    labels: tuple[str, ...]  # checklist keys; the last one is the success condition

    @property
    def by_item(self) -> bool:
        """Whether the goal names its order by an item (which only the order's page shows)."""
        return self.slot == "item" or self.slot.endswith(" by item")

    def __deepcopy__(self, memo: dict) -> Task:
        return self


@dataclass(eq=False, slots=True)
class World:
    """All mutable episode state."""

    site: Site
    task: Task
    page: int
    history: tuple[int, ...]  # pages to go back to (browser history)
    address: list[str]  # saved street, city, state, zip
    draft: list[str]  # the address form's values while on it
    message: str  # the reply box's value while on a thread
    status: list[str]  # per order
    posted: tuple[tuple[int, str], ...]  # (thread, text) replies the user posted
    visited: int  # bitmask of pages the agent has been on
    answered: bool  # answered correctly
    failed: bool  # wrong answer or an unrequested irreversible action

    def __deepcopy__(self, memo: dict) -> World:
        # Site and Task are immutable and shared; tuples are immutable; lists are flat str.
        return World(
            self.site,
            self.task,
            self.page,
            self.history,
            self.address[:],
            self.draft[:],
            self.message,
            self.status[:],
            self.posted,
            self.visited,
            self.answered,
            self.failed,
        )


def _q(label: str) -> str:
    return f"'{label}'"


def _build_pages(
    v: Variant, user: str, forums: list[str], threads: list[Thread], orders: list[Order]
) -> tuple[Page, ...]:
    """Every page of the site with its links and the static part of its text."""
    n_f, n_t = len(forums), len(threads)
    forum_page = [5 + i for i in range(n_f)]
    thread_page = [5 + n_f + j for j in range(n_t)]
    order_page = [5 + n_f + n_t + k for k in range(len(orders))]
    nav = ((v.home, HOME), (v.forums, FORUMS), (v.account, ACCOUNT), (v.orders, ORDERS))
    nav_line = "  ".join(f"link {_q(label)}" for label, _ in nav)

    def page(kind: int, ref: int, chain: tuple[int, ...], heading: str, links, lines=()) -> Page:
        all_links = (*nav, *links)
        clicks = tuple(f"click[{label}]" for label, _ in all_links)
        head = "\n".join(
            (
                nav_line,
                f"heading {_q(heading)}",
                *(f"link {_q(label)}" for label, _ in links),
                *(f"text {_q(line)}" for line in lines),
            )
        )
        return Page(
            kind,
            ref,
            chain,
            clicks,
            {target: c for (_, target), c in zip(all_links, clicks, strict=True)},
            {label: target for label, target in all_links},
            head,
        )

    pages = [
        page(HOME, -1, (HOME,), f"Welcome to {v.site}", (), (f"Signed in as {user}",)),
        page(FORUMS, -1, (FORUMS,), v.forums, tuple(zip(forums, forum_page, strict=True))),
        page(ACCOUNT, -1, (ACCOUNT,), v.account, ((v.edit, EDIT),)),
        page(EDIT, -1, (ACCOUNT, EDIT), v.edit, ()),
        page(
            ORDERS,
            -1,
            (ORDERS,),
            v.orders,
            tuple((o.number, p) for o, p in zip(orders, order_page, strict=True)),
        ),
    ]
    for i, name in enumerate(forums):
        links = tuple((t.title, thread_page[j]) for j, t in enumerate(threads) if t.forum == i)
        pages.append(page(FORUM, i, (FORUMS, forum_page[i]), name, links))
    for j, t in enumerate(threads):
        lines = (f"Forum: {forums[t.forum]}", f"Started by: {t.author}")
        pages.append(
            page(THREAD, j, (FORUMS, forum_page[t.forum], thread_page[j]), t.title, (), lines)
        )
    for k, o in enumerate(orders):
        lines = (f"Date: {o.date}", f"Items: {', '.join(o.items)}", f"Total: {o.total}")
        pages.append(page(ORDER, k, (ORDERS, order_page[k]), f"Order {o.number}", (), lines))
    return tuple(pages)


# --------------------------------------------------------------------------------------------
# The env
# --------------------------------------------------------------------------------------------


class WebNavEnv(TextEnv):
    """WebArena-like navigation of a generated multi-page web application.

    ## Description

    Each instance is a small site of about 20-30 pages: a home page; a forum index with
    three forums (topics such as Travel or Cooking), each with 2-3 threads (title, author,
    replies and a reply box); an account page (name and shipping address) with an
    address form; and an order list with 4-5 orders (date, status, items, total, and a
    cancel button while the order is Pending or Processing). A navigation bar on every
    page links to the home page and the three sections. Six task families:

    * ``ask_address``: "What city is in my shipping address?" (answer)
    * ``update_address``: "Change the city in my shipping address to Boston." (form)
    * ``ask_order``: "What is the status of order #1042?" (status, total or date)
    * ``cancel_order``: "Cancel order #1042." / "Cancel my order that contains the yoga mat."
    * ``ask_thread``: "How many replies does the thread 'X' have?" (replies, author, forum)
    * ``post_reply``: "Post the reply 'Count me in!' in the thread 'X'." (form)

    Judged like WebArena, by a programmatic check of the final state or of the answer,
    never of the action sequence: an information task succeeds when ``answer[...]`` gives
    the value the site holds now; a state-changing task succeeds on the step the site
    state matches (address field saved, reply posted in the thread, order cancelled).

    Splits hold out compositions: every ``(family, slot)`` pair is fixed to train or test
    (see :func:`compositions`; test holds asking for the zip code, updating the state,
    asking for an order's total, cancelling an order named by an item, asking who started
    a thread, and replying in Photography or Gaming threads), and the ``modern`` site
    variant (other navigation, link and button labels) occurs only on the test split.

    The knowledge split ``novel`` (``split="novel"``) is a second test split, the positive
    control of learning from outcomes: its goals name what no goal of the train split and
    no command of its expert's path names, but what its observations show: the 15
    products (:data:`PRODUCTS`, the split's ``knowledge_entities``). Each goal names an
    order by an item it contains (:data:`NOVEL_SLOTS`: ask for its status, its date or its
    total, or cancel it; four compositions) on a train-variant site. On the train split
    products show only on an order's own page ("Items: yoga mat, usb cable"), which the
    order list links to: one branched click off the expert's path through the list (every
    order task passes it) shows an order's items; each product is seen so in about a fifth
    of the train instances. What a novel goal needs that
    demonstrations never show is which page lists which item: that an order's page, not
    the list, shows what it contains, so an order named by an item is found by opening
    orders. The train and test splits are unchanged by it.

    The expert (:meth:`expert_action`) acts on what the agent can know: the goal, the
    site's navigation (which section an address, an order number or a thread title is
    in; a thread's title names its forum's topic) and what the pages it has opened showed.
    From any page it clicks the link to the deepest page on the way to the task's page
    (the navigation bar always leads into the right section), then types the target
    value, submits, cancels or answers with the value the page shows. An order named by
    an item, whose items show only on the order's own page, it searches for: it opens the
    orders in the list's order, skipping those already opened, until it has seen the one
    with the item. It solves every instance from any reachable state, in 2-5 steps from
    reset on the train split (3.5 on average) and 2-11 on the test split (4.0; 6.3 for
    the cancellations by item, which only the test split holds).

    ## Action Space

    A text command (``str``); ``info["admissible_actions"]`` lists the ones valid now (at
    most 22 on any page; the address form has the most):

    * ``click[LABEL]``: a link on the page (navigation bar first), or the order page's
      cancel button.
    * ``type[FIELD][VALUE]``: fill a text box of the page's form. Candidate values are
      fixed per instance: for each address field its current value and three others of its
      kind (the task's target value among them when the task updates that field); for the
      reply box four messages (the task's message among them for a reply task).
    * ``submit``: press the page's form button (save the address, post the reply).
    * ``go_back``: the previous page in the browser history (form drafts are discarded).
    * ``answer[VALUE]``: answer the question and end the episode. Candidates are the values
      shown as text on the current page (address values, order status/date/total, a
      thread's forum, author, reply count and reply authors), never the answer alone.

    No free-text commands (``free_text_commands == ()``; see :mod:`envs.contract`), unlike
    WebArena's ``type`` and ``stop``, and unlike Shop's search: typed values and answers
    stay the menus above on purpose. Every value a task needs is offered (the update's
    target value, the requested reply, the answer on the page that shows it), and each is
    copied from the goal or the page, not composed, so free text could add only values
    that are wrong or that only look right (a mistyped reply, which fails the task once
    posted). ``type[City][Atlantis]`` is therefore an invalid step, as any command not in
    the list.

    ## Observation Space

    ``{"goal": str, "text": str}``: the task and the current page as an accessibility tree,
    one element per line (the navigation bar on one line), after a line of feedback::

        link 'Home'  link 'Forums'  link 'Account'  link 'Orders'
        heading 'Edit address'
        textbox 'Street' value='12 Oak St'
        textbox 'City' value='Austin'
        ...
        button 'Save'

    ## Starting State

    The agent is on the home page with an empty history; no task is solved at reset.

    ## Reward

    1.0 on the step the task is completed, else 0.0.

    ## Episode End

    ``terminated`` on success, and on failure: any answer that is wrong (including any
    answer to a state-changing task), or an irreversible action the task did not ask for
    (cancelling another order, posting a reply other than the requested one). Saving a
    wrong address is reversible and does not end the episode. Never truncated by the env
    itself: the registered ``max_episode_steps`` (30) truncates.

    ## Info

    ``admissible_actions`` (list[str]), ``invalid_action`` (bool), ``success`` (bool),
    ``checklist`` (dict[str, bool]); the last item is the success condition, the earlier
    ones are progress, e.g. ``{"visited the address form": True, "City field = 'Boston'":
    True, "address saved": False}`` or ``{"visited order #1042": True, "answered
    correctly": False}``.

    ## Arguments

    * ``split``: ``"train"``, ``"test"`` or ``"novel"`` (the knowledge split).
    * ``render_mode``: ``None``, ``"ansi"`` or ``"human"``.

    ## Version History

    * v0: initial release. Later in v0 (issue 16): the expert searches the orders for one
      named by an item instead of going straight to it (it knew which order held the
      item before the agent could); every other task, and so every train-split
      demonstration, is unchanged. Then the knowledge split ``novel`` (train and test
      instances unchanged).
    """

    knowledge_split = KNOWLEDGE_SPLIT
    knowledge_entities = tuple(PRODUCTS)

    def __init__(self, split: str = "train", render_mode: str | None = None) -> None:
        super().__init__(split, render_mode)
        self.world: World | None = None

    # -- generation -------------------------------------------------------------------------
    def _generate(self) -> tuple[str, str]:
        rng = self.np_random

        def pick(seq: tuple | list) -> Any:
            return seq[int(rng.integers(len(seq)))]

        def sample(seq: tuple | list, k: int) -> list:
            return [seq[int(i)] for i in rng.permutation(len(seq))[:k]]

        v = pick(_VARIANTS_BY_SPLIT[self.split])
        family = pick(_FAMILIES_BY_SPLIT[self.split])
        slot = pick(_SLOTS_BY_SPLIT[self.split][family])
        first = pick(FIRST_NAMES)
        user = f"{first} {pick(LAST_NAMES)}"
        username = f"{first.lower()}{int(rng.integers(10, 100))}"

        # Address fields: four candidate values each; the first one is the saved value,
        # the second the target of an update task on that field.
        streets = [
            f"{int(n)} {name} {pick(STREET_KINDS)}"
            for n, name in zip(rng.integers(1, 300, size=4), sample(STREET_NAMES, 4), strict=True)
        ]
        zips = [str(10000 + 22000 * int(b) + int(rng.integers(22000))) for b in rng.permutation(4)]
        candidates = (streets, sample(CITIES, 4), sample(STATES, 4), zips)
        address = [c[0] for c in candidates]
        messages = sample(MESSAGES, 4)

        # Forums and threads.
        topics = list(TOPICS)
        if family == POST_REPLY:
            others = [t for t in topics if t != slot]
            forums = [slot, *sample(others, 2)]
            forums = [forums[int(i)] for i in rng.permutation(3)]
        else:
            forums = sample(topics, 3)
        threads: list[Thread] = []
        for i, topic in enumerate(forums):
            for title in sample(TOPICS[topic], int(rng.integers(2, 4))):
                n = int(rng.integers(0, 5))
                authors = rng.integers(len(USERS), size=n + 1)
                texts = rng.integers(len(REPLY_TEXTS), size=n)
                replies = tuple(
                    (USERS[int(a)], REPLY_TEXTS[int(t)])
                    for a, t in zip(authors[1:], texts, strict=True)
                )
                threads.append(Thread(title, i, USERS[int(authors[0])], replies))

        # Orders: numbers and dates increase together; no product is in two orders, so an
        # item names its order. Listed most recent first.
        n_orders = int(rng.integers(4, 6))
        numbers = 1000 + int(rng.integers(0, 8000)) + rng.integers(1, 60, size=n_orders).cumsum()
        days = rng.integers(3, 40, size=n_orders).cumsum()
        sizes = rng.integers(1, 4, size=n_orders)
        products = sample(_PRODUCT_NAMES, int(sizes.sum()))
        statuses = [STATUSES[int(s)] for s in rng.integers(len(STATUSES), size=n_orders)]
        orders: list[Order] = []
        start = 0
        for k in range(n_orders):
            items = tuple(products[start : start + int(sizes[k])])
            start += int(sizes[k])
            date = datetime.date(2024, 1, 1) + datetime.timedelta(days=int(days[k]))
            total = sum(PRODUCTS[p] for p in items)
            orders.append(
                Order(
                    f"#{int(numbers[k])}",
                    f"{date:%b} {date.day}, 2024",
                    items,
                    f"${total / 100:.2f}",
                )
            )
        orders.reverse()
        statuses.reverse()

        # The task's target.
        n_f, n_t = len(forums), len(threads)
        if family in (ASK_ADDRESS, UPDATE_ADDRESS):
            index = next(i for i, (_, word) in enumerate(FIELDS) if word == slot)
        elif family in (ASK_ORDER, CANCEL_ORDER):
            index = int(rng.integers(n_orders))
            if family == CANCEL_ORDER:
                statuses[index] = pick(("Pending", "Processing"))
        elif family == POST_REPLY:
            index = pick([j for j, t in enumerate(threads) if forums[t.forum] == slot])
        else:
            index = int(rng.integers(n_t))
        phrasing = _GOALS[
            (family, "" if family in (ASK_ADDRESS, UPDATE_ADDRESS, POST_REPLY) else slot)
        ]
        template = pick(phrasing)
        value = ""
        if family in (ASK_ADDRESS, UPDATE_ADDRESS):
            page = EDIT if family == UPDATE_ADDRESS else ACCOUNT
            value = candidates[index][1] if family == UPDATE_ADDRESS else ""
            goal = template.format(f=slot, v=value)
            label = FIELDS[index][0]
            if family == UPDATE_ADDRESS:
                labels = (
                    "visited the address form",
                    f"{label} field = {_q(value)}",
                    "address saved",
                )
            else:
                labels = ("visited the account page", "answered correctly")
        elif family in (ASK_ORDER, CANCEL_ORDER):
            page = 5 + n_f + n_t + index
            order = orders[index]
            goal = template.format(n=order.number[1:], i=order.items[0])
            last = (
                "answered correctly" if family == ASK_ORDER else f"order {order.number} cancelled"
            )
            labels = (f"visited order {order.number}", last)
        else:
            page = 5 + n_f + index
            title = threads[index].title
            if family == POST_REPLY:
                value = messages[0]
                labels = (f"visited thread {_q(title)}", "reply typed", "reply posted")
            else:
                labels = (f"visited thread {_q(title)}", "answered correctly")
            goal = template.format(t=title, m=value)
        task = Task(family, slot, goal, page, index, value, labels)

        field_cmds = tuple(
            f"type[{label}][{val}]"
            for (label, _), vals in zip(FIELDS, candidates, strict=True)
            for val in sorted(vals)
        )
        site = Site(
            variant=v,
            user=user,
            username=username,
            forums=tuple(forums),
            threads=tuple(threads),
            orders=tuple(orders),
            pages=_build_pages(v, user, forums, threads, orders),
            field_cmds=field_cmds,
            message_cmds=tuple(f"type[{REPLY_FIELD}][{m}]" for m in sorted(messages)),
            field_index={label: i for i, (label, _) in enumerate(FIELDS)},
        )
        self.world = World(
            site=site,
            task=task,
            page=HOME,
            history=(),
            address=address,
            draft=address[:],
            message="",
            status=statuses,
            posted=(),
            visited=1 << HOME,
            answered=False,
            failed=False,
        )
        return goal, self._render()

    # -- pages ------------------------------------------------------------------------------
    def _values(self) -> list[str]:
        """The values the current page shows as text: the candidates of ``answer[...]``."""
        w = self.world
        site = w.site
        p = site.pages[w.page]
        if p.kind == ACCOUNT:
            return [site.user, *w.address]
        if p.kind == ORDER:
            o = site.orders[p.ref]
            return [o.date, w.status[p.ref], o.total]
        if p.kind == THREAD:
            t = site.threads[p.ref]
            authors = [a for a, _ in t.replies]
            authors += [site.username for j, _ in w.posted if j == p.ref]
            return [site.forums[t.forum], t.author, str(len(authors)), *authors]
        return []

    def _render(self) -> str:
        """The current page as an accessibility tree (static head plus the dynamic part)."""
        w = self.world
        site = w.site
        p = site.pages[w.page]
        kind = p.kind
        if kind == ACCOUNT:
            lines = [f"text 'Name: {site.user}'"]
            lines += [
                f"text '{label}: {val}'" for (label, _), val in zip(FIELDS, w.address, strict=True)
            ]
            return f"{p.head}\n" + "\n".join(lines)
        if kind == EDIT:
            lines = [
                f"textbox '{label}' value='{val}'"
                for (label, _), val in zip(FIELDS, w.draft, strict=True)
            ]
            return f"{p.head}\n" + "\n".join(lines) + f"\nbutton {_q(site.variant.save)}"
        if kind == ORDER:
            status = w.status[p.ref]
            text = f"{p.head}\ntext 'Status: {status}'"
            if status in CANCELLABLE:
                text += f"\nbutton {_q(site.variant.cancel)}"
            return text
        if kind == THREAD:
            t = site.threads[p.ref]
            replies = [*t.replies, *((site.username, m) for j, m in w.posted if j == p.ref)]
            lines = [f"text 'Replies: {len(replies)}'"]
            lines += [f"text '{a}: {m}'" for a, m in replies]
            lines.append(f"textbox '{REPLY_FIELD}' value='{w.message}'")
            lines.append(f"button {_q(site.variant.post)}")
            return f"{p.head}\n" + "\n".join(lines)
        return p.head

    def _arrive(self, page: int) -> None:
        w = self.world
        w.page = page
        w.visited |= 1 << page
        # forms start from the saved state on every visit, as a reloaded page does
        kind = w.site.pages[page].kind
        if kind == EDIT:
            w.draft = w.address[:]
        elif kind == THREAD:
            w.message = ""

    # -- rules ------------------------------------------------------------------------------
    def admissible_actions(self) -> list[str]:
        """Clicks (navigation bar, then page links), form commands, go_back, answers."""
        w = self.world
        site = w.site
        p = site.pages[w.page]
        acts = list(p.clicks)
        if p.kind == EDIT:
            acts += site.field_cmds
            acts.append("submit")
        elif p.kind == THREAD:
            acts += site.message_cmds
            acts.append("submit")
        elif p.kind == ORDER and w.status[p.ref] in CANCELLABLE:
            acts.append(f"click[{site.variant.cancel}]")
        if w.history:
            acts.append("go_back")
        acts += [f"answer[{val}]" for val in dict.fromkeys(self._values())]
        return acts

    def _execute(self, command: str) -> str:
        # Only admissible commands reach here, so the parse can trust the command's shape.
        w = self.world
        site = w.site
        task = w.task
        p = site.pages[w.page]
        if command == "go_back":
            page = w.history[-1]
            w.history = w.history[:-1]
            self._arrive(page)
            return self._render()
        if command == "submit":
            if p.kind == EDIT:
                w.address = w.draft[:]
                w.history += (w.page,)
                self._arrive(ACCOUNT)
                return "Your address was saved.\n" + self._render()
            if not w.message:
                return "The reply is empty.\n" + self._render()
            w.posted += ((p.ref, w.message),)
            if not (task.family == POST_REPLY and (p.ref, w.message) == (task.index, task.value)):
                w.failed = True  # a post cannot be taken back
            w.message = ""
            return "Your reply was posted.\n" + self._render()
        verb, _, rest = command.partition("[")
        if verb == "click":
            label = rest[:-1]
            if p.kind == ORDER and label == site.variant.cancel:
                w.status[p.ref] = "Cancelled"
                if not (task.family == CANCEL_ORDER and p.ref == task.index):
                    w.failed = True  # a cancellation cannot be taken back
                return f"Order {site.orders[p.ref].number} was cancelled.\n" + self._render()
            w.history += (w.page,)
            self._arrive(p.link_target[label])
            return self._render()
        if verb == "type":
            field, _, val = rest[:-1].partition("][")
            if field == REPLY_FIELD:
                w.message = val
            else:
                w.draft[site.field_index[field]] = val
            return f"You typed {_q(val)} into {_q(field)}.\n" + self._render()
        # answer
        val = rest[:-1]
        if task.family in INFO_FAMILIES and val == self._truth():
            w.answered = True
        else:
            w.failed = True
        return f"You answered {_q(val)}."

    def _truth(self) -> str:
        """The right answer of an information task, from the site as it is now."""
        w = self.world
        t = w.task
        if t.family == ASK_ADDRESS:
            return w.address[t.index]
        if t.family == ASK_ORDER:
            o = w.site.orders[t.index]
            # "status", or "status by item" (the knowledge split)
            what = t.slot.partition(" ")[0]
            return {"status": w.status[t.index], "total": o.total, "date": o.date}[what]
        thread = w.site.threads[t.index]
        if t.slot == "author":
            return thread.author
        if t.slot == "forum":
            return w.site.forums[thread.forum]
        return str(len(thread.replies) + sum(j == t.index for j, _ in w.posted))

    def checklist(self) -> dict[str, bool]:
        """Progress sub-goals in words; the last item is the task's success condition."""
        w = self.world
        t = w.task
        labels = t.labels
        visited = bool(w.visited >> t.page & 1)
        if t.family in INFO_FAMILIES:
            return {labels[0]: visited, labels[1]: w.answered}
        if t.family == UPDATE_ADDRESS:
            saved = w.address[t.index] == t.value
            typed = saved or (w.page == EDIT and w.draft[t.index] == t.value)
            return {labels[0]: visited, labels[1]: typed, labels[2]: saved}
        if t.family == CANCEL_ORDER:
            return {labels[0]: visited, labels[1]: w.status[t.index] == "Cancelled"}
        posted = (t.index, t.value) in w.posted
        typed = posted or (w.page == t.page and w.message == t.value)
        return {labels[0]: visited, labels[1]: typed, labels[2]: posted}

    def _succeeded(self) -> bool:
        # Judged on the final state or answer alone (WebArena), not on the progress items:
        # a right answer read off another page that shows the same value also counts.
        return list(self.checklist().values())[-1]

    def _failed(self) -> bool:
        return self.world.failed

    # -- expert -----------------------------------------------------------------------------
    def _expert_page(self) -> int:
        """The page the expert heads for: the task's page, except for an order named by an
        item the agent has not seen yet (an order's items show only on its own page):
        then the first order in the list whose page the agent has not opened."""
        w = self.world
        t = w.task
        if not t.by_item or w.visited >> t.page & 1:
            return t.page
        first = 5 + len(w.site.forums) + len(w.site.threads)
        return next(
            first + k for k in range(len(w.site.orders)) if not w.visited >> (first + k) & 1
        )

    def expert_action(self) -> str:
        """The expert's command from the current state, using only what the agent could know.

        It knows what the pages it has opened show and the site's navigation (the section
        a goal's address, order number or thread title belongs to is on the way to it), not
        what the agent has not seen: an order named by an item ("the order that contains the
        yoga mat") is searched for, opening the orders in the list's order and skipping
        those already opened (the pages the agent has been on, ``World.visited``), until
        the order with the item has been seen. Not on the page it heads for: click the link
        to the deepest page of that page's chain (section index, forum, thread / order /
        form) that the current page links to; the navigation bar always links the section
        index. On the task's page: answer with the value shown, type the target value if
        the field does not hold it yet, submit, or cancel.
        """
        w = self.world
        site = w.site
        t = w.task
        here = site.pages[w.page]
        page = self._expert_page()
        if w.page != page:
            for target in reversed(site.pages[page].chain):
                if target in here.click_to:
                    return here.click_to[target]
        if t.family in INFO_FAMILIES:
            return f"answer[{self._truth()}]"
        if t.family == CANCEL_ORDER:
            return f"click[{site.variant.cancel}]"
        if t.family == UPDATE_ADDRESS:
            if w.draft[t.index] != t.value:
                return f"type[{FIELDS[t.index][0]}][{t.value}]"
            return "submit"
        if w.message != t.value:
            return f"type[{REPLY_FIELD}][{t.value}]"
        return "submit"
