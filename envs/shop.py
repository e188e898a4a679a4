"""A WebShop-like shopping env: BM25 search over a generated catalog, result pages, item
options, buy.

Pure Python and in-house; the catalog, its ``bm25s`` index, instructions, the train/test
partition and WebShop's reward live in :mod:`envs.shop_catalog`. The catalog is shared by
every env of the process; an instance's immutable part (goal, candidate queries, checklist
labels, the expert's plan) is a :class:`Task` shared between snapshots, and the mutable
part is the small :class:`World` (page, query text, results page, open item, selected
options, purchase), so ``get_state`` / ``set_state`` are exact and cheap (a free-text
query is part of the world like a suggested one).
"""

from __future__ import annotations

from dataclasses import dataclass

from envs.contract import TextEnv
from envs.shop_catalog import PAGE_SIZE, Goal, Product, get_catalog, satisfies, webshop_score

__all__ = ["ShopEnv", "Task", "World"]

# Pages.
SEARCH, RESULTS, ITEM, DESCRIPTION, FEATURES, BOUGHT = range(6)

BACK = "click[back to search]"
PREV = "click[< prev]"
NEXT = "click[next >]"
DESC = "click[description]"
FEAT = "click[features]"
BUY = "click[buy now]"
_ITEM_NAV = (BACK, PREV, DESC, FEAT)
_SUBPAGE_NAV = [BACK, PREV]
#: How many other products' titles are offered as distractor queries.
N_DISTRACTORS = 3
SEARCH_TEXT = (
    "You are on the search page. Search for a product with one of the suggested queries or "
    "your own: search[<query>]."
)
#: The free-text command template: any query on the search page.
SEARCH_TEMPLATE = "search[{text}]"


@dataclass(frozen=True, eq=False)
class Task:
    """The immutable part of an instance: goal, queries on offer, checklist, expert plan."""

    goal: Goal
    queries: tuple[str, ...]  # candidate queries, shuffled
    search_cmds: tuple[str, ...]  # "search[<query>]" per candidate
    best: int  # index of the keyword query, the one the expert searches
    expert_pid: int  # the product the expert buys: first visible match of that query
    expert_page: int  # its results page
    labels: tuple[str, ...]  # checklist keys

    def __deepcopy__(self, memo: dict) -> Task:
        return self


@dataclass(eq=False, slots=True)
class World:
    """All mutable episode state. ``query`` is the text of the last search ("" when none;
    a suggested or a free-text query alike), ``item`` -1 when none; ``results`` is the
    (immutable, cached) result list of the last search."""

    task: Task
    page: int
    query: str  # the text of the last search
    results: tuple[int, ...]
    page_no: int  # results page (0-based) shown, or the one the open item came from
    item: int  # product open on ITEM / DESCRIPTION / FEATURES, or bought
    selected: tuple[str | None, ...]  # per option kind of the open item
    score: float  # WebShop score of the purchase (0 until bought)

    def __deepcopy__(self, memo: dict) -> World:
        # every field is immutable (Task, str, int, tuples)
        return World(
            self.task,
            self.page,
            self.query,
            self.results,
            self.page_no,
            self.item,
            self.selected,
            self.score,
        )


class ShopEnv(TextEnv):
    """WebShop-like shopping: find and buy a product that fits an instruction.

    ## Description

    A catalog of 1,050 generated products in seven categories (snacks, beverages, clothing,
    shoes, beauty, electronics accessories, home), 42 product types, each product with a
    title, two or three attributes ("gluten free", "machine wash"), two option kinds with
    two to four values each (flavor, pack count, size, color, scent), a price, a
    description and features (see :mod:`envs.shop_catalog`). The instruction is generated
    from a target product, WebShop style: "i need some trail mix, honey flavor, 12 pack,
    under 30 dollars" asks for a product type, one or two attributes, a value of each
    option kind and a price bound.

    Pages as in WebShop: the search page; results (BM25 over title, attributes and
    description with ``bm25s``; up to 30 results, 5 per page, titles and prices only); an
    item page (title, price, options with the current selection); its description and
    features pages. The search page takes any query the agent types, as WebShop's does;
    since free text cannot be enumerated, ``info["admissible_actions"]`` suggests five
    candidate queries in a per-instance shuffled order: the instruction without its price
    clause, its keyword form (attributes + product type), and the titles of three other
    products (one of the same type). ``click[buy now]`` ends the episode.

    Splits hold out products and (product type, attribute) pairs: test instructions target
    test products only and ask for at least one held-out pair; train instructions target
    train products and never ask for a held-out pair (see :mod:`envs.shop_catalog`).

    The expert (:meth:`expert_action`) acts on what the pages show: it searches the keyword
    query, goes to the results page of the first result whose title and price match the
    type, attributes and price bound (generation guarantees it offers the options, within
    the 30 results), opens it, selects each asked option not yet selected, and buys. From
    a page of another item or another query's results it goes back (``< prev`` while the
    results are the keyword query's, else ``back to search``); on a satisfying item it
    buys that one. Its episodes take 5-10 steps from reset.

    ## Action Space

    A text command (``str``), WebShop's syntax: ``search[<query>]`` on the search page,
    ``click[<label>]`` elsewhere: ``back to search``, ``< prev``, ``next >``, a result's
    title, ``description``, ``features``, an option value, ``buy now``.
    ``info["admissible_actions"]`` lists the ones valid now (at most 13); on the search
    page these are the five suggested queries.

    ``search[<query>]`` is a free-text command (the contract's exception, see
    :mod:`envs.contract`): on the search page any query is valid, suggested or not, and
    runs the same BM25 search (``free_text_commands == ("search[{text}]",)``). The query
    is non-blank printable ASCII without line breaks, brackets or double quotes, at most
    200 characters (the command then fits the 256-character action space); anything else
    (``search[]``, ``search[   ]``, a longer query: nothing is truncated) is an invalid
    step that changes nothing, as is a search from any other page. A query that matches
    nothing shows a results page with no results (``back to search`` is then the only
    command).

    ## Observation Space

    ``{"goal": str, "text": str}``: the instruction and the current page's text.

    ## Starting State

    The search page, nothing searched, nothing selected.

    ## Reward

    1.0 on the step a product meeting every criterion is bought with the asked options
    (WebShop score 1.0), else 0.0. The WebShop score in [0, 1] (type, attribute, option and
    price matches; :func:`envs.shop_catalog.webshop_score`) is ``info["score"]`` on the buy
    step.

    ## Episode End

    ``terminated`` at ``click[buy now]`` (success or not). Never truncated by the env
    itself: the registered ``max_episode_steps`` (20) truncates.

    ## Info

    ``admissible_actions``, ``invalid_action``, ``success``, ``checklist`` (about the open
    or bought item: ``{"type: trail mix": ..., "attribute: organic": ..., "option: honey":
    ..., "option: 12 pack": ..., "price < 30.00": ..., "bought": ...}``, all False while no
    item is open) and, on the buy step, ``score`` (float).

    ## Arguments

    * ``split``: ``"train"`` or ``"test"``.
    * ``render_mode``: ``None``, ``"ansi"`` or ``"human"``.

    ## Version History

    * v0: initial release. Later in v0 (issue 19): ``search[...]`` takes any query, not only
      the five suggested ones (which are still the admissible list, so an agent that picks
      from it sees no change but the search page's wording); the expert is unchanged.
    """

    free_text_commands = (SEARCH_TEMPLATE,)

    def __init__(self, split: str = "train", render_mode: str | None = None) -> None:
        super().__init__(split, render_mode)
        self.catalog = get_catalog()
        self.world: World | None = None

    # -- generation -------------------------------------------------------------------------
    def _generate(self) -> tuple[str, str]:
        rng = self.np_random
        cat = self.catalog
        goal, rank = cat.sample_goal(self.split, rng)
        products = cat.products
        # one product of the same type that does not satisfy the goal, then other types
        same_type = [pid for pid in cat.by_type[goal.ptype] if not satisfies(products[pid], goal)]
        distractors = [same_type[int(rng.integers(len(same_type)))]]
        while len(distractors) < N_DISTRACTORS:
            pid = int(rng.integers(len(products)))
            if products[pid].ptype != goal.ptype and pid not in distractors:
                distractors.append(pid)
        queries = [goal.keyword_query, goal.instruction_query]
        queries += [products[pid].title for pid in distractors]
        queries = [queries[int(i)] for i in rng.permutation(len(queries))]
        labels = (
            f"type: {goal.ptype}",
            *(f"attribute: {a}" for a in goal.attributes),
            *(f"option: {v}" for _, v in goal.options),
            f"price < {goal.price_upper:.2f}",
            "bought",
        )
        task = Task(
            goal=goal,
            queries=tuple(queries),
            search_cmds=tuple(f"search[{q}]" for q in queries),
            best=queries.index(goal.keyword_query),
            expert_pid=cat.search(goal.keyword_query)[rank],
            expert_page=rank // PAGE_SIZE,
            labels=labels,
        )
        self.world = World(task, SEARCH, "", (), 0, -1, (), 0.0)
        return goal.text, SEARCH_TEXT

    # -- rules ------------------------------------------------------------------------------
    def _page_slice(self) -> tuple[int, ...]:
        w = self.world
        start = w.page_no * PAGE_SIZE
        return w.results[start : start + PAGE_SIZE]

    def admissible_actions(self) -> list[str]:
        """The commands valid on the current page, in a fixed order per page."""
        w = self.world
        page = w.page
        if page == SEARCH:
            return list(w.task.search_cmds)
        if page == RESULTS:
            acts = [BACK]
            if w.page_no > 0:
                acts.append(PREV)
            if (w.page_no + 1) * PAGE_SIZE < len(w.results):
                acts.append(NEXT)
            products = self.catalog.products
            acts.extend(products[pid].click for pid in self._page_slice())
            return acts
        if page == ITEM:
            acts = list(_ITEM_NAV)
            for clicks in self.catalog.products[w.item].option_clicks:
                acts.extend(clicks)
            acts.append(BUY)
            return acts
        if page == BOUGHT:  # the episode has ended; step() refuses further commands
            return [BACK]
        return list(_SUBPAGE_NAV)

    def _results_text(self) -> str:
        w = self.world
        if not w.results:
            return "No results. Go back to search and try another query."
        pages = -(-len(w.results) // PAGE_SIZE)
        products = self.catalog.products
        lines = [products[pid].line for pid in self._page_slice()]
        return f"Results page {w.page_no + 1} of {pages}:\n" + "\n".join(lines)

    def _item_text(self) -> str:
        w = self.world
        p = self.catalog.products[w.item]
        lines = [p.title, f"Price: ${p.price:.2f}"]
        for (kind, values), chosen in zip(p.options, w.selected, strict=True):
            lines.append(f"{kind}: {', '.join(values)} (selected: {chosen or 'none'})")
        return "\n".join(lines)

    def _execute(self, command: str) -> str:
        # Only admissible commands reach here: the label exists on the current page.
        w = self.world
        if command.startswith("search["):  # a suggested query or a free-text one
            w.query = command[len("search[") : -1]
            w.results = self.catalog.search(w.query)
            w.page, w.page_no = RESULTS, 0
            return self._results_text()
        label = command[len("click[") : -1]
        if command == BACK:
            w.page, w.item = SEARCH, -1
            return SEARCH_TEXT
        if w.page == RESULTS:
            if command in (PREV, NEXT):
                w.page_no += 1 if command == NEXT else -1
                return self._results_text()
            w.item = self.catalog.by_title[label]
            w.selected = (None,) * len(self.catalog.products[w.item].options)
            w.page = ITEM
            return self._item_text()
        p = self.catalog.products[w.item]
        if w.page != ITEM:  # description or features: "< prev" returns to the item
            w.page = ITEM
            return self._item_text()
        if command == PREV:
            w.page, w.item = RESULTS, -1
            return self._results_text()
        if command == DESC:
            w.page = DESCRIPTION
            return f"Description: {p.description}"
        if command == FEAT:
            w.page = FEATURES
            return "Features: " + "; ".join(p.features)
        if command == BUY:
            w.page = BOUGHT
            w.score = webshop_score(p, w.task.goal, w.selected)[0]
            chosen = ", ".join(v for v in w.selected if v is not None) or "no options"
            return (
                f"You bought {p.title} ({chosen}) for ${p.price:.2f}. "
                f"Your score (min 0.0, max 1.0): {w.score:.2f}"
            )
        kind = p.option_kind[label]
        w.selected = w.selected[:kind] + (label,) + w.selected[kind + 1 :]
        return self._item_text()

    def checklist(self) -> dict[str, bool]:
        """Each criterion of the instruction, judged on the open (or bought) item."""
        w = self.world
        t = w.task
        if w.item < 0:
            return dict.fromkeys(t.labels, False)
        g = t.goal
        p = self.catalog.products[w.item]
        same_category = p.category == g.category  # option kinds line up only then
        values = [
            p.ptype == g.ptype,
            *(a in p.attributes for a in g.attributes),
            *(same_category and w.selected[i] == v for i, v in g.options),
            p.price < g.price_upper,
            w.page == BOUGHT,
        ]
        return dict(zip(t.labels, values, strict=True))

    def _failed(self) -> bool:
        # bought something that does not meet every criterion: nothing left to do
        return self.world.page == BOUGHT

    def _free_text_available(self, template: str) -> bool:
        # any query, where the suggested ones are offered: on the search page
        return self.world.page == SEARCH

    def _info(self, invalid: bool, success: bool) -> dict:
        info = super()._info(invalid, success)
        if self.world.page == BOUGHT:
            info["score"] = self.world.score
        return info

    # -- expert -----------------------------------------------------------------------------
    def _open_item_satisfies(self) -> bool:
        return satisfies(self.catalog.products[self.world.item], self.world.task.goal)

    def expert_action(self) -> str:
        """The expert's command from the current state, from what the pages show.

        On a page of an item that satisfies the goal (title, price and offered options
        match): back to the item page, select each asked option not selected yet, buy.
        On another item's page: ``< prev`` if it was opened from the keyword query's
        results, else ``back to search``. On the keyword query's results: page towards the
        page of the first visible match (generation checked it satisfies) and open it. On
        other results: back to search. On the search page: search the keyword query.
        """
        w = self.world
        t = w.task
        page = w.page
        if page in (ITEM, DESCRIPTION, FEATURES):
            if self._open_item_satisfies():
                if page != ITEM:
                    return PREV
                p: Product = self.catalog.products[w.item]
                for i, value in t.goal.options:
                    if w.selected[i] != value:
                        return p.option_clicks[i][p.options[i][1].index(value)]
                return BUY
            return PREV if w.query == t.queries[t.best] else BACK
        if page == RESULTS:
            if w.query != t.queries[t.best]:
                return BACK
            if w.page_no < t.expert_page:
                return NEXT
            if w.page_no > t.expert_page:
                return PREV
            return self.catalog.products[t.expert_pid].click
        return t.search_cmds[t.best]
