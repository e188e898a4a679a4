"""Tests of the WebShop-like shopping setting (earlyexp/Shop-v0).

The contract's generic properties are tested for every setting in tests/envs/test_contract.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from dataclasses import replace

import numpy as np
import pytest

import envs
from envs.shop import BACK, BUY, NEXT, PREV, RESULTS, SEARCH, ShopEnv
from envs.shop_catalog import (
    CATEGORIES,
    PAGE_SIZE,
    TOP_K,
    Catalog,
    get_catalog,
    satisfies,
    webshop_score,
)
from tests.envs.helpers import follow_expert, walk_states

ENV_ID = "earlyexp/Shop-v0"
CAP = 20


def _world_key(env: ShopEnv) -> tuple:
    w = env.world
    return (w.page, w.query, w.results, w.page_no, w.item, w.selected, w.score)


# -- expert ----------------------------------------------------------------------------------
@pytest.mark.parametrize("split", envs.SPLITS)
def test_expert_solves_every_instance(split: str) -> None:
    env = ShopEnv(split)
    lengths = []
    for seed in range(100):
        _, info = env.reset(seed=seed)
        solved, n, info = follow_expert(env, info, CAP)
        assert solved, f"{split} seed {seed}: expert failed on {env.goal!r}"
        assert info["score"] == 1.0 and all(info["checklist"].values())
        lengths.append(n)
    # search, (page), open, two options, buy
    assert min(lengths) >= 5 and max(lengths) <= 5 + TOP_K // PAGE_SIZE


# -- catalog, search and splits ------------------------------------------------------------
def test_catalog() -> None:
    cat = get_catalog()
    assert len(cat.products) >= 1000
    assert {p.category for p in cat.products} == {c.name for c in CATEGORIES}
    assert len(CATEGORIES) >= 7 and len({p.ptype for p in cat.products}) >= 40
    for p in cat.products:
        assert p.title.isascii() and p.ptype in p.title
        assert 2 <= len(p.attributes) <= 3 and all(a in p.title for a in p.attributes)
        assert len(p.options) == 2 and all(len(values) >= 2 for _, values in p.options)
        assert p.price > 0 and p.description and p.features
    assert len({p.title for p in cat.products}) == len(cat.products)
    # deterministic: a second build from the fixed seed is identical
    assert [p.title for p in Catalog().products] == [p.title for p in cat.products]


def test_catalog_is_built_lazily_and_identical_across_processes() -> None:
    code = (
        "import zlib, envs.shop, envs.shop_catalog as c\n"
        "print(c._CATALOG is None)\n"
        "envs.make('earlyexp/Shop-v0')\n"
        "print(zlib.crc32('|'.join(p.title for p in c._CATALOG.products).encode()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    titles = "|".join(p.title for p in get_catalog().products)
    assert out == ["True", str(zlib.crc32(titles.encode()))]


def test_bm25_ranks_exact_title_first() -> None:
    cat = get_catalog()
    for p in cat.products:
        assert cat.search(p.title)[0] == p.pid, p.title
    results = cat.search("organic granola bar")
    assert len(results) == TOP_K
    assert all(cat.products[pid].ptype == "granola bar" for pid in results[:5])
    assert cat.search("xyzzy") == () and cat.search("") == ()


def test_splits_hold_out_products_and_attribute_pairs() -> None:
    cat = get_catalog()
    goals = {split: [] for split in envs.SPLITS}
    for split in envs.SPLITS:
        rng = np.random.default_rng(7)
        goals[split] = [cat.sample_goal(split, rng)[0] for _ in range(1500)]
    train_targets = {g.target for g in goals["train"]}
    test_targets = {g.target for g in goals["test"]}
    assert train_targets and test_targets and not train_targets & test_targets
    assert {cat.products[pid].split for pid in test_targets} == {"test"}
    for g in goals["train"]:
        assert not any((g.ptype, a) in cat.held_out for a in g.attributes), g.text
    for g in goals["test"]:
        assert any((g.ptype, a) in cat.held_out for a in g.attributes), g.text
    assert not {g.text for g in goals["train"]} & {g.text for g in goals["test"]}
    # every product type appears in both splits; only the combinations differ
    assert {g.ptype for g in goals["train"]} == {g.ptype for g in goals["test"]}


def test_goal_is_findable_by_its_keyword_query() -> None:
    cat = get_catalog()
    rng = np.random.default_rng(3)
    for split in envs.SPLITS:
        for _ in range(200):
            goal, rank = cat.sample_goal(split, rng)
            results = cat.search(goal.keyword_query)
            assert rank < len(results) <= TOP_K
            assert satisfies(cat.products[results[rank]], goal)
            assert satisfies(cat.products[goal.target], goal)


# -- reward ----------------------------------------------------------------------------------
def _solved_env(seed: int) -> ShopEnv:
    """An env on the expert's item page with the right options selected, before buying."""
    env = ShopEnv()
    env.reset(seed=seed)
    while (action := env.expert_action()) != BUY:
        env.step(action)
    return env


def test_webshop_score_components() -> None:
    env = _solved_env(seed=11)
    cat = env.catalog
    goal = env.world.task.goal
    p = cat.products[env.world.item]
    right = env.world.selected
    assert webshop_score(p, goal, right)[0] == 1.0
    n = len(goal.attributes) + len(goal.options) + 1
    # a wrong option: one match fewer
    kind, value = goal.options[0]
    other = next(v for v in p.options[kind][1] if v != value)
    wrong = (other, *right[1:]) if kind == 0 else (right[0], other)
    score, parts = webshop_score(p, goal, wrong)
    assert score == pytest.approx((n - 1) / n) and parts["r_option"] == 0.5
    # nothing selected: no option matches
    assert webshop_score(p, goal, (None, None))[0] == pytest.approx((n - 2) / n)
    # over the price bound: the price term fails
    cheap = replace(goal, price_upper=p.price - 1)
    assert webshop_score(p, cheap, right)[0] == pytest.approx((n - 1) / n)
    # another product type: WebShop's type factor is 0 (no title overlap)
    other_type = next(q for q in cat.products if q.ptype != p.ptype)
    score, parts = webshop_score(other_type, goal, right)
    assert score == 0.0 and parts["r_type"] == 0.0


def test_buying_a_wrong_option_fails_with_partial_score() -> None:
    env = _solved_env(seed=11)
    goal = env.world.task.goal
    p = env.catalog.products[env.world.item]
    kind, value = goal.options[0]
    other = next(v for v in p.options[kind][1] if v != value)
    _, _, _, _, info = env.step(f"click[{other}]")
    assert info["checklist"][f"option: {value}"] is False
    assert "score" not in info
    _, reward, terminated, _, info = env.step(BUY)
    assert terminated and reward == 0.0 and not info["success"]
    assert 0.0 < info["score"] < 1.0
    assert info["checklist"]["bought"] and not all(info["checklist"].values())


def test_checklist_labels() -> None:
    env = ShopEnv()
    _, info = env.reset(seed=0)
    goal = env.world.task.goal
    assert list(info["checklist"]) == [
        f"type: {goal.ptype}",
        *(f"attribute: {a}" for a in goal.attributes),
        *(f"option: {v}" for _, v in goal.options),
        f"price < {goal.price_upper:.2f}",
        "bought",
    ]
    assert not any(info["checklist"].values())


# -- pages -----------------------------------------------------------------------------------
def test_paging_and_item_pages() -> None:
    env = ShopEnv()
    _, info = env.reset(seed=5)
    assert env.world.page == SEARCH and all(
        a.startswith("search[") for a in info["admissible_actions"]
    )
    query = next(
        a for a in info["admissible_actions"] if a[7:-1] == env.world.task.goal.keyword_query
    )
    obs, _, _, _, info = env.step(query)
    results = env.world.results
    pages = -(-len(results) // PAGE_SIZE)
    assert obs["text"].startswith(f"Results page 1 of {pages}:")
    assert PREV not in info["admissible_actions"] and NEXT in info["admissible_actions"]
    first_page = [a for a in info["admissible_actions"] if a not in (BACK, NEXT)]
    assert first_page == [env.catalog.products[pid].click for pid in results[:PAGE_SIZE]]
    assert len(obs["text"].split()) < 120
    for n in range(2, pages + 1):
        obs, _, _, _, info = env.step(NEXT)
        assert obs["text"].startswith(f"Results page {n} of {pages}:")
        assert PREV in info["admissible_actions"]
    assert NEXT not in info["admissible_actions"]
    obs, _, _, _, info = env.step(PREV)
    assert obs["text"].startswith(f"Results page {pages - 1} of {pages}:")
    # open an item, select an option, read description and features, come back
    item = next(a for a in info["admissible_actions"] if a not in (BACK, NEXT, PREV))
    obs, _, _, _, info = env.step(item)
    p = env.catalog.products[env.world.item]
    assert obs["text"].startswith(p.title) and f"${p.price:.2f}" in obs["text"]
    value = p.options[1][1][0]
    obs, *_ = env.step(f"click[{value}]")
    assert f"(selected: {value})" in obs["text"]
    obs, *_ = env.step("click[description]")
    assert obs["text"] == f"Description: {p.description}"
    obs, *_ = env.step(PREV)
    assert f"(selected: {value})" in obs["text"]
    obs, *_ = env.step("click[features]")
    assert obs["text"].startswith("Features: ") and p.attributes[0] in obs["text"]
    env.step(PREV)
    obs, _, _, _, info = env.step(PREV)  # back to the results page the item came from
    assert env.world.page == RESULTS and obs["text"].startswith(f"Results page {pages - 1} of")
    obs, _, _, _, info = env.step(BACK)
    assert env.world.page == SEARCH and not any(info["checklist"].values())


def test_admissible_lists_are_small() -> None:
    """2 to 40 commands (that they are valid: tests/envs/test_contract.py)."""
    sizes = [len(info["admissible_actions"]) for info in walk_states(ShopEnv(), range(20), 10)]
    assert min(sizes) >= 2 and max(sizes) <= 40


def test_bad_input_changes_nothing() -> None:
    env = ShopEnv()
    _, info = env.reset(seed=2)
    env.step(env.expert_action())  # results page
    _, _, _, _, info = env.step(env.expert_action())  # item page
    before = _world_key(env)
    for command in (
        "click[",
        "search[]",
        "search[organic granola bar]",  # search is only on the search page
        "click[no such label]",
        "click[next >]",  # not offered on an item page
        "buy now",
    ):
        obs, reward, terminated, truncated, step_info = env.step(command)
        assert step_info["invalid_action"] and reward == 0.0 and not terminated
        assert "not available" in obs["text"]
        assert _world_key(env) == before
        assert step_info["admissible_actions"] == info["admissible_actions"]


def test_importing_the_catalog_never_imports_jax(tmp_path) -> None:
    """bm25s runs a JAX op when it is imported, where JAX is installed; JAX's first op takes
    75% of a GPU's memory. A JAX that fails loudly when imported stands in for it here."""
    fake = tmp_path / "jax"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise SystemExit('jax was imported')\n")
    (fake / "lax.py").write_text("")
    code = "import sys, envs.shop_catalog; assert 'jax' not in sys.modules"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
