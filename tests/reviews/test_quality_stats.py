"""Agreement statistics from count tables: checked against the `krippendorff` package,
against published worked examples, by simulation from raters with known agreement, and on
degenerate tables (issue 18)."""

from __future__ import annotations

import math

import krippendorff
import numpy as np
import pytest

from reviews import quality_stats as qs

SEEDS = range(40)
PAIRS = 300
MIN_COVERAGE = 0.85


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _finite_or_none(interval: qs.Interval) -> bool:
    return all(
        v is None or math.isfinite(v) for v in (interval.estimate, interval.low, interval.high)
    )


# --- Reference implementation: the krippendorff package ------------------------------------


def _noisy_scores(seed: int, n: int, *, values=(1, 2, 3, 4, 5)) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng(seed)
    first = rng.choice(values, size=n)
    second = np.clip(first + rng.choice([-2, -1, 0, 0, 0, 1], size=n), min(values), max(values))
    return first, second


@pytest.mark.parametrize("metric", ["interval", "ordinal", "nominal"])
@pytest.mark.parametrize("seed", range(6))
def test_alpha_matches_the_krippendorff_package(metric, seed):
    first, second = _noisy_scores(seed, n=20 + 30 * seed)
    table = qs.pair_table(first, second, values=qs.SCORE_VALUES)

    mine = qs.krippendorff_alpha(table, metric=metric, rng=_rng())
    reference = krippendorff.alpha(
        reliability_data=np.array([first, second], dtype=float), level_of_measurement=metric
    )

    assert mine.estimate == pytest.approx(reference, abs=1e-12)
    assert mine.n == len(first)


@pytest.mark.parametrize("metric", ["interval", "ordinal"])
def test_alpha_matches_the_package_when_some_scores_are_never_given(metric):
    # Only 2..4 used: the ordinal metric's distances depend on the values in use, and the
    # empty rows of the 5x5 table must not change them.
    first, second = _noisy_scores(7, n=60, values=(2, 3, 4))
    table = qs.pair_table(first, second, values=qs.SCORE_VALUES)

    mine = qs.krippendorff_alpha(table, metric=metric, rng=_rng())
    reference = krippendorff.alpha(
        reliability_data=np.array([first, second], dtype=float), level_of_measurement=metric
    )

    assert mine.estimate == pytest.approx(reference, abs=1e-12)


# --- Published worked examples of kappa ------------------------------------------------------

# Altman, D. G. (1991). Practical Statistics for Medical Research, Chapman & Hall, section 14.3
# (tables 14.3 and 14.4), from Boyd et al. (1982), J Natl Cancer Inst 68:357-363: two
# radiologists grading 85 xeromammograms as normal, benign disease, suspected cancer, cancer.
# Published: kappa = 0.47, weighted kappa = 0.57 with linear weights 1, 0.67, 0.33, 0.
# By hand: p_o = 54/85, p_e = (33*28 + 22*38 + 29*16 + 1*3)/85^2 = 2227/7225, so
# kappa = (54*85 - 2227) / (7225 - 2227) = 2363/4998.
ALTMAN_XEROMAMMOGRAMS = np.array(
    [
        [21, 12, 0, 0],
        [4, 17, 1, 0],
        [3, 9, 15, 2],
        [0, 0, 0, 1],
    ]
)


def test_unweighted_kappa_is_altmans_worked_example():
    result = qs.weighted_kappa(ALTMAN_XEROMAMMOGRAMS, weights="unweighted", rng=_rng())

    assert result.estimate == pytest.approx(2363 / 4998, abs=1e-12)
    assert round(result.estimate, 2) == 0.47
    assert result.n == 85


def test_linear_weighted_kappa_is_altmans_worked_example():
    result = qs.weighted_kappa(ALTMAN_XEROMAMMOGRAMS, weights="linear", rng=_rng())

    assert round(result.estimate, 2) == 0.57


def test_quadratic_kappa_is_the_maple_essaytools_example():
    # Maple's EssayTools[QuadraticWeightedKappa] help page, example 1: these two lists of
    # grades give 0.758620689655172 (= 22/29), the range 1..10 taken from the data.
    first = [9, 7, 8, 7, 6, 8, 3, 5, 10]
    second = [8, 8, 6, 6, 7, 6, 1, 4, 8]
    table = qs.pair_table(first, second, values=range(1, 11))

    result = qs.weighted_kappa(table, rng=_rng())

    assert result.estimate == pytest.approx(22 / 29, abs=1e-12)


def test_unweighted_kappa_of_the_two_by_two_textbook_case():
    # 50 applications, yes/yes 20, yes/no 5, no/yes 10, no/no 15: p_o = 0.7, p_e = 0.5,
    # kappa = 0.4 (the worked example of Wikipedia's "Cohen's kappa" article).
    result = qs.weighted_kappa(np.array([[20, 5], [10, 15]]), weights="unweighted", rng=_rng())

    assert result.estimate == pytest.approx(0.4, abs=1e-12)


def test_kappa_does_not_depend_on_which_rater_is_first():
    table = ALTMAN_XEROMAMMOGRAMS
    for weights in ("quadratic", "linear", "unweighted"):
        kept = qs.weighted_kappa(table, weights=weights, rng=_rng()).estimate
        turned = qs.weighted_kappa(table.T, weights=weights, rng=_rng()).estimate
        assert kept == pytest.approx(turned, abs=1e-12)


def test_direction_agreement_counts_ties_as_their_own_direction():
    # Rows: first rater's preference -3..3; columns: the second's.
    first = [-3, -1, -2, 0, 0, 2, 3, 1, -1, 1]
    second = [-1, -3, 1, 0, -1, 3, 3, 0, 0, 2]
    # Same sign: (-3,-1), (-1,-3), (0,0), (2,3), (3,3), (1,2) = 6 of 10; the other four
    # are (-2,1) A/B, (0,-1) tie/A, (1,0) B/tie, (-1,0) A/tie.
    table = qs.pair_table(first, second, values=qs.PREFERENCE_VALUES)

    result = qs.direction_agreement(table, rng=_rng())

    assert result.estimate == pytest.approx(0.6)
    assert result.n == 10
    assert 0 <= result.low <= 0.6 <= result.high <= 1
    assert qs.sign_table(table).tolist() == [[2, 1, 1], [1, 1, 0], [0, 1, 3]]


# --- Synthetic raters with known agreement -----------------------------------------------


def _rater(points: int, *, exact: float, near: float, shift: int = 0) -> np.ndarray:
    """A rater's response matrix R[true, given]: the true point with `exact`, a neighbour
    with `near`, any point uniformly otherwise; `shift` moves every answer up (a bias that
    makes the two raters' marginals differ)."""
    response = np.zeros((points, points))
    for true in range(points):
        response[true] += (1 - exact - near) / points
        response[true, min(points - 1, max(0, true + shift))] += exact
        neighbours = [p for p in (true - 1, true + 1) if 0 <= p < points]
        for p in neighbours:
            response[true, p] += near / len(neighbours)
    return response


def _joint(prior: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """P[a, b]: the two raters answer independently given the true point."""
    return first.T @ np.diag(prior) @ second


def _simulate(rng, prior, first, second, n: int) -> np.ndarray:
    points = len(prior)
    truth = rng.choice(points, size=n, p=prior)

    def answer(response):
        cumulative = np.cumsum(response[truth], axis=1)
        return np.minimum((rng.random(n)[:, None] > cumulative).sum(axis=1), points - 1)

    table = np.zeros((points, points), dtype=np.int64)
    np.add.at(table, (answer(first), answer(second)), 1)
    return table


def _true_quadratic_kappa(joint: np.ndarray) -> float:
    k = joint.shape[0]
    w = (np.arange(k)[:, None] - np.arange(k)[None, :]) ** 2
    chance = np.outer(joint.sum(axis=1), joint.sum(axis=0))
    return 1 - (w * joint).sum() / (w * chance).sum()


def _true_interval_alpha(joint: np.ndarray) -> float:
    k = joint.shape[0]
    d2 = (np.arange(k)[:, None] - np.arange(k)[None, :]) ** 2
    pooled = (joint.sum(axis=1) + joint.sum(axis=0)) / 2
    return 1 - (d2 * joint).sum() / (d2 * np.outer(pooled, pooled)).sum()


PREFERENCE_PRIOR = np.array([0.12, 0.16, 0.14, 0.16, 0.14, 0.16, 0.12])
SCORE_PRIOR = np.array([0.08, 0.17, 0.3, 0.3, 0.15])


def _coverage(
    estimator, truth: float, prior, first, second, samples: int = qs.DEFAULT_SAMPLES
) -> tuple[float, list[qs.Interval]]:
    results = []
    for seed in SEEDS:
        table = _simulate(_rng(seed), prior, first, second, PAIRS)
        results.append(estimator(table, rng=_rng(10_000 + seed), samples=samples))
    covered = sum(r.low <= truth <= r.high for r in results)
    return covered / len(results), results


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (_rater(7, exact=0.55, near=0.3), _rater(7, exact=0.55, near=0.3)),
        (_rater(7, exact=0.4, near=0.3), _rater(7, exact=0.5, near=0.2, shift=1)),
    ],
    ids=["alike", "second-leans-to-B"],
)
# 200 resamples: what the dashboard draws for each contractor's and reviewer's row.
@pytest.mark.parametrize("samples", [qs.DEFAULT_SAMPLES, 200])
def test_kappa_interval_covers_the_true_kappa_in_nearly_every_seed(first, second, samples):
    truth = _true_quadratic_kappa(_joint(PREFERENCE_PRIOR, first, second))

    share, results = _coverage(
        qs.weighted_kappa, truth, PREFERENCE_PRIOR, first, second, samples=samples
    )

    assert share >= MIN_COVERAGE, (truth, share)
    # Informative, not merely wide, and centred on the truth.
    assert np.mean([r.high - r.low for r in results]) < 0.25
    assert np.mean([r.estimate for r in results]) == pytest.approx(truth, abs=0.02)
    # The same intervals are not fooled by a wrong truth 0.15 away.
    assert sum(r.low <= truth + 0.15 <= r.high for r in results) / len(results) < 0.5


@pytest.mark.parametrize("metric", ["interval", "ordinal"])
def test_alpha_interval_covers_the_true_alpha_in_nearly_every_seed(metric):
    first = _rater(5, exact=0.6, near=0.3)
    second = _rater(5, exact=0.5, near=0.35)
    joint = _joint(SCORE_PRIOR, first, second)
    if metric == "interval":
        truth = _true_interval_alpha(joint)
    else:  # the ordinal population value: the statistic on an enormous sample's table
        truth = qs.krippendorff_alpha(np.rint(joint * 1e9), metric="ordinal", rng=_rng(), samples=2)
        truth = truth.estimate

    def estimator(table, rng, samples):
        return qs.krippendorff_alpha(table, metric=metric, rng=rng, samples=samples)

    share, results = _coverage(estimator, truth, SCORE_PRIOR, first, second)

    assert share >= MIN_COVERAGE, (truth, share)
    assert np.mean([r.high - r.low for r in results]) < 0.25
    assert np.mean([r.estimate for r in results]) == pytest.approx(truth, abs=0.02)
    assert sum(r.low <= truth + 0.15 <= r.high for r in results) / len(results) < 0.5


def test_direction_interval_covers_the_true_share():
    first = _rater(7, exact=0.5, near=0.3)
    second = _rater(7, exact=0.5, near=0.3)
    joint = _joint(PREFERENCE_PRIOR, first, second)
    truth = sum(joint[rows, rows].sum() for rows in (slice(0, 3), slice(3, 4), slice(4, 7)))

    share, _ = _coverage(qs.direction_agreement, truth, PREFERENCE_PRIOR, first, second)

    assert share >= MIN_COVERAGE, (truth, share)


def test_the_same_generator_seed_gives_the_same_interval():
    table = _simulate(_rng(3), PREFERENCE_PRIOR, _rater(7, exact=0.5, near=0.3),
                      _rater(7, exact=0.5, near=0.3), 100)  # fmt: skip

    once = qs.weighted_kappa(table, rng=_rng(42))
    again = qs.weighted_kappa(table, rng=_rng(42))
    other = qs.weighted_kappa(table, rng=_rng(43))

    assert once == again
    assert (once.low, once.high) != (other.low, other.high)


# --- Degenerate tables ---------------------------------------------------------------------


@pytest.mark.parametrize("units", [0, 1])
def test_fewer_than_two_pairs_give_no_figure(units):
    preferences = np.zeros((7, 7), dtype=int)
    preferences[2, 4] = units
    scores = np.zeros((5, 5), dtype=int)
    scores[0, 3] = units

    results = [
        qs.direction_agreement(preferences, rng=_rng()),
        qs.weighted_kappa(preferences, rng=_rng()),
        qs.krippendorff_alpha(scores, rng=_rng()),
        qs.krippendorff_alpha(scores, metric="ordinal", rng=_rng()),
    ]

    for result in results:
        assert result == qs.Interval(None, None, None, units, qs.TOO_FEW)


def test_raters_who_always_give_the_same_answer_have_no_kappa_or_alpha():
    preferences = np.zeros((7, 7), dtype=int)
    preferences[1, 1] = 40
    scores = np.zeros((5, 5), dtype=int)
    scores[3, 3] = 40

    kappa = qs.weighted_kappa(preferences, rng=_rng())
    alphas = [qs.krippendorff_alpha(scores, metric=m, rng=_rng()) for m in ("interval", "ordinal")]
    direction = qs.direction_agreement(preferences, rng=_rng())

    for result in (kappa, *alphas):
        assert result == qs.Interval(None, None, None, 40, qs.NO_VARIATION)
    # Agreement on the direction is still a share: all 40 agree.
    assert (direction.estimate, direction.low, direction.high) == (1.0, 1.0, 1.0)


def test_a_thin_table_keeps_its_estimate_but_has_no_interval():
    # Two pairs in two different cells: half the resamples put both in one cell, with no
    # variation, so no interval is drawn from the other half.
    table = np.zeros((5, 5), dtype=int)
    table[0, 0] = 1
    table[4, 4] = 1

    result = qs.krippendorff_alpha(table, rng=_rng())

    assert result.estimate == pytest.approx(1.0)
    assert (result.low, result.high) == (None, None)
    assert "too few" in result.reason


def test_one_rater_without_variation_still_has_a_kappa():
    # The first always says "A slightly better"; the second varies: chance agreement is
    # defined, kappa is (here) zero.
    table = np.zeros((7, 7), dtype=int)
    table[2, [1, 2, 3]] = [5, 10, 5]

    result = qs.weighted_kappa(table, rng=_rng())

    assert result.estimate == pytest.approx(0.0, abs=1e-12)
    assert _finite_or_none(result)


def test_no_nan_leaves_the_module_for_any_small_table():
    rng = _rng(5)
    for _ in range(300):
        preferences = rng.integers(0, 2, size=(7, 7)) * rng.integers(0, 3, size=(7, 7))
        scores = rng.integers(0, 2, size=(5, 5)) * (rng.random((5, 5)) < 0.2)
        for result in (
            qs.direction_agreement(preferences, rng=rng, samples=50),
            qs.weighted_kappa(preferences, rng=rng, samples=50),
            qs.weighted_kappa(preferences, weights="linear", rng=rng, samples=50),
            qs.krippendorff_alpha(scores, rng=rng, samples=50),
            qs.krippendorff_alpha(scores, metric="ordinal", rng=rng, samples=50),
        ):
            assert _finite_or_none(result), result
            if result.estimate is None:
                assert result.reason in (qs.TOO_FEW, qs.NO_VARIATION)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: qs.weighted_kappa(np.zeros((3, 4)), rng=_rng()), "square"),
        (lambda: qs.weighted_kappa(-np.eye(3), rng=_rng()), "negative"),
        (lambda: qs.weighted_kappa(np.eye(3), weights="cubic", rng=_rng()), "unknown weights"),
        (lambda: qs.krippendorff_alpha(np.eye(4), rng=_rng()), "4 values|5 values"),
        (lambda: qs.krippendorff_alpha(np.eye(5), metric="ratio", rng=_rng()), "unknown metric"),
        (lambda: qs.sign_table(np.eye(5)), "7x7"),
        (lambda: qs.direction_agreement(np.eye(7) * 3, rng=_rng(), level=95), "level"),
    ],
)
def test_it_rejects_malformed_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
