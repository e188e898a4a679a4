"""The training loop: minibatches (every item once per epoch, seeded, length-bucketed) and
how a fit says what ended it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from learners.training import BUCKET_POOL, fit_early_stopped, improves, minibatches


@pytest.mark.parametrize("bucketed", [False, True])
def test_every_item_once_per_epoch_and_seeded(bucketed: bool) -> None:
    n, size = 1000, 32
    lengths = np.random.default_rng(1).integers(5, 250, n) if bucketed else None
    epoch_batches = (
        -(-n // size)
        if not bucketed
        else sum(
            -(-min(size * BUCKET_POOL, n - s) // size) for s in range(0, n, size * BUCKET_POOL)
        )
    )
    batches = list(
        itertools.islice(minibatches(n, size, np.random.default_rng(0), lengths), 2 * epoch_batches)
    )
    for epoch in (batches[:epoch_batches], batches[epoch_batches:]):
        assert sorted(np.concatenate(epoch).tolist()) == list(range(n))
        assert all(1 <= len(b) <= size for b in epoch)
    again = itertools.islice(minibatches(n, size, np.random.default_rng(0), lengths), len(batches))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    assert not np.array_equal(batches[0], batches[epoch_batches])  # a fresh order per epoch


def test_bucketing_cuts_padding_and_keeps_batches_random() -> None:
    n, size = 2048, 32
    lengths = np.random.default_rng(1).integers(5, 250, n)
    rng = np.random.default_rng(0)
    plain = list(itertools.islice(minibatches(n, size, rng, None), n // size))
    bucketed = list(itertools.islice(minibatches(n, size, rng, lengths), n // size))

    def padding(batches: list[np.ndarray]) -> float:
        return float(np.mean([lengths[b].max() * len(b) - lengths[b].sum() for b in batches]))

    assert padding(bucketed) < 0.1 * padding(plain)
    # Consecutive batches are not simply the sorted order: their lengths are not monotonic.
    firsts = [int(lengths[b].min()) for b in bucketed[:BUCKET_POOL]]
    assert firsts != sorted(firsts)


def _fit(max_updates: int, patience: int, improving: bool, step: float = 1.0, min_delta=()) -> dict:
    """Fit a one-weight model; its validation score improves by ``step`` every time, or never."""
    model = nn.Linear(1, 1)
    validations = iter(step * i for i in range(1000))
    return fit_early_stopped(
        model,
        list(range(8)),
        lambda chunk: (model(torch.ones(len(chunk), 1)).pow(2).mean(), {}),
        lambda: {"v": float(next(validations))},
        lambda result: (result["v"] if improving else 0.0,),
        max_updates=max_updates,
        batch_size=4,
        learning_rate=1e-2,
        val_every=2,
        patience=patience,
        seed=0,
        progress=False,
        min_delta=min_delta,
    )


def test_a_fit_says_whether_the_cap_or_early_stopping_ended_it() -> None:
    capped = _fit(max_updates=10, patience=2, improving=True)
    assert (capped["updates"], capped["hit_cap"]) == (10, True)
    stopped = _fit(max_updates=100, patience=2, improving=False)
    # the first validation (update 2) is the best; two more without improvement stop it
    assert (stopped["updates"], stopped["best_update"], stopped["hit_cap"]) == (6, 2, False)
    # stopped by patience at the very update the cap would have stopped it: early stopping
    assert _fit(max_updates=6, patience=2, improving=False)["hit_cap"] is False


def test_improves_is_lexicographic_with_a_least_change_per_component() -> None:
    assert improves((0.9, -0.50), (0.8, -0.10))  # higher accuracy wins whatever the NLL
    assert not improves((0.8, -0.10), (0.9, -0.50))
    assert improves((0.9, -0.40), (0.9, -0.50))  # equal accuracy: lower NLL wins...
    assert not improves((0.9, -0.499), (0.9, -0.50), (0.0, 0.01))  # ...by more than its delta
    assert improves((0.9, -0.48), (0.9, -0.50), (0.0, 0.01))
    assert not improves((0.9, -0.5), (0.9, -0.5))  # a tie is no improvement


def test_a_creeping_tie_break_does_not_hold_off_early_stopping() -> None:
    """A score gaining 0.001 per validation resets the patience forever without a least
    change, and stops once gains under it no longer count."""
    creeping = _fit(max_updates=100, patience=3, improving=True, step=0.001)
    assert creeping["hit_cap"] is True
    stopped = _fit(max_updates=100, patience=3, improving=True, step=0.001, min_delta=(0.01,))
    assert (stopped["updates"], stopped["best_update"], stopped["hit_cap"]) == (8, 2, False)
