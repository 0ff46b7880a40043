"""newstack/dav/errors.py: Sabre error bodies byte for byte, and the backend error table."""

from pathlib import Path

import pytest

from newstack.backend import (
    AlreadyExistsError,
    BackendError,
    ChecksumMismatchError,
    ConflictError,
    ForbiddenError,
    IncompleteBodyError,
    InvalidPathError,
    LockedError,
    NotFoundError,
    PreconditionFailedError,
    QuotaExceededError,
    StorageUnavailableError,
)
from newstack.dav import errors
from newstack.dav.errors import (
    BadRequest,
    DavError,
    error_for,
    owncloud_error_body,
    sabre_error_body,
)

SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "legacy-oc10" / "samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


# (sample, exception class, message, extra children); grade B captures whose whitespace is
# Sabre's own (2-space indent, newline after every line) and the 401 whose head is rebuilt
SABRE_SAMPLES = [
    ("error-403-forbidden-empty-message-sabre.xml", "Sabre\\DAV\\Exception\\Forbidden", "", ()),
    ("error-404-notfound-file-sabre.xml", "Sabre\\DAV\\Exception\\NotFound",
     "File with name specfile-9.xml could not be located", ()),
    ("error-404-meta-notfound-empty-message-docs.xml", "Sabre\\DAV\\Exception\\NotFound", "",
     ()),
    ("error-405-public-files-listing-disabled-docs.xml",
     "Sabre\\DAV\\Exception\\MethodNotAllowed", "Listing members of this collection is disabled",
     ()),
    ("error-412-precondition-if-match-sabre.xml", "Sabre\\DAV\\Exception\\PreconditionFailed",
     "An If-Match header was specified, but none of the specified the ETags matched.",
     (("s:header", "If-Match"),)),
    ("error-423-filelocked-sabre.xml", "OCA\\DAV\\Connector\\Sabre\\Exception\\FileLocked",
     '"new folder/newfile.pdf" is locked', ()),
    ("error-503-maintenance-mode-sabre.xml", "Sabre\\DAV\\Exception\\ServiceUnavailable",
     "System in maintenance mode.", ()),
    ("error-503-storage-unavailable-sabre.xml", "Sabre\\DAV\\Exception\\ServiceUnavailable",
     "Storage is temporarily not available", ()),
    ("error-401-notauthenticated-no-auth-header-iosapp-2020.xml",
     "Sabre\\DAV\\Exception\\NotAuthenticated",
     "No public access to this resource., No 'Authorization: Basic' header found. Either the "
     "client didn't send one, or the server is misconfigured, No 'Authorization: Basic' header "
     "found. Either the client didn't send one, or the server is misconfigured", ()),
]


@pytest.mark.parametrize(("name", "exception", "message", "extra"), SABRE_SAMPLES,
                         ids=[s[0] for s in SABRE_SAMPLES])
def test_error_bodies_match_the_samples_byte_for_byte(name, exception, message, extra):
    assert sabre_error_body(exception, message, extra) == sample(name)


def test_body_layout_is_spelled_out():
    assert sabre_error_body("Sabre\\DAV\\Exception\\NotFound", "x.txt gone") == (
        b'<?xml version="1.0" encoding="utf-8"?>\n'
        b'<d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns">\n'
        b"  <s:exception>Sabre\\DAV\\Exception\\NotFound</s:exception>\n"
        b"  <s:message>x.txt gone</s:message>\n"
        b"</d:error>\n")


def test_message_escapes_ampersand_and_angle_brackets_but_not_quotes():
    body = sabre_error_body("E", "a <b> & \"c\" 'd'\r")
    assert b"<s:message>a &lt;b&gt; &amp; \"c\" 'd'&#13;</s:message>" in body


def test_message_keeps_utf8_and_turns_invalid_text_into_an_empty_message():
    assert "<s:message>ä €</s:message>".encode() in sabre_error_body("E", "ä €")
    # htmlspecialchars() gives '' for invalid UTF-8 (here: a lone surrogate from a raw name)
    assert b"  <s:message/>\n" in sabre_error_body("E", "bad \udcff name")


def test_nested_extra_children_are_indented_like_the_dom_output():
    body = errors.dav_locked("files/alice/a.txt").body()
    assert body.endswith(
        b"  <s:message/>\n"
        b"  <d:lock-token-submitted>\n"
        b"    <d:href>files/alice/a.txt</d:href>\n"
        b"  </d:lock-token-submitted>\n"
        b"</d:error>\n")
    assert b"<s:exception>Sabre\\DAV\\Exception\\Locked</s:exception>" in body


def test_owncloud_forbidden_variant_redeclares_o_as_the_literal_uri():
    body = owncloud_error_body("OCA\\DAV\\Connector\\Sabre\\Exception\\Forbidden", "1234567890")
    assert body == (
        b'<?xml version="1.0" encoding="utf-8"?>\n'
        b'<d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" '
        b'xmlns:o="http://owncloud.org/ns">\n'
        b"  <s:exception>OCA\\DAV\\Connector\\Sabre\\Exception\\Forbidden</s:exception>\n"
        b"  <s:message>1234567890</s:message>\n"
        # the two lines below are ownCloud's own unit test (ForbiddenTest, InvalidPathTest)
        b'  <o:retry xmlns:o="o:">false</o:retry>\n'
        b'  <o:reason xmlns:o="o:">1234567890</o:reason>\n'
        b"</d:error>\n")
    assert b'<o:retry xmlns:o="o:">true</o:retry>' in owncloud_error_body("E", "m", retry=True)
    assert b'  <o:reason xmlns:o="o:"/>\n' in owncloud_error_body("E", "")


# --- the backend error table ----------------------------------------------------------------


def test_not_found_with_ownclouds_message_matches_the_capture():
    exc = NotFoundError(errors.not_found_message("specfile-9.xml"))
    assert error_for(exc) == (404, sample("error-404-notfound-file-sabre.xml"))


def test_locked_matches_the_filelocked_capture():
    exc = LockedError(errors.locked_message("new folder/newfile.pdf"))
    assert error_for(exc) == (423, sample("error-423-filelocked-sabre.xml"))


def test_defaults_give_ownclouds_exact_answers():
    assert error_for(ForbiddenError()) == (
        403, sample("error-403-forbidden-empty-message-sabre.xml"))
    assert error_for(StorageUnavailableError()) == (
        503, sample("error-503-storage-unavailable-sabre.xml"))


@pytest.mark.parametrize(("exc", "status", "exception", "message"), [
    (QuotaExceededError(), 507, "Sabre\\DAV\\Exception\\InsufficientStorage", ""),
    (ChecksumMismatchError(), 400, "Sabre\\DAV\\Exception\\BadRequest",
     "The computed checksum does not match the one received from the client."),
    (IncompleteBodyError("expected filesize 10 got 4"), 400,
     "Sabre\\DAV\\Exception\\BadRequest", "expected filesize 10 got 4"),
    (AlreadyExistsError(), 405, "Sabre\\DAV\\Exception\\MethodNotAllowed",
     "The resource you tried to create already exists"),
    (ConflictError("Parent node does not exist"), 409, "Sabre\\DAV\\Exception\\Conflict",
     "Parent node does not exist"),
    (LockedError(), 423, "OCA\\DAV\\Connector\\Sabre\\Exception\\FileLocked", ""),
    (BackendError("boom"), 500, "Sabre\\DAV\\Exception", "boom"),
])
def test_table_maps_each_backend_error(exc, status, exception, message):
    assert error_for(exc) == (status, sabre_error_body(exception, message))


def test_precondition_failed_uses_sabre_47_wording_and_names_the_header():
    status, body = error_for(PreconditionFailedError())
    assert status == 412
    assert body == sabre_error_body(
        "Sabre\\DAV\\Exception\\PreconditionFailed",
        "An If-Match header was specified, but none of the specified ETags matched.",
        [("s:header", "If-Match")])


def test_invalid_path_uses_the_owncloud_variant():
    message = ("Can`t upload files with extension .part because these extensions are reserved "
               "for internal use.")
    status, body = error_for(InvalidPathError(message))
    assert status == 400
    assert body == owncloud_error_body("OCA\\DAV\\Connector\\Sabre\\Exception\\InvalidPath",
                                       message)


def test_subclasses_use_their_parents_entry_and_foreign_errors_are_a_bare_500():
    class GoneError(NotFoundError):
        pass

    assert error_for(GoneError("x"))[0] == 404
    status, body = error_for(RuntimeError("secret detail"))
    assert status == 500
    assert b"secret detail" not in body


def test_every_backend_error_class_is_mapped():
    import newstack.backend as backend

    classes = {obj for obj in vars(backend).values()
               if isinstance(obj, type) and issubclass(obj, BackendError)}
    assert classes == set(errors.ERRORS)


def test_dav_errors_carry_their_answer():
    exc = BadRequest("The PROPFIND request body is not well-formed XML")
    assert error_for(exc) == (400, sabre_error_body(
        "Sabre\\DAV\\Exception\\BadRequest", "The PROPFIND request body is not well-formed XML"))
    assert str(exc) == "The PROPFIND request body is not well-formed XML"
    depth = DavError(errors.DEPTH_INFINITY)
    assert error_for(depth) == (412, sabre_error_body(
        "Sabre\\DAV\\Exception\\PreconditionFailed", "Depth infinity not supported"))
