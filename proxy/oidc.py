"""OpenID Connect bearer tokens (JWTs) as a routing credential: trusted only once verified
against the configured issuer's keys (a JWKS file or URL), unexpired, for our audience.

`verify` is pure (token, keys, expectations, now → claims or the reason it fails); `Verifier`
keeps the keys (reloaded now and then, and at most once a minute for an unknown key id) and the
tokens already verified, so a client's repeated requests cost one dictionary lookup.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

log = logging.getLogger("ocbridge.proxy")

#: a JWT's three parts, each base64url; anything longer than this is not a token we route by
MAX_TOKEN: Final = 8192
_HASHES: Final[dict[str, hashes.HashAlgorithm]] = {
    "256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
#: JWK crv -> (curve, bytes per signature half, the one ES algorithm it signs with)
_CURVES: Final[dict[str, tuple[ec.EllipticCurve, int, str]]] = {
    "P-256": (ec.SECP256R1(), 32, "ES256"), "P-384": (ec.SECP384R1(), 48, "ES384"),
    "P-521": (ec.SECP521R1(), 66, "ES512")}
#: symmetric and unsigned algorithms are never accepted: a public key is not a secret
ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                               "ES256", "ES384", "ES512"})
RETRY_UNKNOWN_KID_SECONDS: Final = 60.0
CACHE_SIZE: Final = 10_000


class InvalidToken(Exception):
    """Why a token is not trusted (short, for the access log; never the token itself)."""


@dataclass(frozen=True)
class Expectations:
    issuer: str
    audience: str
    uid_claim: str = "preferred_username"
    #: seconds of clock difference tolerated on exp, nbf and iat
    leeway: int = 60


PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class Jwk:
    kid: str | None
    kty: str
    key: PublicKey = field(repr=False)
    alg: str | None = None


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated base64url parts whose first is a JSON header: worth verifying (an
    ownCloud 10 OAuth2 token is one opaque string)."""
    if len(token) > MAX_TOKEN or token.count(".") != 2:
        return False
    try:
        header = json.loads(_unb64(token.split(".", 1)[0]))
    except (ValueError, binascii.Error):
        return False
    return isinstance(header, dict) and "alg" in header


def _unb64(text: str) -> bytes:
    if not text or any(c in text for c in "+/="):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(text: str) -> int:
    return int.from_bytes(_unb64(text), "big")


def parse_jwks(document: Any) -> list[Jwk]:
    """The usable signing keys of a JWKS document; others (symmetric, encryption, unknown
    curves, malformed) are skipped. Raises ValueError if it is not a JWKS at all."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no \"keys\" list)")
    keys = []
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid") if isinstance(entry.get("kid"), str) else None
        alg = entry.get("alg") if isinstance(entry.get("alg"), str) else None
        try:
            if entry.get("kty") == "RSA":
                key: PublicKey = rsa.RSAPublicNumbers(_int(entry["e"]),
                                                      _int(entry["n"])).public_key()
            elif entry.get("kty") == "EC" and entry.get("crv") in _CURVES:
                curve = _CURVES[entry["crv"]][0]
                key = ec.EllipticCurvePublicNumbers(_int(entry["x"]), _int(entry["y"]),
                                                    curve).public_key()
            else:
                continue
        except (KeyError, TypeError, ValueError, binascii.Error):
            continue
        keys.append(Jwk(kid, entry["kty"], key, alg))
    return keys


def verify(token: str, keys: list[Jwk], expect: Expectations, now: float) -> dict[str, Any]:
    """The claims of `token` if it is signed by one of `keys` with an allowed algorithm, issued
    by `expect.issuer` for `expect.audience`, and valid at `now`; else InvalidToken."""
    if len(token) > MAX_TOKEN or token.count(".") != 2:
        raise InvalidToken("not a JWT")
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(payload_b64))
    except (ValueError, binascii.Error):
        raise InvalidToken("undecodable") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("undecodable")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise InvalidToken(f"algorithm {str(alg)[:16]!r} not accepted")
    try:
        signature = _unb64(signature_b64)
    except (ValueError, binascii.Error):
        raise InvalidToken("undecodable") from None
    if "crit" in header:
        raise InvalidToken("critical header extensions")
    key = _pick_key(keys, header.get("kid"), alg)
    if not _signature_ok(key, alg, f"{header_b64}.{payload_b64}".encode("ascii"), signature):
        raise InvalidToken("bad signature")
    _check_claims(claims, expect, now)
    return claims


def _pick_key(keys: list[Jwk], kid: object, alg: str) -> Jwk:
    kty = "RSA" if alg[0] in "RP" else "EC"
    fitting = [k for k in keys if k.kty == kty and (k.alg is None or k.alg == alg)]
    if isinstance(kid, str):
        fitting = [k for k in fitting if k.kid == kid]
    elif len(fitting) != 1:  # no kid: only an unambiguous key will do
        fitting = []
    if not fitting:
        raise InvalidToken("unknown key")
    return fitting[0]


def _signature_ok(jwk: Jwk, alg: str, signed: bytes, signature: bytes) -> bool:
    digest = _HASHES[alg[2:]]
    try:
        if isinstance(jwk.key, rsa.RSAPublicKey):
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15() if alg.startswith("RS") else
                padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size))
            jwk.key.verify(signature, signed, pad, digest)
            return True
        curve = jwk.key.curve.name
        size = next((n for c, n, a in _CURVES.values() if c.name == curve and a == alg), None)
        if size is None or len(signature) != 2 * size:
            return False
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        jwk.key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(digest))
        return True
    except InvalidSignature:
        return False


def _check_claims(claims: dict[str, Any], expect: Expectations, now: float) -> None:
    if claims.get("iss") != expect.issuer:
        raise InvalidToken("wrong issuer")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if expect.audience not in audiences:
        raise InvalidToken("wrong audience")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise InvalidToken("no expiry")
    if exp + expect.leeway <= now:
        raise InvalidToken("expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and not isinstance(nbf, bool) and nbf - expect.leeway > now:
        raise InvalidToken("not yet valid")
    uid = claims.get(expect.uid_claim)
    if not isinstance(uid, str) or not uid or len(uid) > 255 or "\0" in uid:
        raise InvalidToken(f"no usable {expect.uid_claim!r} claim")


# -- keys and cache ---------------------------------------------------------------------------


def load_jwks(source: str, timeout: float = 10.0) -> list[Jwk]:
    """Blocking: the keys from a file path or an http(s) URL."""
    if source.startswith(("https://", "http://")):
        request = urllib.request.Request(source, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            document = json.loads(response.read(1024 * 1024))
    else:
        document = json.loads(Path(source).read_text(encoding="utf-8"))
    keys = parse_jwks(document)
    if not keys:
        raise ValueError(f"{source}: no usable signing key (RSA or EC P-256/384/521)")
    return keys


class Verifier:
    """Verified bearer JWT → uid, for one proxy process (thread-safe)."""

    def __init__(self, expect: Expectations, jwks_source: str, *,
                 clock: Any = time.time) -> None:
        self.expect = expect
        self.jwks_source = jwks_source
        self._clock = clock
        self._keys: list[Jwk] = []
        self._lock = threading.Lock()
        #: token -> (uid, expiry) of tokens that verified; a failed one is not kept
        self._verified: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._last_load = float("-inf")

    def load(self) -> None:
        """Blocking: (re)read the keys; on failure the old keys stay and the error is raised."""
        self._last_load = time.monotonic()
        keys = load_jwks(self.jwks_source)
        with self._lock:
            self._keys = keys

    def wants_reload(self) -> bool:
        """A token named a key we do not have: ask again, at most once a minute."""
        return time.monotonic() - self._last_load > RETRY_UNKNOWN_KID_SECONDS

    def uid(self, token: str) -> tuple[str | None, str]:
        """(uid, "") for a verified token, else (None, why): no I/O, safe on the event loop."""
        now = self._clock()
        with self._lock:
            hit = self._verified.get(token)
            keys = self._keys
        if hit is not None and hit[1] + self.expect.leeway > now:
            return hit[0], ""
        try:
            claims = verify(token, keys, self.expect, now)
        except InvalidToken as exc:
            return None, str(exc)
        uid: str = claims[self.expect.uid_claim]
        with self._lock:
            self._verified[token] = (uid, float(claims["exp"]))
            while len(self._verified) > CACHE_SIZE:
                self._verified.popitem(last=False)
        return uid, ""
