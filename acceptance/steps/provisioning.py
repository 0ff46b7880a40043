"""Users, groups, quotas and server settings (Provisioning, AppConfigurationContext,
OccContext): done through the target's own provisioning code, then checked over HTTP the way
ownCloud's steps check that the user exists."""

from __future__ import annotations

from acceptance.registry import step
from acceptance.world import StepNotSupported, World

Table = tuple[tuple[str, ...], ...]


def _created(world: World, name: str, **attrs: str | None) -> None:
    world.create_user(name, **attrs)
    uid = world.uid(name)
    # ownCloud's step asks the server whether the user now exists; a login is our equivalent
    response = world.ocs("GET", f"/cloud/users/{uid}", user=uid, record=False)
    assert response.status_code == 200, (
        f"user {uid} was provisioned but cannot log in: HTTP {response.status_code}")


@step(r'user "([^"]*)" has been created with default attributes and without skeleton files')
def user_created(world: World, name: str) -> None:
    _created(world, name)


@step(r'user "([^"]*)" has been created with default attributes and (small|large) skeleton '
      r'files',
      r'user "([^"]*)" has been created with default attributes()')
def user_created_skeleton(world: World, name: str, size: str) -> None:
    raise StepNotSupported("ownCloud's skeleton files are not part of the copied suites")


@step(r"these users have been created with default attributes and without skeleton files:",
      r"these users have been created without skeleton files:")
def users_created(world: World, table: Table) -> None:
    heading = table[0]
    for row in table[1:]:
        attrs = dict(zip(heading, row, strict=True))
        _created(world, attrs["username"], password=attrs.get("password"),
                 display_name=attrs.get("displayname"), email=attrs.get("email"))


@step(r'group "([^"]*)" has been created')
def group_created(world: World, gid: str) -> None:
    world.target.add_group(gid)


@step(r'user "([^"]*)" has been added to group "([^"]*)"')
def member_added(world: World, name: str, gid: str) -> None:
    world.target.add_member(gid, world.uid(name))


@step(r'the quota of user "([^"]*)" has been set to "([^"]*)"')
def quota_set(world: World, name: str, quota: str) -> None:
    world.target.set_quota(world.uid(name), quota)


def _configure(world: World, app: str, key: str, value: str) -> None:
    world.settings.appconfig[(app, key)] = value
    world.target.configure(world.settings)


@step(r'parameter "([^"]*)" of app "([^"]*)" has been set to "([^"]*)"')
def app_parameter(world: World, key: str, app: str, value: str) -> None:
    _configure(world, app, key, value)


@step(r"auto-accept shares has been disabled")
def auto_accept_off(world: World) -> None:
    _configure(world, "core", "shareapi_auto_accept_share", "no")


@step(r'the administrator has set the default folder for received shares to "([^"]*)"')
def share_folder(world: World, folder: str) -> None:
    for stack in world.target.all_stacks():
        if stack.app is not None:
            stack.app.shares_api.share_folder = folder


@step(r'the administrator sets parameter "([^"]*)" of app "([^"]*)" to "([^"]*)"')
def sets_app_parameter(world: World, key: str, app: str, value: str) -> None:
    _configure(world, app, key, value)


@step(r"""parameter "([^"]*)" of app "([^"]*)" has been set to '([^']*)'""")
def app_parameter_quoted(world: World, key: str, app: str, value: str) -> None:
    _configure(world, app, key, value)


@step(r"these groups have been created:")
def groups_created(world: World, table: Table) -> None:
    column = table[0].index("groupname")
    for row in table[1:]:
        world.target.add_group(row[column])
