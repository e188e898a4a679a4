"""The report's statistics: per-cell bootstrap CIs, paired differences with the smallest
difference the design can detect, IQM and probability of improvement.

Every bootstrap is seeded, so the same results give the same numbers. Per-cell CIs draw
from a stream keyed by the cell's name (:func:`cell_rng`); rliable's draw from numpy's
global RandomState, which :func:`numpy_global_seed` seeds and restores.

Minimum detectable effect (MDE) of a paired comparison over ``n`` seeds: the smallest true
mean difference a two-sided paired t-test at ``ALPHA`` = 0.05 detects with ``POWER`` = 0.8,
the standard approximation ``(t_{1-alpha/2, n-1} + t_{power, n-1}) * sd / sqrt(n)``
(:func:`min_detectable_effect`). Two SDs go in, and the report shows the larger MDE:

* ``observed``: the sample SD of the paired differences (seeds, training and test noise);
* ``floor``: the SD that test-episode sampling alone gives a difference, each run's success
  being a binomial rate over its test episodes (:func:`binomial_sd`). A handful of seeds
  can show an SD below it by chance, 0 when every pair differs by the same amount; the
  design cannot resolve differences below this floor however the seeds fell.

With fewer than 2 pairs there is no SD, and no MDE ("n/a").
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

    def text(self, *, signed: bool = False) -> str:
        """``0.53 [0.47, 0.60]``, or ``0.53 (1 seed, no CI)``; ``signed``: ``+0.53 ...``
        (for differences)."""
        f = "+.2f" if signed else ".2f"
        if self.point_only:
            return f"{self.mean:{f}} (1 seed, no CI)"
        return f"{self.mean:{f}} [{self.low:{f}}, {self.high:{f}}]"


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


ALPHA = 0.05  # two-sided significance of the paired test the MDE is for
POWER = 0.8


def min_detectable_effect(
    sd: float, n: int, *, alpha: float = ALPHA, power: float = POWER
) -> float | None:
    """Smallest true mean paired difference a two-sided paired t-test at ``alpha`` detects
    with probability ``power``, given the SD ``sd`` of the differences over ``n`` pairs;
    None when ``n < 2`` or ``sd`` is not a finite number (nothing to say, not a number)."""
    if n < 2 or not np.isfinite(sd):
        return None
    df = n - 1
    multiplier = scipy.stats.t.ppf(1 - alpha / 2, df) + scipy.stats.t.ppf(power, df)
    return float(multiplier * sd / np.sqrt(n))


def binomial_sd(
    pairs: Sequence[tuple[float, float]], episodes: Sequence[tuple[int, int]]
) -> float | None:
    """SD of one paired difference of success rates from test-episode sampling alone.

    ``pairs``: the two runs' success rates per pair; ``episodes``: the test episodes behind
    each. Each rate is binomial, variance ``p (1 - p) / E``; ``p`` is shrunk to
    ``(k + 1/2) / (E + 1)`` (``k`` successes) so that a run at 0 or 1 still has some
    sampling noise. The two runs' variances add, as if their test outcomes were
    independent; both are tested on the same instances, which correlates them, so this
    overstates the noise of a difference somewhat (the MDE floor errs on the large side).
    The variance is averaged over the pairs. None when an episode count is missing or < 1.
    """
    if not pairs or len(pairs) != len(episodes):
        return None
    variances = []
    for rates, counts in zip(pairs, episodes, strict=True):
        variance = 0.0
        for p, e in zip(rates, counts, strict=True):
            if not isinstance(e, int) or e < 1:
                return None
            shrunk = (p * e + 0.5) / (e + 1)
            variance += shrunk * (1 - shrunk) / e
        variances.append(variance)
    return float(np.sqrt(np.mean(variances)))


@dataclass(frozen=True)
class Paired:
    """A paired comparison: mean difference ``a - b`` over seeds with its bootstrap CI, the
    differences' SD, and the minimum detectable effect from it and from the binomial floor."""

    difference: Estimate
    sd: float | None  # sample SD of the differences (None: fewer than 2 pairs)
    mde_observed: float | None
    mde_floor: float | None  # None when test-episode counts are unknown

    @property
    def mde(self) -> float | None:
        """The larger of the two MDEs; None when neither is a positive number (no pairs to
        speak of, or differences without spread and no episode counts to floor them)."""
        known = [m for m in (self.mde_observed, self.mde_floor) if m is not None and m > 0]
        return max(known) if known else None

    def mde_text(self) -> str:
        """``0.12``, or ``n/a`` with why."""
        if self.mde is not None:
            return f"{self.mde:.2f}"
        if self.difference.n < 2:
            return "n/a (1 pair)"
        return "n/a (sd 0)"


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    episodes: Sequence[tuple[int, int]] | None = None,
    reps: int,
    rng: np.random.Generator,
) -> Paired:
    """``a - b`` paired by position (the callers pair by seed): mean with a 95% bootstrap CI
    (:func:`mean_ci`), SD and MDE. ``episodes``: the test episodes behind each pair's two
    rates, for the binomial floor (None: no floor)."""
    if len(a) != len(b) or not len(a):
        raise ValueError(f"paired values need equal, non-zero lengths, got {len(a)} and {len(b)}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = x - y
    n = len(d)
    sd = float(np.std(d, ddof=1)) if n > 1 else None
    floor_sd = None
    if episodes is not None:
        floor_sd = binomial_sd(list(zip(x.tolist(), y.tolist(), strict=True)), episodes)
    return Paired(
        difference=mean_ci(d, reps=reps, rng=rng),
        sd=sd,
        mde_observed=min_detectable_effect(sd, n) if sd is not None else None,
        mde_floor=min_detectable_effect(floor_sd, n) if floor_sd is not None else None,
    )


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
