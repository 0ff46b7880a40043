"""bridge/oc10/passwords.py against hashes made by PHP and by the bcrypt/argon2 reference code.

Vectors: the PHP manual's password_verify/password_hash examples ('rasmuslerdorf'), the
crypt_blowfish test vectors (U*U …, the 72-byte one), the argon2 reference test vectors
('password'/'somesalt') and sha1('password').
"""

from __future__ import annotations

import threading

import pytest

from bridge.oc10 import passwords
from bridge.oc10.passwords import (
    VerifiedCredentialCache,
    hash_argon2,
    hash_format,
    hash_legacy_bcrypt,
    hash_legacy_sha1,
    hash_password,
    needs_rehash,
    verify_password,
)

# PHP manual, password_verify(): produced by PHP's password_hash()
PHP_BCRYPT = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"
# PHP manual, password_hash() with PASSWORD_ARGON2I
PHP_ARGON2I = (
    "$argon2i$v=19$m=1024,t=2,p=2$YzJBSzV4TUhkMzc3d3laeg$zqU/1IN0/AogfP4cmSJI1vc8lpXRW9/S0sYY2i2jHT0"
)
# argon2 reference implementation test vector: password 'password', salt 'somesalt'
REF_ARGON2ID = (
    "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
)
# crypt_blowfish test vectors
CB_UU = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"  # "U*U"
CB_UUUU = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK"  # "U*U*"
CB_EMPTY = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy"  # ""
CB_LONG = "$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui"
LONG_PASSWORD = (
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "chars after 72 are ignored"
)
SHA1_PASSWORD = "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8"  # sha1('password')


@pytest.mark.parametrize(
    ("password", "stored", "salt", "expected"),
    [
        # current format, bcrypt
        ("rasmuslerdorf", f"1|{PHP_BCRYPT}", "", True),
        ("rasmuslerdorf", f"1|{PHP_BCRYPT}", "any salt is ignored", True),
        ("rasmuslerdorF", f"1|{PHP_BCRYPT}", "", False),
        ("U*U", f"1|{CB_UU}", "", True),
        ("", f"1|{CB_EMPTY}", "", True),
        # PHP's bcrypt stops after 72 bytes …
        (LONG_PASSWORD, f"1|{CB_LONG}", "", True),
        (LONG_PASSWORD[:72], f"1|{CB_LONG}", "", True),
        (LONG_PASSWORD[:72] + "something else", f"1|{CB_LONG}", "", True),
        (LONG_PASSWORD[:71], f"1|{CB_LONG}", "", False),
        # … and at a NUL byte (the key is a C string)
        ("rasmuslerdorf\0tail", f"1|{PHP_BCRYPT}", "", True),
        # (int) cast of the version: leading zeros and whitespace still mean 1
        ("rasmuslerdorf", f"01|{PHP_BCRYPT}", "", True),
        ("rasmuslerdorf", f" 1|{PHP_BCRYPT}", "", True),
        # versions other than 1 are refused
        ("rasmuslerdorf", f"2|{PHP_BCRYPT}", "", False),
        # current format, argon2
        ("rasmuslerdorf", f"1|{PHP_ARGON2I}", "", True),
        ("password", f"1|{PHP_ARGON2I}", "", False),
        ("password", f"1|{REF_ARGON2ID}", "", True),
        ("passwort", f"1|{REF_ARGON2ID}", "", False),
        # legacy bcrypt: the config passwordsalt is appended to the password
        ("U*", CB_UU, "U", True),
        ("U*", CB_UUUU, "U*", True),
        ("U*U", CB_UU, "", True),
        ("U*", CB_UU, "", False),
        ("U*", CB_UU, "X", False),
        # legacy sha1, unsalted and compared case-sensitively like hash_equals
        ("password", SHA1_PASSWORD, "ignored", True),
        ("Password", SHA1_PASSWORD, "", False),
        ("password", SHA1_PASSWORD.upper(), "", False),
    ],
)
def test_verify_password(password: str, stored: str, salt: str, expected: bool) -> None:
    assert verify_password(password, stored, salt) is expected


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "1|",
        "1|garbage",
        "1|$2y$10$tooshort",
        "1|$argon2id$v=19$garbage",
        "1|$argon2x$v=19$m=1,t=1,p=1$AAAA$AAAA",
        "0|" + "x" * 58,  # version 0 is not a version: 60 chars → tried as legacy bcrypt
        "$P$BqvQ3bF3Jm5c5P4zG4tT9KkI3o1eFq/",  # phpass portable
        "x" * 60,
        "g" * 40,
        "$2y$10$" + "*" * 53,
        "1|$2y$99$" + "a" * 53,
        "1|\ud800",
        "\ud800" * 40,
    ],
)
def test_verify_password_never_raises_on_garbage(stored: str) -> None:
    assert verify_password("password", stored, "salt") is False


def test_verify_password_odd_passwords_do_not_raise() -> None:
    assert verify_password("\ud800", f"1|{PHP_BCRYPT}", "") is False
    assert verify_password("x" * 10_000, f"1|{PHP_BCRYPT}", "") is False
    assert verify_password("\udcff", SHA1_PASSWORD, "") is False


def test_hash_password_is_php_current_format() -> None:
    stored = hash_password("correct horse", cost=4)
    assert stored.startswith("1|$2y$04$")
    assert len(stored) == 62
    assert verify_password("correct horse", stored, "")
    assert not verify_password("correct horsE", stored, "")
    assert hash_format(stored) == "bcrypt"


def test_hash_password_default_cost_is_ten() -> None:
    assert hash_password("x").startswith("1|$2y$10$")


def test_hash_password_truncates_long_passwords_like_php() -> None:
    stored = hash_password("é" * 40, cost=4)  # 80 bytes
    assert verify_password("é" * 36, stored, "")  # exactly the first 72 bytes
    assert verify_password("é" * 36 + "anything", stored, "")
    assert not verify_password("é" * 35, stored, "")


def test_hash_legacy_bcrypt() -> None:
    stored = hash_legacy_bcrypt("secret", "Salt+/123", cost=4)
    assert len(stored) == 60
    assert stored.startswith("$2a$04$")
    assert verify_password("secret", stored, "Salt+/123")
    assert not verify_password("secret", stored, "other")
    assert hash_format(stored) == "legacy-bcrypt"


def test_hash_legacy_sha1() -> None:
    assert hash_legacy_sha1("password") == SHA1_PASSWORD
    assert hash_format(hash_legacy_sha1("x")) == "legacy-sha1"


def test_hash_argon2_uses_php_defaults() -> None:
    stored = hash_argon2("hunter2")
    assert stored.startswith("1|$argon2id$v=19$m=65536,t=4,p=1$")
    assert verify_password("hunter2", stored, "")
    assert not verify_password("hunter3", stored, "")
    assert hash_format(stored) == "argon2"


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (f"1|{PHP_BCRYPT}", "bcrypt"),
        (f"1|{CB_UU}", "bcrypt"),
        (f"1|{PHP_ARGON2I}", "argon2"),
        (f"1|{REF_ARGON2ID}", "argon2"),
        (CB_UU, "legacy-bcrypt"),
        (SHA1_PASSWORD, "legacy-sha1"),
        (SHA1_PASSWORD.upper(), "unknown"),
        (f"2|{PHP_BCRYPT}", "unknown"),
        ("1|garbage", "unknown"),
        ("$P$BqvQ3bF3Jm5c5P4zG4tT9KkI3o1eFq/", "unknown"),
        ("", "unknown"),
    ],
)
def test_hash_format(stored: str, expected: str) -> None:
    assert hash_format(stored) == expected


@pytest.mark.parametrize(
    ("stored", "cost", "expected"),
    [
        (f"1|{PHP_BCRYPT}", 10, False),
        (f"1|{PHP_BCRYPT}", 12, True),
        (f"1|{CB_UU}", 5, True),  # only the $2y$ spelling counts as bcrypt for PHP
        (f"1|{PHP_ARGON2I}", 10, True),  # PASSWORD_DEFAULT is bcrypt
        (CB_UU, 5, True),  # legacy formats are always upgraded
        (SHA1_PASSWORD, 10, True),
        ("garbage", 10, True),
    ],
)
def test_needs_rehash(stored: str, cost: int, expected: bool) -> None:
    assert needs_rehash(stored, cost) is expected


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_remembers_until_ttl() -> None:
    clock = FakeClock()
    cache = VerifiedCredentialCache(ttl=60, max_entries=10, clock=clock)
    cache.add("alice", "pw", "hash-1")
    assert cache.contains("alice", "pw", "hash-1")
    assert not cache.contains("alice", "pw2", "hash-1")
    assert not cache.contains("bob", "pw", "hash-1")
    # a new stored hash (password change, rehash) misses by construction
    assert not cache.contains("alice", "pw", "hash-2")
    clock.now += 59.9
    assert cache.contains("alice", "pw", "hash-1")
    clock.now += 0.2
    assert not cache.contains("alice", "pw", "hash-1")
    assert len(cache) == 0


def test_cache_key_separates_fields() -> None:
    cache = VerifiedCredentialCache(ttl=60, max_entries=10, clock=FakeClock())
    cache.add("ab", "c", "h")
    assert not cache.contains("a", "bc", "h")


def test_cache_evicts_least_recently_used() -> None:
    cache = VerifiedCredentialCache(ttl=60, max_entries=2, clock=FakeClock())
    cache.add("a", "pw", "h")
    cache.add("b", "pw", "h")
    assert cache.contains("a", "pw", "h")  # a is now the most recently used
    cache.add("c", "pw", "h")
    assert len(cache) == 2
    assert cache.contains("a", "pw", "h")
    assert not cache.contains("b", "pw", "h")
    assert cache.contains("c", "pw", "h")


def test_cache_verify_caches_successes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = VerifiedCredentialCache(ttl=60, max_entries=10, clock=FakeClock())
    stored = f"1|{CB_UU}"
    assert not cache.verify("alice", "wrong", stored, "")
    assert len(cache) == 0
    assert cache.verify("alice", "U*U", stored, "")
    assert len(cache) == 1

    def fail(*_: object) -> bool:
        raise AssertionError("a cached credential must not be hashed again")

    monkeypatch.setattr(passwords, "verify_password", fail)
    assert cache.verify("alice", "U*U", stored, "")
    cache.clear()
    with pytest.raises(AssertionError):
        cache.verify("alice", "U*U", stored, "")


def test_cache_keeps_no_plaintext() -> None:
    cache = VerifiedCredentialCache(ttl=60, max_entries=10)
    cache.add("alice", "s3cret-pw", "stored")
    assert b"s3cret" not in repr(vars(cache)).encode()


def test_cache_rejects_silly_limits() -> None:
    with pytest.raises(ValueError):
        VerifiedCredentialCache(ttl=0)
    with pytest.raises(ValueError):
        VerifiedCredentialCache(max_entries=0)


def test_cache_is_thread_safe() -> None:
    cache = VerifiedCredentialCache(ttl=60, max_entries=50)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(500):
                cache.add(f"u{n}", str(i), "h")
                cache.contains(f"u{n}", str(i - 1), "h")
        except BaseException as exc:  # pragma: no cover - only on failure
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(cache) == 50
