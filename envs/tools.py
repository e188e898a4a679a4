"""A tau-bench-retail-like tool-use setting: a retail database, domain rules, a scripted user.

Pure Python, in-house, fast. Each instance generates a small retail database (customers,
orders, products with variants) into an immutable :class:`Database` shared between
snapshots; the mutable part (the order changes and the customer's address, plus what the
agent has asked and seen) is a few short lists in :class:`World`, so ``get_state`` /
``set_state`` are exact and cheap.
"""

from __future__ import annotations

import ast
import re
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.contract import FREE_TEXT_MAX_LENGTH, TextEnv

__all__ = [
    "KINDS",
    "PRODUCTS",
    "TOOLS",
    "Database",
    "Task",
    "ToolsEnv",
    "World",
    "compositions",
]

# --------------------------------------------------------------------------------------------
# Static tables
# --------------------------------------------------------------------------------------------

CANCEL, RETURN, EXCHANGE = "cancel", "return", "exchange"
ADDRESS, TOTAL, STATUS, TRANSFER = "address", "total", "status", "transfer"
#: Task kinds. Order kinds are about one order containing a product of the composition.
KINDS: tuple[str, ...] = (CANCEL, RETURN, EXCHANGE, ADDRESS, TOTAL, STATUS, TRANSFER)
ORDER_KINDS = frozenset((CANCEL, RETURN, EXCHANGE, TOTAL, STATUS))

#: Product types: (option name, values) per option dimension, and a base price in dollars.
PRODUCTS: dict[str, tuple[tuple[tuple[str, tuple[str, ...]], ...], int]] = {
    "t-shirt": ((("color", ("red", "blue", "black", "white")), ("size", ("S", "M", "L"))), 20),
    "backpack": ((("color", ("black", "grey", "green")), ("capacity", ("20L", "30L"))), 55),
    "water bottle": (
        (("capacity", ("500ml", "750ml", "1000ml")), ("material", ("steel", "plastic"))),
        18,
    ),
    "headphones": ((("type", ("over-ear", "in-ear")), ("color", ("black", "white", "blue"))), 90),
    "sneakers": ((("size", ("8", "9", "10", "11")), ("color", ("white", "black"))), 75),
    "desk lamp": ((("color", ("black", "white", "silver")), ("power", ("USB", "AC"))), 35),
    "coffee maker": (
        (("capacity", ("4 cups", "8 cups", "12 cups")), ("type", ("drip", "pod"))),
        80,
    ),
    "yoga mat": (
        (("thickness", ("4mm", "6mm", "8mm")), ("color", ("purple", "blue", "green"))),
        30,
    ),
    "wall clock": ((("style", ("modern", "classic")), ("color", ("black", "white", "wood"))), 40),
    "jigsaw puzzle": ((("pieces", ("500", "1000", "1500")), ("theme", ("animals", "art"))), 22),
    "smart watch": ((("size", ("40mm", "44mm")), ("color", ("black", "silver", "gold"))), 200),
    "notebook": ((("cover", ("hard", "soft")), ("pages", ("100", "200", "300"))), 12),
}
_PRODUCT_NAMES = tuple(PRODUCTS)
#: Every option combination of each product type, as display text ("color blue, size L").
_GRIDS: dict[str, tuple[str, ...]] = {
    name: tuple(f"{dims[0][0]} {a}, {dims[1][0]} {b}" for a in dims[0][1] for b in dims[1][1])
    for name, (dims, _) in PRODUCTS.items()
}

CITIES: tuple[tuple[str, str], ...] = (
    ("Austin", "787"),
    ("Denver", "802"),
    ("Seattle", "981"),
    ("Boston", "021"),
    ("Phoenix", "850"),
    ("Chicago", "606"),
    ("Portland", "972"),
    ("Atlanta", "303"),
    ("Columbus", "432"),
    ("Madison", "537"),
)
_CITY_NAMES = tuple(c for c, _ in CITIES)
_STREETS = (
    "Oak Street",
    "Pine Road",
    "Maple Avenue",
    "Cedar Lane",
    "Elm Drive",
    "Lake Road",
    "Hill Street",
    "River Way",
    "Park Avenue",
    "Birch Court",
    "Sunset Boulevard",
    "Mill Lane",
)
_FIRST = (
    "Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jade",
    "Kofi", "Lena", "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Yusuf",
)  # fmt: skip
_LAST = (
    "Lopez", "Kim", "Rossi", "Smith", "Nguyen", "Patel", "Garcia", "Moreau", "Silva", "Khan",
    "Brown", "Ito", "Novak", "Okafor", "Weber", "Ahmed", "Costa", "Ward", "Lee", "Berg",
)  # fmt: skip
_NAME_PAIRS = tuple((f, la) for f in _FIRST for la in _LAST)
_PAYMENTS = ("credit card ending {d}", "gift card", "paypal")
STATUSES = ("pending", "processed", "delivered", "cancelled")
REASONS = ("no longer needed", "ordered by mistake")

#: Why a customer asks for a human agent (no tool handles these): topic -> opening request.
TOPICS: dict[str, str] = {
    "duplicate charge": "I was charged twice for one purchase and want the extra charge back.",
    "damaged package": "My package arrived damaged and I want compensation for it.",
    "price adjustment": "Something I bought went on sale; I want the difference refunded.",
    "delivery complaint": "I want to file a complaint about how my delivery was handled.",
    "account deletion": "Please close my account and delete all my data.",
}

_GOALS = {
    CANCEL: ("I'd like to cancel my order with the {x}.", "Please cancel the order with my {x}."),
    RETURN: ("I want to return the {x} I received.", "I'd like to send back the {x} I got."),
    EXCHANGE: (
        "I want to exchange the {x} I received for another option.",
        "Can I swap the {x} I got for a different variant?",
    ),
    ADDRESS: (
        "I just moved to {x} and need to update my address.",
        "Please change my account address; I live in {x} now.",
    ),
    TOTAL: ("How much did I pay for my order with the {x}?", "What was the total of my {x} order?"),
    STATUS: ("What is the status of my order with the {x}?", "Has my order with the {x} arrived?"),
    TRANSFER: ("{x}",),
}
#: The summary a transfer to a human agent carries, per kind (transfer tasks: the topic).
_SUMMARY = {
    CANCEL: "order cancellation",
    RETURN: "item return",
    EXCHANGE: "item exchange",
    ADDRESS: "address change",
    TOTAL: "order total question",
    STATUS: "order status question",
}

#: What the agent can ask the customer, as ``ask[topic]``.
QUESTIONS: tuple[str, ...] = (
    "email",
    "name and zip",
    "order id",
    "reason",
    "which item",
    "new option",
    "new address",
)
_ASK = {q: 1 << i for i, q in enumerate(QUESTIONS)}
_ASK_CMDS = tuple(f"ask[{q}]" for q in QUESTIONS)

#: The tools and their parameters (str or list of str), as a tau-bench retail API.
TOOLS: dict[str, dict[str, type]] = {
    "find_user_id_by_email": {"email": str},
    "find_user_id_by_name_zip": {"first_name": str, "last_name": str, "zip": str},
    "get_user_details": {"user_id": str},
    "get_order_details": {"order_id": str},
    "get_product_details": {"product_id": str},
    "cancel_pending_order": {"order_id": str, "reason": str},
    "return_delivered_order_items": {"order_id": str, "item_ids": list},
    "exchange_delivered_order_items": {"order_id": str, "item_ids": list, "new_item_ids": list},
    "modify_user_address": {"user_id": str, "address1": str, "city": str, "zip": str},
    "transfer_to_human_agents": {"summary": str},
}

Composition = tuple[str, str]  # (kind, product type | city of the new address | topic)


def _partition() -> dict[str, dict[str, tuple[Composition, ...]]]:
    """The fixed train/test partition of compositions, per split and kind.

    Per kind, compositions are ordered by a CRC32 of their text (stable across processes
    and machines, unlike ``hash``) and the first ~20% (at least one) are held out for test.
    """
    keys = {k: _PRODUCT_NAMES for k in ORDER_KINDS}
    keys[ADDRESS] = _CITY_NAMES
    keys[TRANSFER] = tuple(TOPICS)
    out: dict[str, dict[str, tuple[Composition, ...]]] = {"train": {}, "test": {}}
    for kind in KINDS:
        comps = sorted(
            ((kind, x) for x in keys[kind]), key=lambda c: zlib.crc32("|".join(c).encode())
        )
        n_test = max(1, round(0.2 * len(comps)))
        out["test"][kind] = tuple(sorted(comps[:n_test]))
        out["train"][kind] = tuple(sorted(comps[n_test:]))
    return out


_COMPS = _partition()


def compositions(split: str) -> tuple[Composition, ...]:
    """The ``(kind, product type / city / topic)`` compositions ``split`` generates.

    Fixed and seed-independent; train and test are disjoint.
    """
    if split not in _COMPS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(_COMPS)}")
    return tuple(c for kind in KINDS for c in _COMPS[split][kind])


# --------------------------------------------------------------------------------------------
# Command text (one place, so the expert and the admissible list agree byte for byte)
# --------------------------------------------------------------------------------------------


def _ids(ids: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in ids) + "]"


def find_email_cmd(email: str) -> str:
    """``find_user_id_by_email`` call text."""
    return f'find_user_id_by_email(email="{email}")'


def find_name_zip_cmd(first: str, last: str, zip_code: str) -> str:
    """``find_user_id_by_name_zip`` call text."""
    return f'find_user_id_by_name_zip(first_name="{first}", last_name="{last}", zip="{zip_code}")'


def user_cmd(user_id: str) -> str:
    """``get_user_details`` call text."""
    return f'get_user_details(user_id="{user_id}")'


def order_cmd(order_id: str) -> str:
    """``get_order_details`` call text."""
    return f'get_order_details(order_id="{order_id}")'


def product_cmd(product_id: str) -> str:
    """``get_product_details`` call text."""
    return f'get_product_details(product_id="{product_id}")'


def cancel_cmd(order_id: str, reason: str) -> str:
    """``cancel_pending_order`` call text."""
    return f'cancel_pending_order(order_id="{order_id}", reason="{reason}")'


def return_cmd(order_id: str, item_ids: tuple[str, ...]) -> str:
    """``return_delivered_order_items`` call text."""
    return f'return_delivered_order_items(order_id="{order_id}", item_ids={_ids(item_ids)})'


def exchange_cmd(order_id: str, item_ids: tuple[str, ...], new_ids: tuple[str, ...]) -> str:
    """``exchange_delivered_order_items`` call text."""
    return (
        f'exchange_delivered_order_items(order_id="{order_id}", item_ids={_ids(item_ids)}, '
        f"new_item_ids={_ids(new_ids)})"
    )


def address_cmd(user_id: str, address: tuple[str, str, str]) -> str:
    """``modify_user_address`` call text (``address`` is street, city, zip)."""
    street, city, zip_code = address
    return (
        f'modify_user_address(user_id="{user_id}", address1="{street}", city="{city}", '
        f'zip="{zip_code}")'
    )


def transfer_cmd(summary: str) -> str:
    """``transfer_to_human_agents`` call text."""
    return f'transfer_to_human_agents(summary="{summary}")'


_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\((.*)\)", re.S)
_ARG = re.compile(r'(\w+)=("[^"]*"|\[[^\]]*\])')
_STR = re.compile(r'"([^"]*)"')


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


#: The free-text command templates: the final answer to the customer and the summary a
#: transfer to a human agent carries (texts the agent composes, as in tau-bench).
RESPOND_TEMPLATE = "respond[{text}]"
TRANSFER_TEMPLATE = transfer_cmd("{text}")
_FREE_TEXT_RULE = (
    f"non-blank printable ASCII without line breaks, brackets or double quotes, at most "
    f"{FREE_TEXT_MAX_LENGTH} characters"
)
#: Money in a reply: a $ amount, or a number with exactly two decimals ("$45.2", "45.20").
_AMOUNT = re.compile(
    r"\$\s?(\d+(?:,\d{3})*(?:\.\d{1,2})?)(?!\.?\d)|\b(\d+(?:,\d{3})*\.\d{2})(?!\.?\d)"
)
#: Order statuses in a reply, as the tools report them ("canceled" counts as "cancelled").
_STATUS_WORDS = re.compile(
    r"\b(pending|processed|delivered|cancell?ed|return requested|exchange requested)\b", re.I
)


def _cents(amount: str) -> int:
    whole, _, frac = amount.replace(",", "").partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


def told(reply: str, answer: str) -> bool:
    """Whether the reply to the customer states ``answer`` (an order total like ``"45.20"``
    or a status like ``"delivered"``) and no other value of its kind: every amount of money
    it names is the total, or every order status it names is the status, and it names one.
    Case, a ``$`` and wording around the value do not matter ("Your total was $45.20.")."""
    if _STATUS_WORDS.fullmatch(answer):
        named = {m.lower().replace("canceled", "cancelled") for m in _STATUS_WORDS.findall(reply)}
        return named == {answer}
    named = {_cents(a or b) for a, b in _AMOUNT.findall(reply)}
    return named == {_cents(answer)}


# --------------------------------------------------------------------------------------------
# Instance data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Item:
    """An order line or a product variant: ``item_id`` names the variant (as in tau-bench)."""

    item_id: str
    product_id: str
    product: str  # product type name
    options: str  # "color blue, size L"
    price: int  # cents
    available: bool


@dataclass(frozen=True, eq=False)
class Product:
    """A product with its variants and its precomputed ``get_product_details`` text."""

    product_id: str
    name: str
    variants: tuple[Item, ...]
    available: tuple[Item, ...]
    text: str


@dataclass(frozen=True, eq=False)
class Order:
    """An order as generated; its status may change only through :class:`World` ``changes``."""

    order_id: str
    user_id: str
    status: str
    items: tuple[Item, ...]
    payment: str
    total: int  # cents
    product_ids: tuple[str, ...]  # distinct, in item order
    return_cmds: tuple[str, ...]  # each single item, then all items (if more than one)


@dataclass(frozen=True, eq=False)
class User:
    """A customer profile; the customer's current address lives in the world (mutable)."""

    user_id: str
    first: str
    last: str
    email: str
    address: tuple[str, str, str]  # street, city, zip
    order_ids: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Database:
    """The immutable part of the retail database, shared (not copied) by snapshots."""

    users: dict[str, User]
    orders: dict[str, Order]
    products: dict[str, Product]
    by_email: dict[str, str]
    by_name_zip: dict[tuple[str, str, str], str]

    def __deepcopy__(self, memo: dict) -> Database:
        return self


@dataclass(frozen=True, eq=False)
class Task:
    """The immutable goal: the customer, what they want, what they answer, the goal database."""

    kind: str
    comp: Composition
    goal: str
    user_id: str
    email_known: bool
    order_id: str  # "" for tasks not about an order
    product_id: str  # the product of the item to return or exchange ("" otherwise)
    item_ids: tuple[str, ...]
    new_ids: tuple[str, ...]
    reason: str
    new_address: tuple[str, str, str] | None
    answer: str  # for total/status tasks
    summary: str  # the summary of a transfer to a human agent
    answers: dict[str, str]  # question -> the customer's reply
    goal_changes: dict[str, tuple]  # order id -> its final state
    goal_address: tuple[str, str, str]
    labels: tuple[str, ...]  # checklist keys

    def __deepcopy__(self, memo: dict) -> Task:
        return self


@dataclass(eq=False, slots=True)
class World:
    """All mutable episode state: the database's mutable part and what the agent has seen.

    The ``seen`` lists hold values in the order they first appeared in the conversation;
    the admissible tool calls are built from them.
    """

    db: Database
    task: Task
    changes: dict[str, tuple]  # order id -> ("cancelled", reason) / ("return requested", ids)
    # / ("exchange requested", ids, new ids); orders not in it are as generated
    address: tuple[str, str, str]  # the customer's current address
    asked: int  # bitmask of questions asked
    emails: list[str]
    names: list[tuple[str, str]]
    zips: list[str]
    user_ids: list[str]
    order_ids: list[str]
    reasons: list[str]
    addresses: list[tuple[str, str, str]]
    focus_order: str  # the order whose details were looked up last ("" none)
    focus_product: str  # the product whose details were looked up last ("" none)
    identified: bool
    order_looked_up: bool  # the task's order details were looked up
    product_looked_up: bool  # the task's product details were looked up
    answered: str  # the answer given with respond[...] ("" none)
    transferred: bool
    ended: bool  # the conversation is over (respond or transfer)

    def __deepcopy__(self, memo: dict) -> World:
        # Database and Task are immutable and shared; the rest is flat.
        return World(
            self.db,
            self.task,
            dict(self.changes),
            self.address,
            self.asked,
            self.emails[:],
            self.names[:],
            self.zips[:],
            self.user_ids[:],
            self.order_ids[:],
            self.reasons[:],
            self.addresses[:],
            self.focus_order,
            self.focus_product,
            self.identified,
            self.order_looked_up,
            self.product_looked_up,
            self.answered,
            self.transferred,
            self.ended,
        )


def _see(seen: list, value: Any) -> None:
    if value not in seen:
        seen.append(value)


class _Draws:
    """Uniform draws from ``np_random`` in batches (one generator call per 256 numbers)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.buf = rng.random(256)
        self.i = 0

    def uniform(self) -> float:
        if self.i == len(self.buf):
            self.buf, self.i = self.rng.random(256), 0
        self.i += 1
        return float(self.buf[self.i - 1])

    def below(self, n: int) -> int:
        return int(self.uniform() * n)

    def pick(self, seq: tuple | list) -> Any:
        return seq[self.below(len(seq))]

    def digits(self, n: int) -> str:
        return "".join(str(self.below(10)) for _ in range(n))

    def sample(self, seq: tuple | list, k: int) -> list:
        pool = list(seq)
        return [pool.pop(self.below(len(pool))) for _ in range(k)]


# --------------------------------------------------------------------------------------------
# The env
# --------------------------------------------------------------------------------------------


class ToolsEnv(TextEnv):
    """tau-bench-retail-like customer service through tool calls, with a scripted customer.

    ## Description

    Each instance generates a retail database: four customers (name, email, address with
    zip), the task's customer's 2-4 orders (ids like ``#W1234567``, status ``pending`` /
    ``processed`` / ``delivered`` / ``cancelled``, 1-3 items, a payment method, a total)
    and their products (ids, 4-6 variants over two options, prices, availability). The
    goal is the customer's opening request in one of seven kinds:

    * ``cancel``: "Please cancel the order with my backpack." (a pending order; reason)
    * ``return``: "I want to return the yoga mat I received." (one item of a delivered order)
    * ``exchange``: "Can I swap the t-shirt I got for a different variant?" (another
      variant of the same product)
    * ``address``: "I just moved to Denver and need to update my address."
    * ``total`` / ``status``: "How much did I pay for my order with the desk lamp?" (answer)
    * ``transfer``: a request no tool handles ("I was charged twice ...") -> a human agent

    The customer knows their email (70% of instances; else they do not remember it), name
    and zip, the order id, the cancel reason, which item (by its options, since an order
    may hold two variants of a product), the wanted option and their new address, and
    reveals each only when asked. Domain rules as in tau-bench retail: only the customer
    found by ``find_user_id_*`` may be acted for; only pending orders can be cancelled (with
    reason "no longer needed" or "ordered by mistake"); only delivered orders can have items
    returned or exchanged; an exchange keeps the product (new item = another variant of
    it, and a different one). A tool call that breaks a rule returns the tool's error text
    ("Error: non-pending order cannot be cancelled") and changes nothing. Orders change
    once: cancelled / return requested / exchange requested orders take no other change.

    Splits hold out compositions: for each kind, ~20% of its ``(kind, product type)`` (or
    ``(address, new city)``, ``(transfer, topic)``) compositions occur only on the test
    split (see :func:`compositions`); the goal names the composition.

    The expert (:meth:`expert_action`) acts on what the agent knows: it authenticates the
    customer (asks the email, else name and zip, and finds the user id), then asks for the
    order id, looks the order up, asks what it lacks (reason, which item, new option, new
    address), looks up the product for an exchange, and makes the one write (or answers, or
    transfers). It solves every instance from any reachable state that is not failed, in
    about 5 steps (at most 9) from reset.

    ## Action Space

    A text command; ``info["admissible_actions"]`` lists the ones valid now, in this fixed
    order: the 7 questions ``ask[email]``, ``ask[name and zip]``, ``ask[order id]``,
    ``ask[reason]``, ``ask[which item]``, ``ask[new option]``, ``ask[new address]``; then
    tool calls whose arguments have all appeared in the conversation (goal, answers, tool
    results): ``find_user_id_by_email(email="...")``, ``find_user_id_by_name_zip(first_name=
    "...", last_name="...", zip="...")``, ``get_user_details(user_id="...")``,
    ``get_order_details(order_id="#W...")``; for the order looked up last (the one "in
    view"): ``get_product_details(product_id="...")`` of its items,
    ``cancel_pending_order(order_id=..., reason=...)`` with a reason the customer gave,
    ``return_delivered_order_items(order_id=..., item_ids=[...])`` (each item, and all
    items), ``exchange_delivered_order_items(order_id=..., item_ids=[...], new_item_ids=
    [...])`` (each item to each available variant of the product looked up last); then
    ``modify_user_address(user_id=..., address1=..., city=..., zip=...)`` with seen
    addresses, ``respond[...]`` with the total and the status of the order in view (the
    final answer; it ends the conversation) and ``transfer_to_human_agents(summary="...")``
    with the request's topic (ends it too). Bounded by construction (one customer
    reachable, at most 4 orders, 3 items, 4 available variants, 2 zips, 2 addresses): at
    most 40 commands.

    Free text (the contract's exception, see :mod:`envs.contract`): the two texts the agent
    composes in tau-bench are free-text commands, valid with any text though the list
    holds only the suggestions above: ``respond[<message>]`` while an order is in view
    (a reply to the customer; it is judged by the value it states, see Reward) and
    ``transfer_to_human_agents(summary="<summary>")`` at any time (the summary is not
    judged, as in tau-bench). The text is non-blank printable ASCII without line breaks,
    brackets or double quotes, at most 200 characters. Everything else stays a menu, on
    purpose: ``ask[...]`` topics, because the scripted customer understands only these
    seven questions (a free question would need a hidden parser), and tool arguments,
    because each is data copied from the conversation, not composed (ids, emails, names,
    zips, addresses, the cancel reason, which is an enum in tau-bench): a value that has
    not appeared can only be a guess, which tau-bench answers with a "not found" error and
    this setting with an invalid step whose text says so.

    A command that is neither in the list nor an accepted free-text command is a step that
    changes nothing; its text says why (not a tool call, unknown tool, wrong arguments or
    types, values not seen, a free text that breaks the rule above).

    ## Observation Space

    ``{"goal": str, "text": str}``: the customer's opening request, and the last result:
    ``Customer: ...`` for an answer, ``Result: ...`` for a tool call.

    ## Starting State

    The chat has just opened; nothing is asked or looked up; the database is as generated.

    ## Reward

    1.0 on the step the task is completed, else 0.0. A ``respond[...]`` answers a total or
    status question when it names the value and no other value of its kind: every amount
    of money it names (``$45.2``, ``45.20``) is the order's total, or every order status it
    names is the order's status, and it names one ("Your order was delivered." counts;
    "delivered, not pending" does not). The suggested ``respond[45.20]`` is such a reply.

    ## Episode End

    ``terminated`` on success: the mutable database (order changes, the customer's address)
    equals the goal database, the customer was identified, the task's order (and product)
    were looked up, and the required answer was given / the transfer made. ``terminated``
    on failure: a write that leaves an order different from the goal (orders change only
    once, so it cannot be undone), or the conversation ended (``respond``, transfer)
    without success. Never truncated by the env itself: the registered
    ``max_episode_steps`` (30) truncates.

    ## Info

    ``admissible_actions``, ``invalid_action``, ``success``, ``checklist``, e.g.
    ``{"customer identified": True, "order #W1234567 looked up": True, "order #W1234567
    cancelled": False}``.

    ## Arguments

    * ``split``: ``"train"`` or ``"test"``.
    * ``render_mode``: ``None``, ``"ansi"`` or ``"human"``.

    ## Version History

    * v0: initial release. Later in v0 (issue 19): ``respond[...]`` (while an order is in
      view) and ``transfer_to_human_agents(summary=...)`` take free text, and an answer
      counts when it states the value (see Reward) rather than only when it is the
      suggested text; the admissible list, the expert and every other command are
      unchanged.
    """

    free_text_commands = (RESPOND_TEMPLATE, TRANSFER_TEMPLATE)

    def __init__(self, split: str = "train", render_mode: str | None = None) -> None:
        super().__init__(split, render_mode)
        self.world: World | None = None

    # -- generation -------------------------------------------------------------------------
    def _generate(self) -> tuple[str, str]:
        d = _Draws(self.np_random)
        kind = d.pick(KINDS)
        comp = d.pick(_COMPS[self.split][kind])
        ids: set[str] = set()

        def new_id(n: int, prefix: str = "") -> str:
            while True:  # ids are unique within an instance
                value = prefix + d.digits(n)
                if value not in ids:
                    ids.add(value)
                    return value

        # customers: the task's customer first, then three others (distinct names)
        users: list[User] = []
        for first, last in d.sample(_NAME_PAIRS, 4):
            # an address task's customer moves to another city
            city, prefix = d.pick(
                [c for c in CITIES if c[0] != comp[1]] if kind == ADDRESS and not users else CITIES
            )
            address = (f"{1 + d.below(998)} {d.pick(_STREETS)}", city, prefix + d.digits(2))
            users.append(
                User(
                    user_id=new_id(4, f"{first.lower()}_{last.lower()}_"),
                    first=first,
                    last=last,
                    email=f"{first.lower()}.{last.lower()}{d.digits(2)}@example.com",
                    address=address,
                    order_ids=(),
                )
            )
        user = users[0]

        # products, created on first use
        products: dict[str, Product] = {}
        by_type: dict[str, Product] = {}

        def product(name: str) -> Product:
            if name in by_type:
                return by_type[name]
            pid = new_id(10)
            grid = _GRIDS[name]
            options = d.sample(grid, 4 + d.below(3))
            base = PRODUCTS[name][1] * 100
            avail = [d.uniform() < 0.6 for _ in options]
            # at most 4 available variants keep the exchange commands bounded; the
            # product of an exchange task has at least two (the old item and the new one)
            while sum(avail) > 4:
                avail[avail.index(True)] = False
            while kind == EXCHANGE and name == comp[1] and sum(avail) < 2:
                avail[avail.index(False)] = True
            variants = tuple(
                Item(new_id(10), pid, name, o, base + d.below(base // 4) - base // 8, a)
                for o, a in zip(options, avail, strict=True)
            )
            text = f"Result: product {pid}, {name}. Variants: " + "; ".join(
                f"item {v.item_id} ({v.options}) {_money(v.price)} "
                + ("available" if v.available else "unavailable")
                for v in variants
            )
            p = Product(pid, name, variants, tuple(v for v in variants if v.available), text + ".")
            products[pid] = by_type[name] = p
            return p

        # the customer's orders; the task's order holds the composition's product
        n_orders = 2 + d.below(3)
        target = d.below(n_orders) if kind in ORDER_KINDS else -1
        status_of_kind = {CANCEL: "pending", RETURN: "delivered", EXCHANGE: "delivered"}
        orders: dict[str, Order] = {}
        task_items: tuple[Item, ...] = ()
        new_item: Item | None = None
        for k in range(n_orders):
            oid = new_id(7, "#W")
            others = [p for p in _PRODUCT_NAMES if k != target or p != comp[1]]
            n_items = 1 + d.below(3)
            lines: list[Item] = []
            if k == target:
                p = product(comp[1])
                old = d.pick(p.variants)
                lines.append(old)
                task_items = (old,)
                if kind == EXCHANGE:
                    new_item = d.pick([v for v in p.available if v is not old])
                # sometimes a second variant of the same product, so "which item" matters
                if kind in (RETURN, EXCHANGE) and n_items > 1 and d.uniform() < 0.4:
                    lines.append(d.pick([v for v in p.variants if v is not old]))
                    n_items -= 1
                status = status_of_kind.get(kind) or d.pick(STATUSES)
                n_items -= 1
            else:
                status = d.pick(STATUSES)
            for name in d.sample(others, n_items):
                lines.append(d.pick(product(name).variants))
            lines = d.sample(lines, len(lines))
            pay = d.pick(_PAYMENTS).format(d=d.digits(4))
            line_ids = tuple(v.item_id for v in lines)
            singles = tuple(return_cmd(oid, (i,)) for i in line_ids)
            orders[oid] = Order(
                order_id=oid,
                user_id=user.user_id,
                status=status,
                items=tuple(lines),
                payment=pay,
                total=sum(v.price for v in lines),
                product_ids=tuple(dict.fromkeys(v.product_id for v in lines)),
                return_cmds=singles + ((return_cmd(oid, line_ids),) if len(lines) > 1 else ()),
            )
        order_ids = tuple(orders)
        user = users[0] = User(
            user.user_id, user.first, user.last, user.email, user.address, order_ids
        )
        db = Database(
            users={u.user_id: u for u in users},
            orders=orders,
            products=products,
            by_email={u.email: u.user_id for u in users},
            by_name_zip={(u.first, u.last, u.address[2]): u.user_id for u in users},
        )

        # the task: what the customer answers and what the database must become
        order_id = order_ids[target] if target >= 0 else ""
        reason = d.pick(REASONS) if kind == CANCEL else ""
        new_address = None
        if kind == ADDRESS:
            street = f"{1 + d.below(998)} {d.pick(_STREETS)}"
            new_address = (street, comp[1], dict(CITIES)[comp[1]] + d.digits(2))
        item_ids = tuple(v.item_id for v in task_items) if kind in (RETURN, EXCHANGE) else ()
        new_ids = (new_item.item_id,) if new_item is not None else ()
        goal_changes: dict[str, tuple] = {}
        if kind == CANCEL:
            goal_changes[order_id] = ("cancelled", reason)
        elif kind == RETURN:
            goal_changes[order_id] = ("return requested", item_ids)
        elif kind == EXCHANGE:
            goal_changes[order_id] = ("exchange requested", item_ids, new_ids)
        answer = ""
        if kind == TOTAL:
            answer = _money(orders[order_id].total)
        elif kind == STATUS:
            answer = orders[order_id].status
        goal = d.pick(_GOALS[kind]).format(x=TOPICS[comp[1]] if kind == TRANSFER else comp[1])
        answers = self._answers(kind, user, order_id, reason, task_items, new_item, new_address)
        answers["email"] = (
            f"My email is {user.email}."
            if (email_known := d.uniform() < 0.7)
            else "Sorry, I don't remember which email I used."
        )
        labels = ["customer identified"]
        if kind in ORDER_KINDS:
            labels.append(f"order {order_id} looked up")
        if kind == EXCHANGE:
            labels.append(f"{comp[1]} options looked up")
        labels.append(
            {
                CANCEL: f"order {order_id} cancelled",
                RETURN: f"return of the {comp[1]} requested",
                EXCHANGE: f"exchange of the {comp[1]} requested",
                ADDRESS: "address updated",
                TOTAL: "order total told",
                STATUS: "order status told",
                TRANSFER: "transferred to a human agent",
            }[kind]
        )
        task = Task(
            kind=kind,
            comp=comp,
            goal=goal,
            user_id=user.user_id,
            email_known=email_known,
            order_id=order_id,
            product_id=task_items[0].product_id if item_ids else "",
            item_ids=item_ids,
            new_ids=new_ids,
            reason=reason,
            new_address=new_address,
            answer=answer,
            summary=comp[1] if kind == TRANSFER else _SUMMARY[kind],
            answers=answers,
            goal_changes=goal_changes,
            goal_address=new_address or user.address,
            labels=tuple(labels),
        )
        self.world = World(
            db=db,
            task=task,
            changes={},
            address=user.address,
            asked=0,
            emails=[],
            names=[],
            zips=[],
            user_ids=[],
            order_ids=[],
            reasons=[],
            addresses=[],
            focus_order="",
            focus_product="",
            identified=False,
            order_looked_up=False,
            product_looked_up=False,
            answered="",
            transferred=False,
            ended=False,
        )
        return goal, "A customer has opened a chat. Authenticate them, then help with the request."

    @staticmethod
    def _answers(
        kind: str,
        user: User,
        order_id: str,
        reason: str,
        items: tuple[Item, ...],
        new_item: Item | None,
        new_address: tuple[str, str, str] | None,
    ) -> dict[str, str]:
        """The scripted customer's reply to each question (the email reply is added later)."""
        which = "It's about the whole order."
        if kind in (RETURN, EXCHANGE):
            which = f"The {items[0].product} with {items[0].options}."
        elif kind not in ORDER_KINDS:
            which = "It's not about an item in an order."
        return {
            "name and zip": f"I'm {user.first} {user.last}, zip code {user.address[2]}.",
            "order id": f"It's order {order_id}."
            if order_id
            else "This isn't about a specific order.",
            "reason": f'The reason is "{reason}".' if reason else "I'd rather not give a reason.",
            "which item": which,
            "new option": f"I'd like the one with {new_item.options} instead."
            if new_item is not None
            else "I don't need a different option.",
            "new address": f"My new address is {new_address[0]}, {new_address[1]} {new_address[2]}."
            if new_address is not None
            else "My address is still the same.",
        }

    # -- rules ------------------------------------------------------------------------------
    def admissible_actions(self) -> list[str]:
        """The commands valid now (order and bound: see the class docstring)."""
        w = self.world
        db = w.db
        acts = list(_ASK_CMDS)
        acts += [find_email_cmd(e) for e in w.emails]
        acts += [find_name_zip_cmd(f, la, z) for f, la in w.names for z in w.zips]
        acts += [user_cmd(u) for u in w.user_ids]
        acts += [order_cmd(o) for o in w.order_ids]
        if w.focus_order:
            order = db.orders[w.focus_order]
            oid = order.order_id
            acts += [product_cmd(p) for p in order.product_ids]
            acts += [cancel_cmd(oid, r) for r in w.reasons]
            acts += order.return_cmds
            if w.focus_product:
                avail = db.products[w.focus_product].available
                acts += [
                    exchange_cmd(oid, (i.item_id,), (v.item_id,))
                    for i in order.items
                    for v in avail
                ]
        acts += [address_cmd(u, a) for u in w.user_ids for a in w.addresses]
        if w.focus_order:
            order = db.orders[w.focus_order]
            acts.append(f"respond[{_money(order.total)}]")
            acts.append(f"respond[{self._status(w.focus_order)}]")
        acts.append(transfer_cmd(w.task.summary))
        return acts

    def _free_text_available(self, template: str) -> bool:
        # an answer is about the order in view; a transfer is always possible
        return template != RESPOND_TEMPLATE or bool(self.world.focus_order)

    def _status(self, order_id: str) -> str:
        change = self.world.changes.get(order_id)
        return change[0] if change else self.world.db.orders[order_id].status

    def _execute(self, command: str) -> str:
        # Only admissible commands reach here, so the parse can trust the command's shape.
        w = self.world
        if command.startswith("ask["):
            return self._ask(command[4:-1])
        if command.startswith("respond["):
            w.answered = command[8:-1]
            w.ended = True
            stop = "" if w.answered[-1] in ".!?" else "."
            return f"You answered: {w.answered}{stop} The customer thanks you and leaves the chat."
        m = _CALL.fullmatch(command)
        args = {
            k: (v[1:-1] if v[0] == '"' else tuple(_STR.findall(v))) for k, v in _ARG.findall(m[2])
        }
        return getattr(self, "_tool_" + m[1])(**args)

    def _ask(self, question: str) -> str:
        w = self.world
        t = w.task
        w.asked |= _ASK[question]
        user = w.db.users[t.user_id]
        if question == "email" and t.email_known:
            _see(w.emails, user.email)
        elif question == "name and zip":
            _see(w.names, (user.first, user.last))
            _see(w.zips, user.address[2])
        elif question == "order id" and t.order_id:
            _see(w.order_ids, t.order_id)
        elif question == "reason" and t.reason:
            _see(w.reasons, t.reason)
        elif question == "new address" and t.new_address:
            _see(w.addresses, t.new_address)
            _see(w.zips, t.new_address[2])
        return "Customer: " + t.answers[question]

    # -- tools (each returns the tool's result text) -----------------------------------------
    def _found(self, user_id: str) -> str:
        w = self.world
        w.identified = w.identified or user_id == w.task.user_id
        _see(w.user_ids, user_id)
        return f"Result: {user_id}"

    def _tool_find_user_id_by_email(self, email: str) -> str:
        user_id = self.world.db.by_email.get(email)
        return self._found(user_id) if user_id else "Result: Error: user not found"

    def _tool_find_user_id_by_name_zip(self, first_name: str, last_name: str, zip: str) -> str:
        w = self.world
        # the task's customer is found by their current zip (it changes with the address)
        user = w.db.users[w.task.user_id]
        if (first_name, last_name, zip) == (user.first, user.last, w.address[2]):
            return self._found(user.user_id)
        user_id = w.db.by_name_zip.get((first_name, last_name, zip))
        if user_id and user_id != user.user_id:
            return self._found(user_id)
        return "Result: Error: user not found"

    def _tool_get_user_details(self, user_id: str) -> str:
        w = self.world
        user = w.db.users[user_id]
        address = w.address if user_id == w.task.user_id else user.address
        _see(w.emails, user.email)
        _see(w.names, (user.first, user.last))
        _see(w.zips, address[2])
        _see(w.addresses, address)
        for oid in user.order_ids:
            _see(w.order_ids, oid)
        return (
            f"Result: user {user_id}: {user.first} {user.last}, email {user.email}, address "
            f"{address[0]}, {address[1]} {address[2]}. Orders: {', '.join(user.order_ids)}."
        )

    def _tool_get_order_details(self, order_id: str) -> str:
        w = self.world
        order = w.db.orders[order_id]
        w.focus_order = order_id
        w.order_looked_up = w.order_looked_up or order_id == w.task.order_id
        change = w.changes.get(order_id)
        items = "; ".join(
            f"{v.product} ({v.options}) item {v.item_id} product {v.product_id} {_money(v.price)}"
            for v in order.items
        )
        text = (
            f"Result: order {order_id} of {order.user_id}, status {self._status(order_id)}, "
            f"paid {_money(order.total)} by {order.payment}. Items: {items}."
        )
        if change and change[0] != "cancelled":
            text += f" Items {', '.join(change[1])} in the {change[0].split()[0]}."
        return text

    def _tool_get_product_details(self, product_id: str) -> str:
        w = self.world
        w.focus_product = product_id
        w.product_looked_up = w.product_looked_up or product_id == w.task.product_id
        return w.db.products[product_id].text

    def _write_error(self, order_id: str, needed: str, what: str) -> str | None:
        """The error text of a write on ``order_id`` that breaks a rule, else ``None``."""
        w = self.world
        if not w.identified:
            return "Result: Error: authenticate the customer first (find their user id)"
        if self._status(order_id) != needed:
            return f"Result: Error: non-{needed} order cannot be {what}"
        return None

    def _tool_cancel_pending_order(self, order_id: str, reason: str) -> str:
        error = self._write_error(order_id, "pending", "cancelled")
        if error:
            return error
        order = self.world.db.orders[order_id]
        self.world.changes[order_id] = ("cancelled", reason)
        return (
            f"Result: order {order_id} cancelled ({reason}); {_money(order.total)} refunded "
            f"to {order.payment}."
        )

    def _tool_return_delivered_order_items(self, order_id: str, item_ids: tuple) -> str:
        error = self._write_error(order_id, "delivered", "returned")
        if error:
            return error
        order = self.world.db.orders[order_id]
        refund = sum(v.price for v in order.items if v.item_id in item_ids)
        self.world.changes[order_id] = ("return requested", item_ids)
        return (
            f"Result: return requested for items {', '.join(item_ids)} of order {order_id}; "
            f"{_money(refund)} will be refunded to {order.payment}."
        )

    def _tool_exchange_delivered_order_items(
        self, order_id: str, item_ids: tuple, new_item_ids: tuple
    ) -> str:
        error = self._write_error(order_id, "delivered", "exchanged")
        if error:
            return error
        w = self.world
        old = next(v for v in w.db.orders[order_id].items if v.item_id == item_ids[0])
        new = next(
            v for v in w.db.products[w.focus_product].variants if v.item_id == new_item_ids[0]
        )
        if new.product_id != old.product_id:
            return (
                f"Result: Error: new item {new.item_id} is not a variant of the same product "
                f"as item {old.item_id}"
            )
        if new.item_id == old.item_id:
            return "Result: Error: the new item is the same as the old item"
        w.changes[order_id] = ("exchange requested", item_ids, new_item_ids)
        diff = new.price - old.price
        money = f"{_money(abs(diff))} {'charged' if diff > 0 else 'refunded'}"
        return (
            f"Result: exchange requested for order {order_id}: item {old.item_id} -> "
            f"{new.item_id} ({new.options}); price difference {money}."
        )

    def _tool_modify_user_address(self, user_id: str, address1: str, city: str, zip: str) -> str:
        w = self.world
        w.address = (address1, city, zip)
        return f"Result: address of {user_id} set to {address1}, {city} {zip}."

    def _tool_transfer_to_human_agents(self, summary: str) -> str:
        w = self.world
        w.transferred = w.ended = True
        return f"Result: transferred to a human agent ({summary}). The chat has ended."

    # -- outcome ----------------------------------------------------------------------------
    def checklist(self) -> dict[str, bool]:
        """The task's sub-goals in words, each with whether it holds now."""
        w = self.world
        t = w.task
        done = {
            CANCEL: w.changes.get(t.order_id) == t.goal_changes.get(t.order_id),
            ADDRESS: w.address == t.goal_address,
            TOTAL: bool(t.answer and w.answered) and told(w.answered, t.answer),
            TRANSFER: w.transferred,
        }
        done[RETURN] = done[EXCHANGE] = done[CANCEL]
        done[STATUS] = done[TOTAL]
        values = [w.identified]
        if t.kind in ORDER_KINDS:
            values.append(w.order_looked_up)
        if t.kind == EXCHANGE:
            values.append(w.product_looked_up)
        values.append(done[t.kind])
        return dict(zip(t.labels, values, strict=True))

    def db_key(self) -> tuple:
        """The mutable database (order changes, the customer's address), comparable with ==."""
        w = self.world
        return tuple(sorted(w.changes.items())), w.address

    def goal_db_key(self) -> tuple:
        """The goal database in the form of :meth:`db_key`."""
        t = self.world.task
        return tuple(sorted(t.goal_changes.items())), t.goal_address

    def _succeeded(self) -> bool:
        return all(self.checklist().values()) and self.db_key() == self.goal_db_key()

    def _failed(self) -> bool:
        # Orders change once, so a change other than the goal's can never be undone.
        w = self.world
        goal = w.task.goal_changes
        return w.ended or any(goal.get(o) != c for o, c in w.changes.items())

    # -- invalid commands -------------------------------------------------------------------
    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        """The contract's step; an inadmissible command's text also says what is wrong."""
        obs, reward, terminated, truncated, info = super().step(action)
        if info["invalid_action"]:
            self._text = f"{obs['text']} {self._diagnose(action)}"
            obs = self._obs()
        return obs, reward, terminated, truncated, info

    def _diagnose(self, command: str) -> str:
        """Why an inadmissible command was refused (read-only)."""
        command = command.strip()
        if command.startswith("ask["):
            return "You can ask about: " + ", ".join(QUESTIONS) + "."
        if command.startswith("respond["):
            if not self.world.focus_order:
                return "Answers come from the order in view: look an order up first."
            return f"An answer to the customer is free text: {_FREE_TEXT_RULE}."
        m = _CALL.fullmatch(command)
        if m is None:
            return 'It is not a tool call: write tool(arg="value", ...), ask[...] or respond[...].'
        name = m[1]
        if name not in TOOLS:
            return f"Unknown tool {name}; tools: {', '.join(TOOLS)}."
        params = TOOLS[name]
        signature = f"{name}({', '.join(params)})"
        try:
            with warnings.catch_warnings():  # "\q" in a string: an invalid escape warning
                warnings.simplefilter("ignore")
                call = ast.parse(f"f({m[2]})", mode="eval").body
            if call.args:
                raise ValueError
            args = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        except (SyntaxError, ValueError, TypeError):
            return f"Malformed arguments: use keyword arguments, {signature}."
        if set(args) != set(params):
            return f"Wrong arguments: {signature}."
        for key, kind in params.items():
            value = args[key]
            if not isinstance(value, kind) or (
                kind is list and not all(isinstance(v, str) for v in value)
            ):
                return (
                    f"Argument {key} must be {'a string' if kind is str else 'a list of strings'}."
                )
        if name == "transfer_to_human_agents":
            return f"The summary is free text: {_FREE_TEXT_RULE}."
        return "Its argument values have not appeared in the conversation for this call."

    # -- expert -----------------------------------------------------------------------------
    def expert_action(self) -> str:
        """The expert's command from the current state, using only what the agent could know.

        Authenticate (find by email if the customer gave it, else by name and zip; ask for
        what is missing, email first); a transfer task then transfers; an address task asks
        the new address and writes it. An order task asks the order id, looks the order up
        unless it is the one in view, then: answers (total/status); asks the reason and
        cancels; asks which item and returns it; or asks which item and the new option,
        looks up the product unless in view, and exchanges.
        """
        w = self.world
        t = w.task
        db = w.db
        user = db.users[t.user_id]
        if not w.identified:
            if user.email in w.emails:
                return find_email_cmd(user.email)
            if w.asked & _ASK["name and zip"]:
                return find_name_zip_cmd(user.first, user.last, user.address[2])
            return "ask[email]" if not w.asked & _ASK["email"] else "ask[name and zip]"
        if t.kind == TRANSFER:
            return transfer_cmd(t.summary)
        if t.kind == ADDRESS:
            if not w.asked & _ASK["new address"]:
                return "ask[new address]"
            return address_cmd(t.user_id, t.new_address)
        if not w.asked & _ASK["order id"]:
            return "ask[order id]"
        if w.focus_order != t.order_id:
            return order_cmd(t.order_id)
        if t.kind in (TOTAL, STATUS):
            return f"respond[{t.answer}]"
        if t.kind == CANCEL:
            if not w.asked & _ASK["reason"]:
                return "ask[reason]"
            return cancel_cmd(t.order_id, t.reason)
        if not w.asked & _ASK["which item"]:
            return "ask[which item]"
        if t.kind == RETURN:
            return return_cmd(t.order_id, t.item_ids)
        if not w.asked & _ASK["new option"]:
            return "ask[new option]"
        if w.focus_product != t.product_id:
            return product_cmd(t.product_id)
        return exchange_cmd(t.order_id, t.item_ids, t.new_ids)
