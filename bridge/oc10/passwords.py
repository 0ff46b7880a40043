"""oc_users.password (and link-share password) hashes as OC\\Security\\Hasher reads and writes them.

Also a small cache of successful checks so the proxy need not pay for bcrypt on every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Literal

import bcrypt
from argon2 import exceptions as argon2_exceptions
from argon2 import low_level as argon2_low_level

HashFormat = Literal["bcrypt", "argon2", "legacy-bcrypt", "legacy-sha1", "unknown"]

CURRENT_VERSION: Final = 1
DEFAULT_COST: Final = 10
# PHP's bcrypt reads the key as a C string and stops after 72 bytes
_BCRYPT_MAX_BYTES: Final = 72
# PASSWORD_ARGON2_DEFAULT_* of PHP 7.4, so our argon2 hashes look like PHP's own
_ARGON2_TIME_COST: Final = 4
_ARGON2_MEMORY_KIB: Final = 65536
_ARGON2_PARALLELISM: Final = 1
_ARGON2_HASH_LEN: Final = 32
_ARGON2_SALT_LEN: Final = 16

# PHP (int) cast of the text before `|`: leading whitespace, sign, digits, maybe fraction/exponent
_PHP_INT_PREFIX = re.compile(
    r"[ \t\n\r\v\f]*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
)
_SHA1_HEX = re.compile(r"[0-9a-f]{40}\Z")
_BCRYPT_COST = re.compile(r"\$2y\$([0-9]+)\$")


def _utf8(text: str) -> bytes | None:
    """The bytes PHP would have seen; None for text that cannot be encoded at all."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    try:
        # bytes that were smuggled through a str by a surrogateescape decoder
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def _php_int(text: str) -> int:
    match = _PHP_INT_PREFIX.match(text)
    if match is None:
        return 0
    number = match.group(1)
    if any(c in number for c in ".eE"):
        value = float(number)
        return int(value) if abs(value) < 2.0**63 else 0
    return int(number)


def _split_version(stored: str) -> tuple[int, str] | None:
    """Hasher::splitHash: `<version>|<hash>` with a positive (int) version, else None."""
    head, sep, rest = stored.partition("|")
    if not sep:
        return None
    version = _php_int(head)
    return (version, rest) if version > 0 else None


def _bcrypt_key(password: bytes) -> bytes:
    return password.split(b"\0", 1)[0][:_BCRYPT_MAX_BYTES]


def _bcrypt_check(password: bytes, hashed: str) -> bool:
    raw = _utf8(hashed)
    if raw is None:
        return False
    try:
        return bcrypt.checkpw(_bcrypt_key(password), raw)
    except ValueError:
        return False


def _argon2_check(password: bytes, hashed: str) -> bool:
    if hashed.startswith("$argon2id$"):
        kind = argon2_low_level.Type.ID
    elif hashed.startswith("$argon2i$"):
        kind = argon2_low_level.Type.I
    else:
        return False
    try:
        return argon2_low_level.verify_secret(hashed.encode("ascii"), password, kind)
    except (argon2_exceptions.VerificationError, argon2_exceptions.InvalidHashError, ValueError):
        return False


def _password_verify(password: bytes, hashed: str) -> bool:
    """PHP password_verify() for the algorithms PHP 7.4 ships (bcrypt, argon2i, argon2id)."""
    if hashed.startswith("$argon2"):
        return _argon2_check(password, hashed)
    return _bcrypt_check(password, hashed)


def verify_password(password: str, stored: str, passwordsalt: str) -> bool:
    """Hasher::verify: does `password` match the stored hash? Never raises on odd input."""
    if not isinstance(password, str) or not isinstance(stored, str):
        return False
    pw = _utf8(password)
    if pw is None:
        return False
    split = _split_version(stored)
    if split is not None:
        version, hashed = split
        return version == CURRENT_VERSION and _password_verify(pw, hashed)
    stored_bytes = _utf8(stored)
    if stored_bytes is None:
        return False
    if len(stored_bytes) == 60:
        salt = _utf8(passwordsalt) if isinstance(passwordsalt, str) else None
        return salt is not None and _bcrypt_check(pw + salt, stored)
    if len(stored_bytes) == 40:
        return hmac.compare_digest(stored_bytes, hashlib.sha1(pw).hexdigest().encode("ascii"))
    return False


_BCRYPT_B64: Final = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_STD_B64: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TO_BCRYPT_B64: Final = str.maketrans(_STD_B64, _BCRYPT_B64)


def _salt_bytes(n: int, salt_rng: random.Random | None) -> bytes:
    """Random salt; from `salt_rng` when given, so seeded fixtures get identical hashes."""
    return salt_rng.randbytes(n) if salt_rng is not None else secrets.token_bytes(n)


def _bcrypt_salt(cost: int, salt_rng: random.Random | None) -> bytes:
    if salt_rng is None:
        return bcrypt.gensalt(cost, b"2b")
    encoded = base64.b64encode(_salt_bytes(16, salt_rng)).decode("ascii")[:22]
    return f"$2b${cost:02d}${encoded.translate(_TO_BCRYPT_B64)}".encode("ascii")


def _bcrypt_hash(key: bytes, cost: int, spelling: str,
                 salt_rng: random.Random | None = None) -> str:
    hashed = bcrypt.hashpw(_bcrypt_key(key), _bcrypt_salt(cost, salt_rng)).decode("ascii")
    # $2b$ and $2y$ are the same algorithm; only the label differs between implementations
    return f"${spelling}${hashed[4:]}"


def hash_password(password: str, cost: int = DEFAULT_COST,
                  salt_rng: random.Random | None = None) -> str:
    """Current format as oC10 writes it: `1|` + PHP password_hash() bcrypt, `$2y$` spelling."""
    return f"{CURRENT_VERSION}|{_bcrypt_hash(password.encode('utf-8'), cost, '2y', salt_rng)}"


def hash_legacy_bcrypt(password: str, passwordsalt: str, cost: int = DEFAULT_COST,
                       salt_rng: random.Random | None = None) -> str:
    """Pre-8.0 format: bcrypt of password + config passwordsalt, no version prefix.

    phpass wrote these with the `$2a$` spelling, so this does too.
    """
    return _bcrypt_hash((password + passwordsalt).encode("utf-8"), cost, "2a", salt_rng)


def hash_legacy_sha1(password: str) -> str:
    """Oldest format: unsalted sha1 hex of the password."""
    return hashlib.sha1(password.encode("utf-8")).hexdigest()


def hash_argon2(password: str, salt_rng: random.Random | None = None) -> str:
    """`1|$argon2id$…` with PHP 7.4's default parameters (m=65536, t=4, p=1)."""
    hashed = argon2_low_level.hash_secret(
        password.encode("utf-8"),
        _salt_bytes(_ARGON2_SALT_LEN, salt_rng),
        time_cost=_ARGON2_TIME_COST,
        memory_cost=_ARGON2_MEMORY_KIB,
        parallelism=_ARGON2_PARALLELISM,
        hash_len=_ARGON2_HASH_LEN,
        type=argon2_low_level.Type.ID,
    )
    return f"{CURRENT_VERSION}|{hashed.decode('ascii')}"


def hash_format(stored: str) -> HashFormat:
    """Which of Hasher's formats `stored` is, judged by shape only (no verification)."""
    split = _split_version(stored)
    if split is not None:
        version, hashed = split
        if version != CURRENT_VERSION:
            return "unknown"
        if hashed.startswith(("$argon2i$", "$argon2id$")):
            return "argon2"
        if re.match(r"\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}\Z", hashed):
            return "bcrypt"
        return "unknown"
    if len(stored) == 60 and re.match(r"\$2[abxy]\$", stored):
        return "legacy-bcrypt"
    if _SHA1_HEX.match(stored):
        return "legacy-sha1"
    return "unknown"


def needs_rehash(stored: str, cost: int = DEFAULT_COST) -> bool:
    """Would oC10 rewrite this hash after a successful login (config hashingCost = `cost`)?

    PHP's password_needs_rehash only recognises the `$2y$` spelling as bcrypt, so `$2a$`/`$2b$`
    and argon2 hashes are rehashed too; legacy formats always are.
    """
    split = _split_version(stored)
    if split is None or split[0] != CURRENT_VERSION:
        return True
    hashed = split[1]
    match = _BCRYPT_COST.match(hashed)
    if match is None or len(hashed) != 60:
        return True
    return int(match.group(1)) != cost


class VerifiedCredentialCache:
    """Remembers (uid, password, stored hash) triples that verified, for `ttl` seconds.

    Entries are keyed by a sha256 of the triple, so no password is kept and a changed hash
    (password change, rehash) misses naturally. Least recently used entries go first once
    `max_entries` is reached. Failures are never cached. Safe to share between threads.
    """

    def __init__(
        self,
        ttl: float = 300.0,
        max_entries: int = 10_000,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("VerifiedCredentialCache needs ttl > 0 and max_entries > 0")
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: OrderedDict[bytes, float] = OrderedDict()

    @staticmethod
    def _key(uid: str, password: str, stored: str) -> bytes:
        text = f"{uid}\0{password}\0{stored}"
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def contains(self, uid: str, password: str, stored: str) -> bool:
        """True if this exact triple verified less than `ttl` seconds ago."""
        key = self._key(uid, password, stored)
        now = self._clock()
        with self._lock:
            expiry = self._expiry.get(key)
            if expiry is None:
                return False
            if expiry <= now:
                del self._expiry[key]
                return False
            self._expiry.move_to_end(key)
            return True

    def add(self, uid: str, password: str, stored: str) -> None:
        """Record a successful verification."""
        key = self._key(uid, password, stored)
        expiry = self._clock() + self._ttl
        with self._lock:
            self._expiry[key] = expiry
            self._expiry.move_to_end(key)
            while len(self._expiry) > self._max:
                self._expiry.popitem(last=False)

    def verify(self, uid: str, password: str, stored: str, passwordsalt: str) -> bool:
        """verify_password with the cache in front; only successes are remembered."""
        if self.contains(uid, password, stored):
            return True
        # the slow hash runs outside the lock so other threads are not held up
        if not verify_password(password, stored, passwordsalt):
            return False
        self.add(uid, password, stored)
        return True

    def clear(self) -> None:
        with self._lock:
            self._expiry.clear()
