"""The state of one running test case: who exists, which DAV and OCS flavour is chosen, the
last responses, remembered etags and shares; and the HTTP helpers every step uses."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from acceptance.targets import ADMIN, Settings_, Target

#: ownCloud's acceptance defaults (behat.yml, FeatureContext): passwords by role
PASSWORDS = {"regular": "123456", "alt1": "1234", "alt2": "AaBb2Cc3Dd4",
             "alt3": "aVeryLongPassword42TheMeaningOfLife", "alt4": "ThisIsThe4thAlternatePwd",
             "subadmin": "IamAJuniorAdmin42", "altadmin": "IHave99LotsOfPriv",
             "public": "%public%"}
#: the well-known test users and their default display names and password roles
DEFAULT_USERS = {"alice": ("Alice Hansen", "regular"), "brian": ("Brian Murphy", "alt1"),
                 "carol": ("Carol King", "alt2"), "david": ("David Lopez", "alt3"),
                 "emily": ("Emily Wagner", "alt4")}
PUBLIC_LINK_PASSWORD = "%public%"


class StepNotSupported(Exception):
    """A step form this runner does not implement: the case is reported as skipped."""


@dataclass
class User:
    uid: str
    password: str
    display_name: str
    email: str


@dataclass
class World:
    target: Target
    client: httpx.Client
    users: dict[str, User] = field(default_factory=dict)
    dav: str = "old"
    ocs_version: int = 1
    response: httpx.Response | None = None
    #: responses of the requests of the current block of When steps, for the "responses on all
    #: endpoints" checks (ownCloud's contexts collect the status codes of every action the same
    #: way)
    responses: list[httpx.Response] = field(default_factory=list)
    #: the response XML checks read: the last response, or the PROPFIND of a "gets the
    #: properties" step, which (as in ownCloud's context) leaves the last HTTP status alone
    xml_response: httpx.Response | None = None
    #: Given, When or Then: the keyword of the current step (And/But continue the previous)
    phase: str = "Given"
    etags: dict[tuple[str, str], str] = field(default_factory=dict)
    settings: Settings_ = field(default_factory=Settings_)
    last_share: dict[str, Any] | None = None
    shares: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    # users -------------------------------------------------------------------------------

    def uid(self, name: str) -> str:
        """The real user id for a name in a step (`admin`, a created user, any case)."""
        name = self.substitute(name)
        for uid in self.users:
            if uid.lower() == name.lower():
                return uid
        return name

    def password_of(self, name: str) -> str:
        uid = self.uid(name)
        if uid == ADMIN:
            return self.target.admin_password
        if uid in self.users:
            return self.users[uid].password
        role = DEFAULT_USERS.get(uid.lower(), ("", "regular"))[1]
        return PASSWORDS[role]

    def create_user(self, name: str, password: str | None = None,
                    display_name: str | None = None, email: str | None = None) -> None:
        uid = self.substitute(name)
        display, role = DEFAULT_USERS.get(uid.lower(), (uid, "regular"))
        user = User(uid, password if password is not None else PASSWORDS[role],
                    display_name or display, email or f"{uid.lower()}@example.org")
        self.target.add_user(user.uid, user.password, user.display_name, user.email)
        self.users[uid] = user

    def substitute(self, text: str, user: str | None = None) -> str:
        """ownCloud's placeholders in step arguments and expected values."""
        for role, password in PASSWORDS.items():
            if role != "public":
                text = text.replace(f"%{role}%", password)
        text = text.replace("%public%", PUBLIC_LINK_PASSWORD)
        if user is not None:
            text = text.replace("%username%", user)
            if user in self.users:
                text = text.replace("%displayname%", self.users[user].display_name)
                text = text.replace("%emailaddress%", self.users[user].email)
        text = text.replace("%base_path%", "")
        info = self.target.server_info()
        text = text.replace("%productname%", info.product).replace("%edition%", info.edition)
        text = text.replace("%versionstring%", info.versionstring)
        text = text.replace("%version%", info.version)
        return text

    # HTTP -------------------------------------------------------------------------------

    def send(self, method: str, path: str, *, user: str | None = None,
             password: str | None = None, headers: dict[str, str] | None = None,
             content: bytes | str | None = None, record: bool = True) -> httpx.Response:
        auth = None
        if user is not None:
            auth = (self.uid(user), password if password is not None else self.password_of(user))
        response = self.client.request(method, path, headers=headers or {}, content=content,
                                       auth=auth)
        if record:
            self._record(response)
        return response

    def _record(self, response: httpx.Response) -> None:
        self.response = self.xml_response = response
        if self.phase == "When":
            self.responses.append(response)

    def enter(self, keyword: str) -> None:
        """Called before each step with its keyword."""
        if keyword in ("Given", "When", "Then"):
            if keyword == "When" and self.phase != "When":
                self.responses = []
            self.phase = keyword

    def dav_path(self, user: str, path: str, flavour: str | None = None) -> str:
        """The URL path of `path` in `user`'s files for the chosen (or given) DAV flavour."""
        flavour = flavour or self.dav
        encoded = quote("/" + path.lstrip("/"), safe="/")
        if flavour == "old":
            return "/remote.php/webdav" + encoded
        if flavour == "new":
            return f"/remote.php/dav/files/{quote(self.uid(user), safe='')}" + encoded
        raise StepNotSupported(f"DAV path flavour {flavour!r}")

    def dav_root(self, user: str, flavour: str | None = None) -> str:
        return self.dav_path(user, "", flavour).rstrip("/")

    def ocs(self, method: str, endpoint: str, *, user: str | None = None,
            password: str | None = None, data: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None, record: bool = True) -> httpx.Response:
        url = f"/ocs/v{self.ocs_version}.php" + endpoint
        hdrs = {"OCS-APIREQUEST": "true", **(headers or {})}
        auth = None
        if user is not None:
            auth = (self.uid(user), password if password is not None else self.password_of(user))
        response = self.client.request(method, url, data=data, headers=hdrs, auth=auth)
        if record:
            self._record(response)
        return response

    # reading responses -------------------------------------------------------------------

    def last(self) -> httpx.Response:
        if self.response is None:
            raise AssertionError("no request was sent before this step")
        return self.response

    def xml(self, response: httpx.Response | None = None) -> ET.Element:
        response = response or self.xml_response or self.last()
        try:
            return ET.fromstring(response.content)
        except ET.ParseError as exc:
            raise AssertionError(f"the response is not XML ({exc}): "
                                 f"{response.text[:300]!r}") from exc

    def ocs_meta(self, response: httpx.Response | None = None) -> dict[str, str]:
        response = response or self.last()
        if response.headers.get("content-type", "").startswith("application/json"):
            meta = json.loads(response.content)["ocs"]["meta"]
            return {k: "" if v is None else str(v) for k, v in meta.items()}
        root = self.xml(response)
        meta_el = root.find("meta")
        if meta_el is None:
            raise AssertionError(f"no OCS meta in {response.text[:300]!r}")
        return {child.tag: child.text or "" for child in meta_el}

    def ocs_data(self, response: httpx.Response | None = None) -> ET.Element:
        data = self.xml(response).find("data")
        if data is None:
            raise AssertionError("no OCS data element in the response")
        return data


def status_list(text: str) -> list[int]:
    """'200' or '200,201' (behat accepts a comma-separated list)."""
    try:
        return [int(part) for part in re.split(r"\s*,\s*", text.strip())]
    except ValueError as exc:
        raise ValueError(f"not a status code list: {text!r}") from exc
