"""Request features: what a contextual policy reads about a request, as a sparse vector.

A feature function ``f(*args, **kwargs)`` gets the request's arguments and returns a
mapping of feature name to value: numbers as they are, strings and booleans as
indicators ``name=value`` (value 1.0). :func:`hash_features` turns such a mapping into a
sparse vector of a fixed dimension (the hashing trick, Weinberger et al. 2009): each name
goes to bucket ``crc32(name) mod dim`` and the values of names sharing a bucket add up, so
memory stays bounded by the dimension however many distinct names appear. CRC-32 (zlib) is
stable across processes, hosts and Python versions, unlike the salted built-in ``hash()``,
which matters because many processes add to one model.

:func:`text_features` is the built-in feature function: hashed word n-grams of the
request's text and a length bucket, for ``features=text_features()`` without code of the
user's.

Bad input (NaN, infinite, huge (above :data:`MAX_FEATURE_MAGNITUDE`) or non-numeric
values, a name that is not a string, something that is not a mapping) raises
:class:`FeatureError` naming the feature. The Router raises it from ``choose()``, where
the caller passes the request and can fix it; inside ``run()`` the attempt proceeds
without features (the path's ordinary evidence ranks it, the outcome still counts as
evidence) and one warning per window says which feature was bad, so a feature bug never
takes a feature down.
"""

from __future__ import annotations

import math
import numbers
import re
import struct
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_DIM",
    "MAX_FEATURE_MAGNITUDE",
    "FeatureError",
    "SparseVector",
    "TextFeatures",
    "decode_features",
    "encode_features",
    "feature_index",
    "hash_features",
    "text_features",
]

#: The hashed dimension when none is given: enough buckets for the words that tell
#: requests apart in a task, small enough that a full-covariance model per path learns
#: at simulator speed (see benchmarks/contextual.py for both measured).
DEFAULT_DIM = 256

#: The largest magnitude a numeric feature may have. A model's statistics sum squares of
#: values, which overflow to infinity near 1e154 and lose every other feature's precision
#: long before; stored once, a non-finite statistic would break the path for every
#: process. Well-scaled features (about [-1, 1]) are far below it.
MAX_FEATURE_MAGNITUDE = 1e12

#: Words of the text, Unicode-aware (letters, digits and underscores).
_WORD = re.compile(r"\w+")


class FeatureError(ValueError):
    """A feature function returned something that cannot be a feature vector; the message
    names the feature and what is expected instead."""


class SparseVector(NamedTuple):
    """A hashed feature vector: ascending unique ``indices`` in ``[0, dim)`` and their
    non-zero ``values``."""

    indices: NDArray[np.intp]
    values: NDArray[np.float64]


#: Head of an encoded feature vector: format version, dimension, number of non-zeros.
_HEAD = struct.Struct("<BII")
_ENCODING = 1


def encode_features(x: SparseVector, dim: int) -> bytes:
    """``x`` (of dimension ``dim``) as bytes: what an outcome and a pending decision carry
    and the stores keep (``outcomes.features``, ``pending_decisions.features``): a
    version byte, the dimension and the count (little-endian u32), then the indices
    (u32) and the values (float64)."""
    n = int(x.indices.shape[0])
    return b"".join(
        (
            _HEAD.pack(_ENCODING, dim, n),
            np.asarray(x.indices, dtype="<u4").tobytes(),
            np.asarray(x.values, dtype="<f8").tobytes(),
        )
    )


def decode_features(data: bytes) -> tuple[int, SparseVector]:
    """``(dim, vector)`` of :func:`encode_features`' bytes; ValueError if malformed."""
    if len(data) < _HEAD.size:
        raise ValueError("an encoded feature vector is at least 9 bytes")
    version, dim, n = _HEAD.unpack_from(data)
    if version != _ENCODING or len(data) != _HEAD.size + 12 * n:
        raise ValueError(f"not an encoded feature vector (version {version}, {len(data)} bytes)")
    idx = np.frombuffer(data, dtype="<u4", count=n, offset=_HEAD.size).astype(np.intp)
    val = np.frombuffer(data, dtype="<f8", count=n, offset=_HEAD.size + 4 * n).astype(np.float64)
    return int(dim), SparseVector(idx, val)


def feature_index(name: str, dim: int) -> int:
    """The bucket of feature ``name`` in a vector of dimension ``dim`` (stable: CRC-32 of
    the UTF-8 name, modulo ``dim``)."""
    return zlib.crc32(name.encode("utf-8", "surrogatepass")) % dim


def _check_dim(dim: object) -> int:
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or int(dim) < 1:
        raise ValueError(f"dim must be a positive integer such as {DEFAULT_DIM}, got {dim!r}")
    return int(dim)


def hash_features(
    features: object, dim: int, *, names: dict[int, str] | None = None
) -> SparseVector:
    """Validate a feature mapping and hash it into a sparse vector of dimension ``dim``.

    ``features``: a mapping of ``str`` names to numbers (int, float, numpy scalars),
    strings or booleans. A string or boolean value ``v`` becomes the indicator feature
    ``"name=v"`` with value 1.0; a number is used as it is (scale numbers to about
    [-1, 1]: the model's prior treats every weight alike). Zero values are left out.

    Raises :class:`FeatureError` naming the feature for a NaN or infinite value, a number
    of magnitude above :data:`MAX_FEATURE_MAGNITUDE`, a value of another type (None, a
    list, ...), a name that is not a string, or ``features`` not being a mapping.

    ``names``: if given, each bucket this request uses is mapped to its (latest) feature
    name, ``"name=v"`` for indicators: how a router names a path's influential buckets.
    """
    d = _check_dim(dim)
    if not isinstance(features, Mapping):
        raise FeatureError(
            "features must be a mapping of feature name to number (or str/bool "
            f"indicator), got {type(features).__name__}: return a dict such as "
            "{'length': 0.3, 'language': 'de'}"
        )
    acc: dict[int, float] = {}
    crc = zlib.crc32
    for name, value in features.items():
        if type(name) is not str and not isinstance(name, str):
            raise FeatureError(
                f"feature names must be strings, got {name!r} ({type(name).__name__})"
            )
        kind = type(value)
        try:
            # Exact types first: the ABC checks below cost ~1 µs per feature.
            if kind is float or kind is int:
                v = float(value)
                key = name
            elif isinstance(value, (str, bool, np.bool_)):
                key = f"{name}={bool(value) if isinstance(value, np.bool_) else value}"
                v = 1.0
            elif isinstance(value, numbers.Real):
                v = float(value)
                key = name
            else:
                raise FeatureError(
                    f"feature {name!r} has a {kind.__name__} value ({value!r}): values must "
                    "be numbers, strings or booleans"
                )
        except OverflowError:  # an int or Fraction beyond any float
            v = math.inf
            key = name
        if v == 0.0:
            continue
        if not -MAX_FEATURE_MAGNITUDE <= v <= MAX_FEATURE_MAGNITUDE:  # NaN fails it too
            shown = "too large for a float" if v == math.inf and kind is not float else repr(v)
            raise FeatureError(
                f"feature {name!r} is {shown}: values must be finite numbers of magnitude "
                f"at most {MAX_FEATURE_MAGNITUDE:g} (scale it to about [-1, 1], e.g. "
                "divide by a typical value or take a log)"
            )
        i = crc(key.encode("utf-8", "surrogatepass")) % d
        acc[i] = acc.get(i, 0.0) + v
        if names is not None:
            names[i] = key
    keys = sorted(i for i, v in acc.items() if v != 0.0)
    return SparseVector(
        np.array(keys, dtype=np.intp), np.array([acc[i] for i in keys], dtype=np.float64)
    )


@dataclass(frozen=True)
class TextFeatures:
    """The feature function :func:`text_features` returns (see there)."""

    dim: int
    ngrams: tuple[int, ...]
    length_buckets: bool
    lowercase: bool
    max_chars: int

    def text_of(self, args: Sequence[object], kwargs: Mapping[str, object]) -> str:
        """The request's text: the first positional ``str`` argument, else ``text=``."""
        for a in args:
            if isinstance(a, str):
                return a
        text = kwargs.get("text")
        if isinstance(text, str):
            return text
        raise FeatureError(
            "text_features() found no text: pass the request's text as the first string "
            "argument or as text=..., or give the Router a feature function of your own"
        )

    def __call__(self, *args: object, **kwargs: object) -> dict[str, float]:
        """``{"w:<n-gram>": weight, ..., "len:<bucket>": 1.0}`` for the request's text."""
        text = self.text_of(args, kwargs)
        head = text[: self.max_chars]
        words = _WORD.findall(head.lower() if self.lowercase else head)
        counts: Counter[str] = Counter()
        for n in self.ngrams:
            if n == 1:
                counts.update(words)
            else:
                counts.update(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
        # Sublinear counts, L2-normalised: a word said ten times is not ten times the
        # evidence, and a long text's words must not outweigh the bias and the prior.
        weights = {g: 1.0 + math.log(c) for g, c in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        out = {f"w:{g}": w / norm for g, w in weights.items()}
        if self.length_buckets:
            # Characters, not words: the whole text counts (max_chars only bounds the
            # tokenising), and it is free to measure.
            out[f"len:{int(math.log2(len(text) + 1))}"] = 1.0
        return out


def text_features(
    dim: int = DEFAULT_DIM,
    ngrams: Sequence[int] = (1,),
    length_buckets: bool = True,
    *,
    lowercase: bool = True,
    max_chars: int = 20_000,
) -> TextFeatures:
    """A feature function reading the request's text: hashed word n-grams and its length.

    The text is the request's first positional ``str`` argument, else its ``text=``
    keyword argument (neither: :class:`FeatureError`). Words are runs of letters, digits
    and underscores, lowercased by default; each n-gram (``ngrams=(1,)``: words;
    ``(1, 2)``: words and word pairs) is the feature ``"w:<n-gram>"`` with weight
    ``1 + ln(count)``, the weights scaled to unit length. ``length_buckets`` adds
    ``"len:<k>"`` = 1.0 with ``k = floor(log2(characters + 1))``. Only the first
    ``max_chars`` characters are tokenised, which bounds the cost per request.

    Words alone by default: on the MMLU replay (benchmarks/mmlu_replay.py, 20 shuffles,
    dimension 256, at 50% GPT-4 share) word pairs routed no better (PGR 0.590 ± 0.013
    with pairs, 0.599 ± 0.010 without) while doubling a request's non-zero features
    (median 33 → 71 on those questions at 1,024 buckets), and a decision reads
    O(non-zeros²) of each path's covariance: 195 µs per decision at 1,024 buckets and
    five paths instead of 80 (benchmarks/contextual.py).

    ``dim`` is the hashed dimension the router uses with these features (an attribute
    of the returned function); a larger one separates more words and costs memory and
    time per update quadratically (a full covariance per path).
    """
    d = _check_dim(dim)
    grams = tuple(ngrams) if isinstance(ngrams, Sequence) and not isinstance(ngrams, str) else ()
    if not grams or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in grams):
        raise ValueError(
            f"ngrams must be a sequence of positive integers such as (1,) or (1, 2), got {ngrams!r}"
        )
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f"max_chars must be a positive integer, got {max_chars!r}")
    return TextFeatures(
        dim=d,
        ngrams=tuple(sorted(set(grams))),
        length_buckets=bool(length_buckets),
        lowercase=bool(lowercase),
        max_chars=max_chars,
    )
