"""The OBD script on a tiny synthetic csv in the OBD format (offline: no download)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from adaptive_router.simulation.experiments import ope_obd

HEADER = ["", "timestamp", "item_id", "position", "click", "propensity_score", "user_feature_0"]


def _write(path: Path, rows: list[tuple[int, int, int, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i, (item, pos, click, prop) in enumerate(rows):
            w.writerow([i, "2019-11-24 00:00:00+00:00", item, pos, click, prop, "abc"])


def _synthetic(folder: Path, seed: int = 0) -> tuple[np.ndarray, ...]:
    """3 items x 2 positions; random logs uniform (propensity 1/3), BTS prefers item 2."""
    rng = np.random.default_rng(seed)
    n = 3000
    ctr = np.array([[0.05, 0.10, 0.30], [0.02, 0.05, 0.20]])  # (position, item)
    item = rng.integers(0, 3, n)
    pos = rng.integers(0, 2, n)
    click = (rng.random(n) < ctr[pos, item]).astype(int)
    _write(
        folder / "random/all/all.csv",
        [(int(i), int(p) + 1, int(c), 1 / 3) for i, p, c in zip(item, pos, click, strict=True)],
    )
    pi = np.array([[0.1, 0.2, 0.7], [0.2, 0.2, 0.6]])
    b_pos = rng.integers(0, 2, n)
    b_item = np.array([rng.choice(3, p=pi[p]) for p in b_pos])
    b_click = (rng.random(n) < ctr[b_pos, b_item]).astype(int)
    _write(
        folder / "bts/all/all.csv",
        [
            (int(i), int(p) + 1, int(c), float(pi[p, i]))
            for i, p, c in zip(b_item, b_pos, b_click, strict=True)
        ],
    )
    return item, pos, click, b_item, b_pos, b_click


def test_parses_and_estimates_like_the_direct_formula(tmp_path: Path) -> None:
    item, pos, click, b_item, b_pos, b_click = _synthetic(tmp_path)
    random = ope_obd.load(tmp_path / "random/all/all.csv")
    bts = ope_obd.load(tmp_path / "bts/all/all.csv")
    np.testing.assert_array_equal(random.item, item)
    np.testing.assert_array_equal(random.position, pos)  # 1-based in the file, 0-based here
    np.testing.assert_array_equal(random.click, click)
    comparison = ope_obd.compare(random, bts)
    # The target is BTS's empirical item share per position.
    share = np.zeros((2, 3))
    np.add.at(share, (b_pos, b_item), 1.0)
    share /= share.sum(axis=1, keepdims=True)
    w = share[pos, item] * 3.0
    assert comparison.estimates["ips"].value == pytest.approx(np.mean(w * click), abs=1e-12)
    assert comparison.estimates["snips"].value == pytest.approx(
        np.sum(w * click) / np.sum(w), abs=1e-12
    )
    assert comparison.bts_rate == pytest.approx(b_click.mean())
    lo, hi = comparison.bts_interval
    for name in ("ips", "snips", "dr"):
        e = comparison.estimates[name]
        # Same world, enough data: every estimate's interval overlaps BTS's own.
        assert e.low < hi and lo < e.high, (name, e, comparison.bts_interval)


def test_command_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _synthetic(tmp_path / "data")
    ope_obd.main(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    text = (tmp_path / "out" / "ope_obd.md").read_text()
    for label in ("IPS from random logs", "SNIPS", "DR (cross-fitted)", "BTS on-policy"):
        assert label in text
    assert "demonstration on real logs, not a proof" in text
    assert "written to" in capsys.readouterr().out


def test_bad_csv_and_checksum_mismatch_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,position,click\n1,1,0\n")
    with pytest.raises(ValueError, match="propensity_score"):
        ope_obd.load(bad)
    # A cached file that does not match the recorded digest is refused, not used.
    cache = tmp_path / "cache"
    _synthetic(cache / "obd")
    with pytest.raises(RuntimeError, match="SHA-256"):
        ope_obd.fetch(cache)
