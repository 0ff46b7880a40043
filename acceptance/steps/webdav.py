"""Files over WebDAV (WebDav.php): uploads, folders, moves, copies, deletes, downloads,
existence and content checks, new chunking."""

from __future__ import annotations

from urllib.parse import unquote

from acceptance.registry import step
from acceptance.world import StepNotSupported, World

Table = tuple[tuple[str, ...], ...]

PROPFIND_TYPE = (b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/>'
                 b"<d:resourcetype/></d:prop></d:propfind>")


def _text(world: World, value: str) -> str:
    # behat steps unescape \n in the content argument (WebDav::userUploadsAFileWithContentTo)
    return world.substitute(value).replace("\\n", "\n")


def upload(world: World, user: str, content: str, path: str,
           headers: dict[str, str] | None = None) -> int:
    response = world.send("PUT", world.dav_path(user, path), user=user, content=content,
                          headers=headers)
    return response.status_code


def _require(world: World, wanted: tuple[int, ...], what: str) -> None:
    got = world.last().status_code
    assert got in wanted, (f"{what}: expected HTTP {' or '.join(map(str, wanted))}, got {got}; "
                           f"{world.last().text[:300]!r}")


@step(r'user "([^"]*)" has uploaded file with content "([^"]*)" to "([^"]*)"')
def has_uploaded(world: World, user: str, content: str, path: str) -> None:
    upload(world, user, _text(world, content), path)
    _require(world, (201, 204), f"PUT {path}")


@step(r'user "([^"]*)" uploads file with content "([^"]*)" to "([^"]*)" using the WebDAV API')
def uploads(world: World, user: str, content: str, path: str) -> None:
    upload(world, user, _text(world, content), path)


@step(r'user "([^"]*)" has uploaded the following files with content "([^"]*)"')
def has_uploaded_many(world: World, user: str, content: str, table: Table) -> None:
    for (path,) in table[1:]:
        upload(world, user, _text(world, content), path)
        _require(world, (201, 204), f"PUT {path}")


@step(r'user "([^"]*)" uploads the following files with content "([^"]*)"')
def uploads_many(world: World, user: str, content: str, table: Table) -> None:
    for (path,) in table[1:]:
        upload(world, user, _text(world, content), path)


@step(r'user "([^"]*)" has uploaded file "([^"]*)" to "([^"]*)"',
      r'user "([^"]*)" uploads file "([^"]*)" to "([^"]*)" using the WebDAV API')
def upload_fixture_file(world: World, user: str, source: str, path: str) -> None:
    raise StepNotSupported("ownCloud's filesForUpload fixtures are not part of the copies")


@step(r'user "([^"]*)" has created folder "([^"]*)"')
def has_created_folder(world: World, user: str, path: str) -> None:
    world.send("MKCOL", world.dav_path(user, world.substitute(path)), user=user)
    _require(world, (201, 204), f"MKCOL {path}")


@step(r'user "([^"]*)" has created the following folders')
def has_created_folders(world: World, user: str, table: Table) -> None:
    for (path,) in table[1:]:
        has_created_folder(world, user, path)


@step(r'user "([^"]*)" creates folder "([^"]*)" using the WebDAV API')
def creates_folder(world: World, user: str, path: str) -> None:
    world.send("MKCOL", world.dav_path(user, world.substitute(path)), user=user)


def _destination(world: World, user: str, path: str) -> str:
    return str(world.client.base_url).rstrip("/") + world.dav_path(user, path)


def move(world: World, user: str, source: str, target: str,
         headers: dict[str, str] | None = None, method: str = "MOVE") -> None:
    world.send(method, world.dav_path(user, source), user=user,
               headers={"Destination": _destination(world, user, target), **(headers or {})})


@step(r'user "([^"]*)" (?:moves|renames) (?:file|folder|entry) "([^"]*)" to "([^"]*)" using '
      r'the WebDAV API')
def moves(world: World, user: str, source: str, target: str) -> None:
    move(world, user, source, target)


@step(r'user "([^"]*)" has (?:moved|renamed) (?:file|folder|entry) "([^"]*)" to "([^"]*)"')
def has_moved(world: World, user: str, source: str, target: str) -> None:
    move(world, user, source, target)
    _require(world, (201,), f"MOVE {source} -> {target}")


@step(r'user "([^"]*)" moves (?:file|folder) "([^"]*)" asynchronously to "([^"]*)" using the '
      r"WebDAV API",
      r"the administrator has enabled async operations")
def async_ops(world: World, *_args: str) -> None:
    raise StepNotSupported("asynchronous MOVE (OC-LazyOps) is not served")


@step(r'user "([^"]*)" copies (?:file|folder) "([^"]*)" to "([^"]*)" using the WebDAV API')
def copies(world: World, user: str, source: str, target: str) -> None:
    move(world, user, source, target, method="COPY")


@step(r'user "([^"]*)" has copied (?:file|folder) "([^"]*)" to "([^"]*)"')
def has_copied(world: World, user: str, source: str, target: str) -> None:
    move(world, user, source, target, method="COPY")
    _require(world, (201, 204), f"COPY {source} -> {target}")


@step(r'user "([^"]*)" (?:deletes|unshares) (?:file|folder|entry) "([^"]*)" using the WebDAV '
      r"API")
def deletes(world: World, user: str, path: str) -> None:
    world.send("DELETE", world.dav_path(user, path), user=user)


@step(r'user "([^"]*)" has (?:deleted|unshared) (?:file|folder|entry) "([^"]*)"')
def has_deleted(world: World, user: str, path: str) -> None:
    world.send("DELETE", world.dav_path(user, path), user=user)
    _require(world, (204,), f"DELETE {path}")


@step(r'user "([^"]*)" has deleted the following resources')
def has_deleted_many(world: World, user: str, table: Table) -> None:
    for (path,) in table[1:]:
        has_deleted(world, user, path)


@step(r'user "([^"]*)" deletes the following (?:files|folders|resources)')
def deletes_many(world: World, user: str, table: Table) -> None:
    for (path,) in table[1:]:
        deletes(world, user, path)


@step(r'user "([^"]*)" should be able to delete (?:file|folder|entry) "([^"]*)"')
def able_to_delete(world: World, user: str, path: str) -> None:
    response = world.send("DELETE", world.dav_path(user, path), user=user, record=False)
    assert response.status_code == 204, f"DELETE {path}: HTTP {response.status_code}"
    exists(world, user, "entry", path, negate=True)


@step(r'user "([^"]*)" downloads file "([^"]*)" using the WebDAV API')
def downloads(world: World, user: str, path: str) -> None:
    world.send("GET", world.dav_path(user, path), user=user)


@step(r'user "([^"]*)" downloads file "([^"]*)" with range "([^"]*)" using the WebDAV API')
def downloads_range(world: World, user: str, path: str, byte_range: str) -> None:
    world.send("GET", world.dav_path(user, path), user=user, headers={"Range": byte_range})


@step(r'the downloaded content should be "([^"]*)"')
def downloaded_is(world: World, expected: str) -> None:
    got = world.last().text
    assert got == _text(world, expected), f"downloaded {got!r}, expected {expected!r}"


@step(r'the downloaded content should start with "([^"]*)"')
def downloaded_starts(world: World, expected: str) -> None:
    got = world.last().text
    assert got.startswith(_text(world, expected)), f"downloaded {got[:100]!r}"


def content_of(world: World, user: str, path: str) -> str:
    response = world.send("GET", world.dav_path(user, world.substitute(path)), user=user,
                          record=False)
    assert response.status_code == 200, f"GET {path} as {user}: HTTP {response.status_code}"
    return response.text


@step(r'the content of file "([^"]*)" for user "([^"]*)" should be "([^"]*)"')
def content_is(world: World, path: str, user: str, expected: str) -> None:
    got = content_of(world, user, path)
    want = _text(world, expected)
    assert got == want, f"content of {path} for {user}: {got!r}, expected {want!r}"


@step(r'the content of file "([^"]*)" for user "([^"]*)" should be:')
def content_is_doc(world: World, path: str, user: str, doc: str) -> None:
    got = content_of(world, user, path)
    assert got == doc, f"content of {path} for {user}: {got!r}, expected {doc!r}"


@step(r'the content of the following files for user "([^"]*)" should be "([^"]*)"')
def contents_are(world: World, user: str, expected: str, table: Table) -> None:
    for (path,) in table[1:]:
        content_is(world, path, user, expected)


def exists(world: World, user: str, kind: str, path: str, negate: bool = False) -> None:
    path = world.substitute(path)
    response = world.send("PROPFIND", world.dav_path(user, path), user=user,
                          headers={"Depth": "0"}, content=PROPFIND_TYPE, record=False)
    if negate:
        assert 401 <= response.status_code <= 404, (
            f"{kind} {path} of {user} exists (HTTP {response.status_code})")
        return
    assert response.status_code == 207, f"{kind} {path} of {user}: HTTP {response.status_code}"
    root = world.xml(response)
    etag = root.find(".//{DAV:}getetag")
    assert etag is not None and (etag.text or "").strip('"'), f"{path}: no etag"
    collection = root.find(".//{DAV:}resourcetype/{DAV:}collection") is not None
    if kind == "file":
        assert not collection, f"{path} of {user} is a folder, expected a file"
    elif kind == "folder":
        assert collection, f"{path} of {user} is a file, expected a folder"


@step(r'as "([^"]*)" (file|folder|entry) "([^"]*)" should exist')
def should_exist(world: World, user: str, kind: str, path: str) -> None:
    exists(world, user, kind, path)


@step(r'as "([^"]*)" (file|folder|entry) "([^"]*)" should not exist')
def should_not_exist(world: World, user: str, kind: str, path: str) -> None:
    exists(world, user, kind, path, negate=True)


@step(r'as "([^"]*)" the following (?:files|folders|entries) should exist')
def should_exist_many(world: World, user: str, table: Table) -> None:
    for (path,) in table[1:]:
        exists(world, user, "entry", path)


@step(r'as "([^"]*)" the following (?:files|folders|entries) should not exist')
def should_not_exist_many(world: World, user: str, table: Table) -> None:
    for (path,) in table[1:]:
        exists(world, user, "entry", path, negate=True)


@step(r'user "([^"]*)" should see the following elements')
def sees(world: World, user: str, table: Table) -> None:
    for (path,) in table[1:]:
        exists(world, user, "entry", unquote(path))


@step(r'user "([^"]*)" should not see the following elements')
def does_not_see(world: World, user: str, table: Table) -> None:
    for (path,) in table[1:]:
        exists(world, user, "entry", unquote(path), negate=True)


# new chunking (dav/uploads) --------------------------------------------------------------

def _upload_dir(world: World, user: str, upload_id: str) -> str:
    return f"/remote.php/dav/uploads/{world.uid(user)}/{upload_id}"


@step(r'user "([^"]*)" creates a new chunking upload with id "([^"]*)" using the WebDAV API')
def new_chunking(world: World, user: str, upload_id: str) -> None:
    world.send("MKCOL", _upload_dir(world, user, upload_id), user=user)


@step(r'user "([^"]*)" has created a new chunking upload with id "([^"]*)"')
def has_new_chunking(world: World, user: str, upload_id: str) -> None:
    new_chunking(world, user, upload_id)
    _require(world, (201,), "MKCOL of the upload folder")


@step(r'user "([^"]*)" uploads new chunk file "([^"]*)" with "([^"]*)" to id "([^"]*)" using '
      r"the WebDAV API")
def new_chunk(world: World, user: str, number: str, data: str, upload_id: str) -> None:
    world.send("PUT", f"{_upload_dir(world, user, upload_id)}/{number}", user=user,
               content=_text(world, data))


@step(r'user "([^"]*)" has uploaded new chunk file "([^"]*)" with "([^"]*)" to id "([^"]*)"')
def has_new_chunk(world: World, user: str, number: str, data: str, upload_id: str) -> None:
    new_chunk(world, user, number, data, upload_id)
    _require(world, (201,), f"PUT of chunk {number}")


@step(r'user "([^"]*)" moves new chunk file with id "([^"]*)" to "([^"]*)" using the WebDAV '
      r"API")
def new_chunk_move(world: World, user: str, upload_id: str, path: str) -> None:
    world.send("MOVE", f"{_upload_dir(world, user, upload_id)}/.file", user=user,
               headers={"Destination": str(world.client.base_url).rstrip("/")
                        + world.dav_path(user, path, "new")})


@step(r'user "([^"]*)" has moved new chunk file with id "([^"]*)" to "([^"]*)"')
def has_new_chunk_move(world: World, user: str, upload_id: str, path: str) -> None:
    new_chunk_move(world, user, upload_id, path)
    _require(world, (201, 204), "MOVE of the assembled upload")


@step(r'user "([^"]*)" uploads the following chunks to "([^"]*)" with new chunking and using '
      r"the WebDAV API")
def upload_chunks_table(world: World, user: str, path: str, table: Table) -> None:
    upload_id = "chunking-" + str(abs(hash(path)))
    new_chunking(world, user, upload_id)
    for number, content in table[1:]:
        new_chunk(world, user, number, content, upload_id)
    new_chunk_move(world, user, upload_id, path)


@step(r'user "([^"]*)" uploads file with content "([^"]*)" to "([^"]*)" in (\d+) chunks using '
      r"the WebDAV API",
      r'user "([^"]*)" uploads file with content "([^"]*)" to "([^"]*)" in (\d+) chunks with '
      r"(?:old|new) chunking and using the WebDAV API")
def upload_in_chunks(world: World, *_args: str) -> None:
    raise StepNotSupported("split-into-chunks uploads need ownCloud's chunk naming helpers")
