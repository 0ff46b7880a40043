"""OIDC bearer JWTs: trusted for routing only when verified against the issuer's keys. Tables
for the verification (real keys, real signatures), then the proxy routing by one."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from bridge.config import LegacySettings, NewstackSettings, ProxySettings, Settings
from bridge.store import BridgeStore
from proxy.identify import Bearer, Claims, Lookups, identify
from proxy.oidc import (
    Expectations,
    InvalidToken,
    Jwk,
    Verifier,
    load_jwks,
    looks_like_jwt,
    parse_jwks,
    verify,
)
from tests.proxy.harness import USERS, assert_one_request_on, backends, dav, requests_by_stack
from tests.proxy.test_forward import running_proxy

ISSUER = "https://id.example.org/realms/cloud"
AUDIENCE = "owncloud"
NOW = 1_800_000_000.0
EXPECT = Expectations(ISSUER, AUDIENCE, "preferred_username", leeway=60)

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def uint(n: int) -> str:
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "use": "sig", "n": uint(numbers.n), "e": uint(numbers.e)}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    return {"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big"))}


JWKS = {"keys": [rsa_jwk(RSA_KEY, "rsa-1"), ec_jwk(EC_KEY, "ec-1"),
                 {"kty": "oct", "kid": "hmac", "k": b64(b"secret")},          # skipped
                 {**rsa_jwk(OTHER_RSA, "enc-1"), "use": "enc"},                # skipped
                 {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"}]}     # skipped
KEYS = parse_jwks(JWKS)


def claims(**changes: Any) -> dict[str, Any]:
    base = {"iss": ISSUER, "aud": AUDIENCE, "exp": NOW + 300, "iat": NOW - 10,
            "sub": "0f3c-uuid", "preferred_username": "bob"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], *, alg: str = "RS256", kid: str | None = "rsa-1",
         key: Any = RSA_KEY, header: dict[str, Any] | None = None) -> str:
    head = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {}), **(header or {})}
    signed = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(payload).encode())}"
    data = signed.encode()
    if alg.startswith("RS"):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    elif alg.startswith("PS"):
        signature = key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                               salt_length=32), hashes.SHA256())
    elif alg.startswith("ES"):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:  # "none", HS256 with the public key as the secret: what attackers try
        import hmac

        pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        signature = hmac.new(pem, data, "sha256").digest() if alg == "HS256" else b""
    return f"{signed}.{b64(signature)}"


def test_jwks_keeps_only_usable_signing_keys() -> None:
    assert [(k.kid, k.kty) for k in KEYS] == [("rsa-1", "RSA"), ("ec-1", "EC")]
    for bad in ({}, {"keys": "x"}, [], "text"):
        with pytest.raises(ValueError):
            parse_jwks(bad)


def tampered() -> str:
    head, _, sig = sign(claims()).split(".")
    return f"{head}.{b64(json.dumps(claims(preferred_username='alice')).encode())}.{sig}"


VALID = [
    ("RS256 with kid", sign(claims())),
    ("ES256", sign(claims(), alg="ES256", kid="ec-1", key=EC_KEY)),
    ("PS256", sign(claims(), alg="PS256")),
    ("audience in a list", sign(claims(aud=["other", AUDIENCE]))),
    ("expired within the leeway", sign(claims(exp=NOW - 30))),
    ("nbf within the leeway", sign(claims(nbf=NOW + 30))),
]

INVALID = [
    ("expired", sign(claims(exp=NOW - 61)), "expired"),
    ("no exp", sign(claims(exp=None)), "no expiry"),
    ("exp not a number", sign(claims(exp="tomorrow")), "no expiry"),
    ("exp a boolean", sign(claims(exp=True)), "no expiry"),
    ("not yet valid", sign(claims(nbf=NOW + 120)), "not yet valid"),
    ("wrong issuer", sign(claims(iss="https://evil.example")), "wrong issuer"),
    ("wrong audience", sign(claims(aud="other-client")), "wrong audience"),
    ("no audience", sign(claims(aud=None)), "wrong audience"),
    ("no uid claim", sign(claims(preferred_username=None)), "no usable"),
    ("uid claim not a string", sign(claims(preferred_username=7)), "no usable"),
    ("empty uid", sign(claims(preferred_username="")), "no usable"),
    ("tampered payload", tampered(), "bad signature"),
    ("another key, same kid", sign(claims(), key=OTHER_RSA), "bad signature"),
    ("unknown kid", sign(claims(), kid="rsa-2"), "unknown key"),
    ("RSA kid with ES alg", sign(claims(), alg="ES256", kid="rsa-1", key=EC_KEY),
     "unknown key"),
    ("alg none", sign(claims(), alg="none"), "not accepted"),
    ("HS256 keyed with the public key", sign(claims(), alg="HS256"), "not accepted"),
    ("crit header", sign(claims(), header={"crit": ["exp"]}), "critical"),
    ("ES256 signature cut short", sign(claims(), alg="ES256", kid="ec-1", key=EC_KEY)[:-4],
     "bad signature"),
    ("two parts", "a.b", "not a JWT"),
    ("not base64", "a$.b$.c$", "undecodable"),
    ("padded base64", b64(b'{"alg":"RS256"}') + "=.e30.e30", "undecodable"),
    ("JSON but not objects", f"{b64(b'[1]')}.{b64(b'[2]')}.{b64(b'x')}", "undecodable"),
    ("huge", "a" * 9000 + ".b.c", "not a JWT"),
]


@pytest.mark.parametrize(("case", "token"), VALID, ids=[c for c, _ in VALID])
def test_valid_tokens(case: str, token: str) -> None:
    assert verify(token, KEYS, EXPECT, NOW)["preferred_username"] == "bob"
    assert looks_like_jwt(token)


@pytest.mark.parametrize(("case", "token", "why"), INVALID, ids=[c for c, _, _ in INVALID])
def test_invalid_tokens(case: str, token: str, why: str) -> None:
    with pytest.raises(InvalidToken, match=why):
        verify(token, KEYS, EXPECT, NOW)


def test_a_token_without_kid_needs_an_unambiguous_key() -> None:
    token = sign(claims(), kid=None)
    rsa_only = [k for k in KEYS if k.kty == "RSA"]
    assert verify(token, rsa_only, EXPECT, NOW)["preferred_username"] == "bob"
    two = [*rsa_only, Jwk("rsa-2", "RSA", OTHER_RSA.public_key())]
    with pytest.raises(InvalidToken, match="unknown key"):
        verify(token, two, EXPECT, NOW)


@pytest.mark.parametrize("text", ["", "opaque-oauth2-token-abc", "a.b.c", "x.y",
                                  f"{b64(b'{}')}.e30.sig", f"{b64(b'[1]')}.e30.sig"])
def test_opaque_tokens_do_not_look_like_jwts(text: str) -> None:
    assert not looks_like_jwt(text)


def test_the_claim_names_the_user_and_wins_over_the_path() -> None:
    identity = identify(Claims(credential=Bearer("jwt"), path_uid="alice"),
                        Lookups(oidc_uid="bob", bearer_uid="carol"))
    assert (identity.uid, identity.source, identity.credential) == ("bob", "oidc", True)
    assert identity.conflicts == (("dav-path", "alice"),)


@pytest.mark.parametrize(("email_uids", "cookie", "expected"), [
    (("bob",), None, ("bob", "oidc-email")),
    (("bob",), "alice", ("bob", "oidc-email")),       # the token wins over the cookie
    ((), None, (None, "anonymous")),                  # nobody has that e-mail
    ((), "alice", ("alice", "cookie")),               # then the cookie counts
    (("bob", "carol"), None, (None, "anonymous")),    # not unique: oC10 refuses the login
    (("bob", "carol"), "alice", ("alice", "cookie")),
])
def test_email_mode_names_the_one_account_with_that_email(
        email_uids: tuple[str, ...], cookie: str | None,
        expected: tuple[str | None, str]) -> None:
    identity = identify(Claims(credential=Bearer("jwt"), cookie_uid=cookie),
                        Lookups(oidc_email_uids=email_uids))
    assert (identity.uid, identity.source) == expected
    assert identity.credential == (expected[1] == "oidc-email")


def test_verifier_caches_and_reloads_keys(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [rsa_jwk(RSA_KEY, "rsa-1")]}))
    clock = [NOW]
    verifier = Verifier(EXPECT, str(jwks), clock=lambda: clock[0])
    verifier.load()
    token = sign(claims())
    assert verifier.uid(token) == ("bob", "")
    assert verifier.uid(token) == ("bob", "")  # cached
    clock[0] = NOW + 400  # past exp + leeway: the cache does not keep it alive
    assert verifier.uid(token) == (None, "expired")
    clock[0] = NOW
    rotated = sign(claims(), kid="rsa-2", key=OTHER_RSA)
    assert verifier.uid(rotated) == (None, "unknown key")
    jwks.write_text(json.dumps({"keys": [rsa_jwk(OTHER_RSA, "rsa-2")]}))
    verifier.load()
    assert verifier.uid(rotated) == ("bob", "")
    for bad in ("{}", '{"keys": []}', "not json"):
        jwks.write_text(bad)
        with pytest.raises(ValueError):
            load_jwks(str(jwks))


def test_the_proxy_routes_a_verified_jwt_and_ignores_an_unverified_one(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(JWKS))
    with backends(tmp_path) as stacks:
        settings = Settings(
            legacy=LegacySettings(config_php=Path(stacks.config_php)),
            newstack=NewstackSettings(data_dir=tmp_path / "bridge"),
            proxy=ProxySettings(legacy_url=stacks.legacy, newstack_url=stacks.new,
                                refresh_ms=50, oidc_issuer=ISSUER, oidc_audience=AUDIENCE,
                                oidc_jwks=str(jwks)))
        store = BridgeStore.from_settings(settings)
        store.set_state("bob", "new")
        now = time.time()
        good = sign(claims(exp=now + 300))
        forged = sign(claims(exp=now + 300), key=OTHER_RSA)
        with running_proxy(settings) as (url, _app):
            for token, stack in ((good, "new"), (forged, "legacy")):
                before = requests_by_stack()
                # no DAV path, no cookie: only the token can name the user
                answer = httpx.get(url + "/ocs/v1.php/cloud/user",
                                   headers={"Authorization": f"Bearer {token}"}, timeout=30)
                assert answer.status_code < 500
                assert_one_request_on(stack, before, stack)
            # Basic users are untouched by the OIDC settings
            with httpx.Client(base_url=url, auth=("bob", USERS["bob"]), timeout=30) as bob:
                assert bob.request("PROPFIND", dav("bob"), headers={"Depth": "0"}
                                   ).status_code == 207
        store.close()


def _set_emails(config_php: str, emails: dict[str, str]) -> None:
    """oc_accounts.email of existing users, as ownCloud keeps it."""
    import sqlalchemy as sa

    from bridge.oc10.configphp import OC10Config
    from bridge.oc10.schema import oc10_tables

    config = OC10Config.from_file(Path(config_php))
    accounts = oc10_tables(config.dbtableprefix).accounts
    engine = sa.create_engine(config.database_url())
    try:
        with engine.begin() as conn:
            for uid, email in emails.items():
                conn.execute(accounts.update().where(accounts.c.user_id == uid)
                             .values(email=email))
    finally:
        engine.dispose()


def test_the_proxy_routes_by_the_email_claim_in_email_mode(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(JWKS))
    with backends(tmp_path) as stacks:
        _set_emails(stacks.config_php, {"bob": "Bob@Example.org", "alice": "shared@example.org",
                                        "admin": "shared@example.org"})
        settings = Settings(
            legacy=LegacySettings(config_php=Path(stacks.config_php)),
            newstack=NewstackSettings(data_dir=tmp_path / "bridge"),
            proxy=ProxySettings(legacy_url=stacks.legacy, newstack_url=stacks.new,
                                refresh_ms=50, oidc_issuer=ISSUER, oidc_audience=AUDIENCE,
                                oidc_jwks=str(jwks), oidc_uid_claim="email"))
        store = BridgeStore.from_settings(settings)
        store.set_state("bob", "new")
        store.set_state("alice", "new")
        exp = time.time() + 300
        with running_proxy(settings) as (url, app):
            assert app.oidc_by_email
            for email, stack in (("bob@example.ORG", "new"),       # any case, as getByEmail
                                 ("shared@example.org", "legacy"),  # two accounts: nobody
                                 ("nobody@example.org", "legacy"),
                                 ("bob", "legacy")):               # a uid is no e-mail here
                token = sign(claims(exp=exp, email=email, preferred_username="alice"))
                before = requests_by_stack()
                answer = httpx.get(url + "/ocs/v1.php/cloud/user",
                                   headers={"Authorization": f"Bearer {token}"}, timeout=30)
                assert answer.status_code < 500
                assert_one_request_on(stack, before, email)
        store.close()
