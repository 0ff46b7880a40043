"""bridge/oc10/tokens.py: storage hash, alphabets and lengths, login-name matching."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import pytest

from bridge.oc10.tokens import (
    login_matches_token,
    new_app_password,
    new_generated_token,
    new_instance_id,
    new_oauth_token,
    new_password_salt,
    new_secret,
    new_share_token,
    token_hash,
)


def test_token_hash_is_sha512_of_token_then_secret() -> None:
    # printf 'QWERT-ASDFG-ZXCVB-POIUYsecret48' | sha512sum
    assert token_hash("QWERT-ASDFG-ZXCVB-POIUY", "secret48") == (
        "b36f8d39f511f9c7741b9d6f322b1fb78caa7446550f75aaa4d1749ee733fbb3"
        "abefcdf6246c67210647413b7191e5cd0c46760e0a4613d3abb644a1588ef2f8"
    )


GENERATORS: list[tuple[Callable[[random.Random], str], str]] = [
    (new_app_password, r"[A-Z]{5}-[A-Z]{5}-[A-Z]{5}-[A-Z]{5}"),
    (new_share_token, r"[A-Za-z0-9]{15}"),
    (new_oauth_token, r"[A-Za-z0-9]{64}"),
    (new_generated_token, r"[A-Za-z0-9+/]{128}"),
    (new_instance_id, r"oc[a-z0-9]{10}"),
    (new_password_salt, r"[A-Za-z0-9+/]{30}"),
    (new_secret, r"[A-Za-z0-9+/]{48}"),
]


@pytest.mark.parametrize(("generate", "pattern"), GENERATORS)
def test_generated_shapes(generate: Callable[[random.Random], str], pattern: str) -> None:
    rng = random.Random(1)
    for _ in range(200):
        assert re.fullmatch(pattern, generate(rng))
    assert re.fullmatch(pattern, generate(random.SystemRandom()))


@pytest.mark.parametrize(("generate", "pattern"), GENERATORS)
def test_seeded_generators_are_reproducible(
    generate: Callable[[random.Random], str], pattern: str
) -> None:
    first = [generate(random.Random(42)) for _ in range(2)]
    assert first[0] == first[1]
    assert generate(random.Random(43)) != first[0]


def test_alphabets_are_used_in_full() -> None:
    rng = random.Random(7)
    generated = "".join(new_generated_token(rng) for _ in range(20))
    assert {"+", "/"} <= set(generated)
    assert set(generated) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    shares = "".join(new_share_token(rng) for _ in range(200))
    assert set(shares) == set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
    ids = "".join(new_instance_id(rng)[2:] for _ in range(100))
    assert set(ids) == set("abcdefghijklmnopqrstuvwxyz0123456789")


@pytest.mark.parametrize(
    ("user", "login_name", "expected"),
    [
        ("alice", "alice", True),
        ("Alice", "aLICE", True),
        ("alice@example.com", "ALICE@EXAMPLE.COM", True),
        ("alice", "alice2", False),
        ("alice", "", False),
        ("", "", True),
        # strcasecmp folds ASCII only
        ("ÄLICE", "älice", False),
        ("Älice", "ÄLICE", True),
    ],
)
def test_login_matches_token(user: str, login_name: str, expected: bool) -> None:
    assert login_matches_token(user, login_name) is expected
