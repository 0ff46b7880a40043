"""The directory against real ownCloud 10 fixture databases: every credential of the manifest
resolves to its user through read_claims → queries → LegacyDirectory → identify."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bridge.config import LegacySettings, Settings
from fixtures.manifest import Manifest
from proxy.directory import LegacyDirectory
from proxy.identify import Identity, RequestFacts, identify, queries, read_claims
from tests.fixtures.test_instances import build

KEY = b"k" * 32


@pytest.fixture(params=["sqlite", "postgres"])
def instance(request: pytest.FixtureRequest, tmp_path: Path) -> Manifest:
    url = "sqlite" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    return build(tmp_path, url, "small")


@pytest.fixture
def directory(instance: Manifest) -> Iterator[LegacyDirectory]:
    found = LegacyDirectory.from_settings(
        Settings(legacy=LegacySettings(config_php=Path(instance.config_php))))
    yield found
    found.close()


def who(directory: LegacyDirectory, path: str, authorization: bytes | None = None) -> Identity:
    headers = [(b"authorization", authorization)] if authorization else []
    claims = read_claims(RequestFacts("PROPFIND", path.encode(), headers), KEY, 0)
    wanted = queries(claims, directory.secret)
    lookups = directory.resolve(wanted)
    assert directory.cached(wanted) == lookups  # the second time without the database
    return identify(claims, lookups, strict_login=directory.strict_login)


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def test_every_credential_of_the_fixture_resolves(instance: Manifest,
                                                  directory: LegacyDirectory) -> None:
    checked = {"basic": 0, "app-password": 0, "bearer": 0, "email": 0, "link": 0}
    emails = [u["email"].lower() for u in instance.users if u["email"]]
    for user in instance.users:
        uid = user["uid"]
        for login in (uid, uid.upper()):
            identity = who(directory, "/remote.php/webdav/", basic(login, "wrong password"))
            assert (identity.uid, identity.source) == (uid, "basic"), login
            checked["basic"] += 1
        if user["email"] and emails.count(user["email"].lower()) == 1:
            identity = who(directory, "/", basic(user["email"].upper(), "pw"))
            assert (identity.uid, identity.source) == (uid, "email")
            checked["email"] += 1
        for app in user["app_passwords"]:
            identity = who(directory, "/", basic(app["login_name"], app["token"]))
            assert (identity.uid, identity.source) == (uid, "app-password"), app
            token = who(directory, "/", b"token " + app["token"].encode())
            assert (token.uid, token.source) == (uid, "token")
            checked["app-password"] += 1
        for grant in user["oauth"]:
            identity = who(directory, "/", b"Bearer " + grant["access_token"].encode())
            assert (identity.uid, identity.source) == (uid, "bearer")
            checked["bearer"] += 1
    for link in instance.links():
        for path in (f"/s/{link['token']}", f"/remote.php/dav/public-files/{link['token']}/"):
            identity = who(directory, path)
            assert (identity.uid, identity.source) == (link["owner"], "link")
        identity = who(directory, "/public.php/webdav/", basic(link["token"], "x"))
        assert (identity.uid, identity.source) == (link["owner"], "link")
        checked["link"] += 1
    assert all(checked.values()), checked
    # unknown things name nobody
    assert who(directory, "/", basic("nobody-here", "pw")).uid is None
    assert who(directory, "/", b"Bearer " + b"x" * 64).uid is None
    assert who(directory, "/s/NoSuchLinkToken").uid is None


def test_links_made_on_the_new_stack_resolve_to_their_owner(tmp_path: Path) -> None:
    from bridge.config import NewstackSettings
    from newstack.metadata.schema import shares
    from newstack.service import open_newstack
    from tests.newstack.legacy.stack import empty_instance

    manifest = empty_instance(tmp_path / "oc10", {"bob": "pw-1", "carol": "pw-2"})
    settings = Settings(legacy=LegacySettings(config_php=Path(manifest.config_php)),
                        newstack=NewstackSettings(data_dir=tmp_path / "new"))
    stack = open_newstack(settings)
    try:
        with stack.store.engine.begin() as conn:
            for id_, share_type, token, owner in (
                    (1, 3, "MadeOnNewStack1", "bob"),      # a link made after bob moved
                    (2, 0, "NotALinkToken01", "carol"),     # a user share: no token routing
            ):
                conn.execute(shares.insert().values(
                    id=id_, share_type=share_type, token=token, uid_owner=owner,
                    item_type="file", item_source="7", file_source=7, permissions=1))
    finally:
        stack.store.engine.dispose()
    directory = LegacyDirectory.from_settings(settings)
    try:
        for path in ("/s/MadeOnNewStack1", "/index.php/s/MadeOnNewStack1",
                     "/remote.php/dav/public-files/MadeOnNewStack1/x.txt"):
            identity = who(directory, path)
            assert (identity.uid, identity.source) == ("bob", "link"), path
        identity = who(directory, "/public.php/webdav/", basic("MadeOnNewStack1", "x"))
        assert (identity.uid, identity.source) == ("bob", "link")
        assert who(directory, "/s/NotALinkToken01").uid is None
        assert who(directory, "/s/NoSuchLinkToken").uid is None
    finally:
        directory.close()


def test_without_a_new_stack_database_only_legacy_links_count(tmp_path: Path) -> None:
    from bridge.config import NewstackSettings
    from tests.newstack.legacy.stack import empty_instance

    manifest = empty_instance(tmp_path / "oc10", {"bob": "pw-1"})
    directory = LegacyDirectory.from_settings(Settings(
        legacy=LegacySettings(config_php=Path(manifest.config_php)),
        newstack=NewstackSettings(data_dir=tmp_path / "never-started")))
    try:
        assert who(directory, "/s/AnyToken").uid is None
        assert not (tmp_path / "never-started" / "metadata.db").exists()  # nothing created
    finally:
        directory.close()


def _make_link(settings: Settings, id_: int, token: str, owner: str) -> None:
    """A public link made on the new stack (its metadata database is created if need be)."""
    from newstack.metadata.schema import shares
    from newstack.service import open_newstack

    stack = open_newstack(settings)
    try:
        with stack.store.engine.begin() as conn:
            conn.execute(shares.insert().values(
                id=id_, share_type=3, token=token, uid_owner=owner, item_type="file",
                item_source="7", file_source=7, permissions=1))
    finally:
        stack.store.engine.dispose()


def test_a_new_stack_database_made_after_the_proxy_started_is_found(tmp_path: Path) -> None:
    import shutil

    from bridge.config import NewstackSettings
    from tests.newstack.legacy.stack import empty_instance

    manifest = empty_instance(tmp_path / "oc10", {"bob": "pw-1", "carol": "pw-2"})
    settings = Settings(legacy=LegacySettings(config_php=Path(manifest.config_php)),
                        newstack=NewstackSettings(data_dir=tmp_path / "new"))
    directory = LegacyDirectory.from_settings(settings)  # before the new stack ever ran
    try:
        assert who(directory, "/s/MadeLaterOnNew1").uid is None
        assert not (tmp_path / "new" / "metadata.db").exists()  # the lookup created nothing
        _make_link(settings, 1, "MadeLaterOnNew1", "bob")
        # the miss above is remembered for lookup_cache_seconds, a link made since is not
        identity = who(directory, "/s/MadeLaterOnNew2")
        assert identity.uid is None
        _make_link(settings, 2, "MadeLaterOnNew2", "bob")
        directory.forget()
        for token in ("MadeLaterOnNew1", "MadeLaterOnNew2"):
            identity = who(directory, f"/s/{token}")
            assert (identity.uid, identity.source) == ("bob", "link"), token
        # the database replaced by another (a new stack set up again): the new file is read
        shutil.rmtree(tmp_path / "new")
        _make_link(settings, 1, "OnTheSecondFile", "carol")
        directory.forget()
        identity = who(directory, "/s/OnTheSecondFile")
        assert (identity.uid, identity.source) == ("carol", "link")
        assert who(directory, "/s/MadeLaterOnNew1").uid is None
    finally:
        directory.close()


def test_a_failing_new_stack_lookup_is_not_remembered(tmp_path: Path) -> None:
    from bridge.config import NewstackSettings
    from tests.newstack.legacy.stack import empty_instance

    manifest = empty_instance(tmp_path / "oc10", {"bob": "pw-1"})
    settings = Settings(legacy=LegacySettings(config_php=Path(manifest.config_php)),
                        newstack=NewstackSettings(data_dir=tmp_path / "new"))
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "metadata.db").write_bytes(b"not a database at all" * 100)
    directory = LegacyDirectory.from_settings(settings)
    try:
        claims = read_claims(RequestFacts("GET", b"/s/SoonThereToken", []), KEY, 0)
        wanted = queries(claims, directory.secret)
        with pytest.raises(sa.exc.SQLAlchemyError):
            directory.resolve(wanted)  # the proxy answers 503: it cannot tell where to route
        assert directory.cached(wanted) is None
        (tmp_path / "new" / "metadata.db").unlink()
        _make_link(settings, 1, "SoonThereToken", "bob")
        identity = who(directory, "/s/SoonThereToken")
        assert (identity.uid, identity.source) == ("bob", "link")
    finally:
        directory.close()


def test_an_oidc_email_is_looked_up_as_getbyemail(instance: Manifest,
                                                  directory: LegacyDirectory) -> None:
    from proxy.identify import Bearer, Claims, Queries

    emails = [u["email"] for u in instance.users if u["email"]]
    unique = next(u for u in instance.users
                  if u["email"] and [e.lower() for e in emails].count(u["email"].lower()) == 1)
    claims = Claims(credential=Bearer("a verified jwt"))
    for email, uid in ((unique["email"].upper(), unique["uid"]),
                       ("no-one-has@this.example", None)):
        wanted = Queries(oidc_email=email)
        lookups = directory.resolve(wanted)
        assert directory.cached(wanted) == lookups
        identity = identify(claims, lookups)
        assert identity.uid == uid, email
        assert identity.source == ("oidc-email" if uid else "anonymous")
