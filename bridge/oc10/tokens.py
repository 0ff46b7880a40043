"""Random tokens and secrets in oC10's alphabets and lengths, and how tokens are stored and matched.

Pass `random.SystemRandom()` in production and a seeded `random.Random` for reproducible fixtures.
"""

from __future__ import annotations

import hashlib
import random
from typing import Final

UPPER: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER: Final = "abcdefghijklmnopqrstuvwxyz"
DIGITS: Final = "0123456789"
ALNUM: Final = UPPER + LOWER + DIGITS
# ISecureRandom::generate's default alphabet
BASE64_CHARS: Final = ALNUM + "+/"


def _generate(rng: random.Random, length: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def token_hash(token: str, secret: str) -> str:
    """oc_authtoken.token: sha512 hex of the token text followed by config `secret`."""
    return hashlib.sha512((token + secret).encode("utf-8")).hexdigest()


def new_app_password(rng: random.Random) -> str:
    """An app password from Personal settings: `XXXXX-XXXXX-XXXXX-XXXXX`, uppercase letters."""
    return "-".join(_generate(rng, 5, UPPER) for _ in range(4))


def new_share_token(rng: random.Random) -> str:
    """A public-link or federated share token: 15 of `[A-Za-z0-9]`."""
    return _generate(rng, 15, ALNUM)


def new_oauth_token(rng: random.Random) -> str:
    """An OAuth2 access/refresh token or auth code of the oauth2 app: 64 of `[A-Za-z0-9]`."""
    return _generate(rng, 64, ALNUM)


def new_generated_token(rng: random.Random) -> str:
    """A token from POST /index.php/token/generate: 128 of `[A-Za-z0-9+/]`."""
    return _generate(rng, 128, BASE64_CHARS)


def new_instance_id(rng: random.Random) -> str:
    """config.php `instanceid`: `oc` + 10 of `[a-z0-9]`."""
    return "oc" + _generate(rng, 10, LOWER + DIGITS)


def new_password_salt(rng: random.Random) -> str:
    """config.php `passwordsalt`: 30 of `[A-Za-z0-9+/]`."""
    return _generate(rng, 30, BASE64_CHARS)


def new_secret(rng: random.Random) -> str:
    """config.php `secret`: 48 of `[A-Za-z0-9+/]`."""
    return _generate(rng, 48, BASE64_CHARS)


def login_matches_token(basic_user: str, token_login_name: str) -> bool:
    """Does the Basic-auth user name match a token's login_name? PHP strcasecmp: ASCII-only folding.

    `ÄLICE` does not match `älice`, exactly as in oC10.
    """
    a = basic_user.encode("utf-8", "surrogatepass")
    b = token_login_name.encode("utf-8", "surrogatepass")
    return a.lower() == b.lower()
