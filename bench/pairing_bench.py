"""Pair sampling: how many judgements until the Bradley-Terry ranking of a pool is right.

    .venv/bin/python -m bench.pairing_bench

A simulation with no database (tasks/pairing.py is pure). A pool of 5 endpoints has known
true Bradley-Terry strengths, given to the endpoints in a random order per seed. Tasks are
drawn with tasks.pairing.choose_pair and handed to a simulated contractor, who answers each
on the 7-point scale: a tie 10% of the time, otherwise the first model is preferred with the
Bradley-Terry probability 1 / (1 + exp(beta_second - beta_first)) (by 1, 2 or 3 points,
which only the sign of matters to the fit). Judgements come back late: IN_FLIGHT tasks are
always open, and the next one to be judged is any of them at random, so each draw sees
tasks that were handed out but not judged yet (`assigned` counts them, `wins` does not).

After every judgement the ranking is tasks.bradley_terry.fit_strengths over all judged
outcomes, scored by Kendall's tau against the true order. A run's "judgements to converge"
is the smallest n at which tau >= 0.9 (with 5 models: the exact order) and stays so at every
later judgement up to --budget; a run that is wrong at the budget counts as budget + 1.

Each mode sees the same seeds: the same true order of the endpoints and the same contractor
random stream. The script exits with 1 unless, on every strength set, ADAPTIVE needs at
least 20% fewer judgements than UNIFORM at the median and on the mean, and choose_pair in
ADAPTIVE mode takes under 10 ms (p95) for a pool of 10.

The defaults (100 seeds, budget 2,000, three strength sets) take 20 to 40 minutes on 2 cores;
`--seeds 20 --sets spaced` gives a first look in a few minutes.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time
from collections import Counter
from multiprocessing import Pool

import numpy as np

from bench import _setup
from tasks import pairing
from tasks.bradley_terry import fit_strengths

# True strengths (beta) of the 5 endpoints; the order of the keys they go to varies by seed.
STRENGTH_SETS = {
    "spaced": (1.2, 0.6, 0.2, -0.3, -0.9),
    "even": (0.8, 0.4, 0.0, -0.4, -0.8),
    "uneven": (2.0, 0.35, 0.1, -0.2, -1.5),
}
TIE = 0.1
IN_FLIGHT = 5
CONVERGED_TAU = 0.9
# The ranking is fitted after every judgement, the bulk of the run time. 1e-5 moves a
# strength by about 1e-6 from the default 1e-9's answer, far below any gap that decides an
# order, in half the sweeps.
FIT_TOL = 1e-5
# WEIGHTED gets these weights in key order: a static allocation, for comparison only.
WEIGHTS = (3.0, 1.0, 1.0, 1.0, 1.0)
TARGET_SAVING = 0.2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pairing_bench", description=__doc__)
    parser.add_argument("--seeds", type=int, default=100, help="runs per mode and strength set")
    parser.add_argument("--budget", type=int, default=2000, help="judgements per run")
    parser.add_argument(
        "--sets", default=",".join(STRENGTH_SETS), help=f"of {', '.join(STRENGTH_SETS)}"
    )
    parser.add_argument(
        "--modes", default=f"{pairing.UNIFORM},{pairing.ADAPTIVE}", help="add weighted to see it"
    )
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="runs in parallel (cores)"
    )
    args = parser.parse_args()
    for name in args.sets.split(","):
        if name not in STRENGTH_SETS:
            parser.error(f"unknown strength set {name!r}")
    for mode in args.modes.split(","):
        if mode not in pairing.MODES:
            parser.error(f"unknown mode {mode!r}")
    return args


# --- The simulation ------------------------------------------------------------------------


def preference(rng: random.Random, p_first: float) -> int:
    """A contractor's 7-point answer: > 0 prefers the first model, 0 is a tie."""
    if rng.random() < TIE:
        return 0
    side = 1 if rng.random() < p_first else -1
    return side * rng.choice((1, 2, 3))


def kendall_tau(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Kendall's tau-a: (concordant - discordant) / pairs; a tie in `estimate` scores 0."""
    upper_i, upper_j = np.triu_indices(len(truth), k=1)
    signs = np.sign(estimate[upper_i] - estimate[upper_j]) * np.sign(
        truth[upper_i] - truth[upper_j]
    )
    return float(signs.mean())


def simulate(
    *, strengths: tuple[float, ...], mode: str, seed: int, budget: int, in_flight: int = IN_FLIGHT
) -> list[float]:
    """Kendall's tau of the fitted ranking after each of `budget` judgements, with
    `in_flight` tasks handed out and not yet judged at every draw."""
    draws = random.Random(f"pairs:{seed}")  # noqa: S311 - a simulation, not secrets
    world = random.Random(f"world:{seed}")  # noqa: S311
    keys = list(range(101, 101 + len(strengths)))
    truth = np.array(world.sample(strengths, len(strengths)))
    index = {key: position for position, key in enumerate(keys)}
    members = [pairing.Member(key=k, weight=w) for k, w in zip(keys, WEIGHTS, strict=False)]
    members += [pairing.Member(key=k) for k in keys[len(WEIGHTS) :]]
    wins: Counter[tuple[int, int]] = Counter()
    assigned: Counter[tuple[int, int]] = Counter()
    won = np.zeros((len(keys), len(keys)))
    open_tasks: list[tuple[int, int]] = []
    taus = []
    for _ in range(budget):
        while len(open_tasks) < in_flight:
            pair = pairing.choose_pair(
                members=members, mode=mode, rng=draws, wins=wins, assigned=assigned
            )
            assigned[pair] += 1
            open_tasks.append(pair)
        first, second = open_tasks.pop(world.randrange(len(open_tasks)))
        i, j = index[first], index[second]
        answer = preference(world, 1.0 / (1.0 + math.exp(truth[j] - truth[i])))
        score = 0.5 if answer == 0 else float(answer > 0)
        wins[(first, second)] += score
        wins[(second, first)] += 1.0 - score
        won[i, j] += score
        won[j, i] += 1.0 - score
        taus.append(kendall_tau(fit_strengths(keys, won, tol=FIT_TOL), truth))
    return taus


def judgements_to_converge(taus: list[float], threshold: float = CONVERGED_TAU) -> int:
    """The smallest n with tau >= threshold after n judgements and after every later one;
    len(taus) + 1 when the last ranking is still wrong."""
    converged = len(taus) + 1
    for n in range(len(taus), 0, -1):
        if taus[n - 1] < threshold:
            break
        converged = n
    return converged


def _run(job: tuple[str, str, int, int]) -> tuple[str, str, int, int]:
    name, mode, seed, budget = job
    taus = simulate(strengths=STRENGTH_SETS[name], mode=mode, seed=seed, budget=budget)
    return name, mode, seed, judgements_to_converge(taus)


# --- Cost of one draw ----------------------------------------------------------------------


def draw_times_ms(size: int, calls: int = 200) -> list[float]:
    """choose_pair(ADAPTIVE) for a pool of `size` with 20 judgements per pair on record."""
    rng = random.Random(size)  # noqa: S311 - synthetic data
    members = [pairing.Member(key=k) for k in range(size)]
    wins: dict[tuple[int, int], float] = {}
    assigned: dict[tuple[int, int], int] = {}
    for i in range(size):
        for j in range(i + 1, size):
            first = rng.randint(0, 20)
            wins[(i, j)], wins[(j, i)] = first, 20 - first
            assigned[(i, j)] = 21
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        pairing.choose_pair(
            members=members, mode=pairing.ADAPTIVE, rng=rng, wins=wins, assigned=assigned
        )
        times.append((time.perf_counter() - started) * 1000)
    return times


# --- Report --------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    names = args.sets.split(",")
    modes = args.modes.split(",")
    print(f"machine:   {_setup.machine()}")
    print(
        f"runs:      {args.seeds} seeds x {len(modes)} modes x {len(names)} strength sets, "
        f"budget {args.budget} judgements, {IN_FLIGHT} in flight, ties {TIE:.0%}, "
        f"{args.processes} processes"
    )
    jobs = [(n, m, s, args.budget) for n in names for m in modes for s in range(args.seeds)]
    with Pool(args.processes) as pool:
        results = pool.map(_run, jobs, chunksize=1)
    needed = {(n, m): [0] * args.seeds for n in names for m in modes}
    for name, mode, seed, count in results:
        needed[(name, mode)][seed] = count

    checks = []
    for name in names:
        uniform = needed[(name, pairing.UNIFORM)] if pairing.UNIFORM in modes else None
        print(f"\n{name}: true strengths {', '.join(f'{b:+.2f}' for b in STRENGTH_SETS[name])}")
        rows = []
        for mode in modes:
            counts = needed[(name, mode)]
            fewer = (
                f"{sum(c < u for c, u in zip(counts, uniform, strict=True))}/{args.seeds}"
                if uniform and mode != pairing.UNIFORM
                else "-"
            )
            rows.append(
                [
                    mode,
                    statistics.median(counts),
                    statistics.mean(counts),
                    _setup.percentile(counts, 90),
                    max(counts),
                    sum(c > args.budget for c in counts),
                    fewer,
                ]
            )
        _setup.print_table(
            ["mode", "median", "mean", "p90", "max", "not converged", "fewer than uniform"],
            rows,
        )
        if uniform and pairing.ADAPTIVE in modes:
            adaptive = needed[(name, pairing.ADAPTIVE)]
            for label, measure in (("median", statistics.median), ("mean", statistics.mean)):
                saving = 1 - measure(adaptive) / measure(uniform)
                print(f"adaptive {label}: {saving:.0%} fewer judgements than uniform")
                checks.append(
                    (
                        f"{name}: adaptive {label} >= {TARGET_SAVING:.0%} fewer",
                        saving >= TARGET_SAVING,
                    )
                )

    print("\nchoose_pair(adaptive), one call, ms:")
    rows = []
    for size in (5, 10, 30):
        times = draw_times_ms(size)
        rows.append([f"{size} endpoints", statistics.median(times), _setup.percentile(times, 95)])
        if size == 10:
            checks.append(("choose_pair(adaptive) p95 < 10 ms at 10 endpoints", rows[-1][2] < 10))
    _setup.print_table(["pool", "median", "p95"], rows)
    print(f"\ntotal run time {time.monotonic() - started:.0f} s")
    return _setup.verdict(checks)


if __name__ == "__main__":
    _setup.finish(main())
