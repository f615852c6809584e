"""Feature evidence in the stores: each path's linear statistics per (task, context),
folded from the outcomes a write inserts, equal a replay of the stored outcome rows.

Four processes write to one SQLite file and to one PostgreSQL database at once (real
databases, conftest fixtures): batches overlap in time, arrive out of order and are
retried; the stored statistics equal a replay to 1e-9.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path as FsPath

import numpy as np
import pytest

import adaptive_router.stores.feature_stats as fs
from adaptive_router.features import SparseVector, decode_features, encode_features
from adaptive_router.outcomes import Outcome
from adaptive_router.stores import MemoryStore
from adaptive_router.stores.sql import SQLStore

WORKER = str(FsPath(__file__).with_name("mp_worker.py"))


def _assert_equal(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for ctx in want:
        assert set(got[ctx]) == set(want[ctx])
        for path, w in want[ctx].items():
            g = got[ctx][path]
            assert (g.dim, g.count) == (w.dim, w.count)
            assert g.ref_time == pytest.approx(w.ref_time, abs=1e-6)
            scale = max(1.0, float(np.abs(w.xx).max()))
            np.testing.assert_allclose(g.xx, w.xx, rtol=0, atol=1e-9 * scale)
            np.testing.assert_allclose(g.xy, w.xy, rtol=0, atol=1e-9 * scale)


def _replay(outcomes: list[Outcome], half_life: float | None) -> dict:
    out: dict = {}
    for (_, ctx, path), group in fs.groups(outcomes).items():
        out.setdefault(ctx, {})[path] = fs.fold_group(None, group, half_life)
    return out


def test_encoding_round_trips() -> None:
    x = SparseVector(np.array([0, 5, 63], dtype=np.intp), np.array([0.5, -1.25, 3.0]))
    dim, y = decode_features(encode_features(x, 64))
    assert dim == 64
    assert y.indices.tolist() == [0, 5, 63]
    assert y.values.tolist() == [0.5, -1.25, 3.0]
    with pytest.raises(ValueError, match="feature vector"):
        decode_features(b"\x02" + bytes(8))


def test_four_processes_equal_a_replay(sql_url: str) -> None:
    SQLStore(sql_url).close()  # the schema, once, before the workers race for it
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "features", sql_url, "feat", str(seed), "300"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    total = 0
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        got = json.loads(out.strip().splitlines()[-1])
        assert got["written"] == got["rows"]  # retried batches wrote nothing twice
        total += got["rows"]
    store = SQLStore(sql_url)
    try:
        outcomes = store.outcomes("feat")
        stored = store.load_features("feat")
    finally:
        store.close()
    assert len(outcomes) == total
    firsts = [o for o in outcomes if o.attempt == 1]
    assert len(firsts) == 1200 and all(o.features is not None for o in firsts)
    want = _replay(outcomes, 50.0)
    # Task level, and both named contexts: every first attempt counts at the task level.
    assert sum(st.count for st in want[""].values()) == 1200
    assert set(want) == {"", "c0", "c1"}
    _assert_equal(stored, want)


def test_the_memory_store_folds_the_same(tmp_path: FsPath) -> None:
    rng = np.random.default_rng(7)
    rows = []
    for i in range(200):
        idx = np.sort(rng.choice(32, size=4, replace=False)).astype(np.intp)
        x = SparseVector(idx, rng.normal(size=4))
        rows.append(
            Outcome(
                f"r{i}",
                "t",
                f"p{i % 2}",
                1,
                bool(i % 3),
                created_at=1e9 + rng.uniform(0, 100),
                context="c" if i % 2 else "",
                features=encode_features(x, 32),
            )
        )
    mem = MemoryStore()
    for i in range(0, 200, 17):
        mem.write(rows[i : i + 17], 30.0)
    _assert_equal(mem.load_features("t"), _replay(rows, 30.0))
