"""Bradley-Terry strengths and bootstrap intervals (pure numpy; no database)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from tasks.bradley_terry import (
    Comparison,
    ModelStrength,
    bradley_terry,
    bradley_terry_counted,
    count_outcomes,
    fit_strengths,
)

# Names deliberately not in strength order, so a mix-up between the sorted-by-name index
# and the true order shows.
TRUE = {"delta": -1.0, "alpha": -0.5, "echo": 0.0, "bravo": 0.5, "charlie": 1.2}


def centred(strengths: dict[str, float]) -> dict[str, float]:
    mean = sum(strengths.values()) / len(strengths)
    return {name: value - mean for name, value in strengths.items()}


def simulate(strengths: dict[str, float], n: int, seed: int) -> list[Comparison]:
    """`n` comparisons of random distinct pairs, a beating b with 1 / (1 + exp(b - a))."""
    rng = np.random.default_rng(seed)
    names = list(strengths)
    beta = np.array([strengths[name] for name in names])
    a = rng.integers(0, len(names), size=n)
    b = (a + rng.integers(1, len(names), size=n)) % len(names)
    a_wins = rng.random(n) < 1 / (1 + np.exp(beta[b] - beta[a]))
    return [
        Comparison(names[i], names[j], 1.0 if won else 0.0)
        for i, j, won in zip(a, b, a_wins, strict=True)
    ]


def by_model(results: list[ModelStrength]) -> dict[str, ModelStrength]:
    return {result.model: result for result in results}


# --- counting -------------------------------------------------------------------------------

TINY = [
    Comparison("m1", "m2", 1.0),
    Comparison("m2", "m1", 1.0),
    Comparison("m2", "m1", 0.0),  # m1 won from side b
    Comparison("m1", "m3", 0.5),
    Comparison("m3", "m2", 1.0),
    Comparison("m3", "m2", 0.5),
]


def test_count_outcomes_is_exact_with_ties_and_either_side():
    models, wins = count_outcomes(TINY)

    assert models == ["m1", "m2", "m3"]
    np.testing.assert_array_equal(
        wins,
        [
            [0.0, 2.0, 0.5],  # m1: beat m2 twice (once from each side), tied m3
            [1.0, 0.0, 0.5],  # m2: beat m1 once, tied m3
            [0.5, 1.5, 0.0],  # m3: tied m1, beat m2 once and tied it once
        ],
    )
    # Every comparison shows up as exactly one unit of W[i, j] + W[j, i].
    assert (wins + wins.T).sum() / 2 == len(TINY)


def test_count_outcomes_skips_self_comparisons_but_lists_the_model():
    models, wins = count_outcomes(
        [Comparison("x", "x", 1.0), Comparison("y", "z", 0.0), Comparison("x", "x", 0.5)]
    )

    assert models == ["x", "y", "z"]
    np.testing.assert_array_equal(wins, [[0, 0, 0], [0, 0, 0], [0, 1, 0]])


@pytest.mark.parametrize("outcome", [0.7, -1.0, 2.0, math.nan])
def test_an_outcome_off_the_scale_is_refused(outcome):
    comparisons = [Comparison("a", "b", 1.0), Comparison("a", "b", outcome)]

    with pytest.raises(ValueError, match="outcome must be"):
        count_outcomes(comparisons)
    with pytest.raises(ValueError, match="outcome must be"):
        bradley_terry(comparisons)


def test_records_and_win_rates_are_exact_on_a_tiny_set():
    results = by_model(bradley_terry(TINY, samples=20))

    record = {name: (r.wins, r.losses, r.ties, r.games) for name, r in results.items()}
    assert record == {"m1": (2, 1, 1, 4), "m2": (1, 3, 1, 5), "m3": (1, 0, 2, 3)}
    assert results["m1"].win_rate == pytest.approx(2.5 / 4)
    assert results["m2"].win_rate == pytest.approx(1.5 / 5)
    assert results["m3"].win_rate == pytest.approx(2 / 3)


# --- the fit --------------------------------------------------------------------------------


def test_fit_returns_the_true_strengths_from_expected_win_counts():
    # W[i, j] = 100 * P(i beats j) exactly: the maximum likelihood estimate (prior 0) is then
    # the true strengths themselves, so this checks the iteration reaches the MLE.
    names = list(TRUE)
    beta = np.array([TRUE[name] for name in names])
    wins = 100 / (1 + np.exp(beta[None, :] - beta[:, None]))
    np.fill_diagonal(wins, 0)

    fitted = fit_strengths(names, wins, prior=0)

    np.testing.assert_allclose(fitted, beta - beta.mean(), atol=1e-7)
    assert fitted.mean() == pytest.approx(0, abs=1e-12)


def test_fit_solves_the_likelihood_equations_with_the_prior_added():
    # At the estimate every model's expected wins equal its (prior-augmented) actual wins.
    rng = np.random.default_rng(11)
    wins = rng.integers(0, 30, size=(6, 6)).astype(float)
    wins[0, 5] = wins[5, 0] = 0  # a pair that never met gets no pseudo-wins
    np.fill_diagonal(wins, 0)
    prior = 0.5

    beta = fit_strengths([f"m{i}" for i in range(6)], wins, prior=prior)

    augmented = wins + prior * ((wins + wins.T) > 0)
    games = augmented + augmented.T
    p_win = 1 / (1 + np.exp(beta[None, :] - beta[:, None]))
    np.testing.assert_allclose((games * p_win).sum(axis=1), augmented.sum(axis=1), atol=1e-6)


def test_prior_gives_an_unbeaten_model_a_finite_closed_form_strength():
    # Two models, 9-0 and then 3-0 with a tie: with 0.5 pseudo-wins each way the difference
    # is log((9 + 0.5) / 0.5) = log 19, and log((3 + 0.5 + 0.5) / (0.5 + 0.5)) = log 4.
    unbeaten = fit_strengths(["a", "b"], np.array([[0, 9], [0, 0]]))
    with_tie = fit_strengths(["a", "b"], np.array([[0, 3.5], [0.5, 0]]))

    np.testing.assert_allclose(unbeaten, [math.log(19) / 2, -math.log(19) / 2], atol=1e-9)
    np.testing.assert_allclose(with_tie, [math.log(4) / 2, -math.log(4) / 2], atol=1e-9)


def test_fit_converges_quickly_when_one_model_wins_everything():
    # Plain MM crawls here (see _iterate); the fit must still converge within its defaults
    # and land on the likelihood equations.
    wins = np.array([[0, 5000, 5000], [0, 0, 300], [0, 200, 0]], dtype=float)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        beta = fit_strengths(["a", "b", "c"], wins)

    augmented = wins + 0.5 * (1 - np.eye(3))
    games = augmented + augmented.T
    p_win = 1 / (1 + np.exp(beta[None, :] - beta[:, None]))
    np.testing.assert_allclose((games * p_win).sum(axis=1), augmented.sum(axis=1), atol=1e-6)


def test_prior_zero_refuses_data_without_a_finite_estimate():
    with pytest.raises(ValueError, match="do not exist"):
        fit_strengths(["a", "b", "c"], np.array([[0, 5, 2], [1, 0, 3], [0, 0, 0]]), prior=0)


def test_fit_centres_each_component_on_its_own():
    # {a, b} never met {c, d}; e met no one.
    names = ["a", "b", "c", "d", "e"]
    wins = np.zeros((5, 5))
    wins[0, 1], wins[1, 0] = 6, 2
    wins[2, 3], wins[3, 2] = 1, 3

    fitted = fit_strengths(names, wins, prior=0)

    np.testing.assert_allclose(fitted, [math.log(3) / 2, -math.log(3) / 2, -math.log(3) / 2,
                                        math.log(3) / 2, 0.0], atol=1e-9)  # fmt: skip


def test_fit_warns_when_it_runs_out_of_iterations():
    wins = np.array([[0, 30, 20], [1, 0, 30], [1, 2, 0]])

    with pytest.warns(RuntimeWarning, match="did not converge"):
        fit_strengths(["a", "b", "c"], wins, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_strengths(["a", "b", "c"], wins)


def test_fit_refuses_a_matrix_of_the_wrong_shape_or_sign():
    with pytest.raises(ValueError, match="shape"):
        fit_strengths(["a", "b", "c"], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        fit_strengths(["a", "b"], np.array([[0, -1], [1, 0]]))


# --- bradley_terry on synthetic data from known strengths -----------------------------------


def test_recovers_known_strengths_with_intervals_that_cover_them():
    comparisons = simulate(TRUE, 4000, seed=7)
    truth = centred(TRUE)

    results = bradley_terry(comparisons, samples=200, seed=1)

    assert [r.model for r in results] == sorted(TRUE, key=TRUE.get, reverse=True)
    assert sum(r.strength for r in results) == pytest.approx(0, abs=1e-9)
    for r in results:
        assert r.strength == pytest.approx(truth[r.model], abs=0.15), r
        assert r.low < truth[r.model] < r.high, r
        # Covering by being uselessly wide would not count: ~4 standard errors at most.
        assert r.low < r.strength < r.high and r.high - r.low < 0.4, r
    assert sum(r.games for r in results) == 2 * len(comparisons)


def test_intervals_have_about_their_nominal_coverage():
    # Over 40 independent data sets (200 intervals), 95% intervals should miss the truth
    # about 10 times: far fewer misses means they are too wide, far more too narrow.
    truth = centred(TRUE)
    covered = 0
    for seed in range(40):
        for r in bradley_terry(simulate(TRUE, 1500, seed=100 + seed), samples=200, seed=seed):
            covered += r.low <= truth[r.model] <= r.high

    assert 0.88 <= covered / 200 <= 0.985


def test_multinomial_bootstrap_matches_resampling_the_comparisons():
    comparisons = simulate({"a": 0.0, "b": 0.4, "c": 1.0}, 600, seed=3)
    models = ["a", "b", "c"]
    rng = np.random.default_rng(5)
    naive = np.array(
        [
            fit_strengths(
                models,
                count_outcomes(comparisons[k] for k in rng.integers(0, 600, size=600))[1],
            )
            for _ in range(400)
        ]
    )
    naive_width = np.quantile(naive, 0.975, axis=0) - np.quantile(naive, 0.025, axis=0)

    results = by_model(bradley_terry(comparisons, samples=400, seed=5))

    widths = np.array([results[m].high - results[m].low for m in models])
    np.testing.assert_allclose(widths, naive_width, rtol=0.2)


def test_a_lower_level_gives_a_narrower_interval():
    comparisons = simulate(TRUE, 2000, seed=8)

    wide = by_model(bradley_terry(comparisons, level=0.95))
    narrow = by_model(bradley_terry(comparisons, level=0.5))

    for name in TRUE:
        assert wide[name].low < narrow[name].low < narrow[name].high < wide[name].high


def test_same_seed_same_answer_and_the_seed_is_used():
    comparisons = simulate(TRUE, 1000, seed=9)

    first = bradley_terry(comparisons, seed=42)
    again = bradley_terry(iter(comparisons), seed=42)  # any iterable, read once
    other = bradley_terry(comparisons, seed=43)

    assert first == again
    assert [r.strength for r in other] == [r.strength for r in first]
    assert [(r.low, r.high) for r in other] != [(r.low, r.high) for r in first]


def test_the_side_a_model_was_shown_on_does_not_matter():
    comparisons = simulate(TRUE, 1000, seed=10)
    flipped = [Comparison(c.b, c.a, 1.0 - c.outcome) for c in comparisons]

    assert bradley_terry(flipped, seed=4) == bradley_terry(comparisons, seed=4)


# --- edge cases -----------------------------------------------------------------------------


def test_no_comparisons():
    assert bradley_terry([]) == []
    models, wins = count_outcomes([])
    assert models == [] and wins.shape == (0, 0)
    assert fit_strengths([], wins).shape == (0,)


def test_one_model_only():
    (result,) = bradley_terry([Comparison("solo", "solo", 1.0), Comparison("solo", "solo", 0.5)])

    assert result.model == "solo"
    assert (result.strength, result.low, result.high) == (0.0, 0.0, 0.0)
    assert (result.wins, result.losses, result.ties, result.games) == (0, 0, 0, 0)
    assert math.isnan(result.win_rate)


def test_all_ties():
    comparisons = [Comparison(a, b, 0.5) for a, b in [("x", "y"), ("y", "z"), ("z", "x")] * 5]

    results = bradley_terry(comparisons)

    assert [r.model for r in results] == ["x", "y", "z"]  # equal strengths: by name
    for r in results:
        assert r.strength == pytest.approx(0, abs=1e-9)
        assert r.low <= 0 <= r.high
        assert (r.wins, r.losses, r.ties, r.win_rate) == (0, 0, 10, 0.5)


def test_a_model_that_always_loses():
    comparisons = simulate({"p": 0.0, "q": 0.5, "r": 1.0}, 300, seed=12)
    comparisons += [Comparison("loser", other, 0.0) for other in "pqr" for _ in range(20)]
    comparisons += [Comparison(other, "loser", 1.0) for other in "pqr" for _ in range(20)]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = bradley_terry(comparisons)

    last = results[-1]
    assert last.model == "loser"
    assert (last.wins, last.losses, last.win_rate) == (0, 120, 0.0)
    assert all(math.isfinite(v) for v in (last.strength, last.low, last.high))
    assert last.high < min(r.low for r in results[:-1])


def test_an_unbeaten_record_gives_a_prior_set_strength_and_a_collapsed_interval():
    # The documented caveat: every resample of a 9-0 record is 9-0 again.
    (winner, loser) = bradley_terry([Comparison("a", "b", 1.0)] * 9)

    assert winner.model == "a"
    for value in (winner.strength, winner.low, winner.high):
        assert value == pytest.approx(math.log(19) / 2)
    assert loser.strength == pytest.approx(-math.log(19) / 2)


def test_disconnected_models_do_not_crash_and_are_centred_per_component():
    comparisons = [Comparison("a", "b", 1.0)] * 6 + [Comparison("a", "b", 0.0)] * 2
    comparisons += [Comparison("c", "d", 0.5)] * 4 + [Comparison("e", "e", 1.0)]

    results = by_model(bradley_terry(comparisons))

    assert results["a"].strength == pytest.approx(-results["b"].strength)
    assert results["a"].strength == pytest.approx(math.log(6.5 / 2.5) / 2)
    assert results["c"].strength == pytest.approx(0) and results["d"].strength == pytest.approx(0)
    assert (results["e"].strength, results["e"].low, results["e"].high) == (0.0, 0.0, 0.0)
    assert results["a"].low < results["a"].strength < results["a"].high


@pytest.mark.parametrize(("samples", "level"), [(0, 0.95), (10, 0.0), (10, 1.0)])
def test_bad_bootstrap_arguments_are_refused(samples, level):
    with pytest.raises(ValueError):
        bradley_terry(TINY, samples=samples, level=level)


def test_counted_comparisons_fit_exactly_as_the_same_comparisons_listed():
    made = {
        Comparison(a="x", b="y", outcome=1.0): 7,
        Comparison(a="y", b="z", outcome=0.5): 3,
        Comparison(a="z", b="x", outcome=0.0): 5,
        Comparison(a="y", b="x", outcome=1.0): 2,
    }
    listed = [c for c, n in made.items() for _ in range(n)]
    assert bradley_terry_counted(made, seed=3) == bradley_terry(listed, seed=3)
    # A million judged turns cost what these fifteen do: the fit reads counts.
    huge = {c: n * 100_000 for c, n in made.items()}
    assert [s.wins for s in bradley_terry_counted(huge, samples=20)] == [
        s.wins * 100_000 for s in bradley_terry(listed, samples=20)
    ]


def test_a_negative_count_is_refused():
    with pytest.raises(ValueError, match="cannot be counted -1 times"):
        bradley_terry_counted({Comparison(a="x", b="y", outcome=1.0): -1})
