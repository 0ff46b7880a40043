"""Who is this request? Pure: request facts → claims → (with looked-up facts) an Identity.

Three steps so that no I/O happens here: `read_claims` parses headers, path and cookie;
`queries` says what must be looked up in ownCloud's database (proxy/directory.py does that at
the edge, cached); `identify` applies ownCloud 10's login rules to the answers. Passwords are
never verified: the backend that owns the claimed uid does that (docs/proxy.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final
from urllib.parse import unquote_to_bytes

from bridge.oc10.tokens import login_matches_token, token_hash

#: the routing cookie the proxy signs and sets
COOKIE_NAME: Final = "ocbridge_route"
_COOKIE_NAME_BYTES: Final = COOKIE_NAME.encode("ascii")
#: cookies whose signature checked out: (key, value) -> (uid, expires)
_VERIFIED: dict[tuple[bytes, str], tuple[str, int]] = {}
VERIFIED_CACHE_SIZE: Final = 10_000
_COOKIE_VERSION: Final = "v1"
#: longer Authorization headers are refused (431): no real credential comes near it
MAX_AUTHORIZATION: Final = 8192
#: oc_users.uid / oc_accounts.user_id width
MAX_UID: Final = 64
# PHP trim()'s default characters (User\Session::tryBasicAuthLogin treats blank names as empty)
_PHP_TRIM: Final = " \t\n\r\0\x0b"

_DAV_USER = re.compile(r"^/remote\.php/dav/(?:files|uploads|trash-bin)/([^/]+)")
#: an avatar's owner: core's avatar/{userId}/{size} route (with or without index.php: pretty
#: URLs) and the dav app's avatars/<uid>/<size>.<ext>; avatar/tmp, avatar/cropped and POST or
#: DELETE avatar/ are the requester's own and have no owner segment
_AVATAR_INDEX = re.compile(r"^(?:/index\.php)?/avatar/([^/]+)/[^/]+/?$")
_AVATAR_DAV = re.compile(r"^/remote\.php/dav/avatars/([^/]+)(?:/|$)")
_PUBLIC_FILES = re.compile(r"^/remote\.php/dav/public-files/([^/]+)")
_SHARE_PAGE = re.compile(r"^(?:/index\.php)?/s/([^/]+)")
_PUBLIC_WEBDAV = re.compile(r"^/public\.php/(?:webdav|dav)(?:/|$)")
_LOGIN_FORM = re.compile(r"^(?:/index\.php)?/login/?$")
_SLASHES = re.compile(r"/{2,}")
#: what each pattern above starts with, tested first (str.startswith costs far less)
_DAV_PREFIX: Final = "/remote.php/dav/"
_SHARE_PREFIXES: Final = ("/s/", "/index.php/s/")
_PUBLIC_PREFIX: Final = "/public.php/"
_AVATAR_PREFIXES: Final = ("/avatar/", "/index.php/avatar/")


@dataclass(frozen=True)
class RequestFacts:
    """What identification looks at: the method, the raw (percent-encoded) path without the
    query, and the headers as the ASGI server gives them (lower-case names, raw bytes)."""

    method: str
    raw_path: bytes
    headers: Sequence[tuple[bytes, bytes]]


# -- claims ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BasicLogin:
    """Basic credentials of a user: a login name (uid, any case, or e-mail) and a password or
    app password. `password` is kept only to look up its app-password hash."""

    login: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class AppToken:
    """`Authorization: token <app password>` (no login name to compare)."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class Bearer:
    """`Authorization: Bearer <OAuth2 access token>`."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class LoginForm:
    """The `user` field of a web login form POST (no password looked at)."""

    login: str


Credential = BasicLogin | AppToken | Bearer | LoginForm


@dataclass(frozen=True)
class Refusal:
    """The request is answered by the proxy itself, never forwarded (e.g. ambiguous auth)."""

    status: int
    message: str


@dataclass(frozen=True)
class Claims:
    """Everything the request says about its user, before any lookup."""

    credential: Credential | None = None
    #: uid from a valid signed routing cookie
    cookie_uid: str | None = None
    #: uid in a DAV path (files/, uploads/, trash-bin/)
    path_uid: str | None = None
    #: a public-link token (/s/, public.php/webdav, dav/public-files)
    link_token: str | None = None
    refusal: Refusal | None = None
    #: a credential that could not be read (bad base64, not UTF-8, …): the backend answers it
    unreadable: str | None = None
    #: the uid whose avatar the path names (not an identity source: route.py weighs it)
    avatar_owner: str | None = None


def read_claims(facts: RequestFacts, cookie_key: bytes, now: float) -> Claims:
    """Parse what the request says about its user; never raises on hostile input."""
    # one pass over the headers and prefix tests before any pattern: this runs for every
    # request, and its cost is part of the proxy's CPU per request (bench/proxy)
    authorizations: list[bytes] = []
    cookies: list[bytes] = []
    for name, value in facts.headers:
        lowered = name.lower()
        if lowered == b"authorization":
            authorizations.append(value)
        elif lowered == b"cookie":
            cookies.append(value)
    if len(authorizations) > 1:
        # servers disagree on which one counts: never route by one and authenticate by another
        return Claims(refusal=Refusal(400, "More than one Authorization header"))
    if authorizations and len(authorizations[0]) > MAX_AUTHORIZATION:
        return Claims(refusal=Refusal(431, "Authorization header too large"))
    credential: Credential | None = None
    unreadable: str | None = None
    if authorizations:
        credential, unreadable = _credential(authorizations[0])
    cookie_uid = _cookie_uid(cookies, cookie_key, now) if cookies else None
    path = _clean_path(facts.raw_path)
    if path is None:
        return Claims(credential=credential, cookie_uid=cookie_uid, unreadable=unreadable)
    link = _link_token(path, credential, authorizations[0] if authorizations else None)
    if link is not None:
        # on public-link endpoints Basic carries the link token or 'public' and the link
        # password, never a user's login
        return Claims(cookie_uid=cookie_uid, link_token=link,
                      unreadable=unreadable if credential is not None else None)
    path_uid: str | None = None
    avatar_owner: str | None = None
    if path.startswith(_DAV_PREFIX):
        match = _DAV_USER.match(path)
        path_uid = _segment(match.group(1)) if match else None
        if match is None and (match := _AVATAR_DAV.match(path)) is not None:
            avatar_owner = _segment(match.group(1))
    elif path.startswith(_AVATAR_PREFIXES) and (match := _AVATAR_INDEX.match(path)):
        avatar_owner = _segment(match.group(1))
    return Claims(credential=credential, cookie_uid=cookie_uid, path_uid=path_uid,
                  unreadable=unreadable, avatar_owner=avatar_owner)


def with_login_form(claims: Claims, login: str | None) -> Claims:
    """Add the user name of a login form (read by the edge from a small form body)."""
    if claims.credential is not None or login is None:
        return claims
    if login in ("", "0") or not login.strip(_PHP_TRIM) or len(login) > 255:
        return claims
    return replace(claims, credential=LoginForm(login))


def is_login_form(method: str, raw_path: bytes) -> bool:
    path = _clean_path(raw_path)
    return method == "POST" and path is not None and bool(_LOGIN_FORM.match(path))


def _clean_path(raw_path: bytes) -> str | None:
    """The decoded path with repeated slashes collapsed, or None when not valid UTF-8."""
    try:
        text = raw_path.decode("ascii")
    except UnicodeDecodeError:
        return None
    if "\0" in text:
        return None
    return _SLASHES.sub("/", text) if "//" in text else text


def _segment(encoded: str) -> str | None:
    """A percent-decoded path segment, or None if it is not valid UTF-8, has NUL or is long."""
    if "%" in encoded:
        try:
            value = unquote_to_bytes(encoded).decode("utf-8")
        except UnicodeDecodeError:
            return None
    else:  # the path was ASCII: nothing to decode
        value = encoded
    if not value or "\0" in value or len(value) > 255:
        return None
    return value


def _link_token(path: str, credential: Credential | None,
                authorization: bytes | None) -> str | None:
    if path.startswith(_DAV_PREFIX):
        match = _PUBLIC_FILES.match(path)
    elif path.startswith(_SHARE_PREFIXES):
        match = _SHARE_PAGE.match(path)
    else:
        if not path.startswith(_PUBLIC_PREFIX) or not _PUBLIC_WEBDAV.match(path):
            return None
        if isinstance(credential, BasicLogin):
            return credential.login
        # a link without a password is opened with `<token>:`, which is no login (its
        # password is empty) but is the link's credential
        return _basic_user(authorization) if authorization is not None else None
    return _segment(match.group(1)) if match else None


def _basic_user(header: bytes) -> str | None:
    """The user of a Basic header whatever its password, as Sabre's AbstractBasic reads it
    for public.php/webdav (a colon is all it needs): there the user is the link token."""
    try:
        scheme, _, value = header.decode("ascii").strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (UnicodeDecodeError, binascii.Error, ValueError):
        return None
    user, sep, _ = decoded.partition(":")
    return user if sep and user.strip(_PHP_TRIM) and user != "0" else None


def _credential(header: bytes) -> tuple[Credential | None, str | None]:
    """(credential, why unreadable)."""
    try:
        text = header.decode("ascii").strip()
    except UnicodeDecodeError:
        return None, "authorization-not-ascii"
    scheme, _, value = text.partition(" ")
    value = value.strip()
    scheme = scheme.lower()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None, "basic-unreadable"
        login, sep, password = decoded.partition(":")
        # tryBasicAuthLogin needs non-empty() user and password: '' and '0' are empty in PHP
        if not sep or login in ("", "0") or password in ("", "0"):
            return None, "basic-empty"
        if not login.strip(_PHP_TRIM):
            return None, "basic-empty"
        return BasicLogin(login, password), None
    if scheme == "bearer" and value:
        return Bearer(value), None
    if scheme == "token" and value:
        return AppToken(value), None
    return None, "authorization-unknown-scheme"


# -- the routing cookie -----------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())


def sign_cookie(uid: str, key: bytes, expires: int) -> str:
    """The routing cookie's value for `uid`, valid until `expires` (Unix seconds)."""
    payload = f"{_COOKIE_VERSION}.{_b64(uid.encode('utf-8'))}.{expires}"
    return f"{payload}.{_signature(key, payload)}"


def verify_cookie(value: str, key: bytes, now: float) -> tuple[str, int] | None:
    """(uid, expires) of a cookie this proxy signed and that has not expired; else None."""
    # a client sends the same cookie with each request: its signature is checked once (the
    # value names its uid and expiry for good; the expiry is still checked against `now`)
    known = _VERIFIED.get((key, value))
    if known is not None:
        return known if known[1] > now else None
    held = _verify_cookie(value, key, now)
    if held is not None:
        if len(_VERIFIED) >= VERIFIED_CACHE_SIZE:
            _VERIFIED.clear()
        _VERIFIED[(key, value)] = held
    return held


def _verify_cookie(value: str, key: bytes, now: float) -> tuple[str, int] | None:
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != _COOKIE_VERSION or not parts[2].isdecimal():
        return None
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(_signature(key, payload), parts[3]):
        return None
    expires = int(parts[2])
    if expires <= now:
        return None
    try:
        uid = _unb64(parts[1]).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if not uid or len(uid) > MAX_UID:
        return None
    return uid, expires


def cookie_values(headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
    """Every value of the routing cookie in the request's Cookie headers."""
    return _routing_cookies([value for name, value in headers if name.lower() == b"cookie"])


def _routing_cookies(cookie_headers: Sequence[bytes]) -> list[str]:
    found = []
    for value in cookie_headers:
        if _COOKIE_NAME_BYTES not in value:
            continue
        for part in value.decode("latin-1").split(";"):
            key, sep, val = part.strip().partition("=")
            if sep and key == COOKIE_NAME:
                found.append(val.strip().strip('"'))
    return found


def _cookie_uid(cookie_headers: Sequence[bytes], key: bytes, now: float) -> str | None:
    uids = {v[0] for v in (verify_cookie(c, key, now) for c in _routing_cookies(cookie_headers))
            if v}
    # two valid cookies naming different users: trust neither
    return uids.pop() if len(uids) == 1 else None


# -- lookups --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoginQuery:
    """Resolve a login: the app-password row the password hashes to, the uid the name is."""

    login: str
    token_hash: str = field(repr=False)


@dataclass(frozen=True)
class Queries:
    """What the edge must look up in ownCloud's database for this request."""

    login: LoginQuery | None = None
    #: an `Authorization: token` app password's hash
    app_token_hash: str | None = field(default=None, repr=False)
    bearer: str | None = field(default=None, repr=False)
    link_token: str | None = None
    #: the e-mail claim of a verified OIDC token, in the openidconnect app's email mode
    oidc_email: str | None = None

    def __bool__(self) -> bool:
        return any((self.login, self.app_token_hash, self.bearer, self.link_token,
                    self.oidc_email))


@dataclass(frozen=True)
class LoginFacts:
    """What ownCloud's database says about a login name (and the password as a token)."""

    #: (uid, login_name) of the oc_authtoken row whose hash the password is
    token: tuple[str, str] | None = None
    #: the oc_users uid the name matches ignoring case (exact spelling first), else an
    #: oc_accounts user_id spelled exactly so
    uid: str | None = None
    #: the accounts whose e-mail is the name, ignoring case
    email_uids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Lookups:
    """The answers to Queries."""

    login: LoginFacts | None = None
    app_token_uid: str | None = None
    bearer_uid: str | None = None
    link_owner: str | None = None
    #: the uid of a bearer JWT verified against the OIDC issuer's keys (proxy/oidc.py)
    oidc_uid: str | None = None
    #: the accounts whose e-mail is a verified token's e-mail claim (email mode), at most two
    oidc_email_uids: tuple[str, ...] = ()


def queries(claims: Claims, secret: str) -> Queries:
    """The lookups `identify` needs; `secret` is config.php's, for app-password hashes."""
    credential = claims.credential
    login: LoginQuery | None = None
    app_token: str | None = None
    bearer: str | None = None
    if isinstance(credential, BasicLogin) and _encodable(credential.login, credential.password):
        login = LoginQuery(credential.login, token_hash(credential.password, secret))
    elif isinstance(credential, LoginForm) and _encodable(credential.login):
        login = LoginQuery(credential.login, "")
    elif isinstance(credential, AppToken) and _encodable(credential.token):
        app_token = token_hash(credential.token, secret)
    elif isinstance(credential, Bearer):
        bearer = credential.token
    return Queries(login=login, app_token_hash=app_token, bearer=bearer,
                   link_token=claims.link_token)


def oidc_email_user(uids: Sequence[str]) -> str | None:
    """The openidconnect app's email mode (UserLookupService::lookupUser): the e-mail must
    name exactly one account (IUserManager::getByEmail, any case); none or several: no user."""
    return uids[0] if len(uids) == 1 else None


def _encodable(*texts: str) -> bool:
    try:
        for text in texts:
            text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- identity ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Identity:
    """The user a request belongs to (None: anonymous), which source said so, and the sources
    that named someone else (logged: the credential wins)."""

    uid: str | None
    #: basic, app-password, email, token, bearer, oidc, oidc-email, login-form, link, cookie,
    #: dav-path, anonymous (bounded: used as a metric label)
    source: str
    conflicts: tuple[tuple[str, str], ...] = ()
    refusal: Refusal | None = None
    #: the identity came from a credential (the proxy may set its routing cookie)
    credential: bool = False
    #: the login also matches another account by e-mail (routed by the uid, as oC10 tries it
    #: first)
    ambiguous: bool = False
    #: whose avatar the request reads (Claims.avatar_owner): route.py sends it to the new stack
    #: only if the owner is there too; never the request's user, never a conflict
    avatar_owner: str | None = None


ANONYMOUS: Final = Identity(uid=None, source="anonymous")


def resolve_login(facts: LoginFacts, login: str, *, strict_login: bool) -> tuple[str | None, str]:
    """(uid, source) as User\\Session::logClientIn would reach it (REFERENCE §4.5), without the
    password: an app password whose login name matches, else the user the name is (any case),
    else, unless strict_login_enforced, the one account with that e-mail."""
    if facts.token is not None and login_matches_token(login, facts.token[1]):
        return facts.token[0], "app-password"
    if facts.uid is not None:
        return facts.uid, "basic"
    if not strict_login and len(facts.email_uids) == 1:
        email_uid = facts.email_uids[0]
        if facts.token is not None and login_matches_token(email_uid, facts.token[1]):
            return facts.token[0], "app-password"
        return email_uid, "email"
    return None, "basic"


def identify(claims: Claims, lookups: Lookups, *, strict_login: bool = False) -> Identity:
    """The request's user: the credential wins over the routing cookie, which wins over a DAV
    path; on public-link endpoints the link's owner decides. Disagreements are listed."""
    if claims.refusal is not None:
        return Identity(uid=None, source="refused", refusal=claims.refusal)
    named: list[tuple[str, str]] = []  # (source, uid), strongest first
    ambiguous = False
    credential = claims.credential
    if claims.link_token is not None and lookups.link_owner is not None:
        named.append(("link", lookups.link_owner))
    if isinstance(credential, BasicLogin | LoginForm) and lookups.login is not None:
        uid, source = resolve_login(lookups.login, credential.login, strict_login=strict_login)
        if uid is not None:
            source = "login-form" if isinstance(credential, LoginForm) else source
            named.append((source, uid))
            others = set(lookups.login.email_uids) - {uid}
            ambiguous = source == "basic" and not strict_login and bool(others)
    elif isinstance(credential, AppToken) and lookups.app_token_uid is not None:
        named.append(("token", lookups.app_token_uid))
    elif isinstance(credential, Bearer) and lookups.oidc_uid is not None:
        named.append(("oidc", lookups.oidc_uid))
    elif isinstance(credential, Bearer) and (
            email_uid := oidc_email_user(lookups.oidc_email_uids)) is not None:
        named.append(("oidc-email", email_uid))
    elif isinstance(credential, Bearer) and lookups.bearer_uid is not None:
        named.append(("bearer", lookups.bearer_uid))
    if claims.cookie_uid is not None:
        named.append(("cookie", claims.cookie_uid))
    if claims.path_uid is not None:
        named.append(("dav-path", claims.path_uid))
    if not named:
        if claims.avatar_owner is not None:
            return replace(ANONYMOUS, avatar_owner=claims.avatar_owner)
        return ANONYMOUS
    source, uid = named[0]
    conflicts = tuple((s, u) for s, u in named[1:] if u != uid)
    return Identity(uid=uid, source=source, conflicts=conflicts,
                    credential=source not in ("cookie", "dav-path", "link"),
                    ambiguous=ambiguous, avatar_owner=claims.avatar_owner)
