"""Request features: stable hashing, indicators, validation errors naming the feature,
and the built-in text features."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import zlib
from fractions import Fraction

import numpy as np
import pytest

from adaptive_router.features import (
    DEFAULT_DIM,
    FeatureError,
    feature_index,
    hash_features,
    text_features,
)


def test_feature_index_is_crc32_of_the_utf8_name_and_does_not_depend_on_the_process() -> None:
    # CRC-32 values are fixed by the algorithm (zlib): these never change between runs,
    # hosts or Python versions, unlike the salted built-in hash().
    assert zlib.crc32(b"w:the") == 3_510_790_131
    assert feature_index("w:the", 256) == 3_510_790_131 % 256
    assert feature_index("w:the", 1_000_003) == 3_510_790_131 % 1_000_003
    assert feature_index("é", 97) == zlib.crc32("é".encode()) % 97
    code = (
        "from adaptive_router.features import hash_features, text_features;"
        "v = hash_features(text_features(64)('Photosynthesis in plant cells'), 64);"
        "print(v.indices.tolist(), [round(x, 12) for x in v.values.tolist()])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1
    here = hash_features(text_features(64)("Photosynthesis in plant cells"), 64)
    assert outs == {f"{here.indices.tolist()} {[round(x, 12) for x in here.values.tolist()]}\n"}


def test_hash_features_adds_values_sharing_a_bucket_and_sorts_indices() -> None:
    v = hash_features({"a": 0.5, "b": -2.0, "c": 1.25}, 1)
    assert v.indices.tolist() == [0]
    assert v.values.tolist() == [-0.25]
    names = {"alpha": 1.0, "beta": 2.0, "gamma": 3.0, "delta": 4.0}
    w = hash_features(names, 1024)
    expected: dict[int, float] = {}
    for n, x in names.items():
        expected[zlib.crc32(n.encode()) % 1024] = expected.get(zlib.crc32(n.encode()) % 1024, 0) + x
    assert w.indices.tolist() == sorted(expected)
    assert w.values.tolist() == [expected[i] for i in sorted(expected)]
    assert w.indices.dtype == np.intp and w.values.dtype == np.float64


def test_strings_and_booleans_are_indicators_and_zeros_are_left_out() -> None:
    dim = 4096
    assert hash_features({"lang": "de"}, dim) == hash_features({"lang=de": 1.0}, dim)
    got = hash_features({"vip": True, "beta": False}, dim)
    want = hash_features({"vip=True": 1.0, "beta=False": 1.0}, dim)
    assert got.indices.tolist() == want.indices.tolist()
    assert got.values.tolist() == want.values.tolist() == [1.0, 1.0]
    np_values = hash_features({"x": np.float32(0.5), "n": np.int64(3), "flag": np.bool_(True)}, dim)
    plain = hash_features({"x": 0.5, "n": 3, "flag=True": 1.0}, dim)
    assert np_values.indices.tolist() == plain.indices.tolist()
    assert np_values.values.tolist() == plain.values.tolist()
    assert hash_features({"x": 0.0, "y": 0}, dim).indices.size == 0


_MAPPING = "features must be a mapping of feature name to number (or str/bool indicator)"


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"length": math.nan}, "feature 'length' is nan"),
        ({"score": math.inf}, "feature 'score' is inf"),
        ({"score": -math.inf}, "feature 'score' is -inf"),
        # Finite but huge: its square would overflow the stored statistics.
        ({"bytes": 1e200}, "feature 'bytes' is 1e+200: values must be finite numbers of magnitude"),
        ({"delta": -2e12}, "feature 'delta' is -2000000000000.0: values must be finite"),
        ({"count": 10**400}, "feature 'count' is too large for a float"),
        ({"ratio": Fraction(10**400, 3)}, "feature 'ratio' is too large for a float"),
        ({"tier": None}, "feature 'tier' has a NoneType value"),
        ({"tags": ["a", "b"]}, "feature 'tags' has a list value"),
        ({"z": 1 + 2j}, "feature 'z' has a complex value"),
        ({3: 1.0}, "feature names must be strings, got 3"),
        ([("a", 1.0)], "features must be a mapping of feature name to number"),
        (
            "text",
            f"{_MAPPING}, got str",
        ),
        (
            None,
            f"{_MAPPING}, got NoneType",
        ),
    ],
)
def test_bad_features_raise_naming_the_feature(features: object, message: str) -> None:
    with pytest.raises(FeatureError, match="^" + _escape(message)):
        hash_features(features, 64)
    assert issubclass(FeatureError, ValueError)


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_dim_must_be_a_positive_integer() -> None:
    for bad in (0, -1, 1.5, True, "64"):
        with pytest.raises(ValueError, match="dim must be a positive integer"):
            hash_features({"a": 1.0}, bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="dim must be a positive integer"):
            text_features(bad)  # type: ignore[arg-type]


def test_text_features_words_pairs_and_length_bucket() -> None:
    f = text_features(ngrams=(1, 2))
    assert f.dim == DEFAULT_DIM
    out = f("The cat saw the CAT.")
    words = {"the": 2, "cat": 2, "saw": 1}
    pairs = {"the cat": 2, "cat saw": 1, "saw the": 1}
    raw = {f"w:{g}": 1.0 + math.log(c) for g, c in {**words, **pairs}.items()}
    norm = math.sqrt(sum(v * v for v in raw.values()))
    bucket = int(math.log2(len("The cat saw the CAT.") + 1))
    assert out == pytest.approx({**{k: v / norm for k, v in raw.items()}, f"len:{bucket}": 1.0})
    text_part = [v for k, v in out.items() if k.startswith("w:")]
    assert math.isclose(sum(v * v for v in text_part), 1.0)


def test_text_features_default_is_words_and_a_length_bucket() -> None:
    out = text_features()("The cat saw the CAT.")
    raw = {"w:the": 1.0 + math.log(2), "w:cat": 1.0 + math.log(2), "w:saw": 1.0}
    norm = math.sqrt(sum(v * v for v in raw.values()))
    bucket = int(math.log2(len("The cat saw the CAT.") + 1))
    assert out == pytest.approx({**{k: v / norm for k, v in raw.items()}, f"len:{bucket}": 1.0})


def test_text_features_reads_the_first_string_argument_or_text() -> None:
    f = text_features(ngrams=(1,), length_buckets=False)
    assert f(3, "alpha beta", "gamma") == f("alpha beta") == f(text="alpha beta")
    assert set(f(7, text="delta")) == {"w:delta"}
    with pytest.raises(FeatureError, match="found no text: pass the request's text"):
        f(1, 2, prompt="not the text keyword")
    assert f("") == {}
    assert set(text_features(ngrams=(1,))("")) == {"len:0"}


def test_text_features_options() -> None:
    assert set(text_features(ngrams=(2,), length_buckets=False)("a b c")) == {"w:a b", "w:b c"}
    assert set(text_features(lowercase=False, ngrams=(1,), length_buckets=False)("A a")) == {
        "w:A",
        "w:a",
    }
    short = text_features(max_chars=5, ngrams=(1,))("alpha beta gamma")
    # Only the first 5 characters are tokenised; the length bucket sees the whole text.
    assert set(short) == {"w:alpha", f"len:{int(math.log2(17))}"}
    for bad in ((0,), (), 3, "12", (1.5,)):
        with pytest.raises(ValueError, match="ngrams must be a sequence of positive integers"):
            text_features(ngrams=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_chars must be a positive integer"):
        text_features(max_chars=0)


def test_hash_features_names_the_buckets_it_uses() -> None:
    names: dict[int, str] = {}
    x = hash_features({"tier": "pro", "length": 0.5, "beta": True}, 64, names=names)
    assert sorted(names) == sorted(int(i) for i in x.indices)
    assert set(names.values()) == {"tier=pro", "length", "beta=True"}
    assert names[feature_index("tier=pro", 64)] == "tier=pro"
    plain = hash_features({"tier": "pro", "length": 0.5}, 64)
    named = hash_features({"tier": "pro", "length": 0.5}, 64, names={})
    np.testing.assert_array_equal(plain.indices, named.indices)
    np.testing.assert_array_equal(plain.values, named.values)


def test_the_largest_magnitude_is_accepted_and_sums_stay_finite() -> None:
    from adaptive_router.features import MAX_FEATURE_MAGNITUDE

    top = MAX_FEATURE_MAGNITUDE
    assert hash_features({"a": top, "b": -top}, 4096).values.tolist() == [
        v
        for _, v in sorted({feature_index("a", 4096): top, feature_index("b", 4096): -top}.items())
    ]
    # Names sharing one bucket add up, and stay finite however many there are.
    summed = hash_features({f"f{i}": top for i in range(50)}, 1)
    assert summed.values.tolist() == [50 * top]
