"""Which two endpoints of a project's pool the next task compares.

A pure function of the pool, the judged outcomes so far, the tasks already handed out and a
random generator: no Django, no database, so it can be simulated (bench/pairing_bench.py).

Three modes, the values of the project's setting:

* UNIFORM: every unordered pair of members is equally likely.
* WEIGHTED: pair (i, j) with probability proportional to weight_i * weight_j.
* ADAPTIVE: spend the judgements where the Bradley-Terry ranking is least settled. Each pair
  of members is scored by

      P(their order is wrong once the tasks in flight are judged) * p_ij * (1 - p_ij)

  and drawn in proportion to that score, mixed with a uniform floor (EXPLORE) so the choice
  stays random and no pair is ever starved. p_ij is the fitted probability that i beats j:
  a comparison of two models far apart teaches little even when their order is in doubt.
  Before any of that, a member with fewer than WARMUP tasks is paired first, so a newly added
  endpoint gets tasks at once.

The probability that an order is wrong comes from the Laplace (Gaussian) approximation of the
fit: the strengths beta are about N(beta_hat, inverse of L), with the Fisher information

    L = sum over pairs n_ij p_ij (1 - p_ij) (e_i - e_j)(e_i - e_j)^T + PRIOR_PRECISION * I,

so a pair that rarely met directly but is pinned down through chains of other comparisons
counts as settled. With n_ij the judged games, the difference d = beta_i - beta_j has a
standard error se_now; counting the tasks handed out but not judged yet as well, se_later.
Those games will move the estimate to d' ~ N(d, se_now^2 - se_later^2) and leave it known to
se_later, after which the order is wrong with probability Phi(-(|d'| + INDIFFERENCE) /
se_later). The score averages that over d'. So a pair with many tasks in flight is worth less
even when its current estimate is a dead heat: a burst of tasks created before any judgement
comes back spreads over the pairs instead of all landing on the one that looked most
uncertain.

Measured against UNIFORM by bench/pairing_bench.py (judgements until the fitted order of 5
simulated models is right and stays right); the figures are in bench/README.md.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, combinations

import numpy as np

from tasks.bradley_terry import fit_strengths

UNIFORM, WEIGHTED, ADAPTIVE = "uniform", "weighted", "adaptive"
MODES = (UNIFORM, WEIGHTED, ADAPTIVE)

# Share of ADAPTIVE draws spread uniformly over all pairs: every pair keeps a chance, so an
# order that looked settled early by luck still gets contradicted. 2% to 5% measured alike;
# 10% was slower.
EXPLORE = 0.05
# Tasks a member gets (against random partners) before scores decide, so a new endpoint is
# drawn at once rather than when its pairs' scores catch up.
WARMUP = 3
# Precision of the Gaussian prior on each strength: variance 1, so a priori a difference of
# 2.8 (a 94% win rate) is a two-sigma surprise. Keeps L invertible while some members have
# not met.
PRIOR_PRECISION = 1.0
# Strength differences this small (a 52.5% win rate) need not be ordered. A dead heat never
# settles, so without it two equal endpoints draw nearly every task (simulated, 2 equal of 5:
# 94% of the tasks after 2,000 judgements; 83% with 0.1; 67% with 0.2, which slowed pools
# with gaps of 0.25).
INDIFFERENCE = 0.1
# The scores need strengths to a few decimals, not fit_strengths' default 1e-9.
_FIT_TOL = 1e-5
# Gauss-Hermite nodes for averaging over d' ~ N(0, 1), with weights summing to 1.
_NODES, _NODE_WEIGHTS = np.polynomial.hermite_e.hermegauss(24)
_NODE_WEIGHTS = _NODE_WEIGHTS / _NODE_WEIGHTS.sum()
_ERFC = np.frompyfunc(math.erfc, 1, 1)


class PairingError(ValueError):
    """choose_pair cannot give a pair: too few members, an unknown mode, a bad weight or count."""


@dataclass(frozen=True)
class Member:
    """An endpoint that may be drawn: its id and, for WEIGHTED, its relative weight (> 0)."""

    key: int
    weight: float = 1.0

    def __post_init__(self) -> None:
        try:
            weight = float(self.weight)
        except (TypeError, ValueError):
            weight = math.nan
        if not (math.isfinite(weight) and weight > 0):
            raise PairingError(
                f"weight of endpoint {self.key} must be a positive number, got {self.weight!r}"
            )


def choose_pair(
    *,
    members: Sequence[Member],
    mode: str,
    rng: random.Random,
    wins: Mapping[tuple[int, int], float] = {},  # noqa: B006 - never written to
    assigned: Mapping[tuple[int, int], int] = {},  # noqa: B006 - never written to
) -> tuple[int, int]:
    """The keys (low, high), low < high, of the two members the next task compares.

    `wins[(i, j)]` is the number of judged wins of i over j (a tie adds 0.5 each way);
    `assigned[(low, high)]` the tasks given that pair so far, judged or in flight. Both may
    name endpoints that are not members any more: ADAPTIVE fits them too (their games link
    the members), but they are never returned. UNIFORM and WEIGHTED only check them. All
    randomness comes from `rng`: the same state of `rng` and the same arguments give the same
    pair. Raises PairingError for fewer than 2 members, a repeated key, an unknown mode or a
    negative or non-finite count (a bad weight is refused by Member itself).
    """
    if mode not in MODES:
        raise PairingError(f"unknown pairing mode {mode!r}; expected one of {', '.join(MODES)}")
    keys = sorted(member.key for member in members)
    if len(keys) < 2:
        raise PairingError(f"a pair needs at least 2 endpoints, got {len(keys)}")
    if len(set(keys)) != len(keys):
        raise PairingError(f"endpoint keys must be distinct, got {keys}")
    judged = _counts(wins, "wins")
    given = _counts(assigned, "assigned")
    pairs = list(combinations(keys, 2))
    if mode == UNIFORM:
        return pairs[rng.randrange(len(pairs))]
    if mode == WEIGHTED:
        weight = {member.key: float(member.weight) for member in members}
        return _draw(rng, pairs, [weight[i] * weight[j] for i, j in pairs])
    return _choose_adaptive(keys, pairs, rng, judged, given)


def _counts(counts: Mapping[tuple[int, int], float], name: str) -> dict[tuple[int, int], float]:
    """`counts` as floats without self-pairs, each checked to be a finite number >= 0."""
    checked = {}
    for (i, j), value in counts.items():
        if not (math.isfinite(value) and value >= 0):
            raise PairingError(f"{name}[({i}, {j})] must be a finite count >= 0, got {value!r}")
        if i != j:
            checked[(i, j)] = float(value)
    return checked


def _draw(
    rng: random.Random, pairs: list[tuple[int, int]], scores: Sequence[float]
) -> tuple[int, int]:
    """One of `pairs`, with probability proportional to its (positive) score."""
    cumulative = list(accumulate(scores))
    index = bisect_right(cumulative, rng.random() * cumulative[-1])
    return pairs[min(index, len(pairs) - 1)]


def _choose_adaptive(
    keys: list[int],
    pairs: list[tuple[int, int]],
    rng: random.Random,
    wins: dict[tuple[int, int], float],
    assigned: dict[tuple[int, int], float],
) -> tuple[int, int]:
    tasks = dict.fromkeys(keys, 0.0)
    for (i, j), count in assigned.items():
        for key in (i, j):
            if key in tasks:
                tasks[key] += count
    fewest = min(tasks.values())
    if fewest < WARMUP:
        # Random among the least served, so two new endpoints take turns.
        newcomers = [key for key in keys if tasks[key] == fewest]
        newcomer = newcomers[rng.randrange(len(newcomers))]
        partners = [key for key in keys if key != newcomer]
        partner = partners[rng.randrange(len(partners))]
        return (min(newcomer, partner), max(newcomer, partner))
    scores = _scores(keys, pairs, wins, assigned)
    total = scores.sum()
    # Every order settled beyond doubt (the scores underflow to 0): the floor alone draws.
    share = scores / total if total > 0 else np.zeros_like(scores)
    return _draw(rng, pairs, list((1 - EXPLORE) * share + EXPLORE / len(pairs)))


def _scores(
    keys: list[int],
    pairs: list[tuple[int, int]],
    wins: dict[tuple[int, int], float],
    assigned: dict[tuple[int, int], float],
) -> np.ndarray:
    """E[P(order wrong) after the tasks in flight] * p (1 - p) for each pair (module docstring)."""
    # Retired endpoints stay in the fit: their games connect and inform the members.
    everyone = sorted(set(keys).union(*wins, *assigned))
    index = {key: position for position, key in enumerate(everyone)}
    won = np.zeros((len(everyone), len(everyone)))
    for (i, j), value in wins.items():
        won[index[i], index[j]] += value
    beta = fit_strengths([str(key) for key in everyone], won, tol=_FIT_TOL)
    judged = won + won.T
    handed_out = judged.copy()
    for (i, j), count in assigned.items():
        a, b = index[i], index[j]
        # A judged game was handed out too, even if `assigned` has not caught up with it.
        handed_out[a, b] = handed_out[b, a] = max(handed_out[a, b], count)
    p = 1.0 / (1.0 + np.exp(beta[None, :] - beta[:, None]))
    a = np.array([index[i] for i, _ in pairs])
    b = np.array([index[j] for _, j in pairs])
    var_now = _difference_variance(_covariance(judged, p), a, b)
    var_later = _difference_variance(_covariance(handed_out, p), a, b)
    return _expected_wrong(beta[a] - beta[b], var_now, var_later) * p[a, b] * (1 - p[a, b])


def _covariance(games: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Inverse of the Fisher information L of the module docstring."""
    information = games * p * (1.0 - p)
    laplacian = np.diag(information.sum(axis=1)) - information
    return np.linalg.inv(laplacian + PRIOR_PRECISION * np.eye(len(games)))


def _difference_variance(covariance: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return covariance[a, a] + covariance[b, b] - 2 * covariance[a, b]


def _expected_wrong(
    difference: np.ndarray, var_now: np.ndarray, var_later: np.ndarray
) -> np.ndarray:
    """E over d' ~ N(difference, var_now - var_later) of Phi(-(|d'| + INDIFFERENCE) / se_later)."""
    se_later = np.sqrt(np.maximum(var_later, 1e-12))[:, None]
    spread = np.sqrt(np.maximum(var_now - var_later, 0.0))[:, None]
    moved = np.abs(difference[:, None] + spread * _NODES[None, :])
    z = (moved + INDIFFERENCE) / se_later
    wrong = 0.5 * _ERFC(z / math.sqrt(2)).astype(float)
    return wrong @ _NODE_WEIGHTS
