"""One URL redactor for the project: no password reaches a log, an error, a table or a repr."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import urllib.parse

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_router import ConfigurationError, Path, Router, SQLStore, StoreUnavailableError
from adaptive_router._checks import redact, redact_url
from adaptive_router.resilience import RateLimit
from adaptive_router.resilience import redact_url as resilience_redact_url
from adaptive_router.stores import mask_url, open_store
from adaptive_router.stores.sql import mask_url as sql_mask_url

CANARY = "Canary77"
UNREACHABLE = f"postgresql+psycopg://postgres@127.0.0.1:5499/test?password={CANARY}"


def test_old_names_are_the_one_redactor() -> None:
    assert mask_url is sql_mask_url is resilience_redact_url is redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (UNREACHABLE, "postgresql+psycopg://postgres@127.0.0.1:5499/test?password=***"),
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        # Redis takes a lone user info as the password: it was shown whole.
        ("redis://S3cret@h:6379/0", "redis://***@h:6379/0"),
        ("see rediss://tok@h/1 now", "see rediss://***@h/1 now"),
        # Elsewhere a lone user info is a user name, and stays readable.
        ("postgresql://postgres@127.0.0.1/test", "postgresql://postgres@127.0.0.1/test"),
        ("mongodb+srv://u:p@ss/w@h/db", "mongodb+srv://u:***@h/db"),
        (
            "postgresql://u@h/d?sslmode=require&sslpassword=k1&options=-c%20x%3Dy",
            "postgresql://u@h/d?sslmode=require&sslpassword=***&options=-c%20x%3Dy",
        ),
        ("https://h/v1?api_key=K&token=T&q=1", "https://h/v1?api_key=***&token=***&q=1"),
        ("https://h/?client%5Fsecret=S", "https://h/?client%5Fsecret=***"),
        # A URL quoted inside another URL's query, percent-escaped.
        ("x%3A%2F%2Fu%3ApW9%40h%3Fpassword%3DQQ", "x%3A%2F%2Fu%3A***%40h%3Fpassword%3D***"),
        ("host=h password=Zz user=u", "host=h password=*** user=u"),
        ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
        (
            "cannot reach a://u:p@h/d?password=p: refused",
            "cannot reach a://u:***@h/d?password=***: refused",
        ),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


_SAFE = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
# Secrets drawn from characters the rest of the URL never uses, so "not in" is exact.
_SECRET = st.text("QWXZ!$*+,;:=@/%~_-", min_size=3, max_size=16).filter(
    lambda s: any(c in "QWXZ" for c in s)
)


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["postgresql+psycopg", "redis", "rediss", "https", "x-y.z"]),
    user=_SAFE,
    password=_SECRET,
    host=_SAFE,
    key=st.sampled_from(["password", "sslpassword", "PASSWORD", "token", "api_key", "secret"]),
    param=_SECRET,
    escape=st.sampled_from(["raw", "quoted", "url-in-url"]),
)
def test_redacted_urls_keep_no_secret(
    scheme: str, user: str, password: str, host: str, key: str, param: str, escape: str
) -> None:
    quoted_pw = urllib.parse.quote(password, safe="") if escape != "raw" else password
    quoted_param = urllib.parse.quote_plus(param)
    url = f"{scheme}://{user}:{quoted_pw}@{host}:5432/db?a=1&{key}={quoted_param}&b=2"
    if escape == "url-in-url":
        url = f"https://{host}/login?next={urllib.parse.quote(url, safe='')}"
    out = redact_url(f"error: cannot reach {url}: refused")
    for secret in (password, param, quoted_param, quoted_pw):
        if len(secret) >= 3 and any(c in "QWXZ" for c in secret):
            assert secret not in out
    assert host in out  # the host stays visible: the message is still useful
    assert redact(f"auth failed ({param} / {password})", url).count("QWXZ") == 0


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1")), st.integers()))
def test_redactors_never_raise(text: object) -> None:
    assert isinstance(redact_url(text), str)
    assert isinstance(redact(text, text, None), str)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from adaptive_router.cli import main; main()", "-vv", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def _commands(url: str) -> list[list[str]]:
    return [
        ["db", "upgrade", "--db", url],
        ["posteriors", "--db", url, "--task", "t"],
        ["stats", "--db", url, "--task", "t"],
        ["costs", "--db", url, "--task", "t"],
    ]


def test_cli_never_prints_the_password_of_an_unreachable_db() -> None:
    for args in _commands(UNREACHABLE):
        done = _cli(*args)
        assert done.returncode == 1, (args, done.stderr)
        assert "5499" in done.stderr  # the error is still there, naming the server
        assert CANARY not in done.stdout + done.stderr, args


def test_cli_never_prints_the_password_of_a_reachable_db(pg_url: str) -> None:
    # PostgreSQL's trust authentication ignores the password: the commands succeed.
    url = f"{pg_url}&password={CANARY}"
    with Router([Path(lambda: True, name="a")], bool, "t", store=pg_url) as router:
        router.run()
    for args in _commands(url):
        done = _cli(*args)
        assert done.returncode == 0, (args, done.stderr)
        assert CANARY not in done.stdout + done.stderr, args
    assert "password=***" in _cli("posteriors", "--db", url, "--task", "t").stdout


def test_store_error_router_repr_and_logs_hide_the_password(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(StoreUnavailableError) as info:
        SQLStore(UNREACHABLE, connect_timeout_s=1)
    assert CANARY not in str(info.value)
    assert "password=***" in str(info.value)
    url = f"{pg_url}&password={CANARY}"
    with (
        caplog.at_level(logging.DEBUG),
        Router([Path(lambda: True, name="a")], bool, "t", store=url) as router,
    ):
        router.run()
        assert CANARY not in repr(router)
        assert CANARY not in repr(router.store)
    for record in caplog.records:
        assert CANARY not in record.getMessage()
        assert CANARY not in repr(record.__dict__)


def test_rate_limit_with_a_redis_password_never_shows_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("Redis is not reachable")
    for url in (
        f"redis://:{CANARY}@127.0.0.1:6379/0",
        f"redis://127.0.0.1:6379/0?password={CANARY}",
    ):
        with caplog.at_level(logging.DEBUG):
            limit = RateLimit(requests_per_minute=5, storage=url, key="ar-redaction-test")
            # The server has no password set: AUTH fails, the limit fails open and warns.
            limit.try_acquire()
        assert CANARY not in repr(limit)
        assert CANARY not in limit.storage_url
        for record in caplog.records:
            assert CANARY not in record.getMessage()
            assert CANARY not in repr(record.__dict__)


def test_a_store_string_without_scheme_is_not_repeated_when_it_may_hold_a_password() -> None:
    with pytest.raises(ConfigurationError, match="is not a URL") as info:
        open_store(f"postgres:{CANARY}@db.internal/app")
    assert CANARY not in str(info.value)
    with pytest.raises(ConfigurationError, match=r"'plain\.db' is not a URL"):
        open_store("plain.db")
