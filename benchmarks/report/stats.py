"""The report's statistics: per-cell bootstrap CIs, IQM and probability of improvement.

Every bootstrap is seeded, so the same results give the same numbers. Per-cell CIs draw
from a stream keyed by the cell's name (:func:`cell_rng`); rliable's draw from numpy's
global RandomState, which :func:`numpy_global_seed` seeds and restores.
"""

from __future__ import annotations

import contextlib
import zlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats


@dataclass(frozen=True)
class Estimate:
    """A mean (or IQM, or probability) with its 95% bootstrap CI over ``n`` runs."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def point_only(self) -> bool:
        """True when one run makes the CI just the point."""
        return self.n == 1

    def text(self) -> str:
        """``0.53 [0.47, 0.60]``, or ``0.53 (1 seed, no CI)``."""
        if self.point_only:
            return f"{self.mean:.2f} (1 seed, no CI)"
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"


def cell_rng(seed: int, *key: object) -> np.random.Generator:
    """The random stream of one cell of the report, keyed by ``seed`` and the cell's name."""
    # One stream per cell, keyed by its name: adding a setting never shifts another cell's CI.
    return np.random.default_rng([seed, zlib.crc32(repr(key).encode())])


def mean_ci(values: Sequence[float], *, reps: int, rng: np.random.Generator) -> Estimate:
    """Mean of ``values`` with a 95% percentile bootstrap CI (scipy); one value -> the point."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) == 1 or np.ptp(x) == 0:
        # scipy refuses one sample, and warns on constant data; the CI is the point anyway.
        return Estimate(mean, mean, mean, len(x))
    ci = scipy.stats.bootstrap(
        (x,), np.mean, n_resamples=reps, method="percentile", rng=rng
    ).confidence_interval
    return Estimate(mean, float(ci.low), float(ci.high), len(x))


@contextlib.contextmanager
def numpy_global_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RandomState for the block, then restore it."""
    # rliable's bootstraps draw from numpy's *global* RandomState (its random_state argument is
    # not used for the indices), so seed that, and restore it so callers see no side effect.
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _iqm_each(stack: np.ndarray) -> np.ndarray:
    # rliable's aggregate_iqm (trim_mean 0.25 over runs and tasks) of each runs x tasks slice
    # of a runs x tasks x learners stack, in one scipy call: per-slice calls made the bootstrap
    # spend seconds in scipy's per-call overhead. Tests check it equals aggregate_iqm.
    return scipy.stats.trim_mean(stack.reshape(-1, stack.shape[-1]), 0.25, axis=0)


def iqm_cis(matrices: dict[Any, np.ndarray], *, reps: int, seed: int) -> dict[Any, Estimate]:
    """IQM of each learner's ``runs x tasks`` matrix with rliable's stratified bootstrap 95% CI.

    Matrices of the same shape share one bootstrap over a ``runs x tasks x matrices`` stack;
    rliable resamples runs independently per (task, matrix) cell, so this is the same
    bootstrap as one call per matrix, only faster (scipy's per-call overhead dominated).
    The stack follows the dict's order, so callers pass the matrices in a fixed order.
    """
    from rliable import library

    by_shape: dict[tuple[int, ...], list[Any]] = defaultdict(list)
    for name, scores in matrices.items():
        by_shape[np.shape(scores)].append(name)
    out = {}
    for i, (shape, names) in enumerate(sorted(by_shape.items())):
        stack = np.stack([np.asarray(matrices[n], dtype=float) for n in names], axis=-1)
        with numpy_global_seed(seed + i):
            point, interval = library.get_interval_estimates({"x": stack}, _iqm_each, reps=reps)
        for k, name in enumerate(names):
            low, high = interval["x"][:, k]
            out[name] = Estimate(float(point["x"][k]), float(low), float(high), shape[0])
    return out


def iqm_ci(scores: np.ndarray, *, reps: int, seed: int) -> Estimate:
    """IQM of one ``runs x tasks`` matrix with rliable's stratified bootstrap 95% CI."""
    return iqm_cis({"x": scores}, reps=reps, seed=seed)["x"]


def improvement_ci(x: np.ndarray, y: np.ndarray, *, reps: int, seed: int) -> Estimate:
    """P(X > Y) averaged over tasks (``runs x tasks`` matrices), rliable, with its 95% CI."""
    from rliable import library, metrics

    with numpy_global_seed(seed):
        point, interval = library.get_interval_estimates(
            {"x": [x, y]},
            lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
            reps=reps,
        )
    return Estimate(
        float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0]), len(x)
    )
