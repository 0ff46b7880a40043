"""The proxy as an ASGI app: each request goes through the stages of `handle`, in order:
identify → route → freeze → forward → log and count → shadow (a read mirrored to the other
stack after its answer, for the users of `proxy.shadow_users`).

The routing view (proxy/view.py) and the backend pools live for the app's lifespan.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs

from bridge import metrics
from bridge.config import Settings
from bridge.store import BridgeStore
from proxy.directory import LegacyDirectory
from proxy.errors import ProxyAnswer, refused, sabre_body
from proxy.forward import Backend, Exchange, Receive, Scope, Send, forward, send_answer
from proxy.freeze import frozen_answer, is_write
from proxy.identify import (
    COOKIE_NAME,
    Bearer,
    Identity,
    Lookups,
    RequestFacts,
    cookie_values,
    identify,
    is_login_form,
    queries,
    read_claims,
    sign_cookie,
    verify_cookie,
    with_login_form,
)
from proxy.route import Decision, route
from proxy.shadow import Shadow
from proxy.view import ViewKeeper

if TYPE_CHECKING:
    from proxy.oidc import Verifier

log = logging.getLogger("ocbridge.proxy")
access_log = logging.getLogger("ocbridge.proxy.access")

#: a login form body larger than this is forwarded unread (and routed without its user name)
LOGIN_FORM_LIMIT: Final = 16 * 1024
_LINK_IN_PATH = re.compile(r"(/s/|/public-files/)[^/]+")
_LOOPBACK: Final = ("127.0.0.1", "::1")
COOKIE_RESIGN_SECONDS: Final = 60
COOKIE_CACHE_SIZE: Final = 10_000
#: proxy.oidc_uid_claim naming the openidconnect app's email mode
OIDC_EMAIL_CLAIM: Final = "email"
#: json.dumps builds an encoder for each call with options: one, built once
_JSON: Final = json.JSONEncoder(ensure_ascii=False)
#: identity source -> its counter (`labels()` locks and builds a key at each call)
_IDENTITIES: dict[str, Any] = {}


class ProxyApp:
    """The routing proxy; build it in the process that serves it (after any fork)."""

    def __init__(self, settings: Settings, *, store: BridgeStore | None = None,
                 directory: LegacyDirectory | None = None) -> None:
        self.settings = settings
        self._store = store
        self._directory = directory
        #: what the app opened itself it also closes
        self._owns_store = store is None
        self._owns_directory = directory is None
        p = settings.proxy
        self.backends = {
            "legacy": Backend("legacy", p.legacy_url, connect_timeout=p.connect_timeout,
                              read_timeout=p.read_timeout),
            "new": Backend("new", p.newstack_url, connect_timeout=p.connect_timeout,
                           read_timeout=p.read_timeout),
        }
        self.keeper: ViewKeeper | None = None
        self.shadow = Shadow(p) if p.shadow_users else None
        self.oidc: Verifier | None = None
        #: the claim is an e-mail resolved to its one account, as the openidconnect app's
        #: email mode does, rather than the uid itself (userid mode)
        self.oidc_by_email = p.oidc_uid_claim == OIDC_EMAIL_CLAIM
        if p.oidc_issuer:  # cryptography costs each worker ~7 MiB: loaded only when used
            from proxy.oidc import Expectations, Verifier

            self.oidc = Verifier(Expectations(p.oidc_issuer, p.oidc_audience, p.oidc_uid_claim),
                                 p.oidc_jwks)
        self._key_reload: asyncio.Task[None] | None = None
        self.cookie_key = b""
        #: uid -> (expiry, signed value) of the last routing cookie handed out
        self._cookies: dict[str, tuple[int, str]] = {}
        self._task: asyncio.Task[None] | None = None

    # -- lifespan ---------------------------------------------------------------------------------

    async def startup(self) -> None:
        settings = self.settings
        if self._store is None:
            self._store = await asyncio.to_thread(BridgeStore.from_settings, settings)
        if self._directory is None:
            self._directory = await asyncio.to_thread(LegacyDirectory.from_settings, settings)
        store = self._store
        secret = settings.proxy.cookie_secret or await asyncio.to_thread(
            store.secret, "proxy_cookie")
        self.cookie_key = secret.encode("utf-8")
        keeper = ViewKeeper(store, default_stack=settings.proxy.default_stack,
                            refresh_seconds=settings.proxy.refresh_ms / 1000)
        await asyncio.to_thread(keeper.load)
        self.keeper = keeper
        for backend in self.backends.values():
            await backend.start()
        if self.shadow is not None:
            await self.shadow.open()
        if self.oidc is not None:
            await self._load_keys()
        await keeper.step()
        self._task = asyncio.create_task(keeper.run())
        log.info("proxy %s routing by epoch %d", keeper.proxy_id, keeper.view.epoch)

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self.shadow is not None:
            await self.shadow.close()
        for backend in self.backends.values():
            await backend.close()
        if self.keeper is not None:
            await asyncio.to_thread(self.keeper.close)
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None
        if self._owns_directory and self._directory is not None:
            self._directory.close()
            self._directory = None

    async def _load_keys(self) -> None:
        assert self.oidc is not None
        try:
            await asyncio.to_thread(self.oidc.load)
        except Exception:  # the proxy serves on; bearer JWTs just are not trusted meanwhile
            log.exception("cannot load the OIDC issuer's keys from %s", self.oidc.jwks_source)

    def _verified_jwt(self, credential: object, exchange: Exchange) -> str | None:
        """The user claim of a bearer JWT that verifies against the issuer's keys, else None
        (the reason goes to the access log; an unknown key id makes the keys load again)."""
        if self.oidc is None or not isinstance(credential, Bearer):
            return None
        from proxy.oidc import looks_like_jwt

        if not looks_like_jwt(credential.token):
            return None
        uid, why = self.oidc.uid(credential.token)
        if uid is None:
            exchange.jwt_rejected = why
            if why == "unknown key" and self.oidc.wants_reload() and (
                    self._key_reload is None or self._key_reload.done()):
                self._key_reload = asyncio.create_task(self._load_keys())
        return uid

    @property
    def directory(self) -> LegacyDirectory:
        assert self._directory is not None
        return self._directory

    # -- ASGI -------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self.handle(scope, receive, send)
        # websockets: ownCloud 10 has none; uvicorn closes what the app does not accept

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("proxy start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One request, stage by stage."""
        started = time.perf_counter()
        keeper = self.keeper
        assert keeper is not None
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        if raw_path == b"/metrics" and _from_loopback(scope):
            await _metrics(send)
            return
        exchange = Exchange()

        # identify
        facts = RequestFacts(method, raw_path, scope["headers"])
        claims = read_claims(facts, self.cookie_key, time.time())
        prefix: bytes | None = None
        if claims.credential is None and is_login_form(method, raw_path):
            prefix, login = await _read_login_form(scope, receive)
            claims = with_login_form(claims, login)
        oidc_claim = self._verified_jwt(claims.credential, exchange)
        wanted = queries(claims, self.directory.secret)
        if oidc_claim is not None:
            # not an ownCloud OAuth2 token: that lookup is dropped; in email mode the
            # verified e-mail is looked up instead
            wanted = replace(wanted, bearer=None,
                             oidc_email=oidc_claim if self.oidc_by_email else None)
        lookups = Lookups()
        if wanted:
            cached = self.directory.cached(wanted)
            if cached is not None:
                lookups = cached
            else:
                try:
                    lookups = await asyncio.to_thread(self.directory.resolve, wanted)
                except Exception:
                    # routing without knowing the user could send a write to the wrong stack
                    log.exception("cannot read the ownCloud database to identify a request")
                    answer = ProxyAnswer(503, sabre_body(
                        "Sabre\\DAV\\Exception\\ServiceUnavailable",
                        "The user directory is not reachable"), (("Retry-After", "10"),))
                    await send_answer(send, answer, exchange)
                    exchange.error = "directory"
                    self._done(scope, started, None, None, exchange, False)
                    return
        if oidc_claim is not None and not self.oidc_by_email:
            lookups = replace(lookups, oidc_uid=oidc_claim)
        identity = identify(claims, lookups, strict_login=self.directory.strict_login)
        if identity.refusal is not None:
            await send_answer(send, refused(identity.refusal.status, identity.refusal.message),
                              exchange)
            exchange.error = "refused"
            self._done(scope, started, identity, None, exchange, False)
            return

        # route
        decision = route(identity, keeper.view)

        # freeze
        write = is_write(method, raw_path)
        if write and decision.frozen:
            p = self.settings.proxy
            await send_answer(send, frozen_answer(p.freeze_status, p.retry_after), exchange)
            exchange.error = "frozen"
            metrics.PROXY_FROZEN.inc()
            self._done(scope, started, identity, decision, exchange, write)
            return

        # forward (a shadowed read is watched as it passes: body hashed, never held up)
        uid = decision.uid
        counted = write and uid is not None
        if counted:
            assert uid is not None
            keeper.write_started(uid, decision.epoch)
        watch = (self.shadow.watch(scope, identity, decision.stack, receive, send)
                 if self.shadow is not None else None)
        if watch is not None:
            receive, send = watch.receive, watch.send
        try:
            await forward(self.backends[decision.stack], scope, receive, send, exchange,
                          prefix=prefix, extra_headers=self._cookie_setter(scope, identity),
                          zero_copy=watch is None)
        finally:
            if counted:
                assert uid is not None
                keeper.write_finished(uid, decision.epoch)
            self._done(scope, started, identity, decision, exchange, write)

        # shadow: the answer is complete; its mirror waits on the queue (or is dropped)
        if watch is not None and self.shadow is not None:
            self.shadow.submit(watch, complete=not exchange.error)

    def _cookie_setter(self, scope: Scope, identity: Identity
                       ) -> Callable[[int], list[tuple[bytes, bytes]]] | None:
        """Set the signed routing cookie after a successful request identified by a credential,
        unless the client already holds one for that user with more than half its life left."""
        uid = identity.uid
        if not identity.credential or uid is None:
            return None
        max_age = self.settings.proxy.cookie_max_age
        now = time.time()
        for value in cookie_values(scope["headers"]):
            held = verify_cookie(value, self.cookie_key, now)
            if held is not None and held[0] == uid and held[1] - now > max_age / 2:
                return None
        secure = "; Secure" if scope.get("scheme") == "https" else ""

        def extra(status: int) -> list[tuple[bytes, bytes]]:
            if status >= 400:
                return []
            cookie = (f"{COOKIE_NAME}={self._signed(uid, int(now))}; Path=/; Max-Age={max_age}; "
                      f"HttpOnly; SameSite=Lax{secure}")
            return [(b"set-cookie", cookie.encode("ascii"))]

        return extra

    def _signed(self, uid: str, now: int) -> str:
        """The routing cookie for `uid`, signed at most COOKIE_RESIGN_SECONDS ago: clients that
        keep no cookies (scripts, load generators) would otherwise cost an HMAC each request."""
        max_age = self.settings.proxy.cookie_max_age
        held = self._cookies.get(uid)
        if held is not None and held[0] - max_age > now - COOKIE_RESIGN_SECONDS:
            return held[1]
        if len(self._cookies) >= COOKIE_CACHE_SIZE:
            self._cookies.clear()
        value = sign_cookie(uid, self.cookie_key, now + max_age)
        self._cookies[uid] = (now + max_age, value)
        return value

    # -- log and count ----------------------------------------------------------------------------

    def _done(self, scope: Scope, started: float, identity: Identity | None,
              decision: Decision | None, exchange: Exchange, write: bool) -> None:
        seconds = time.perf_counter() - started
        stack = decision.stack if decision else "none"
        reason = decision.reason if decision else "refused"
        if identity is not None:
            counter = _IDENTITIES.get(identity.source)
            if counter is None:
                counter = _IDENTITIES[identity.source] = metrics.PROXY_IDENTITIES.labels(
                    identity.source)
            counter.inc()
            for source, _uid in identity.conflicts:
                metrics.PROXY_CONFLICTS.labels(identity.source, source).inc()
        if exchange.error in ("timeout", "refused", "failed") or exchange.error.startswith(
                "body-"):
            metrics.PROXY_BACKEND_ERRORS.labels(stack, exchange.error.split("-")[0]).inc()
        metrics.observe_proxy(stack, reason, exchange.status, seconds, exchange.bytes_in,
                              exchange.bytes_out)
        if not access_log.isEnabledFor(logging.INFO):
            return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = raw_path.decode("latin-1")
        if "/s/" in path or "/public-files/" in path:
            path = _LINK_IN_PATH.sub(r"\1…", path)
        client = scope.get("client")
        line: dict[str, Any] = {
            "method": scope["method"],
            "path": path,
            "status": exchange.status,
            "stack": stack,
            "reason": reason,
            "source": identity.source if identity else "",
            "uid": identity.uid if identity else None,
            "epoch": decision.epoch if decision else None,
            "write": write,
            "bytes_in": exchange.bytes_in,
            "bytes_out": exchange.bytes_out,
            "ms": round(seconds * 1000, 1),
            "upstream_ms": round(exchange.upstream_seconds * 1000, 1),
            "client": client[0] if client else None,
        }
        if exchange.error:
            line["error"] = exchange.error
        if exchange.jwt_rejected:
            line["jwt_rejected"] = exchange.jwt_rejected
        if identity is not None and identity.conflicts:
            line["conflicts"] = [{"source": s, "uid": u} for s, u in identity.conflicts]
        if identity is not None and identity.ambiguous:
            line["ambiguous_login"] = True
        # handed to the handlers as `access_log.info` would, less its search of the stack for
        # the caller's file and line, which no access-log format shows
        access_log.handle(access_log.makeRecord(
            access_log.name, logging.INFO, __file__, 0, _JSON.encode(line), (), None, "_done"))


def _from_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    return client is not None and client[0] in _LOOPBACK


async def _metrics(send: Send) -> None:
    body, content_type = metrics.exposition()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", content_type.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _read_login_form(scope: Scope, receive: Receive) -> tuple[bytes | None, str | None]:
    """(body, user field) of a small urlencoded login form; (None, None) when the body is not
    one (then it is streamed unread)."""
    headers = {k.lower(): v for k, v in scope["headers"]}
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    length = headers.get(b"content-length", b"")
    if content_type != b"application/x-www-form-urlencoded" or not length.isdigit():
        return None, None
    if int(length) > LOGIN_FORM_LIMIT:
        return None, None
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    try:
        users = parse_qs(body.decode("utf-8"), keep_blank_values=True).get("user")
    except (UnicodeDecodeError, ValueError):
        return body, None
    return body, users[0] if users and len(users) == 1 else None
