"""Agreement between two raters, from count tables (pure statistics: numpy, no Django).

Every function takes a square table of counts, `table[i, j]` = how many units the first rater
put in category i and the second in category j, so the cost depends on the number of cells,
never on the number of judgements. Intervals are bootstrap percentile intervals: the table
is resampled as a multinomial with the observed cell shares (which is resampling the units
with replacement), and the statistic recomputed on each resample, all at once as arrays.

- `direction_agreement`: the share of units whose preference has the same sign (A, tie, B).
- `weighted_kappa`: Cohen's kappa with quadratic (default), linear or no weights.
- `krippendorff_alpha`: two coders, no missing values; interval (default), ordinal or
  nominal metric.

A statistic that is undefined (fewer than 2 units, or no variation to measure agreement
against) comes back with `estimate=None` and a reason in words; no NaN leaves this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

PREFERENCE_VALUES: tuple[int, ...] = (-3, -2, -1, 0, 1, 2, 3)
SCORE_VALUES: tuple[int, ...] = (1, 2, 3, 4, 5)
DEFAULT_SAMPLES = 1000
DEFAULT_LEVEL = 0.95
# A resample with no variation has no kappa or alpha and is left out of the percentiles. When
# more than this share of the resamples is like that, leaving them out would bias the
# interval, and the data is too thin for one anyway.
MAX_UNDEFINED_SHARE = 0.2

KappaWeights = Literal["quadratic", "linear", "unweighted"]
AlphaMetric = Literal["interval", "ordinal", "nominal"]

TOO_FEW = "fewer than 2 pairs"
NO_VARIATION = "no variation: every rating was the same"


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval; `estimate` is None with a `reason`
    when the statistic is undefined, and `low`/`high` are None when no interval could be
    drawn (for example every resample lacked variation)."""

    estimate: float | None
    low: float | None
    high: float | None
    n: int
    reason: str = ""

    @property
    def is_defined(self) -> bool:
        return self.estimate is not None


def pair_table(first: Iterable[int], second: Iterable[int], *, values: Sequence[int]) -> np.ndarray:
    """The count table of paired ratings (tests and small callers; the database builds its
    tables with GROUP BY)."""
    index = {value: i for i, value in enumerate(values)}
    table = np.zeros((len(values), len(values)), dtype=np.int64)
    for a, b in zip(first, second, strict=True):
        table[index[a], index[b]] += 1
    return table


def sign_table(preference_table: np.ndarray) -> np.ndarray:
    """Collapse a 7x7 preference table (-3..3) to 3x3 by direction: A better, tie, B better."""
    table = _as_table(preference_table)
    if table.shape != (7, 7):
        raise ValueError(f"a preference table is 7x7, not {table.shape[0]}x{table.shape[1]}")
    groups = (slice(0, 3), slice(3, 4), slice(4, 7))
    return np.array([[table[r, c].sum() for c in groups] for r in groups], dtype=np.int64)


def direction_agreement(
    preference_table: np.ndarray,
    *,
    rng: np.random.Generator,
    samples: int = DEFAULT_SAMPLES,
    level: float = DEFAULT_LEVEL,
) -> Interval:
    """The share of pairs whose preferences point the same way (a tie is its own way)."""
    signs = sign_table(preference_table)
    n = int(signs.sum())
    if n < 2:
        return Interval(None, None, None, n, TOO_FEW)
    agree = int(np.trace(signs))
    share = agree / n
    # The count of agreeing pairs in a resample of n pairs is binomial.
    draws = rng.binomial(n, share, size=samples) / n
    low, high = _percentiles(draws, level)
    return Interval(share, low, high, n)


def weighted_kappa(
    table: np.ndarray,
    *,
    weights: KappaWeights = "quadratic",
    rng: np.random.Generator,
    samples: int = DEFAULT_SAMPLES,
    level: float = DEFAULT_LEVEL,
) -> Interval:
    """Cohen's weighted kappa: 1 - sum(w * observed) / sum(w * expected by chance), with w
    the disagreement weight of each cell (the categories are taken as equally spaced)."""
    counts = _as_table(table)
    w = _kappa_weights(counts.shape[0], weights)
    return _bootstrapped(counts, lambda t: _kappa(t, w), rng=rng, samples=samples, level=level)


def krippendorff_alpha(
    table: np.ndarray,
    *,
    metric: AlphaMetric = "interval",
    values: Sequence[float] = SCORE_VALUES,
    rng: np.random.Generator,
    samples: int = DEFAULT_SAMPLES,
    level: float = DEFAULT_LEVEL,
) -> Interval:
    """Krippendorff's alpha for two coders who both rated every unit: 1 - D_o / D_e from
    the coincidence matrix (the table plus its transpose)."""
    counts = _as_table(table)
    if len(values) != counts.shape[0]:
        raise ValueError(f"{len(values)} values for a {counts.shape[0]}x{counts.shape[0]} table")
    if metric not in ("interval", "ordinal", "nominal"):
        raise ValueError(f"unknown metric {metric!r}: interval, ordinal or nominal")
    points = np.asarray(values, dtype=float)
    return _bootstrapped(
        counts, lambda t: _alpha(t, metric, points), rng=rng, samples=samples, level=level
    )


# --- The statistics on a stack of tables (..., k, k), NaN where undefined ----------------


def _kappa_weights(k: int, weights: str) -> np.ndarray:
    i = np.arange(k)
    gap = np.abs(i[:, None] - i[None, :]).astype(float)
    if weights == "quadratic":
        return gap**2
    if weights == "linear":
        return gap
    if weights == "unweighted":
        return (gap > 0).astype(float)
    raise ValueError(f"unknown weights {weights!r}: quadratic, linear or unweighted")


def _kappa(tables: np.ndarray, w: np.ndarray) -> np.ndarray:
    n = tables.sum(axis=(-2, -1))
    rows, cols = tables.sum(axis=-1), tables.sum(axis=-2)
    observed = (tables * w).sum(axis=(-2, -1))
    # sum_ij w_ij r_i c_j / n, without building the outer products
    expected = np.einsum("...i,ij,...j->...", rows, w, cols) / np.where(n > 0, n, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, 1 - observed / expected, np.nan)


def _alpha(tables: np.ndarray, metric: str, points: np.ndarray) -> np.ndarray:
    coincidences = tables + np.swapaxes(tables, -1, -2)
    per_value = coincidences.sum(axis=-1)  # n_c
    pairable = per_value.sum(axis=-1)  # n = 2 x units
    delta = _delta2(metric, points, per_value)
    observed = (coincidences * delta).sum(axis=(-2, -1))
    expected = np.einsum("...i,...ij,...j->...", per_value, delta, per_value)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, 1 - (pairable - 1) * observed / expected, np.nan)


def _delta2(metric: str, points: np.ndarray, per_value: np.ndarray) -> np.ndarray:
    """The squared distance between values c and k (broadcast over the stack when it
    depends on the marginals, as the ordinal one does)."""
    k = points.shape[0]
    if metric == "interval":
        return (points[:, None] - points[None, :]) ** 2
    if metric == "nominal":
        return 1.0 - np.eye(k)
    # Ordinal: (sum of n_g for g from c to k, minus (n_c + n_k) / 2) squared.
    i = np.arange(k)
    lo, hi = np.minimum(i[:, None], i[None, :]), np.maximum(i[:, None], i[None, :])
    cumulative = np.cumsum(per_value, axis=-1)
    span = cumulative[..., hi] - cumulative[..., lo] + per_value[..., lo]
    return (span - (per_value[..., :, None] + per_value[..., None, :]) / 2) ** 2


# --- Bootstrap ------------------------------------------------------------------------------


def _as_table(table: np.ndarray) -> np.ndarray:
    counts = np.asarray(table)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a count table is square, not of shape {counts.shape}")
    if (counts < 0).any():
        raise ValueError("a count table has no negative counts")
    return counts.astype(np.int64)


def _bootstrapped(counts, statistic, *, rng, samples: int, level: float) -> Interval:
    n = int(counts.sum())
    if n < 2:
        return Interval(None, None, None, n, TOO_FEW)
    estimate = float(statistic(counts))
    if np.isnan(estimate):
        return Interval(None, None, None, n, NO_VARIATION)
    # Only the cells that hold units can be drawn: leaving the empty ones out of the
    # multinomial makes it a third to a half cheaper on a per-contractor table.
    cells = counts.ravel()
    held = np.flatnonzero(cells)
    resamples = np.zeros((samples, cells.size), dtype=np.int64)
    resamples[:, held] = rng.multinomial(n, cells[held] / n, size=samples)
    resamples = resamples.reshape(samples, *counts.shape)
    draws = statistic(resamples)
    defined = draws[~np.isnan(draws)]
    if defined.size == 0 or defined.size < (1 - MAX_UNDEFINED_SHARE) * samples:
        return Interval(estimate, None, None, n, "too few pairs with variation for an interval")
    low, high = _percentiles(defined, level)
    return Interval(estimate, low, high, n)


def _percentiles(draws: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level is a share between 0 and 1, not {level}")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)
