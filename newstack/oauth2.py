"""The oauth2 app's token endpoint for tokens carried over from ownCloud 10: a desktop or mobile
client whose access token expires (after an hour) trades its migrated refresh token for a new
pair, as OAuthApiController::generateToken (owncloud/oauth2) does, errors included.

Authorization codes are not served (the new stack has no authorize page; pending codes are
not migrated), so that grant answers as for an unknown code.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs

from bridge.oc10 import tokens
from newstack.http import Request, Response
from newstack.metadata.store import MetadataStore

TOKEN_PATH: Final = "/index.php/apps/oauth2/api/v1/token"
SUCCESS_PATH: Final = "/index.php/apps/oauth2/authorization-successful"
#: AccessToken::EXPIRATION_TIME
EXPIRATION_TIME: Final = 3600
#: desktop client 2.4.2 loops on a 400 here, so oauth2 answers its refresh errors with 200
_MIRALL_242: Final = re.compile(r"\bmirall\b.+2\.4\.2", re.IGNORECASE)
_JSON: Final = "application/json; charset=utf-8"


@dataclass(frozen=True)
class TokenRequest:
    """What generateToken reads: its parameters (query or form body) and Basic credentials."""

    grant_type: str | None
    refresh_token: str | None
    client_id: str | None
    code_verifier: str | None
    basic: tuple[str, str] | None
    user_agent: str


def parse(req: Request) -> TokenRequest:
    """Parameters from the query string and a form body (the form wins, as PHP's $_POST over
    $_GET in the AppFramework's merge)."""
    params = {k: v[-1] for k, v in req.query.items()}
    if (req.header("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
        body = req.read_body(64 * 1024).decode("utf-8", "replace")
        params.update({k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()})
    return TokenRequest(params.get("grant_type"), params.get("refresh_token"),
                        params.get("client_id"), params.get("code_verifier"),
                        req.basic_credentials(), req.header("User-Agent") or "")


def error(status: int, code: str, description: str | None = None) -> Response:
    body: dict[str, str] = {"error": code}
    if description is not None:
        body["error_description"] = description
    return _json(status, body)


def _json(status: int, body: Mapping[str, object]) -> Response:
    # PHP's json_encode escapes '/' by default
    return Response.of(status, json.dumps(body).replace("/", "\\/").encode(), _JSON)


class TokenEndpoint:
    def __init__(self, store: MetadataStore, *, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self._clock = clock
        self._rng = rng or random.SystemRandom()

    def __call__(self, req: Request) -> Response:
        if req.method != "POST":
            return Response.of(405, b"Method Not Allowed", "text/plain; charset=utf-8")
        ask = parse(req)
        if ask.grant_type is None:
            return error(400, "invalid_request")
        # a public client (PKCE) names itself; a confidential one authenticates with Basic
        if ask.client_id is not None and ask.code_verifier is not None:
            client = self.store.oauth2_client(ask.client_id)
            if client is None:
                return error(400, "invalid_client")
        else:
            if ask.basic is None:
                return error(400, "invalid_request")
            client = self.store.oauth2_client(ask.basic[0])
            if client is None or client[1] != ask.basic[1]:
                return error(400, "invalid_client")
        if ask.grant_type == "authorization_code":
            return error(400, "invalid_grant", "authorization code does not exist")
        if ask.grant_type != "refresh_token":
            return error(400, "invalid_grant", "unhandled grant type")
        status = 200 if _MIRALL_242.search(ask.user_agent) else 400
        if ask.refresh_token is None:
            return error(status, "invalid_request")
        found = self.store.oauth2_refresh_token(ask.refresh_token)
        if found is None:
            return error(status, "invalid_grant", "refresh token does not exist")
        refresh_id, client_id, uid, access_id = found
        if client_id != client[0]:
            return error(status, "invalid_grant", "refresh grant client ids mismatch")
        if ":" in uid:  # "strip off username if it exists"
            uid = uid.split(":", 1)[1]
        user = self.store.user(uid)
        if user is None or not user.enabled:
            return error(400, "unauthorized_client", "user not enabled")
        access, refresh = tokens.new_oauth_token(self._rng), tokens.new_oauth_token(self._rng)
        self.store.oauth2_rotate(refresh_id, access_id, client_id, uid, access, refresh,
                                 int(self._clock()) + EXPIRATION_TIME)
        return _json(200, {
            "access_token": access, "token_type": "Bearer", "expires_in": EXPIRATION_TIME,
            "refresh_token": refresh, "user_id": uid,
            "message_url": req.host_url() + SUCCESS_PATH,
        })
