"""Contextual decisions: µs per decision at 1,024 hashed features and five paths, beside a
feature-less Thompson Sampling decision, and decisions with learning per second.

    .venv/bin/python -m benchmarks.contextual            # prints a markdown table
    .venv/bin/python -m benchmarks.run --only contextual # the same rows in the table

Workload: the MMLU prompts of ``benchmarks/data/routellm-mmlu`` through
``text_features(dim)`` (words, a length bucket): real text, so the number of non-zero
features per request is what text gives (median ~33 at 1,024 buckets; a row repeats the
decision with word pairs added, ``ngrams=(1, 2)``, median ~71). The
model of five paths first learns from 3,000 of them (so every covariance is dense), then
each decision ranks a different prompt. Timed per call with ``perf_counter_ns`` after a
warm-up, interleaved with the feature-less decision (``ThompsonSampling.rank`` over five
Beta posteriors) so both see the same machine; median of each, best of three rounds.
Feature extraction (text to hashed vector) is timed separately: it is the caller's
feature function, paid once per request.

Threads: OpenBLAS splits a level-2 operation of more than ~8k entries over its thread
pool, which on busy cores cost a rank-one update of a 257 × 257 covariance milliseconds
instead of tens of µs. The policy keeps its updates and decisions off the pool
(``adaptive_router.policies.contextual._GER_SERIAL``), so the benchmark measures as users
run it, BLAS threading left at its default; the decision and update rows are repeated with
``OPENBLAS_NUM_THREADS=1`` and with every core kept busy by CPU burners (``python -c
"while True: pass"``, one per core, started and stopped by the benchmark) to show that the
threading no longer matters. Each condition runs in its own child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

from adaptive_router.features import DEFAULT_DIM, SparseVector, hash_features, text_features
from adaptive_router.policies.contextual import ContextualThompsonSampling
from adaptive_router.policies.thompson import ThompsonSampling
from benchmarks.common import ROOT, Result, fmt_rate, fmt_us

if TYPE_CHECKING:  # the simulator is imported in the child process that times it
    from adaptive_router.simulation.contextual import ContextualEngine

SECTION = "contextual"
RESULTS = ROOT / "benchmarks" / "results-contextual.md"
TARGET_US = 100.0
TARGET_RATE = 20_000.0
PATHS = 5


def _vectors(
    dim: int, n: int, ngrams: tuple[int, ...] = (1,)
) -> tuple[list[SparseVector], float, list[int]]:
    """``n`` MMLU prompts hashed at ``dim``, the median µs of features + hashing, nnz."""
    from benchmarks.mmlu_replay import load_questions

    prompts = load_questions().prompt[:n]
    f = text_features(dim=dim, ngrams=ngrams)
    out, times = [], []
    for p in prompts:
        t0 = time.perf_counter_ns()
        v = hash_features(f(p), dim)
        times.append(time.perf_counter_ns() - t0)
        out.append(v)
    return out, float(np.median(times)) / 1000.0, [int(v.indices.size) for v in out]


def simulator_rate(
    dim: int, vectors: list[SparseVector], passes: int, engine: ContextualEngine = "numba"
) -> float | None:
    """Decisions per second, learning included, of the simulator's contextual replay
    (:func:`adaptive_router.simulation.contextual.replay`; None without numba for the
    compiled engine): the MMLU questions in shuffled order, GPT-4 and Mixtral with their
    stored correctness and cost, a spend target at the 50/50 mix's cost; the whole call
    timed, the requests' features laid out once before (``Requests.of``, ~3 µs per
    request, like the hashing: once per data set), best of ``passes``."""
    import importlib.util

    from adaptive_router.simulation.contextual import Requests, replay
    from benchmarks.mmlu_replay import load_questions, mix_budget

    if engine == "numba" and importlib.util.find_spec("numba") is None:
        return None
    q = load_questions()
    n = len(vectors)
    rewards, costs = q.correct[:n], q.cost[:n]
    policy = ContextualThompsonSampling(dim=dim)
    target = mix_budget(q)

    def sfc(seed: int) -> np.random.Generator:
        return np.random.Generator(np.random.SFC64(seed))

    replay(policy, vectors[:20], rewards[:20], costs[:20], rng=sfc(0), engine=engine)  # load
    requests = Requests.of(vectors, dim)  # checked and laid out once, like the hashing
    best = 0.0
    for seed in range(passes):
        order = np.random.default_rng(seed).permutation(n)
        t0 = time.perf_counter()
        replay(
            policy,
            requests,
            rewards,
            costs,
            rng=sfc(seed),
            order=order,
            target_usd_per_request=target,
            engine=engine,
        )
        best = max(best, n / (time.perf_counter() - t0))
    return best


def _decision_us(
    dim: int, vectors: list[SparseVector], n_train: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """Median µs of a contextual decision (five paths, after ``n_train`` outcomes) and of
    a feature-less one, interleaved, best of three rounds; and of the read a decision
    cannot avoid: the upper triangle of every path's covariance block at the request's
    features (one numpy ``take`` of K · nnz(nnz+1)/2 entries, index arrays prepared)."""
    policy = ContextualThompsonSampling(dim=dim)
    model = policy.new_model(PATHS)
    for t, v in enumerate(vectors[:n_train]):
        policy.observe(model, int(rng.integers(0, PATHS)), v, float(rng.random() < 0.7), t)
    ts = ThompsonSampling()
    s, f = rng.uniform(50, 500, PATHS), rng.uniform(10, 100, PATHS)
    costs = [0.002, 0.0006, 0.0001, 0.001, 0.00003]
    best_ctx, best_ts = float("inf"), float("inf")
    for _ in range(3):
        ctx_ns, ts_ns = [], []
        for v in vectors[n_train:]:
            t0 = time.perf_counter_ns()
            policy.rank(model, v, rng, costs, 12.5)
            t1 = time.perf_counter_ns()
            ts.rank(s, f, rng)
            t2 = time.perf_counter_ns()
            ctx_ns.append(t1 - t0)
            ts_ns.append(t2 - t1)
        best_ctx = min(best_ctx, float(np.median(ctx_ns)) / 1000.0)
        best_ts = min(best_ts, float(np.median(ts_ns)) / 1000.0)
    k, d = model.mean.shape
    flat_cov = model.cov.reshape(k, d * d)
    blocks = []
    for v in vectors[n_train:]:
        idx = np.append(v.indices, dim)
        rows, cols = np.triu_indices(idx.size)
        blocks.append(idx[rows] * d + idx[cols])
    read_ns = []
    for flat in blocks:
        t0 = time.perf_counter_ns()
        flat_cov.take(flat, axis=1)
        read_ns.append(time.perf_counter_ns() - t0)
    return best_ctx, best_ts, float(np.median(read_ns)) / 1000.0


def _update_us(dim: int, vectors: list[SparseVector], rng: np.random.Generator) -> float:
    """Median µs of ``observe`` (one outcome: the statistics' fold and the cached
    posterior's Sherman–Morrison update, whose rank-one update of the (dim + 1)² covariance
    dominates), five paths; the median leaves out the refactorisation every 4 · (dim + 1)
    updates."""
    policy = ContextualThompsonSampling(dim=dim)
    model = policy.new_model(PATHS)
    times = []
    for t, v in enumerate(vectors):
        k, y = int(rng.integers(0, PATHS)), float(rng.random() < 0.7)
        t0 = time.perf_counter_ns()
        policy.observe(model, k, v, y, t)
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1000.0


def _sizes(quick: bool) -> tuple[int, int]:
    """Outcomes the model learns from before the decisions, and decisions timed."""
    return (600, 600) if quick else (3_000, 4_000)


def measure_core(quick: bool) -> dict[str, float]:
    """Decisions and updates at both dimensions, the rows repeated per condition."""
    n_train, n_decide = _sizes(quick)
    rng = np.random.default_rng(0)
    vectors, feature_us, nnz = _vectors(1024, n_train + n_decide)
    default = _vectors(DEFAULT_DIM, n_train + n_decide)[0]
    out = {
        "feature_us": feature_us,
        "nnz_median": float(np.median(nnz)),
        "nnz_p90": float(np.percentile(nnz, 90)),
    }
    out["decision_us"], out["ts_us"], out["read_us"] = _decision_us(1024, vectors, n_train, rng)
    out["decision_default_us"], out["ts_default_us"], out["read_default_us"] = _decision_us(
        DEFAULT_DIM, default, n_train, rng
    )
    n_update = 600 if quick else 2_000
    out["update_us"] = _update_us(1024, vectors[:n_update], rng)
    out["update_default_us"] = _update_us(DEFAULT_DIM, default[:n_update], rng)
    return out


def measure(quick: bool) -> dict[str, float]:
    """The figures, measured in this process."""
    rng = np.random.default_rng(1)
    out = measure_core(quick)
    # Word pairs added (the default before 2026-12-07): shown once, not per condition.
    n_train, n_decide = _sizes(quick)
    pairs, _, nnz_pairs = _vectors(1024, n_train + n_decide, ngrams=(1, 2))
    out["nnz_pairs_median"] = float(np.median(nnz_pairs))
    out["decision_pairs_us"], out["ts_pairs_us"], out["read_pairs_us"] = _decision_us(
        1024, pairs, n_train, rng
    )
    n = 1_200 if quick else 7_000
    vectors = _vectors(1024, 1)[0]
    default = _vectors(DEFAULT_DIM, n)[0]
    # Learning: the simulator's replay, compiled and through the policy objects.
    full = _vectors(DEFAULT_DIM, 14_042)[0]
    out["learn_default"] = simulator_rate(DEFAULT_DIM, default, 1, engine="numpy") or 0.0
    rate = simulator_rate(DEFAULT_DIM, full, 1 if quick else 3)
    if rate is not None:
        out["sim_default"] = rate
    policy = ContextualThompsonSampling(dim=1024)
    decision = policy.rank(policy.new_model(PATHS), vectors[0], rng, [1e-3] * PATHS, 1.0)
    t0 = time.perf_counter()
    for _ in range(200):
        decision.propensities()
    out["propensity_us"] = (time.perf_counter() - t0) / 200 * 1e6
    return out


def _child(quick: bool, mode: str, single_thread: bool, busy: bool) -> dict[str, float]:
    """Measure in a child process: BLAS threading at its default unless ``single_thread``
    (``OPENBLAS_NUM_THREADS=1``); with ``busy``, one CPU burner per core meanwhile."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENBLAS_NUM_THREADS", None)
    if single_thread:
        env["OPENBLAS_NUM_THREADS"] = "1"
    args = [sys.executable, "-m", "benchmarks.contextual", mode]
    burners = []
    if busy:
        burn = [sys.executable, "-c", "while True: pass"]
        burners = [subprocess.Popen(burn) for _ in range(os.cpu_count() or 1)]
    try:
        proc = subprocess.run(
            args + (["--quick"] if quick else []),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        for b in burners:
            b.kill()
            b.wait()
    out: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _condition_rows(label: str, m: dict[str, float]) -> list[Result]:
    """Decision and update rows of one condition (threads pinned, or cores busy)."""
    return [
        Result(
            SECTION,
            f"decision, 1,024 features / default dim {DEFAULT_DIM}, 5 paths (p50), {label}",
            "—",
            f"{fmt_us(m['decision_us'])} / {fmt_us(m['decision_default_us'])}",
            None,
            f"feature-less TS decision: {fmt_us(m['ts_us'])}; covariance read at 1,024: "
            f"{fmt_us(m['read_us'])}",
        ),
        Result(
            SECTION,
            f"update (observe), 1,024 features / default dim {DEFAULT_DIM} (p50), {label}",
            "—",
            f"{fmt_us(m['update_us'])} / {fmt_us(m['update_default_us'])}",
            None,
            "Sherman–Morrison: a rank-one update of the (dim + 1)² covariance",
        ),
    ]


def run(quick: bool = False) -> list[Result]:
    """The rows for ``benchmarks.run``: measured in a child as users run it (BLAS threading
    at its default), then the decision and update rows in children with single-threaded
    BLAS and with every core busy."""
    m = _child(quick, "--json", single_thread=False, busy=False)
    conditions = [
        ("OPENBLAS_NUM_THREADS=1", _child(quick, "--core", single_thread=True, busy=False)),
        ("cores busy", _child(quick, "--core", single_thread=False, busy=True)),
        (
            "cores busy, OPENBLAS_NUM_THREADS=1",
            _child(quick, "--core", single_thread=True, busy=True),
        ),
    ]
    note = (
        f"MMLU prompts, text_features(dim=1024): median {m['nnz_median']:.0f} non-zero "
        f"features (p90 {m['nnz_p90']:.0f}); model trained on 3,000 first"
    )
    rows = [
        Result(
            SECTION,
            "decision, 1,024 hashed features, 5 paths (p50)",
            f"≤ {TARGET_US:.0f} µs",
            fmt_us(m["decision_us"]),
            m["decision_us"] <= TARGET_US,
            note + f"; feature-less TS decision in the same run: {fmt_us(m['ts_us'])}",
        ),
        Result(
            SECTION,
            "of which: reading the covariance blocks, 1,024 features, 5 paths (p50)",
            "—",
            fmt_us(m["read_us"]),
            None,
            "one numpy take of the K · nnz(nnz+1)/2 entries a decision needs, indices "
            "prepared: the K covariances (5 x 8.4 MB) outgrow the cache",
        ),
        Result(
            SECTION,
            "decision, 1,024 hashed features, words and word pairs, 5 paths (p50)",
            "—",
            fmt_us(m["decision_pairs_us"]),
            None,
            "text_features(dim=1024, ngrams=(1, 2)), the default before 2026-12-07: median "
            f"{m['nnz_pairs_median']:.0f} non-zero features; covariance read "
            f"{fmt_us(m['read_pairs_us'])}; feature-less TS decision: {fmt_us(m['ts_pairs_us'])}",
        ),
        Result(
            SECTION,
            f"decision, default dim {DEFAULT_DIM}, 5 paths (p50)",
            "—",
            fmt_us(m["decision_default_us"]),
            None,
            f"feature-less TS decision in the same run: {fmt_us(m['ts_default_us'])}; "
            f"reading the covariance blocks: {fmt_us(m['read_default_us'])}",
        ),
        Result(
            SECTION,
            f"update (observe), 1,024 features / default dim {DEFAULT_DIM}, 5 paths (p50)",
            "—",
            f"{fmt_us(m['update_us'])} / {fmt_us(m['update_default_us'])}",
            None,
            "one outcome folded: the statistics, and the cached posterior's Sherman–Morrison "
            "update (a rank-one update of the (dim + 1)² covariance, off BLAS's thread pool)",
        ),
        Result(
            SECTION,
            "text_features + hash_features per request (p50)",
            "—",
            fmt_us(m["feature_us"]),
            None,
            "the caller's feature function, once per request",
        ),
        Result(
            SECTION,
            f"decide + learn, default dim {DEFAULT_DIM}, 2 paths, policy objects",
            "—",
            fmt_rate(m["learn_default"]),
            None,
            "simulation.contextual.replay(engine='numpy'): rank, observe (Sherman–Morrison), "
            "cold start, pacer, one request at a time",
        ),
    ]
    if "sim_default" in m:
        rows.append(
            Result(
                SECTION,
                f"simulator: contextual replay, default dim {DEFAULT_DIM}, 2 paths, learning",
                f"≥ {fmt_rate(TARGET_RATE)}",
                fmt_rate(m["sim_default"]),
                m["sim_default"] >= TARGET_RATE,
                "simulation.contextual.replay (compiled kernel): a shuffled pass over the "
                "14,042 MMLU questions under a spend target, the whole call timed (features "
                "hashed and laid out once before); best of 3 "
                "passes; the policy objects' decisions (tests/test_simulation_contextual.py)",
            )
        )
    for label, cm in conditions:
        rows.extend(_condition_rows(label, cm))
    rows.append(
        Result(
            SECTION,
            "exact propensities of one decision, 5 paths",
            "—",
            fmt_us(m["propensity_us"]),
            None,
            "computed later (evaluate()), not on the request path",
        )
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    """``--json``: measure here and print JSON (the child's side); otherwise measure in a
    child, print the table and, unless ``--quick``, write ``benchmarks/results-contextual.md``."""
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args
    if "--json" in args:
        print(json.dumps(measure(quick)))
        return
    if "--core" in args:
        print(json.dumps(measure_core(quick)))
        return
    from benchmarks.common import machine
    from benchmarks.run import markdown_table

    before = machine()
    table = markdown_table(run(quick))
    print(table)
    if quick:
        return
    after = machine()
    RESULTS.write_text(
        f"""# Contextual decisions: cost per decision and learning rate

Rerun: `.venv/bin/python -m benchmarks.contextual` (source: `benchmarks/contextual.py`).
{before["cpu"]}, {before["cores"]} cores, Python {before["python"]}; load average
{before["load"]} at the start, {after["load"]} at the end (a shared machine: compare
rows of one run). Measured in child processes, BLAS threading at its default unless a row
says `OPENBLAS_NUM_THREADS=1`; "cores busy": one CPU burner per core during the measure.

{table}
"""
    )
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
