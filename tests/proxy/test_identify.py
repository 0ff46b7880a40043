"""identify as tables: every identity source, conflicts between them, hostile headers. No I/O:
lookups are given as the answers the ownCloud database would give."""

from __future__ import annotations

import base64

import pytest

from bridge.oc10.tokens import token_hash
from proxy.identify import (
    COOKIE_NAME,
    MAX_AUTHORIZATION,
    AppToken,
    BasicLogin,
    Bearer,
    Claims,
    Identity,
    LoginFacts,
    LoginForm,
    LoginQuery,
    Lookups,
    Queries,
    RequestFacts,
    identify,
    is_login_form,
    queries,
    read_claims,
    resolve_login,
    sign_cookie,
    verify_cookie,
    with_login_form,
)

KEY = b"k" * 32
NOW = 1_700_000_000.0
SECRET = "config-secret"


def basic(user: str | bytes, password: str | bytes = "pw") -> bytes:
    u = user.encode() if isinstance(user, str) else user
    p = password.encode() if isinstance(password, str) else password
    return b"Basic " + base64.b64encode(u + b":" + p)


def cookie(uid: str, expires: float = NOW + 3600, key: bytes = KEY) -> bytes:
    return f"{COOKIE_NAME}={sign_cookie(uid, key, int(expires))}".encode()


def facts(path: str | bytes = "/remote.php/webdav/", *headers: tuple[bytes, bytes],
          method: str = "PROPFIND") -> RequestFacts:
    raw = path.encode() if isinstance(path, str) else path
    return RequestFacts(method, raw, list(headers))


def claims_of(*headers: tuple[bytes, bytes], path: str | bytes = "/remote.php/webdav/"
              ) -> Claims:
    return read_claims(facts(path, *headers), KEY, NOW)


# -- reading claims -------------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "path", "expected"), [
    # credentials
    ([(b"authorization", basic("alice"))], "/remote.php/webdav/",
     Claims(credential=BasicLogin("alice", "pw"))),
    ([(b"Authorization", basic("alice", "pa:ss"))], "/", Claims(credential=BasicLogin(
        "alice", "pa:ss"))),
    ([(b"authorization", b"basic " + base64.b64encode(b"bob:x"))], "/",
     Claims(credential=BasicLogin("bob", "x"))),
    ([(b"authorization", b"Bearer abcDEF123")], "/", Claims(credential=Bearer("abcDEF123"))),
    ([(b"authorization", b"token QWERT-ASDFG")], "/", Claims(credential=AppToken("QWERT-ASDFG"))),
    # DAV paths
    ([], "/remote.php/dav/files/alice/x.txt", Claims(path_uid="alice")),
    ([], "/remote.php/dav/uploads/bob/123/1", Claims(path_uid="bob")),
    ([], "/remote.php/dav/trash-bin/carol/trash", Claims(path_uid="carol")),
    ([], "/remote.php/dav/files/Eve.Mixed%40Example.org/",
     Claims(path_uid="Eve.Mixed@Example.org")),
    ([], "//remote.php//dav/files/alice", Claims(path_uid="alice")),
    ([], "/remote.php/dav/files/", Claims()),
    ([], "/remote.php/dav/meta/123/v", Claims()),
    # public links: the link token, and Basic is the link's, not a login
    ([], "/s/AbCdEfGhIjKlMnO", Claims(link_token="AbCdEfGhIjKlMnO")),
    ([], "/index.php/s/AbCdEfGhIjKlMnO/download", Claims(link_token="AbCdEfGhIjKlMnO")),
    ([(b"authorization", basic("AbCdEfGhIjKlMnO", "linkpw"))], "/public.php/webdav/x",
     Claims(link_token="AbCdEfGhIjKlMnO")),
    ([(b"authorization", basic("public", "linkpw"))], "/remote.php/dav/public-files/TOK/a",
     Claims(link_token="TOK")),
    ([], "/public.php/webdav/", Claims()),
    # a link without a password: `<token>:` is no login, but it is the link's credential
    ([(b"authorization", basic("AbCdEfGhIjKlMnO", ""))], "/public.php/webdav/x",
     Claims(link_token="AbCdEfGhIjKlMnO")),
    ([(b"authorization", basic("AbCdEfGhIjKlMnO", ""))], "/public.php/dav",
     Claims(link_token="AbCdEfGhIjKlMnO")),
    ([(b"authorization", basic("", ""))], "/public.php/webdav/",
     Claims(unreadable="basic-empty")),
    ([(b"authorization", b"Basic " + base64.b64encode(b"no-colon"))], "/public.php/webdav/",
     Claims(unreadable="basic-empty")),
    # elsewhere an empty password is still no credential
    ([(b"authorization", basic("alice", ""))], "/remote.php/webdav/",
     Claims(unreadable="basic-empty")),
    # private links follow the signed-in user: no claim of their own
    ([], "/f/123", Claims()),
    ([], "/index.php/f/123", Claims()),
])
def test_claims(headers: list[tuple[bytes, bytes]], path: str, expected: Claims) -> None:
    assert claims_of(*headers, path=path) == expected


@pytest.mark.parametrize(("header", "unreadable"), [
    (b"Basic !!!notbase64", "basic-unreadable"),
    (b"Basic " + base64.b64encode(b"no-colon"), "basic-empty"),
    (b"Basic " + base64.b64encode(b"\xff\xfe:pw"), "basic-unreadable"),
    (b"Basic " + base64.b64encode(b":pw"), "basic-empty"),
    (b"Basic " + base64.b64encode(b"0:pw"), "basic-empty"),
    (b"Basic " + base64.b64encode(b"alice:"), "basic-empty"),
    (b"Basic " + base64.b64encode(b"alice:0"), "basic-empty"),
    (b"Basic " + base64.b64encode(b" \t:pw"), "basic-empty"),
    (b"Basic \xc3\xa9", "authorization-not-ascii"),
    (b"Digest username=alice", "authorization-unknown-scheme"),
    (b"Bearer", "authorization-unknown-scheme"),
    (b"", "authorization-unknown-scheme"),
])
def test_unreadable_credentials_claim_nothing(header: bytes, unreadable: str) -> None:
    claims = claims_of((b"authorization", header))
    assert claims.credential is None
    assert claims.unreadable == unreadable
    assert identify(claims, Lookups()) == Identity(uid=None, source="anonymous")


def test_nul_in_a_basic_login_is_kept_for_the_lookup() -> None:
    # Manager::checkPassword drops NUL bytes; the directory does the same when it looks up
    claims = claims_of((b"authorization", basic(b"ali\x00ce")))
    assert claims.credential == BasicLogin("ali\x00ce", "pw")


def test_multiple_authorization_headers_are_refused() -> None:
    claims = claims_of((b"authorization", basic("alice")), (b"authorization", basic("bob")))
    assert claims.refusal is not None and claims.refusal.status == 400
    identity = identify(claims, Lookups())
    assert identity.uid is None and identity.refusal == claims.refusal


def test_huge_authorization_header_is_refused() -> None:
    header = b"Basic " + base64.b64encode(b"alice:" + b"x" * MAX_AUTHORIZATION)
    claims = claims_of((b"authorization", header))
    assert claims.refusal is not None and claims.refusal.status == 431


@pytest.mark.parametrize("path", [b"/remote.php/dav/files/\xff/", b"/remote.php/dav/files/a\x00b",
                                  b"/remote.php/dav/files/%ff%fe/", b"/remote.php/dav/files/a%00/",
                                  b"/s/%C3%28"])
def test_hostile_paths_claim_nothing(path: bytes) -> None:
    assert claims_of(path=path) == Claims()


def test_huge_path_segment_claims_nothing() -> None:
    assert claims_of(path="/remote.php/dav/files/" + "a" * 300 + "/") == Claims()


# -- the routing cookie ---------------------------------------------------------------------------

def test_cookie_round_trip() -> None:
    value = sign_cookie("Eve.Mixed@Example.org", KEY, int(NOW) + 60)
    assert verify_cookie(value, KEY, NOW) == ("Eve.Mixed@Example.org", int(NOW) + 60)
    assert claims_of((b"cookie", b"a=b; " + cookie("alice") + b"; c=d")).cookie_uid == "alice"


@pytest.mark.parametrize("value", [
    "",
    "alice",
    "v1.YWxpY2U.9999999999",                                   # unsigned
    sign_cookie("alice", b"other-key", int(NOW) + 60),         # signed by someone else
    sign_cookie("alice", KEY, int(NOW) - 1),                   # expired
    sign_cookie("alice", KEY, int(NOW) + 60).replace("v1.", "v2.", 1),
    # the uid swapped for another, signature kept
    "v1.Ym9i." + sign_cookie("alice", KEY, int(NOW) + 60).split(".", 2)[2],
    # the expiry pushed out, signature kept
    ".".join(sign_cookie("alice", KEY, int(NOW) + 60).split(".")[:2] + ["9999999999"]
             + sign_cookie("alice", KEY, int(NOW) + 60).split(".")[3:]),
    sign_cookie("alice", KEY, int(NOW) + 60) + "x",
    "v1.%%%.1.sig",
    sign_cookie("a" * 65, KEY, int(NOW) + 60),
])
def test_bad_cookies_are_ignored(value: str) -> None:
    assert verify_cookie(value, KEY, NOW) is None
    claims = claims_of((b"cookie", f"{COOKIE_NAME}={value}".encode()))
    assert claims.cookie_uid is None


def test_two_valid_cookies_for_different_users_are_both_ignored() -> None:
    assert claims_of((b"cookie", cookie("alice")), (b"cookie", cookie("bob"))).cookie_uid is None
    assert claims_of((b"cookie", cookie("alice") + b"; " + cookie("alice"))).cookie_uid == "alice"


def test_non_utf8_cookie_header_is_harmless() -> None:
    assert claims_of((b"cookie", b"\xff\xfe=\x00; " + cookie("alice"))).cookie_uid == "alice"


# -- login resolution: ownCloud 10's order, without the password ----------------------------------

@pytest.mark.parametrize(("facts_", "login", "strict", "expected"), [
    # an app password whose login name matches (ASCII case folded) wins
    (LoginFacts(token=("alice", "alice"), uid="alice"), "ALICE", False, ("alice", "app-password")),
    (LoginFacts(token=("alice", "alice@example.org"), uid=None, email_uids=("alice",)),
     "Alice@Example.org", False, ("alice", "app-password")),
    # token of another login name: the login itself counts
    (LoginFacts(token=("bob", "bob"), uid="alice"), "alice", False, ("alice", "basic")),
    # a plain login name, any case (the directory found the stored spelling)
    (LoginFacts(uid="Eve.Mixed@Example.org"), "eve.mixed@example.org", False,
     ("Eve.Mixed@Example.org", "basic")),
    # e-mail login, only when exactly one account has it and not strict
    (LoginFacts(email_uids=("carol",)), "carol@example.org", False, ("carol", "email")),
    (LoginFacts(email_uids=("carol",)), "carol@example.org", True, (None, "basic")),
    (LoginFacts(email_uids=("carol", "dave")), "shared@example.org", False, (None, "basic")),
    # the token's login name is the uid and the user logs in by e-mail: the retry matches it
    (LoginFacts(token=("carol", "carol"), email_uids=("carol",)), "carol@example.org", False,
     ("carol", "app-password")),
    # nobody
    (LoginFacts(), "nobody", False, (None, "basic")),
    # ÄLICE does not fold to älice (strcasecmp is ASCII only)
    (LoginFacts(token=("älice", "älice")), "ÄLICE", False, (None, "basic")),
])
def test_resolve_login(facts_: LoginFacts, login: str, strict: bool,
                       expected: tuple[str | None, str]) -> None:
    assert resolve_login(facts_, login, strict_login=strict) == expected


def test_queries_for_each_credential() -> None:
    q = queries(claims_of((b"authorization", basic("alice", "QWERT-ASDFG"))), SECRET)
    assert q == Queries(login=LoginQuery("alice", token_hash("QWERT-ASDFG", SECRET)))
    q = queries(claims_of((b"authorization", b"token QWERT")), SECRET)
    assert q.app_token_hash == token_hash("QWERT", SECRET)
    assert queries(claims_of((b"authorization", b"Bearer T")), SECRET).bearer == "T"
    assert queries(claims_of(path="/s/TOK"), SECRET).link_token == "TOK"
    assert not queries(claims_of(path="/remote.php/dav/files/alice/"), SECRET)
    assert not queries(claims_of((b"cookie", cookie("alice"))), SECRET)
    # a lone surrogate cannot be hashed or looked up: nothing to ask
    assert not queries(Claims(credential=BasicLogin("al\udcffice", "pw")), SECRET)


# -- identity: sources and conflicts --------------------------------------------------------------

ALICE_LOGIN = Lookups(login=LoginFacts(uid="alice"))


@pytest.mark.parametrize(("claims", "lookups", "uid", "source", "conflicts", "credential"), [
    (Claims(), Lookups(), None, "anonymous", (), False),
    (Claims(credential=BasicLogin("alice", "pw")), ALICE_LOGIN, "alice", "basic", (), True),
    (Claims(credential=BasicLogin("ALICE", "X")),
     Lookups(login=LoginFacts(token=("alice", "alice"), uid="alice")),
     "alice", "app-password", (), True),
    (Claims(credential=BasicLogin("alice@example.org", "pw")),
     Lookups(login=LoginFacts(email_uids=("alice",))), "alice", "email", (), True),
    (Claims(credential=AppToken("T")), Lookups(app_token_uid="bob"), "bob", "token", (), True),
    (Claims(credential=Bearer("T")), Lookups(bearer_uid="carol"), "carol", "bearer", (), True),
    (Claims(credential=LoginForm("alice")), ALICE_LOGIN, "alice", "login-form", (), True),
    (Claims(cookie_uid="alice"), Lookups(), "alice", "cookie", (), False),
    (Claims(path_uid="alice"), Lookups(), "alice", "dav-path", (), False),
    (Claims(link_token="TOK"), Lookups(link_owner="dave"), "dave", "link", (), False),
    # an unknown link or an unknown login: nobody, unless something else names a user
    (Claims(link_token="TOK"), Lookups(), None, "anonymous", (), False),
    (Claims(credential=BasicLogin("ghost", "pw")), Lookups(login=LoginFacts()), None,
     "anonymous", (), False),
    (Claims(credential=BasicLogin("ghost", "pw"), path_uid="alice"), Lookups(login=LoginFacts()),
     "alice", "dav-path", (), False),
    # disagreements: the credential wins, then the cookie, then the path; all are listed
    (Claims(credential=BasicLogin("alice", "pw"), path_uid="bob"), ALICE_LOGIN,
     "alice", "basic", (("dav-path", "bob"),), True),
    (Claims(credential=BasicLogin("alice", "pw"), cookie_uid="bob", path_uid="carol"),
     ALICE_LOGIN, "alice", "basic", (("cookie", "bob"), ("dav-path", "carol")), True),
    (Claims(credential=Bearer("T"), cookie_uid="bob"), Lookups(bearer_uid="carol"),
     "carol", "bearer", (("cookie", "bob"),), True),
    (Claims(cookie_uid="bob", path_uid="alice"), Lookups(), "bob", "cookie",
     (("dav-path", "alice"),), False),
    (Claims(credential=BasicLogin("alice", "pw"), cookie_uid="alice", path_uid="alice"),
     ALICE_LOGIN, "alice", "basic", (), True),
    # on a public-link endpoint the link's owner decides, whoever is signed in
    (Claims(link_token="TOK", cookie_uid="bob"), Lookups(link_owner="dave"), "dave", "link",
     (("cookie", "bob"),), False),
])
def test_identify(claims: Claims, lookups: Lookups, uid: str | None, source: str,
                  conflicts: tuple[tuple[str, str], ...], credential: bool) -> None:
    identity = identify(claims, lookups)
    assert (identity.uid, identity.source, identity.conflicts, identity.credential) == (
        uid, source, conflicts, credential)


def test_a_login_that_is_also_someone_elses_email_is_flagged() -> None:
    lookups = Lookups(login=LoginFacts(uid="bob@example.org", email_uids=("alice",)))
    identity = identify(Claims(credential=BasicLogin("bob@example.org", "pw")), lookups)
    assert identity.uid == "bob@example.org" and identity.ambiguous
    strict = identify(Claims(credential=BasicLogin("bob@example.org", "pw")), lookups,
                      strict_login=True)
    assert strict.uid == "bob@example.org" and not strict.ambiguous


def test_login_form() -> None:
    assert is_login_form("POST", b"/index.php/login")
    assert is_login_form("POST", b"/login")
    assert not is_login_form("GET", b"/index.php/login")
    assert not is_login_form("POST", b"/index.php/login/flow")
    claims = with_login_form(Claims(), "alice")
    assert claims.credential == LoginForm("alice")
    assert with_login_form(Claims(), "") == Claims()
    assert with_login_form(Claims(), "0") == Claims()
    assert with_login_form(Claims(), None) == Claims()
    basic_claims = Claims(credential=BasicLogin("bob", "pw"))
    assert with_login_form(basic_claims, "alice") == basic_claims


def test_secrets_are_not_in_reprs() -> None:
    text = repr(Claims(credential=BasicLogin("alice", "hunter2")))
    assert "hunter2" not in text
    assert "SECRETTOKEN" not in repr(Bearer("SECRETTOKEN"))
    assert "SECRETTOKEN" not in repr(AppToken("SECRETTOKEN"))


# -- avatars: the owner in the path is claimed apart, never as the request's user ------------

@pytest.mark.parametrize(("path", "owner"), [
    ("/index.php/avatar/alice/64", "alice"),
    ("/avatar/alice/64", "alice"),             # pretty URLs (front controller)
    ("/avatar/alice/64/", "alice"),
    ("//index.php//avatar/alice/64", "alice"),
    ("/index.php/avatar/Eve%40Example.org/32", "Eve@Example.org"),
    ("/remote.php/dav/avatars/bob/96.png", "bob"),
    ("/remote.php/dav/avatars/bob/96.jpeg", "bob"),
    ("/remote.php/dav/avatars/bob", "bob"),
    ("/remote.php/dav/avatars/bob/", "bob"),
    # the requester's own: upload, crop, temporary avatar, delete (no owner segment)
    ("/index.php/avatar/", None),
    ("/index.php/avatar/tmp", None),
    ("/avatar/cropped", None),
    ("/index.php/avatar/alice", None),
    ("/index.php/avatar/alice/64/extra", None),
    ("/remote.php/dav/avatars/", None),
    ("/index.php/avatars/alice/64", None),
    ("/apps/avatar/alice/64", None),
    ("/remote.php/dav/files/alice/avatar/alice/64", None),
    ("/index.php/avatar/%FF/64", None),         # not UTF-8: claims nothing
])
def test_avatar_owner_claims(path: str, owner: str | None) -> None:
    claims = claims_of((b"authorization", basic("carol")), path=path)
    assert claims.avatar_owner == owner
    assert claims.credential == BasicLogin("carol", "pw")
    assert claims.path_uid is None or path.startswith("/remote.php/dav/files/")


def test_the_avatar_owner_is_no_identity_and_no_conflict() -> None:
    carol = Lookups(login=LoginFacts(uid="carol"))
    with_credential = identify(Claims(credential=BasicLogin("carol", "pw"),
                                      avatar_owner="alice"), carol)
    assert (with_credential.uid, with_credential.source, with_credential.conflicts,
            with_credential.avatar_owner) == ("carol", "basic", (), "alice")
    by_cookie = identify(Claims(cookie_uid="carol", avatar_owner="alice"), Lookups())
    assert (by_cookie.uid, by_cookie.source, by_cookie.avatar_owner) == \
        ("carol", "cookie", "alice")
    anonymous = identify(Claims(avatar_owner="alice"), Lookups())
    assert (anonymous.uid, anonymous.source, anonymous.avatar_owner) == \
        (None, "anonymous", "alice")
    assert identify(Claims(), Lookups()).avatar_owner is None
