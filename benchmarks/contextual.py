"""Contextual decisions: µs per decision at 1,024 hashed features and five paths, beside a
feature-less Thompson Sampling decision, and decisions with learning per second.

    .venv/bin/python -m benchmarks.contextual            # prints a markdown table
    .venv/bin/python -m benchmarks.run --only contextual # the same rows in the table

Workload: the MMLU prompts of ``benchmarks/data/routellm-mmlu`` through
``text_features(dim)`` (words and word pairs, a length bucket): real text, so the number
of non-zero features per request is what text gives (median ~80 at 1,024 buckets). The
model of five paths first learns from 3,000 of them (so every covariance is dense), then
each decision ranks a different prompt. Timed per call with ``perf_counter_ns`` after a
warm-up, interleaved with the feature-less decision (``ThompsonSampling.rank`` over five
Beta posteriors) so both see the same machine; median of each, best of three rounds.
Feature extraction (text to hashed vector) is timed separately: it is the caller's
feature function, paid once per request.

OpenBLAS splits even a 257 × 257 rank-one update over threads, which on a shared
two-core machine costs 20-50x; this benchmark (like mmlu_replay) runs its measurements in
a child process with ``OPENBLAS_NUM_THREADS=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from adaptive_router.features import DEFAULT_DIM, SparseVector, hash_features, text_features
from adaptive_router.policies.contextual import ContextualThompsonSampling, with_bias
from adaptive_router.policies.thompson import ThompsonSampling
from benchmarks.common import ROOT, Result, fmt_rate, fmt_us

SECTION = "contextual"
RESULTS = ROOT / "benchmarks" / "results-contextual.md"
TARGET_US = 100.0
TARGET_RATE = 20_000.0
PATHS = 5


def _vectors(dim: int, n: int) -> tuple[list[SparseVector], float, list[int]]:
    """``n`` MMLU prompts hashed at ``dim``, the median µs of features + hashing, nnz."""
    from benchmarks.mmlu_replay import load_questions

    prompts = load_questions().prompt[:n]
    f = text_features(dim=dim)
    out, times = [], []
    for p in prompts:
        t0 = time.perf_counter_ns()
        v = hash_features(f(p), dim)
        times.append(time.perf_counter_ns() - t0)
        out.append(v)
    return out, float(np.median(times)) / 1000.0, [int(v.indices.size) for v in out]


def _csr(vectors: list[SparseVector], dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The vectors with their bias, as CSR arrays (indptr, indices, values)."""
    rows = [with_bias(v, dim) for v in vectors]
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([r[0].size for r in rows])
    return (
        indptr,
        np.concatenate([r[0] for r in rows]).astype(np.int64),
        np.concatenate([r[1] for r in rows]),
    )


def kernel_rate(
    dim: int, vectors: list[SparseVector], steps: int, fold_stats: bool = True
) -> float | None:
    """Decisions per second, learning included, of the contextual policy's loop compiled
    with numba (None without numba): what the phase-2 simulator kernel can reach at
    ``dim``. Same math as ContextualThompsonSampling + LinearModel + SpendPacer, two paths:
    the score draw over the request's upper-triangle block, the ranking by S - λ·c, the
    statistics' block update, the Sherman–Morrison update of Σ and μ, the price."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(cache=False)
    def loop(indptr, indices, values, rewards, costs, d, steps, seed, fold):  # type: ignore[no-untyped-def]
        np.random.seed(seed)
        k_paths = 2
        cov = np.zeros((k_paths, d, d))
        xx = np.zeros((k_paths, d, d))
        mu = np.zeros((k_paths, d))
        for k in range(k_paths):
            for j in range(d):
                cov[k, j, j] = 1.0
            mu[k, d - 1] = 0.5
        target, gain, over, s2, vs = 0.5 * (costs[0] + costs[1]), 0.005, 0.0, 0.25, 0.1
        u = np.empty(d)
        n_rows = indptr.shape[0] - 1
        chosen = 0
        for t in range(steps):
            r = t % n_rows
            lo, hi = indptr[r], indptr[r + 1]
            price = max(0.0, gain * over / target)
            best, best_score = 0, -np.inf
            for k in range(k_paths):
                m, v = 0.0, 0.0
                for a in range(lo, hi):
                    ia, xa = indices[a], values[a]
                    m += mu[k, ia] * xa
                    row = 0.0
                    for b in range(a + 1, hi):
                        row += cov[k, ia, indices[b]] * values[b]
                    v += xa * (2.0 * row + xa * cov[k, ia, ia])
                score = m + np.sqrt(vs * max(v, 1e-18)) * np.random.standard_normal()
                score -= price * costs[k]
                if score > best_score:
                    best, best_score = k, score
            if np.random.random() < 0.02:
                best = np.random.randint(0, k_paths)
            chosen += best
            y = rewards[r, best]
            if fold:  # the statistics' upper triangle (xx is symmetric)
                for a in range(lo, hi):
                    for b in range(a, hi):
                        xx[best, indices[a], indices[b]] += values[a] * values[b]
            for j in range(d):
                u[j] = 0.0
            for a in range(lo, hi):
                ia, xa = indices[a], values[a]
                for j in range(d):
                    u[j] += xa * cov[best, ia, j]
            q, pred = 0.0, 0.0
            for a in range(lo, hi):
                q += u[indices[a]] * values[a]
                pred += mu[best, indices[a]] * values[a]
            w = 1.0 / s2
            g = w / (1.0 + w * q)
            for i in range(d):
                gi = g * u[i]
                for j in range(d):
                    cov[best, i, j] -= gi * u[j]
                mu[best, i] += g * (y - pred) * u[i]
            over += (costs[best] - target) / target
        return chosen

    indptr, indices, values = _csr(vectors, dim)
    rng = np.random.default_rng(1)
    rewards = (rng.random((len(vectors), 2)) < np.array([0.8, 0.68])).astype(np.float64)
    costs = np.array([0.0012, 0.00007])
    loop(indptr, indices, values, rewards, costs, dim + 1, 50, 0, fold_stats)  # compile
    best = 0.0
    for seed in range(3):
        t0 = time.perf_counter()
        loop(indptr, indices, values, rewards, costs, dim + 1, steps, seed, fold_stats)
        best = max(best, steps / (time.perf_counter() - t0))
    return best


def _decision_us(
    dim: int, vectors: list[SparseVector], n_train: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Median µs of a contextual decision (five paths, after ``n_train`` outcomes) and of
    a feature-less one, interleaved; best of three rounds."""
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
    return best_ctx, best_ts


def measure(quick: bool) -> dict[str, float]:
    """The figures, measured in this process."""
    n_train, n_decide = (600, 600) if quick else (3_000, 4_000)
    rng = np.random.default_rng(0)
    vectors, feature_us, nnz = _vectors(1024, n_train + n_decide)
    default = _vectors(DEFAULT_DIM, n_train + n_decide)[0]
    out = {
        "feature_us": feature_us,
        "nnz_median": float(np.median(nnz)),
        "nnz_p90": float(np.percentile(nnz, 90)),
    }
    out["decision_us"], out["ts_us"] = _decision_us(1024, vectors, n_train, rng)
    out["decision_default_us"], out["ts_default_us"] = _decision_us(
        DEFAULT_DIM, default, n_train, rng
    )
    # Learning in the Python objects: decide + observe per second, two paths.
    pol = ContextualThompsonSampling(dim=DEFAULT_DIM)
    mod = pol.new_model(2)
    t0 = time.perf_counter()
    for t, v in enumerate(default):
        k = int(pol.rank(mod, v, rng, [0.001, 0.0001], 10.0).order[0])
        idx, val = with_bias(v, DEFAULT_DIM)
        mod.observe(k, idx, val, float(rng.random() < 0.7), float(t))
    out["learn_default"] = len(default) / (time.perf_counter() - t0)
    steps = 5_000 if quick else 40_000
    for d, vecs, fold, label in (
        (DEFAULT_DIM, default, True, "kernel_default"),
        (DEFAULT_DIM, default, False, "kernel_default_nostats"),
        (128, _vectors(128, n_train + n_decide)[0], True, "kernel_128"),
    ):
        rate = kernel_rate(d, vecs, steps, fold)
        if rate is not None:
            out[label] = rate
    policy = ContextualThompsonSampling(dim=1024)
    decision = policy.rank(policy.new_model(PATHS), vectors[0], rng, [1e-3] * PATHS, 1.0)
    t0 = time.perf_counter()
    for _ in range(200):
        decision.propensities()
    out["propensity_us"] = (time.perf_counter() - t0) / 200 * 1e6
    return out


def run(quick: bool = False) -> list[Result]:
    """The rows for ``benchmarks.run``, measured in a child with single-threaded BLAS."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "benchmarks.contextual", "--json"]
    proc = subprocess.run(
        args + (["--quick"] if quick else []),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    m = json.loads(proc.stdout.strip().splitlines()[-1])
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
            f"decision, default dim {DEFAULT_DIM}, 5 paths (p50)",
            "—",
            fmt_us(m["decision_default_us"]),
            None,
            f"feature-less TS decision in the same run: {fmt_us(m['ts_default_us'])}",
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
            f"decide + learn, default dim {DEFAULT_DIM}, 2 paths, Python objects",
            "—",
            fmt_rate(m["learn_default"]),
            None,
            "one request at a time: rank, then LinearModel.observe (Sherman–Morrison)",
        ),
    ]
    kernels = (
        ("kernel_default", DEFAULT_DIM, "statistics folded every step"),
        ("kernel_default_nostats", DEFAULT_DIM, "without the statistics' fold (no half-life)"),
        ("kernel_128", 128, "statistics folded every step"),
    )
    for label, dim, what in kernels:
        if label in m:
            judged = label == "kernel_default"
            rows.append(
                Result(
                    SECTION,
                    f"decide + learn, dim {dim}, 2 paths, numba loop",
                    f"≥ {fmt_rate(TARGET_RATE)} (phase-2 simulator)" if judged else "—",
                    fmt_rate(m[label]),
                    m[label] >= TARGET_RATE if judged else None,
                    f"the same math compiled (kernel_rate), {what}; best of 3 x 40,000 steps",
                )
            )
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
rows of one run). Measured in a child process with `OPENBLAS_NUM_THREADS=1`.

{table}
"""
    )
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
