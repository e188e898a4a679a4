"""TokenStore: tokenized items on disk read back exactly, by index, after appends."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learners.data import Decision
from learners.store import TokenStore
from learners.world_model import Transitions

ids = st.lists(st.integers(0, 2**31 - 1), max_size=12)
decisions = st.builds(Decision, ids, st.lists(ids, max_size=6), st.integers(0, 50))
transitions = st.builds(Transitions, ids, st.lists(ids, max_size=4), ids, st.lists(ids, max_size=4))


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.lists(decisions, max_size=40), st.lists(decisions, max_size=10))
def test_decisions_round_trip_with_appends_after_reads(first, more) -> None:
    with TokenStore(Decision, first) as store:
        assert list(store) == first
        store.extend(more)
        items = first + more
        assert len(store) == len(items) and list(store) == items
        if items:
            assert store[-1] == items[-1] and store[1:5] == items[1:5]


@settings(max_examples=40, derandomize=True, deadline=None)
@given(st.lists(transitions, max_size=30))
def test_transitions_round_trip(items) -> None:
    with TokenStore(Transitions, items) as store:
        assert store[::-1] == items[::-1]


def test_many_items_span_several_flushes(tmp_path: Path) -> None:
    items = [Decision(list(range(i % 300)), [[i], [i, i + 1]], i % 7) for i in range(2000)]
    with TokenStore(Decision, items, tmp_path) as store:
        assert store.nbytes > 1 << 18  # more than one in-memory buffer's worth was written
        assert store[0] == items[0] and store[1999] == items[1999]
        assert [store[i] for i in (17, 1500, 3)] == [items[17], items[1500], items[3]]


def test_the_file_is_anonymous_and_gone_after_close(tmp_path: Path) -> None:
    store = TokenStore(Decision, [Decision([1], [[2]], 0)], tmp_path)
    assert os.listdir(tmp_path) == []  # unlinked at creation: nothing to leave behind on a kill
    assert store[0] == Decision([1], [[2]], 0)
    store.close()
    assert os.listdir(tmp_path) == []


def test_bad_input_is_refused_clearly() -> None:
    with TokenStore(Decision) as store:
        with pytest.raises(IndexError, match="index 0 out of range for a store of 0 items"):
            store[0]
        with pytest.raises(TypeError, match="this store holds Decision, got Transitions"):
            store.append(Transitions([1], [[1]], [1], [[1]]))
    with pytest.raises(TypeError, match="dataclass items"):
        TokenStore(dict)

    @dataclass
    class Text:
        words: list[str]

    with pytest.raises(TypeError, match=r"Text.words is list\[str\]"):
        TokenStore(Text)
