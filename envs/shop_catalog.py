"""The catalog behind ``earlyexp/Shop-v0``: generated products, BM25 search, goals, reward.

Everything here is deterministic: the catalog is generated from :data:`CATALOG_SEED`, so it
is the same in every process. It is built once per process, lazily, by :func:`get_catalog`
(the first ``ShopEnv`` construction), together with its ``bm25s`` index; search results are
cached per query string.

Train/test partition (fixed, seed-independent):

* products: within each product type, every fifth generated product (indices 0, 5, 10, ...)
  is a *test* product, the others *train* products. A split's instructions only target its
  own products (every product stays in the catalog and in search results for both splits).
* ``(product type, attribute)`` pairs: for each type, :data:`HELD_OUT_PER_TYPE` of its
  category's attributes (the first ones in CRC32 order of ``"type|attribute"``) are
  held out. Train instructions never ask for a held-out pair; every test instruction asks
  for at least one. So each test instruction is a (product, attribute combination) the
  train split never generates.
"""

from __future__ import annotations

import functools
import importlib
import math
import sys
import zlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np


def _import_bm25s() -> ModuleType:
    """bm25s, kept off the GPU. Where JAX is installed, importing bm25s runs a JAX op (for
    its optional top-k), and JAX's first op takes 75% of a GPU's memory by default: seen on
    an H200, where it left the PyTorch runs beside it out of memory. The catalog only
    scores with bm25s (numpy), so bm25s is imported with JAX unavailable, and takes its
    numpy path; JAX itself stays untouched (a caller that has imported it already keeps its
    own settings)."""
    if "jax" in sys.modules:
        return importlib.import_module("bm25s")
    sys.modules["jax"] = None  # type: ignore[assignment]  # import jax: ImportError
    try:
        return importlib.import_module("bm25s")
    finally:
        del sys.modules["jax"]


bm25s = _import_bm25s()

__all__ = [
    "CATALOG_SEED",
    "CATEGORIES",
    "PAGE_SIZE",
    "TOP_K",
    "Catalog",
    "Category",
    "Goal",
    "Product",
    "get_catalog",
    "tokenize",
    "webshop_score",
]

CATALOG_SEED = 20_240_501
PRODUCTS_PER_TYPE = 25
#: Attributes per product type whose (type, attribute) pair only test instructions ask for.
HELD_OUT_PER_TYPE = 2
#: Results a search returns (WebShop: 50) and results per page (WebShop: 10).
TOP_K = 30
PAGE_SIZE = 5
_QUERY_CACHE_SIZE = 8192


@dataclass(frozen=True)
class Category:
    """A product category: its types (with the article a goal uses), attributes, option
    kinds (name, values, phrase template for the goal), price range and brands."""

    name: str
    department: str
    types: tuple[str, ...]  # "a granola bar", "some trail mix"
    attributes: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...], str], ...]
    price: tuple[int, int]
    brands: tuple[str, ...]


_COLORS = ("black", "white", "gray", "navy", "olive", "maroon", "tan", "blue")

CATEGORIES: tuple[Category, ...] = (
    Category(
        "snacks",
        "grocery",
        (
            "a granola bar",
            "some trail mix",
            "some potato chips",
            "some beef jerky",
            "some rice crackers",
            "some dried mango",
        ),
        ("gluten free", "organic", "non gmo", "low sugar", "vegan", "keto friendly"),
        (
            (
                "flavor",
                ("honey", "sea salt", "barbecue", "chocolate", "cinnamon", "maple"),
                "{} flavor",
            ),
            ("pack count", ("6 pack", "12 pack", "24 pack"), "{}"),
        ),
        (4, 35),
        ("nutriva", "crunchwell", "harvestly", "goodgrain", "pantrypal", "snackwise"),
    ),
    Category(
        "beverages",
        "grocery",
        (
            "some green tea",
            "some cold brew coffee",
            "some seltzer",
            "a sports drink",
            "some kombucha",
            "some almond milk",
        ),
        ("sugar free", "caffeine free", "organic", "zero calorie", "non gmo", "low sodium"),
        (
            ("flavor", ("lemon", "peach", "mint", "berry", "ginger", "lime"), "{} flavor"),
            ("pack count", ("4 pack", "8 pack", "12 pack"), "{}"),
        ),
        (5, 45),
        ("brewhaven", "fizzco", "purespring", "leafline", "chillcraft", "dewpoint"),
    ),
    Category(
        "clothing",
        "fashion",
        (
            "a hoodie",
            "some joggers",
            "a polo shirt",
            "a cardigan",
            "some leggings",
            "a denim jacket",
        ),
        ("machine wash", "cotton", "slim fit", "moisture wicking", "relaxed fit", "long sleeve"),
        (
            ("size", ("small", "medium", "large", "x-large"), "size {}"),
            ("color", _COLORS[:6], "{} color"),
        ),
        (15, 80),
        ("northloom", "urbanthread", "cozyknit", "fieldwear", "modeline", "tidewear"),
    ),
    Category(
        "shoes",
        "fashion",
        (
            "some running shoes",
            "some hiking boots",
            "some sandals",
            "some loafers",
            "some sneakers",
            "some clogs",
        ),
        (
            "non slip",
            "water resistant",
            "memory foam",
            "rubber sole",
            "lightweight",
            "arch support",
        ),
        (
            ("size", ("size 7", "size 8", "size 9", "size 10", "size 11"), "{}"),
            ("color", ("black", "brown", "white", "gray", "navy", "tan"), "{} color"),
        ),
        (30, 150),
        ("stridex", "trailpeak", "comfystep", "solecraft", "footnest", "paceline"),
    ),
    Category(
        "beauty",
        "beauty",
        (
            "a face moisturizer",
            "a shampoo",
            "a lip balm",
            "a sunscreen",
            "a shower gel",
            "a hair oil",
        ),
        (
            "paraben free",
            "cruelty free",
            "hypoallergenic",
            "vegan",
            "dermatologist tested",
            "sulfate free",
        ),
        (
            (
                "scent",
                ("lavender", "coconut", "citrus", "vanilla", "rose", "unscented"),
                "{} scent",
            ),
            ("size", ("2 oz", "4 oz", "8 oz", "16 oz"), "{}"),
        ),
        (6, 50),
        ("glowlab", "purebloom", "silkora", "dermaleaf", "aquaveil", "velvetine"),
    ),
    Category(
        "electronics accessories",
        "electronics",
        (
            "a phone case",
            "a usb cable",
            "a power bank",
            "a screen protector",
            "a laptop bag",
            "a stylus pen",
        ),
        ("fast charging", "shockproof", "water resistant", "magnetic", "braided", "ultra thin"),
        (
            ("color", ("black", "white", "blue", "red", "clear", "pink"), "{} color"),
            ("pack count", ("1 pack", "2 pack", "3 pack"), "{}"),
        ),
        (8, 70),
        ("voltix", "gearly", "techshield", "zapcore", "ampwise", "linkmate"),
    ),
    Category(
        "home",
        "home",
        (
            "a throw pillow",
            "a bath towel",
            "a scented candle",
            "a storage bin",
            "a table lamp",
            "an area rug",
        ),
        ("machine wash", "easy clean", "eco friendly", "dimmable", "bpa free", "stain resistant"),
        (
            ("color", ("beige", "gray", "navy", "white", "green", "blush"), "{} color"),
            ("size", ("small", "medium", "large"), "size {}"),
        ),
        (10, 120),
        ("homenest", "cozycraft", "dwellwise", "lumora", "softhaven", "nookly"),
    ),
)

#: Title words that tell products of one brand and type apart.
DESCRIPTORS = (
    "classic",
    "original",
    "premium",
    "everyday",
    "signature",
    "select",
    "essential",
    "deluxe",
    "artisan",
    "family",
)


def tokenize(text: str) -> list[str]:
    """BM25 tokens of ``text``: bm25s's tokenizer with English stopwords (used for the
    corpus and for queries alike)."""
    return bm25s.tokenize(text, stopwords="en", return_ids=False, show_progress=False)[0]


@dataclass(frozen=True, eq=False)
class Product:
    """One catalog product; ``click``, ``line`` and ``option_clicks`` are precomputed text."""

    pid: int
    title: str
    department: str
    category: str
    ptype: str
    attributes: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...]], ...]  # (kind, offered values)
    price: float
    description: str
    features: tuple[str, ...]
    split: str  # which split's instructions may target it
    click: str  # "click[<title>]"
    line: str  # its line on a results page
    option_clicks: tuple[tuple[str, ...], ...]  # per kind, per offered value

    @functools.cached_property
    def option_kind(self) -> dict[str, int]:
        """Option value -> index of its kind (values are distinct across a product's kinds)."""
        return {v: i for i, (_, values) in enumerate(self.options) for v in values}


@dataclass(frozen=True, eq=False)
class Goal:
    """An instruction and its criteria, WebShop style."""

    text: str
    target: int  # the product the instruction was generated from
    ptype: str
    category: str
    department: str
    attributes: tuple[str, ...]
    options: tuple[tuple[int, str], ...]  # (option kind index, value)
    option_kinds: tuple[str, ...]
    price_upper: float
    keyword_query: str  # the goal's attributes and product type
    instruction_query: str  # the instruction without its price clause


def _check_vocabulary() -> None:
    """Product-type words must not occur in any other part of a title (other types,
    attributes, brands, descriptors), so that a title names exactly one product type: that
    makes WebShop's title-overlap type reward 1 for the right type and 0 for any other."""
    other: set[str] = set(DESCRIPTORS)
    type_words: dict[str, str] = {}
    for cat in CATEGORIES:
        for attr in cat.attributes:
            other.update(attr.split())
        other.update(cat.brands)
        for t in cat.types:
            for word in t.split(" ", 1)[1].split():
                if type_words.setdefault(word, t) != t:
                    raise AssertionError(f"type word {word!r} shared by two product types")
    clash = other & set(type_words)
    if clash:
        raise AssertionError(f"type words also used elsewhere in titles: {sorted(clash)}")


def _held_out(ptype: str, attributes: tuple[str, ...]) -> tuple[str, ...]:
    order = sorted(attributes, key=lambda a: (zlib.crc32(f"{ptype}|{a}".encode()), a))
    return tuple(order[:HELD_OUT_PER_TYPE])


class Catalog:
    """The generated products, the split partition and a BM25 index over them."""

    def __init__(self, seed: int = CATALOG_SEED) -> None:
        _check_vocabulary()
        rng = np.random.default_rng(seed)
        self.products: list[Product] = []
        self.held_out: set[tuple[str, str]] = set()
        for cat in CATEGORIES:
            for typed in cat.types:
                self._generate_type(cat, typed.split(" ", 1)[1], rng)
        self.targets: dict[str, tuple[int, ...]] = {
            split: tuple(p.pid for p in self.products if p.split == split)
            for split in ("train", "test")
        }
        self.by_title = {p.title: p.pid for p in self.products}
        self.by_type: dict[str, tuple[int, ...]] = {}
        for p in self.products:
            self.by_type[p.ptype] = (*self.by_type.get(p.ptype, ()), p.pid)
        if len(self.by_title) != len(self.products):
            raise AssertionError("product titles must be unique")
        self.article = {t.split(" ", 1)[1]: t.split(" ", 1)[0] for c in CATEGORIES for t in c.types}
        corpus = [f"{p.title} {' '.join(p.attributes)} {p.description}" for p in self.products]
        self.retriever = bm25s.BM25()
        self.retriever.index(
            bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False
        )
        # per catalog, so a second catalog (another seed) never sees the first one's results
        self.search = functools.lru_cache(maxsize=_QUERY_CACHE_SIZE)(self._search)

    def _generate_type(self, cat: Category, ptype: str, rng: np.random.Generator) -> None:
        held = _held_out(ptype, cat.attributes)
        self.held_out.update((ptype, a) for a in held)
        kept = tuple(a for a in cat.attributes if a not in held)
        used: set[tuple[str, str]] = set()
        for i in range(PRODUCTS_PER_TYPE):
            split = "test" if i % 5 == 0 else "train"
            # a target product carries at least one attribute its split's goals can ask for
            first = _pick(rng, held if split == "test" else kept)
            rest = [a for a in cat.attributes if a != first]
            n_more = int(rng.integers(1, 3))
            more = [rest[j] for j in rng.choice(len(rest), n_more, replace=False)]
            attributes = tuple(a for a in cat.attributes if a == first or a in more)
            while True:
                brand, desc = _pick(rng, cat.brands), _pick(rng, DESCRIPTORS)
                if (brand, desc) not in used:
                    used.add((brand, desc))
                    break
            options = []
            for kind, values, _ in cat.options:
                n = int(rng.integers(2, min(4, len(values)) + 1))
                chosen = set(rng.choice(len(values), n, replace=False).tolist())
                options.append((kind, tuple(v for j, v in enumerate(values) if j in chosen)))
            lo, hi = cat.price
            price = int(rng.integers(lo, hi)) + 0.99
            title = f"{brand} {desc} {' '.join(attributes)} {ptype}"
            offered = " and ".join(", ".join(values) for _, values in options)
            description = (
                f"the {desc} {ptype} by {brand}: {', '.join(attributes)}. available in {offered}."
            )
            features = (*attributes, f"{cat.department} / {cat.name}")
            self.products.append(
                Product(
                    pid=len(self.products),
                    title=title,
                    department=cat.department,
                    category=cat.name,
                    ptype=ptype,
                    attributes=attributes,
                    options=tuple(options),
                    price=price,
                    description=description,
                    features=features,
                    split=split,
                    click=f"click[{title}]",
                    line=f"{title} (${price:.2f})",
                    option_clicks=tuple(tuple(f"click[{v}]" for v in vs) for _, vs in options),
                )
            )

    def _search(self, query: str) -> tuple[int, ...]:
        """Product ids of the top :data:`TOP_K` BM25 matches of ``query`` (score > 0), best
        first; ties go to the lower id."""
        tokens = tokenize(query)
        ids = self.retriever.get_tokens_ids(tokens)
        if not ids:
            return ()
        scores = self.retriever.get_scores_from_ids(ids)
        order = np.lexsort((np.arange(len(scores)), -scores))[:TOP_K]
        return tuple(int(i) for i in order if scores[i] > 0)

    # -- goals ------------------------------------------------------------------------------
    def category_of(self, name: str) -> Category:
        """The :class:`Category` named ``name``."""
        return next(c for c in CATEGORIES if c.name == name)

    def sample_goal(self, split: str, rng: np.random.Generator) -> tuple[Goal, int]:
        """An instruction for ``split`` and the rank of the product the expert buys.

        The target is a product of the split; the goal asks for its type, one or two of its
        attributes (train: never a held-out (type, attribute) pair; test: at least one), a
        value of each of its option kinds and a price bound above its price. The goal is
        kept only if, in the results of its keyword query, the first product whose title and
        price show a match (type, attributes, price) also offers the options: then an agent
        that reads the results can find a satisfying product. Returns ``(goal, rank)``.
        """
        pool = self.targets[split]
        for _ in range(1000):
            p = self.products[pool[int(rng.integers(len(pool)))]]
            held = [a for a in p.attributes if (p.ptype, a) in self.held_out]
            kept = [a for a in p.attributes if a not in held]
            if split == "train":
                n = min(len(kept), int(rng.integers(1, 3)))
                asked = set(rng.choice(kept, n, replace=False).tolist())
            else:
                asked = {_pick(rng, held)}
                if rng.random() < 0.5:
                    asked.add(_pick(rng, [a for a in p.attributes if a not in asked]))
            goal = self._make_goal(p, tuple(a for a in p.attributes if a in asked), rng)
            rank = self.expert_rank(goal)
            if rank is not None:
                return goal, rank
        raise RuntimeError(f"could not generate a findable {split} goal")

    def _make_goal(self, p: Product, attributes: tuple[str, ...], rng: np.random.Generator) -> Goal:
        cat = self.category_of(p.category)
        options = tuple((i, _pick(rng, values)) for i, (_, values) in enumerate(p.options))
        phrases = [cat.options[i][2].format(v) for i, v in options]
        # WebShop: a round bound one to three steps of 10 above the price
        upper = 10.0 * (math.ceil(p.price / 10) + int(rng.integers(0, 3)))
        lead = _pick(rng, ("i want", "i need", "i am looking for", "find me", "i would like"))
        what = f"{self.article[p.ptype]} {' and '.join(attributes)} {p.ptype}"
        body = f"{lead} {what}, {', '.join(phrases)}"
        price = _pick(rng, (f"under {upper:.0f} dollars", f"price lower than {upper:.2f} dollars"))
        return Goal(
            text=f"{body}, {price}",
            target=p.pid,
            ptype=p.ptype,
            category=p.category,
            department=p.department,
            attributes=attributes,
            options=options,
            option_kinds=tuple(k for k, _, _ in cat.options),
            price_upper=upper,
            keyword_query=f"{' '.join(attributes)} {p.ptype}",
            instruction_query=body,
        )

    def expert_rank(self, goal: Goal) -> int | None:
        """Rank, in the keyword query's results, of the first product whose title and price
        show a match; ``None`` unless there is one and it also offers the goal's options."""
        for rank, pid in enumerate(self.search(goal.keyword_query)):
            p = self.products[pid]
            if visible_match(p, goal):
                return rank if satisfies(p, goal) else None
        return None


def _pick(rng: np.random.Generator, seq: Any) -> Any:
    return seq[int(rng.integers(len(seq)))]


def visible_match(p: Product, goal: Goal) -> bool:
    """Whether what a results page shows of ``p`` (title, price) matches ``goal``: its type,
    every goal attribute (titles list all of a product's attributes) and the price bound."""
    return (
        p.ptype == goal.ptype
        and all(a in p.attributes for a in goal.attributes)
        and p.price < goal.price_upper
    )


def satisfies(p: Product, goal: Goal) -> bool:
    """Whether ``p`` can be bought to fulfil ``goal`` (a visible match offering the options)."""
    return visible_match(p, goal) and all(v in p.options[i][1] for i, v in goal.options)


def webshop_score(
    p: Product, goal: Goal, selected: tuple[str | None, ...]
) -> tuple[float, dict[str, Any]]:
    """WebShop's reward for buying ``p`` with options ``selected`` (``web_agent_site/engine/
    goal.py:get_reward``): ``r_type * (attribute matches + option matches + price ok) /
    (goal attributes + goal options + 1)``.

    As there, ``r_type`` is 1 if the purchase's product type / category / title overlap
    matches, 0.5 if not, 0.1 under a title overlap of 0.1, 0 with no overlap; the title
    overlap is the fraction of the goal's product-type words in the purchased title (WebShop
    uses the nouns of the target's title). Attributes and options match exactly instead of
    WebShop's fuzzy match (the vocabulary here is controlled), and options are read only
    from the selection (titles here never name option values). Returns (score, components).
    """
    title_words = set(tokenize(p.title))
    desired = tokenize(goal.ptype)
    title_score = sum(w in title_words for w in desired) / len(desired)
    query_match = p.ptype == goal.ptype
    levels = {p.department, p.category, p.ptype}
    category_match = len(levels & {goal.department, goal.category, goal.ptype}) >= 2
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    n_attr = sum(a in p.attributes for a in goal.attributes)
    goal_values = {v for _, v in goal.options}
    n_opt = sum(v in goal_values for v in selected if v is not None)
    r_price = p.price <= goal.price_upper
    total = (n_attr + n_opt + r_price) / (len(goal.attributes) + len(goal.options) + 1)
    return r_type * total, {
        "r_type": r_type,
        "r_att": n_attr / len(goal.attributes),
        "r_option": n_opt / len(goal.options),
        "r_price": float(r_price),
        "title_score": title_score,
    }


_CATALOG: Catalog | None = None


def get_catalog() -> Catalog:
    """The process-wide catalog, built on first use."""
    global _CATALOG
    if _CATALOG is None:
        _CATALOG = Catalog()
    return _CATALOG
